"""Losses against hand computations: chunked cross-entropy vs F.cross_entropy, BPR/BCE formulas, negatives."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from sarbench.models.losses import chunked_cross_entropy, sample_negatives, sampled_loss


pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in tests/conftest.py


def ce_inputs(P=10, C=13, d=6, bias=True, dtype=torch.float64, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = (scale * torch.randn(P, d, generator=g, dtype=dtype)).requires_grad_()
    w = torch.randn(C, d, generator=g, dtype=dtype).requires_grad_()
    b = torch.randn(C, generator=g, dtype=dtype).requires_grad_() if bias else None
    t = torch.randint(0, C, (P,), generator=g)
    return h, w, b, t


def value_and_grads(loss, tensors):
    grads = torch.autograd.grad(loss, [x for x in tensors if x is not None])
    return loss.detach(), grads


# --- chunked cross-entropy ------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("chunk", [1, 3, 4, 7, 10, 64])  # P = 10: chunks that divide it, that don't, and larger
def test_chunked_ce_equals_cross_entropy_float64(chunk, bias):
    h, w, b, t = ce_inputs(bias=bias)
    ours, ours_grads = value_and_grads(chunked_cross_entropy(h, w, b, t, chunk=chunk), (h, w, b))
    logits = h @ w.T + (b if bias else 0)
    ref, ref_grads = value_and_grads(F.cross_entropy(logits, t), (h, w, b))
    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    assert len(ours_grads) == len(ref_grads) == (3 if bias else 2)
    for name, g, r in zip(("h", "weight", "bias"), ours_grads, ref_grads):
        assert g.shape == r.shape, name
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12, msg=f"gradient of {name} differs")


def test_chunked_ce_scales_with_upstream_gradient():
    h, w, b, t = ce_inputs()
    g_ours = torch.autograd.grad(3.5 * chunked_cross_entropy(h, w, b, t, chunk=3), (h, w, b))
    g_ref = torch.autograd.grad(3.5 * F.cross_entropy(h @ w.T + b, t), (h, w, b))
    for g, r in zip(g_ours, g_ref):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)


def test_chunked_ce_extreme_logits_stay_exact():
    """Logits far apart: the target's softmax probability underflows to 0, the loss must not become inf."""
    h, w, b, t = ce_inputs(scale=300.0, seed=3)
    ref = F.cross_entropy(h @ w.T + b, t)
    assert ref > 700, "the case should push exp(-loss) below float64's range"
    ours = chunked_cross_entropy(h, w, b, t, chunk=4)
    assert torch.isfinite(ours)
    torch.testing.assert_close(ours.detach(), ref.detach(), rtol=1e-12, atol=1e-9)
    g_ours = torch.autograd.grad(ours, (h, w, b))
    g_ref = torch.autograd.grad(ref, (h, w, b))
    for g, r in zip(g_ours, g_ref):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-9)


def test_chunked_ce_float32_and_partial_grads():
    h, w, b, t = ce_inputs(P=37, C=50, d=8, dtype=torch.float32)
    ours = chunked_cross_entropy(h, w, b, t, chunk=8)
    ref = F.cross_entropy(h @ w.T + b, t)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    # only the weight needs a gradient (h and bias detached)
    g_w = torch.autograd.grad(chunked_cross_entropy(h.detach(), w, b.detach(), t, chunk=5), w)[0]
    r_w = torch.autograd.grad(F.cross_entropy(h.detach() @ w.T + b.detach(), t), w)[0]
    torch.testing.assert_close(g_w, r_w, rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(chunked_cross_entropy(h, w, b, t, chunk=3), ref.detach(), rtol=1e-5, atol=1e-6)


def test_chunked_ce_rejects_empty_batch():
    h, w, b, _ = ce_inputs()
    with pytest.raises(ValueError, match="zero positions"):
        chunked_cross_entropy(h[:0], w, b, torch.zeros(0, dtype=torch.long))


# --- BPR and BCE ----------------------------------------------------------------------------------


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def hand_scores(h, w, b, pos, neg):
    """Python-float scores s(p, i) = h_p . w_{i-1} + b_{i-1}, positives (P,) and negatives (P, K)."""
    def s(p, item):
        value = sum(float(h[p, k]) * float(w[item - 1, k]) for k in range(h.shape[1]))
        return value + (float(b[item - 1]) if b is not None else 0.0)

    sp = [s(p, int(pos[p])) for p in range(len(pos))]
    sn = [[s(p, int(i)) for i in neg[p]] for p in range(len(pos))]
    return sp, sn


TINY = dict(
    h=torch.tensor([[0.5, -1.0], [2.0, 0.25], [-0.3, 0.7]], dtype=torch.float64),
    w=torch.tensor([[1.0, 0.0], [0.5, -0.5], [-1.0, 2.0], [0.2, 0.1]], dtype=torch.float64),
    b=torch.tensor([0.1, -0.2, 0.0, 0.3], dtype=torch.float64),
    pos=torch.tensor([1, 3, 4]),
    neg=torch.tensor([[2, 4], [1, 2], [3, 1]]),
)


@pytest.mark.parametrize("use_bias", [True, False])
def test_bpr_equals_hand_formula(use_bias):
    b = TINY["b"] if use_bias else None
    sp, sn = hand_scores(TINY["h"], TINY["w"], b, TINY["pos"], TINY["neg"])
    # mean over (position, negative) of -log sigmoid(s_pos - s_neg)
    terms = [-math.log(sigmoid(sp[p] - x)) for p in range(len(sp)) for x in sn[p]]
    expected = sum(terms) / len(terms)
    got = sampled_loss("bpr", TINY["h"], TINY["w"], b, TINY["pos"], TINY["neg"])
    assert got.item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("use_bias", [True, False])
def test_bce_equals_hand_formula(use_bias):
    b = TINY["b"] if use_bias else None
    sp, sn = hand_scores(TINY["h"], TINY["w"], b, TINY["pos"], TINY["neg"])
    # per position: -log sigmoid(s_pos) - mean_k log(1 - sigmoid(s_neg_k)); then the mean over positions
    per_pos = [-math.log(sigmoid(sp[p])) - sum(math.log(1 - sigmoid(x)) for x in sn[p]) / len(sn[p])
               for p in range(len(sp))]
    expected = sum(per_pos) / len(per_pos)
    got = sampled_loss("bce", TINY["h"], TINY["w"], b, TINY["pos"], TINY["neg"])
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_sampled_loss_gradients_match_autograd_of_reference():
    h = TINY["h"].clone().requires_grad_()
    w = TINY["w"].clone().requires_grad_()
    b = TINY["b"].clone().requires_grad_()
    pos, neg = TINY["pos"], TINY["neg"]
    ours = torch.autograd.grad(sampled_loss("bce", h, w, b, pos, neg), (h, w, b))
    sp = (h * w[pos - 1]).sum(-1) + b[pos - 1]
    sn = (h[:, None, :] * w[neg - 1]).sum(-1) + b[neg - 1]
    ref = F.binary_cross_entropy_with_logits(sp, torch.ones_like(sp)) + F.binary_cross_entropy_with_logits(
        sn, torch.zeros_like(sn))
    for g, r in zip(ours, torch.autograd.grad(ref, (h, w, b))):
        torch.testing.assert_close(g, r, rtol=1e-12, atol=1e-12)


def test_sampled_loss_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown sampled loss 'hinge'"):
        sampled_loss("hinge", TINY["h"], TINY["w"], None, TINY["pos"], TINY["neg"])


# --- negative sampling ----------------------------------------------------------------------------


def test_sample_negatives_shape_range_and_never_the_positive():
    g = torch.Generator().manual_seed(0)
    N = 7
    positives = torch.arange(1, N + 1).repeat(50)  # every item as a positive
    neg = sample_negatives(positives, N, 9, generator=g)
    assert neg.shape == (len(positives), 9) and neg.dtype == torch.long
    assert neg.min() >= 1 and neg.max() <= N
    assert not (neg == positives[:, None]).any()


@pytest.mark.parametrize("positive", [1, 5, 10])
def test_sample_negatives_uniform_over_the_other_items(positive):
    """Exactly uniform over the N-1 other items: every one occurs, chi-square cannot reject uniformity."""
    N, n = 10, 200_000
    g = torch.Generator().manual_seed(positive)
    neg = sample_negatives(torch.full((n // 50,), positive), N, 50, generator=g)
    counts = np.bincount(neg.flatten().numpy(), minlength=N + 1)
    assert counts[0] == 0 and counts[positive] == 0
    others = np.delete(counts[1:], positive - 1)
    assert (others > 0).all() and others.sum() == n
    assert stats.chisquare(others).pvalue > 1e-3
    # and not just roughly: each frequency within 3% of 1/(N-1)
    np.testing.assert_allclose(others / n, 1 / (N - 1), rtol=0.03)


def test_sample_negatives_needs_two_items():
    with pytest.raises(ValueError, match="at least 2 items"):
        sample_negatives(torch.tensor([1]), 1, 3)


def test_sample_negatives_two_items_is_the_other_one():
    neg = sample_negatives(torch.tensor([1, 2, 1]), 2, 5, generator=torch.Generator().manual_seed(0))
    assert neg.tolist() == [[2] * 5, [1] * 5, [2] * 5]
