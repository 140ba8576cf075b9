"""Per-number portable tolerances of the smoke baseline (sarbench/smoke_baseline.py)."""

from sarbench.smoke_baseline import (KERNEL_FACTOR, PORTABLE_FLOOR, ROUNDING, SEED_SDS, entry_tolerance, group_tolerance,
                                     metric_tolerances, portable_tolerance, tolerance_text)

# An AE case measured number by number: one kernel perturbation moved R@20 by 2% and the loss by 0.02%;
# over five seeds N@10 spread by 0.6% and the last epoch's loss by 0.5%.
SPREAD = {
    "attention": "AE",
    "kernels": {"avx2": 0.02},
    "metric_kernels": {"avx2": {"model/input N@10": 0.004, "model/input R@20": 0.02,
                                "training/loss last epoch": 0.0002}},
    "seeds": {"n": 5, "metrics": {"N@10": {"rel_sd": 0.006}},
              "rel_sd": {"model/input N@10": 0.006, "model/input R@20": 0.004, "training/loss last epoch": 0.005}},
}


def test_each_number_gets_its_own_tolerance():
    per = metric_tolerances(SPREAD)
    assert per["model/input R@20"] == KERNEL_FACTOR * 0.02  # its kernel move rules
    assert per["model/input N@10"] == round(SEED_SDS * 0.006, 4)  # its seed spread rules
    assert per["training/loss last epoch"] == SEED_SDS * 0.005
    tol, how = portable_tolerance(SPREAD)
    assert tol.rel == max(per.values()) and "each number within" in how


def test_an_entry_holds_each_number_to_its_own_and_most_popular_exactly():
    entry = {"portable_tolerance": {"rel": 0.04, "abs": 1e-6, "how": "x",
                                    "per_metric": {"model/input N@10": 0.018, "training/loss last epoch": 0.015}}}
    assert group_tolerance("model/input", entry, exact=False, name="N@10").rel == 0.018
    assert group_tolerance("training/loss", entry, exact=False, name="last epoch").rel == 0.015
    assert group_tolerance("model/input", entry, exact=False, name="R@5").rel == 0.04  # not measured alone: the case's
    assert group_tolerance("most-popular/input", entry, exact=False, name="N@10") == ROUNDING
    assert group_tolerance("model/input", entry, exact=True, name="N@10") == ROUNDING
    assert entry_tolerance(entry).rel == 0.04
    assert "each number its own" in tolerance_text(entry, exact=False)


def test_a_case_measured_case_by_case_keeps_one_tolerance():
    old = {k: v for k, v in SPREAD.items() if k != "metric_kernels"}
    assert metric_tolerances(old) == {}
    tol, how = portable_tolerance(old)
    assert tol.rel == KERNEL_FACTOR * 0.02 and "each number" not in how
    assert portable_tolerance({"attention": "AR", "kernels": {"avx2": 0.0}})[0] == PORTABLE_FLOOR


def test_kernel_moves_alone_set_each_number():
    only = {"attention": "AR", "kernels": {"x": 0.01}, "metric_kernels": {"x": {"model/input N@10": 0.008}}}
    assert metric_tolerances(only) == {"model/input N@10": KERNEL_FACTOR * 0.008}
    tol, how = portable_tolerance(only)
    assert tol.rel == KERNEL_FACTOR * 0.008 and "seeds" not in how
