"""The objective: what AE and AR mean for training and for evaluation, in one place.

    AR (causal): every position of the training window is a target, the next item; at evaluation
        the output at the last history position predicts the next item.
    AE (bidirectional): k positions of the window are replaced by [MASK] and recovered; at
        evaluation a [MASK] is appended after the last max_len - 1 history items and its output
        predicts the next item (the authors' code).

Here are the training windows (:func:`training_windows`), the number of [MASK]ed positions
(:func:`mask_counts`, the one formula the trainer's batches and the per-user target counts share),
the [MASK] draw (:func:`mask_positions`), the targets per user (:func:`targets_per_user`) and their
weights (:func:`target_weights`), and the evaluation slot (:func:`history_window`,
:func:`eval_inputs`, which every model's ``SequentialRecommender.eval_inputs`` uses). The attention
mask itself, the other half of the difference, is ``sarbench.models.sar.attention_mask``.
"""

from __future__ import annotations

import numpy as np
import torch

from .config import Attention, TrainingFields
from .data.sequences import SequenceDataset


# --- training ----------------------------------------------------------------------------------
def training_windows(train: SequenceDataset, attention: str, max_len: int):
    """Each user's training window as (users, inputs, targets, lengths) numpy arrays.

    AR: inputs s[:-1], targets s[1:], over the last max_len + 1 items of the training sequence.
    AE: the last max_len items (inputs = targets; masking is drawn per batch).
    Left-aligned, zero padded to max_len. Users without a target (AR: fewer than 2 items) are left out.
    """
    lengths = train.lengths
    ends = train.offsets[1:]
    span = max_len + 1 if attention == Attention.AR else max_len
    m = np.minimum(lengths, span)
    n_in = m - 1 if attention == Attention.AR else m
    keep = n_in >= 1
    users = np.nonzero(keep)[0]
    pos = np.arange(max_len)[None, :]
    start = (ends - m)[keep][:, None]
    valid = pos < n_in[keep][:, None]
    items = np.concatenate([train.items, [0]])  # sentinel for masked-out gathers
    idx = np.where(valid, start + pos, len(items) - 1)
    inputs = items[idx]
    if attention == Attention.AR:
        targets = items[np.where(valid, idx + 1, len(items) - 1)]
    else:
        targets = inputs.copy()
    return users, inputs, targets, n_in[keep]

def sequence_targets(train: SequenceDataset, users) -> np.ndarray:
    """Every item that the whole training sequence of each of ``users`` predicts as AR, s[1:] (not only
    the window's), each once, zero padded: (len(users), longest) int64. The authors' modular code draws AR
    negatives outside this set."""
    users = np.asarray(users)
    rows = [np.unique(train.items[train.offsets[u] + 1 : train.offsets[u + 1]]) for u in users]
    width = max((len(r) for r in rows), default=0) or 1
    out = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def mask_counts(lengths: torch.Tensor, max_len: int, mask_prob: float) -> torch.Tensor:
    """AE: how many positions of each window are [MASK]ed, k = min(int(max_len * p), max(1, round(len * p))),
    at least one (round half to even, as Python's round in the authors' code)."""
    k = torch.clamp(torch.round(lengths.double() * mask_prob).long(), min=1)
    k = torch.clamp(k, max=int(max_len * mask_prob))
    return torch.maximum(k, torch.ones_like(k))


def mask_positions(real: torch.Tensor, k: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """AE: which positions to [MASK], (B, L) bool: exactly ``k`` (B,) random ones among the ``real`` items."""
    noise = torch.rand(real.shape, generator=generator, device=real.device)
    noise = noise.masked_fill(~real, 2.0)
    rank = noise.argsort(dim=1).argsort(dim=1)
    return rank < k[:, None]


def targets_per_user(lengths: np.ndarray, attention: str, max_len: int, mask_prob: float) -> np.ndarray:
    """Training targets of each user in one epoch: AR every input position; AE its k masked positions
    (:func:`mask_counts`)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if attention == Attention.AR:
        return lengths.copy()
    return mask_counts(torch.as_tensor(lengths), max_len, mask_prob).numpy()


def target_weights(targets: np.ndarray, batch_list, weighted: bool) -> np.ndarray:
    """Weight of each user's every target in the epoch's summed objective, per user.

    ``weighted=False``: each batch's loss is the mean over its targets (weight 1 / targets in
    the batch). ``weighted=True``: the sum over its targets divided by the epoch's mean targets per
    batch (the same weight for every target). Used by tests to compare the two schemes.
    """
    targets = np.asarray(targets, dtype=np.float64)
    out = np.zeros(len(targets))
    mean_per_batch = targets.sum() / len(batch_list)
    for idx in batch_list:
        idx = np.asarray(idx)
        out[idx] = 1.0 / mean_per_batch if weighted else 1.0 / targets[idx].sum()
    return out


# --- evaluation: the prediction slot ----------------------------------------------------------
def history_window(fields: TrainingFields, max_len: int) -> int:
    """History items in the evaluation input: AR reads max_len, AE max_len - 1 and a [MASK]."""
    if fields.attention == Attention.AR:
        return max_len
    return max(1, min(max_len, fields.max_len - 1))


def eval_inputs(fields: TrainingFields, histories: torch.Tensor, lengths: torch.Tensor):
    """Place the prediction slot: AR reads the last history position; AE appends [MASK].

    ``histories`` (B, L) are each user's last min(len, max_len) items, left-aligned.
    Returns (inputs, position of the prediction per user).
    """
    if fields.attention == Attention.AR:
        return histories, lengths - 1
    L = histories.shape[1]
    # AE: keep the last max_len-1 history items, then [MASK].
    keep = torch.clamp(lengths, max=fields.max_len - 1)
    shift = lengths - keep  # drop the oldest items of full-length histories
    idx = torch.arange(L, device=histories.device)[None, :] + shift[:, None]
    shifted = torch.gather(histories, 1, idx.clamp(max=L - 1)) * (idx < lengths[:, None])
    width = min(L + 1, fields.max_len)
    inputs = torch.zeros(len(histories), width, dtype=histories.dtype, device=histories.device)
    inputs[:, : min(L, width)] = shifted[:, :width]
    inputs[torch.arange(len(histories), device=histories.device), keep] = fields.mask_token
    return inputs, keep
