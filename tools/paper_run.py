"""Run one vanilla case at paper scale in the background and store its record.

    python tools/paper_run.py ml-1m AR [--max-minutes 80] [--results results-paper] [--threads 1]

The same code path as `pytest bench -m vanilla --scale paper` (sarbench.cases.run_case), with an
optional wall-time cap for machines where a run to early stopping does not fit; a capped run is
recorded with stopped="time" and a config that says so.
"""

import argparse
import logging
from dataclasses import replace
from pathlib import Path

import torch

from sarbench.cases import SCALES, DataCache, run_case
from sarbench.store import ResultStore


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset")
    ap.add_argument("attention", choices=["AE", "AR"])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--results", default="results-paper")
    ap.add_argument("--max-minutes", type=float, default=0.0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    scale = replace(SCALES["paper"], max_minutes=args.max_minutes)
    results = Path(args.results)
    rec = run_case(table="vanilla", dataset=args.dataset, design="vanilla", attention=args.attention,
                   seed=args.seed, scale=scale, device=args.device, data=DataCache(args.data_dir),
                   store=ResultStore(results), checkpoints=results / "checkpoints")
    print(rec.case_id, rec.extra["stopped"], "epochs", rec.epochs, "best", rec.extra["best_epoch"],
          "wall", round(rec.wall_time_s), rec.metrics)


if __name__ == "__main__":
    main()
