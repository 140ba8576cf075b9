"""The attention study: which models, their attention on test users, and its measures (Tables 2-3, Figures 1-3, 5).

The study compares three models per dataset (the rows of the paper's Tables 2 and 3):

- ``vanilla-AE``: the Table-4 AE case (bidirectional, BERT4Rec-like; 2 heads in the presets).
- ``local-AE``: the same AE network with a LOCKER-style local head: the last of its 2 heads only
  sees keys with ``|i - j| <= 2`` (``model_overrides={"local_window": 2, "local_heads": 1}``).
- ``vanilla-AR``: the Table-4 AR case (causal, SASRec-like; 1 head in the presets).

**What is measured.** For up to :data:`MAX_USERS` test users (a seeded choice among the evaluated
users), every model gets its evaluation input for the test stage (:func:`sarbench.evaluate.history_matrix`
and the model's ``eval_inputs``): AR reads the history, AE reads the last ``max_len - 1`` history
items plus an appended ``[MASK]``. The post-softmax attention of every layer and head is captured
and cropped to the user's real positions (``inputs != 0``, a prefix because of tail padding).
Per (user, layer, head) matrix:

- **sparsity**: :func:`sarbench.analysis.attention_sparsity` (L1/L2, Eq. 5; smaller = sparser);
- **rank**: :func:`sarbench.analysis.attention_rank` (noise-based hard threshold, Eqs. 7-9) with
  ``sigma = SIGMA = 1e-4`` and the paper's threshold. The paper does not give its sigma; 1e-4 is the
  value reports/math_findings.md (section 2) shows to keep the threshold above the noise bulk for every
  block up to 200 x 200, so ``k`` counts structure, not noise;
- **distance**: the mean attention distance, ``(1/n) sum_i sum_j A_ij |i - j|``, the expected
  distance between a query and the key it attends to, averaged over the real query rows. It is a
  direct locality measure (small = local), used for Figure 5;
- the sorted **singular values** of the cropped matrix (the first :data:`SPECTRUM_K`), averaged
  over users, for Figure 3.

The table values are the means over all matrices (``aggregate="matrix"``, measures.py's default):
every user, layer and head counts once.

**Mask-only reference.** Both measures depend on the mask alone, before any learning: a row-
stochastic ``n x n`` block has ``S = 1 / (n ||A||_F)``, and the uniform attention over the allowed
keys gives ``S = 1/n`` for a bidirectional mask but about ``1 / (n sqrt(ln n))`` for a causal one.
A causal matrix is therefore "sparser" by construction. For each model the study also computes
both measures of the uniform attention over the same users with the same masks
(``ref_sparsity``, ``ref_rank``), so that a reader can tell how much of a difference is learnt.
Note too that an AE input is one position longer than the AR input of the same user whenever the
history is shorter than ``max_len`` (the appended ``[MASK]``), and ``S`` shrinks with the length.

**Comparability.** Our numbers are set beside the paper's, with the relative difference. A dataset
that is not the paper's version, the synthetic dataset and every smoke-scale result are labelled
``not comparable`` (:func:`sarbench.report.comparability`).

Entry points: :func:`analyse_model` (one model, here); ``study_case`` (one stored case, cached next
to the results store: cache.py); ``summary_frame``, ``paper_table``, ``write_study_tables``,
``sparsity_order`` and ``rank_order`` (tables.py). Capturing the attention (the users, the maps,
distances and spectra) is capture.py.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..evaluate import history_matrix
from .measures import _torch_threads as _analysis_torch_threads
from .capture import (MAX_USERS, SPECTRUM_K, attention_distance, capture_attention, select_users, singular_spectrum,
                      uniform_attention)
from .measures import attention_rank, attention_sparsity

log = logging.getLogger(__name__)

#: Rows of Tables 2 and 3, in the paper's order.
MODELS: tuple[str, ...] = ("vanilla-AE", "local-AE", "vanilla-AR")
#: The local head of Local-AE: the last of the heads sees |i - j| <= 2 (LOCKER-style, as the authors' local_attn).
LOCAL_OVERRIDES: dict = {"local_window": 2, "local_heads": 1}
#: Noise standard deviation of the hard-threshold rank (see the module docstring).
SIGMA = 1e-4
#: Users whose singular values are averaged for Figure 3 (the first of the seeded selection).
SPECTRUM_USERS = 100
#: Bump when the measures change, so that cached analyses are recomputed.
ANALYSIS_VERSION = 2
#: Measures of a summary, as named in :func:`summary_frame`.
MEASURES: tuple[str, ...] = ("sparsity", "rank", "distance")
#: The paper table of each measure that has one.
PAPER_TABLES: dict[str, str] = {"sparsity": "table2", "rank": "table3"}

__all__ = [
    "ANALYSIS_VERSION",
    "AttentionMeasures",
    "LOCAL_OVERRIDES",
    "MAX_USERS",
    "MEASURES",
    "MODELS",
    "SIGMA",
    "SPECTRUM_K",
    "SPECTRUM_USERS",
    "analyse_model",
    "attention_distance",
    "capture_attention",
    "case_kwargs",
    "pick_user",
    "select_users",
    "singular_spectrum",
    "uniform_attention",
    "user_attention",
]


# --------------------------------------------------------------------------------------------------
# Which cases
# --------------------------------------------------------------------------------------------------


def case_kwargs(model: str, dataset: str, seed: int = 0) -> dict:
    """The ``run(...)``/``run_case(...)`` arguments of one row of the study on ``dataset``.

    The vanilla rows are the vanilla benchmark's own cases (same case ids, so stored results are
    reused); Local-AE is its own case of table ``analysis``.

    Example:
        >>> case_kwargs("local-AE", "ml-1m")["model_overrides"]
        {'local_window': 2, 'local_heads': 1}
        >>> case_kwargs("vanilla-AR", "beauty")["table"]
        'vanilla'
    """
    if model == "vanilla-AE":
        return {"table": "vanilla", "dataset": dataset, "design": "vanilla", "attention": "AE", "seed": seed}
    if model == "vanilla-AR":
        return {"table": "vanilla", "dataset": dataset, "design": "vanilla", "attention": "AR", "seed": seed}
    if model == "local-AE":
        return {"table": "analysis", "dataset": dataset, "design": "vanilla", "attention": "AE", "seed": seed,
                "model_overrides": dict(LOCAL_OVERRIDES), "variant": "local"}
    raise KeyError(f"unknown study model {model!r}; known: {', '.join(MODELS)}")


# --------------------------------------------------------------------------------------------------
# The measures of one model
# --------------------------------------------------------------------------------------------------


@dataclass
class AttentionMeasures:
    """The attention measures of one model over a set of test users.

    Per-matrix arrays have shape ``(users, layers, heads)``; ``users`` are indices into
    ``split.eval_users``, ``lengths`` the real positions of each user's input (AE: with its
    ``[MASK]``).
    """

    users: np.ndarray
    lengths: np.ndarray
    sparsity: np.ndarray
    rank: np.ndarray
    distance: np.ndarray
    spectrum: np.ndarray  # (layers, heads, SPECTRUM_K): mean over users of the sorted singular values
    ref_sparsity: np.ndarray  # (users, heads): the uniform attention over the allowed keys
    ref_rank: np.ndarray  # (users, heads)
    sigma: float = SIGMA
    seed: int = 0
    info: dict = field(default_factory=dict)  # model, dataset, case id, ... (free form, JSON-able)

    def summary(self) -> dict[str, float]:
        """Means over all matrices: ``sparsity, rank, distance, rel_distance, ref_sparsity, ref_rank``,
        plus counts. ``rel_distance`` is the distance divided by the matrix's number of positions, a
        locality measure that compares across datasets of different lengths (uniform bidirectional
        attention gives about 1/3)."""
        return {
            "sparsity": float(self.sparsity.mean()),
            "rank": float(self.rank.mean()),
            "distance": float(self.distance.mean()),
            "rel_distance": float((self.distance / self.lengths[:, None, None]).mean()),
            "ref_sparsity": float(self.ref_sparsity.mean()),
            "ref_rank": float(self.ref_rank.mean()),
            "users": int(len(self.users)),
            "matrices": int(self.sparsity.size),
            "mean_length": float(self.lengths.mean()),
        }

    def per_user(self, measure: str) -> np.ndarray:
        """One value per user: the mean of ``measure`` over that user's matrices."""
        if measure not in MEASURES:
            raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
        values = getattr(self, measure)
        return values.reshape(len(values), -1).mean(1)

    def save(self, path: str | os.PathLike) -> Path:
        """Write to a ``.npz`` file (``info`` as JSON inside); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")  # per process, as checkpoints
        np.savez_compressed(
            tmp, users=self.users, lengths=self.lengths, sparsity=self.sparsity, rank=self.rank,
            distance=self.distance, spectrum=self.spectrum, ref_sparsity=self.ref_sparsity,
            ref_rank=self.ref_rank, sigma=np.float64(self.sigma), seed=np.int64(self.seed),
            info=np.array(json.dumps(self.info, sort_keys=True)),
        )
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "AttentionMeasures":
        """Read a file written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as z:
            return cls(users=z["users"], lengths=z["lengths"], sparsity=z["sparsity"], rank=z["rank"],
                       distance=z["distance"], spectrum=z["spectrum"], ref_sparsity=z["ref_sparsity"],
                       ref_rank=z["ref_rank"], sigma=float(z["sigma"]), seed=int(z["seed"]),
                       info=json.loads(str(z["info"])))


def analyse_model(model, split, *, max_users: int = MAX_USERS, seed: int = 0, sigma: float = SIGMA,
                  batch_size: int = 100, spectrum_users: int = SPECTRUM_USERS, threads: int | None = 1,
                  info: Mapping | None = None) -> AttentionMeasures:
    """Capture the test-stage attention of up to ``max_users`` users and measure every matrix.

    Users are :func:`select_users` ``(len(split.eval_users), max_users, seed)``, processed in
    batches of ``batch_size`` users of similar history length (shortest first); the returned arrays
    are in selection order. The rank noise comes from one ``numpy.random.default_rng(seed)`` stream
    over the batches in processing order (deterministic). The mask-only reference is computed once per distinct
    length (the uniform matrix depends on nothing else); its rank noise comes from
    ``default_rng([seed + 1, length])``.

    The mean spectrum (Figure 3) is taken over the first ``spectrum_users`` users of the (random)
    selection only: it costs one more SVD per matrix and a mean over 100 users is smooth enough
    for a plot. ``threads`` is the torch thread count during the call (default 1, restored
    afterwards): the work is many small matrix products and SVDs, and on a loaded 2-core machine
    extra threads made an SVD batch many times slower in CPU time (OpenMP spin-waiting).
    """
    cfg = model.cfg
    idx = select_users(len(split.eval_users), max_users, seed)
    hist_all, lens_all, _ = history_matrix(split, "test", cfg.max_len, idx)
    # Batches of similar length, each cut to its longest history: with tail padding and absolute
    # positions counted from the left, the real block of a row does not depend on how much padding
    # follows it, and the attention costs O(width^2). Results go back to selection order below.
    order = np.argsort(lens_all, kind="stable")
    spectrum_rows = np.zeros(len(idx), dtype=bool)
    spectrum_rows[:spectrum_users] = True
    gen = np.random.default_rng(seed)
    parts: dict[str, list] = {k: [] for k in ("lengths", "sparsity", "rank", "distance", "spectrum")}
    with torch.no_grad(), _torch_threads(threads):
        for start in range(0, len(idx), batch_size):
            rows = order[start:start + batch_size]
            width = int(lens_all[rows].max())
            attn, real, _ = capture_attention(model, hist_all[rows, :width], lens_all[rows])
            parts["lengths"].append(real)
            parts["sparsity"].append(attention_sparsity(attn, real, aggregate="none", threads=None).numpy())
            parts["rank"].append(attention_rank(attn, real, sigma, gen, aggregate="none", threads=None).numpy())
            parts["distance"].append(attention_distance(attn, real, aggregate="none").numpy())
            take = spectrum_rows[rows]
            if take.any():
                parts["spectrum"].append(singular_spectrum(attn[torch.as_tensor(take)], real[take]).numpy())
        back = np.argsort(order, kind="stable")  # processing order -> selection order
        lengths = np.concatenate(parts["lengths"])[back]
        ref_s, ref_k = _mask_reference(cfg, lengths, sigma, seed + 1)
    measures = AttentionMeasures(
        users=idx, lengths=lengths,
        sparsity=np.concatenate(parts["sparsity"])[back], rank=np.concatenate(parts["rank"])[back],
        distance=np.concatenate(parts["distance"])[back], spectrum=np.concatenate(parts["spectrum"]).mean(0),
        ref_sparsity=ref_s, ref_rank=ref_k, sigma=float(sigma), seed=int(seed), info=dict(info or {}),
    )
    log.info("attention of %s: %d users, sparsity %.4f, rank %.2f", measures.info.get("model", "model"),
             len(idx), measures.sparsity.mean(), measures.rank.mean())
    return measures


# one thread-count guard for the whole analysis: the one in measures.py
_torch_threads = _analysis_torch_threads


def _mask_reference(cfg, lengths: np.ndarray, sigma: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sparsity and rank of the uniform attention over the allowed keys, per (user, head)."""
    ref_s = np.zeros((len(lengths), cfg.heads))
    ref_k = np.zeros((len(lengths), cfg.heads))
    mask = (cfg.attention, cfg.heads, cfg.local_window, cfg.local_heads)
    for n in np.unique(lengths):
        users = lengths == n
        ref_s[users], ref_k[users] = _uniform_measures(mask, int(n), float(sigma), int(seed))
    return ref_s, ref_k


@functools.lru_cache(maxsize=4096)
def _uniform_measures(mask: tuple, n: int, sigma: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-head (sparsity, rank) of the uniform attention of one mask and length.

    The rank noise comes from ``default_rng([seed, n])``, so the value does not depend on which
    other lengths occur (and can be cached across models and datasets).
    """
    from ..models.sar import SARConfig

    attention, heads, window, local_heads = mask
    cfg = SARConfig(num_items=1, attention=attention, heads=heads, hidden=heads,
                    local_window=window, local_heads=local_heads)
    # Heads with the same mask have the same uniform matrix: measure each distinct one once.
    local = window > 0 and local_heads > 0
    is_local = np.arange(heads) >= heads - min(local_heads, heads) if local else np.zeros(heads, dtype=bool)
    kinds = sorted(set(is_local.tolist()))  # [False], [True] or [False, True]
    first = [int(np.flatnonzero(is_local == kind)[0]) for kind in kinds]
    uni = uniform_attention(cfg, n)[first][None, None]  # (1, 1, distinct heads, n, n)
    s = attention_sparsity(uni, n, aggregate="none").numpy()[0, 0]
    k = attention_rank(uni, n, sigma, np.random.default_rng([seed, n]), aggregate="none").numpy()[0, 0]
    pick = np.array([kinds.index(flag) for flag in is_local.tolist()])
    s, k = s[pick], k[pick]
    s.setflags(write=False)
    k.setflags(write=False)
    return s, k


def pick_user(users: np.ndarray, lengths: np.ndarray, target: int = 20) -> int:
    """The user (an entry of ``users``) whose length is closest to ``target``; ties go to the first.

    The paper's figures show single users with about 20 real positions, a size where a heat-map
    stays readable.

    Example:
        >>> pick_user(np.array([4, 7, 9]), np.array([50, 18, 22]))
        7
    """
    users, lengths = np.asarray(users), np.asarray(lengths)
    if len(users) == 0 or len(users) != len(lengths):
        raise ValueError(f"need one length per user and at least one user, got {len(users)} and {len(lengths)}")
    return int(users[int(np.argmin(np.abs(lengths - target)))])


def user_attention(model, split, user: int) -> tuple[np.ndarray, list[str]]:
    """The cropped attention of one evaluated user (index into ``split.eval_users``), for the figures.

    Returns ``(attn (layers, heads, n, n) float64, position labels)``; the labels are the positions
    ``0..n-1`` with ``"M"`` for an AE model's ``[MASK]``.
    """
    hist, lens, _ = history_matrix(split, "test", model.cfg.max_len, np.array([user]))
    attn, real, inputs = capture_attention(model, hist, lens)
    n = int(real[0])
    labels = [str(i) for i in range(n)]
    if int(inputs[0, n - 1]) == model.cfg.mask_token:
        labels[-1] = "M"
    return attn[0, :, :, :n, :n].double().numpy(), labels
