"""Writing a report: Markdown, CSV and LaTeX tables, report.md, summary.txt; ``build_report`` (``sarbench report``)."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from ..store import ResultStore
from .cells import _display_path
from .tables import Report, build_tables

log = logging.getLogger(__name__)


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
                # the paper over the same cells as ours; its mean over all its cells only beside it
                same = _format_cell("x %", row.get("paper same cells %"))
                every = _format_cell("x %", row["paper all cells %"])
                if same:
                    text += f"   paper, same cells {same + '%':>9}"
                if every and every != same:
                    text += f"   (paper, all its cells {every}%)"
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
