"""Unit tests of sarbench.analysis: sparsity and hard-threshold rank of padded attention tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sarbench.analysis import (
    attention_rank,
    attention_sparsity,
    hard_threshold_rank,
    noise_threshold,
    sparsity,
)


def random_attention(users, layers, heads, max_len, lengths, causal, seed=0, pad_value=None):
    """Tail-padded post-softmax attention (users, layers, heads, L, L) with garbage in the padding.

    The real block of user u is a softmax over its real keys (causal if asked). Padded key columns are
    0 and padded query rows are uniform over the real keys, as a masked softmax gives. With
    ``pad_value``, the padding is filled with that value instead, to show it is never read.
    """
    g = torch.Generator().manual_seed(seed)
    logits = 2.0 * torch.randn(users, layers, heads, max_len, max_len, generator=g, dtype=torch.float64)
    real = torch.arange(max_len)[None, :] < torch.as_tensor(lengths)[:, None]
    allowed = real[:, None, None, None, :].expand(users, layers, heads, max_len, max_len).clone()
    if causal:
        allowed &= torch.ones(max_len, max_len, dtype=torch.bool).tril()
    attn = logits.masked_fill(~allowed, float("-inf")).softmax(-1)
    if pad_value is not None:
        for u, n in enumerate(lengths):
            attn[u, :, :, n:, :] = pad_value
            attn[u, :, :, :, n:] = pad_value
    return attn


# ------------------------------------------------------------------------------------------------
# sparsity
# ------------------------------------------------------------------------------------------------


def test_sparsity_hand_computed_values():
    assert float(sparsity([1.0, 0.0, 0.0, 0.0])) == pytest.approx(0.25, rel=1e-12)
    assert float(sparsity([2.0, 2.0, 2.0, 2.0])) == pytest.approx(0.5, rel=1e-12)
    # x = (3, 4): ||x||_1 / 2 = 3.5, ||x||_2 = 5
    assert float(sparsity([3.0, -4.0])) == pytest.approx(0.7, rel=1e-12)
    # a matrix is flattened: eye(3) has ||.||_1 / 9 = 1/3 and ||.||_F = sqrt(3)
    assert float(sparsity(np.eye(3))) == pytest.approx(1 / (3 * math.sqrt(3)), rel=1e-12)


def test_sparsity_container_follows_input_and_dim_reduces():
    x = np.array([[1.0, 0.0], [1.0, 1.0]])
    rows = sparsity(x, dim=1)
    assert isinstance(rows, np.ndarray)
    np.testing.assert_allclose(rows, [0.5, 1 / math.sqrt(2)], rtol=1e-12)
    rows_t = sparsity(torch.tensor(x), dim=-1)
    assert isinstance(rows_t, torch.Tensor) and rows_t.dtype == torch.float64
    np.testing.assert_allclose(rows_t.numpy(), rows, rtol=1e-12)
    # float32 input is measured in float64
    assert sparsity(torch.eye(2)).dtype == torch.float64


@pytest.mark.parametrize("bad, match", [
    ([], "empty"),
    ([0.0, 0.0], "all-zero"),
    ([1.0, float("nan")], "NaN"),
    ([1.0, float("inf")], "NaN or infinite"),
])
def test_sparsity_rejects_undefined_inputs(bad, match):
    with pytest.raises(ValueError, match=match):
        sparsity(np.array(bad))
    with pytest.raises(ValueError, match=match):
        sparsity(torch.tensor(bad))


# ------------------------------------------------------------------------------------------------
# attention_sparsity
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True], ids=["AE", "AR"])
@pytest.mark.parametrize("pad_value", [None, 0.3, float("nan")], ids=["softmax-pad", "const-pad", "nan-pad"])
def test_padding_is_ignored_by_sparsity(causal, pad_value):
    lengths = [1, 3, 7, 8]
    attn = random_attention(4, 2, 2, 8, lengths, causal, pad_value=pad_value)
    got = attention_sparsity(attn, lengths, aggregate="none")
    assert got.shape == (4, 2, 2)
    for u, n in enumerate(lengths):
        cropped = attn[u, :, :, :n, :n]
        assert torch.isfinite(cropped).all()
        # single-user input with the cropped tensor, and the per-matrix sparsity as the reference
        np.testing.assert_allclose(attention_sparsity(cropped, n, aggregate="none"), got[u], rtol=1e-12)
        for layer in range(2):
            for head in range(2):
                assert float(got[u, layer, head]) == pytest.approx(float(sparsity(cropped[layer, head])), rel=1e-12)


def test_row_stochastic_block_has_closed_form_sparsity():
    lengths = [2, 5, 9]
    attn = random_attention(3, 1, 1, 9, lengths, causal=True)
    got = attention_sparsity(attn, lengths, aggregate="none")
    for u, n in enumerate(lengths):
        block = attn[u, 0, 0, :n, :n]
        assert float(got[u, 0, 0]) == pytest.approx(1 / (n * float(torch.linalg.matrix_norm(block))), rel=1e-12)
        assert n**-1.5 - 1e-12 <= float(got[u, 0, 0]) <= 1 / n + 1e-12


def test_sparsity_aggregations_differ_as_documented():
    # Two heads, each sharp on a different key; averaging them gives a flat matrix.
    head0 = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    head1 = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    attn = torch.stack([head0, head1]).unsqueeze(0)  # (layers=1, heads=2, 2, 2)
    per_head = (2 / 4) / math.sqrt(2)  # each head: ||.||_1/4 = 1/2, ||.||_F = sqrt(2)
    assert attention_sparsity(attn, 2, aggregate="matrix") == pytest.approx(per_head, rel=1e-12)
    # the head average is 0.5 everywhere: S = 1/sqrt(4)
    assert attention_sparsity(attn, 2, aggregate="head_mean") == pytest.approx(0.5, rel=1e-12)
    np.testing.assert_allclose(attention_sparsity(attn, 2, aggregate="none"), [[per_head, per_head]], rtol=1e-12)


def test_matrix_aggregate_is_mean_over_user_layer_head():
    lengths = [3, 6, 6, 2]
    attn = random_attention(4, 2, 3, 6, lengths, causal=False, seed=1)
    per = attention_sparsity(attn, lengths, aggregate="none")
    assert attention_sparsity(attn, lengths) == pytest.approx(float(per.mean()), rel=1e-12)
    heads_avg = attn.mean(dim=2, keepdim=True)
    per_avg = attention_sparsity(heads_avg, lengths, aggregate="none")
    assert attention_sparsity(attn, lengths, aggregate="head_mean") == pytest.approx(float(per_avg.mean()), rel=1e-12)
    # quasi-concavity: S of the head average is at least the smallest head's S
    assert bool((per_avg[..., 0] >= per.min(dim=-1).values - 1e-12).all())


def test_attention_sparsity_accepts_numpy_and_int_length():
    attn = random_attention(2, 1, 1, 5, [4, 4], causal=False).numpy()
    assert attention_sparsity(attn, 4) == pytest.approx(attention_sparsity(torch.from_numpy(attn), [4, 4]), rel=1e-12)


@pytest.mark.parametrize("attn_shape, length, match", [
    ((2, 4, 4), 2, "shape"),
    ((1, 1, 4, 3), 2, "square"),
    ((3, 1, 1, 4, 4), [2, 2], "one length per user"),
    ((2, 1, 1, 4, 4), [2, 5], "user 1 is 5"),
    ((2, 1, 1, 4, 4), [0, 2], "user 0 is 0"),
])
def test_attention_sparsity_rejects_bad_shapes_and_lengths(attn_shape, length, match):
    with pytest.raises(ValueError, match=match):
        attention_sparsity(torch.rand(attn_shape), length)


def test_nan_inside_the_real_block_is_reported_with_the_user():
    attn = random_attention(3, 1, 1, 4, [4, 2, 3], causal=False)
    attn[1, 0, 0, 1, 0] = float("nan")
    with pytest.raises(ValueError, match="user 1"):
        attention_sparsity(attn, [4, 2, 3])
    with pytest.raises(ValueError, match="aggregate"):
        attention_sparsity(attn, [4, 2, 3], aggregate="mean")


# ------------------------------------------------------------------------------------------------
# hard_threshold_rank
# ------------------------------------------------------------------------------------------------


def test_hand_computed_rank_of_diagonal_matrix():
    # ||A||_F^2 = 1 + 0.25 + 0.0001; tau = sqrt(2 * (1.2501 / 9) * log 6) = 0.70549...
    a = np.diag([1.0, 0.5, 0.01])
    res = hard_threshold_rank(a, sigma=0.0, noise=np.zeros((3, 3)))
    assert res.tau == pytest.approx(math.sqrt(2 * 1.2501 / 9 * math.log(6)), rel=1e-12)
    assert res.k == 1
    np.testing.assert_allclose(res.A_hat, np.diag([1.0, 0.0, 0.0]), atol=1e-12)
    np.testing.assert_allclose(res.singular_values, [1.0, 0.5, 0.01], rtol=1e-12)
    k, a_hat, tau, s = res  # unpacks like a tuple
    assert k == 1 and tau == res.tau


@pytest.mark.parametrize("n, expected_k", [(1, 0), (2, 0), (3, 0), (4, 0), (5, 5), (10, 10)])
def test_hand_computed_rank_of_identity(n, expected_k):
    """eye(n): s_i = 1 and tau = sqrt(2 (1/n) log 2n), which is > 1 for n <= 4 and < 1 for n >= 5.

    n=1: 1.177, n=2: 1.177, n=3: 1.093, n=4: 1.020, n=5: 0.960, n=10: 0.774. A causal model whose
    every item attends only to itself has A = eye(n), so for users with at most 4 items the paper's
    rank is 0 and for longer ones it is n.
    """
    res = hard_threshold_rank(torch.eye(n, dtype=torch.float64), sigma=0.0)
    assert res.tau == pytest.approx(math.sqrt(2 / n * math.log(2 * n)), rel=1e-12)
    assert res.k == expected_k
    assert isinstance(res.A_hat, torch.Tensor)


def test_rank_one_attention_keeps_one_value():
    # every query attends to key 0: A = 1 e_0^T, s = (sqrt(n), 0, ...), tau = sqrt(2 (n/n^2) log 2n) < sqrt(n)
    a = np.zeros((5, 5))
    a[:, 0] = 1.0
    res = hard_threshold_rank(a, sigma=1e-6, generator=0)
    assert res.k == 1
    np.testing.assert_allclose(res.A_hat, a, atol=1e-12)


def test_explicit_threshold_and_approximating_y():
    a = np.diag([3.0, 2.0, 1.0])
    e = np.zeros((3, 3))
    e[0, 1] = 0.1
    res_a = hard_threshold_rank(a, 0.0, noise=e, threshold=1.5)
    res_y = hard_threshold_rank(a, 0.0, noise=e, threshold=1.5, approximate="Y")
    assert res_a.k == res_y.k == 2
    np.testing.assert_allclose(res_a.A_hat, np.diag([3.0, 2.0, 0.0]), atol=1e-12)
    u, s, vh = np.linalg.svd(a + e)
    np.testing.assert_allclose(res_y.A_hat, (u[:, :2] * s[:2]) @ vh[:2], atol=1e-12)


def test_gavish_donoho_rule():
    a = np.diag([1.0, 0.05, 0.0, 0.0])
    # sigma only enters tau here; the noise is given (zero) so that k is exact
    res = hard_threshold_rank(a, 0.01, noise=np.zeros((4, 4)), threshold="gavish_donoho")
    assert res.tau == pytest.approx(4 / math.sqrt(3) * 2 * 0.01, rel=1e-12)  # (4/sqrt 3) sqrt(4) sigma
    assert res.k == 2  # 1 and 0.05 exceed 0.0462
    # the paper's rule on the same matrix: tau = sqrt(2 (1.0025/16) log 8) = 0.510, so only 1 survives
    assert hard_threshold_rank(a, 0.01, noise=np.zeros((4, 4))).k == 1


def test_noise_is_reproducible_from_seed_and_generator():
    a = np.full((6, 6), 1 / 6)
    r1 = hard_threshold_rank(a, 0.05, generator=42)
    r2 = hard_threshold_rank(a, 0.05, generator=np.random.default_rng(42))
    np.testing.assert_array_equal(r1.singular_values, r2.singular_values)
    y = a + 0.05 * np.random.default_rng(42).standard_normal((6, 6))
    np.testing.assert_allclose(r1.singular_values, np.linalg.svd(y, compute_uv=False), rtol=1e-12)
    r3 = hard_threshold_rank(a, 0.05, generator=43)
    assert not np.array_equal(r1.singular_values, r3.singular_values)


@pytest.mark.parametrize("kwargs, match", [
    (dict(A=np.ones((2, 3)), sigma=0.1), "square"),
    (dict(A=np.ones((2, 2)), sigma=-1.0), "sigma"),
    (dict(A=np.ones((2, 2)), sigma=0.1, threshold="elbow"), "threshold"),
    (dict(A=np.ones((2, 2)), sigma=0.1, threshold=-0.5), "threshold"),
    (dict(A=np.ones((2, 2)), sigma=0.1, approximate="B"), "approximate"),
    (dict(A=np.ones((2, 2)), sigma=0.1, noise=np.ones((3, 3))), "noise"),
    (dict(A=np.ones((2, 2)), sigma=0.1, generator="seed"), "generator"),
    (dict(A=np.array([[1.0, np.nan], [0.0, 1.0]]), sigma=0.1), "NaN"),
])
def test_hard_threshold_rank_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        hard_threshold_rank(**kwargs)


def test_noise_threshold_is_batched():
    y = torch.stack([torch.eye(3, dtype=torch.float64), 2 * torch.eye(3, dtype=torch.float64)])
    tau = noise_threshold(y, sigma=0.0)
    assert tau.shape == (2,)
    assert float(tau[1]) == pytest.approx(2 * float(tau[0]), rel=1e-12)


# ------------------------------------------------------------------------------------------------
# attention_rank
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True], ids=["AE", "AR"])
def test_padding_is_ignored_by_rank_and_batched_equals_per_matrix(causal):
    lengths = [5, 1, 8, 5, 3]
    attn = random_attention(5, 2, 2, 8, lengths, causal, seed=2, pad_value=float("nan"))
    got = attention_rank(attn, lengths, sigma=0.01, generator=7, aggregate="none")
    assert got.shape == (5, 2, 2) and got.dtype == torch.int64
    # reference: one hard_threshold_rank call per cropped matrix, in (user, layer, head) order
    g = np.random.default_rng(7)
    for u, n in enumerate(lengths):
        for layer in range(2):
            for head in range(2):
                ref = hard_threshold_rank(attn[u, layer, head, :n, :n], 0.01, g)
                assert int(got[u, layer, head]) == ref.k
    assert int(got[1].max()) == 0  # a one-position user always gets k = 0 under the paper's tau
    assert attention_rank(attn, lengths, 0.01, 7) == pytest.approx(float(got.double().mean()), rel=1e-12)


def test_rank_of_single_user_and_stream_continuation():
    lengths = [6, 4]
    attn = random_attention(2, 1, 2, 6, lengths, causal=True, seed=3)
    both = attention_rank(attn, lengths, 0.05, 11, aggregate="none")
    g = np.random.default_rng(11)
    first = attention_rank(attn[0], 6, 0.05, g, aggregate="none")  # (layers, heads)
    second = attention_rank(attn[1], 4, 0.05, g, aggregate="none")
    assert first.shape == (1, 2)
    torch.testing.assert_close(torch.stack([first, second]), both)


def test_rank_aggregations_differ_as_documented():
    """Head averaging can change k: two rank-1 heads on different keys average to a rank-1 matrix with
    a smaller tau, while an identity head (k = 0 for n = 3) plus a rank-1 head average to full rank."""
    n = 3
    eye = torch.eye(n, dtype=torch.float64)
    col = torch.zeros(n, n, dtype=torch.float64)
    col[:, 0] = 1.0
    attn = torch.stack([eye, col]).unsqueeze(0)  # (layers=1, heads=2, 3, 3)
    per_head = attention_rank(attn, n, sigma=0.0, aggregate="none")
    assert per_head.tolist() == [[0, 1]]  # eye(3): tau = 1.093 > 1; col: sqrt(3) > tau = 1.093
    assert attention_rank(attn, n, sigma=0.0, aggregate="matrix") == 0.5
    avg = (eye + col) / 2
    ref = hard_threshold_rank(avg, 0.0).k
    assert attention_rank(attn, n, sigma=0.0, aggregate="head_mean") == ref
    assert ref != 0.5


def test_attention_rank_validates_arguments():
    attn = random_attention(1, 1, 1, 4, [4], causal=False)
    with pytest.raises(ValueError, match="sigma"):
        attention_rank(attn, 4, sigma=float("nan"))
    with pytest.raises(ValueError, match="threshold"):
        attention_rank(attn, 4, sigma=0.1, threshold="mp")
    with pytest.raises(ValueError, match="aggregate"):
        attention_rank(attn, 4, sigma=0.1, aggregate="median")
