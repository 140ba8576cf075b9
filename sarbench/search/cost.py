"""What a search will cost before it starts: its trials' reports under ASHA and their time on a device.

A search's cost is set by two things. **What one report costs** depends on the grid point's sizes
(hidden size and heads; dropout and probabilities barely change it): for each distinct (hidden,
heads) of the grid, :func:`combo_costs` builds the trial's real trainer (``trial_configs``: the
case's preset, the point's overrides, the search protocol) on the data the trials receive, counts
its matrix FLOPs and times a few seconds of real training steps and a validation sample on the
device, as ``sarbench plan`` does for a case (:func:`sarbench.plan.count_and_time`). **How many
reports are made** depends, under ASHA, on which trials are good and in which order they arrive:
:func:`simulate_asha` replays a search with Ray's own ``ASHAScheduler`` deciding, ``concurrency``
trials at once, each report taking its combination's time, over random trial orders (a trial's
quality is fixed across rungs: the stable ranking). A plain grid makes ``max_t`` reports per trial.
The retrain of the best trial is a normal case to its early stop; its epochs come from committed
records of the same case (``sarbench.plan.expected_epochs``), else three patiences.

Timing is of one trial alone on the device: trials that share a GPU (``--gpus-per-trial 0.25``) or
the cores' memory bandwidth run slower than that, so there the wall time is a lower bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ComboCost:
    """One (hidden, heads) of a grid: matrix FLOPs and seconds of one training epoch and one validation."""

    hidden: int | None
    heads: int | None
    flops_train: float
    flops_valid: float
    train_s: float
    valid_s: float
    steps: int = 0  # training batches per epoch

    def report_s(self, eval_every: int) -> float:
        """Seconds of one report: ``eval_every`` training epochs and the validation."""
        return eval_every * self.train_s + self.valid_s


@dataclass(frozen=True)
class SearchCost:
    """The plan of a whole search: reports and wall time over simulated orders, and the retrain."""

    trials: int
    concurrency: int
    combos: tuple[ComboCost, ...]
    reports: tuple[float, float, float]  # mean, 10th and 90th percentile over simulated orders
    wall_s: tuple[float, float, float]
    device_s: float  # the mean summed report time of all trials (the device time if nothing ran at once)
    retrain_epochs: float
    retrain_from: str
    retrain_s: float

    @property
    def total_s(self) -> float:
        return self.wall_s[0] + self.retrain_s


def grid_combos(search) -> list[tuple]:
    """The distinct (hidden, heads) of ``search``'s grid (None where the grid does not search it)."""
    axes = search.space.axes
    return sorted({(h, k) for h in axes.get("hidden", (None,)) for k in axes.get("heads", (None,))},
                  key=lambda c: (-(c[0] or 0), -(c[1] or 0)))


def combo_costs(search, split, *, device: str = "cpu", calibrate: bool = True, budget_s: float = 3.0) -> list[ComboCost]:
    """:class:`ComboCost` of every (hidden, heads) of ``search`` (a validated SearchConfig) on ``split``."""
    import torch

    from ..plan import count_and_time
    from ..train import Trainer, batches
    from .trial import search_split, trial_configs

    axes = search.space.axes
    base = {name: values[0] for name, values in axes.items()}
    if "dropout" in axes:  # a middle rate: dropout 0 skips the masks and would look cheaper than most trials
        base["dropout"] = min(axes["dropout"], key=lambda v: abs(v - 0.2))
    trial_split = search_split(split)
    train = trial_split.train
    out = []
    for hidden, heads in grid_combos(search):
        point = {**base, **({"hidden": hidden} if hidden else {}), **({"heads": heads} if heads else {})}
        model_cfg, train_cfg = trial_configs(search, train.num_items, train.num_users, point, device)
        trainer = Trainer(model_cfg, train_cfg, trial_split)
        order = batches(trainer.lengths_cpu, train_cfg.batch_size, train_cfg.length_buckets,
                        torch.Generator().manual_seed(0))
        c = count_and_time(trainer, order, device=device, calibrate=calibrate, budget_s=budget_s)
        out.append(ComboCost(hidden, heads, c["flops_train"], c["flops_valid"], c["train_s"], c["valid_s"],
                             len(order)))
    return out


def simulate_asha(search, costs: list[float], concurrency: int, rng, noise: float = 0.0) -> tuple[int, float]:
    """(reports, wall seconds) of one search of ``len(costs)`` trials, trial i's report taking ``costs[i]``
    seconds: Ray's ``ASHAScheduler`` decides, as Tune's controller calls it, with trials started in a random
    order, ``concurrency`` at once. Trial quality is a random draw, fixed across rungs, plus ``noise`` per
    report."""
    from ray.tune.schedulers import ASHAScheduler

    class Trial:  # what the scheduler reads of a trial
        def __init__(self, trial_id):
            self.trial_id = trial_id

    np.random.seed(int(rng.integers(2**31)))  # ASHA draws its bracket from numpy's global generator
    sched = ASHAScheduler(metric="m", mode="max", max_t=search.max_t, grace_period=search.grace_period,
                          reduction_factor=search.reduction_factor)
    n = len(costs)
    queue = list(rng.permutation(n))
    quality = rng.random(n)
    running: dict[int, tuple[float, int]] = {}  # trial -> (time of its next report, reports so far)
    now, reports = 0.0, 0
    trials = {i: Trial(str(i)) for i in range(n)}
    while queue or running:
        while queue and len(running) < concurrency:
            i = queue.pop(0)
            sched.on_trial_add(None, trials[i])
            running[i] = (now + costs[i], 0)
        i = min(running, key=lambda k: running[k][0])
        now, done = running.pop(i)
        done += 1
        reports += 1
        result = {"training_iteration": done, "m": quality[i] + noise * rng.standard_normal()}
        if sched.on_trial_result(None, trials[i], result) == "STOP" or done >= search.max_t:
            sched.on_trial_complete(None, trials[i], result)
        else:
            running[i] = (now + costs[i], done)
    return reports, now


def grid_wall_s(costs: list[float], max_t: int, concurrency: int) -> float:
    """Wall seconds of a plain grid (every trial ``max_t`` reports), trials taken in order as slots free up."""
    slots = [0.0] * max(1, concurrency)
    for c in sorted(costs, reverse=True):
        slots[slots.index(min(slots))] += c * max_t
    return max(slots)


def _spread(values) -> tuple[float, float, float]:
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(np.percentile(v, 10)), float(np.percentile(v, 90))


def search_cost(search, split, *, device: str = "cpu", concurrency: int = 1, sims: int = 200, history=(),
                combos: list[ComboCost] | None = None, calibrate: bool = True) -> SearchCost:
    """The :class:`SearchCost` of ``search`` (validated) on ``split``; ``combos`` reuses measured ones."""
    from ..designs import HF_BACKBONES
    from ..plan import case_id_of, expected_epochs, run_seconds
    from .trial import base_configs

    combos = combos if combos is not None else combo_costs(search, split, device=device, calibrate=calibrate)
    by_size = {(c.hidden, c.heads): c for c in combos}
    points = search.space.points()
    costs = [by_size[(p.get("hidden"), p.get("heads"))].report_s(search.eval_every) for p in points]
    if search.scheduler == "asha":
        rng = np.random.default_rng(search.seed)
        runs = [simulate_asha(search, costs, concurrency, rng) for _ in range(max(1, sims))]
        reports, wall = _spread([r for r, _ in runs]), _spread([w for _, w in runs])
        per_report = sum(costs) / len(costs)
        device_s = reports[0] * per_report
    else:
        reports = (float(len(points) * search.max_t),) * 3
        wall = (grid_wall_s(costs, search.max_t, concurrency),) * 3
        device_s = sum(costs) * search.max_t
    model_cfg, train_cfg = base_configs(search, split.train.num_items, split.train.num_users)
    backbone = search.design in HF_BACKBONES
    case = dict(table="hf" if backbone else "design", dataset=search.dataset, attention=search.attention,
                design="vanilla" if backbone else search.design, model=search.design if backbone else "sar")
    cid = case_id_of(case, train_cfg.loss)
    epochs, source = expected_epochs(cid, search.dataset, search.attention, history, train_cfg.patience)
    epochs = min(epochs, train_cfg.max_epochs)
    axes = search.space.axes
    size = tuple(getattr(model_cfg, k, None) if k in axes else None for k in ("hidden", "heads"))
    base = by_size.get(size, combos[0])  # the preset's own size, which the retrain starts from
    retrain_s = run_seconds(epochs, base.train_s, base.valid_s, train_cfg.eval_every)
    return SearchCost(trials=len(points), concurrency=concurrency, combos=tuple(combos), reports=reports,
                      wall_s=wall, device_s=device_s, retrain_epochs=epochs, retrain_from=source, retrain_s=retrain_s)


def _h(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 360 else f"{seconds / 60:.1f} min"


def cost_lines(search, cost: SearchCost, device: str) -> list[str]:
    """What ``sarbench tune --dry-run --cost`` prints."""
    lines = [f"cost on {device} (each trial timed alone for a few seconds; {cost.concurrency} trial(s) at once):"]
    for c in cost.combos:
        size = ", ".join(p for p in (f"hidden {c.hidden}" if c.hidden else "", f"heads {c.heads}" if c.heads else "")
                         if p) or "the preset's sizes"
        lines.append(f"  {size}: epoch {c.flops_train / 1e12:.2f} TFLOP, {c.train_s:.1f} s; validation "
                     f"{c.valid_s:.1f} s; one report {c.report_s(search.eval_every):.0f} s")
    mean, lo, hi = cost.reports
    wmean, wlo, whi = cost.wall_s
    if search.scheduler == "asha":
        lines.append(f"  search: {mean:,.0f} reports ({lo:,.0f}-{hi:,.0f} over simulated trial orders, ASHA deciding), "
                     f"{mean * search.eval_every:,.0f} epochs; wall {_h(wmean)} ({_h(wlo)}-{_h(whi)})")
    else:
        lines.append(f"  search: {mean:,.0f} reports (every trial {search.max_t}), {mean * search.eval_every:,.0f} "
                     f"epochs; wall {_h(wmean)}")
    lines.append(f"  retrain of the best: {cost.retrain_epochs:.0f} epochs ({cost.retrain_from}), {_h(cost.retrain_s)}")
    lines.append(f"  total: about {_h(cost.total_s)} of wall time, {_h(cost.device_s + cost.retrain_s)} of one "
                 "trial's device time summed")
    return lines


__all__ = ["ComboCost", "SearchCost", "combo_costs", "cost_lines", "grid_combos", "grid_wall_s", "search_cost",
           "simulate_asha"]
