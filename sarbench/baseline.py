"""Regression against reported numbers: the committed smoke baseline and the paper deviations file.

Two committed files under ``reports/baseline/``:

``smoke.json``
    Test metrics of every smoke case (by case id and seed, with its data fingerprint), recomputed
    in CI and compared within ``SMOKE_TOLERANCE``. A change that moves a number fails CI until the
    baseline is updated on purpose with ``pytest bench --update-baseline`` (the diff of smoke.json
    then shows the move in review).

``paper/*.json`` and ``deviations.csv``
    Records of paper-scale runs, and every cell of them that lies outside the paper band, with our
    value, the paper's and a reason. CI fails on an unlisted deviation and on a listed one that no
    longer deviates.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path

from .cases import PAPER_BAND
from .paper import paper_cells

BASELINE_DIR = Path("reports") / "baseline"
SMOKE_FILE = "smoke.json"
DEVIATIONS_FILE = "deviations.csv"
# Smoke runs are deterministic on one machine and torch build; across CPUs (different BLAS kernels)
# a few epochs of training drift a little. A real regression (a broken mask, loss or metric) moves
# NDCG/Recall by far more than this.
SMOKE_TOLERANCE = {"abs": 0.01, "rel": 0.10}


def within_tolerance(ours: float, base: float) -> bool:
    return abs(ours - base) <= max(SMOKE_TOLERANCE["abs"], SMOKE_TOLERANCE["rel"] * abs(base))


def load_smoke(folder: Path = BASELINE_DIR) -> dict:
    path = Path(folder) / SMOKE_FILE
    if not path.exists():
        return {}
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def smoke_entry(baseline: dict, record) -> dict | None:
    entry = baseline.get(record.case_id, {}).get(str(record.seed))
    if entry is None or entry.get("fingerprint") != record.fingerprint:
        return None
    return entry


def smoke_differences(baseline: dict, record) -> list[str]:
    """Metrics of ``record`` that moved beyond tolerance from the baseline (empty if none or no entry)."""
    entry = smoke_entry(baseline, record)
    if entry is None:
        return []
    return [
        f"{m}: {record.metrics[m]:.4f} vs baseline {b:.4f}"
        for m, b in entry["metrics"].items()
        if m in record.metrics and not within_tolerance(record.metrics[m], b)
    ]


def update_smoke(records, folder: Path = BASELINE_DIR) -> Path:
    """Write the smoke metrics of ``records`` into smoke.json (other entries kept), atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = load_smoke(folder)
    for rec in records:
        if rec.scale != "smoke":
            continue
        data.setdefault(rec.case_id, {})[str(rec.seed)] = {
            "fingerprint": rec.fingerprint,
            "metrics": {k: round(v, 6) for k, v in sorted(rec.metrics.items())},
            "code_version": rec.code_version,
        }
    path = folder / SMOKE_FILE
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".smoke.", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def paper_deviations(records) -> list[dict]:
    """Every cell of paper-scale records on the paper's data that lies outside the paper band."""
    cells = paper_cells("vanilla")
    out = []
    for rec in records:
        if rec.scale != "paper" or rec.table != "vanilla" or not rec.extra.get("paper_version"):
            continue
        sub = cells[(cells.dataset == rec.dataset) & (cells.attention == rec.attention)]
        for metric, paper in zip(sub.metric, sub.value):
            ours = rec.metrics.get(metric)
            if ours is not None and abs(ours - paper) > PAPER_BAND * paper:
                out.append({"case_id": rec.case_id, "seed": rec.seed, "metric": metric,
                            "ours": round(ours, 4), "paper": paper})
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
                for k, d in found.items() if k not in listed_keys]
    stale = [f"{k[0]} seed {k[1]} {k[2]}" for k in listed_keys if k not in found]
    return unlisted, stale
