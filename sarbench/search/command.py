"""``sarbench tune``: search one case's space with Ray Tune, retrain the best, write the tuned preset."""

from __future__ import annotations

import argparse
import sys

from ..config import ATTENTIONS
from .defaults import (AUTHORS_EVAL_EVERY, AUTHORS_GRACE_PERIOD, AUTHORS_MAX_T, AUTHORS_REDUCTION_FACTOR,
                       BEST_SCOPES, PRESETS_ENV, SCHEDULERS)
from .spaces import SPACES, SpaceError, get_space, with_axes

INTERRUPTED = 130  # exit status of an interrupted search or retrain (128 + SIGINT, as a shell reports Ctrl-C)

DESCRIPTION = (
    "Search a named space (the paper's grids: " + ", ".join(SPACES) + ") or a JSON space file for one "
    "(dataset, design, attention) with Ray Tune: ASHA with the authors' settings (max_t 40 reports, grace period 5, "
    "reduction factor 2, one report every 5 epochs) or a plain grid (the default for the vanilla network). Table 6's "
    "backbones are searched with --space hf --design albert|llama|transfo_xl. The metric is validation Recall@10 (the test "
    "split never reaches a trial); the best trial is the one with the best last reported value, as the authors chose. "
    "The best configuration is then trained from scratch as a normal case (record in --results) and written as a "
    "preset file (--presets) that benchmark cases load by name. An interrupted search or retrain (Ctrl-C) writes no "
    "preset and exits with status 130; run the same command again to resume it: finished trials are kept. Needs the "
    "tune extra: pip install 'sarbench[tune]'."
)


def _space_rows() -> list[list]:
    rows = []
    for name, space in SPACES.items():
        axes = " x ".join(f"{k}{{{','.join(f'{v:g}' if isinstance(v, float) else str(v) for v in values)}}}"
                          for k, values in space.grid)
        fixed = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in space.fixed)
        tied = ", ".join(f"{k}=<{v}>" for k, v in space.tied)
        rows.append([name, space.design or "(--design)", space.size, space.for_attention("AR").size, axes,
                     "; ".join(p for p in (fixed, tied) if p)])
    return rows


def cmd_list_spaces() -> int:
    from tabulate import tabulate

    print(tabulate(_space_rows(), headers=["space", "design", "AE trials", "AR trials", "grid", "fixed / tied"]))
    return 0


def build_search(args):
    """The SearchConfig of the command line (SpaceError / ValueError for bad input)."""
    from .trial import SearchConfig

    space = get_space(args.space)
    if args.grid:
        space = with_axes(space, args.grid)
    design = args.design or space.design
    if not design:
        raise SpaceError(f"space {space.name} does not name a design; pass --design")
    return SearchConfig(dataset=args.dataset, design=design, attention=args.attention,
                        space=space.for_attention(args.attention), scheduler=args.scheduler, max_t=args.max_t,
                        grace_period=args.grace_period, reduction_factor=args.reduction_factor,
                        eval_every=args.eval_every, best_scope=args.best_scope, seed=args.seed,
                        eval_users=args.eval_users, scale=args.scale)


def plan_lines(search, name: str, where: str) -> list[str]:
    rungs = search.rungs()
    how = (f"ASHA, rungs at reports {rungs} (epochs {[r * search.eval_every for r in rungs]}), reduction factor "
           f"{search.reduction_factor:g}" if rungs else "plain grid (every trial runs max_t reports)")
    return [
        f"search {search.space.name} for {search.dataset} {search.design}-{search.attention}: {search.space.size} "
        f"trial(s) over {', '.join(k for k, _ in search.space.grid)}; {how}",
        f"one report every {search.eval_every} epoch(s), at most {search.max_t} reports ({search.max_epochs} epochs) "
        f"per trial; metric validation Recall@10; best trial by its {search.best_scope} reported value",
        f"experiment {name} in {where}",
    ]


def _trial_device(args) -> str:
    return "cuda" if args.gpus_per_trial > 0 else "cpu"


def _slots(resources) -> int:
    """Trials at once on this machine's resources (what a local Ray instance would run)."""
    import os

    if resources.gpus_per_trial > 0:
        import torch

        return max(1, int(torch.cuda.device_count() / resources.gpus_per_trial))
    cpus = resources.num_cpus or os.cpu_count() or 1
    return max(1, int(cpus / resources.cpus_per_trial))


def cmd_tune(args: argparse.Namespace) -> int:
    if args.list_spaces:
        return cmd_list_spaces()
    missing = [f for f, v in (("--dataset", args.dataset), ("--attention", args.attention), ("--space", args.space))
               if not v]
    if missing:
        print(f"sarbench tune: error: {', '.join(missing)} required (or --list-spaces)", file=sys.stderr)
        return 2
    from pathlib import Path

    from ..cases import SCALES, DataCache
    from ..data import DatasetMissing
    from .trial import validated
    from .tune import Resources, SearchError, TuneUnavailable, experiment_name, storage_uri
    from .tuned import tune_case

    try:
        search = build_search(args)
        resources = Resources(address=args.address, num_cpus=args.num_cpus, cpus_per_trial=args.cpus_per_trial,
                              gpus_per_trial=args.gpus_per_trial, max_concurrent=args.max_concurrent)
        data = DataCache(args.data_dir)
        ds = data.get(search.dataset, SCALES[search.scale])
        search = validated(search, ds.num_items, ds.num_users)
    except (SpaceError, ValueError, KeyError, DatasetMissing) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"sarbench: error: {message}", file=sys.stderr)
        return 1
    results = Path(args.results)
    storage = args.storage or results / "tune"
    name = args.name or experiment_name(search, ds.fingerprint())
    for line in plan_lines(search, name, storage_uri(storage)):
        print(line)
    if args.cost:
        from ..cases import torch_threads
        from ..plan import history_records
        from .cost import cost_lines, search_cost

        concurrency = args.max_concurrent or _slots(resources)
        try:
            with torch_threads(max(1, int(args.cpus_per_trial))):  # a trial's threads (tune.py sets the same)
                cost = search_cost(search, ds.split(), device=_trial_device(args), concurrency=concurrency,
                                   history=history_records())
        except ImportError as exc:
            print(f"sarbench tune: error: --cost simulates ASHA with Ray ({exc}); pip install 'sarbench[tune]'",
                  file=sys.stderr)
            return 1
        for line in cost_lines(search, cost, _trial_device(args)):
            print(line)
    if args.dry_run:
        return 0
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        result = tune_case(search, results=results, data=data, presets=args.presets, storage=storage, name=name,
                           resources=resources, device=args.device, retrain=not args.no_retrain,
                           progress=not args.no_progress)
    except (TuneUnavailable, SpaceError, SearchError) as exc:
        print(f"sarbench: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sarbench tune: interrupted; no preset written. Run the same command again to resume the search "
              "(finished trials are kept)", file=sys.stderr)
        return INTERRUPTED
    outcome = result.outcome
    print(outcome.table())
    for note in outcome.notes:
        print(f"note: {note}")
    if not outcome.complete:
        ended = sum(t.status != "unfinished" for t in outcome.trials)
        print(f"sarbench tune: the search was interrupted ({ended} of {search.space.size} trials ended); no preset "
              f"written. Run the same command again to resume it (finished trials are kept, unfinished ones "
              f"continue from their last report)", file=sys.stderr)
        return INTERRUPTED
    if result.interrupted:
        rec = result.record
        print(f"sarbench tune: the retrain of the best trial was interrupted after {rec.epochs} epochs; no preset "
              f"written. Run the same command again to continue it from its checkpoint (the search is not rerun)",
              file=sys.stderr)
        return INTERRUPTED
    best = outcome.best
    print(f"best trial {best.trial_id}: " + ", ".join(f"{k}={v}" for k, v in best.point.items())
          + f" (last valid R@10 {best.last:.4f} after {best.epochs} epochs)")
    if result.record is not None:
        rec = result.record
        metrics = " ".join(f"{k} {v:.4f}" for k, v in rec.metrics.items())
        print(f"retrained from scratch as {rec.case_id} seed {rec.seed}: stopped ({rec.extra.get('stopped')}) after "
              f"{rec.epochs} epochs, best {rec.extra.get('best_epoch')}; test {metrics}")
    print(f"preset: {result.preset}")
    return 0


def add_tune_parser(sub) -> None:
    """Add the ``tune`` command to the top-level subparsers (used by ``sarbench.cli``)."""
    from ..data import DATA_ENV

    p = sub.add_parser("tune", help="hyperparameter search with Ray Tune (ASHA or grid); writes a tuned preset",
                       description=DESCRIPTION)
    p.add_argument("--dataset", default=None, help="dataset name (required unless --list-spaces)")
    p.add_argument("--attention", choices=list(ATTENTIONS), default=None, help="AE or AR (required unless --list-spaces)")
    p.add_argument("--space", default=None, metavar="NAME|FILE",
                   help=f"named space ({', '.join(SPACES)}) or a JSON space file (required unless --list-spaces)")
    p.add_argument("--design", default=None,
                   help="preset design of the case (default: the space's: loss_ce -> ce, local_attn -> local, ...); "
                   "with --space hf a Table-6 backbone: albert, llama or transfo_xl")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="add or replace a grid axis, e.g. heads=1,2 (repeatable; default: the space's grid)")
    p.add_argument("--scheduler", choices=SCHEDULERS, default="",
                   help="asha or a plain grid (default: grid for the vanilla network, as the paper's Section 5.1; "
                   "asha, the authors', for the design space and the HF backbones)")
    p.add_argument("--max-t", type=int, default=AUTHORS_MAX_T,
                   help=f"reports per trial at most (default: {AUTHORS_MAX_T}, the authors')")
    p.add_argument("--grace-period", type=int, default=AUTHORS_GRACE_PERIOD,
                   help=f"ASHA's first rung, in reports (default: {AUTHORS_GRACE_PERIOD})")
    p.add_argument("--reduction-factor", type=float, default=AUTHORS_REDUCTION_FACTOR,
                   help=f"ASHA's reduction factor (default: {AUTHORS_REDUCTION_FACTOR:g})")
    p.add_argument("--eval-every", type=int, default=AUTHORS_EVAL_EVERY,
                   help=f"epochs per report (default: {AUTHORS_EVAL_EVERY}, the authors')")
    p.add_argument("--best-scope", choices=BEST_SCOPES, default="last",
                   help="best trial by its last report (the authors') or its best report (default: last)")
    p.add_argument("--seed", type=int, default=0, help="seed of every trial and of the retrain (default: 0)")
    p.add_argument("--eval-users", type=int, default=0,
                   help="validate trials on this many users; 0 = all, as the authors (default: 0)")
    p.add_argument("--scale", choices=["paper", "smoke"], default="paper",
                   help="data and retrain scale: paper = full data; smoke = a 1,000-user subset (default: paper)")
    p.add_argument("--data-dir", default=None, help=f"folder with the real datasets (default: ${DATA_ENV})")
    p.add_argument("--results", default="results",
                   help="results folder of the retrained case (default: results)")
    p.add_argument("--storage", default=None, metavar="PATH|URI",
                   help="where Ray keeps the search; on a cluster a path every node sees, or s3://... "
                   "(default: RESULTS/tune)")
    p.add_argument("--name", default=None,
                   help="experiment folder name (default: case, space, scheduler and a hash of the search)")
    p.add_argument("--presets", default=None,
                   help=f"presets folder (default: ${PRESETS_ENV}, else presets)")
    p.add_argument("--address", default=None,
                   help="attach to an existing Ray cluster (auto, HOST:6379 or ray://HOST:10001); "
                   "default: start a local Ray instance")
    p.add_argument("--num-cpus", type=int, default=None,
                   help="CPUs of the local Ray instance (default: all; not with --address)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0,
                   help="CPUs per trial; also its torch threads (default: 1)")
    p.add_argument("--gpus-per-trial", type=float, default=0.0,
                   help="GPUs per trial, fractional allowed: 0.25 puts four trials on a GPU; > 0 trains on CUDA "
                   "(default: 0)")
    p.add_argument("--max-concurrent", type=int, default=0,
                   help="trials at once at most; 0 = as many as the resources allow (default: 0)")
    p.add_argument("--device", default="cpu", help="device of the retrain: cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads of the retrain; 0 = torch's default (default: 0)")
    p.add_argument("--no-retrain", action="store_true",
                   help="write the preset without retraining the best configuration (default: retrain)")
    p.add_argument("--no-progress", action="store_true", help="no progress table (default: Ray's reporter)")
    p.add_argument("--dry-run", action="store_true",
                   help="check the space and print the plan (trials, rungs, folder) without starting Ray")
    p.add_argument("--cost", action="store_true",
                   help="before the search (or with --dry-run, instead of it): time each grid size for a few seconds "
                   "on the trials' device and print what the search and the retrain will cost (ASHA simulated "
                   "with Ray's scheduler over random trial orders)")
    p.add_argument("--list-spaces", action="store_true", help="list the named spaces and exit")
    p.set_defaults(func=cmd_tune)
