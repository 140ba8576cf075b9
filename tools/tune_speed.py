"""Trials per hour of a search on the CPU: time a short piece of its trials, extrapolate with ASHA.

    python tools/tune_speed.py [--dataset ml-1m] [--space loss_ce] [--attention AR] [--threads 1]
                               [--concurrency 2] [--data-dir DIR] [--out reports/speed_tune_cpu.md]

What is timed (with the search's own trial code path: ``sarbench.search.trial.trial_configs`` and
``Trainer.run_epoch``, one torch thread): one trial's first report in full (``eval_every`` training
epochs, the validation over all users, the checkpoint a report carries), and one training epoch
plus one validation of every (hidden, heads) combination of the grid (the sizes that set the cost;
the dropout rate is held at 0.2).

What is extrapolated: the number of reports the search makes. Under ASHA that depends on which
trials are good and in which order they arrive, so it is simulated with Ray's own scheduler
(``ASHAScheduler``, called as Tune's controller calls it) over random orders of the grid, with
``--concurrency`` trials running at once (one per core) and each report taking its measured time.
Two models of trial quality: a stable ranking (a trial is as good at every rung as at the first)
and a noisy one (per-report noise as large as half the spread between trials). Without ASHA (a
plain grid) every trial makes max_t reports. Figures: mean and 10th-90th percentile.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from reporting import cpu_model, write_report  # sibling module in tools/


def time_pieces(search, ds, threads: int, report_epochs: bool) -> dict:
    """Seconds per training epoch and per validation for each (hidden, heads); one full first report."""
    import torch

    from sarbench.search.trial import search_split, trial_configs
    from sarbench.train import Trainer

    torch.set_num_threads(threads)
    split = search_split(ds.split())
    axes = search.space.axes
    combos = sorted({(h, k) for h in axes.get("hidden", (None,)) for k in axes.get("heads", (None,))},
                    key=lambda c: (-(c[0] or 0), -(c[1] or 0)))
    base = {name: values[0] for name, values in axes.items()}
    base["dropout"] = 0.2 if "dropout" in axes else base.get("dropout")
    out = {"combos": {}, "first_report": None}
    for i, (hidden, heads) in enumerate(combos):
        point = {**base, **({"hidden": hidden} if hidden else {}), **({"heads": heads} if heads else {})}
        model_cfg, train_cfg = trial_configs(search, ds.num_items, ds.num_users, point)
        t0 = time.perf_counter()
        trainer = Trainer(model_cfg, train_cfg, split)
        setup = time.perf_counter() - t0
        full = report_epochs and i == 0
        epochs = []
        for _ in range(search.eval_every if full else 1):
            t0 = time.perf_counter()
            trainer.train_epoch()
            trainer.epoch += 1
            epochs.append(time.perf_counter() - t0)
            print(f"  hidden {hidden} heads {heads}: epoch {trainer.epoch} {epochs[-1]:.1f}s", file=sys.stderr,
                  flush=True)
        t0 = time.perf_counter()
        valid = trainer.evaluate("valid").metrics
        validation = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as folder:
            t0 = time.perf_counter()
            torch.save(trainer.state(), Path(folder) / "trainer.pt")
            checkpoint = time.perf_counter() - t0
        print(f"  hidden {hidden} heads {heads}: validation {validation:.1f}s, checkpoint {checkpoint:.2f}s, "
              f"R@10 {valid['R@10']:.4f}", file=sys.stderr, flush=True)
        out["combos"][(hidden, heads)] = {"setup": setup, "epoch": statistics.median(epochs), "epochs": epochs,
                                          "validation": validation, "checkpoint": checkpoint}
        if full:
            out["first_report"] = {"hidden": hidden, "heads": heads, "seconds": setup + sum(epochs) + validation
                                   + checkpoint, "epochs": epochs, "validation": validation, "R@10": valid["R@10"]}
    return out


def report_seconds(piece: dict, eval_every: int) -> float:
    return eval_every * piece["epoch"] + piece["validation"] + piece["checkpoint"]


def summarize(values) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():,.0f} ({np.percentile(v, 10):,.0f}-{np.percentile(v, 90):,.0f})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--space", default="loss_ce")
    parser.add_argument("--attention", default="AR", choices=["AE", "AR"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads per trial (default: 1)")
    parser.add_argument("--concurrency", type=int, default=2, help="trials at once, one per core (default: 2)")
    parser.add_argument("--sims", type=int, default=2000, help="simulated searches per model (default: 2000)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default="reports/speed_tune_cpu.md")
    args = parser.parse_args(argv)

    import torch

    from sarbench.data import load_dataset
    from sarbench.search import SPACES, SearchConfig
    from sarbench.search.cost import simulate_asha
    from sarbench.search.trial import validated

    space = SPACES[args.space]
    search = SearchConfig(args.dataset, space.design or "vanilla", args.attention, space.for_attention(args.attention))
    ds = load_dataset(args.dataset, args.data_dir)
    search = validated(search, ds.num_items, ds.num_users)
    load = os.getloadavg()
    started = _dt.datetime.now(_dt.timezone.utc)
    pieces = time_pieces(search, ds, args.threads, report_epochs=True)
    per_combo = {c: report_seconds(p, search.eval_every) for c, p in pieces["combos"].items()}
    points = search.space.points()
    costs = [per_combo[(p.get("hidden"), p.get("heads"))] for p in points]
    rng = np.random.default_rng(0)
    n = len(points)
    rows = []
    for label, noise in (("ASHA, stable ranking", 0.0), ("ASHA, noisy ranking", 0.5 / np.sqrt(12))):
        sims = [simulate_asha(search, costs, args.concurrency, rng, noise) for _ in range(args.sims)]
        reports = [r for r, _ in sims]
        hours = [s / 3600 for _, s in sims]
        rows.append((label, summarize(reports), summarize([r * search.eval_every for r in reports]),
                     f"{np.mean(hours):.1f} ({np.percentile(hours, 10):.1f}-{np.percentile(hours, 90):.1f})",
                     f"{n / np.mean(hours):.2f}"))
    grid_hours = max(sum(costs) * search.max_t / args.concurrency, max(costs) * search.max_t) / 3600
    rows.append(("plain grid (no early stop)", f"{n * search.max_t:,}", f"{n * search.max_epochs:,}",
                 f"{grid_hours:.1f}", f"{n / grid_hours:.2f}"))

    first = pieces["first_report"]
    lines = [
        f"# Search speed on the CPU: {args.dataset} {args.space} {args.attention} grid",
        "",
        f"Measured {started:%Y-%m-%d %H:%M} UTC by `tools/tune_speed.py`.",
        "",
        f"- machine: {cpu_model()}, {os.cpu_count()} logical cores; torch "
        f"{torch.__version__}, {args.threads} thread(s) per trial",
        f"- load average at the start (1, 5, 15 min): {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} (the machine was "
        "shared with other training runs: these times are pessimistic)",
        f"- search: {n} trials over {', '.join(search.space.axes)}; ASHA max_t {search.max_t} reports, grace period "
        f"{search.grace_period}, reduction factor {search.reduction_factor:g}, one report every {search.eval_every} "
        f"epochs (rungs at epochs {[r * search.eval_every for r in search.rungs()]}); validation over all "
        f"{len(ds.split().eval_users):,} users",
        "",
        f"One trial's first report (hidden {first['hidden']}, heads {first['heads']}, dropout 0.2): "
        f"{first['seconds']:.0f} s = {search.eval_every} epochs ({', '.join(f'{e:.1f}' for e in first['epochs'])} s) "
        f"+ validation {first['validation']:.1f} s + setup and checkpoint; valid R@10 {first['R@10']:.4f}.",
        "",
        "| hidden | heads | epoch (s) | validation (s) | checkpoint (s) | one report (s) |",
        "|---|---|---|---|---|---|",
    ]
    for (hidden, heads), p in pieces["combos"].items():
        lines.append(f"| {hidden} | {heads} | {p['epoch']:.1f} | {p['validation']:.1f} | {p['checkpoint']:.2f} | "
                     f"{per_combo[(hidden, heads)]:.0f} |")
    lines += [
        "",
        f"Extrapolated to the whole search, {args.concurrency} trials at once ({args.sims} simulated orders each; "
        "mean, 10th-90th percentile):",
        "",
        "| schedule | reports | epochs | wall time (h) | trials per hour |",
        "|---|---|---|---|---|",
        *[f"| {' | '.join(row)} |" for row in rows],
        "",
        "Reports are simulated with Ray's `ASHAScheduler` itself; each report costs its combination's measured "
        f"time ({search.eval_every} epochs + validation + checkpoint); trial start-up (data to the worker, model "
        "set-up: seconds) and Ray's own overhead are left out. Dropout 0 trials skip the dropout masks and run "
        "somewhat faster than measured.",
        "",
        "```",
        f"python tools/tune_speed.py --dataset {args.dataset} --space {args.space} --attention {args.attention} "
        f"--threads {args.threads} --concurrency {args.concurrency} --data-dir DATA_DIR",
        "```",
        "",
    ]
    write_report("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
