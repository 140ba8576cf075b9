"""Aggregate result records into the paper's tables and write them as Markdown, CSV and LaTeX.

**How the paper's summary statistics are computed** (checked against every published number: the
test suite feeds the paper's own cells through these functions and recovers each statistic to two
decimals):

* the relative gain of AR over AE of one cell (dataset, metric, column group) is
  ``(AR − AE) / AE × 100``, from the unrounded cell values;
* a "mean gain" is the plain mean of those per-cell gains (not the gain of mean metric values):
  Table 4 per dataset over its 6 metrics, over all 30 cells, over the 15 Recall or the 15 NDCG
  cells; Tables 5 and 6 per design/backbone over its 30 cells;
* "best over best" (last column of Tables 5 and 6) is, per cell, the best AR value over all
  designs/backbones against the best AE value over all designs/backbones (the two bests may come
  from different designs); the reported average is the mean of these per-cell gains.

**Cells in long format.** Paper cells and our aggregated results share one long format:
``dataset, metric, variant, attention, value`` (see :func:`sarbench.paper.paper_cells`). Our cells
add ``std`` (over seeds, ddof 1; NaN with one seed), ``n_seeds`` and ``note``.

**Comparability.** A result is compared with the paper's numbers cell by cell only when it was run
at ``paper`` scale on the paper's version of the data (the registry's ``paper_fingerprint`` equals
the record's data fingerprint). Every row that fails this carries a note starting with
``not comparable:`` in every table, saying why (synthetic data, not the paper's version of the
data, a fingerprint that differs, smoke scale). A case trained with another loss than the paper's
column is shown as its own column group ``<variant>/<loss>``, which has no paper counterpart.

Entry point: :func:`build_report` (``sarbench report DIR``).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from .data.registry import DATASETS
from .paper import (
    DATASET_ORDER,
    METRICS,
    PAPER_LOSS,
    VARIANTS,
    paper_cells,
)
from .significance import compare_records
from .store import ResultRecord, ResultStore, latest_per_seed

log = logging.getLogger(__name__)

TABLE_TITLES = {
    "vanilla": "Table 4: vanilla AE vs AR",
    "design": "Table 5: design space",
    "hf": "Table 6: HuggingFace backbones",
}
NOT_COMPARABLE = "not comparable"
CELL_KEYS = ["dataset", "variant", "metric"]


# --- per-cell gains and the paper's statistics ----------------------------------------------
def relative_gain(ar, ae):
    """Relative gain of AR over AE in percent, ``(AR − AE) / AE × 100``; NaN where AE is 0.

    Example:
        >>> round(relative_gain(0.3008, 0.2344), 2)
        28.33
    """
    ar_arr = np.asarray(ar, dtype=np.float64)
    ae_arr = np.asarray(ae, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(ae_arr != 0, (ar_arr - ae_arr) / ae_arr * 100.0, np.nan)
    return float(out) if out.ndim == 0 else out


def _metric_order(metrics: Iterable[str]) -> list[str]:
    metrics = list(dict.fromkeys(metrics))
    known = [m for m in METRICS if m in metrics]
    return known + sorted(m for m in metrics if m not in METRICS)


def _dataset_order(datasets: Iterable[str]) -> list[str]:
    datasets = list(dict.fromkeys(datasets))

    def rank(name: str):
        base = name.split("@")[0]
        return (DATASET_ORDER.index(base) if base in DATASET_ORDER else len(DATASET_ORDER), name)

    return sorted(datasets, key=rank)


def _check_cells(cells: pd.DataFrame, name: str = "cells") -> None:
    missing = [c for c in [*CELL_KEYS, "attention", "value"] if c not in cells.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {', '.join(missing)}; has {', '.join(map(str, cells.columns))}")
    dup = cells.duplicated([*CELL_KEYS, "attention"])
    if dup.any():
        first = cells[dup].iloc[0]
        raise ValueError(
            f"{name} has more than one value for dataset={first.dataset!r}, variant={first.variant!r}, "
            f"metric={first.metric!r}, attention={first.attention!r}"
        )


def cell_gains(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, variant, metric) with both an AE and an AR value: ``AE, AR, gain_pct``."""
    _check_cells(cells)
    wide = cells.set_index([*CELL_KEYS, "attention"])["value"].unstack("attention")
    wide = wide.reindex(columns=["AE", "AR"]).dropna(subset=["AE", "AR"])
    out = wide.reset_index()
    out.columns.name = None
    out["gain_pct"] = relative_gain(out["AR"].to_numpy(), out["AE"].to_numpy())
    return out


def best_over_best(cells: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, metric): the best AE and the best AR over all variants, and the gain between them.

    Columns: ``dataset, metric, best_AE, best_AE_variant, best_AR, best_AR_variant, gain_pct``.
    """
    _check_cells(cells)
    rows = []
    for (dataset, metric), group in cells.dropna(subset=["value"]).groupby(["dataset", "metric"], sort=False):
        ae = group[group.attention == "AE"]
        ar = group[group.attention == "AR"]
        if ae.empty or ar.empty:
            continue
        best_ae = ae.loc[ae["value"].idxmax()]
        best_ar = ar.loc[ar["value"].idxmax()]
        rows.append({
            "dataset": dataset,
            "metric": metric,
            "best_AE": float(best_ae.value),
            "best_AE_variant": best_ae.variant,
            "best_AR": float(best_ar.value),
            "best_AR_variant": best_ar.variant,
            "gain_pct": relative_gain(float(best_ar.value), float(best_ae.value)),
        })
    columns = ["dataset", "metric", "best_AE", "best_AE_variant", "best_AR", "best_AR_variant", "gain_pct"]
    return pd.DataFrame(rows, columns=columns)


def _mean(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else math.nan


@dataclass(frozen=True)
class GainStatistics:
    """Mean AR-over-AE gains (percent) of a set of cells, computed as the paper does.

    ``per_dataset`` averages over all metrics and variants of a dataset, ``per_variant`` over all
    datasets and metrics of a variant; ``recall``/``ndcg`` over the R@k / N@k cells; ``best_over_best``
    is the mean per-cell gain of the best AR over the best AE (NaN with fewer than two variants).
    """

    cells: int
    overall: float
    recall: float
    ndcg: float
    per_dataset: dict[str, float] = field(default_factory=dict)
    per_variant: dict[str, float] = field(default_factory=dict)
    best_over_best: float = math.nan


def gain_statistics(cells: pd.DataFrame) -> GainStatistics:
    """The paper's summary statistics of ``cells`` (long format; see the module doc).

    Example:
        >>> from sarbench.paper import paper_cells
        >>> stats = gain_statistics(paper_cells("vanilla"))
        >>> round(stats.per_dataset["beauty"], 2), round(stats.overall, 2)
        (48.26, 25.35)
    """
    gains = cell_gains(cells)
    is_recall = gains["metric"].str.startswith("R@")
    is_ndcg = gains["metric"].str.startswith("N@")
    per_dataset = {d: _mean(gains.loc[gains.dataset == d, "gain_pct"]) for d in _dataset_order(gains["dataset"])}
    per_variant = {v: _mean(gains.loc[gains.variant == v, "gain_pct"]) for v in dict.fromkeys(gains["variant"])}
    variants = cells.loc[cells["value"].notna(), "variant"].nunique()
    bob = _mean(best_over_best(cells)["gain_pct"]) if variants > 1 else math.nan
    return GainStatistics(
        cells=len(gains),
        overall=_mean(gains["gain_pct"]),
        recall=_mean(gains.loc[is_recall, "gain_pct"]),
        ndcg=_mean(gains.loc[is_ndcg, "gain_pct"]),
        per_dataset=per_dataset,
        per_variant=per_variant,
        best_over_best=bob,
    )


# --- comparability ---------------------------------------------------------------------------
def comparability(dataset: str, fingerprint: str | None = None, scale: str | None = None) -> str:
    """Empty when results on this data and scale compare with the paper cell by cell; otherwise a
    note starting with ``"not comparable: "`` that gives the reasons.

    ``scale=None`` leaves the scale out (for the data table).

    Example:
        >>> comparability("synthetic", "0123", "paper")
        'not comparable: synthetic data, not a dataset of the paper'
    """
    reasons = []
    info = DATASETS.get(dataset)
    if info is None:
        reasons.append("synthetic data, not a dataset of the paper" if dataset == "synthetic"
                       else f"{dataset!r} is not a dataset of the paper")
    elif info.paper_fingerprint is None:
        reasons.append("not the paper's version of the data")
    elif fingerprint is not None and fingerprint != info.paper_fingerprint:
        reasons.append(f"data fingerprint {fingerprint} differs from the paper's data ({info.paper_fingerprint})")
    if scale is not None and scale != "paper":
        reasons.append(f"{scale} scale")
    return f"{NOT_COMPARABLE}: " + "; ".join(reasons) if reasons else ""


# --- records -> cells ------------------------------------------------------------------------
def variant_label(record: ResultRecord) -> str:
    """The column group a record fills: its variant, or ``variant/loss`` when the loss is not the
    loss behind the paper's column."""
    paper_loss = PAPER_LOSS.get(record.variant)
    if paper_loss is not None and record.loss != paper_loss:
        return f"{record.variant}/{record.loss}"
    return record.variant


def record_labels(records: Sequence[ResultRecord]) -> list[tuple[str, str]]:
    """``(dataset label, variant label)`` of each record, as the tables show them.

    The dataset label is the registry name, suffixed with ``@<fingerprint>`` when one table and scale
    hold the same dataset with several fingerprints (the paper's version keeps the plain name). The
    variant label is :func:`variant_label`, suffixed with ``[<case id>]`` when several cases would
    otherwise fill the same cell (same table, scale, data, variant and attention); that is logged.
    """
    records = list(records)
    fps: dict[tuple, set] = {}
    for r in records:
        fps.setdefault((r.table, r.scale, r.dataset), set()).add(r.fingerprint)
    datasets = []
    for r in records:
        info = DATASETS.get(r.dataset)
        paper_fp = info.paper_fingerprint if info else None
        several = len(fps[(r.table, r.scale, r.dataset)]) > 1
        datasets.append(f"{r.dataset}@{r.fingerprint[:8]}" if several and r.fingerprint != paper_fp else r.dataset)
    variants = [variant_label(r) for r in records]
    cases: dict[tuple, set] = {}
    for r, d, v in zip(records, datasets, variants):
        cases.setdefault((r.table, r.scale, d, v, r.attention), set()).add(r.case_id)
    out = []
    for r, d, v in zip(records, datasets, variants):
        ids = cases[(r.table, r.scale, d, v, r.attention)]
        if len(ids) > 1:
            log.warning("cases %s all fill %s/%s/%s/%s; shown separately", sorted(ids), r.table, d, v, r.attention)
            v = f"{v}[{r.case_id}]"
        out.append((d, v))
    return out


NOTE_SEP = " / "  # between notes (safe in Markdown cells); a not-comparable note lists its reasons with "; "


def _join_notes(notes) -> str:
    """Distinct non-empty notes in order, joined by NOTE_SEP (a not-comparable note stays first)."""
    seen = list(dict.fromkeys(n for part in notes if isinstance(part, str) for n in part.split(NOTE_SEP) if n))
    return NOTE_SEP.join(sorted(seen, key=lambda n: not n.startswith(NOT_COMPARABLE)))


def stopping_note(rec: ResultRecord) -> str:
    """A paper-scale run that did not reach the protocol's early stop says so: its numbers are not final."""
    stopped = (rec.extra or {}).get("stopped")
    if rec.scale != "paper" or stopped in (None, "patience"):
        return ""
    return (f"{rec.attention} stopped by {stopped} after {rec.epochs} epochs (best {rec.extra.get('best_epoch')}), "
            f"before the early stop")


def _display_path(path) -> str:
    """The results folder as the report names it: relative to the working directory when inside it,
    else only its name (a report is committed and shared; a machine's absolute paths are noise)."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return p.name if p.is_absolute() else str(p)


def records_frame(records: Iterable[ResultRecord]) -> pd.DataFrame:
    """One row per record and metric: ``table, scale, dataset, fingerprint, variant, loss, attention,
    seed, metric, value, case_id, note`` (dataset and variant are the labels of :func:`record_labels`).
    """
    records = list(records)
    rows = []
    for rec, (dataset, variant) in zip(records, record_labels(records)):
        note = _join_notes([comparability(rec.dataset, rec.fingerprint, rec.scale), stopping_note(rec)])
        for metric, value in rec.metrics.items():
            rows.append({
                "table": rec.table,
                "scale": rec.scale,
                "dataset": dataset,
                "fingerprint": rec.fingerprint,
                "variant": variant,
                "loss": rec.loss,
                "attention": rec.attention,
                "seed": rec.seed,
                "metric": metric,
                "value": float(value),
                "case_id": rec.case_id,
                "note": note,
            })
    columns = ["table", "scale", "dataset", "fingerprint", "variant", "loss", "attention", "seed", "metric",
               "value", "case_id", "note"]
    return pd.DataFrame(rows, columns=columns)


def aggregate(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (ddof 1) and number of seeds per cell, from :func:`records_frame` rows.

    Columns: ``table, scale, dataset, fingerprint, variant, attention, metric, value, std, n_seeds, note``.
    """
    keys = ["table", "scale", "dataset", "fingerprint", "variant", "attention", "metric"]
    if frame.empty:
        return pd.DataFrame(columns=[*keys, "value", "std", "n_seeds", "note"])
    grouped = frame.groupby(keys, sort=False)
    out = grouped["value"].agg(value="mean", std="std", n_seeds="count").reset_index()
    out["note"] = grouped["note"].agg(_join_notes).to_numpy()
    return out


# --- comparison with the paper ---------------------------------------------------------------
def comparison_table(ours: pd.DataFrame, paper: pd.DataFrame | None) -> pd.DataFrame:
    """Our cells beside the paper's, one row per (dataset, variant, metric).

    Columns: ``dataset, variant, metric, AE, AE std, AE n, AR, AR std, AR n, paper AE, paper AR,
    AE vs paper %, AR vs paper %, gain %, paper gain %, note`` where "vs paper" is
    ``(ours − paper) / paper × 100`` and "gain" the AR-over-AE gain. Paper columns are empty for rows
    without a paper counterpart.
    """
    _check_cells(ours, "ours")
    stats = ours.set_index([*CELL_KEYS, "attention"])
    wide = pd.DataFrame(index=stats.index.droplevel("attention").unique())
    for att in ("AE", "AR"):
        part = stats.xs(att, level="attention") if att in stats.index.get_level_values("attention") else None
        for col, src in ((att, "value"), (f"{att} std", "std"), (f"{att} n", "n_seeds")):
            wide[col] = part[src].reindex(wide.index) if part is not None and src in part else np.nan
    notes = stats["note"].groupby(level=CELL_KEYS).agg(_join_notes) if "note" in stats else pd.Series(dtype=object)
    if paper is not None and not paper.empty:
        ppr = paper.set_index([*CELL_KEYS, "attention"])["value"].unstack("attention")
        ppr = ppr.reindex(columns=["AE", "AR"])
        wide["paper AE"] = ppr["AE"].reindex(wide.index)
        wide["paper AR"] = ppr["AR"].reindex(wide.index)
    else:
        wide["paper AE"] = np.nan
        wide["paper AR"] = np.nan
    wide["AE vs paper %"] = relative_gain(wide["AE"].to_numpy(float), wide["paper AE"].to_numpy(float))
    wide["AR vs paper %"] = relative_gain(wide["AR"].to_numpy(float), wide["paper AR"].to_numpy(float))
    wide["gain %"] = relative_gain(wide["AR"].to_numpy(float), wide["AE"].to_numpy(float))
    wide["paper gain %"] = relative_gain(wide["paper AR"].to_numpy(float), wide["paper AE"].to_numpy(float))
    wide["note"] = notes.reindex(wide.index).fillna("").to_numpy() if len(notes) else ""
    out = wide.reset_index()
    return _sort_rows(out)


def _sort_rows(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return frame.reset_index(drop=True)
    d_order = {d: i for i, d in enumerate(_dataset_order(frame["dataset"]))}
    sort = pd.DataFrame({"d": frame["dataset"].map(d_order)})
    if "variant" in frame:
        v_order = {v: i for i, v in enumerate(_variant_order(frame["variant"]))}
        sort["v"] = frame["variant"].map(v_order)
    if "metric" in frame:
        m_order = {m: i for i, m in enumerate(_metric_order(frame["metric"]))}
        sort["m"] = frame["metric"].map(m_order)
    order = sort.sort_values(list(sort.columns), kind="stable").index
    return frame.loc[order].reset_index(drop=True)


def _variant_order(variants: Iterable[str]) -> list[str]:
    known = [v for group in VARIANTS.values() for v in group]
    variants = list(dict.fromkeys(variants))
    return sorted(variants, key=lambda v: (known.index(v.split("/")[0]) if v.split("/")[0] in known
                                           else len(known), v))


def summary_table(ours: pd.DataFrame, paper: pd.DataFrame | None) -> pd.DataFrame:
    """Mean AR-over-AE gains of our cells beside the paper's.

    Columns: ``statistic, ours %, paper same cells %, paper all cells %, cells, note``.
    "same cells" recomputes the paper's statistic on exactly the (dataset, variant, metric) cells we
    have, so the two columns compare like with like; "all cells" is the paper's published statistic.
    ``note`` names the not-comparable datasets that enter a statistic.
    """
    _check_cells(ours, "ours")
    ours_stats = gain_statistics(ours)
    gains = cell_gains(ours)
    have = set(map(tuple, gains[CELL_KEYS].to_numpy()))
    if paper is not None and not paper.empty:
        same = paper[[tuple(k) in have for k in paper[CELL_KEYS].to_numpy()]]
        paper_all = gain_statistics(paper)
        paper_same = gain_statistics(same) if not same.empty else None
    else:
        paper_all = paper_same = None
    bad: dict[str, str] = {}
    if "note" in ours:
        for d, note in zip(ours["dataset"], ours["note"].astype(str)):
            if note.startswith(NOT_COMPARABLE):
                bad.setdefault(d, note[len(NOT_COMPARABLE) + 2:])

    def note_for(datasets: Iterable[str]) -> str:
        names = [f"{d} ({bad[d]})" for d in _dataset_order(datasets) if d in bad]
        return f"{NOT_COMPARABLE}: includes {', '.join(names)}" if names else ""

    def get(stats: GainStatistics | None, attr: str, key: str | None = None) -> float:
        if stats is None:
            return math.nan
        value = getattr(stats, attr)
        return value.get(key, math.nan) if key is not None else value

    rows = []

    def add(label, attr, key=None, datasets=(), cells=0):
        rows.append({
            "statistic": label,
            "ours %": get(ours_stats, attr, key),
            "paper same cells %": get(paper_same, attr, key),
            "paper all cells %": get(paper_all, attr, key),
            "cells": cells,
            "note": note_for(datasets),
        })

    for d in ours_stats.per_dataset:
        add(f"mean gain {d}", "per_dataset", d, [d], int((gains.dataset == d).sum()))
    variants = list(ours_stats.per_variant)
    if len(variants) > 1 or (variants and variants[0] != "vanilla"):
        for v in _variant_order(variants):
            sel = gains.variant == v
            add(f"mean gain {v}", "per_variant", v, gains.loc[sel, "dataset"], int(sel.sum()))
    all_d = gains["dataset"]
    add("mean gain, all cells", "overall", None, all_d, len(gains))
    rec = gains.metric.str.startswith("R@")
    ndcg = gains.metric.str.startswith("N@")
    add("mean gain, Recall", "recall", None, gains.loc[rec, "dataset"], int(rec.sum()))
    add("mean gain, NDCG", "ndcg", None, gains.loc[ndcg, "dataset"], int(ndcg.sum()))
    if len(variants) > 1:
        bob = best_over_best(ours)
        add("best AR over best AE", "best_over_best", None, bob["dataset"], len(bob))
    return pd.DataFrame(rows, columns=["statistic", "ours %", "paper same cells %", "paper all cells %",
                                       "cells", "note"])


def significance_table(records: Sequence[ResultRecord], *, metric: str = "N@10", **kwargs) -> pd.DataFrame:
    """Paired AR-vs-AE tests per (dataset, variant), over all seeds, from records with per-user results.

    Columns: ``dataset, variant, metric, users, AR seeds, AE seeds, mean AR, mean AE, diff, gain %,
    CI low, CI high, p, verdict, note``. Groups where either side has no per-user results are left
    out (logged).
    """
    records = list(records)
    groups: dict[tuple[str, str], dict[str, list[ResultRecord]]] = {}
    notes: dict[tuple[str, str], str] = {}
    for rec, key in zip(records, record_labels(records)):
        if not rec.per_user:
            continue
        groups.setdefault(key, {"AE": [], "AR": []})[rec.attention].append(rec)
        notes[key] = comparability(rec.dataset, rec.fingerprint, rec.scale)
    rows = []
    for key, sides in groups.items():
        if not sides["AE"] or not sides["AR"]:
            log.info("significance: %s/%s has per-user results for one attention only", *key)
            continue
        try:
            res = compare_records(sides["AR"], sides["AE"], metric=metric, **kwargs)
        except (KeyError, ValueError) as exc:
            log.warning("significance: %s/%s skipped: %s", key[0], key[1], exc)
            continue
        rows.append({
            "dataset": key[0], "variant": key[1], "metric": metric, "users": res.n,
            "AR seeds": res.n_seeds_ar, "AE seeds": res.n_seeds_ae, "mean AR": res.mean_ar,
            "mean AE": res.mean_ae, "diff": res.diff, "gain %": res.rel_gain_pct, "CI low": res.ci_low,
            "CI high": res.ci_high, "p": res.p_value, "verdict": res.verdict, "note": notes[key],
        })
    columns = ["dataset", "variant", "metric", "users", "AR seeds", "AE seeds", "mean AR", "mean AE", "diff",
               "gain %", "CI low", "CI high", "p", "verdict", "note"]
    return _sort_rows(pd.DataFrame(rows, columns=columns))


# --- Table 1 ---------------------------------------------------------------------------------
_STAT_FIELDS = ("users", "items", "interactions", "avg_length", "density")


def data_table(stats: Mapping[str, object], fingerprints: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Table 1: our dataset statistics beside the paper's.

    Args:
        stats: dataset name -> ``DatasetStats`` (or its ``as_dict()``), from ``SequenceDataset.stats()``.
        fingerprints: dataset name -> ``SequenceDataset.fingerprint()``; decides comparability.

    Columns: ``dataset``, then for each of users, items, interactions, avg_length, density our
    value and ``paper <field>``, then ``fingerprint, paper fingerprint, note``.
    """
    fingerprints = dict(fingerprints or {})
    rows = []
    for name in _dataset_order(stats):
        ours = stats[name]
        ours = ours.as_dict() if hasattr(ours, "as_dict") else dict(ours)
        missing = [f for f in _STAT_FIELDS if f not in ours]
        if missing:
            raise ValueError(f"stats for {name!r} lack {', '.join(missing)}")
        info = DATASETS.get(name)
        row: dict[str, object] = {"dataset": name}
        for f in _STAT_FIELDS:
            row[f] = ours[f]
            row[f"paper {f}"] = getattr(info.paper, f) if info else np.nan
        row["fingerprint"] = fingerprints.get(name, "")
        row["paper fingerprint"] = (info.paper_fingerprint or "") if info else ""
        row["note"] = comparability(name, fingerprints.get(name))
        rows.append(row)
    columns = ["dataset"] + [c for f in _STAT_FIELDS for c in (f, f"paper {f}")] + [
        "fingerprint", "paper fingerprint", "note"]
    return pd.DataFrame(rows, columns=columns)


# --- the report ------------------------------------------------------------------------------
@dataclass
class Section:
    """One table of a report: ``name`` (file stem), ``title`` and the table itself."""

    name: str
    title: str
    table: pd.DataFrame
    text: str = ""


@dataclass
class Report:
    sections: list[Section]
    source: str = ""
    n_records: int = 0
    notes: list[str] = field(default_factory=list)

    def section(self, name: str) -> Section:
        for s in self.sections:
            if s.name == name:
                return s
        raise KeyError(f"no section {name!r}; have {', '.join(s.name for s in self.sections)}")


def provenance_note(records: Sequence[ResultRecord], source: str = "") -> str:
    """Which results a report was built from, and the command that rebuilds it."""
    def listed(values):
        return ", ".join(str(v) for v in sorted(set(values), key=str))

    text = (f"built from {len(records)} record(s) at scale(s) {listed(r.scale for r in records)}, results "
            f"version(s) {listed(r.results_version for r in records)}, made by code version(s) "
            f"{listed(r.code_version for r in records)}")
    return text + (f"; rebuild with `sarbench report {source} --out <this folder>`" if source else "")


def build_tables(
    records: Iterable[ResultRecord],
    *,
    data_stats: Mapping[str, object] | None = None,
    fingerprints: Mapping[str, str] | None = None,
    source: str = "",
    significance_kwargs: Mapping | None = None,
) -> Report:
    """All tables for ``records`` (superseded duplicates dropped first; see ``latest_per_seed``).

    Per scale and per metric table present (vanilla, design, hf): the comparison with the paper,
    the summary of mean gains and the significance tests. Table 1 comes from ``data_stats`` if
    given, else from the ``data_stats`` stored in records.
    """
    records = latest_per_seed(records)
    report = Report(sections=[], source=source, n_records=len(records))
    if records:
        report.notes.append(provenance_note(records, source))
    if data_stats is None:
        data_stats, fps = {}, {}
        for rec in records:
            if rec.data_stats:
                data_stats.setdefault(rec.dataset, rec.data_stats)
                fps.setdefault(rec.dataset, rec.fingerprint)
        fingerprints = {**fps, **dict(fingerprints or {})}
    if data_stats:
        report.sections.append(Section("table1_data", "Table 1: datasets (ours vs paper)",
                                       data_table(data_stats, fingerprints)))
    frame = records_frame(records)
    agg = aggregate(frame)
    skipped = sorted(set(frame["table"]) - set(TABLE_TITLES)) if not frame.empty else []
    if skipped:
        report.notes.append(f"records of table(s) {', '.join(skipped)} are not aggregated here")
    sig_kwargs = dict(significance_kwargs or {})
    for scale in sorted(agg["scale"].unique()) if not agg.empty else []:
        for table, title in TABLE_TITLES.items():
            ours = agg[(agg.scale == scale) & (agg.table == table)]
            if ours.empty:
                continue
            ours = ours[[*CELL_KEYS, "attention", "value", "std", "n_seeds", "note"]].reset_index(drop=True)
            paper = paper_cells(table)
            stem = f"{_table_number(table)}_{table}_{scale}"
            comp = comparison_table(ours, paper)
            if table == "vanilla" and set(comp["variant"]) == {"vanilla"}:
                comp = comp.drop(columns="variant")
            report.sections.append(Section(stem, f"{title} ({scale} scale): ours vs paper", comp))
            report.sections.append(Section(f"{stem}_summary", f"{title} ({scale} scale): mean AR-over-AE gains",
                                           summary_table(ours, paper)))
            recs = [r for r in records if r.scale == scale and r.table == table]
            sig = significance_table(recs, **sig_kwargs)
            if not sig.empty:
                report.sections.append(Section(
                    f"{stem}_significance",
                    f"{title} ({scale} scale): paired AR vs AE per user ({sig['metric'].iloc[0]}, seeds averaged "
                    f"per user; Wilcoxon signed-rank and bootstrap CI of the mean difference)",
                    sig))
    return report


def _table_number(table: str) -> str:
    return {"vanilla": "table4", "design": "table5", "hf": "table6"}[table]


# --- writers ---------------------------------------------------------------------------------
def _format_cell(column: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if column.endswith("%"):
            return f"{value:+.2f}"
        if column == "p":
            return f"{value:.2g}"
        if column.endswith(" n") or column in ("n_seeds", "users", "cells"):
            return f"{value:.0f}"
        if column in ("density", "paper density"):
            return f"{value:.1e}"
        if column in ("avg_length", "paper avg_length"):
            return f"{value:.1f}"
        if float(value).is_integer() and abs(value) >= 1000:
            return f"{value:.0f}"
        return f"{value:.4f}"
    return str(value)


def formatted(table: pd.DataFrame) -> list[list[str]]:
    """The table's rows as display strings (metrics 4 decimals, percentages 2 with sign, NaN empty)."""
    return [[_format_cell(str(c), v) for c, v in zip(table.columns, row)] for row in table.itertuples(index=False)]


def _align(table: pd.DataFrame) -> list[str]:
    return ["right" if pd.api.types.is_numeric_dtype(table[c]) else "left" for c in table.columns]


def to_markdown(table: pd.DataFrame) -> str:
    """GitHub Markdown of ``table`` with display formatting (see :func:`formatted`)."""
    return tabulate(formatted(table), headers=[str(c) for c in table.columns], tablefmt="github",
                    disable_numparse=True, colalign=_align(table))


def to_latex(table: pd.DataFrame) -> str:
    """A booktabs LaTeX tabular of ``table`` (special characters escaped)."""
    return tabulate(formatted(table), headers=[str(c) for c in table.columns], tablefmt="latex_booktabs",
                    disable_numparse=True, colalign=_align(table))


def write_table(table: pd.DataFrame, out_dir: str | os.PathLike, name: str,
                formats: Sequence[str] = ("md", "csv", "tex")) -> list[Path]:
    """Write one table as ``<name>.md`` / ``.csv`` (raw numbers) / ``.tex``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = out / f"{name}.{fmt}"
        if fmt == "csv":
            table.to_csv(path, index=False)
        elif fmt == "md":
            path.write_text(to_markdown(table) + "\n", encoding="utf-8")
        elif fmt == "tex":
            path.write_text(to_latex(table) + "\n", encoding="utf-8")
        else:
            raise ValueError(f"unknown table format {fmt!r}; use md, csv or tex")
        paths.append(path)
    return paths


def report_markdown(report: Report) -> str:
    """The whole report as one Markdown document."""
    lines = ["# sarbench report", ""]
    if report.source:
        lines.append(f"Results: `{report.source}`, {report.n_records} record(s).")
        lines.append("")
    lines.append("Gains are (AR − AE) / AE × 100 per cell; mean gains average the per-cell gains, as in the "
                 "paper. Rows marked `not comparable` are not on the paper's data or protocol scale.")
    lines.append("")
    for note in report.notes:
        lines += [f"Note: {note}", ""]
    if not report.sections:
        lines += ["No results to report.", ""]
    for s in report.sections:
        lines += [f"## {s.title}", ""]
        if s.text:
            lines += [s.text, ""]
        lines += [to_markdown(s.table), ""]
    return "\n".join(lines)


def summary_text(report: Report) -> str:
    """A short plain-text summary for the terminal: the mean gains and the significance verdicts."""
    lines = [f"sarbench report: {report.n_records} record(s)" + (f" from {report.source}" if report.source else "")]
    if not report.sections:
        lines.append("  no results to report")
    for s in report.sections:
        if s.name.endswith("_summary"):
            lines.append(s.title)
            for row in s.table.to_dict("records"):
                ours = _format_cell("x %", row["ours %"])
                text = f"  {row['statistic']:<28} ours {ours + '%' if ours else 'n/a':>9}"
                paper = _format_cell("x %", row["paper all cells %"])
                if paper:
                    text += f"   paper {paper + '%':>9}"
                if row["note"]:
                    text += f"   [{row['note']}]"
                lines.append(text)
        elif s.name.endswith("_significance"):
            lines.append(f"  significance ({s.table['metric'].iloc[0]}):")
            for row in s.table.to_dict("records"):
                text = (f"    {row['dataset']} {row['variant']}: {row['verdict']} (diff {row['diff']:+.4f}, "
                        f"CI [{row['CI low']:+.4f}, {row['CI high']:+.4f}], p={row['p']:.2g}, n={row['users']})")
                if row["note"]:
                    text += f" [{row['note']}]"
                lines.append(text)
    return "\n".join(lines)


def write_report(report: Report, out_dir: str | os.PathLike,
                 formats: Sequence[str] = ("md", "csv", "tex")) -> list[Path]:
    """Write every section in ``formats`` plus ``report.md`` and ``summary.txt``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for s in report.sections:
        paths += write_table(s.table, out, s.name, formats)
    md = out / "report.md"
    md.write_text(report_markdown(report), encoding="utf-8")
    txt = out / "summary.txt"
    txt.write_text(summary_text(report) + "\n", encoding="utf-8")
    return paths + [md, txt]


def build_report(
    results_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    data_stats: Mapping[str, object] | None = None,
    fingerprints: Mapping[str, str] | None = None,
    formats: Sequence[str] = ("md", "csv", "tex"),
) -> list[Path]:
    """Read every record in ``results_dir`` and write the report into ``out_dir``; returns the files.

    Corrupt record files are skipped with a warning. An empty or missing results folder gives a
    report that says there is nothing to report.
    """
    results = Path(results_dir)
    if not results.exists():
        log.warning("results folder %s does not exist; the report will be empty", results)
    records = ResultStore(results).records()
    report = build_tables(records, data_stats=data_stats, fingerprints=fingerprints, source=_display_path(results))
    paths = write_report(report, out_dir, formats)
    log.info("report of %d record(s) written to %s", report.n_records, out_dir)
    return paths


__all__ = [
    "GainStatistics",
    "Report",
    "Section",
    "aggregate",
    "best_over_best",
    "build_report",
    "build_tables",
    "cell_gains",
    "comparability",
    "comparison_table",
    "data_table",
    "gain_statistics",
    "record_labels",
    "records_frame",
    "relative_gain",
    "report_markdown",
    "significance_table",
    "summary_table",
    "summary_text",
    "to_latex",
    "to_markdown",
    "variant_label",
    "write_report",
    "write_table",
]
