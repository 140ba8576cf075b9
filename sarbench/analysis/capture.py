"""Capturing attention for the study: which users, their post-softmax maps, distances, spectra, and the
uniform attention over a mask (the mask-only reference). See study.py for what is measured.
"""

from __future__ import annotations

import numpy as np
import torch

#: Test users analysed per model (a seeded choice when a dataset has more).
MAX_USERS = 1000
#: Singular values kept per matrix for Figure 3 (indices 0..20, as the paper's figure).
SPECTRUM_K = 21


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
    """Post-softmax attention of a batch of evaluation inputs, in the layout the measures (measures.py) expect.

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
    uniform bidirectional one. Padded rows and columns are left out, as in measures.py.

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
    from ..models.sar import attention_mask

    allowed = attention_mask(torch.ones(1, n, dtype=torch.bool), config.attention, config.heads,
                             config.local_window, config.local_heads).allowed[0]  # (H or 1, n, n)
    allowed = allowed.expand(config.heads, n, n).to(torch.float64)
    return allowed / allowed.sum(-1, keepdim=True)
