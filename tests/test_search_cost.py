"""What a search costs before it starts: the ASHA replay, the plain grid's arithmetic, the dry run's lines."""

from __future__ import annotations

import numpy as np
import pytest

from sarbench.search import SPACES, SearchConfig
from sarbench.search.cost import ComboCost, grid_combos, grid_wall_s, search_cost, simulate_asha


def _search(attention="AR", scheduler="asha", **kw):
    return SearchConfig("synthetic", "ce", attention, SPACES["loss_ce"].for_attention(attention), scheduler=scheduler,
                        **kw)


def test_grid_combos_are_the_distinct_sizes_of_the_grid():
    assert grid_combos(_search()) == [(64, 2), (64, 1), (32, 2), (32, 1)]
    assert grid_combos(SearchConfig("synthetic", "llama", "AR", SPACES["hf"].for_attention("AR"))) == [(None, 2),
                                                                                                       (None, 1)]


def test_a_plain_grid_fills_its_slots_largest_first():
    assert grid_wall_s([1.0, 1.0], max_t=2, concurrency=1) == 4.0
    assert grid_wall_s([1.0, 1.0], max_t=2, concurrency=2) == 2.0
    assert grid_wall_s([3.0, 1.0, 1.0, 1.0], max_t=1, concurrency=2) == 3.0  # the long trial alone in one slot


def test_the_asha_replay_stops_trials_at_the_rungs():
    """With one slot the first trial is alone at every rung and runs to max_t; every other trial makes at
    least the grace period's reports and at most max_t. Equal report costs: wall time = reports x cost."""
    pytest.importorskip("ray.tune", reason="the ASHA replay calls Ray's scheduler: pip install 'sarbench[tune]'")
    search = _search()
    n, rng = search.space.size, np.random.default_rng(0)
    for _ in range(20):
        reports, wall = simulate_asha(search, [2.0] * n, 1, rng)
        assert search.max_t + (n - 1) * search.grace_period <= reports < n * search.max_t
        assert wall == pytest.approx(2.0 * reports)
    # two at once: the same reports take about half the wall time
    reports, wall = simulate_asha(search, [2.0] * n, 2, rng)
    assert wall < 2.0 * reports * 0.6


def test_search_cost_adds_the_search_and_the_retrain():
    from sarbench.cases import SCALES, DataCache
    from sarbench.search.trial import validated

    ds = DataCache(None).get("synthetic", SCALES["smoke"])
    search = validated(_search(scheduler="grid", max_t=4, grace_period=1), ds.num_items, ds.num_users)
    combos = [ComboCost(h, k, 1e12, 1e11, 10.0 * h / 64, 2.0, 30) for h, k in grid_combos(search)]
    cost = search_cost(search, ds.split(), concurrency=2, combos=combos)
    per_trial = [5 * c.train_s + c.valid_s for c in combos for _ in range(5)]  # each size: 5 dropout rates
    assert cost.trials == 20 and cost.reports == (80.0, 80.0, 80.0)
    assert cost.device_s == pytest.approx(sum(per_trial) * 4)
    assert cost.wall_s[0] == pytest.approx(sum(per_trial) * 4 / 2)
    # the retrain: the preset's size (d = 64, 1 head) for the assumed epochs, validated every 5
    assert cost.retrain_from == "assumed" and cost.retrain_epochs == 150
    assert cost.retrain_s == pytest.approx(150 * 10.0 + 30 * 2.0 + 2.0)
    assert cost.total_s == pytest.approx(cost.wall_s[0] + cost.retrain_s)


def test_the_dry_run_prints_what_the_search_will_cost(capsys, tmp_path):
    pytest.importorskip("ray.tune", reason="the ASHA replay calls Ray's scheduler: pip install 'sarbench[tune]'")
    from sarbench.cli import main

    argv = ["tune", "--dataset", "synthetic", "--attention", "AR", "--space", "loss_ce", "--scale", "smoke",
            "--grid", "hidden=32", "--grid", "heads=1,2", "--max-t", "4", "--grace-period", "1", "--eval-users", "100",
            "--results", str(tmp_path), "--dry-run", "--cost", "--max-concurrent", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "cost on cpu (each trial timed alone for a few seconds; 2 trial(s) at once)" in out
    assert "hidden 32, heads 2: epoch" in out and "hidden 32, heads 1: epoch" in out
    assert "over simulated trial orders, ASHA deciding" in out and "retrain of the best:" in out
    assert "total: about" in out
    assert not any(tmp_path.iterdir())  # a dry run writes nothing
