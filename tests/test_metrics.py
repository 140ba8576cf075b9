"""Ranking and metric functions against brute-force pure-Python references."""

from __future__ import annotations

import doctest
import math
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import sarbench.metrics
from sarbench.metrics import (
    metric_table,
    metric_table_per_user,
    mrr_at_k,
    ndcg_at_k,
    ranks_from_scores,
    recall_at_k,
)

# --- references: loops over users and candidates ---------------------------------------------


def reference_ranks(scores: np.ndarray, targets: np.ndarray, exclude: np.ndarray | None) -> list[int]:
    ranks = []
    for b in range(scores.shape[0]):
        t = int(targets[b])
        ts = scores[b][t]
        rank = 0
        for c in range(1, scores.shape[1]):
            if c == t:
                continue
            if exclude is not None and exclude[b][c]:
                continue
            if scores[b][c] > ts or scores[b][c] == ts:
                rank += 1
        ranks.append(rank)
    return ranks


def reference_recall(rank: int, k: int) -> float:
    return 1.0 if rank < k else 0.0


def reference_ndcg(rank: int, k: int) -> float:
    return 1.0 / math.log2(rank + 2) if rank < k else 0.0


def reference_mrr(rank: int, k: int) -> float:
    return 1.0 / (rank + 1) if rank < k else 0.0


# --- strategies -------------------------------------------------------------------------------


@st.composite
def ranking_problems(draw):
    """(scores, targets, exclude or None) with many ties: scores come from a small integer set."""
    b = draw(st.integers(1, 6))
    c = draw(st.integers(2, 12))
    values = st.sampled_from([-2.0, 0.0, 1.0, 1.0, 3.0, float("-inf")])
    scores = draw(hnp.arrays(np.float32, (b, c), elements=values))
    targets = draw(hnp.arrays(np.int64, (b,), elements=st.integers(1, c - 1)))
    exclude = draw(st.none() | hnp.arrays(np.bool_, (b, c)))
    return scores, targets, exclude


def _t(scores, targets, exclude):
    return (
        torch.from_numpy(scores),
        torch.from_numpy(targets),
        None if exclude is None else torch.from_numpy(exclude),
    )


# --- ranks_from_scores ------------------------------------------------------------------------


@given(ranking_problems())
def test_ranks_match_reference(problem):
    scores, targets, exclude = problem
    got = ranks_from_scores(*_t(scores, targets, exclude))
    assert got.dtype == torch.int64
    assert got.tolist() == reference_ranks(scores, targets, exclude)


@given(ranking_problems(), st.integers(1, 30))
def test_ranks_in_row_blocks_match_reference(problem, block_elements):
    """The CPU path ranks blocks of rows; tiny blocks must give the same ranks."""
    scores, targets, exclude = problem
    with mock.patch.object(sarbench.metrics, "_CPU_BLOCK_ELEMENTS", block_elements):
        got = ranks_from_scores(*_t(scores, targets, exclude))
    assert got.tolist() == reference_ranks(scores, targets, exclude)


def test_large_matrix_matches_vectorised_reference():
    """Several default-size blocks, checked against a numpy broadcast of the definition."""
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 50, size=(900, 3001)).astype(np.float32)
    targets = rng.integers(1, 3001, size=900)
    exclude = rng.random((900, 3001)) < 0.05
    ts = scores[np.arange(900), targets][:, None]
    cand = ~exclude
    cand[:, 0] = False
    cand[np.arange(900), targets] = False
    expected = ((scores >= ts) & cand).sum(axis=1)
    got = ranks_from_scores(*_t(scores, targets, exclude))
    np.testing.assert_array_equal(got.numpy(), expected)


def test_empty_batch():
    got = ranks_from_scores(torch.zeros(0, 5), torch.zeros(0, dtype=torch.long))
    assert got.shape == (0,) and got.dtype == torch.int64


@given(ranking_problems())
def test_target_inside_exclusion_is_still_ranked(problem):
    scores, targets, exclude = problem
    exclude = np.zeros(scores.shape, dtype=bool) if exclude is None else exclude.copy()
    exclude[np.arange(len(targets)), targets] = True  # every target is a "repeat" item
    got = ranks_from_scores(*_t(scores, targets, exclude))
    assert got.tolist() == reference_ranks(scores, targets, exclude)
    # the target competes as if it were not excluded
    unmarked = exclude.copy()
    unmarked[np.arange(len(targets)), targets] = False
    assert got.tolist() == ranks_from_scores(*_t(scores, targets, unmarked)).tolist()


@given(ranking_problems())
def test_rank_bounded_by_candidate_count(problem):
    scores, targets, exclude = problem
    got = ranks_from_scores(*_t(scores, targets, exclude)).numpy()
    excl = np.zeros(scores.shape, dtype=bool) if exclude is None else exclude
    for b, t in enumerate(targets):
        others = [c for c in range(1, scores.shape[1]) if c != t and not excl[b, c]]
        assert 0 <= got[b] <= len(others)


@pytest.mark.parametrize("value", [0.0, -1.5, float("-inf"), 7.0])
def test_constant_scores_get_worst_rank_and_zero_metrics(value):
    b, c = 4, 9
    scores = torch.full((b, c), value)
    targets = torch.tensor([1, 3, 5, 8])
    ranks = ranks_from_scores(scores, targets)
    assert ranks.tolist() == [c - 2] * b
    table = metric_table(ranks, ks=(1, 5, c - 2))
    assert all(v == 0.0 for v in table.values()), table


def test_constant_scores_with_exclusion_get_worst_rank():
    scores = torch.zeros(2, 6)
    exclude = torch.tensor([[False, True, True, False, False, False], [False] * 6])
    ranks = ranks_from_scores(scores, torch.tensor([3, 5]), exclude)
    assert ranks.tolist() == [2, 4]  # candidates {3,4,5} and {1..5}, target last among ties


def test_strictly_greater_rule_would_differ_on_ties():
    """Kept case: the authors' rule (only strictly greater) ranks a tied target first; ours last."""
    scores = torch.tensor([[0.0, 1.0, 1.0, 1.0]])
    target = torch.tensor([2])
    strictly_greater = int((scores[0, 1:] > scores[0, 2]).sum())
    assert strictly_greater == 0
    assert ranks_from_scores(scores, target).item() == 2


def test_padding_column_is_never_a_candidate():
    scores = torch.tensor([[100.0, 1.0, 2.0, 0.5], [float("inf"), 3.0, 2.0, 1.0]])
    ranks = ranks_from_scores(scores, torch.tensor([2, 1]))
    assert ranks.tolist() == [0, 0]


def test_target_score_read_from_same_matrix():
    """A target whose column is the maximum is rank 0 even when the values are not exactly representable."""
    torch.manual_seed(0)
    h = torch.randn(64, 16)
    emb = torch.randn(200, 16)
    scores = h @ emb.T
    targets = scores[:, 1:].argmax(dim=1) + 1
    assert ranks_from_scores(scores, targets).tolist() == [0] * 64


def test_inf_scores_are_ranked():
    scores = torch.tensor([[0.0, float("inf"), float("-inf"), 1.0]])
    assert ranks_from_scores(scores, torch.tensor([1])).item() == 0
    assert ranks_from_scores(scores, torch.tensor([2])).item() == 2
    assert ranks_from_scores(scores, torch.tensor([3])).item() == 1


@pytest.mark.parametrize(
    ("scores", "targets", "exclude", "match"),
    [
        (torch.tensor([[0.0, float("nan"), 1.0]]), torch.tensor([2]), None, "NaN"),
        (torch.zeros(2, 4), torch.tensor([0, 1]), None, "targets"),
        (torch.zeros(2, 4), torch.tensor([1, 4]), None, "targets"),
        (torch.zeros(2, 4), torch.tensor([1, -1]), None, "targets"),
        (torch.zeros(2, 4), torch.tensor([1.0, 2.0]), None, "targets"),
        (torch.zeros(2, 4), torch.tensor([1, 2, 3]), None, "targets"),
        (torch.zeros(4), torch.tensor([1]), None, "scores"),
        (torch.zeros(2, 4, dtype=torch.long), torch.tensor([1, 2]), None, "scores"),
        (torch.zeros(2, 1), torch.tensor([1, 1]), None, "scores"),
        (torch.zeros(2, 4), torch.tensor([1, 2]), torch.zeros(2, 3, dtype=torch.bool), "exclude"),
        (torch.zeros(2, 4), torch.tensor([1, 2]), torch.zeros(2, 4), "exclude"),
    ],
)
def test_ranks_reject_bad_input(scores, targets, exclude, match):
    with pytest.raises(ValueError, match=match):
        ranks_from_scores(scores, targets, exclude)


@pytest.mark.parametrize("block_elements", [1, 8, 1 << 20])
def test_nan_error_names_the_row(block_elements):
    scores = torch.zeros(5, 4)
    scores[3, 2] = float("nan")
    scores[4, 1] = float("nan")
    with mock.patch.object(sarbench.metrics, "_CPU_BLOCK_ELEMENTS", block_elements):
        with pytest.raises(ValueError, match="row 3"):
            ranks_from_scores(scores, torch.ones(5, dtype=torch.long))


# --- per-user metrics -------------------------------------------------------------------------

ranks_arrays = hnp.arrays(np.int64, st.integers(1, 30), elements=st.integers(0, 60))


@given(ranks_arrays, st.integers(1, 70))
def test_metrics_match_reference(ranks, k):
    t = torch.from_numpy(ranks)
    for fn, ref in ((recall_at_k, reference_recall), (ndcg_at_k, reference_ndcg), (mrr_at_k, reference_mrr)):
        got = fn(t, k)
        assert got.shape == t.shape
        expected = [ref(int(r), k) for r in ranks]
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6, atol=0)


@given(ranks_arrays, st.lists(st.integers(1, 70), min_size=1, max_size=4, unique=True))
def test_metric_table_is_mean_of_reference(ranks, ks):
    table = metric_table(torch.from_numpy(ranks), ks)
    assert list(table) == [f"R@{k}" for k in ks] + [f"N@{k}" for k in ks]
    for k in ks:
        assert table[f"R@{k}"] == pytest.approx(np.mean([reference_recall(r, k) for r in ranks]), rel=1e-6)
        assert table[f"N@{k}"] == pytest.approx(np.mean([reference_ndcg(r, k) for r in ranks]), rel=1e-6)
    per_user = metric_table_per_user(ranks, ks)  # numpy input accepted
    assert set(per_user) == set(table)
    for name, values in per_user.items():
        assert values.shape == ranks.shape and values.dtype == np.float64
        assert values.mean() == pytest.approx(table[name], rel=1e-12)


def test_metric_table_default_names():
    assert list(metric_table(torch.tensor([0, 3, 12]))) == ["R@5", "R@10", "R@20", "N@5", "N@10", "N@20"]


@given(ranks_arrays, st.integers(1, 70))
def test_metrics_are_monotone_in_k(ranks, k):
    t = torch.from_numpy(ranks)
    assert torch.all(recall_at_k(t, k) <= recall_at_k(t, k + 1))
    assert torch.all(ndcg_at_k(t, k) <= ndcg_at_k(t, k + 1))
    assert torch.all(ndcg_at_k(t, k) <= recall_at_k(t, k))
    assert torch.all(mrr_at_k(t, k) <= ndcg_at_k(t, k) + 1e-7)


@pytest.mark.parametrize(
    ("ranks", "k", "match"),
    [
        (torch.tensor([0, -1]), 5, "ranks"),
        (torch.tensor([0.0, 1.0]), 5, "ranks"),
        (torch.tensor([[0, 1]]), 5, "ranks"),
        ([0, 1], 5, "ranks"),
        (torch.tensor([0, 1]), 0, "`k`"),
        (torch.tensor([0, 1]), 2.5, "`k`"),
        (torch.tensor([0, 1]), True, "`k`"),
    ],
)
@pytest.mark.parametrize("fn", [recall_at_k, ndcg_at_k, mrr_at_k])
def test_metrics_reject_bad_input(fn, ranks, k, match):
    with pytest.raises(ValueError, match=match):
        fn(ranks, k)


def test_metric_table_rejects_bad_input():
    with pytest.raises(ValueError, match="empty"):
        metric_table(torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="ks"):
        metric_table(torch.tensor([1]), ks=())
    with pytest.raises(ValueError, match="ks"):
        metric_table(torch.tensor([1]), ks=(5, 0))
    with pytest.raises(ValueError, match="ranks"):
        metric_table(np.array([0.5]))


def test_doctests_pass():
    result = doctest.testmod(sarbench.metrics)
    assert result.attempted >= 8
    assert result.failed == 0


# --- devices ----------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (50, 40), generator=g).float()
    targets = torch.randint(1, 40, (50,), generator=g)
    exclude = torch.rand(50, 40, generator=g) < 0.3
    cpu = ranks_from_scores(scores, targets, exclude)
    gpu = ranks_from_scores(scores.cuda(), targets.cuda(), exclude.cuda())
    assert gpu.device.type == "cuda"
    assert gpu.cpu().tolist() == cpu.tolist()
    for fn in (recall_at_k, ndcg_at_k, mrr_at_k):
        torch.testing.assert_close(fn(gpu, 10).cpu(), fn(cpu, 10))
    assert metric_table(gpu) == pytest.approx(metric_table(cpu))
