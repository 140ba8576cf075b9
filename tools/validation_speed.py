"""Time one validation pass (all users, the authors' exclusion rule) with the plain and the fast path.

    python tools/validation_speed.py [--datasets ml-1m video] [--attentions AR AE] [--threads 2]
                                     [--rounds 3] [--data-dir DIR] [--out reports/speed_validation_cpu.md]

The plain path scores users in the given order, hands the scorer full-width histories and computes
every position of every block; the fast path (the default of ``evaluate`` and
``SequentialRecommender.score``) groups users by history length, drops the padding columns no row
of a batch uses, and computes the last block only at the position that scoring reads. The model is
the paper preset's, trained for one epoch first (``--untrained``: not) so that its scores
are not near-constant; both paths score the same weights, and the table says whether every user's
rank (hence every metric) is equal.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sarbench.data import load_dataset  # noqa: E402
from sarbench.evaluate import evaluate  # noqa: E402
from sarbench.models.interface import SequentialRecommender  # noqa: E402
from sarbench.presets import preset  # noqa: E402
from sarbench.train import Trainer  # noqa: E402
from reporting import write_report  # noqa: E402  sibling module in tools/


def plain(model):
    """The model with the plain scoring path: every column, every position of every block."""
    model.trim_padding = False
    model.states_at = lambda items, pos, users=None: SequentialRecommender.states_at(model, items, pos, users)
    return model


def fast(model):
    model.trim_padding = True
    model.__dict__.pop("states_at", None)
    return model


def measure(dataset: str, attention: str, rounds: int, train_first: bool, data_dir) -> dict:
    ds = load_dataset(dataset, data_dir)
    mc, tc = preset(f"vanilla-{attention}", dataset, ds.num_items, ds.num_users)
    trainer = Trainer(mc, replace(tc, progress=False), ds.split())
    if train_first:
        trainer.train_epoch()
    model = trainer.model.eval()
    out = {}
    for label, path, grouped in (("plain", plain, False), ("fast", fast, True)):
        path(model)
        times, result = [], None
        for _ in range(rounds):
            t = time.perf_counter()
            result = evaluate(model, trainer.split, "valid", ks=tc.ks, exclude="input", max_len=mc.max_len,
                              group_by_length=grouped)
            times.append(time.perf_counter() - t)
        out[label] = (min(times), result)
    (tp, rp), (tf, rf) = out["plain"], out["fast"]
    return {"dataset": dataset, "attention": attention, "users": rp.num_users, "plain_s": tp, "fast_s": tf,
            "same_ranks": bool(np.array_equal(rp.ranks, rf.ranks)),
            "rank_changes": int((rp.ranks != rf.ranks).sum()),
            "same_metrics": rp.metrics == rf.metrics}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["ml-1m", "video"])
    ap.add_argument("--attentions", nargs="+", default=["AR", "AE"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--untrained", action="store_true", help="score the freshly initialised model (quicker)")
    ap.add_argument("--data-dir", default=os.environ.get("SARBENCH_DATA"))
    ap.add_argument("--out", default="reports/speed_validation_cpu.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = [measure(d, a, args.rounds, not args.untrained, args.data_dir) for d in args.datasets for a in args.attentions]
    lines = [
        "# Validation speed: plain vs fast scoring path (CPU)",
        "",
        f"`python tools/validation_speed.py --threads {args.threads} --rounds {args.rounds}"
        f"{' --untrained' if args.untrained else ''} --datasets {' '.join(args.datasets)}`, torch "
        f"{torch.__version__}, {args.threads} thread(s), {platform.processor() or platform.machine()}, "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}. One validation pass over every user "
        "under the authors' exclusion rule, the vanilla preset's model "
        f"{'freshly initialised' if args.untrained else 'after one training epoch'}; best of "
        f"{args.rounds}. Both paths score the same weights.",
        "",
        "| dataset | model | users | plain (s) | fast (s) | speed-up | every rank equal |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        same = "yes" if r["same_ranks"] else f"no ({r['rank_changes']} users)"
        lines.append(f"| {r['dataset']} | Vanilla-{r['attention']} | {r['users']:,} | {r['plain_s']:.2f} | "
                     f"{r['fast_s']:.2f} | {r['plain_s'] / r['fast_s']:.2f}x | {same} |")
    lines += ["", "The goal for ml-1m (all 6,040 users) is 1.5 s on this CPU."]
    text = "\n".join(lines) + "\n"
    write_report(text, args.out)
    return 0 if all(r["same_ranks"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
