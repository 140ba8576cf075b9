"""Full-ranking evaluation of a scorer on a leave-one-out split.

A *scorer* is any object with a method

    score(histories: LongTensor (B, L), lengths: LongTensor (B,)) -> FloatTensor (B, >= num_items + 1)

``histories`` holds each user's last ``min(len, max_len)`` history items, left-aligned (positions
``0..len-1``, zeros after: tail padding, as in the authors' code), with ``L = max_len`` columns always;
``lengths`` holds the number of real items per row. Score column ``i`` is the score of item id ``i``;
column 0 (padding) is never ranked and any column past ``num_items`` (a MASK token, unused ids) is
cut off before ranking. Putting the model in eval mode is the scorer's business; :func:`evaluate`
only guarantees ``torch.no_grad()``.

**Which seen items are excluded from the candidates.** Two rules, computed from one scoring pass
(every result keeps the ranks under both):

* ``"input"`` (the authors' rule, protocol.md §4, and the one every comparison with the paper uses):
  the ids in the model's input window, i.e. the user's last ``window`` history items, where
  ``window`` is the scorer's ``history_window`` (a scorer that appends a [MASK] sees one history
  item less: ``max_len - 1``) or ``max_len`` when it declares none;
* ``"history"``: every item of the user's *full* history, however long;
* ``"none"``: nothing is excluded.

Under every rule the target itself is always ranked (a repeated item stays a candidate), and ties
count against the target (see :mod:`sarbench.metrics`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .config import DEFAULT_RULES, PAPER_RULE, RULES
from .data.sequences import Split
from .metrics import TIE_RULE, _check_ks, metric_table_per_user, ranks_from_scores

__all__ = ["DEFAULT_RULES", "EvalResult", "PAPER_RULE", "RULES", "evaluate", "history_matrix", "input_window"]

logger = logging.getLogger(__name__)

STAGES = ("valid", "test")


@dataclass(frozen=True, eq=False)
class EvalResult:
    """Metrics of one evaluation run.

    ``metrics``, ``per_user`` and ``ranks`` are those of the first (primary) exclusion rule,
    ``exclusion``; ``ranks_by_rule`` and ``metrics_by_rule`` hold every rule that was computed.
    ``per_user[name][j]`` belongs to dataset user ``users[j]``; ``metrics[name]`` is its mean.
    """

    metrics: dict[str, float]
    per_user: dict[str, np.ndarray]
    users: np.ndarray  # dataset user indices, aligned with per_user and ranks
    stage: str
    exclusion: str
    num_users: int
    ranks: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # 0-based, per user
    ks: tuple[int, ...] = (5, 10, 20)
    max_len: int = 50
    tie_rule: str = TIE_RULE
    window: int = 50  # history items in the scorer's input (the "input" rule's window)
    ranks_by_rule: dict[str, np.ndarray] = field(default_factory=dict)
    metrics_by_rule: dict[str, dict[str, float]] = field(default_factory=dict)

    def summary(self) -> dict:
        """The JSON-ready part of the result: metrics and settings, no per-user arrays."""
        return {
            "metrics": dict(self.metrics),
            "metrics_by_rule": {r: dict(m) for r, m in self.metrics_by_rule.items()},
            "stage": self.stage,
            "exclusion": self.exclusion,
            "tie_rule": self.tie_rule,
            "num_users": self.num_users,
            "ks": list(self.ks),
            "max_len": self.max_len,
            "window": self.window,
        }


def _stage_arrays(split: Split, stage: str, idx: np.ndarray):
    """CSR pieces of the stage's histories for eval-user indices ``idx``.

    Returns (starts into split.train.items, train lengths, extra last item or None, targets).
    The validation history is the train sequence; the test history appends the validation item.
    """
    users = split.eval_users[idx]
    starts = split.train.offsets[users]
    lengths = split.train.offsets[users + 1] - starts
    if stage == "valid":
        return starts, lengths, None, split.valid_target[idx]
    return starts, lengths, split.valid_target[idx], split.test_target[idx]


def history_matrix(split: Split, stage: str, max_len: int, idx: np.ndarray | None = None):
    """Padded history matrix for a stage, built from the CSR arrays without a per-user loop.

    Args:
        split: the leave-one-out split.
        stage: ``"valid"`` or ``"test"``.
        max_len: number of columns; each row holds the user's last ``min(len, max_len)`` items.
        idx: indices into ``split.eval_users`` (default: all).

    Returns:
        (histories int64 (B, max_len) left-aligned with zero tail padding, lengths int64 (B,),
        targets int64 (B,)), as numpy arrays. Row ``j`` equals the last ``max_len`` items of
        ``split.histories(stage)[0][idx[j]]``.
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be 'valid' or 'test', got {stage!r}")
    if isinstance(max_len, bool) or not isinstance(max_len, (int, np.integer)) or max_len < 1:
        raise ValueError(f"max_len must be a positive integer, got {max_len!r}")
    if idx is None:
        idx = np.arange(len(split.eval_users))
    starts, train_len, extra, targets = _stage_arrays(split, stage, idx)
    full_len = train_len + (0 if extra is None else 1)
    win = np.minimum(full_len, max_len)
    pos = np.arange(max_len)[None, :]  # (1, L)
    j = (full_len - win)[:, None] + pos  # (B, L): index into the user's full history
    valid = pos < win[:, None]
    from_train = valid & (j < train_len[:, None])
    flat = np.where(from_train, starts[:, None] + j, 0)
    hist = np.where(from_train, split.train.items[flat], 0)
    if extra is not None:
        hist = np.where(valid & ~from_train, extra[:, None], hist)
    return hist.astype(np.int64), win.astype(np.int64), np.asarray(targets, dtype=np.int64)


def _window_mask(hist: torch.Tensor, lengths: torch.Tensor, window: int, num_cols: int) -> torch.Tensor:
    """Bool (B, num_cols) marking each user's last ``window`` history items (the "input" rule).

    ``hist`` (B, L) is left-aligned with ``lengths`` real items per row, as built by history_matrix.
    """
    pos = torch.arange(hist.shape[1], device=hist.device)[None, :]
    inside = (pos < lengths[:, None]) & (pos >= lengths[:, None] - window)
    cols = torch.where(inside, hist, torch.zeros_like(hist))  # outside the window -> padding column
    mask = torch.zeros(hist.shape[0], num_cols, dtype=torch.bool, device=hist.device)
    mask.scatter_(1, cols, True)
    mask[:, 0] = False
    return mask


def _exclusion_mask(split: Split, stage: str, idx: np.ndarray, num_cols: int, device) -> torch.Tensor:
    """Bool (B, num_cols) marking every item of each user's full stage history (the "history" rule)."""
    starts, lengths, extra, _ = _stage_arrays(split, stage, idx)
    total = int(lengths.sum())
    rows = np.repeat(np.arange(len(idx)), lengths)
    # positions of the concatenated CSR segments: start of own segment + offset within it
    seg_begin = np.cumsum(lengths) - lengths
    flat = np.repeat(starts - seg_begin, lengths) + np.arange(total)
    cols = split.train.items[flat]
    if extra is not None:
        rows = np.concatenate([rows, np.arange(len(idx))])
        cols = np.concatenate([cols, extra])
    mask = torch.zeros(len(idx), num_cols, dtype=torch.bool, device=device)
    mask[torch.from_numpy(rows).to(device), torch.from_numpy(cols).to(device)] = True
    return mask


def _select_users(split: Split, users) -> np.ndarray:
    n = len(split.eval_users)
    if users is None:
        return np.arange(n)
    if isinstance(users, (int, np.integer)) and not isinstance(users, bool):
        if users < 1:
            raise ValueError(f"users as a count must be positive, got {users}")
        return np.arange(min(int(users), n))
    idx = np.asarray(users)
    if idx.ndim != 1 or idx.dtype.kind not in "iu":
        raise ValueError(
            "users must be None, a positive count, or a 1-D integer array of indices into split.eval_users; "
            f"got {type(users).__name__} with dtype {idx.dtype} and shape {idx.shape}"
        )
    if len(idx) == 0:
        raise ValueError("users selects no user")
    if idx.min() < 0 or idx.max() >= n:
        bad = idx[(idx < 0) | (idx >= n)][0]
        raise ValueError(f"users holds index {int(bad)}, outside 0..{n - 1} (indices into split.eval_users)")
    return idx.astype(np.int64)


def _check_rules(exclude) -> tuple[str, ...]:
    rules = (exclude,) if isinstance(exclude, str) else tuple(exclude)
    if not rules:
        raise ValueError(f"exclude names no rule; rules: {', '.join(RULES)}")
    for rule in rules:
        if rule not in RULES:
            raise ValueError(f"unknown exclusion rule {rule!r}; rules: {', '.join(RULES)}")
    if len(set(rules)) != len(rules):
        raise ValueError(f"exclusion rules repeat: {rules}")
    return rules


def input_window(scorer, max_len: int) -> int:
    """How many of the user's last history items the scorer's input holds (the "input" rule)."""
    window = getattr(scorer, "history_window", None)
    window = window(max_len) if callable(window) else (window or max_len)
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or not 1 <= window <= max_len:
        raise ValueError(f"{type(scorer).__name__}.history_window gave {window!r}; expected 1..{max_len}")
    return int(window)


def evaluate(
    scorer,
    split: Split,
    stage: str = "test",
    ks: Sequence[int] = (5, 10, 20),
    exclude: str | Sequence[str] = DEFAULT_RULES,
    max_len: int = 50,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    users=None,
    group_by_length: bool = True,
) -> EvalResult:
    """Rank every item for each evaluated user and report Recall@k / NDCG@k.

    Args:
        scorer: object with ``score(histories, lengths) -> scores`` (see the module docstring).
        split: a leave-one-out :class:`~sarbench.data.Split`.
        stage: ``"valid"`` (history = train sequence, target = validation item) or ``"test"``
            (history = train sequence + validation item, target = test item).
        ks: cut-offs; the result holds ``"R@k"`` and ``"N@k"`` for each.
        exclude: the exclusion rule, or several (the first is the primary one that fills
            ``metrics``/``ranks``): ``"input"`` (ids in the scorer's input window, the authors'
            rule), ``"history"`` (the full history) or ``"none"``; the target stays a candidate.
        max_len: width of the history matrix handed to the scorer; each user's last
            ``min(len, max_len)`` items.
        batch_size: users per scorer call.
        device: where the histories, lengths and exclusion masks are placed.
        users: ``None`` for all evaluated users, an int ``n`` for the first ``n`` of them (smoke
            runs), or an integer array of indices into ``split.eval_users``.
        group_by_length: score users in order of history length (the results are returned in the
            order of ``users`` either way); ``False`` scores them in the given order. Only speed
            differs: see tests/test_evaluate.py.

    Returns:
        :class:`EvalResult` with mean metrics, per-user metrics and ranks aligned with ``users``
        (dataset user indices).

    Raises:
        ValueError: on a bad argument, or a scorer output of the wrong shape.
    """
    if not isinstance(split, Split):
        raise ValueError(f"split must be a sarbench.data.Split, got {type(split).__name__}")
    if not callable(getattr(scorer, "score", None)):
        raise ValueError(f"scorer must have a score(histories, lengths) method; {type(scorer).__name__} has none")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if stage not in STAGES:
        raise ValueError(f"stage must be 'valid' or 'test', got {stage!r}")
    ks = _check_ks(ks)
    rules = _check_rules(exclude)
    idx = _select_users(split, users)
    if len(idx) == 0:
        raise ValueError(f"split of {split.dataset.name!r} has no evaluable user (all sequences shorter than 3)")
    device = torch.device(device)
    num_cols = split.dataset.num_items + 1
    # Users are scored in order of history length, so that a batch's rows are about equally long and a
    # scorer can drop the padding columns no row of the batch uses (SequentialRecommender.score does);
    # every user is scored on its own row, so the order moves no number, and the ranks are put back in
    # the order of ``idx`` at the end.
    hist_all, len_all, tgt_all = history_matrix(split, stage, max_len, idx)
    order = np.argsort(len_all, kind="stable") if group_by_length else np.arange(len(idx))
    idx_in, idx = idx, idx[order]
    hist_all, len_all, tgt_all = hist_all[order], len_all[order], tgt_all[order]
    window = input_window(scorer, max_len) if "input" in rules else max_len
    hist_all, len_all, tgt_all = (torch.from_numpy(a) for a in (hist_all, len_all, tgt_all))
    # Scorers with user embeddings (SSE-PT) declare ``uses_users`` and get the dataset user indices.
    user_ids = torch.from_numpy(split.eval_users[idx]) if getattr(scorer, "uses_users", False) else None

    ranks: dict[str, list] = {rule: [] for rule in rules}
    with torch.no_grad():
        for lo in range(0, len(idx), batch_size):
            hi = min(lo + batch_size, len(idx))
            hist = hist_all[lo:hi].to(device)
            lengths = len_all[lo:hi].to(device)
            if user_ids is None:
                scores = scorer.score(hist, lengths)
            else:
                scores = scorer.score(hist, lengths, users=user_ids[lo:hi].to(device))
            if not isinstance(scores, torch.Tensor) or scores.ndim != 2:
                raise ValueError(
                    f"{type(scorer).__name__}.score must return a (B, num_items + 1) tensor, got "
                    f"{type(scores).__name__} of shape {tuple(getattr(scores, 'shape', ()))}"
                )
            if scores.shape[0] != hi - lo or scores.shape[1] < num_cols:
                raise ValueError(
                    f"{type(scorer).__name__}.score returned shape {tuple(scores.shape)} for {hi - lo} users; "
                    f"expected ({hi - lo}, >= {num_cols}) (ids 0..{num_cols - 1})"
                )
            scores = scores[:, :num_cols]  # extra tokens (MASK, unused ids) are never ranked
            targets = tgt_all[lo:hi].to(scores.device)
            for rule in rules:  # one scoring pass, every rule
                if rule == "input":
                    mask = _window_mask(hist.to(scores.device), lengths.to(scores.device), window, num_cols)
                elif rule == "history":
                    mask = _exclusion_mask(split, stage, idx[lo:hi], num_cols, scores.device)
                else:
                    mask = None
                ranks[rule].append(ranks_from_scores(scores, targets, mask).cpu())
            logger.debug("evaluated users %d..%d of %d", lo, hi, len(idx))

    back = np.empty_like(order)
    back[order] = np.arange(len(order))  # sorted position of each user of idx_in
    idx = idx_in
    ranks_by_rule = {rule: torch.cat(r).numpy()[back] for rule, r in ranks.items()}
    per_user_by_rule = {rule: metric_table_per_user(r, ks) for rule, r in ranks_by_rule.items()}
    metrics_by_rule = {rule: {name: float(v.mean()) for name, v in pu.items()} for rule, pu in per_user_by_rule.items()}
    primary = rules[0]
    logger.info(
        "%s %s on %d users (exclusion %s): %s",
        split.dataset.name,
        stage,
        len(idx),
        primary,
        ", ".join(f"{k}={v:.4f}" for k, v in metrics_by_rule[primary].items()),
    )
    return EvalResult(
        metrics=metrics_by_rule[primary],
        per_user=per_user_by_rule[primary],
        users=split.eval_users[idx].copy(),
        stage=stage,
        exclusion=primary,
        num_users=len(idx),
        ranks=ranks_by_rule[primary],
        ks=ks,
        max_len=int(max_len),
        window=int(window),
        ranks_by_rule=ranks_by_rule,
        metrics_by_rule=metrics_by_rule,
    )
