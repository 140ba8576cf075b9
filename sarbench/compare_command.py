"""The ``sarbench compare`` and ``sarbench plan`` commands (their work is in compare.py and plan.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import ReferenceMismatch, compare_runs, paper_table4, render
    from .references import ReferenceChecksumError, build_references, describe, load_references, packaged_size
    from .store import read_records

    if args.build_references:
        manifest = build_references(args.build_references)
        print(f"packaged {len(manifest['files'])} reference records ({packaged_size() / 1e6:.2f} MB) from "
              f"{args.build_references}")
        return 0
    if not args.results:
        print("sarbench: error: compare needs a results folder or record file (or --build-references)",
              file=sys.stderr)
        return 2
    try:
        references = load_references(args.against)
        runs = [r for r in read_records(args.results) if r.scale == args.scale
                and (args.model is None or f"-{args.model}-" in r.case_id)
                and (not args.datasets or r.dataset in args.datasets.split(","))]
        if not runs:
            print(f"sarbench: error: no {args.scale}-scale record to compare in {', '.join(args.results)}"
                  + (f" for model {args.model!r}" if args.model else ""), file=sys.stderr)
            return 1
        comparisons = compare_runs(runs, references, metric=args.metric, rule=args.rule, alpha=args.alpha)
    except (ReferenceMismatch, ReferenceChecksumError, FileNotFoundError, ValueError) as exc:
        print(f"sarbench: error: {exc}", file=sys.stderr)
        return 1
    where = args.against or "the packaged references"
    text = (f"# Against the paper's AE and AR ({where})\n\nReferences: "
            + "; ".join(describe(r for r in references if r.fingerprint in {c.fingerprint for c in comparisons}))
            + "\n\n" + render(comparisons, paper_table4()))
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0


def add_compare_commands(sub) -> None:
    p = sub.add_parser(
        "compare", help="test a model's paper-scale runs against the paper's AE and AR, user by user, without "
        "retraining them",
        description="Per dataset: the run's six metrics beside the committed AE's and AR's, and for each of them "
        "the paired per-user difference (bootstrap CI, Wilcoxon p) with a verdict. The references are the "
        "committed paper-scale records (packaged with sarbench; --against names another folder). Data "
        "fingerprint, scale, evaluated users, tie rule and exclusion rule must match, else it says what differs.")
    p.add_argument("results", nargs="*", help="results folder(s) or record file(s) of the run(s) to compare")
    p.add_argument("--against", default=None,
                   help="folder of reference records: a results folder, reports/baseline/paper, or a packaged copy "
                        "with a manifest (default: the references packaged with sarbench)")
    p.add_argument("--model", default=None, help="compare only this model's cases (default: every non-reference case)")
    p.add_argument("--datasets", default=None, metavar="A,B", help="only these datasets (default: all)")
    p.add_argument("--scale", default="paper", choices=["smoke", "paper"], help="scale of the runs (default: paper)")
    p.add_argument("--metric", default="N@10", help="per-user metric of the paired test (default: N@10)")
    p.add_argument("--rule", default="input", choices=["input", "history"],
                   help="exclusion rule: input (the authors') or history (default: input)")
    p.add_argument("--alpha", type=float, default=0.01, help="significance level of the verdict (default: 0.01)")
    p.add_argument("--out", default=None, help="also write the comparison as Markdown to this file")
    p.add_argument("--build-references", default=None, metavar="DIR",
                   help="instead: rebuild the packaged references from this folder of committed records")
    p.set_defaults(func=cmd_compare)


def cmd_plan(args: argparse.Namespace) -> int:
    from .plan import plan_cases, render_plan, selected_cases

    cases = selected_cases(args.marker, args.datasets, args.models, args.scale)
    if not cases:
        print("sarbench: error: no case selected", file=sys.stderr)
        return 1
    rows = plan_cases(cases, data_dir=args.data_dir, scale=args.scale, threads=args.threads, device=args.device,
                      history=args.history, calibrate=not args.no_calibration, concurrent=args.concurrent)
    print(render_plan(rows, threads=args.threads, concurrent=args.concurrent))
    return 0


def add_plan_commands(sub) -> None:
    p = sub.add_parser(
        "plan", help="what a selection of cases will cost before it runs: FLOPs, epochs, memory, time",
        description="Per case: matrix FLOPs per epoch (training and validation, counted on real batches), the "
        "expected epochs (from committed records of the same case, else of the dataset), the peak memory of "
        "training, and the time on this device from a few-second calibration of real training steps; then the "
        "total.")
    p.add_argument("-m", "--marker", default="vanilla", choices=["vanilla", "design", "hf"],
                   help="which table's cases (default: vanilla)")
    p.add_argument("--scale", default="paper", choices=["smoke", "paper"], help="scale (default: paper)")
    p.add_argument("--datasets", default=None, metavar="A,B", help="datasets (default: the paper's five)")
    p.add_argument("--models", default=None, metavar="A,B",
                   help="models of the vanilla table besides sar, e.g. gru4rec (default: sar only)")
    p.add_argument("--data-dir", default=None, help="folder with the real datasets (default: $SARBENCH_DATA)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per run (default: 1)")
    p.add_argument("--concurrent", type=int, default=1, metavar="N",
                   help="runs that will share the machine: time the steps while N - 1 other processes train the "
                        "same case beside them (default: 1)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--history", default=None,
                   help="records to take expected epochs from (default: the packaged references, then "
                        "reports/baseline/paper when run in a checkout)")
    p.add_argument("--no-calibration", action="store_true", help="FLOPs and epochs only, no timing")
    p.set_defaults(func=cmd_plan)


__all__ = ["add_compare_commands", "add_plan_commands", "cmd_compare", "cmd_plan"]
