"""sarbench plan's estimates beside the measured CPU time of the committed paper-scale records (Tables 4-6).

    python tools/plan_vs_actual.py --data-dir DATA_DIR [--concurrent 2] [--out reports/plan_vs_actual.md]

Calibrates each committed record's case with ``sarbench.plan`` (one thread, and ``--concurrent`` runs
side by side, as the records ran: two at once) and writes, per record: the plan's estimate for that
record's own epoch count and for the expected epochs (the mean over the case's records), the record's
CPU time as threads x wall time of its training processes, the CPU time its process measured
(records since the field exists: ``extra["cpu_seconds"]``, which other processes on the machine do
not inflate), and their ratios to the plan; the records' median training epoch against their
fastest says how busy the machine was while each ran. Run it on a quiet machine: the plan assumes
the run will see the machine as the calibration saw it.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

from reporting import write_report  # noqa: E402  sibling module in tools/

import numpy as np
import torch

from sarbench.cases import DESIGN_VARIANT, SCALES, DataCache, torch_threads
from sarbench.plan import history_records, measure_case
from sarbench.store import ResultStore

ROOT = Path(__file__).resolve().parent.parent
DESIGN_OF = {variant: design for design, variant in DESIGN_VARIANT.items()}  # loss_ce -> ce


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--records", default=str(ROOT / "reports" / "baseline" / "paper"))
    ap.add_argument("--concurrent", type=int, default=2, help="runs side by side in the calibration (default: 2)")
    ap.add_argument("--beside", default="no other work on the machine",
                    help="what else ran on the machine during the calibration, for the report's header")
    ap.add_argument("--out", default=str(ROOT / "reports" / "plan_vs_actual.md"))
    args = ap.parse_args(argv)
    records = sorted((r for r in ResultStore(args.records).records()
                      if r.table in ("vanilla", "design", "hf") and r.scale == "paper"),
                     key=lambda r: (r.dataset, r.case_id, r.seed))
    data, history = DataCache(args.data_dir), history_records(args.records)
    costs = {}
    rows = []
    with torch_threads(1):
        for r in records:
            design = DESIGN_OF[r.variant] if r.table == "design" else "vanilla"
            case = dict(table=r.table, dataset=r.dataset, design=design, attention=r.attention, model=r.model_name)
            if r.case_id not in costs:
                costs[r.case_id] = measure_case(case, data=data, scale=SCALES["paper"], history=history,
                                                concurrent=args.concurrent)
            c = costs[r.case_id]
            threads = r.extra.get("threads") or 1  # records before the field ran with --threads 1
            actual = threads * r.wall_time_s / 3600
            own = c.run_s(r.epochs) / 3600
            cpu = r.extra.get("cpu_seconds")
            measured = (f"{cpu / 3600:.2f} | {cpu / 3600 / own:.2f}" if cpu else "n/a | n/a")
            epochs = np.asarray(r.extra.get("epoch_seconds") or [np.nan])
            rows.append(f"| {r.case_id} | {r.seed} | {r.results_version} | {r.epochs} | {c.epoch_s:.1f} | "
                        f"{own:.2f} | {c.total_s / 3600:.2f} ({c.epochs:.0f}) | {actual:.2f} | {actual / own:.2f} | "
                        f"{measured} | {np.median(epochs) / np.min(epochs):.2f} |")
    text = "\n".join([
        "# sarbench plan against the committed paper-scale runs (CPU, one thread)", "",
        f"`python tools/plan_vs_actual.py --data-dir DATA_DIR --concurrent {args.concurrent}`, torch "
        f"{torch.__version__}, {platform.machine()}, calibrated with {args.concurrent} run(s) side by side, "
        f"{args.beside}. Plan h (own epochs): the plan's time per epoch times the record's epochs, "
        f"plus a test; plan h (expected): for the expected epochs (the mean over the case's records). Actual: "
        f"threads x wall time of the record's training processes. Process CPU h: the CPU time the training "
        f"process measured (records made since it is recorded). Busy: the record's median training epoch over "
        f"its fastest (1.0 on a machine to itself).", "",
        "| record | seed | results version | epochs | plan s/epoch | plan h (own epochs) | plan h (expected epochs) | "
        "actual CPU h (threads x wall) | actual / plan | process CPU h | process / plan | busy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|", *rows, ""])
    write_report(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
