"""Speed kernels for the model in sar.py: dropout and attention-with-dropout written for the CPU.

Nothing here changes what is computed; each kernel equals the composed torch ops it replaces (the
tests check values and gradients). sar.py calls them; a reader of the model can skip this file.

Why they exist: on CPU, the attention probabilities (batch x heads x L x L; 40 MB per layer on
ml-1m) dominate memory traffic. Composing torch ops makes about 14 passes over them per layer,
forward and backward; ``dropout_attention`` makes 4 forward and 3 backward. Dropout masks come from
random bytes with in-place integer ops, several times cheaper than torch's Bernoulli draw, and a
uint8 factor multiplies faster than masked_fill. The price: a drop probability rounded to a
multiple of 1/128 (0.2 -> 26/128 = 0.203; 0.5 exact), listed in the README's differences.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def _drop_threshold(p: float) -> int:
    """The drop probability as t/128 with t in 1..127, the resolution of ``_keep_mask``."""
    return min(127, max(1, round(p * 128)))


def _keep_mask(shape, threshold: int, device) -> torch.Tensor:
    """uint8 0/1 mask, 0 with probability threshold / 128, from random bytes.

    Each int64 from the generator gives eight 7-bit uniform numbers u; keep = (u + 128 - t) >> 7
    is 1 exactly when u >= t.
    """
    n = math.prod(shape)
    bytes_ = torch.empty((n + 7) // 8, dtype=torch.int64, device=device).random_()
    u = bytes_.view(torch.uint8)[:n].view(shape)
    return u.bitwise_and_(127).add_(128 - threshold).bitwise_right_shift_(7)


class _ByteDropout(torch.autograd.Function):
    """Dropout with the mask of ``_keep_mask``; kept values are scaled by 1 / (1 - p_effective)."""

    @staticmethod
    def forward(ctx, x, threshold: int):
        keep = _keep_mask(x.shape, threshold, x.device)
        ctx.save_for_backward(keep)
        ctx.scale = 128.0 / (128 - threshold)
        return (x * keep).mul_(ctx.scale)

    @staticmethod
    def backward(ctx, grad):
        (keep,) = ctx.saved_tensors
        return (grad * keep).mul_(ctx.scale), None


def dropout(x, p: float, training: bool):
    """F.dropout, with the cheaper byte-mask variant on CPU (see _ByteDropout)."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or not x.requires_grad:
        return F.dropout(x, p, training=True)
    return _ByteDropout.apply(x, _drop_threshold(p))


class Dropout(nn.Module):
    """nn.Dropout through :func:`dropout`."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x):
        return dropout(x, self.p, self.training)


def additive_bias(allowed: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """A bool mask as a float bias for the scores: 0 where allowed, the most negative float elsewhere.

    Finite rather than -inf: a query with no allowed key (a padding query under a local window) gets
    a uniform softmax instead of NaN, and padding rows never reach the loss. A mask that was only
    broadcast over the queries (AE) stays one row per user, so the bias is as small as the mask.
    """
    if allowed.stride(2) == 0:
        allowed = allowed[:, :, :1]
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(~allowed, torch.finfo(dtype).min)


class _DropoutAttention(torch.autograd.Function):
    """softmax(q k^T * scale + bias) with dropout on the probabilities, then @ v; batched (n, L, hs).

    The dropout mask drops without rescaling; the 1 / keep factor is applied to the (much smaller)
    output instead.
    """

    @staticmethod
    def forward(ctx, q, k, v, bias, threshold: int, scale: float):
        probs = torch.baddbmm(bias, q, k.transpose(1, 2), alpha=scale).softmax(dim=-1)
        keep = _keep_mask(probs.shape, threshold, q.device)
        kept = probs * keep
        keep_scale = 128.0 / (128 - threshold)
        ctx.save_for_backward(q, k, v, probs, kept, keep)
        ctx.scale, ctx.keep_scale = scale, keep_scale
        return torch.bmm(kept, v).mul_(keep_scale)

    @staticmethod
    def backward(ctx, grad_y):
        q, k, v, probs, kept, keep = ctx.saved_tensors
        grad_y = grad_y * ctx.keep_scale
        grad_v = torch.bmm(kept.transpose(1, 2), grad_y)
        grad_kept = torch.bmm(grad_y, v.transpose(1, 2)) * keep
        grad_scores = torch._softmax_backward_data(grad_kept, probs, -1, probs.dtype)
        grad_q = torch.bmm(grad_scores, k).mul_(ctx.scale)
        grad_k = torch.bmm(grad_scores.transpose(1, 2), q).mul_(ctx.scale)
        return grad_q, grad_k, grad_v, None, None, None


def dropout_attention(q, k, v, bias, p: float):
    """Attention with dropout on the probabilities; q, k, v (B, H, L, hs), bias broadcastable to (B, H, L, L).

    Same distribution as the composed ops: the drop probability is rounded to 1/128 like ``dropout``.
    """
    B, H, L, hs = q.shape
    threshold = _drop_threshold(p)
    Lq = bias.shape[2]  # 1 when the bias does not vary over queries
    if bias.shape[0] == 1 and bias.shape[1] == 1:
        bias = bias.reshape(1, Lq, L)
    else:
        bias = bias.expand(B, H, Lq, L).reshape(B * H, Lq, L)
    y = _DropoutAttention.apply(q.reshape(B * H, L, hs), k.reshape(B * H, L, hs), v.reshape(B * H, L, hs),
                                bias, threshold, 1.0 / math.sqrt(hs))
    return y.view(B, H, L, hs)
