"""Benchmark: full ranking + metrics at ML-1M size (6,040 users x 3,416 items).

The score matrix, targets and history masks (about 165 excluded items per user, ML-1M's mean
sequence length) are precomputed and seeded; scores lie on a 0.01 grid, so targets tie with other
items and the tie rule is exercised. The timed call goes through the public functions only:
``ranks_from_scores`` then ``metric_table`` for R@5/10/20 and N@5/10/20. What it returns is checked
against a slow per-user reference written from the definitions (pessimistic ties, the target a
candidate even where excluded, R@k and N@k from the 0-based rank), so a fast but wrong ranking fails.

This is a benchmark, not a timed test: it asserts no time. pytest-benchmark records the figure:
``pytest bench/bench_ranking.py --benchmark-only --dist no`` (``--dist no``: pytest.ini's
``--dist loadgroup`` turns pytest-benchmark off; ``--benchmark-autosave`` keeps the figure in
``.benchmarks/``). In a plain ``pytest`` run, benchmarks off, the call runs once and only the
correctness checks apply.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sarbench.metrics import metric_table, ranks_from_scores

USERS, ITEMS, HISTORY = 6040, 3416, 165
KS = (5, 10, 20)


@pytest.fixture(scope="module")
def ml1m_sized_problem():
    g = torch.Generator().manual_seed(0)
    scores = torch.round(torch.randn(USERS, ITEMS + 1, generator=g) * 100) / 100  # (B, C), column 0 = padding
    targets = torch.randint(1, ITEMS + 1, (USERS,), generator=g)
    exclude = torch.rand(USERS, ITEMS + 1, generator=g) < HISTORY / ITEMS  # ~165 history items per user
    return scores, targets, exclude


def reference_ranks(scores, targets, exclude) -> np.ndarray:
    """One user at a time, from the definition: candidates are ids 1..C-1 not excluded, plus the
    target; the rank counts the other candidates scoring at least the target's score."""
    s, t, x = scores.numpy(), targets.numpy(), exclude.numpy()
    ranks = np.empty(len(t), dtype=np.int64)
    for b in range(len(t)):
        candidate = ~x[b]
        candidate[0] = False
        candidate[t[b]] = False  # counted apart: the target is not its own competitor
        ranks[b] = int(np.count_nonzero(s[b][candidate] >= s[b, t[b]]))
    return ranks


def reference_metrics(ranks: np.ndarray, ks=KS) -> dict[str, float]:
    recall = {f"R@{k}": float(np.mean(ranks < k)) for k in ks}
    ndcg = {f"N@{k}": float(np.mean([1 / math.log2(r + 2) if r < k else 0.0 for r in ranks])) for k in ks}
    return {**recall, **ndcg}


@pytest.mark.perf
def test_rank_and_metrics_ml1m_size(benchmark, ml1m_sized_problem):
    scores, targets, exclude = ml1m_sized_problem

    def run():
        ranks = ranks_from_scores(scores, targets, exclude)
        return ranks, metric_table(ranks, ks=KS)

    ranks, table = benchmark.pedantic(run, rounds=5, warmup_rounds=1, iterations=1)
    expected = reference_ranks(scores, targets, exclude)
    assert ranks.dtype == torch.int64 and ranks.shape == (USERS,)
    np.testing.assert_array_equal(ranks.numpy(), expected)
    tied = (scores == scores.gather(1, targets[:, None])) & ~exclude
    assert int(tied.sum()) > 2 * USERS, "the data should make targets tie with other items"
    reference = reference_metrics(expected)
    assert list(table) == list(reference)
    for name, value in reference.items():
        assert table[name] == pytest.approx(value, rel=1e-6), name  # float32 means
    benchmark.extra_info.update(users=USERS, items=ITEMS, mean_rank=float(expected.mean()))
