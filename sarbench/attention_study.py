"""Tables 2-3 of the paper from trained models: attention sparsity and hard-threshold rank.

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
  value analysis.py shows to keep the threshold above the noise bulk for every block up to 200 x 200,
  so ``k`` counts structure, not noise;
- **distance**: the mean attention distance, ``(1/n) sum_i sum_j A_ij |i - j|``, the expected
  distance between a query and the key it attends to, averaged over the real query rows. It is a
  direct locality measure (small = local), used for Figure 5;
- the sorted **singular values** of the cropped matrix (the first :data:`SPECTRUM_K`), averaged
  over users, for Figure 3.

The table values are the means over all matrices (``aggregate="matrix"``, analysis.py's default):
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

Entry points: :func:`analyse_model` (one model), :func:`study_case` (one stored case, cached next
to the results store), :func:`summary_frame`, :func:`paper_table`, :func:`write_study_tables`,
:func:`sparsity_order` and :func:`rank_order`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .analysis import _torch_threads as _analysis_torch_threads
from .analysis import attention_rank, attention_sparsity
from .evaluate import history_matrix
from .report import comparability, to_latex, to_markdown

log = logging.getLogger(__name__)

#: Rows of Tables 2 and 3, in the paper's order.
MODELS: tuple[str, ...] = ("vanilla-AE", "local-AE", "vanilla-AR")
#: The local head of Local-AE: the last of the heads sees |i - j| <= 2 (LOCKER-style, as the authors' local_attn).
LOCAL_OVERRIDES: dict = {"local_window": 2, "local_heads": 1}
#: Noise standard deviation of the hard-threshold rank (see the module docstring).
SIGMA = 1e-4
#: Test users analysed per model (a seeded choice when a dataset has more).
MAX_USERS = 1000
#: Singular values kept per matrix for Figure 3 (indices 0..20, as the paper's figure).
SPECTRUM_K = 21
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
    "OrderCheck",
    "SIGMA",
    "SPECTRUM_K",
    "SPECTRUM_USERS",
    "analyse_model",
    "attention_distance",
    "capture_attention",
    "case_kwargs",
    "paper_table",
    "pick_user",
    "rank_order",
    "select_users",
    "singular_spectrum",
    "sparsity_order",
    "study_case",
    "summary_frame",
    "uniform_attention",
    "user_attention",
    "write_study_tables",
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
# Capturing attention
# --------------------------------------------------------------------------------------------------


def select_users(n_eval: int, max_users: int = MAX_USERS, seed: int = 0) -> np.ndarray:
    """Sorted indices into ``split.eval_users``: all of them, or a seeded choice of ``max_users``.

    Example:
        >>> select_users(5, 10).tolist()
        [0, 1, 2, 3, 4]
        >>> len(select_users(5000, 1000)), select_users(5000, 1000).tolist() == select_users(5000, 1000).tolist()
        (1000, True)
    """
    if n_eval < 1:
        raise ValueError(f"there are no evaluated users to analyse (n_eval={n_eval})")
    if max_users < 1:
        raise ValueError(f"max_users must be >= 1, got {max_users}")
    if n_eval <= max_users:
        return np.arange(n_eval, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(n_eval, max_users, replace=False)).astype(np.int64)


def capture_attention(model, histories, lengths) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    """Post-softmax attention of a batch of evaluation inputs, in the layout analysis.py expects.

    Args:
        model: a :class:`~sarbench.models.sar.SelfAttentiveRecommender`.
        histories: ``(B, max_len)`` left-aligned test histories (numpy or torch, as
            :func:`~sarbench.evaluate.history_matrix` gives them).
        lengths: ``(B,)`` history lengths.

    Returns:
        ``(attn, real, inputs)``: ``attn`` float32 ``(B, layers, heads, L, L)``; ``real`` the number of
        real positions per user (history plus the ``[MASK]`` for AE); ``inputs`` the model input ids.

    Raises:
        ValueError: if a row's real positions are not a prefix (the crop would be wrong).
    """
    device = next(model.parameters()).device
    h = torch.as_tensor(np.asarray(histories), dtype=torch.long, device=device)
    n = torch.as_tensor(np.asarray(lengths), dtype=torch.long, device=device)
    maps, inputs = model.attention_maps(h, n)
    real_mask = (inputs != 0).cpu()
    real = real_mask.sum(1)
    prefix = torch.arange(real_mask.shape[1])[None, :] < real[:, None]
    if not bool((prefix == real_mask).all()):
        row = int((prefix != real_mask).any(1).nonzero()[0])
        raise ValueError(f"row {row} of the evaluation input is not tail-padded: real positions "
                         f"{real_mask[row].nonzero().flatten().tolist()[:10]}...; cannot crop its attention")
    return maps.transpose(0, 1).float().cpu(), real.numpy().astype(np.int64), inputs.cpu()


def attention_distance(attn, length, aggregate: str = "matrix"):
    """Mean attention distance ``(1/n) sum_{i<n} sum_{j<n} A_ij |i - j|`` of each cropped matrix.

    The expected distance from a query to the key it attends to, averaged over the ``n`` real query
    rows (for a row-stochastic block). 0 for a diagonal matrix, ``(n^2 - 1) / (3n)`` for the
    uniform bidirectional one. Padded rows and columns are left out, as in analysis.py.

    Args:
        attn: ``(layers, heads, L, L)`` or ``(users, layers, heads, L, L)``.
        length: the real positions, an int or one per user.
        aggregate: ``"matrix"`` (mean over all matrices, a float) or ``"none"`` (per matrix,
            shape ``(users, layers, heads)`` or ``(layers, heads)``).

    Example:
        >>> import torch
        >>> a = torch.zeros(1, 1, 3, 3)
        >>> a[0, 0, :2, :2] = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # each looks at its neighbour
        >>> attention_distance(a, 2)
        1.0
    """
    if aggregate not in ("matrix", "none"):
        raise ValueError(f"aggregate must be 'matrix' or 'none', got {aggregate!r}")
    t = attn if isinstance(attn, torch.Tensor) else torch.as_tensor(np.asarray(attn))
    single = t.ndim == 4
    if single:
        t = t.unsqueeze(0)
    if t.ndim != 5 or t.shape[-1] != t.shape[-2]:
        raise ValueError(f"attn must have shape (layers, heads, L, L) or (users, layers, heads, L, L), "
                         f"got {tuple(attn.shape)}")
    users, L = t.shape[0], t.shape[-1]
    n = torch.as_tensor(np.broadcast_to(np.asarray(length, dtype=np.int64), (users,)).copy())
    if bool(((n < 1) | (n > L)).any()):
        u = int(((n < 1) | (n > L)).nonzero()[0])
        raise ValueError(f"length of user {u} is {int(n[u])}, outside 1..L={L}")
    pos = torch.arange(L)
    dist = (pos[:, None] - pos[None, :]).abs().to(torch.float32)  # (L, L)
    real = pos[None, :] < n[:, None]  # (U, L)
    keep = real[:, None, :].to(torch.float32)  # (U, 1, L): real keys (padded query rows are dropped below)
    row = (t.float() * (dist * keep)[:, None, None]).sum(-1).double()  # (U, layers, heads, L)
    out = (row * real[:, None, None, :]).sum(-1) / n[:, None, None].double()
    if not bool(torch.isfinite(out).all()):
        raise ValueError("attn holds NaN or infinite values in a real block")
    if aggregate == "none":
        return out[0] if single else out
    return float(out.mean())


def singular_spectrum(attn, length, k: int = SPECTRUM_K) -> torch.Tensor:
    """The ``k`` largest singular values of each cropped matrix, zero-padded when ``n < k``.

    Returns a float64 tensor ``(users, layers, heads, k)`` (``(layers, heads, k)`` for one user).
    """
    t = attn if isinstance(attn, torch.Tensor) else torch.as_tensor(np.asarray(attn))
    single = t.ndim == 4
    if single:
        t = t.unsqueeze(0)
    lengths = np.broadcast_to(np.asarray(length, dtype=np.int64), (t.shape[0],))
    out = torch.zeros(*t.shape[:3], k, dtype=torch.float64)
    for n in np.unique(lengths):
        idx = torch.as_tensor(np.flatnonzero(lengths == n))
        s = torch.linalg.svdvals(t[idx, :, :, :n, :n].double())
        m = min(k, int(n))
        out[idx, :, :, :m] = s[..., :m]
    return out[0] if single else out


def uniform_attention(config, n: int) -> torch.Tensor:
    """The uniform attention over the keys a model's mask allows, for ``n`` real positions.

    ``config`` is the model's :class:`~sarbench.models.sar.SARConfig`. Returns ``(heads, n, n)``
    float64, each row uniform over its allowed keys (AE: all, AR: ``j <= i``, a local head also
    ``|i - j| <= window``).

    Example:
        >>> from sarbench.models.sar import SARConfig
        >>> uniform_attention(SARConfig(num_items=5, attention="AR", heads=1), 3)[0]
        tensor([[1.0000, 0.0000, 0.0000],
                [0.5000, 0.5000, 0.0000],
                [0.3333, 0.3333, 0.3333]], dtype=torch.float64)
    """
    from .models.sar import attention_mask

    allowed = attention_mask(torch.ones(1, n, dtype=torch.bool), config.attention, config.heads,
                             config.local_window, config.local_heads).allowed[0]  # (H or 1, n, n)
    allowed = allowed.expand(config.heads, n, n).to(torch.float64)
    return allowed / allowed.sum(-1, keepdim=True)


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
        tmp = path.with_name(path.name + ".tmp.npz")
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


# one thread-count guard for the whole analysis: the one in analysis.py
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
    from .models.sar import SARConfig

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


# --------------------------------------------------------------------------------------------------
# One stored case, cached
# --------------------------------------------------------------------------------------------------


def _cache_path(folder: Path, record, max_users: int, seed: int, sigma: float) -> Path:
    params = json.dumps({"v": ANALYSIS_VERSION, "users": max_users, "seed": seed, "sigma": sigma,
                         "trained": record.timestamp}, sort_keys=True)
    tag = hashlib.sha256(params.encode()).hexdigest()[:10]
    return folder / "analysis" / f"{record.key}-{tag}.npz"


def study_case(store, record, dataset, model_label: str, *, max_users: int = MAX_USERS, seed: int = 0,
               sigma: float = SIGMA, refresh: bool = False) -> AttentionMeasures:
    """The measures of a stored case: computed from its kept weights, or read from the cache.

    The cache lives next to the results store (``<store>/analysis/<record key>-<params>.npz``). A
    record key changes with the configuration, the data and the code version, and the parameters
    include the record's timestamp (a retrained case), so a stale analysis is not reused.

    Args:
        store: the :class:`~sarbench.store.ResultStore` of the record.
        record: the case's :class:`~sarbench.store.ResultRecord`.
        dataset: the :class:`~sarbench.data.SequenceDataset` the case trained on (its split is used).
        model_label: one of :data:`MODELS` (kept in ``info``).
        refresh: recompute even when a cached analysis exists.

    Raises:
        FileNotFoundError: when the case's trained weights were not kept (rerun the case).
    """
    from .cases import load_model, model_path

    path = _cache_path(Path(store.folder), record, max_users, seed, sigma)
    if path.exists() and not refresh:
        try:
            return AttentionMeasures.load(path)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("cached analysis %s is unreadable (%s); recomputing", path, exc)
    model = load_model(store, record)
    if model is None:
        raise FileNotFoundError(
            f"{record.case_id} seed {record.seed}: no trained weights at {model_path(store, record.key)}; "
            f"rerun the case (pytest ... --rerun) to keep them")
    info = {"model": model_label, "dataset": record.dataset, "case_id": record.case_id, "key": record.key,
            "scale": record.scale, "fingerprint": record.fingerprint, "N@10": record.metrics.get("N@10")}
    measures = analyse_model(model, dataset.split(), max_users=max_users, seed=seed, sigma=sigma, info=info)
    measures.save(path)
    return measures


# --------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------

SUMMARY_COLUMNS = ["model", "dataset", "scale", "fingerprint", "users", "matrices", "mean_length", "sparsity",
                   "ref_sparsity", "rank", "ref_rank", "distance", "rel_distance", "N@10", "case_id", "note"]


def summary_frame(items: Iterable[tuple[str, object, AttentionMeasures]]) -> pd.DataFrame:
    """One row per (model, dataset) from ``(model label, record, measures)`` triples.

    Columns: :data:`SUMMARY_COLUMNS`; ``note`` is :func:`sarbench.report.comparability` of the
    record (empty when comparable with the paper).
    """
    rows = []
    for label, record, m in items:
        if label not in MODELS:
            raise ValueError(f"unknown study model {label!r}; known: {', '.join(MODELS)}")
        s = m.summary()
        rows.append({"model": label, "dataset": record.dataset, "scale": record.scale,
                     "fingerprint": record.fingerprint, **{k: s[k] for k in ("users", "matrices", "mean_length",
                                                                            "sparsity", "ref_sparsity", "rank",
                                                                            "ref_rank", "distance",
                                                                            "rel_distance")},
                     "N@10": float(record.metrics.get("N@10", math.nan)), "case_id": record.case_id,
                     "note": comparability(record.dataset, record.fingerprint, record.scale)})
    frame = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    dup = frame.duplicated(["model", "dataset"])
    if dup.any():
        first = frame[dup].iloc[0]
        raise ValueError(f"more than one result for model {first.model!r} on dataset {first.dataset!r}")
    return frame


def _dataset_order(datasets: Iterable[str], paper_cols: Sequence[str]) -> list[str]:
    datasets = list(dict.fromkeys(datasets))
    return [d for d in paper_cols if d in datasets] + sorted(d for d in datasets if d not in paper_cols)


def paper_table(frame: pd.DataFrame, measure: str) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Our Table 2 (``measure="sparsity"``) or Table 3 (``"rank"``) beside the paper's.

    Args:
        frame: :func:`summary_frame` rows.
        measure: ``"sparsity"`` or ``"rank"``.

    Returns:
        ``(wide, long, notes)``. ``wide`` has one row per model (the paper's order) and, per dataset
        and for ``avg``, the columns ``<d>`` (ours), ``<d> paper`` and ``<d> diff %``
        (``(ours - paper) / paper * 100``). ``long`` has one row per (model, dataset):
        ``model, dataset, ours, paper, diff %, mask-only, ours / mask-only, note`` (mask-only: the
        measure of the uniform attention over the allowed keys, for the same users). ``notes`` are the comparability
        notes per dataset and how ``avg`` was formed.

        ``avg`` is the mean over the paper's datasets present (the paper's own avg column when all
        five are; otherwise the mean of its cells over the same datasets). With none of the paper's
        datasets present it is the mean over the datasets shown, without a paper value.
    """
    from .paper import load_table

    if measure not in PAPER_TABLES:
        raise ValueError(f"measure must be one of {tuple(PAPER_TABLES)}, got {measure!r}")
    paper = load_table(PAPER_TABLES[measure]).set_index("model")
    paper_cols = [c for c in paper.columns if c != "avg"]
    datasets = _dataset_order(frame["dataset"], paper_cols)
    ours = frame.set_index(["model", "dataset"])
    in_paper = [d for d in datasets if d in paper_cols]
    avg_over = in_paper or datasets
    long_rows, wide_rows = [], []
    for model in MODELS:
        row: dict = {"model": model}
        for d in [*datasets, "avg"]:
            if d == "avg":
                vals = [ours.loc[(model, x), measure] for x in avg_over if (model, x) in ours.index]
                value = float(np.mean(vals)) if vals and len(vals) == len(avg_over) else math.nan
                if not in_paper:
                    p = math.nan
                elif len(in_paper) == len(paper_cols):
                    p = float(paper.loc[model, "avg"])
                else:
                    p = float(paper.loc[model, in_paper].mean())
                ref = math.nan
                note = ""
            else:
                have = (model, d) in ours.index
                value = float(ours.loc[(model, d), measure]) if have else math.nan
                ref = float(ours.loc[(model, d), f"ref_{measure}"]) if have else math.nan
                p = float(paper.loc[model, d]) if d in paper_cols else math.nan
                note = str(ours.loc[(model, d), "note"]) if have else ""
            diff = (value - p) / p * 100.0 if p and math.isfinite(p) and math.isfinite(value) else math.nan
            row.update({d: value, f"{d} paper": p, f"{d} diff %": diff})
            if d != "avg":
                ratio = value / ref if ref and math.isfinite(ref) else math.nan
                long_rows.append({"model": model, "dataset": d, "ours": value, "paper": p, "diff %": diff,
                                  "mask-only": ref, "ours / mask-only": ratio, "note": note})
        wide_rows.append(row)
    wide = pd.DataFrame(wide_rows)
    long = pd.DataFrame(long_rows, columns=["model", "dataset", "ours", "paper", "diff %", "mask-only",
                                            "ours / mask-only", "note"])
    notes = []
    for d in datasets:
        reasons = sorted({n for n in frame.loc[frame.dataset == d, "note"] if n})
        notes.append(f"{d}: " + ("; ".join(reasons) if reasons else "comparable with the paper"))
    if in_paper:
        notes.append("avg: mean over the paper's datasets present (" + ", ".join(in_paper) + ")"
                     + ("" if len(in_paper) == len(paper_cols) else "; the paper's avg is recomputed over them"))
    else:
        notes.append("avg: mean over the datasets shown; the paper has no value for them")
    return wide, long, notes


TABLE_TEXT = {
    "sparsity": ("Table 2: L1/L2 sparsity of the attention matrices (smaller = sparser)",
                 "Mean over every (user, layer, head) matrix of S = (||A||_1 / N) / ||A||_2, each matrix "
                 "cropped to the user's real positions. 'mask-only' in the long table is S of the uniform "
                 "attention over the keys the mask allows, for the same users. A row-stochastic n x n block "
                 "has n^-1.5 <= S <= 1/n, so the level is set by the sequence lengths of a dataset (short "
                 "Amazon histories give large S, long ML-1M histories small S); the paper does not say how "
                 "it treated padding or lengths, so the order of the three models is the comparable part."),
    "rank": ("Table 3: rank k from noise-based hard thresholding",
             "Mean over every (user, layer, head) matrix of k = #{singular values of A + E above tau}, "
             "E ~ N(0, sigma^2), tau from the paper's Eq. 8, sigma = {sigma:g}. 'mask-only' in the long "
             "table is k of the uniform attention over the keys the mask allows, for the same users. "
             "k <= n, so short histories bound the rank; blocks of 4 or fewer positions can get k = 0 "
             "(the threshold exceeds the largest singular value)."),
}


def write_study_tables(frame: pd.DataFrame, out_dir: str | os.PathLike, *, sigma: float = SIGMA) -> list[Path]:
    """Write Tables 2 and 3 (Markdown with notes, CSV, LaTeX; wide and long) and the summary frame.

    Files: ``table2_sparsity.{md,csv,tex}``, ``table2_sparsity_long.csv``, the same for
    ``table3_rank``, and ``attention_measures.{md,csv}`` (every measure per model and dataset).
    Returns the paths written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for measure, stem in (("sparsity", "table2_sparsity"), ("rank", "table3_rank")):
        wide, long, notes = paper_table(frame, measure)
        title, text = TABLE_TEXT[measure]
        md = [f"# {title}", "", text.replace("{sigma:g}", f"{sigma:g}"), "", "Ours beside the paper's value; "
              "diff % = (ours - paper) / paper x 100.", "", to_markdown(wide), "", "Notes:", ""]
        md += [f"- {n}" for n in notes]
        md += ["", "## Per model and dataset", "", to_markdown(long), ""]
        paths.append(out / f"{stem}.md")
        paths[-1].write_text("\n".join(md), encoding="utf-8")
        wide.to_csv(out / f"{stem}.csv", index=False)
        long.to_csv(out / f"{stem}_long.csv", index=False)
        (out / f"{stem}.tex").write_text(to_latex(wide) + "\n", encoding="utf-8")
        paths += [out / f"{stem}.csv", out / f"{stem}_long.csv", out / f"{stem}.tex"]
    frame.to_csv(out / "attention_measures.csv", index=False)
    shown = frame.drop(columns=["fingerprint", "case_id"])
    (out / "attention_measures.md").write_text(
        "# Attention measures per model and dataset\n\n"
        "Means over every (user, layer, head) matrix. distance = mean |i - j| under the attention "
        "(smaller = more local); rel_distance = distance / number of positions; ref_* = the same measure of the uniform attention over the allowed "
        f"keys; N@10 = test NDCG@10 of the case; sigma = {sigma:g}.\n\n" + to_markdown(shown) + "\n",
        encoding="utf-8")
    paths += [out / "attention_measures.csv", out / "attention_measures.md"]
    return paths


# --------------------------------------------------------------------------------------------------
# The paper's ordering claims
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderCheck:
    """The outcome of an ordering claim: ``holds`` and a sentence saying what was found."""

    holds: bool
    found: str
    claim: str

    def __bool__(self) -> bool:
        return self.holds


def _fmt(values: Mapping[str, float], digits: int) -> str:
    return ", ".join(f"{m} {values[m]:.{digits}f}" for m in MODELS if m in values)


def _missing(values: Mapping[str, float]) -> list[str]:
    return [m for m in MODELS if m not in values or not math.isfinite(values[m])]


def _paired_share(per_user: Mapping[str, np.ndarray] | None, test) -> str:
    if not per_user or any(m not in per_user for m in MODELS):
        return ""
    sizes = {len(v) for v in per_user.values()}
    if len(sizes) != 1:
        return ""
    share = float(np.mean(test(*(np.asarray(per_user[m]) for m in MODELS))))
    return f"; it holds for {share:.0%} of the {sizes.pop()} users taken one by one"


def _reference(reference: Mapping[str, float] | None, holds, digits: int) -> str:
    if not reference or _missing(reference):
        return ""
    same = "the same order" if holds(reference) else "not that order"
    return f"; the uniform attention over the same masks alone gives {_fmt(reference, digits)} ({same})"


def sparsity_order(values: Mapping[str, float], per_user: Mapping[str, np.ndarray] | None = None,
                   reference: Mapping[str, float] | None = None) -> OrderCheck:
    """The paper's Table-2 claim: Vanilla-AR < Local-AE < Vanilla-AE (smaller = sparser).

    Args:
        values: mean sparsity per model label.
        per_user: optional per-user values of the same users (same order) per model; when given, the
            message also says for what share of users the order holds.
        reference: optional mask-only values (``ref_sparsity``); when given, the message also says
            whether the masks alone, with uniform attention, already give the order.

    Example:
        >>> bool(sparsity_order({"vanilla-AE": 0.04, "local-AE": 0.03, "vanilla-AR": 0.02}))
        True
        >>> sparsity_order({"vanilla-AE": 0.02, "local-AE": 0.03, "vanilla-AR": 0.04}).found
        'vanilla-AE 0.0200, local-AE 0.0300, vanilla-AR 0.0400: not AR < Local-AE < AE'
    """
    claim = "vanilla-AR < local-AE < vanilla-AE"
    missing = _missing(values)
    if missing:
        raise ValueError(f"sparsity_order needs a finite value for {', '.join(missing)}; got {dict(values)}")
    holds = values["vanilla-AR"] < values["local-AE"] < values["vanilla-AE"]
    found = f"{_fmt(values, 4)}: " + ("AR < Local-AE < AE" if holds else "not AR < Local-AE < AE")
    found += _paired_share(per_user, lambda ae, loc, ar: (ar < loc) & (loc < ae))
    found += _reference(reference, lambda v: v["vanilla-AR"] < v["local-AE"] < v["vanilla-AE"], 4)
    return OrderCheck(bool(holds), found, claim)


def rank_order(values: Mapping[str, float], per_user: Mapping[str, np.ndarray] | None = None,
               reference: Mapping[str, float] | None = None) -> OrderCheck:
    """The paper's Table-3 claim: Vanilla-AE has the lowest hard-threshold rank of the three.

    ``per_user`` and ``reference`` (mask-only ``ref_rank`` values) add to the message as in
    :func:`sparsity_order`.

    Example:
        >>> bool(rank_order({"vanilla-AE": 5.4, "local-AE": 10.6, "vanilla-AR": 8.6}))
        True
        >>> bool(rank_order({"vanilla-AE": 9.0, "local-AE": 10.6, "vanilla-AR": 8.6}))
        False
    """
    claim = "vanilla-AE lowest"
    missing = _missing(values)
    if missing:
        raise ValueError(f"rank_order needs a finite value for {', '.join(missing)}; got {dict(values)}")
    holds = values["vanilla-AE"] < min(values["local-AE"], values["vanilla-AR"])
    lowest = min(MODELS, key=lambda m: values[m])
    found = f"{_fmt(values, 2)}: " + ("vanilla-AE lowest" if holds else f"{lowest} lowest, not vanilla-AE")
    found += _paired_share(per_user, lambda ae, loc, ar: (ae < loc) & (ae < ar))
    found += _reference(reference, lambda v: v["vanilla-AE"] < min(v["local-AE"], v["vanilla-AR"]), 2)
    return OrderCheck(bool(holds), found, claim)


def measure_values(frame: pd.DataFrame, dataset: str, measure: str) -> dict[str, float]:
    """``{model: value}`` of one measure on one dataset from a :func:`summary_frame`."""
    rows = frame[frame.dataset == dataset]
    return {r.model: float(getattr(r, measure)) for r in rows.itertuples(index=False)}


def check_sane(m: AttentionMeasures, heads: int | None = None) -> list[str]:
    """Problems with a set of measures that cannot come from row-stochastic attention (empty = none).

    Checks: ``length**-1.5 <= S <= 1/length`` for every matrix (with a 1e-9 relative slack),
    ``0 <= k <= length`` and ``k >= 1`` from 8 positions on, ``0 <= distance <= length - 1``, a
    non-increasing mean spectrum whose first value is at least 1 (a row-stochastic matrix has
    ``||A||_2 >= 1``). ``k = 0`` is possible for tiny blocks: the paper's threshold
    ``||Y||_F sqrt(2 log 2n) / n`` can exceed the largest singular value (always for n = 1, where it
    is ``sqrt(2 log 2) |a|``); it is below ``||Y||_F / sqrt(n) <= s_1`` once ``2 log 2n < n``.
    """
    problems = []
    n = m.lengths.astype(np.float64)[:, None, None]
    lo, hi = n ** -1.5, 1.0 / n
    bad = (m.sparsity < lo * (1 - 1e-9)) | (m.sparsity > hi * (1 + 1e-9))
    if bad.any():
        u = int(np.argwhere(bad)[0][0])
        problems.append(f"sparsity of user {int(m.users[u])} outside [n^-1.5, 1/n] for n={int(m.lengths[u])}: "
                        f"{m.sparsity[u].ravel().tolist()}")
    bad = (m.rank < 0) | (m.rank > n) | ((m.rank < 1) & (n >= 8))
    if bad.any():
        u = int(np.argwhere(bad)[0][0])
        low = 1 if m.lengths[u] >= 8 else 0
        problems.append(f"rank of user {int(m.users[u])} outside {low}..{int(m.lengths[u])}: "
                        f"{m.rank[u].ravel().tolist()}")
    bad = (m.distance < -1e-9) | (m.distance > n - 1 + 1e-9)
    if bad.any():
        u = int(np.argwhere(bad)[0][0])
        problems.append(f"attention distance of user {int(m.users[u])} outside [0, n-1]: "
                        f"{m.distance[u].ravel().tolist()}")
    if (np.diff(m.spectrum, axis=-1) > 1e-9).any():
        problems.append("mean singular values are not sorted in descending order")
    if (m.spectrum[..., 0] < 1 - 1e-6).any():
        problems.append(f"largest mean singular value below 1: {m.spectrum[..., 0].ravel().tolist()}")
    if heads is not None and m.sparsity.shape[2] != heads:
        problems.append(f"expected {heads} heads, measured {m.sparsity.shape[2]}")
    return problems


__all__ += ["check_sane", "measure_values", "SUMMARY_COLUMNS"]
