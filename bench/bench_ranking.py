"""Throughput of full ranking + metrics at ML-1M size (6,040 users x 3,416 items).

The score matrix, targets and history masks (about 165 excluded items per user, ML-1M's mean
sequence length) are precomputed and seeded; the timed call goes through the public functions only:
``ranks_from_scores`` then ``metric_table`` for R@5/10/20 and N@5/10/20.
Run with ``pytest bench/bench_ranking.py --benchmark-only``; target: < 0.5 s on a 2-core CPU.
"""

from __future__ import annotations

import pytest
import torch

from sarbench.metrics import metric_table, ranks_from_scores

USERS, ITEMS, HISTORY = 6040, 3416, 165


@pytest.fixture(scope="module")
def ml1m_sized_problem():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(USERS, ITEMS + 1, generator=g)  # (B, C) with column 0 = padding
    targets = torch.randint(1, ITEMS + 1, (USERS,), generator=g)
    exclude = torch.rand(USERS, ITEMS + 1, generator=g) < HISTORY / ITEMS  # ~165 history items per user
    return scores, targets, exclude


@pytest.mark.perf
def test_rank_and_metrics_ml1m_size(benchmark, ml1m_sized_problem):
    scores, targets, exclude = ml1m_sized_problem

    def run():
        ranks = ranks_from_scores(scores, targets, exclude)
        return ranks, metric_table(ranks, ks=(5, 10, 20))

    ranks, table = benchmark.pedantic(run, rounds=5, warmup_rounds=1, iterations=1)
    assert ranks.shape == (USERS,)
    assert int(ranks.min()) >= 0 and int(ranks.max()) <= ITEMS - 1
    assert list(table) == ["R@5", "R@10", "R@20", "N@5", "N@10", "N@20"]
    assert all(0.0 <= v <= 1.0 for v in table.values())
    # random scores: the target's rank is roughly uniform over the ~3,250 candidates
    assert 0.3 < float(ranks.float().mean()) / (ITEMS - HISTORY) < 0.7
    assert table["R@5"] <= table["R@10"] <= table["R@20"] < 0.05
