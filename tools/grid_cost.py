"""What the tuned Tables 5 and 6 cost: every grid of the authors on one dataset, on this CPU and on one GPU.

    python tools/grid_cost.py [--dataset ml-1m] [--data-dir DIR] [--device cpu] [--cpu-slots 2]
                              [--gpu-slots 4] [--gpu-tflops 5] [--out reports/grid_cost.md]

For each named space of the design space (``loss_ce``, ``loss_bce``, ``ssept``, ``local_attn``) and
``hf`` for each backbone, as AE and AR, the cost of ``sarbench tune`` is computed as ``sarbench
tune --dry-run --cost`` computes it (``sarbench.search.cost``): every (hidden, heads) of the grid is
counted (matrix FLOPs) and timed for a few seconds on ``--device``, the search's reports are
simulated with Ray's ASHA over random trial orders, and the retrain of the best trial runs for the
epochs of the committed records of its case, else of its dataset.

The GPU columns are not measured unless ``--device cuda`` is given: they are the counted FLOPs at an
assumed achieved rate (``--gpu-tflops``), with ``--gpu-slots`` trials at once. Run the tool on a GPU
(``--device cuda``) to replace them by timings.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
from pathlib import Path

import numpy as np

from reporting import cpu_model, write_report  # sibling module in tools/

GROUPS = [("loss_ce", None), ("loss_bce", None), ("ssept", None), ("local_attn", None),
          ("hf", "albert"), ("hf", "llama"), ("hf", "transfo_xl")]


def gpu_combos(combos, tflops: float, step_ms: float):
    """The combos with times from their FLOPs at ``tflops`` TFLOP/s plus ``step_ms`` per training step (the
    assumed GPU: kernel launches and the optimiser's small operations cost time whatever the FLOPs)."""
    from dataclasses import replace

    rate = tflops * 1e12
    return [replace(c, train_s=c.flops_train / rate + c.steps * step_ms / 1e3, valid_s=c.flops_valid / rate)
            for c in combos]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--device", default="cpu", help="where the combos are timed (default: cpu)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per trial on the CPU (default: 1)")
    parser.add_argument("--cpu-slots", type=int, default=2, help="trials at once on the CPU (default: 2)")
    parser.add_argument("--gpu-slots", type=int, default=4, help="trials at once on the one GPU (default: 4)")
    parser.add_argument("--gpu-tflops", type=float, default=5.0,
                        help="assumed achieved TFLOP/s of one GPU when it is not measured (default: 5)")
    parser.add_argument("--gpu-step-ms", type=float, default=10.0,
                        help="assumed fixed cost of one training step on the GPU, in ms (default: 10)")
    parser.add_argument("--sims", type=int, default=200, help="simulated trial orders per search (default: 200)")
    parser.add_argument("--groups", default=None, help="only these, e.g. loss_ce,hf:llama (default: all)")
    parser.add_argument("--combos", default=None, metavar="JSON",
                        help="keep the measured sizes in this file: measured and written when it is absent, read "
                        "when it exists (re-plan with other slots or assumptions without timing again)")
    parser.add_argument("--measure-only", action="store_true", help="measure (and write --combos), no report")
    parser.add_argument("--out", default="reports/grid_cost.md")
    args = parser.parse_args(argv)

    import torch

    from sarbench.cases import SCALES, DataCache
    from sarbench.plan import history_records
    from sarbench.search import SPACES, SearchConfig
    from sarbench.search.cost import search_cost
    from sarbench.search.trial import validated

    torch.set_num_threads(args.threads)
    groups = GROUPS
    if args.groups:
        wanted = {g.strip() for g in args.groups.split(",")}
        groups = [(s, d) for s, d in GROUPS if (f"{s}:{d}" if d else s) in wanted]
    ds = DataCache(args.data_dir).get(args.dataset, SCALES["paper"])
    split = ds.split()
    history = history_records()
    started = _dt.datetime.now(_dt.timezone.utc)
    load = os.getloadavg()
    measured_gpu = str(args.device).startswith("cuda")
    import json
    from dataclasses import asdict

    from sarbench.search.cost import ComboCost, combo_costs

    searches = []
    for space_name, backbone in groups:
        space = SPACES[space_name]
        for attention in ("AE", "AR"):
            search = SearchConfig(args.dataset, backbone or space.design, attention, space.for_attention(attention))
            searches.append((f"{space_name}" + (f" ({backbone})" if backbone else ""), attention,
                             validated(search, ds.num_items, ds.num_users)))
    cache = Path(args.combos) if args.combos else None
    if cache is not None and cache.exists():
        kept = json.loads(cache.read_text())
        measured = {key: [ComboCost(**c) for c in kept["combos"][key]] for key in kept["combos"]}
        started, load, where = _dt.datetime.fromisoformat(kept["when"]), kept["load"], kept["where"]
    else:
        measured = {}
        for label, attention, search in searches:
            print(f"{label} {attention}: timing {search.space.size} trials' sizes", file=sys.stderr, flush=True)
            measured[f"{label} {attention}"] = combo_costs(search, split, device=args.device)
        where = (f"{torch.cuda.get_device_name()}" if measured_gpu else
                 f"{cpu_model()}, {os.cpu_count()} logical cores, {args.threads} thread(s) per trial")
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps({"when": started.isoformat(), "load": list(load), "where": where,
                                         "combos": {k: [asdict(c) for c in v] for k, v in measured.items()}}, indent=1))
    if args.measure_only:
        return 0
    rows, totals = [], {"cpu": 0.0, "gpu": 0.0}
    for label, attention, search in searches:
        combos = measured[f"{label} {attention}"]
        here = search_cost(search, split, concurrency=args.gpu_slots if measured_gpu else args.cpu_slots,
                           sims=args.sims, history=history, combos=combos)
        gpu = here if measured_gpu else search_cost(search, split, concurrency=args.gpu_slots, sims=args.sims,
                                                    history=history,
                                                    combos=gpu_combos(combos, args.gpu_tflops, args.gpu_step_ms))
        totals["cpu"] += here.total_s
        totals["gpu"] += gpu.total_s
        flops = np.mean([c.flops_train for c in combos]) / 1e12
        epoch_s = ", ".join(f"{c.train_s:.0f}" for c in combos)
        rows.append([label, attention, f"{here.trials:,}", f"{flops:.2f}", epoch_s,
                     f"{here.reports[0] * search.eval_every:,.0f}",
                     f"{here.wall_s[0] / 3600:,.1f} ({here.wall_s[1] / 3600:,.1f}-{here.wall_s[2] / 3600:,.1f})",
                     f"{here.retrain_epochs:.0f} ({here.retrain_from})", f"{here.retrain_s / 3600:.1f}",
                     f"{gpu.wall_s[0] / 3600:,.2f}", f"{gpu.retrain_s / 3600:.2f}"])
    gpu_how = (f"measured on {where}, {args.gpu_slots} trials at once" if measured_gpu else
               f"**not measured** (no GPU has been lent to this project): the counted FLOPs at an assumed "
               f"{args.gpu_tflops:g} TFLOP/s achieved by one trial plus an assumed {args.gpu_step_ms:g} ms per "
               f"training step, {args.gpu_slots} trials at once sharing nothing")
    lines = [
        f"# What a tuned Table 5 and Table 6 cost on {args.dataset}: every grid, searched and retrained",
        "",
        f"Measured {started:%Y-%m-%d %H:%M} UTC by `tools/grid_cost.py` (torch {torch.__version__}); timing on "
        f"{where}; load average at the start {load[0]:.2f}.",
        "",
        "Each row is one `sarbench tune` (ASHA with the authors' settings: rungs at 25/50/100/200 epochs, one "
        "report every 5 epochs) and the retrain of its best trial to the early stop. Epochs: the mean over "
        f"{args.sims} simulated trial orders (Ray's `ASHAScheduler` deciding, trial quality fixed across rungs). "
        f"CPU: each grid size timed alone for a few seconds, {args.cpu_slots if not measured_gpu else args.gpu_slots} "
        f"trials at once. GPU: {gpu_how}.",
        "",
        "| space | attention | trials | TFLOP per epoch (mean over sizes) | epoch s per size (hidden, heads; largest first) "
        "| search epochs | search wall h here (10th-90th) | retrain epochs (from) | retrain h here "
        "| search wall h, GPU | retrain h, GPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *[f"| {' | '.join(r)} |" for r in rows],
        "",
        f"Total, every row one after the other: {totals['cpu'] / 3600:,.0f} h here; {totals['gpu'] / 3600:,.1f} h on "
        "one GPU" + ("" if measured_gpu else f" at the assumed {args.gpu_tflops:g} TFLOP/s") + ".",
        "",
        "Left out: trial start-up and Ray's own overhead (seconds per trial), the checkpoint each report writes "
        "(well under a second here), and the slowdown of trials sharing a device (memory bandwidth on the CPU, "
        "the GPU itself): the wall times are lower bounds where trials share. Dropout 0 trials skip the dropout "
        "masks and run somewhat faster than timed. For one search on your own device: "
        "`sarbench tune --dataset D --attention A --space S --dry-run --cost` (add `--gpus-per-trial 0.25` on a GPU).",
        "",
        "```",
        f"python tools/grid_cost.py --dataset {args.dataset} --device {args.device} --threads {args.threads} "
        f"--cpu-slots {args.cpu_slots} --gpu-slots {args.gpu_slots} --gpu-tflops {args.gpu_tflops:g} "
        f"--gpu-step-ms {args.gpu_step_ms:g} --data-dir DATA_DIR",
        "```",
        "",
    ]
    write_report("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
