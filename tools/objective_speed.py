"""Time one whole ml-1m Vanilla-AR epoch -- training plus validation of every user -- under both forms
of the authors' objective: random batches with the per-batch mean (what their code did) and
length-grouped batches with the loss weighted per target (sarbench's default; the same per-target
weight, see sarbench/train.py). Both run in one process, interleaved, so their ratio is fair on a
noisy machine.

    python tools/objective_speed.py --data-dir DIR [--rounds 3] [--threads 2] [--out reports/speed_objective_cpu.md]

The target of the fidelity work was 15 s for the whole epoch on this kind of 2-core CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace

from reporting import cpu_model, write_report  # sibling module in tools/

TARGET_S = 15.0


def measure(data_dir: str | None, rounds: int, threads: int, device: str) -> dict:
    import torch

    from sarbench.data import load_dataset
    from sarbench.presets import preset
    from sarbench.train import Trainer, release_freed_memory

    if threads:
        torch.set_num_threads(threads)
    ds = load_dataset("ml-1m", data_dir)
    split = ds.split()
    model_cfg, train_cfg = preset("vanilla-AR", "ml-1m", ds.num_items)
    trainers = {
        "random batches, per-batch mean (the authors')": Trainer(
            model_cfg, replace(train_cfg, length_buckets=1, device=device, progress=False), split),
        "length-grouped, per-target weighted (default)": Trainer(
            model_cfg, replace(train_cfg, length_buckets=8, device=device, progress=False), split),
    }
    out = {name: {"train": [], "valid": []} for name in trainers}
    for _ in range(rounds):
        for name, tr in trainers.items():
            t0 = time.perf_counter()
            tr.train_epoch()
            t1 = time.perf_counter()
            tr.evaluate("valid")
            t2 = time.perf_counter()
            release_freed_memory()
            out[name]["train"].append(t1 - t0)
            out[name]["valid"].append(t2 - t1)
    return {"results": out, "threads": torch.get_num_threads(), "torch": torch.__version__}


def report(m: dict, rounds: int, load: tuple, command: str) -> str:

    lines = ["# A whole ml-1m Vanilla-AR epoch (training + validation of 6,040 users) under both objective forms", "",
             f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `tools/objective_speed.py`: "
             f"{cpu_model()}, {os.cpu_count()} logical cores, torch {m['torch']}, {m['threads']} threads; load average "
             f"at the start {', '.join(f'{x:.2f}' for x in load)}. {rounds} rounds, the two forms interleaved; "
             "medians. Vanilla-AR preset: d=64, 2 layers, 1 head, L=200, batch 256, CE over all items, dropout 0.2.", "",
             "| objective form | training (s) | validation (s) | whole epoch (s) | vs the 15 s target | each epoch (s) |",
             "|---|---|---|---|---|---|"]
    medians = {}
    for name, r in m["results"].items():
        whole = [a + b for a, b in zip(r["train"], r["valid"])]
        medians[name] = statistics.median(whole)
        lines.append(f"| {name} | {statistics.median(r['train']):.1f} | {statistics.median(r['valid']):.1f} | "
                     f"{medians[name]:.1f} | {'met' if medians[name] <= TARGET_S else 'not met'} "
                     f"({medians[name] / TARGET_S:.2f}x) | {', '.join(f'{w:.1f}' for w in whole)} |")
    a, b = medians.values()
    lines += ["", f"Length grouping makes the whole epoch {a / b:.2f}x faster than random batches here, with the same "
              "per-target weight (tests/test_objective.py).", "", "```", command, "```", ""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None, help="folder with ml-1m.txt (default: $SARBENCH_DATA)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="reports/speed_objective_cpu.md", help="Markdown report ('-' = print)")
    args = ap.parse_args()
    load = os.getloadavg()
    m = measure(args.data_dir, args.rounds, args.threads, args.device)
    argv = ["DATA_DIR" if a == args.data_dir else a for a in __import__("sys").argv[1:]]
    text = report(m, args.rounds, load, "python tools/objective_speed.py " + " ".join(argv))
    write_report(text, args.out)


if __name__ == "__main__":
    main()
