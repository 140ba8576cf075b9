"""Time training epochs of Vanilla-AR on ml-1m and beauty, with peak memory, on the CPU or a GPU.

    python tools/epoch_speed.py [--device cpu|cuda] [--datasets ml-1m beauty] [--epochs 2]
                                [--threads N] [--data-dir DIR] [--out reports/speed_epoch_cpu.md]

Sizes (the benchmark's): d=64, 2 layers, 1 head, batch 256, cross-entropy over all items, dropout
and attention dropout 0.2, one sequence per user; maximum length 200 on ml-1m, 50 on beauty (the
paper's). Each dataset runs in a subprocess of its own so that its peak host memory (peak RSS) is
its own; on CUDA the peak GPU memory (``torch.cuda.max_memory_allocated``) is reported as well.
Every epoch is reported; on CUDA the first one includes warm-up, so the median of the rest is the
figure. Also reports the FLOPs of one epoch (matrix products only, forward and backward) and the
rate they imply, to show how far an epoch is from the matmul limit of the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reporting import cpu_model, write_report  # sibling module in tools/

SIZES = dict(hidden=64, layers=2, heads=1, batch_size=256, dropout=0.2, attn_dropout=0.2)
MAX_LEN = {"ml-1m": 200}  # others: the preset's (50)
HOST_MEMORY_GOAL_GB = {"beauty": 4.0}


def epoch_flops(lengths, d: int, layers: int, num_items: int, attention_pairs: int, positions: int) -> float:
    """Matmul FLOPs of one epoch (x3 for forward + backward): trunk, attention, output layer."""
    targets = int(sum(lengths))
    per_position = 2 * d * 3 * d + 2 * d * d + 2 * 2 * d * 4 * d  # qkv, out, feed-forward
    trunk = layers * (positions * per_position + attention_pairs * 4 * d)
    output = targets * (2 * d * d + 2 * (d + 1) * num_items)  # transform + logits (bias folded)
    return 3.0 * (trunk + output)


def worker(dataset: str, device: str, epochs: int, threads: int, data_dir: str | None) -> dict:
    import resource
    from dataclasses import replace

    import torch

    from sarbench.data import load_dataset
    from sarbench.presets import preset
    from sarbench.train import Trainer, batches, release_freed_memory

    if threads:
        torch.set_num_threads(threads)
    ds = load_dataset(dataset, data_dir)
    model_cfg, train_cfg = preset("vanilla-AR", dataset, ds.num_items)
    model_cfg = replace(model_cfg, hidden=SIZES["hidden"], layers=SIZES["layers"], heads=SIZES["heads"],
                        dropout=SIZES["dropout"], attn_dropout=SIZES["attn_dropout"],
                        max_len=MAX_LEN.get(dataset, model_cfg.max_len))
    train_cfg = replace(train_cfg, batch_size=SIZES["batch_size"], loss="ce", device=device, progress=False)
    trainer = Trainer(model_cfg, train_cfg, ds.split())
    lengths = trainer.lengths_cpu
    positions = pairs = 0
    for idx in batches(lengths, train_cfg.batch_size, train_cfg.length_buckets, torch.Generator().manual_seed(0)):
        width = int(lengths[idx].max())
        positions += len(idx) * width
        pairs += len(idx) * width * width
    flops = epoch_flops(lengths.tolist(), model_cfg.hidden, model_cfg.layers, ds.num_items, pairs, positions)
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    for _ in range(epochs):
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        losses.append(trainer.train_epoch())
        release_freed_memory()  # as Trainer.fit does after every epoch
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return {
        "dataset": dataset,
        "device": torch.cuda.get_device_name() if cuda else cpu_model(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "users": ds.num_users,
        "items": ds.num_items,
        "max_len": model_cfg.max_len,
        "targets": int(lengths.sum()),
        "positions": positions,
        "flops": flops,
        "epoch_s": times,
        "losses": losses,
        "rss_peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "gpu_peak_gb": torch.cuda.max_memory_allocated() / 1e9 if cuda else None,
        "gpu_reserved_gb": torch.cuda.max_memory_reserved() / 1e9 if cuda else None,
    }


def report(results: list[dict], device: str, load: tuple, command: str) -> str:
    lines = [f"# Training epoch speed and memory ({device})", "",
             f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `tools/epoch_speed.py`.", "",
             f"- machine: {cpu_model()}, {os.cpu_count()} logical cores; "
             f"device: {results[0]['device']}; torch {results[0]['torch']}, {results[0]['threads']} threads",
             f"- load average at the start (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in load)}",
             f"- Vanilla-AR, d={SIZES['hidden']}, {SIZES['layers']} layers, {SIZES['heads']} head, batch "
             f"{SIZES['batch_size']}, CE over all items, dropout {SIZES['dropout']}, one sequence per user", "",
             "| dataset | items | max len | targets | epoch (s) | each epoch (s) | matmul TFLOP | implied GFLOP/s "
             "| peak RSS (GB) | peak GPU memory (GB) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        times = r["epoch_s"][1:] if device.startswith("cuda") and len(r["epoch_s"]) > 1 else r["epoch_s"]
        med = statistics.median(times)
        gpu = "" if r["gpu_peak_gb"] is None else f"{r['gpu_peak_gb']:.2f} (reserved {r['gpu_reserved_gb']:.2f})"
        lines.append(f"| {r['dataset']} | {r['items']:,} | {r['max_len']} | {r['targets']:,} | {med:.2f} | "
                     f"{', '.join(f'{t:.2f}' for t in r['epoch_s'])} | {r['flops'] / 1e12:.3f} | "
                     f"{r['flops'] / med / 1e9:.0f} | {r['rss_peak_gb']:.2f} | {gpu} |")
    lines.append("")
    for r in results:
        goal = HOST_MEMORY_GOAL_GB.get(r["dataset"])
        if goal and not device.startswith("cuda"):
            verdict = "fits" if r["rss_peak_gb"] <= goal else "does NOT fit"
            lines.append(f"- {r['dataset']}: a CPU epoch {verdict} in {goal:g} GB of host memory "
                         f"(peak RSS {r['rss_peak_gb']:.2f} GB, whole process).")
    lines += ["", "Epoch = median (on CUDA, of the epochs after the first). FLOPs count matrix products only "
              "(trunk with padding to each batch's longest sequence, attention, output layer at the targets), x3 "
              "for forward and backward.", "", "```", command, "```", ""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--datasets", nargs="+", default=["ml-1m", "beauty"])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--data-dir", default=None, help="folder with the datasets (default: $SARBENCH_DATA)")
    ap.add_argument("--out", default=None, help="Markdown report (default reports/speed_epoch_<device>.md; '-' = print)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        dataset, out = args.worker.split(":", 1)
        Path(out).write_text(json.dumps(worker(dataset, args.device, args.epochs, args.threads, args.data_dir)))
        return
    load = os.getloadavg()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            out = Path(tmp) / f"{dataset}.json"
            cmd = [sys.executable, __file__, "--worker", f"{dataset}:{out}", "--device", args.device,
                   "--epochs", str(args.epochs), "--threads", str(args.threads)]
            if args.data_dir:
                cmd += ["--data-dir", args.data_dir]
            subprocess.run(cmd, check=True)
            results.append(json.loads(out.read_text()))
            r = results[-1]
            print(f"{dataset}: epochs {', '.join(f'{t:.2f}' for t in r['epoch_s'])} s, peak RSS "
                  f"{r['rss_peak_gb']:.2f} GB" + (f", GPU {r['gpu_peak_gb']:.2f} GB" if r["gpu_peak_gb"] else ""))
    argv = ["DATA_DIR" if a == args.data_dir else a for a in sys.argv[1:]]
    command = "python tools/epoch_speed.py " + " ".join(argv)
    text = report(results, args.device, load, command)
    dest = args.out or f"reports/speed_epoch_{args.device.split(':')[0]}.md"
    write_report(text, dest)


if __name__ == "__main__":
    main()
