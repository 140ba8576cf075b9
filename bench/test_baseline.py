"""CI regression on reported numbers: committed paper-scale results against the paper's tables.

Every cell of a committed paper-scale record (reports/baseline/paper/) on the paper's version of the
data that lies outside the paper band must be listed, with a reason, in
reports/baseline/deviations.csv; a listed cell that no longer deviates fails too, so the file stays
true. (The smoke baseline is checked inside each smoke case, see bench/test_vanilla.py.)
"""

import pytest

from sarbench.baseline import BASELINE_DIR, check_deviations, load_deviations, paper_deviations
from sarbench.store import ResultStore


def test_paper_deviations_are_listed(pytestconfig):
    folder = pytestconfig.rootpath / BASELINE_DIR
    records = ResultStore(folder / "paper").records() if (folder / "paper").exists() else []
    if not records:
        pytest.skip(f"no committed paper-scale results in {folder / 'paper'}")
    unlisted, stale = check_deviations(records, load_deviations(folder))
    assert not unlisted, "deviations from the paper not listed in deviations.csv:\n" + "\n".join(unlisted)
    assert not stale, "deviations.csv lists cells that no longer deviate:\n" + "\n".join(stale)


def test_deviation_check_detects_unlisted_and_stale():
    class Rec:  # a paper-scale ml-1m AR record, one metric far off the paper's 0.1738
        scale, table, dataset, attention, seed, case_id = "paper", "vanilla", "ml-1m", "AR", 0, "vanilla[ml-1m-AR-ce]"
        extra = {"paper_version": True}
        metrics = {"N@10": 0.05, "R@10": 0.3008}

    assert [d["metric"] for d in paper_deviations([Rec])] == ["N@10"]
    unlisted, stale = check_deviations([Rec], [])
    assert len(unlisted) == 1 and "N@10" in unlisted[0] and not stale
    listed = [{"case_id": Rec.case_id, "seed": "0", "metric": "R@10", "reason": "x"}]
    unlisted, stale = check_deviations([Rec], listed)
    assert len(unlisted) == 1 and stale == ["vanilla[ml-1m-AR-ce] seed 0 R@10"]
