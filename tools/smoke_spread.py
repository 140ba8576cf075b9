"""Measure how far the smoke cases move across what CI can vary, to set the smoke baseline's tolerance.

    python tools/smoke_spread.py [--data-dir DIR] [--datasets synthetic beauty ...] [--attentions AE AR]
                                 [--conditions pinned pinned-again pinned-loaded other-threads] [--out FILE.md]

Trains every vanilla smoke case (cases.run_case at the smoke scale, the code path of `pytest bench`)
once per condition, each condition in a subprocess of its own with its own results folder:

    pinned          the smoke scale's thread count (cases.SCALES["smoke"].threads): the reference
    pinned-again    the same, again (is a rerun exact?)
    pinned-loaded   the same while another process keeps a core busy with matrix products
    other-threads   one thread (what the pinned count takes away: the spread between thread counts)

and reports, per group of the smoke baseline (the training loss, the model and most-popular under
both exclusion rules; see sarbench/regression.py), the largest absolute and relative difference from
the reference and where it is, plus each case's test NDCG@10 against most-popular, its paired
p-value and its training time. The tolerance in sarbench/regression.py is set from these numbers.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from sarbench.regression import smoke_platform  # noqa: E402  (this checkout's package, not an installed one)
from sarbench.cases import SCALES  # noqa: E402

from reporting import write_report  # noqa: E402  sibling module in tools/

PINNED = SCALES["smoke"].threads or 1
OTHER = 1 if PINNED != 1 else 2
CONDITIONS = {"pinned": (PINNED, False), "pinned-again": (PINNED, False), "pinned-loaded": (PINNED, True),
              "other-threads": (OTHER, False)}
REFERENCE = "pinned"


def busy(stop_after: float) -> None:
    """Keep one core busy with matrix products (the load of another process)."""
    import torch

    torch.set_num_threads(1)
    a = torch.randn(512, 512)
    end = time.time() + stop_after
    while time.time() < end:
        a = torch.tanh(a @ a)


def worker(args) -> int:
    """Train the cases in this process; print one JSON line per case."""
    import torch

    torch.set_num_threads(args.threads)
    from sarbench.regression import smoke_values
    from sarbench.cases import SCALES, DataCache, run_case
    from sarbench.significance import compare_paired, per_user_values
    from sarbench.store import ResultStore

    data, store = DataCache(args.data_dir), ResultStore(args.results)
    for dataset in args.datasets:
        for attention in args.attentions:
            wall, cpu = time.perf_counter(), time.process_time()
            rec = run_case(table="vanilla", dataset=dataset, design="vanilla", attention=attention, seed=0,
                           scale=SCALES["smoke"], device="cpu", data=data, store=store, rerun=True)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            _, model = per_user_values(rec, "N@10")
            _, popular = per_user_values(type("R", (), {"per_user": rec.extra["most_popular_per_user"]}), "N@10")
            cmp = compare_paired(model, popular, alpha=0.01)
            print(json.dumps({"case": rec.case_id, "values": smoke_values(rec), "wall_s": wall, "cpu_s": cpu,
                              "epochs": rec.epochs, "best_epoch": rec.extra["best_epoch"],
                              "users": rec.data_stats["users"], "items": rec.data_stats["items"],
                              "interactions": rec.data_stats["interactions"],
                              "ndcg": cmp.mean_ar, "popular": cmp.mean_ae, "p": cmp.p_value}), flush=True)
    return 0


def run_condition(name: str, args, folder: Path) -> dict:
    threads, loaded = CONDITIONS[name]
    cmd = [sys.executable, __file__, "--worker", "--threads", str(threads), "--results", str(folder / name),
           "--datasets", *args.datasets, "--attentions", *args.attentions]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    load = None
    if loaded:
        load = multiprocessing.Process(target=busy, args=(24 * 3600,), daemon=True)
        load.start()
    try:
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO).stdout
    finally:
        if load is not None:
            load.terminate()
            load.join()
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {row["case"]: row for row in rows}


def spread(reference: dict, other: dict) -> dict:
    """Per group: (largest absolute difference, largest relative difference, where each is)."""
    out: dict[str, dict] = {}
    for case, ref in reference.items():
        for group, metrics in ref["values"].items():
            g = out.setdefault(group, {"abs": 0.0, "rel": 0.0, "abs_at": "", "rel_at": ""})
            for metric, base in metrics.items():
                diff = abs(other[case]["values"][group][metric] - base)
                if diff > g["abs"]:
                    g["abs"], g["abs_at"] = diff, f"{case} {metric}"
                if base and diff / abs(base) > g["rel"]:
                    g["rel"], g["rel_at"] = diff / abs(base), f"{case} {metric} ({base:.4f})"
    return out


def describe(name: str) -> str:
    threads, loaded = CONDITIONS[name]
    return f"{name} = {threads} thread(s)" + (" beside a busy process" if loaded else "")


def report(results: dict, args, seconds: float) -> str:
    ref = results[REFERENCE]
    lines = ["# Smoke-case spread across what CI can vary", "",
             f"`{' '.join(['python tools/smoke_spread.py', *sys.argv[1:]])}` on {platform.machine()}, "
             f"{os.cpu_count()} CPUs, load average at the start {args.load_at_start}, {seconds / 60:.1f} min.", "",
             f"Platform: {json.dumps(smoke_platform())}.", "",
             f"## Cases (reference condition: {PINNED} thread(s), the smoke scale's)", "",
             "| case | users | items | interactions | epochs (best) | NDCG@10 | most-popular | p (paired) "
             "| wall s | CPU s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for case, r in ref.items():
        lines.append(f"| {case} | {r['users']} | {r['items']} | {r['interactions']} | {r['epochs']} "
                     f"({r['best_epoch']}) | {r['ndcg']:.4f} | {r['popular']:.4f} | {r['p']:.2g} "
                     f"| {r['wall_s']:.1f} | {r['cpu_s']:.1f} |")
    lines.append(f"| total | | | | | | | | {sum(r['wall_s'] for r in ref.values()):.1f} "
                 f"| {sum(r['cpu_s'] for r in ref.values()):.1f} |")
    lines += ["", "## Largest difference from the reference, per condition and group", "",
              "Conditions: " + "; ".join(describe(n) for n in results) + ".", "",
              "| condition | group | max abs | where | max rel (of the value) | where |", "|---|---|---|---|---|---|"]
    for name, res in results.items():
        if name == REFERENCE:
            continue
        for group, g in spread(ref, res).items():
            lines.append(f"| {name} | {group} | {g['abs']:.6f} | {g['abs_at']} | {g['rel']:.2e} | {g['rel_at']} |")
    lines += ["", "## Time per condition (all cases; the machine may be shared, see the load average)", "",
              "| condition | wall s | CPU s |", "|---|---|---|"]
    for name, res in results.items():
        wall, cpu = sum(r["wall_s"] for r in res.values()), sum(r["cpu_s"] for r in res.values())
        lines.append(f"| {describe(name)} | {wall:.1f} | {cpu:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default=os.environ.get("SARBENCH_DATA"))
    ap.add_argument("--datasets", nargs="+", default=["synthetic", "beauty", "sports", "video", "yelp", "ml-1m"])
    ap.add_argument("--attentions", nargs="+", default=["AE", "AR"])
    ap.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=list(CONDITIONS))
    ap.add_argument("--out", default="-", help="Markdown report ('-' = print only; default: -)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--results", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)
    if REFERENCE not in args.conditions:
        ap.error(f"the conditions must include the reference {REFERENCE!r}")
    args.load_at_start = " ".join(f"{x:.1f}" for x in os.getloadavg())
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="smoke-spread-") as tmp:
        results = {name: run_condition(name, args, Path(tmp)) for name in args.conditions}
    text = report(results, args, time.perf_counter() - start)
    write_report(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
