"""The paper's two attention measures: L1/L2 sparsity (Section 3) and noise-based hard-threshold rank (Section 4).

Everything here is a pure function of its inputs. The rank measure also takes an explicit random
generator for its noise, and the attention functions set torch's thread count for the duration of a
call and then restore it.

**Sparsity** (paper Eq. 5 with p = 2): for a vector or a flattened matrix ``x`` with ``N`` entries,

    S(x) = (||x||_1 / N) / ||x||_2.

Smaller means sparser. For x != 0, ``1/N <= S(x) <= 1/sqrt(N)``: the minimum is reached by a one-hot
vector and the maximum by a constant vector. ``S`` does not change when x is scaled or permuted.

**Hard-threshold rank** (paper Eqs. 7-10): perturb the n x n matrix ``A`` with Gaussian noise,
``Y = A + E`` with ``E_ij ~ N(0, sigma^2)`` i.i.d. Compute a threshold ``tau`` and count the singular
values of ``Y`` above it: ``k = #{i : s_i(Y) > tau}``. The approximation is the rank-k truncated SVD
**of A** (Eq. 10 uses the U, Sigma, V of A from Eq. 6, not those of Y). The threshold read from Eq. 8 is

    tau = sqrt( 2 * (sigma^2 + ||Y||_F^2 / n^2) * log(2n) ),

where ``||Sigma(Y)||_F = ||Y||_F``. This has the form of a universal threshold ``s * sqrt(2 log N)``
(Donoho and Johnstone), with ``N = 2n`` and ``s^2 = sigma^2 + mean(Y_ij^2)``. See
``reports/math_findings.md`` for how it was reconstructed, how it compares with the Gavish-Donoho
threshold ``(4/sqrt(3)) sqrt(n) sigma``, and why the paper's error bound (Eq. 11) is false as stated.

**Attention tensors** come from a model as post-softmax probabilities of shape
``(users, layers, heads, L, L)`` (or ``(layers, heads, L, L)`` for one user), padded at the tail. Only
the leading ``length x length`` block of a user's matrix is attention between real items. Padded
query rows and padded key columns are cropped away before either measure is computed. Structural
zeros inside the block, such as the upper triangle of a causal (AR) matrix, stay in: they are real
zero attention.

Aggregation (``aggregate=``), shared by :func:`attention_sparsity` and :func:`attention_rank`:

- ``"matrix"`` (default): the measure of every (user, layer, head) matrix, then the unweighted mean
  over all of them.
- ``"head_mean"``: average each (user, layer)'s cropped matrices over the heads first, then take the
  measure, then the mean over (user, layer). The authors' code has a commented-out line that
  suggests they did this ("average along head as needed").
- ``"none"``: no reduction and no head averaging. Returns the per-(user, layer, head) values, shape
  ``(users, layers, heads)``, or ``(layers, heads)`` for single-user input.

The default is ``"matrix"``. ``S`` is quasi-concave on non-negative inputs (a linear function over a
convex one), so ``S(mean of heads) >= min over heads of S``. Two heads that are each sharp, but look
at different items, average to a flat matrix. Head-averaging therefore measures head *agreement* as
much as sparsity. The head-averaged ``S`` is never below the sparsest head's ``S``, and it can exceed
every head's ``S`` (the unit test has two heads, each at 0.354, that average to 0.5). A one-head
model is unaffected. This matters for the paper's AE vs AR comparison: the authors' preset best settings use
2 heads for AE and 1 head for AR, so head-averaging would bias the comparison towards the paper's
conclusion (AR sparser). Taking the mean over matrices weights every user equally, like the per-user
ranking metrics. With either option, ``S`` of an n x n row-stochastic block lies in
``[n**-1.5, 1/n]``, so datasets or users with different lengths are on different scales.
"""

from __future__ import annotations

import logging
import math
from contextlib import contextmanager
from typing import Literal, NamedTuple

import numpy as np
import torch

log = logging.getLogger(__name__)

__all__ = [
    "AGGREGATES",
    "THRESHOLDS",
    "HardThresholdResult",
    "sparsity",
    "attention_sparsity",
    "noise_threshold",
    "hard_threshold_rank",
    "attention_rank",
]

AGGREGATES = ("matrix", "head_mean", "none")
THRESHOLDS = ("paper", "gavish_donoho")

Aggregate = Literal["matrix", "head_mean", "none"]
Threshold = Literal["paper", "gavish_donoho"]


# --------------------------------------------------------------------------------------------------
# Sparsity
# --------------------------------------------------------------------------------------------------


def sparsity(x, dim: int | tuple[int, ...] | None = None):
    """L1/L2 sparsity ``S(x) = (||x||_1 / N) / ||x||_2`` (paper Eq. 5, p = 2); smaller is sparser.

    ``N`` is the number of entries reduced over: all entries when ``dim`` is None (a matrix is
    flattened), otherwise the product of the sizes of ``dim``. Absolute values are used, as in the
    paper's ``|x_i|``. The computation divides by ``max |x|`` first. ``S`` is scale invariant, so this
    changes nothing mathematically, and it keeps ``||x||_2`` from overflowing or underflowing.

    Args:
        x: a ``torch.Tensor`` or ``numpy.ndarray`` (or anything ``numpy.asarray`` accepts) of real numbers.
        dim: the axis or axes to reduce. None reduces over all of them.

    Returns:
        A 0-d tensor or numpy float when ``dim`` is None, otherwise the reduced tensor or array,
        computed in float64. The container type follows the input: torch in gives torch out,
        anything else gives numpy.

    Raises:
        ValueError: if ``x`` is empty, holds a NaN or an infinity, or a reduced slice is all zeros.
            ``S(0)`` is 0/0 and has no meaningful value.

    Example:
        >>> float(sparsity([0.0, 0.0, 1.0, 0.0]))  # one-hot: 1/N
        0.25
        >>> float(sparsity([3.0, 3.0, 3.0, 3.0]))  # constant: 1/sqrt(N)
        0.5
        >>> import torch
        >>> round(sparsity(torch.eye(2)).item(), 12)  # identity 2x2: (2/4)/sqrt(2)
        0.353553390593
    """
    if isinstance(x, torch.Tensor):
        t = x.double()
        if t.numel() == 0:
            raise ValueError("sparsity: x is empty")
        if not bool(torch.isfinite(t).all()):
            raise ValueError("sparsity: x holds NaN or infinite values")
        a = t.abs()
        scale = a.amax(dim=dim, keepdim=True) if dim is not None else a.amax()
        if bool((scale == 0).any()):
            raise ValueError("sparsity: undefined for an all-zero x (or an all-zero slice along dim)")
        a = a / scale
        n = a.numel() if dim is None else math.prod(a.shape[d] for d in _as_tuple(dim))
        l1 = a.sum(dim=dim) if dim is not None else a.sum()
        l2 = torch.linalg.vector_norm(a, dim=dim) if dim is not None else torch.linalg.vector_norm(a)
        return (l1 / n) / l2
    arr = np.asarray(x, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("sparsity: x is empty")
    if not np.isfinite(arr).all():
        raise ValueError("sparsity: x holds NaN or infinite values")
    a = np.abs(arr)
    axis = None if dim is None else _as_tuple(dim)
    scale = a.max(axis=axis, keepdims=True)
    if (scale == 0).any():
        raise ValueError("sparsity: undefined for an all-zero x (or an all-zero slice along dim)")
    a = a / scale
    n = a.size if axis is None else math.prod(a.shape[d] for d in axis)
    return (a.sum(axis=axis) / n) / np.sqrt((a * a).sum(axis=axis))


def _as_tuple(dim) -> tuple[int, ...]:
    return (dim,) if isinstance(dim, int) else tuple(dim)


# --------------------------------------------------------------------------------------------------
# Attention tensors: validation and cropping
# --------------------------------------------------------------------------------------------------


def _attention_batch(attn, length) -> tuple[torch.Tensor, np.ndarray, bool]:
    """Validate ``attn``/``length`` and return ``(attn as (U, layers, heads, L, L) tensor, lengths, single)``."""
    t = attn.detach().cpu() if isinstance(attn, torch.Tensor) else torch.as_tensor(np.asarray(attn))
    if t.ndim not in (4, 5):
        raise ValueError(
            f"attn must have shape (layers, heads, L, L) or (users, layers, heads, L, L), got {tuple(t.shape)}"
        )
    if t.shape[-1] != t.shape[-2]:
        raise ValueError(f"attn must hold square query x key matrices, got last dims {tuple(t.shape[-2:])}")
    single = t.ndim == 4
    if single:
        t = t.unsqueeze(0)
    users, max_len = t.shape[0], t.shape[-1]
    lengths = np.asarray(length.cpu() if isinstance(length, torch.Tensor) else length)
    if lengths.ndim == 0:
        lengths = np.full(users, lengths.item())
    if lengths.ndim != 1 or len(lengths) != users:
        raise ValueError(f"length must be an int or hold one length per user ({users}), got shape {lengths.shape}")
    if lengths.dtype.kind not in "iu":
        if not np.all(lengths == np.round(lengths)):
            raise ValueError(f"length must hold integers, got {lengths[:5]}...")
        lengths = lengths.astype(np.int64)
    bad = np.flatnonzero((lengths < 1) | (lengths > max_len))
    if len(bad):
        u = int(bad[0])
        raise ValueError(f"length of user {u} is {int(lengths[u])}, outside 1..L={max_len}")
    if not t.is_floating_point():
        t = t.double()
    return t, lengths.astype(np.int64), single


def _check_finite(per_matrix: torch.Tensor, users: np.ndarray, n: int) -> None:
    """Raise naming the first user whose per-matrix value (a sum over its real block) is not finite."""
    finite = torch.isfinite(per_matrix).flatten(1).all(dim=1)
    if not bool(finite.all()):
        u = int(users[int((~finite).nonzero()[0])])
        raise ValueError(f"attn of user {u} holds NaN or infinite values in its real {n}x{n} block")


def _groups(lengths: np.ndarray):
    """Yield ``(n, user indices)`` for every distinct length, so equal-size blocks are batched."""
    for n in np.unique(lengths):
        yield int(n), np.flatnonzero(lengths == n)


def _check_aggregate(aggregate: str) -> None:
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")


def _reduce(values: torch.Tensor, aggregate: str, single: bool):
    if aggregate == "none":
        return values[0] if single else values
    return float(values.mean())


@contextmanager
def _torch_threads(threads: int | None):
    """Run torch (and MKL/OpenMP) with ``threads`` intra-op threads for the duration, then restore.

    The work here is many small SVDs and reductions, and extra threads gain nothing on it. On a
    2-core machine with other load they cost a lot: OpenMP's spin-waiting made a batch 4-5 times
    slower in CPU time than with one thread. ``None`` leaves torch's setting alone.
    """
    previous = torch.get_num_threads()
    if threads is None or threads == previous:
        yield
        return
    if not (isinstance(threads, int) and threads >= 1):
        raise ValueError(f"threads must be a positive int or None, got {threads!r}")
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def attention_sparsity(attn, length, aggregate: Aggregate = "matrix", *, threads: int | None = 1):
    """L1/L2 sparsity of post-softmax attention, cropped to each user's real positions.

    Every user's ``length x length`` leading block of every (layer, head) matrix is flattened and
    measured with :func:`sparsity`. Tail padding means the real items are at positions 0..length-1.
    Padded query rows and padded key columns are not attention and never enter the measure. The
    entries of a row-stochastic block sum to ``length``, so ``S = 1 / (length * ||A||_F)``, which lies
    in ``[length**-1.5, 1/length]``. ``S`` therefore depends on the length, and users of different
    lengths are not on the same scale.

    Args:
        attn: ``(layers, heads, L, L)`` for one user or ``(users, layers, heads, L, L)``, torch or
            numpy. A model that returns ``(layers, users, heads, L, L)`` needs ``.transpose(0, 1)`` first.
            A CUDA tensor is copied to the CPU, where the measure is computed.
        length: the number of real positions, an int (the same for all users) or one per user.
        aggregate: ``"matrix"`` (default): the mean over all (user, layer, head) matrices of their ``S``.
            ``"head_mean"``: average each (user, layer)'s blocks over the heads, then take the mean
            of ``S`` over (user, layer). ``"none"``: the per-matrix values, shape
            ``(users, layers, heads)``, or ``(layers, heads)`` for one user. The module docstring
            explains why ``"matrix"`` is the default.
        threads: the torch thread count during the call (default 1), restored afterwards. None
            leaves it alone. See :func:`attention_rank`.

    Returns:
        A Python float, or with ``aggregate="none"`` a float64 tensor.

    Example:
        >>> import torch
        >>> a = torch.zeros(1, 1, 4, 4)
        >>> a[0, 0, :2, :2] = torch.eye(2)  # 2 real positions, each attending to itself
        >>> a[0, 0, 2:, :] = 0.25           # padded query rows: ignored
        >>> round(attention_sparsity(a, length=2), 12)  # S(eye(2)) = (2/4)/sqrt(2)
        0.353553390593
    """
    _check_aggregate(aggregate)
    t, lengths, single = _attention_batch(attn, length)
    users, layers, heads = t.shape[:3]
    with _torch_threads(threads):
        out = torch.empty(users, layers, heads, dtype=torch.float64)
        for n, idx in _groups(lengths):
            block = t[torch.as_tensor(idx), :, :, :n, :n].double()  # (g, layers, heads, n, n)
            if aggregate == "head_mean":
                block = block.mean(dim=2, keepdim=True)
            a = block.abs_().flatten(-2)  # (g, layers, h, n*n); the block is a copy
            l1 = a.sum(-1)
            _check_finite(l1, idx, n)  # a NaN or an infinity anywhere in a block shows in its sum
            zero = (l1 == 0).flatten(1).any(dim=1)
            if bool(zero.any()):
                u = int(idx[int(zero.nonzero()[0])])
                raise ValueError(f"attn of user {u} has an all-zero real {n}x{n} block; sparsity is undefined")
            l2 = torch.linalg.vector_norm(a, dim=-1)
            s = (l1 / (n * n)) / l2
            tiny = l2 < 1e-150  # squares may have underflowed: redo those blocks rescaled
            if bool(tiny.any()):
                s[tiny] = sparsity(a[tiny], dim=-1)  # raises on an all-zero block
            out[torch.as_tensor(idx), :, : s.shape[2]] = s
    if aggregate == "head_mean":
        out = out[:, :, :1]
    return _reduce(out, aggregate, single)


# --------------------------------------------------------------------------------------------------
# Hard-threshold rank
# --------------------------------------------------------------------------------------------------


class HardThresholdResult(NamedTuple):
    """What :func:`hard_threshold_rank` returns. It unpacks as ``k, A_hat, tau, singular_values``."""

    k: int  # number of singular values of Y = A + E above tau (Eq. 9)
    A_hat: torch.Tensor | np.ndarray  # rank-k truncated SVD of A (Eq. 10), or of Y with approximate="Y"
    tau: float  # the threshold (Eq. 8)
    singular_values: torch.Tensor | np.ndarray  # of Y, descending: the values compared with tau


def noise_threshold(Y, sigma: float, rule: Threshold = "paper") -> torch.Tensor:
    """The hard threshold ``tau`` for a batch of noisy square matrices ``Y`` of shape ``(..., n, n)``.

    - ``rule="paper"`` (Eq. 8 as reconstructed): ``tau = sqrt(2 (sigma^2 + ||Y||_F^2 / n^2) log(2n))``.
    - ``rule="gavish_donoho"``: ``tau = (4 / sqrt(3)) sqrt(n) sigma``. This is the optimal hard
      threshold for an n x n matrix in white noise of known level sigma (Gavish and Donoho, 2014).
      It is 0 when sigma is 0.

    Args:
        Y: ``(..., n, n)`` tensor or array.
        sigma: standard deviation of the Gaussian noise entries (variance ``sigma**2``), >= 0.
        rule: one of :data:`THRESHOLDS`.

    Returns:
        A float64 tensor of shape ``Y.shape[:-2]``.

    Example:
        >>> import torch, math
        >>> t = noise_threshold(torch.eye(2, dtype=torch.float64), sigma=0.0)
        >>> abs(t.item() - math.sqrt(2 * (2 / 4) * math.log(4))) < 1e-15
        True
    """
    _check_sigma(sigma)
    y = torch.as_tensor(Y, dtype=torch.float64)
    if y.ndim < 2 or y.shape[-1] != y.shape[-2]:
        raise ValueError(f"Y must hold square matrices (..., n, n), got shape {tuple(y.shape)}")
    n = y.shape[-1]
    if rule == "paper":
        # sqrt(2 log 2n) * sqrt(sigma^2 + ||Y||_F^2 / n^2), written with a rescaled norm and hypot so
        # that tiny or huge entries neither underflow nor overflow when squared.
        fro = torch.linalg.matrix_norm(y)
        extreme = ~torch.isfinite(fro) | (fro < 1e-150)  # the squares overflowed or underflowed
        if bool(extreme.any()):
            ye = y[extreme]
            scale = ye.abs().amax(dim=(-2, -1)).clamp_min(torch.finfo(torch.float64).tiny)
            fro[extreme] = torch.linalg.matrix_norm(ye / scale[..., None, None]) * scale
        return math.sqrt(2.0 * math.log(2 * n)) * torch.hypot(torch.full_like(fro, float(sigma)), fro / n)
    if rule == "gavish_donoho":
        return torch.full(y.shape[:-2], 4.0 / math.sqrt(3.0) * math.sqrt(n) * sigma, dtype=torch.float64)
    raise ValueError(f"threshold rule must be one of {THRESHOLDS} or a number, got {rule!r}")


def _check_sigma(sigma) -> None:
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")


def _generator(generator) -> np.random.Generator:
    if isinstance(generator, np.random.Generator):
        return generator
    if generator is None or (isinstance(generator, (int, np.integer)) and not isinstance(generator, bool)):
        return np.random.default_rng(generator)
    raise ValueError(f"generator must be a numpy.random.Generator, an int seed or None, got {generator!r}")


def _noise(g: np.random.Generator, n: int, sigma: float) -> torch.Tensor:
    """The next ``sigma * standard_normal((n, n))`` draw of ``g``, as a float64 tensor."""
    return torch.from_numpy(sigma * g.standard_normal((n, n)))


def hard_threshold_rank(
    A,
    sigma: float,
    generator: np.random.Generator | int | None = None,
    *,
    threshold: Threshold | float = "paper",
    approximate: Literal["A", "Y"] = "A",
    noise=None,
) -> HardThresholdResult:
    """Noise-based hard-threshold rank of a square matrix (paper Section 4.1, Eqs. 7-10).

    1. ``Y = A + E`` with ``E = sigma * generator.standard_normal((n, n))`` (float64; Eq. 7), or
       ``E = noise`` if given.
    2. ``tau`` from :func:`noise_threshold` (Eq. 8), or ``threshold`` itself if it is a number.
    3. ``k = #{i : s_i(Y) > tau}`` (Eq. 9, strict inequality).
    4. ``A_hat`` is the rank-k truncated SVD of ``A``: ``U_k Sigma_k V_k^T`` with the singular triplets of
       ``A`` (Eq. 10 with the U, Sigma, V of Eq. 6; the paper's Figure 2 also reconstructs the attention
       matrix itself). ``approximate="Y"`` gives the classical hard-thresholding estimator instead, the
       rank-k truncated SVD of ``Y``. That is the estimator the oracle inequalities in the literature
       are about.

    The paper's error bound (Eq. 11), ``||A - A_hat||_F^2 <= min_r (||A - A_r||_F^2 + r sigma^2)``, does
    **not** hold in general. ``reports/math_findings.md`` gives counterexamples and the versions that
    do hold.

    Args:
        A: ``(n, n)`` tensor or array.
        sigma: noise standard deviation, >= 0 (the variance is ``sigma**2``).
        generator: a ``numpy.random.Generator`` (advanced by one ``standard_normal((n, n))`` draw),
            an int seed for ``numpy.random.default_rng``, or None (fresh entropy). Ignored when
            ``noise`` is given.
        threshold: ``"paper"``, ``"gavish_donoho"`` or an explicit number ``tau >= 0``.
        approximate: ``"A"`` (the paper) or ``"Y"``, the matrix whose truncated SVD is ``A_hat``.
        noise: an explicit ``(n, n)`` noise matrix ``E``. When given, ``sigma`` only enters ``tau``.

    Returns:
        :class:`HardThresholdResult` ``(k, A_hat, tau, singular_values)``. ``A_hat`` and
        ``singular_values`` (of ``Y``, descending) are float64 and have the input's container type.
        Everything is computed on the CPU; a CUDA tensor is copied there first.

    Example:
        >>> import torch
        >>> A = torch.diag(torch.tensor([1.0, 0.5, 0.01], dtype=torch.float64))
        >>> res = hard_threshold_rank(A, sigma=0.0)   # tau = sqrt(2 (1.2501/9) log 6) = 0.7055...
        >>> res.k, round(res.tau, 4)
        (1, 0.7055)
        >>> torch.allclose(res.A_hat, torch.diag(torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)))
        True
    """
    as_numpy = not isinstance(A, torch.Tensor)
    a = torch.as_tensor(np.asarray(A) if as_numpy else A.detach().cpu()).to(torch.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0:
        raise ValueError(f"A must be a non-empty square matrix, got shape {tuple(a.shape)}")
    if not bool(torch.isfinite(a).all()):
        raise ValueError("A holds NaN or infinite values")
    if approximate not in ("A", "Y"):
        raise ValueError(f"approximate must be 'A' or 'Y', got {approximate!r}")
    _check_sigma(sigma)
    n = a.shape[0]
    if noise is None:
        e = _noise(_generator(generator), n, sigma)
    else:
        e = torch.as_tensor(np.asarray(noise) if not isinstance(noise, torch.Tensor) else noise.detach().cpu())
        e = e.to(torch.float64)
        if e.shape != a.shape:
            raise ValueError(f"noise must have the shape of A {tuple(a.shape)}, got {tuple(e.shape)}")
    y = a + e
    tau = _tau(y, sigma, threshold)
    s_y = torch.linalg.svdvals(y)
    k = int((s_y > tau).sum())
    u, s, vh = torch.linalg.svd(a if approximate == "A" else y)
    a_hat = (u[:, :k] * s[:k]) @ vh[:k]
    if as_numpy:
        return HardThresholdResult(k, a_hat.numpy(), float(tau), s_y.numpy())
    return HardThresholdResult(k, a_hat, float(tau), s_y)


def _tau(y: torch.Tensor, sigma: float, threshold) -> torch.Tensor:
    if isinstance(threshold, str):
        return noise_threshold(y, sigma, threshold)
    if isinstance(threshold, (int, float)) and not isinstance(threshold, bool) and math.isfinite(threshold) \
            and threshold >= 0:
        return torch.full(y.shape[:-2], float(threshold), dtype=torch.float64)
    raise ValueError(f"threshold must be one of {THRESHOLDS} or a finite number >= 0, got {threshold!r}")


def attention_rank(
    attn,
    length,
    sigma: float,
    generator: np.random.Generator | int | None = None,
    aggregate: Aggregate = "matrix",
    *,
    threshold: Threshold | float = "paper",
    threads: int | None = 1,
):
    """Hard-threshold rank ``k`` of attention matrices, cropped to each user's real positions.

    Each user's ``length x length`` leading block (see :func:`attention_sparsity`) of every matrix
    gets its own noise. ``k`` comes from :func:`hard_threshold_rank`. Blocks of equal length are
    stacked and their singular values come from one batched ``torch.linalg.svdvals`` call (float64).
    Only ``k`` is computed here, so no reconstruction is formed.

    Noise order: the matrices are visited user by user in input order, then layer by layer, then
    head by head (with ``"head_mean"``, one averaged matrix per layer). Each one takes the next
    ``standard_normal((n, n))`` draw from the generator, scaled by ``sigma``. Calling
    :func:`hard_threshold_rank` on the same matrices in that order with the same generator therefore
    gives the same ``k``. Passing one ``numpy.random.Generator`` to successive batches continues the
    stream.

    Args:
        attn: ``(layers, heads, L, L)`` or ``(users, layers, heads, L, L)`` post-softmax attention.
        length: the number of real positions, an int or one per user.
        sigma: noise standard deviation (variance ``sigma**2``), >= 0. The paper does not give its
            value. With ``threshold="paper"``, ``tau`` stays above the noise bulk edge
            ``2 sqrt(n) sigma`` only while ``sigma < ||A||_F sqrt(log(2n) / 2) / n**1.5`` (about).
            Above that, ``k`` counts noise: for ``A = 0`` it counts 32%, 62% and 78% of the
            singular values at n = 10, 50 and 200. Row-stochastic blocks have ``||A||_F >= 1``, so
            ``sigma = 1e-4`` is safe for every n <= 200. See reports/math_findings.md.
        generator: a ``numpy.random.Generator``, an int seed or None.
        aggregate: ``"matrix"`` (default; the mean ``k`` over all (user, layer, head) matrices),
            ``"head_mean"`` (the rank of each (user, layer)'s head-averaged block, then the mean), or
            ``"none"`` (an int64 tensor of the per-matrix ``k``, shape ``(users, layers, heads)``, or
            ``(layers, heads)`` for single-user input).
        threshold: ``"paper"``, ``"gavish_donoho"`` or an explicit ``tau``.
        threads: the torch thread count during the call (default 1), restored afterwards. None
            leaves it alone. It is a process-wide setting, so do not run other torch work
            concurrently in other Python threads.

    Returns:
        A Python float (mean ``k``), or an int64 tensor with ``aggregate="none"``.
    """
    _check_aggregate(aggregate)
    _check_sigma(sigma)
    t, lengths, single = _attention_batch(attn, length)
    _tau(torch.zeros(1, 1, dtype=torch.float64), sigma, threshold)  # validate the rule before the work
    g = _generator(generator)
    users, layers, heads = t.shape[:3]
    h = 1 if aggregate == "head_mean" else heads
    # Noise in input order, independent of how the users are grouped below. One (layers, h, n, n) draw
    # per user gives the same numbers as layers * h successive (n, n) draws.
    noise = [g.standard_normal((layers, h, int(n), int(n))) for n in lengths]
    with _torch_threads(threads):
        out = torch.empty(users, layers, h, dtype=torch.int64)
        for n, idx in _groups(lengths):
            block = t[torch.as_tensor(idx), :, :, :n, :n].double()
            if aggregate == "head_mean":
                block = block.mean(dim=2, keepdim=True)
            _check_finite(block.sum(dim=(-2, -1)), idx, n)
            y = block.add_(torch.from_numpy(np.stack([noise[i] for i in idx])), alpha=sigma)
            tau = _tau(y, sigma, threshold)
            s = torch.linalg.svdvals(y)  # (g, layers, h, n)
            out[torch.as_tensor(idx)] = (s > tau.unsqueeze(-1)).sum(-1)
    log.debug("attention_rank: %d users, %d distinct lengths, sigma=%g", users, len(np.unique(lengths)), sigma)
    if aggregate == "none":
        return out[0] if single else out
    return float(out.double().mean())
