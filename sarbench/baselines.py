"""Reference scorers that need no training."""

from __future__ import annotations

import numpy as np
import torch

from .data.sequences import SequenceDataset

__all__ = ["MostPopular"]


class MostPopular:
    """Scores each item by how often it occurs in the training sequences, the same for every user.

    Build it from ``split.train`` so that neither validation nor test items leak into the counts.
    It follows the scorer interface of :func:`sarbench.evaluate.evaluate`; items with equal counts
    tie, and ties count against the target.

    Args:
        train: the training sequences (``split.train``).

    Example:
        >>> from sarbench.data import SequenceDataset
        >>> train = SequenceDataset.from_sequences("toy", [[1, 2, 2], [2, 3]], num_items=3)
        >>> MostPopular(train).counts.tolist()
        [0.0, 1.0, 3.0, 1.0]
    """

    def __init__(self, train: SequenceDataset):
        if not isinstance(train, SequenceDataset):
            raise ValueError(
                f"train must be a SequenceDataset (use split.train), got {type(train).__name__}"
            )
        counts = np.bincount(train.items, minlength=train.num_items + 1).astype(np.float32)
        counts[0] = 0.0  # padding; never ranked anyway
        self.num_items = train.num_items
        self.counts = torch.from_numpy(counts)  # (num_items + 1,)

    def score(self, histories: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, num_items + 1) float scores: the train count of each item, for every row."""
        return self.counts.to(histories.device).unsqueeze(0).expand(histories.shape[0], -1)
