"""Training epoch time of Table 6's backbones on ml-1m beside sarbench's own backbone, in one run.

    python tools/hf_speed.py [--users 768] [--rounds 3] [--threads 1] [--data-dir DIR] [--out reports/speed_hf.md]

Models, all at the Table-6 size (d=64, 2 layers, 1 head, batch 128, maximum length 200, CE over all
3,416 items, dropout 0.2, AE mask probability 0.5, fp32, CPU): ALBERT, LLaMA (transformers, sdpa kernels) and our
Transformer-XL-style layer, each as AE and AR, beside sarbench's vanilla network (sar.py) as AE and
AR at the same size and batch.

A whole ml-1m epoch (6,040 users, 48 batches) of each of eight models is too long for a loaded CPU,
so each model trains whole epochs on the same seeded random subset of ``--users`` users (item ids
unchanged, so the output layer is the full catalogue; batches grouped by length as in a full epoch,
whose pools of 8 batches are of the same size). The full-epoch time is extrapolated from the subset
by the ratio of training targets (full / subset): the work of an epoch is proportional to its
targets (AR) and sequence positions, and the subset is a random sample of users. Models take turns
within each round (so a change in machine load hits all of them); the first round is a warm-up and
is not used; the figure is the median of the other rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reporting import cpu_model, write_report  # noqa: E402  sibling module in tools/

MODELS = [("sar", "AR"), ("sar", "AE"), ("albert", "AR"), ("albert", "AE"), ("llama", "AR"), ("llama", "AE"),
          ("transfo_xl", "AR"), ("transfo_xl", "AE")]
DATASET = "ml-1m"


def configs(model: str, attention: str, num_items: int):
    """(model config, train config): a backbone's Table-6 defaults; sar is the vanilla preset with the Table-6
    size, batch, dropout and mask probability (0.5 on ml-1m), so that every model does the same work."""
    from sarbench.models import get_spec
    from sarbench.presets import preset

    if model != "sar":
        mc, tc = get_spec(model).defaults(attention, DATASET, num_items, 0)
        return mc, replace(tc, progress=False, device="cpu")
    hf, _ = get_spec("albert").defaults(attention, DATASET, num_items, 0)
    mc, tc = preset(f"vanilla-{attention}", DATASET, num_items)
    mc = replace(mc, hidden=hf.hidden, layers=hf.layers, heads=hf.heads, dropout=hf.dropout, attn_dropout=hf.dropout,
                 mask_prob=hf.mask_prob, max_len=hf.max_len)
    return mc, replace(tc, batch_size=128, progress=False, device="cpu")


def measure(args) -> dict:
    import torch

    from sarbench.data import load_dataset
    from sarbench.train import Trainer, release_freed_memory, training_windows

    torch.set_num_threads(args.threads)
    full = load_dataset(DATASET, args.data_dir)
    users = np.sort(np.random.default_rng(0).choice(full.num_users, args.users, replace=False))
    part = full.subset_users(users)
    trainers, ratios = {}, {}
    for model, attention in MODELS:
        mc, tc = configs(model, attention, full.num_items)
        trainers[(model, attention)] = Trainer(mc, tc, part.split())
        targets = {n: int(training_windows(ds.split().train, attention, mc.max_len)[3].sum())
                   for n, ds in (("full", full), ("part", part))}
        ratios[(model, attention)] = targets["full"] / targets["part"]
    times = {key: [] for key in trainers}
    for _ in range(args.rounds):
        for key, trainer in trainers.items():
            t = time.perf_counter()
            trainer.train_epoch()
            times[key].append(time.perf_counter() - t)
            release_freed_memory()
            print(f"{key[0]}-{key[1]}: {times[key][-1]:.2f} s on {args.users} users", flush=True)
    return {"times": times, "ratios": ratios, "users": args.users, "full_users": full.num_users,
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def report(res: dict, load_start, load_end, command: str) -> str:
    times, ratios = res["times"], res["ratios"]
    epoch = {k: statistics.median(v[1:] if len(v) > 1 else v) * ratios[k] for k, v in times.items()}
    lines = [f"# Training epoch time on {DATASET}: Table 6's backbones beside sarbench's own (CPU)", "",
             f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `tools/hf_speed.py`.", "",
             f"- machine: {cpu_model()}, {os.cpu_count()} logical cores; torch {res['torch']}, {res['threads']} "
             f"thread(s)",
             f"- load average (1, 5, 15 min) at the start: {', '.join(f'{x:.2f}' for x in load_start)}; at the end: "
             f"{', '.join(f'{x:.2f}' for x in load_end)}",
             "- every model: d=64, 2 layers, 1 head, batch 128, max length 200, CE over all 3,416 items, fp32; "
             "dropout 0.2 (LLaMA: none, as the authors'); AE mask probability 0.5; transformers models with the sdpa kernel",
             f"- **extrapolated**: each model trained whole epochs on the same random {res['users']} of "
             f"{res['full_users']} users; epoch = median subset epoch (rounds after the first) x (full-epoch "
             "targets / subset targets)", "",
             "| model | attention | subset epochs (s) | x targets | ml-1m epoch (s, extrapolated) | vs sarbench same "
             "attention |", "|---|---|---|---|---|---|"]
    for (model, attention), values in times.items():
        base = epoch[("sar", attention)]
        name = {"sar": "sarbench vanilla (sar.py)", "albert": "ALBERT (transformers)",
                "llama": "LLaMA (transformers)", "transfo_xl": "Transformer-XL-style (ours)"}[model]
        lines.append(f"| {name} | {attention} | {', '.join(f'{t:.2f}' for t in values)} | "
                     f"{ratios[(model, attention)]:.2f} | {epoch[(model, attention)]:.1f} | "
                     f"{epoch[(model, attention)] / base:.2f}x |")
    lines += ["", "The first subset epoch of each model is a warm-up and is left out of the median. On a machine "
              "shared with other jobs the absolute seconds move with the load; the ratios within one run are the "
              "figure to read.", "", "```", command, "```", ""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=768, help="users in the timed subset (default: 768, 6 batches)")
    ap.add_argument("--rounds", type=int, default=3, help="subset epochs per model, the first a warm-up (default: 3)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    ap.add_argument("--data-dir", default=None, help="folder with the datasets (default: $SARBENCH_DATA)")
    ap.add_argument("--out", default="reports/speed_hf.md", help="Markdown report ('-' = print; default: %(default)s)")
    args = ap.parse_args()
    load_start = os.getloadavg()
    res = measure(args)
    argv = ["DATA_DIR" if a == args.data_dir else a for a in sys.argv[1:]]
    text = report(res, load_start, os.getloadavg(), "python tools/hf_speed.py " + " ".join(argv))
    write_report(text, args.out)


if __name__ == "__main__":
    main()
