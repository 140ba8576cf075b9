"""The paper's published tables (WSDM'25, Tables 1-6), shipped as package data.

The CSV files are the cleaned tables of the paper; they are read with ``importlib.resources`` so that
they load the same way from an editable checkout, a wheel or a zip. Numbers are as printed (4
decimals for metrics; ``best_improvement_pct`` rounded to 2 decimals).

Two shapes are offered:

* :func:`load_table` returns a table as printed (wide).
* :func:`paper_cells` returns the metric tables (4, 5 and 6) in one long format with the columns
  ``dataset, metric, variant, attention, value``, the same format the report builds from result
  records. ``variant`` is the column group of the paper: ``"vanilla"`` for Table 4, a design
  (``local_attn``, ``ssept``, ``loss_ce``, ``loss_bpr``) for Table 5, a HuggingFace backbone
  (``albert``, ``llama``, ``transfo_xl``) for Table 6.

Example:
    >>> cells = paper_cells("vanilla")
    >>> row = cells[(cells.dataset == "ml-1m") & (cells.metric == "R@10") & (cells.attention == "AR")]
    >>> float(row.value.iloc[0])
    0.3008
"""

from __future__ import annotations

import io
from importlib import resources

import pandas as pd

from ..config import ATTENTIONS
from ..designs import DESIGNS, HF_BACKBONES, variants

METRICS: tuple[str, ...] = ("R@5", "R@10", "R@20", "N@5", "N@10", "N@20")
RECALL_METRICS: tuple[str, ...] = tuple(m for m in METRICS if m.startswith("R@"))
NDCG_METRICS: tuple[str, ...] = tuple(m for m in METRICS if m.startswith("N@"))
DATASET_ORDER: tuple[str, ...] = ("beauty", "sports", "video", "yelp", "ml-1m")

FILES: dict[str, str] = {
    "table1": "table1_datasets.csv",
    "table2": "table2_sparsity.csv",
    "table3": "table3_rank.csv",
    "table4": "table4_vanilla.csv",
    "table5": "table5_design_space.csv",
    "table6": "table6_huggingface.csv",
}

#: The metric tables by the name result records use for them (``ResultRecord.table``).
METRIC_TABLES: dict[str, str] = {"vanilla": "table4", "design": "table5", "hf": "table6"}

#: Column groups (variants) of each metric table, in the paper's order (the designs' declaration).
VARIANTS: dict[str, tuple[str, ...]] = {table: variants(table) for table in ("vanilla", "design", "hf")}

#: The training loss behind each paper column (protocol of the authors' code: Table 4 and the HF
#: backbones use cross-entropy, SSE-PT runs with BCE, local attention with CE).
PAPER_LOSS: dict[str, str] = {**{d.variant: d.loss for d in DESIGNS.values() if d.in_paper},
                              **{backbone: "ce" for backbone in HF_BACKBONES}}


def _read_text(filename: str) -> str:
    return resources.files(__name__).joinpath(filename).read_text(encoding="utf-8")


def load_table(name: str) -> pd.DataFrame:
    """One of the paper's tables as printed: ``name`` is ``"table1"`` ... ``"table6"``.

    Raises:
        KeyError: for an unknown table name (the message lists the known ones).
    """
    try:
        filename = FILES[name]
    except KeyError:
        raise KeyError(f"unknown paper table {name!r}; known: {', '.join(FILES)}") from None
    return pd.read_csv(io.StringIO(_read_text(filename)))


def paper_cells(table: str) -> pd.DataFrame:
    """A metric table (``"vanilla"``, ``"design"`` or ``"hf"``) in long format.

    Columns: ``dataset, metric, variant, attention, value``; one row per published cell.
    """
    if table not in METRIC_TABLES:
        raise KeyError(f"no paper metric table for {table!r}; known: {', '.join(METRIC_TABLES)}")
    wide = load_table(METRIC_TABLES[table])
    if table == "vanilla":
        long = wide.melt(id_vars=["dataset", "attention"], value_vars=list(METRICS), var_name="metric")
        long["variant"] = "vanilla"
    else:
        value_columns = [f"{v}-{a}" for v in VARIANTS[table] for a in ATTENTIONS]
        long = wide.melt(id_vars=["dataset", "metric"], value_vars=value_columns, var_name="column")
        parts = long["column"].str.rsplit("-", n=1)
        long["variant"] = parts.str[0]
        long["attention"] = parts.str[1]
        long = long.drop(columns="column")
    long["value"] = long["value"].astype(float)
    return long[["dataset", "metric", "variant", "attention", "value"]].reset_index(drop=True)


__all__ = [
    "ATTENTIONS",
    "DATASET_ORDER",
    "FILES",
    "METRICS",
    "METRIC_TABLES",
    "NDCG_METRICS",
    "PAPER_LOSS",
    "RECALL_METRICS",
    "VARIANTS",
    "load_table",
    "paper_cells",
]
