"""The embedded default dataset: seeded synthetic sequences with planted sequential structure.

Each user's next item depends mostly on the last item (a sparse first-order transition table with a
few successors per item), sometimes on the item before it (a second table), and otherwise follows a
Zipf popularity law. A most-popular baseline only sees the popularity part; a sequential model can
learn the transitions, so on this data a trained AE or AR model clearly beats most-popular. The
default size trains in about a minute on a laptop CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .sequences import SequenceDataset


@dataclass(frozen=True)
class SyntheticConfig:
    num_users: int = 2000
    num_items: int = 400
    min_length: int = 8
    max_length: int = 60
    successors: int = 4  # successors per item in each transition table
    p_first_order: float = 0.6  # next item from the last item's successors
    p_second_order: float = 0.2  # next item from the second-to-last item's successors
    zipf_exponent: float = 1.0  # popularity skew of the fallback and of the start items
    seed: int = 0


def make_synthetic(config: SyntheticConfig = SyntheticConfig(), name: str = "synthetic") -> SequenceDataset:
    cfg = config
    if cfg.p_first_order + cfg.p_second_order > 1:
        raise ValueError("p_first_order + p_second_order must be at most 1")
    if not (2 <= cfg.min_length <= cfg.max_length):
        raise ValueError("need 2 <= min_length <= max_length")
    rng = np.random.default_rng(cfg.seed)
    n = cfg.num_items
    popularity = 1.0 / np.arange(1, n + 1) ** cfg.zipf_exponent
    popularity /= popularity.sum()
    popularity = popularity[rng.permutation(n)]  # popular items are not simply the low ids

    def transition_table():
        succ = rng.integers(0, n, size=(n, cfg.successors))
        weights = rng.dirichlet(np.ones(cfg.successors), size=n)
        return succ, np.cumsum(weights, axis=1)

    succ1, cum1 = transition_table()
    succ2, cum2 = transition_table()

    lengths = rng.integers(cfg.min_length, cfg.max_length + 1, size=cfg.num_users)
    sequences = []
    for length in lengths:
        seq = np.empty(length, dtype=np.int64)
        seq[0] = rng.choice(n, p=popularity)
        mode = rng.random(length)
        pick = rng.random(length)
        fallback = rng.choice(n, size=length, p=popularity)
        for t in range(1, length):
            if mode[t] < cfg.p_first_order:
                last = seq[t - 1]
                seq[t] = succ1[last, np.searchsorted(cum1[last], pick[t])]
            elif mode[t] < cfg.p_first_order + cfg.p_second_order and t >= 2:
                prev = seq[t - 2]
                seq[t] = succ2[prev, np.searchsorted(cum2[prev], pick[t])]
            else:
                seq[t] = fallback[t]
        sequences.append(np.minimum(seq, n - 1) + 1)  # items 1..n, 0 is padding

    ds = SequenceDataset.from_sequences(name, sequences, num_items=n, source=f"synthetic {cfg}")
    # Items that never occur would make stats() disagree with num_items; re-index to the used ones.
    used = np.unique(ds.items)
    if len(used) != n:
        remap = np.zeros(n + 1, dtype=np.int64)
        remap[used] = np.arange(1, len(used) + 1)
        ds = SequenceDataset(name, remap[ds.items], ds.offsets, len(used), source=ds.source)
    return ds
