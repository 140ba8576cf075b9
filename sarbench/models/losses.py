"""Training losses over item scores s(h, i) = h . e_i + b_i.

    ce:  cross-entropy over all N items (the paper's default).
    bpr: mean softplus(s_neg - s_pos) over sampled negatives (Rendle et al.).
    bce: -log sigmoid(s_pos) - mean log(1 - sigmoid(s_neg)) over sampled negatives (SASRec).

Cross-entropy over a large catalogue would need a (positions x N) logit tensor, which on beauty
(57K items) is tens of GB per batch in fp32. ``chunked_cross_entropy`` never materialises it: it
walks over row chunks, and because the loss is a scalar whose gradient has a closed form
(softmax - one_hot), it computes the gradients of each chunk right away in the forward pass and
keeps only (positions x d) and (N x d) gradients. That is three matmuls per chunk, the minimum.

Precision: the loss and everything summed over rows (softmax, the loss total, the weight gradient)
are computed in at least fp32. Under bf16 autocast (``TrainConfig(precision="bf16")`` on CUDA) the
logit products run in bf16 as any autocast linear layer does, their softmax and sums in fp32; the
BPR/BCE scores are computed with autocast switched off, in the dtype they are given (fp32 from the
trainer). With fp32 chosen nothing here runs in bf16.

On an accelerator the chunk loop never waits for the device (no host-device synchronisation): the
check for rows whose target probability underflowed is replaced by computing their exact value for
every row and selecting it on the device.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

# Rows of logits per chunk: small on CPU so a chunk stays in cache, large on GPU for occupancy.
CHUNK = {"cpu": 512, "cuda": 8192}


def exact_underflowed_rows(nll, logits, rows, targets, ask_host: bool):
    """``nll`` (= -log softmax(logits)[row, target] via the probabilities) with the rows where the
    target's probability underflowed to 0 (nll = inf) replaced by the exact logsumexp - logit.

    ``ask_host=True`` first asks whether any row underflowed and fixes only those rows (cheap on
    the CPU, where asking costs nothing); ``ask_host=False`` computes the exact value for every row
    and selects it on the device, so that an accelerator never waits for the host. Both give the
    same result.
    """
    if ask_host:
        if not torch.isfinite(nll).all():
            bad = ~torch.isfinite(nll)
            nll[bad] = torch.logsumexp(logits[bad], dim=1) - logits[bad, targets[bad]]
        return nll
    exact = torch.logsumexp(logits, dim=1) - logits[rows, targets]
    return torch.where(torch.isfinite(nll), nll, exact)


class _ChunkedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, weight, bias, targets, chunk, denominator):
        needs_grad = any(ctx.needs_input_grad[:3])
        P = h.shape[0]
        D = float(denominator) if denominator else float(P)  # the loss is the sum over rows / D
        acc = torch.promote_types(weight.dtype, torch.float32)  # softmax and grads in >= fp32
        on_cpu = h.device.type == "cpu"
        ctx.input_dtype = h.dtype
        # Fold the bias into the matmul: [h, 1] @ [W, b]^T; its gradient is then the last column of
        # the weight gradient, with no separate (and slow) column sum over the logits.
        if bias is not None:
            h = torch.cat([h, h.new_ones(P, 1)], dim=1)
            weight = torch.cat([weight, bias[:, None].to(weight.dtype)], dim=1)
        total = torch.zeros((), dtype=torch.float64, device=h.device)
        grad_h = torch.empty_like(h) if needs_grad else None
        grad_w = torch.zeros_like(weight, dtype=acc) if needs_grad else None
        w_h = weight.to(h.dtype)
        for start in range(0, P, chunk):
            hc, tc = h[start : start + chunk], targets[start : start + chunk]
            rows = torch.arange(len(tc), device=h.device)
            logits = (hc @ w_h.T).to(acc)
            probs = torch.softmax(logits, dim=1)
            p_target = probs[rows, tc]
            nll = exact_underflowed_rows(-torch.log(p_target), logits, rows, tc, ask_host=on_cpu)
            total += nll.sum(dtype=torch.float64)
            if needs_grad:
                probs[rows, tc] -= 1.0  # d(nll)/d(logits) = softmax - one_hot
                g = probs.to(h.dtype)
                grad_h[start : start + chunk] = (g @ w_h).div_(D)
                grad_w.addmm_(g.T.to(acc), hc.to(acc), alpha=1.0 / D)
        if needs_grad and bias is not None:
            grad_b, grad_w, grad_h = grad_w[:, -1], grad_w[:, :-1], grad_h[:, :-1]
        else:
            grad_b = None
        ctx.save_for_backward(grad_h, grad_w, grad_b)
        ctx.has_bias = bias is not None
        ctx.weight_dtype = weight.dtype
        # The loss in >= fp32 even from bf16 inputs (autocast): it is a sum over all rows.
        return (total / D).to(torch.promote_types(h.dtype, torch.float32))

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w, grad_b = ctx.saved_tensors
        gh = (grad_h * grad_out).to(ctx.input_dtype) if ctx.needs_input_grad[0] else None
        gw = (grad_w * grad_out).to(ctx.weight_dtype) if ctx.needs_input_grad[1] else None
        gb = grad_b * grad_out if (ctx.has_bias and ctx.needs_input_grad[2]) else None
        return gh, gw, gb, None, None, None


def chunked_cross_entropy(h, weight, bias, targets, chunk: int | None = None, denominator: float | None = None):
    """Cross-entropy of softmax(h @ weight.T + bias) against ``targets`` (0-based class ids).

    h (P, d), weight (C, d), bias (C,) or None, targets (P,) in 0..C-1. The mean over the P rows,
    equal to ``F.cross_entropy(h @ weight.T + bias, targets)`` (a test checks values and gradients),
    or with ``denominator`` the sum over the rows divided by it (the trainer's length-grouped
    objective), without ever holding more than ``chunk`` rows of logits.
    """
    if h.shape[0] == 0:
        raise ValueError("cross-entropy over zero positions: the batch has no training targets")
    if denominator is not None and not denominator > 0:
        raise ValueError(f"denominator must be positive, got {denominator!r}")
    chunk = chunk or CHUNK.get(h.device.type, 2048)
    return _ChunkedCrossEntropy.apply(h, weight, bias, targets, chunk, denominator)


def autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` ("cpu", "cuda", ...) in this thread."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4: no device argument
        if device_type == "cpu":
            return torch.is_autocast_cpu_enabled()
        return device_type == "cuda" and torch.is_autocast_enabled()


def _no_autocast(device_type: str):
    """A context with autocast off for ``device_type`` when it is on; else a no-op context."""
    if autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def sample_negatives(positives: torch.Tensor, num_items: int, count: int, generator=None,
                     exclude: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """``count`` uniform negatives per positive from items 1..N, never equal to that positive.

    positives (P,) item ids in 1..N -> (P, count). Draws 1..N-1 and shifts values >= the positive
    up by one: exactly uniform over the other N-1 items, with no rejection loop.

    ``exclude=(targets, rows)``: also never any item of ``targets[rows[p]]`` (targets (B, L) item
    ids, 0 = none; rows (P,) the sequence of each positive), as the authors' modular code samples
    AR negatives: uniform over the items outside the sequence's targets (redrawn until outside).
    """
    if num_items < 2:
        raise ValueError("negative sampling needs at least 2 items")
    draw = torch.randint(1, num_items, (positives.shape[0], count), device=positives.device, generator=generator)
    neg = draw + (draw >= positives[:, None]).long()
    if exclude is None:
        return neg
    targets, rows = exclude
    seen = torch.zeros(targets.shape[0], num_items + 1, dtype=torch.bool, device=targets.device)
    seen.scatter_(1, targets, True)
    seen[:, 0] = False
    if bool(seen[:, 1:].all(dim=1).any()):
        raise ValueError("a sequence's targets cover every item: no negative is left to sample")
    for _ in range(1000):
        bad = seen[rows[:, None], neg]  # (P, count)
        if not bool(bad.any()):
            return neg
        redraw = torch.randint(1, num_items + 1, neg.shape, device=neg.device, generator=generator)
        neg = torch.where(bad, redraw, neg)
    raise RuntimeError("negative sampling did not converge in 1000 redraws")


def sampled_loss(kind: str, h, weight, bias, positives, negatives, denominator: float | None = None, offset=None):
    """BPR or BCE over one positive and sampled negatives per row.

    h (P, d); weight (N, d) rows for items 1..N; positives (P,) and negatives (P, K) item ids 1..N.
    ``offset`` (P,) or None: a per-row term added to every logit of the row (SSE-PT's user term).
    Means over the P rows (and K negatives); with ``denominator``, sums divided by it in place of P.
    """
    with _no_autocast(h.device.type):  # scores in the inputs' dtype, never silently in bf16
        pos = (h * weight[positives - 1]).sum(-1)  # (P,)
        neg = torch.einsum("pd,pkd->pk", h, weight[negatives - 1])  # (P, K)
    if bias is not None:
        pos = pos + bias[positives - 1]
        neg = neg + bias[negatives - 1]
    if offset is not None:
        pos = pos + offset.to(pos.dtype)
        neg = neg + offset.to(neg.dtype)[:, None]
    rows = float(denominator) if denominator else float(pos.shape[0])
    k = neg.shape[1]
    if kind == "bpr":
        return F.softplus(neg - pos[:, None]).sum() / (rows * k)
    if kind == "bce":
        return F.softplus(-pos).sum() / rows + F.softplus(neg).sum() / (rows * k)
    raise ValueError(f"unknown sampled loss {kind!r}; use 'bpr' or 'bce'")
