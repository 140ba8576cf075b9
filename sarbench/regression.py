"""Regression against reported numbers: the committed smoke baseline and the paper deviations file.

Two committed files under ``reports/baseline/``:

``smoke.json``
    What every smoke case computed, and how a new run compares with it: sarbench/smoke_baseline.py.
    A change that moves a number fails CI until the baseline is updated on purpose with
    ``pytest bench --update-baseline`` (the diff of smoke.json then shows the move in review).

``paper/*.json`` and ``deviations.csv``
    Records of paper-scale runs, and every cell of them that lies outside the paper band, with our
    value, the paper's and a reason. CI fails on an unlisted deviation and on a listed one that no
    longer deviates.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

from .cases import PAPER_BAND
from .config import Attention
from .paper import paper_cells
from .smoke_baseline import (  # noqa: F401  (the smoke baseline's API, re-exported)
    BASELINE_DIR, ROUNDING, SMOKE_FILE, SMOKE_GROUPS, Tolerance, check_smoke_baseline, load_smoke,
    platform_difference, smoke_differences, smoke_entry, smoke_platform, smoke_values, update_smoke,
)

log = logging.getLogger(__name__)

DEVIATIONS_FILE = "deviations.csv"


# The band of a cell's mean over seeds, where three or more seeds measured its spread: the paper's
# value is one run and ours a mean of n, so their difference has a seed standard deviation of
# sigma * sqrt(1 + 1/n) (sigma: the cell's relative standard deviation over our seeds, the paper's run
# assumed to spread as ours); the band is SPREAD_SDS of those, and never narrower than
# PROTOCOL_ALLOWANCE, the room our documented protocol differences (AdamW bias correction, patience
# 20, pessimistic ties) need.
MIN_SEEDS = 3
SPREAD_SDS = 3.0
PROTOCOL_ALLOWANCE = 0.05


def outside_band(ours: float, paper: float, band: float = PAPER_BAND) -> bool:
    """Whether ``ours`` lies outside ``band`` (relative; default PAPER_BAND) around the paper's value."""
    return abs(ours - paper) > band * paper


def spread_band(values) -> float:
    """The band of the mean of ``values`` (one cell over n >= MIN_SEEDS seeds): see SPREAD_SDS."""
    import statistics

    n, mean = len(values), statistics.fmean(values)
    rel_sd = statistics.stdev(values) / mean if mean else 0.0
    return max(PROTOCOL_ALLOWANCE, SPREAD_SDS * rel_sd * (1 + 1 / n) ** 0.5)


def _paper_records(records) -> list:
    """The paper-scale records of the paper's model on the paper's version of the data."""
    return [r for r in records if r.scale == "paper" and r.table == "vanilla" and r.extra.get("paper_version")
            # another model in Table 4 (GRU4Rec, yours) has no paper cell
            and getattr(r, "variant", "vanilla") == "vanilla"]


def paper_deviations(records) -> list[dict]:
    """Every cell of paper-scale records on the paper's data that lies outside the paper band: each
    seed's value against PAPER_BAND, and, for a case with MIN_SEEDS or more seeds, the mean over its
    seeds (``seed`` "mean") against the band its measured spread gives (:func:`spread_band`)."""
    cells = paper_cells("vanilla")
    out = []
    by_case: dict[str, list] = {}
    for rec in _paper_records(records):
        by_case.setdefault(rec.case_id, []).append(rec)
        sub = cells[(cells.dataset == rec.dataset) & (cells.attention == rec.attention)]
        for metric, paper in zip(sub.metric, sub.value):
            ours = rec.metrics.get(metric)
            if ours is not None and outside_band(ours, paper):
                out.append({"case_id": rec.case_id, "seed": rec.seed, "metric": metric,
                            "ours": round(ours, 4), "paper": paper})
    for case_id, recs in by_case.items():
        seeds = {r.seed: r for r in recs}
        if len(seeds) < MIN_SEEDS:
            continue
        rec = recs[0]
        sub = cells[(cells.dataset == rec.dataset) & (cells.attention == rec.attention)]
        for metric, paper in zip(sub.metric, sub.value):
            values = [r.metrics[metric] for r in seeds.values() if metric in r.metrics]
            if len(values) < MIN_SEEDS:
                continue
            band = spread_band(values)
            mean = sum(values) / len(values)
            if outside_band(mean, paper, band):
                out.append({"case_id": case_id, "seed": "mean", "metric": metric, "ours": round(mean, 4),
                            "paper": paper, "band": round(band, 4), "seeds": len(values)})
    return out


def load_deviations(folder: Path = BASELINE_DIR) -> list[dict]:
    path = Path(folder) / DEVIATIONS_FILE
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for i, row in enumerate(rows, 2):
        if not row.get("reason", "").strip():
            raise ValueError(f"{path}:{i}: deviation of {row.get('case_id')} {row.get('metric')} gives no reason")
    return rows


def check_deviations(records, listed: list[dict]) -> tuple[list[str], list[str]]:
    """(unlisted deviations, listed cells that no longer deviate), as readable lines."""
    found = {(d["case_id"], str(d["seed"]), d["metric"]): d for d in paper_deviations(records)}
    listed_keys = {(r["case_id"], str(r["seed"]), r["metric"]) for r in listed}
    unlisted = [f"{k[0]} seed {k[1]} {k[2]}: ours {d['ours']} vs paper {d['paper']}"
                + (f" (mean of {d['seeds']} seeds, band {d['band']:.1%} from their spread)" if "band" in d else "")
                for k, d in found.items() if k not in listed_keys]
    stale = [f"{k[0]} seed {k[1]} {k[2]}" for k in listed_keys if k not in found]
    return unlisted, stale


# --- the checks a smoke case makes (bench/test_vanilla.py, test_design.py, test_hf.py) ---------------

BEATS_POPULAR_ALPHA = 0.01
# The data must be able to show a win: at the test's level and 80% power, the smallest mean NDCG@10 gain
# it detects (sd of the per-user differences x (z_0.99 + z_0.8) / sqrt(users)) must be below this share of
# most-popular's NDCG@10. The suite's smoke subsets detect a few percent; S3-Rec's LastFM (1,090 users)
# cannot, and a user's run there is not failed for our threshold.
DETECTABLE_SHARE = 0.5


def detectable_gain(diffs, alpha: float = BEATS_POPULAR_ALPHA, power: float = 0.8) -> float:
    """The smallest mean paired difference a one-sided test at ``alpha`` finds with ``power`` (normal approximation)."""
    import numpy as np
    from scipy.stats import norm

    diffs = np.asarray(diffs, dtype=np.float64)
    if len(diffs) < 2:
        return float("inf")
    return float((norm.ppf(1 - alpha) + norm.ppf(power)) * diffs.std(ddof=1) / np.sqrt(len(diffs)))


def check_beats_most_popular(record, alpha: float = BEATS_POPULAR_ALPHA) -> str:
    """Assert that ``record``'s model is clearly better than most-popular on the same test users: a
    paired per-user test on NDCG@10 (Wilcoxon signed-rank, bootstrap CI) at level ``alpha``.

    Sized to the data: where the test could not detect a gain of DETECTABLE_SHARE of most-popular's
    NDCG@10 (too few users for its per-user spread), a run that is not significantly *worse* passes,
    and the returned sentence says so with the numbers. Returns what was found.
    """
    from .significance import AE_BETTER, AR_BETTER, compare_paired, per_user_values

    pop = record.extra["most_popular_per_user"]
    users, model_ndcg = per_user_values(record, "N@10")
    pop_users, pop_ndcg = per_user_values(type("R", (), {"per_user": pop, "case_id": "most-popular"}), "N@10")
    assert list(users) == list(pop_users), f"{record.case_id}: model and most-popular scored different users"
    cmp = compare_paired(model_ndcg, pop_ndcg, metric="N@10", alpha=alpha)
    found = (f"NDCG@10 {cmp.mean_ar:.4f} vs most-popular {cmp.mean_ae:.4f} (p={cmp.p_value:.3g}, 95% CI of the "
             f"difference [{cmp.ci_low:.4f}, {cmp.ci_high:.4f}], {cmp.n} users)")
    if cmp.verdict == AR_BETTER:  # "AR" is the first argument here: the model
        return f"beats most-popular: {found}"
    gain = detectable_gain(model_ndcg - pop_ndcg, alpha)
    if gain > DETECTABLE_SHARE * cmp.mean_ae and cmp.verdict != AE_BETTER:
        return (f"too few users to judge a win over most-popular at p < {alpha} (the smallest gain this data "
                f"detects is {gain:.4f}, over {DETECTABLE_SHARE:.0%} of most-popular's); not worse: {found}")
    raise AssertionError(f"{record.case_id}: not clearly better than most-popular (p < {alpha}): {found}")


def check_paper_band(record, paper: dict[str, float]) -> None:
    """Assert every metric of ``record`` named in ``paper`` (metric -> the paper's value) lies within
    the paper band (PAPER_BAND, relative). A record not made on the paper's version of its data
    (``extra["paper_version"]``) cannot be held to the paper's cells: it skips, with its NDCG@10."""
    if not record.extra.get("paper_version"):
        import pytest

        pytest.skip(f"{record.case_id}: data is not the paper's version; paper band not asserted "
                    f"(NDCG@10 {record.metrics['N@10']:.4f})")
    outside = [f"{m}: ours {record.metrics[m]:.4f} vs paper {p:.4f} ({(record.metrics[m] - p) / p:+.1%})"
               for m, p in paper.items() if outside_band(record.metrics[m], p)]
    assert not outside, f"{record.case_id}: outside the ±{PAPER_BAND:.0%} band: " + "; ".join(outside)


def describe_direction(label: str, cmp, seeds: int) -> str:
    """What a direction case found, in one sentence: AR vs AE on NDCG@10 with the paired test's verdict."""
    gain = "AE is 0" if cmp.mean_ae == 0 else f"{cmp.rel_gain_pct:+.1f}%"
    return (f"{label}: AR NDCG@10 {cmp.mean_ar:.4f} vs AE {cmp.mean_ae:.4f} ({gain}), p={cmp.p_value:.3g}, "
            f"95% CI of AR-AE [{cmp.ci_low:.4f}, {cmp.ci_high:.4f}], {cmp.n} users x {seeds} seed(s): {cmp.verdict}")


def check_record(record, bench, paper_band) -> list[str]:
    """The checks every bench case makes on each of its records.

    Finite metrics and a significant win over most-popular on the same split (sized to the data,
    see check_beats_most_popular); then, at smoke scale, the comparison with the smoke baseline
    (the committed one, or for a user's dataset or model the user's own), and at paper scale
    ``paper_band(record)``: the case's own comparison with the paper's cells, which skips with the
    reason where they do not apply. Returns what each check found, in words.
    """
    import math

    bad = {m: v for m, v in record.metrics.items() if not math.isfinite(v)}
    assert not bad, f"{record.case_id} seed {record.seed}: non-finite metrics {bad}"
    notes = [check_beats_most_popular(record)]
    if bench.scale.name != "paper":
        notes.append(check_smoke_baseline(record, bench.baseline, updating=bench.update_baseline,
                                          user_baseline=getattr(bench, "user_baseline", None)))
    else:
        paper_band(record)
    said = f"{record.case_id} seed {record.seed}: " + "; ".join(n for n in notes if n)
    log.info("%s", said)
    if isinstance(getattr(bench, "checks", None), list):
        bench.checks.append(said)  # shown at the end of the run (the plugin's terminal summary)
    return notes


def check_direction(label: str, runs: dict, bench, claim: str | None, why: str = "") -> None:
    """A direction case: AR vs AE on NDCG@10 over ``runs`` ({"AR": records, "AE": records}, paired by
    seed), asserted against ``claim`` ("AR", "AE") at paper scale. Smoke scale cannot judge the paper's
    claim, and without a claim (``why`` says why) there is nothing to assert: both skip, saying what
    was found."""
    import pytest

    from .data import is_paper_data
    from .significance import AE_BETTER, AR_BETTER, compare_records

    cmp = compare_records(runs["AR"], runs["AE"], metric="N@10")
    found = describe_direction(label, cmp, bench.seeds)
    if bench.scale.name != "paper":
        pytest.skip(f"smoke scale cannot judge the paper's direction claim; found {found}")
    if claim is None:
        pytest.skip(f"{why}; found {found}")
    first = runs["AR"][0]
    note = "" if is_paper_data(first.dataset, first.fingerprint) else " (note: not the paper's version of the data)"
    expected = AR_BETTER if claim == Attention.AR else AE_BETTER
    assert cmp.verdict == expected, f"paper: {claim} better on {label}; we found {found}{note}"
