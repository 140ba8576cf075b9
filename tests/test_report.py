"""Report aggregation: the paper's own statistics, tables from records, and the writers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sarbench.data import DATASETS
from sarbench.data.sequences import DatasetStats
from sarbench.paper import METRICS, VARIANTS, load_table, paper_cells
from sarbench.report import (
    best_over_best,
    build_report,
    build_tables,
    comparability,
    data_table,
    gain_statistics,
    relative_gain,
    summary_text,
)
from sarbench.store import CorruptRecordWarning, ResultRecord, ResultStore


def two(x: float) -> str:
    return f"{x:.2f}"


# --- the paper's published statistics, recomputed from the paper's cells ----------------------
def test_table4_statistics_reproduce_the_paper():
    s = gain_statistics(paper_cells("vanilla"))
    assert {d: two(v) for d, v in s.per_dataset.items()} == {
        "beauty": "48.26", "sports": "58.79", "video": "16.30", "yelp": "-31.33", "ml-1m": "34.73"}
    assert (two(s.overall), two(s.recall), two(s.ndcg)) == ("25.35", "18.75", "31.95")
    assert s.cells == 30


def test_table5_statistics_reproduce_the_paper():
    s = gain_statistics(paper_cells("design"))
    assert {v: two(g) for v, g in s.per_variant.items()} == {
        "local_attn": "19.64", "ssept": "24.01", "loss_ce": "28.04", "loss_bpr": "35.77"}
    assert two(s.best_over_best) == "21.60"


def test_table6_statistics_reproduce_the_paper():
    s = gain_statistics(paper_cells("hf"))
    assert {v: two(g) for v, g in s.per_variant.items()} == {"albert": "16.21", "llama": "14.37", "transfo_xl": "15.30"}
    assert two(s.best_over_best) == "16.00"


@pytest.mark.parametrize("table, number", [("design", "table5"), ("hf", "table6")])
def test_best_over_best_matches_the_published_column(table, number):
    ours = best_over_best(paper_cells(table))
    published = load_table(number)[["dataset", "metric", "best_improvement_pct"]]
    merged = ours.merge(published, on=["dataset", "metric"], validate="one_to_one")
    assert len(merged) == 30
    assert [two(g) for g in merged.gain_pct] == [two(g) for g in merged.best_improvement_pct]


def test_gain_of_means_is_not_the_papers_definition():
    """The paper averages per-cell gains; the gain of mean metric values gives other numbers."""
    cells = paper_cells("vanilla")
    beauty = cells[cells.dataset == "beauty"].groupby("attention")["value"].mean()
    assert two(relative_gain(beauty["AR"], beauty["AE"])) != "48.26"
    assert two(gain_statistics(cells).per_dataset["beauty"]) == "48.26"


# --- records -> tables -----------------------------------------------------------------------
PAPER4 = paper_cells("vanilla")


def make_records(dataset="beauty", scale="paper", seeds=(0, 1), factor=1.0, fingerprint=None, table="vanilla",
                 variants=("vanilla",), per_user=True):
    """Records whose seed-mean equals ``factor`` × the paper's cell (seeds spread ±1%)."""
    fp = fingerprint or DATASETS[dataset].paper_fingerprint or "feedfacecafebeef"
    cells = paper_cells(table)
    out = []
    rng = np.random.default_rng(0)
    for variant in variants:
        for att in ("AE", "AR"):
            sel = cells[(cells.dataset == dataset) & (cells.attention == att) & (cells.variant == variant)]
            base = dict(zip(sel.metric, sel.value * factor))
            for i, seed in enumerate(seeds):
                spread = 1 + (0.01 if i % 2 else -0.01) * (len(seeds) > 1)
                pu = {}
                if per_user:
                    users = np.arange(300)
                    p = base["N@10"] * 5
                    pu = {"users": users, "N@10": np.where(rng.random(300) < p, 0.2, 0.0)}
                out.append(ResultRecord(
                    case_id=f"{table}[{dataset}-{variant}-{att}]", table=table, dataset=dataset,
                    model="bert4rec" if table == "vanilla" else variant, variant=variant, attention=att,
                    loss="bce" if variant == "ssept" else ("bpr" if variant == "loss_bpr" else "ce"),
                    config={"d": 64}, fingerprint=fp, seed=seed, scale=scale,
                    metrics={m: v * spread for m, v in base.items()}, per_user=pu, code_version="0.1.0",
                    host={}, data_stats=DatasetStats(**DATASETS[dataset].paper.__dict__).as_dict()
                    if dataset in DATASETS else {},
                ))
    return out


def test_vanilla_table_from_records():
    records = make_records("beauty", factor=1.1) + make_records("sports", factor=1.0, seeds=(0,))
    report = build_tables(records)
    comp = report.section("table4_vanilla_paper").table
    assert list(comp.columns) == [
        "dataset", "metric", "AE", "AE std", "AE n", "AR", "AR std", "AR n", "paper AE", "paper AR",
        "AE vs paper %", "AR vs paper %", "gain %", "paper gain %", "note"]
    assert list(comp.dataset) == ["beauty"] * 6 + ["sports"] * 6
    assert list(comp.metric) == list(METRICS) * 2
    beauty = comp[comp.dataset == "beauty"]
    np.testing.assert_allclose(beauty["AE vs paper %"], 10.0, atol=1e-9)
    np.testing.assert_allclose(beauty["gain %"], beauty["paper gain %"], atol=1e-9)
    assert (beauty["AE n"] == 2).all() and (beauty["AE std"] > 0).all()
    assert (beauty.note == "").all()
    sports = comp[comp.dataset == "sports"]
    assert sports.note.str.startswith("not comparable: not the paper's version").all()
    assert sports["AE std"].isna().all()  # one seed: no spread

    summary = report.section("table4_vanilla_paper_summary").table
    row = summary.set_index("statistic")
    assert two(row.loc["mean gain beauty", "ours %"]) == "48.26"  # scaling both models keeps the gain
    assert two(row.loc["mean gain beauty", "paper all cells %"]) == "48.26"
    assert two(row.loc["mean gain, all cells", "paper all cells %"]) == "25.35"
    same = gain_statistics(PAPER4[PAPER4.dataset.isin(["beauty", "sports"])]).overall
    assert row.loc["mean gain, all cells", "paper same cells %"] == pytest.approx(same)
    assert "sports" in row.loc["mean gain, all cells", "note"] and row.loc["mean gain beauty", "note"] == ""

    sig = report.section("table4_vanilla_paper_significance").table
    assert list(sig.dataset) == ["beauty", "sports"]
    assert set(sig.verdict) <= {"AR better", "AE better", "no significant difference"}
    assert (sig["AR seeds"].tolist(), sig["users"].tolist()) == ([2, 1], [300, 300])
    assert sig.note.iloc[1].startswith("not comparable")


@pytest.mark.parametrize("kwargs, reason", [
    (dict(dataset="beauty", scale="smoke"), "smoke scale"),
    (dict(dataset="beauty", fingerprint="0000000000000000"), "fingerprint"),
])
def test_not_comparable_rows_are_marked(kwargs, reason):
    report = build_tables(make_records(**kwargs, per_user=False))
    for section in report.sections:
        if "note" in section.table and section.name != "table1_data":
            notes = section.table["note"]
            assert notes.str.startswith("not comparable").all() and notes.str.contains(reason).all(), section.name


def test_synthetic_and_mixed_fingerprints():
    assert comparability("synthetic", "x", "paper").startswith("not comparable: synthetic")
    assert comparability("ml-1m", DATASETS["ml-1m"].paper_fingerprint, "paper") == ""
    records = make_records("video", per_user=False) + make_records("video", fingerprint="abcdef0123456789",
                                                                   per_user=False)
    comp = build_tables(records).section("table4_vanilla_paper").table
    assert set(comp.dataset) == {"video", "video@abcdef01"}
    assert (comp[comp.dataset == "video"].note == "").all()
    assert comp[comp.dataset == "video@abcdef01"].note.str.startswith("not comparable").all()


def test_design_table_and_loss_mismatch():
    records = make_records("ml-1m", table="design", variants=VARIANTS["design"], per_user=False)
    report = build_tables(records)
    summary = report.section("table5_design_paper_summary").table.set_index("statistic")
    for variant in VARIANTS["design"]:
        assert summary.loc[f"mean gain {variant}", "ours %"] == pytest.approx(
            summary.loc[f"mean gain {variant}", "paper same cells %"])
    assert two(summary.loc["best AR over best AE", "paper all cells %"]) == "21.60"
    # The same design trained with a loss that is not the paper's becomes its own column group.
    other = [ResultRecord(**{**r.to_dict(), "loss": "bpr", "key": "", "case_id": r.case_id + "-bpr"})
             for r in records if r.variant == "local_attn"]
    comp = build_tables(records + other).section("table5_design_paper").table
    assert "local_attn/bpr" in set(comp.variant)
    assert comp[comp.variant == "local_attn/bpr"]["paper AE"].isna().all()


def test_hf_table_from_records_reproduces_the_papers_statistics():
    """Records equal to the paper's Table 6 give its per-cell gains, per-backbone means (16.21 / 14.37 /
    15.30), best over best (16.00) as our own numbers, and one paired test per dataset and backbone."""
    from sarbench.paper import DATASET_ORDER

    records = [r for d in DATASET_ORDER for r in make_records(d, table="hf", variants=VARIANTS["hf"])]
    report = build_tables(records)
    comp = report.section("table6_hf_paper").table
    assert len(comp) == 5 * 3 * 6 and set(comp.variant) == set(VARIANTS["hf"])
    np.testing.assert_allclose(comp["gain %"], comp["paper gain %"], atol=1e-9)
    np.testing.assert_allclose(comp["AR vs paper %"], 0.0, atol=1e-9)  # the seeds' mean is the paper's cell
    summary = report.section("table6_hf_paper_summary").table.set_index("statistic")
    for column in ("ours %", "paper all cells %"):
        got = [two(summary.loc[f"mean gain {v}", column]) for v in VARIANTS["hf"]]
        assert got == ["16.21", "14.37", "15.30"], column
        assert two(summary.loc["best AR over best AE", column]) == "16.00", column
    sig = report.section("table6_hf_paper_significance").table
    assert len(sig) == 15 and set(zip(sig.dataset, sig.variant)) == {(d, v) for d in DATASET_ORDER
                                                                       for v in VARIANTS["hf"]}
    assert (sig["users"] == 300).all() and (sig["AR seeds"] == 2).all()


# --- Table 1 ---------------------------------------------------------------------------------
def test_data_table():
    stats = {"ml-1m": DatasetStats(6040, 3416, 999611, 165.5, 0.0484),
             "synthetic": {"users": 10, "items": 5, "interactions": 40, "avg_length": 4.0, "density": 0.8}}
    table = data_table(stats, {"ml-1m": DATASETS["ml-1m"].paper_fingerprint})
    assert list(table.dataset) == ["ml-1m", "synthetic"]
    assert table.loc[0, "paper users"] == 6040 and table.loc[0, "interactions"] == 999611
    assert table.loc[0, "note"] == "" and table.loc[1, "note"].startswith("not comparable")
    assert np.isnan(table.loc[1, "paper users"])
    with pytest.raises(ValueError, match="density"):
        data_table({"beauty": {"users": 1, "items": 1, "interactions": 1, "avg_length": 1.0}})


# --- writers ---------------------------------------------------------------------------------
def test_build_report_writes_all_formats(tmp_path):
    store = ResultStore(tmp_path / "results")
    for rec in make_records("beauty"):
        store.write(rec)
    (tmp_path / "results" / "broken.s0.abc.json").write_text("{")
    with pytest.warns(CorruptRecordWarning, match="broken"):
        paths = build_report(tmp_path / "results", tmp_path / "reports")
    names = {p.name for p in paths}
    for stem in ("table1_data", "table4_vanilla_paper", "table4_vanilla_paper_summary",
                 "table4_vanilla_paper_significance"):
        assert {f"{stem}.md", f"{stem}.csv", f"{stem}.tex"} <= names
    assert {"report.md", "summary.txt"} <= names
    assert all(p.exists() for p in paths)

    csv = pd.read_csv(tmp_path / "reports" / "table4_vanilla_paper.csv")
    assert len(csv) == 6 and list(csv.metric) == list(METRICS)
    assert csv["paper AR"].tolist() == PAPER4[(PAPER4.dataset == "beauty") & (PAPER4.attention == "AR")].value.tolist()
    md = (tmp_path / "reports" / "table4_vanilla_paper.md").read_text().splitlines()
    assert md[0].startswith("| dataset") and "paper gain %" in md[0] and len(md) == 2 + 6
    tex = (tmp_path / "reports" / "table4_vanilla_paper.tex").read_text()
    assert "\\toprule" in tex and "gain \\%" in tex and tex.count("\\\\") == 1 + 6
    report_md = (tmp_path / "reports" / "report.md").read_text()
    assert "## Table 4: vanilla AE vs AR (paper scale): ours vs paper" in report_md
    summary = (tmp_path / "reports" / "summary.txt").read_text()
    assert "mean gain beauty" in summary and "+48.26%" in summary and "N@10" in summary


def test_empty_results_give_an_empty_report(tmp_path):
    paths = build_report(tmp_path / "nothing", tmp_path / "out")
    assert sorted(p.name for p in paths) == ["report.md", "summary.txt"]
    assert "No results to report" in (tmp_path / "out" / "report.md").read_text()
    assert "no results" in summary_text(build_tables([]))


def test_runs_stopped_before_the_early_stop_are_marked():
    records = make_records("ml-1m", seeds=(0,), per_user=False)
    ae = next(r for r in records if r.attention == "AE")
    ae.extra = {"stopped": "interrupted", "best_epoch": 58}
    ae.epochs = 58
    for r in records:
        if r.attention == "AR":
            r.extra = {"stopped": "patience", "best_epoch": 80}
    table = next(s.table for s in build_tables(records).sections if s.name.startswith("table4"))
    assert (table["note"] == "AE stopped by interrupted after 58 epochs (best 58), before the early stop").all()
    # with a not-comparable reason as well, that one stays first
    for r in records:
        r.fingerprint = "0000000000000000"
    table = next(s.table for s in build_tables(records).sections if s.name.startswith("table4"))
    notes = table["note"]
    assert notes.str.startswith("not comparable").all()
    assert notes.str.endswith(" / AE stopped by interrupted after 58 epochs (best 58), before the early stop").all()


def test_summary_text_compares_the_same_cells_with_the_paper():
    """An ml-1m-only run is compared with the paper's ml-1m cells, not with its all-dataset mean."""
    import pandas as pd

    from sarbench.report.tables import Report, Section

    table = pd.DataFrame([{"statistic": "mean gain, all cells", "ours %": 35.30, "paper same cells %": 34.73,
                           "paper all cells %": 25.35, "cells": 6, "note": ""}])
    text = summary_text(Report(sections=[Section("table4_vanilla_paper_summary", "Table 4", table)], source="r",
                               n_records=2))
    line = next(x for x in text.splitlines() if "mean gain, all cells" in x)
    assert "paper, same cells   +34.73%" in line and "(paper, all its cells +25.35%)" in line
