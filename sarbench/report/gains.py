"""The paper's summary statistics, computed exactly as the paper does (from the cells, long format).

* the relative gain of AR over AE of one cell (dataset, metric, column group) is
  ``(AR - AE) / AE x 100``, from the unrounded cell values;
* a "mean gain" is the plain mean of those per-cell gains (not the gain of mean metric values):
  Table 4 per dataset over its 6 metrics, over all 30 cells, over the 15 Recall or the 15 NDCG
  cells; Tables 5 and 6 per design/backbone over its 30 cells;
* "best over best" (last column of Tables 5 and 6) is, per cell, the best AR value over all
  designs/backbones against the best AE value over all designs/backbones (the two bests may come
  from different designs); the reported average is the mean of these per-cell gains.

The test suite feeds the paper's own cells through these functions and recovers every published
statistic to two decimals.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..config import ATTENTIONS, Attention
from ..paper import DATASET_ORDER, METRICS

CELL_KEYS = ["dataset", "variant", "metric"]


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
    wide = wide.reindex(columns=list(ATTENTIONS)).dropna(subset=list(ATTENTIONS))
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
        ae = group[group.attention == Attention.AE]
        ar = group[group.attention == Attention.AR]
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


