"""The ``sarbench run`` and ``sarbench report`` commands: one stored benchmark case, and the report of a folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .data import DATA_ENV, DATASETS, SYNTHETIC


def cmd_report(args) -> int:
    from .report import build_report, build_tables, summary_text
    from .store import ResultStore

    results = Path(args.results)
    if not results.is_dir():
        print(f"sarbench report: results folder {results} does not exist", file=sys.stderr)
        return 1
    paths = build_report(results, args.out)
    print(summary_text(build_tables(ResultStore(results).records())))
    print(f"wrote {len(paths)} file(s) to {args.out}")
    return 0


def add_report_commands(sub) -> None:
    p = sub.add_parser(
        "report",
        help="rebuild the report (paper tables beside ours) from a results folder, without rerunning",
        description="Aggregate every record in a results folder into the paper's tables (Markdown, CSV, "
        "LaTeX) with the paper's values, relative differences, AR-over-AE gains and significance tests.",
    )
    p.add_argument("results", help="results folder written by `pytest bench` (--results)")
    p.add_argument("--out", default="reports", help="output folder (default: reports)")
    p.set_defaults(func=cmd_report)


# --- sarbench run -----------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    """One benchmark case through the code path of `pytest bench` (cases.run_case), resumable."""
    import signal
    from dataclasses import replace

    import torch

    from .cases import SCALES, DataCache, run_case
    from .models.interface import registered
    from .store import ResultStore

    if not args.study and not args.attention:
        print("sarbench: error: run needs --attention (or --study)", file=sys.stderr)
        return 2
    if args.model not in registered():
        print(f"sarbench: error: unknown model {args.model!r}; registered models: {', '.join(sorted(registered()))}",
              file=sys.stderr)
        return 1
    threads = args.threads or (SCALES[args.scale].threads if args.device == "cpu" else 0)  # as `pytest bench`
    if threads:
        torch.set_num_threads(threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"sarbench: error: --device {args.device}: no CUDA device is available", file=sys.stderr)
        return 1

    def interrupt(signum, frame):  # a `kill` ends the run like Ctrl-C: the best state is tested and stored
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    scale = replace(SCALES[args.scale], max_minutes=args.max_minutes)
    results = Path(args.results)
    from .designs import table_of

    table = table_of(args.design, args.model)
    name = args.study or f"{args.design if args.model == 'sar' else args.model}-{args.attention}"

    def on_epoch(row):
        valid = row.get("valid", {})
        line = (f"{args.dataset} {name} seed {args.seed}: epoch {row['epoch']:>4} "
                f"loss {row['loss']:.4f} train {row['epoch_time']:.1f}s all {row['wall_time']:.1f}s")
        if valid:
            line += " valid " + " ".join(f"{k} {valid[k]:.4f}" for k in ("R@10", "N@10") if k in valid)
        print(line, flush=True)

    case = {"table": table, "dataset": args.dataset, "design": args.design, "attention": args.attention,
            "seed": args.seed, "model": args.model}
    if args.study:  # a model of the attention study (Tables 2-3): its own case, e.g. Local-AE
        from .analysis.study import case_kwargs

        case = case_kwargs(args.study, args.dataset, args.seed)
    record = run_case(scale=scale, device=args.device, data=DataCache(args.data_dir), store=ResultStore(results),
                      checkpoints=results / "checkpoints", rerun=args.rerun, on_epoch=on_epoch,
                      catch_interrupt=True, **case)
    metrics = " ".join(f"{k} {v:.4f}" for k, v in record.metrics.items())
    print(f"{record.case_id} seed {record.seed}: stopped ({record.extra['stopped']}) after {record.epochs} epochs, "
          f"best {record.extra['best_epoch']}, {record.wall_time_s / 60:.1f} min; test ({record.extra['exclusion']} "
          f"exclusion) {metrics}")
    print(f"record: {ResultStore(results).path_for(record)}")
    return 0


def add_run_commands(sub) -> None:
    """The ``run`` command: one benchmark case, stored and resumable, outside pytest."""
    from .config import ATTENTIONS
    from .designs import DESIGNS

    p = sub.add_parser(
        "run", help="run one benchmark case (as `pytest bench` would) and store its record; resumable",
        description="Train one case of the benchmark through the same code path as `pytest bench`, store its "
        "record (and best weights) in the results folder, and keep an epoch checkpoint. Run the same command "
        "again to continue an interrupted or time-capped run from its checkpoint. SIGTERM and Ctrl-C stop it "
        "cleanly: the best state is tested and stored with stopped=interrupted.",
    )
    p.add_argument("--dataset", required=True, help=f"dataset name ({', '.join([*DATASETS, SYNTHETIC])})")
    p.add_argument("--attention", choices=list(ATTENTIONS), help="AE (bidirectional) or AR (causal); required "
                   "unless --study names the model")
    p.add_argument("--study", choices=["vanilla-AE", "vanilla-AR", "local-AE"], default=None,
                   help="a model of the attention study (Tables 2-3) instead of --design/--model/--attention: "
                   "local-AE is Vanilla-AE with a +-2 window on its last head (default: none)")
    p.add_argument("--design", default="vanilla", choices=list(DESIGNS), help="preset design (default: vanilla)")
    p.add_argument("--model", default="sar",
                   help="registered model: sar (the paper's, set by --design), albert, llama, transfo_xl (Table 6), "
                   "gru4rec or your own (default: sar)")
    p.add_argument("--scale", default="paper", choices=["smoke", "paper"], help="scale (default: paper)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--data-dir", default=None, help=f"folder with the real datasets (default: ${DATA_ENV})")
    p.add_argument("--results", default="results", help="results folder (default: results)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads; 0 = the scale's (smoke: 1), else torch's default (default: 0)")
    p.add_argument("--max-minutes", type=float, default=0.0,
                   help="stop training after this many minutes of this process, test and store the best state "
                   "(stopped=time; run again to continue); 0 = no cap (default: 0)")
    p.add_argument("--rerun", action="store_true", help="train from scratch even if a record exists (default: reuse)")
    p.set_defaults(func=cmd_run)



__all__ = ["add_report_commands", "add_run_commands", "cmd_report", "cmd_run"]
