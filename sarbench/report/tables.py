"""The report's tables: ours beside the paper (Tables 4-6), mean gains, paired tests, Table 1, both
exclusion rules; and :func:`build_tables`, which assembles them from records.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..config import ATTENTIONS
from ..data.registry import DATASETS
from ..paper import VARIANTS, paper_cells
from ..significance import compare_records
from ..record import ResultRecord, latest_per_seed
from .cells import NOT_COMPARABLE, _join_notes, aggregate, comparability, record_labels, records_frame
from .gains import (
    CELL_KEYS,
    GainStatistics,
    _check_cells,
    _dataset_order,
    _metric_order,
    best_over_best,
    cell_gains,
    gain_statistics,
    relative_gain,
)

log = logging.getLogger(__name__)

TABLE_TITLES = {
    "vanilla": "Table 4: vanilla AE vs AR",
    "design": "Table 5: design space",
    "hf": "Table 6: HuggingFace backbones",
}

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
    for att in ATTENTIONS:
        part = stats.xs(att, level="attention") if att in stats.index.get_level_values("attention") else None
        for col, src in ((att, "value"), (f"{att} std", "std"), (f"{att} n", "n_seeds")):
            wide[col] = part[src].reindex(wide.index) if part is not None and src in part else np.nan
    notes = stats["note"].groupby(level=CELL_KEYS).agg(_join_notes) if "note" in stats else pd.Series(dtype=object)
    if paper is not None and not paper.empty:
        ppr = paper.set_index([*CELL_KEYS, "attention"])["value"].unstack("attention")
        ppr = ppr.reindex(columns=list(ATTENTIONS))
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
    rules = exclusion_table(records)
    if not rules.empty:
        report.sections.append(Section(
            "exclusion_rules", "Both exclusion rules (every table above uses the authors' input-window rule)", rules,
            text="`input`: the ids in the model's input window are not ranked (the authors' code; what every "
                 "comparison with the paper uses). `history`: the user's whole history is not ranked. Only "
                 "records where the two differ are listed."))
    return report


def exclusion_table(records: Sequence[ResultRecord], metrics: Sequence[str] = ("R@10", "N@10")) -> pd.DataFrame:
    """Test metrics of each record under both exclusion rules, where they differ.

    Every comparison with the paper uses the authors' rule (``input``: the ids in the model's input
    window are not ranked); ``history`` excludes the user's whole history. They differ when a history
    is longer than the input window (ml-1m: max_len 200 of up to 2,000+ items). Columns: ``case_id,
    seed, scale, metric, input, history, history vs input %``; one row per record and metric.
    """
    rows = []
    for rec in sorted(records, key=lambda r: (r.scale, r.case_id, r.seed)):
        by_rule = (rec.extra or {}).get("metrics_by_rule") or {}
        if "input" not in by_rule or "history" not in by_rule:
            continue
        for m in metrics:
            a, b = by_rule["input"].get(m), by_rule["history"].get(m)
            if a is None or b is None or a == b:
                continue
            rows.append({"case_id": rec.case_id, "seed": rec.seed, "scale": rec.scale, "metric": m, "input": a,
                         "history": b, "history vs input %": relative_gain(b, a)})
    return pd.DataFrame(rows, columns=["case_id", "seed", "scale", "metric", "input", "history",
                                       "history vs input %"])


def _table_number(table: str) -> str:
    return {"vanilla": "table4", "design": "table5", "hf": "table6"}[table]


