"""Full-ranking metrics for next-item recommendation with one relevant item per user.

Small pure torch functions, vectorised over a batch of users, that run on whatever device their
inputs live on. The pipeline is

    scores (B, C) --ranks_from_scores--> ranks (B,) --recall_at_k / ndcg_at_k / mrr_at_k--> per user

and :func:`metric_table` averages over users under the project-wide names ``"R@k"`` and ``"N@k"``.

Definitions (``t`` is the target id of a user, ``s`` that user's score row):

* candidates: every id ``c`` in ``1..C-1`` that is not excluded; id 0 (padding) never is one, and the
  target always is one, even when the exclusion mask covers it (a repeated item).
* rank (0-based, **pessimistic ties**):
  ``#{candidates c != t : s[c] > s[t]} + #{candidates c != t : s[c] == s[t]}``.
  A candidate tied with the target counts as ranked above it, so a model that gives every item the
  same score gets the worst rank (number of candidates - 1) and zero metrics.
* ``Recall@k = 1[rank < k]``, ``NDCG@k = 1[rank < k] / log2(rank + 2)`` (one relevant item, so the
  ideal DCG is 1), ``MRR@k = 1[rank < k] / (rank + 1)``.

Differences from the authors' code (SAR-Check, see the protocol notes):

* It counted only candidates scoring *strictly* higher, so ties favoured the target and a model
  with constant scores scored a perfect Recall@k of 1. Here ties count against the target.
* Its ModSAR/HuggingFace path recomputed the target's score separately from the full score matrix;
  floating-point differences then let the target's own column outrank it in roughly 40-50% of the
  cases. Here the target score is read from the same matrix (``gather``), and the target's own column
  is never counted as a competitor.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "mrr_at_k",
    "metric_table",
    "metric_table_per_user",
    "ndcg_at_k",
    "ranks_from_scores",
    "recall_at_k",
]

TIE_RULE = "pessimistic"


def _check_scores_targets(scores: torch.Tensor, targets: torch.Tensor, exclude: torch.Tensor | None) -> None:
    if not isinstance(scores, torch.Tensor):
        raise ValueError(f"`scores` must be a torch.Tensor, got {type(scores).__name__}")
    if scores.ndim != 2:
        raise ValueError(f"`scores` must have shape (B, C), got shape {tuple(scores.shape)}")
    if not scores.is_floating_point():
        raise ValueError(f"`scores` must be a floating-point tensor, got dtype {scores.dtype}")
    if scores.shape[1] < 2:
        raise ValueError(f"`scores` needs at least 2 columns (padding id 0 and one item), got {scores.shape[1]}")
    if not isinstance(targets, torch.Tensor):
        raise ValueError(f"`targets` must be a torch.Tensor, got {type(targets).__name__}")
    if targets.ndim != 1 or targets.shape[0] != scores.shape[0]:
        raise ValueError(
            f"`targets` must have shape ({scores.shape[0]},) to match `scores` {tuple(scores.shape)}, "
            f"got {tuple(targets.shape)}"
        )
    if targets.dtype.is_floating_point or targets.dtype.is_complex or targets.dtype == torch.bool:
        raise ValueError(f"`targets` must be an integer tensor of item ids, got dtype {targets.dtype}")
    if targets.device != scores.device:
        raise ValueError(f"`targets` is on {targets.device} but `scores` is on {scores.device}")
    if exclude is not None:
        if not isinstance(exclude, torch.Tensor) or exclude.dtype != torch.bool:
            raise ValueError("`exclude` must be a bool torch.Tensor of shape (B, C) or None")
        if exclude.shape != scores.shape:
            raise ValueError(f"`exclude` must have the shape of `scores` {tuple(scores.shape)}, got {tuple(exclude.shape)}")
        if exclude.device != scores.device:
            raise ValueError(f"`exclude` is on {exclude.device} but `scores` is on {scores.device}")
    if scores.shape[0] == 0:
        return
    bad = ((targets < 1) | (targets >= scores.shape[1])).nonzero().flatten()
    if len(bad):
        i = int(bad[0])
        raise ValueError(
            f"`targets` must be item ids in 1..{scores.shape[1] - 1} (0 is padding); "
            f"{len(bad)} out of range, first targets[{i}] = {int(targets[i])}"
        )


def ranks_from_scores(
    scores: torch.Tensor, targets: torch.Tensor, exclude: torch.Tensor | None = None
) -> torch.Tensor:
    """0-based rank of each user's target among all candidate items, ties counted against the target.

    Args:
        scores: float tensor (B, C), one score per id ``0..C-1``; column 0 is padding and is never a
            candidate. Must not contain NaN (``+-inf`` is allowed).
        targets: integer tensor (B,), the target id of each user, in ``1..C-1``.
        exclude: optional bool tensor (B, C); ``True`` marks ids that are not candidates for that
            user (for example the user's history). The target is a candidate even where it is
            marked, so a repeated item is still ranked.

    Returns:
        int64 tensor (B,) on the device of ``scores``:
        ``rank[b] = #{candidates c != t : s[c] > s[t]} + #{candidates c != t : s[c] == s[t]}``
        with ``t = targets[b]``, ``s = scores[b]``. The target's score is read from ``scores``
        itself. Constant scores give the worst rank, ``#candidates - 1`` (``C - 2`` without
        exclusions), unlike the authors' strictly-greater rule that made them perfect.

    Raises:
        ValueError: if a shape, dtype or device does not match, ``scores`` contains NaN, or a target
            lies outside ``1..C-1``.

    Example:
        >>> scores = torch.tensor([[9.0, 0.5, 0.2, 0.9, 0.2],
        ...                        [9.0, 1.0, 1.0, 1.0, 1.0]])
        >>> ranks_from_scores(scores, torch.tensor([1, 2]))  # row 1: constant scores, worst rank
        tensor([1, 3])
        >>> exclude = torch.tensor([[False, False, False, True, False],
        ...                         [False, False, True, True, False]])
        >>> ranks_from_scores(scores, torch.tensor([1, 2]), exclude)  # excluded target still ranked
        tensor([0, 2])
    """
    _check_scores_targets(scores, targets, exclude)
    targets = targets.long()
    b, c = scores.shape
    # On CPU, blocks of about 1M scores keep the intermediates in cache (about 3x less CPU time at
    # ML-1M size than one pass over the whole matrix); other devices take the whole batch at once.
    rows = max(b, 1) if scores.device.type != "cpu" else max(1, _CPU_BLOCK_ELEMENTS // c)
    out = []
    for lo in range(0, max(b, 1), rows):
        hi = min(lo + rows, b)
        out.append(_ranks_block(scores[lo:hi], targets[lo:hi], None if exclude is None else exclude[lo:hi], lo))
    return torch.cat(out)


_CPU_BLOCK_ELEMENTS = 1 << 20


def _ranks_block(scores: torch.Tensor, targets: torch.Tensor, exclude: torch.Tensor | None, row0: int) -> torch.Tensor:
    """ranks_from_scores on a block of rows starting at row ``row0`` (inputs already validated)."""
    nan_rows = torch.isnan(scores.amax(dim=1))  # amax propagates NaN; cheaper than isnan(scores)
    if nan_rows.any():
        nan_rows = nan_rows.nonzero().flatten()
        raise ValueError(
            f"`scores` contains NaN, first at row {row0 + int(nan_rows[0])}; a model producing NaN cannot be ranked"
        )
    idx = targets.unsqueeze(1)  # (b, 1)
    target_scores = scores.gather(1, idx)  # (b, 1), from the same matrix as the competitors
    beats = scores >= target_scores  # (b, C): ties count as beating the target (pessimistic)
    if exclude is not None:
        beats.masked_fill_(exclude, False)
    beats[:, 0] = False  # padding is never a candidate
    beats.scatter_(1, idx, False)  # the target does not compete with itself
    return beats.sum(dim=1)


def _check_ranks_k(ranks: torch.Tensor, k: int) -> None:
    if not isinstance(ranks, torch.Tensor):
        raise ValueError(f"`ranks` must be a torch.Tensor, got {type(ranks).__name__}")
    if ranks.ndim != 1:
        raise ValueError(f"`ranks` must have shape (B,), got shape {tuple(ranks.shape)}")
    if ranks.dtype.is_floating_point or ranks.dtype.is_complex or ranks.dtype == torch.bool:
        raise ValueError(f"`ranks` must be an integer tensor, got dtype {ranks.dtype}")
    if ranks.numel() and int(ranks.min()) < 0:
        raise ValueError(f"`ranks` must be non-negative 0-based ranks, found {int(ranks.min())}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"`k` must be a positive integer, got {k!r}")


def recall_at_k(ranks: torch.Tensor, k: int) -> torch.Tensor:
    """Recall@k per user for one relevant item: ``1[rank < k]``.

    Args:
        ranks: integer tensor (B,) of 0-based ranks (from :func:`ranks_from_scores`).
        k: cut-off, a positive integer.

    Returns:
        float32 tensor (B,) of zeros and ones; average it to get Recall@k (equal to HitRate@k here).

    Raises:
        ValueError: if ``ranks`` is not a non-negative integer vector or ``k`` is not positive.

    Example:
        >>> recall_at_k(torch.tensor([0, 4, 5, 30]), k=5)
        tensor([1., 1., 0., 0.])
    """
    _check_ranks_k(ranks, k)
    return (ranks < k).to(torch.float32)


def ndcg_at_k(ranks: torch.Tensor, k: int) -> torch.Tensor:
    """NDCG@k per user for one relevant item: ``1[rank < k] / log2(rank + 2)``.

    With a single relevant item the ideal DCG is ``1 / log2(2) = 1``, so NDCG equals DCG.

    Args:
        ranks: integer tensor (B,) of 0-based ranks (from :func:`ranks_from_scores`).
        k: cut-off, a positive integer.

    Returns:
        float32 tensor (B,) with values in [0, 1]; 1 for rank 0, 0 for ranks ``>= k``.

    Raises:
        ValueError: if ``ranks`` is not a non-negative integer vector or ``k`` is not positive.

    Example:
        >>> ndcg_at_k(torch.tensor([0, 1, 2, 5]), k=5)
        tensor([1.0000, 0.6309, 0.5000, 0.0000])
    """
    _check_ranks_k(ranks, k)
    gain = 1.0 / torch.log2(ranks.to(torch.float32) + 2.0)
    return torch.where(ranks < k, gain, torch.zeros_like(gain))


def mrr_at_k(ranks: torch.Tensor, k: int) -> torch.Tensor:
    """Reciprocal rank truncated at k, per user: ``1[rank < k] / (rank + 1)``.

    Args:
        ranks: integer tensor (B,) of 0-based ranks (from :func:`ranks_from_scores`).
        k: cut-off, a positive integer.

    Returns:
        float32 tensor (B,) with values in [0, 1]; average it to get MRR@k.

    Raises:
        ValueError: if ``ranks`` is not a non-negative integer vector or ``k`` is not positive.

    Example:
        >>> mrr_at_k(torch.tensor([0, 1, 3, 10]), k=10)
        tensor([1.0000, 0.5000, 0.2500, 0.0000])
    """
    _check_ranks_k(ranks, k)
    rr = 1.0 / (ranks.to(torch.float32) + 1.0)
    return torch.where(ranks < k, rr, torch.zeros_like(rr))


def _as_ranks(ranks) -> torch.Tensor:
    if isinstance(ranks, torch.Tensor):
        return ranks
    arr = np.asarray(ranks)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"`ranks` must hold integers, got dtype {arr.dtype}")
    return torch.from_numpy(arr.astype(np.int64, copy=False))


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(ks)
    if not ks:
        raise ValueError("`ks` must name at least one cut-off")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"`ks` must hold positive integers, got {k!r}")
    return tuple(int(k) for k in ks)


def metric_table_per_user(ranks, ks: Sequence[int] = (5, 10, 20)) -> dict[str, np.ndarray]:
    """Per-user Recall@k and NDCG@k as numpy arrays, keyed ``"R@k"`` then ``"N@k"``.

    Args:
        ranks: integer tensor (or numpy array) (B,) of 0-based ranks.
        ks: cut-offs, positive integers.

    Returns:
        dict mapping ``"R@k"`` and ``"N@k"`` for each k in ``ks`` to a float64 array (B,) in user
        order. Recall keys come first, each in the order of ``ks``.

    Raises:
        ValueError: on invalid ``ranks`` or ``ks``.

    Example:
        >>> table = metric_table_per_user(torch.tensor([0, 7]), ks=(5, 10))
        >>> list(table)
        ['R@5', 'R@10', 'N@5', 'N@10']
        >>> table["R@10"].tolist()
        [1.0, 1.0]
    """
    ranks = _as_ranks(ranks)
    ks = _check_ks(ks)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        out[f"R@{k}"] = recall_at_k(ranks, k).cpu().numpy().astype(np.float64)
    for k in ks:
        out[f"N@{k}"] = ndcg_at_k(ranks, k).cpu().numpy().astype(np.float64)
    return out


def metric_table(ranks, ks: Sequence[int] = (5, 10, 20)) -> dict[str, float]:
    """Recall@k and NDCG@k averaged over users, keyed ``"R@k"`` and ``"N@k"``.

    These key names (``"R@5"``, ``"R@10"``, ``"R@20"``, ``"N@5"``, ``"N@10"``, ``"N@20"`` by default) are
    the metric names used throughout sarbench's result records.

    Args:
        ranks: integer tensor (or numpy array) (B,) of 0-based ranks; B may not be 0.
        ks: cut-offs, positive integers.

    Returns:
        dict of Python floats, the mean over users of :func:`recall_at_k` and :func:`ndcg_at_k`.

    Raises:
        ValueError: on invalid ``ranks`` or ``ks``, or no users.

    Example:
        >>> table = metric_table(torch.tensor([0, 1, 9, 40]), ks=(5, 10))
        >>> {name: round(value, 4) for name, value in table.items()}
        {'R@5': 0.5, 'R@10': 0.75, 'N@5': 0.4077, 'N@10': 0.48}
    """
    ranks = _as_ranks(ranks)
    if ranks.numel() == 0:
        raise ValueError("`ranks` is empty: no users to average over")
    return {name: float(values.mean()) for name, values in metric_table_per_user(ranks, ks).items()}
