"""Speed kernels for the model in sar.py: dropout and attention-with-dropout written for the CPU.

Nothing here changes what is computed; each kernel equals the composed torch ops it replaces (the
tests check values and gradients). sar.py calls them; a reader of the model can skip this file.

Why they exist: on CPU, the attention probabilities (batch x heads x L x L; 40 MB per layer on
ml-1m) dominate memory traffic. Composing torch ops makes about 14 passes over them per layer,
forward and backward; ``dropout_attention`` makes 4 forward and 4 backward. Dropout masks come from
random bytes with in-place integer ops, several times cheaper than torch's Bernoulli draw, and a
uint8 factor multiplies faster than masked_fill. The drop probability is the configured one: a
7-bit number u per unit decides all but the units with u equal to floor(128 p), and those (1 in
128) get a float uniform draw of their own, so a unit is dropped with probability p to float32
resolution, as torch's own dropout (tests/test_model.py measures it). Only public torch APIs are
used.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def _keep_mask(shape, p: float, device) -> torch.Tensor:
    """uint8 0/1 mask, 0 with probability ``p`` (0 < p <= 1), from random bytes.

    A unit's uniform number is U = (u + r) / 128 with u a 7-bit integer (eight of them from each
    int64 the generator gives; its top bit is always 0, so each byte keeps 7 bits) and r in [0, 1).
    It is dropped when U < p: when u < t = floor(128 p), or u == t and r < 128 p - t. Only the units
    with u == t (1 in 128) need r, drawn for them alone as float uniforms.
    """
    n = math.prod(shape)
    bytes_ = torch.empty((n + 7) // 8, dtype=torch.int64, device=device).random_()
    u = bytes_.view(torch.uint8)[:n].bitwise_and_(127)
    scaled = p * 128.0
    t = int(math.floor(scaled))
    frac = scaled - t
    if frac == 0.0:  # p a multiple of 1/128: u decides alone
        return u.ge(t).view(torch.uint8).view(shape)
    keep = u.gt(t)
    if t < 128:
        edge = torch.nonzero(u.eq_(t)).squeeze(1)  # u is not read again: compare in place
        keep[edge] = torch.rand(len(edge), device=device) >= frac
    return keep.view(torch.uint8).view(shape)


class _ByteDropout(torch.autograd.Function):
    """Dropout with the mask of ``_keep_mask``; kept values are scaled by 1 / (1 - p)."""

    @staticmethod
    def forward(ctx, x, p: float):
        keep = _keep_mask(x.shape, p, x.device)
        ctx.save_for_backward(keep)
        ctx.scale = 1.0 / (1.0 - p)
        return (x * keep).mul_(ctx.scale)

    @staticmethod
    def backward(ctx, grad):
        (keep,) = ctx.saved_tensors
        return (grad * keep).mul_(ctx.scale), None


def dropout(x, p: float, training: bool):
    """F.dropout, with the cheaper byte-mask variant on CPU (see _ByteDropout)."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or not x.requires_grad or p >= 1.0:
        return F.dropout(x, p, training=True)
    return _ByteDropout.apply(x, p)


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
    def forward(ctx, q, k, v, bias, p: float, scale: float):
        probs = torch.baddbmm(bias, q, k.transpose(1, 2), alpha=scale).softmax(dim=-1)
        keep = _keep_mask(probs.shape, p, q.device)
        kept = probs * keep
        keep_scale = 1.0 / (1.0 - p)
        ctx.save_for_backward(q, k, v, probs, kept, keep)
        ctx.scale, ctx.keep_scale = scale, keep_scale
        return torch.bmm(kept, v).mul_(keep_scale)

    @staticmethod
    def backward(ctx, grad_y):
        q, k, v, probs, kept, keep = ctx.saved_tensors
        grad_y = grad_y * ctx.keep_scale
        grad_v = torch.bmm(kept.transpose(1, 2), grad_y)
        # softmax backward: d scores = probs * (g - sum(g * probs)), with g the gradient of the probabilities
        grad_scores = torch.bmm(grad_y, v.transpose(1, 2)).mul_(keep).mul_(probs)
        grad_scores.addcmul_(probs, grad_scores.sum(dim=-1, keepdim=True), value=-1.0)
        grad_q = torch.bmm(grad_scores, k).mul_(ctx.scale)
        grad_k = torch.bmm(grad_scores.transpose(1, 2), q).mul_(ctx.scale)
        return grad_q, grad_k, grad_v, None, None, None


def dropout_attention(q, k, v, bias, p: float):
    """Attention with dropout on the probabilities; q, k, v (B, H, L, hs), bias broadcastable to (B, H, L, L).

    Same distribution as the composed ops (``dropout`` on the probabilities, then ``@ v``).
    """
    B, H, L, hs = q.shape
    if p >= 1.0:  # everything dropped, as F.dropout(p=1)
        return torch.zeros_like(q)
    Lq = bias.shape[2]  # 1 when the bias does not vary over queries
    if bias.shape[0] == 1 and bias.shape[1] == 1:
        bias = bias.reshape(1, Lq, L)
    else:
        bias = bias.expand(B, H, Lq, L).reshape(B * H, Lq, L)
    y = _DropoutAttention.apply(q.reshape(B * H, L, hs), k.reshape(B * H, L, hs), v.reshape(B * H, L, hs),
                                bias, p, 1.0 / math.sqrt(hs))
    return y.view(B, H, L, hs)
