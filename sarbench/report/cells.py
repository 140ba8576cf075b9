"""Result records as cells of the paper's tables: labels, comparability and notes, long format.

**Cells in long format.** Paper cells and our aggregated results share one long format:
``dataset, metric, variant, attention, value`` (see :func:`sarbench.paper.paper_cells`). Our cells
add ``std`` (over seeds, ddof 1; NaN with one seed), ``n_seeds`` and ``note``.

**Comparability.** A result is compared with the paper's numbers cell by cell only when it was run
at ``paper`` scale on the paper's version of the data (:func:`sarbench.data.is_paper_data`). Every
row that fails this carries a note starting with ``not comparable:`` in every table, saying why
(synthetic data, not the paper's version of the data, a fingerprint that differs, smoke scale). A
case trained with another loss than the paper's column is shown as its own column group
``<variant>/<loss>``, which has no paper counterpart. Other notes: a run stopped before the early
stop, an untuned design or HF row, a stale record (another results version).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from .. import provenance
from ..data.registry import DATASETS
from ..paper import PAPER_LOSS
from ..record import ResultRecord

log = logging.getLogger(__name__)

NOT_COMPARABLE = "not comparable"


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


def stale_note(rec: ResultRecord) -> str:
    """A record made under another results version than this code's says so (it is never silently reused)."""
    return provenance.stale_note(rec) if provenance.is_stale(rec) else ""


def tuned_note(rec: ResultRecord) -> str:
    """A row trained with a tuned preset (``sarbench tune``) says which one; a design or HF row without
    one says it is untuned (the paper's Tables 5 and 6 come from tuned models)."""
    name = (rec.extra or {}).get("tuned_preset")
    if name:
        return f"tuned ({name})"
    return "untuned (base values)" if rec.table in ("design", "hf") else ""


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
        note = _join_notes([comparability(rec.dataset, rec.fingerprint, rec.scale), stopping_note(rec),
                            tuned_note(rec), stale_note(rec)])
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


