"""What a run will cost before it starts: FLOPs, epochs, peak memory and time per case.

For each case the plan builds the case's real trainer on its real data (the configuration of
``run_case``) and measures, in a few seconds:

* **matrix FLOPs per epoch**: ``torch.utils.flop_counter.FlopCounterMode`` counts the forward and
  backward matrix products of a few of the epoch's own batches, chosen across the batch lengths (the
  epoch groups users of similar length, so batches differ in cost), and of the validation of a
  sample of users; scaled to the epoch's batches and the evaluated users;
* **time per epoch** on this device with ``threads`` CPU threads: real training steps (loss,
  backward, clipping, optimiser step) on the epoch's batches in random order for about five seconds
  after one warm-up step, and the timed validation of the user sample, scaled to the whole epoch;
* **peak memory** of training: parameters, gradients, the two Adam moments and the kept best state,
  plus the largest sampled batch's tensors saved for backward (measured with
  ``torch.autograd.graph.saved_tensors_hooks``) and the training windows;
* **expected epochs**: the mean epochs of committed records of the same case (any seed), else of
  the same dataset and attention, else an assumption (three patiences) that the table marks.

The estimate of a case is ``epochs x train + its validations (one every ``eval_every`` epochs) + one test``; CPU time is that times the
threads. It assumes the machine is as busy during the run as during the calibration. Runs that will
share the machine (two at once, one thread each, say) are planned with ``concurrent=N``: the timing
then runs while N - 1 other processes train the same case side by side, so that it pays what they
cost each other (memory bandwidth, caches, a shared core).
"""

from __future__ import annotations

import math
import multiprocessing
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

PAPER_DATASETS = ("beauty", "sports", "video", "yelp", "ml-1m")
SAMPLE_BATCHES = 4  # batches whose FLOPs are counted, across the batch lengths
SAMPLE_USERS = 1024  # users of the timed and counted validation sample
MIN_TIMED = 3  # at least this many batches are timed, in random order, for at least budget_s seconds


@dataclass(frozen=True)
class CaseCost:
    """The plan of one case (seconds are wall time of one run with ``threads`` threads)."""

    case_id: str
    flops_train: float  # matrix FLOPs of one training epoch (forward + backward)
    flops_valid: float  # of one validation pass over every evaluated user
    epochs: float
    epochs_from: str  # "records (n)", "dataset (n)" or "assumed"
    peak_bytes: int
    train_s: float  # one training epoch; NaN without calibration
    valid_s: float  # one validation pass
    eval_every: int = 1  # epochs per validation (Tables 5 and 6 validate every 5)

    @property
    def epoch_s(self) -> float:
        """One epoch with its share of the validations."""
        return self.train_s + self.valid_s / self.eval_every

    def run_s(self, epochs: float) -> float:
        """A run of ``epochs`` epochs: their training, their validations and the test (which costs one)."""
        return run_seconds(epochs, self.train_s, self.valid_s, self.eval_every)

    @property
    def total_s(self) -> float:
        return self.run_s(self.epochs)


def run_seconds(epochs: float, train_s: float, valid_s: float, eval_every: int = 1) -> float:
    """Seconds of a run of ``epochs`` training epochs of ``train_s`` each, validated every ``eval_every``
    epochs (a started check counts) and tested once, a validation and the test costing ``valid_s`` each."""
    return epochs * train_s + (math.ceil(epochs / eval_every) + 1) * valid_s


def selected_cases(marker: str = "vanilla", datasets: str | None = None, models: str | None = None,
                   scale: str = "paper") -> list[dict]:
    """The cases of one table (``vanilla``, ``design``, ``hf``) as ``run_case`` keyword sets."""
    names = [d.strip() for d in datasets.split(",")] if datasets else list(PAPER_DATASETS)
    extra = [m.strip() for m in models.split(",")] if models else []
    cases = []
    for d in names:
        if marker == "vanilla":
            cases += [dict(table="vanilla", dataset=d, design="vanilla", attention=a, model="sar") for a in ("AE", "AR")]
            for m in extra:
                from .models.interface import get_spec

                cases += [dict(table="vanilla", dataset=d, design="vanilla", attention=a, model=m)
                          for a in get_spec(m).attentions]
        elif marker == "design":
            cases += [dict(table="design", dataset=d, design=g, attention=a, model="sar")
                      for g in ("local", "ssept", "ce", "bpr") for a in ("AE", "AR")]
        elif marker == "hf":
            cases += [dict(table="hf", dataset=d, design="vanilla", attention=a, model=m)
                      for m in ("albert", "llama", "transfo_xl") for a in ("AE", "AR")]
        else:
            raise ValueError(f"marker must be vanilla, design or hf, got {marker!r}")
    return cases


def case_id_of(case: dict, loss: str) -> str:
    """The case id of a ``run_case`` keyword set (``selected_cases``' form) trained with ``loss``."""
    from .cases import DESIGN_VARIANT, case_id

    if case["model"] != "sar":
        return case_id(case["table"], case["dataset"], case["attention"], loss, case["model"])
    variant = "" if case["table"] == "vanilla" else DESIGN_VARIANT[case["design"]]
    return case_id(case["table"], case["dataset"], case["attention"], loss, variant)


def expected_epochs(case_id: str, dataset: str, attention: str, history: Sequence, patience: int) -> tuple[float, str]:
    """Mean epochs of ``history`` records of the case, else of the dataset and attention, else 3 patiences."""
    same = [r.epochs for r in history if r.case_id == case_id and r.scale == "paper" and r.epochs]
    if same:
        return float(np.mean(same)), f"records ({len(same)})"
    near = [r.epochs for r in history if r.dataset == dataset and r.attention == attention and r.scale == "paper"
            and r.epochs]
    if near:
        return float(np.mean(near)), f"dataset ({len(near)})"
    return float(3 * patience), "assumed"


def history_records(source: str | None = None) -> list:
    """Records that say how many epochs a case takes: ``source``, else the packaged references and, in a
    checkout, the committed paper-scale records."""
    from .references import load_references
    from .store import ResultStore

    if source:
        return ResultStore(source).records()
    records = load_references()
    checkout = Path(__file__).resolve().parent.parent / "reports" / "baseline" / "paper"
    seen = {r.key for r in records}
    if checkout.is_dir():
        records += [r for r in ResultStore(checkout).records() if r.key not in seen]
    return records


def _saved_bytes(fn) -> tuple[int, object]:
    """(bytes of the distinct tensors autograd saves for backward while ``fn()`` runs, its result)."""
    seen: dict[tuple, int] = {}

    def pack(t):
        if t.device.type != "meta":
            seen[(t.untyped_storage().data_ptr(), t.device.type)] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(seen.values()), out


def _case_trainer(case: dict, ds, scale, device: str, seed: int):
    """The case's real trainer (the configuration of ``run_case``) and its epoch's batches, in the order
    a generator seeded with ``seed`` gives them."""
    from .cases import configure
    from .train import Trainer, batches

    model_cfg, train_cfg = configure(case["dataset"], case["design"], case["attention"], ds, scale, 0, device,
                                     model=case["model"])
    trainer = Trainer(model_cfg, train_cfg, ds.split())
    order = batches(trainer.lengths_cpu, train_cfg.batch_size, train_cfg.length_buckets,
                    torch.Generator().manual_seed(seed))
    return trainer, order


def _busy_worker(case: dict, data_dir, scale, device: str, threads: int, ready, stop) -> None:
    """Train ``case`` step after step until ``stop`` is set: the load of a run beside the timed one."""
    from .cases import DataCache

    torch.set_num_threads(threads)
    trainer, batch_list = _case_trainer(case, DataCache(data_dir).get(case["dataset"], scale), scale, device, seed=1)
    trainer.model.train()
    trainer.train_step(batch_list[0])
    ready.set()
    i = 0
    while not stop.is_set():
        trainer.train_step(batch_list[i % len(batch_list)])
        i += 1


class _SideBySide:
    """``n`` processes training ``case`` while the block runs (none for n = 0)."""

    def __init__(self, n: int, case: dict, data_dir, scale, device: str, threads: int):
        self.n, self.args = n, (case, data_dir, scale, device, threads)
        self.procs: list = []

    def __enter__(self):
        if self.n <= 0:
            return self
        ctx = multiprocessing.get_context("spawn")
        self.stop = ctx.Event()
        readies = [ctx.Event() for _ in range(self.n)]
        self.procs = [ctx.Process(target=_busy_worker, args=(*self.args, ready, self.stop), daemon=True)
                      for ready in readies]
        for p in self.procs:
            p.start()
        for ready, p in zip(readies, self.procs):
            while not ready.wait(1.0):
                if not p.is_alive():
                    raise RuntimeError(f"a side-by-side calibration process for {self.args[0]} failed "
                                       f"(exit code {p.exitcode})")
        return self

    def __exit__(self, *exc):
        if self.procs:
            self.stop.set()
            for p in self.procs:
                p.join(timeout=60)
                if p.is_alive():
                    p.terminate()
        return False


def count_and_time(trainer, batch_list, *, device: str = "cpu", calibrate: bool = True, budget_s: float = 5.0,
                   side_by_side=None) -> dict:
    """FLOPs, seconds and peak bytes of one epoch of ``trainer`` over ``batch_list`` (see the module docstring):
    ``flops_train``, ``flops_valid``, ``train_s``, ``valid_s`` (NaN without calibration), ``peak_bytes``.
    ``side_by_side``: a context manager whose block the timing runs in (other processes training beside it)."""
    from contextlib import nullcontext

    from .evaluate import evaluate

    split, train_cfg = trainer.split, trainer.cfg
    by_len = sorted(batch_list, key=lambda idx: (int(trainer.lengths_cpu[idx].max()), len(idx)))
    picks = [by_len[min(len(by_len) - 1, int((i + 0.5) * len(by_len) / SAMPLE_BATCHES))]
             for i in range(min(SAMPLE_BATCHES, len(by_len)))]
    trainer.model.train()
    flops, saved = [], []
    for idx in picks:
        with FlopCounterMode(display=False) as counter:
            nbytes, _ = _saved_bytes(lambda: trainer.train_step(idx))
        flops.append(counter.get_total_flops())
        saved.append(nbytes)
    n_eval = len(split.eval_users)
    sample = np.sort(np.random.default_rng(0).choice(n_eval, min(SAMPLE_USERS, n_eval), replace=False))
    valid_kwargs = dict(stage="valid", ks=train_cfg.ks, exclude=train_cfg.exclusion, max_len=trainer.fields.max_len,
                        device=device, users=sample)
    trainer.model.eval()
    with FlopCounterMode(display=False) as counter:
        evaluate(trainer.model, split, **valid_kwargs)
    flops_valid = counter.get_total_flops() * n_eval / len(sample)
    train_s = valid_s = math.nan
    if calibrate:
        with side_by_side if side_by_side is not None else nullcontext():
            trainer.model.train()
            trainer.train_step(picks[0])  # warm-up
            done, start = 0, time.perf_counter()
            for i in np.random.default_rng(1).permutation(len(batch_list)):  # an unbiased sample of the batches
                trainer.train_step(batch_list[i])
                done += 1
                if done >= MIN_TIMED and time.perf_counter() - start >= budget_s:
                    break
            _sync(device)
            train_s = (time.perf_counter() - start) / done * len(batch_list)
            trainer.model.eval()
            start = time.perf_counter()
            evaluate(trainer.model, split, **valid_kwargs)
            _sync(device)
            valid_s = (time.perf_counter() - start) * n_eval / len(sample)
    params = sum(p.numel() * p.element_size() for p in trainer.model.parameters())
    windows = sum(t.numel() * t.element_size() for t in (trainer.inputs, trainer.targets))
    return dict(flops_train=float(np.mean(flops)) * len(batch_list), flops_valid=flops_valid, train_s=train_s,
                valid_s=valid_s, peak_bytes=5 * params + max(saved) + windows)


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def measure_case(case: dict, *, data, scale, device: str = "cpu", history: Sequence = (),
                 calibrate: bool = True, budget_s: float = 5.0, concurrent: int = 1) -> CaseCost:
    """The :class:`CaseCost` of one case (see the module docstring)."""
    trainer, batch_list = _case_trainer(case, data.get(case["dataset"], scale), scale, device, seed=0)
    train_cfg = trainer.cfg
    cid = case_id_of(case, train_cfg.loss)
    side = _SideBySide(concurrent - 1, case, data.data_dir, scale, device, torch.get_num_threads())
    cost = count_and_time(trainer, batch_list, device=device, calibrate=calibrate, budget_s=budget_s,
                          side_by_side=side)
    epochs, source = expected_epochs(cid, case["dataset"], case["attention"], history, train_cfg.patience)
    epochs = min(epochs, train_cfg.max_epochs)
    return CaseCost(case_id=cid, epochs=epochs, epochs_from=source, eval_every=train_cfg.eval_every, **cost)


def plan_cases(cases: Iterable[dict], *, data_dir=None, scale: str = "paper", threads: int = 1, device: str = "cpu",
               history: str | None = None, calibrate: bool = True, concurrent: int = 1) -> list[CaseCost]:
    """:func:`measure_case` for each case, with ``threads`` torch threads and ``concurrent`` runs at once."""
    if concurrent < 1:
        raise ValueError(f"concurrent must be at least 1 (runs at once), got {concurrent}")
    from .cases import SCALES, DataCache, torch_threads

    data = DataCache(data_dir)
    past = history_records(history)
    with torch_threads(threads):
        return [measure_case(c, data=data, scale=SCALES[scale], device=device, history=past, calibrate=calibrate,
                             concurrent=concurrent) for c in cases]


def _hours(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds / 3600:.2f}"


def render_plan(rows: Sequence[CaseCost], threads: int = 1, concurrent: int = 1) -> str:
    """A Markdown table of the plan, one row per case, and the total (``concurrent`` runs at once)."""
    head = ("| case | TFLOP/epoch (train + valid) | epochs (from) | peak memory | s/epoch (train + valid) | "
            f"wall h | CPU h ({threads} thread{'s' if threads != 1 else ''}) |")
    lines = [head, "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.case_id} | {r.flops_train / 1e12:.2f} + {r.flops_valid / 1e12:.2f} | "
                     f"{r.epochs:.0f} ({r.epochs_from}) | {r.peak_bytes / 2**20:.0f} MiB | "
                     f"{r.train_s:.1f} + {r.valid_s:.1f} | {_hours(r.total_s)} | {_hours(r.total_s * threads)} |")
    total = sum(r.total_s for r in rows)
    flops = sum(r.epochs * (r.flops_train + r.flops_valid) for r in rows)
    at_once = (f" (timed {concurrent} at once: about {_hours(total / concurrent)} h of wall time when they run "
               f"so)" if concurrent > 1 else "")
    lines.append(f"\nTotal: {len(rows)} cases, {flops / 1e15:.1f} PFLOP, {_hours(total)} h of runs one after the "
                 f"other{at_once}, {_hours(total * threads)} CPU-hours.")
    assumed = [r.case_id for r in rows if r.epochs_from == "assumed"]
    if assumed:
        lines.append(f"Epochs assumed (no record of the case or its dataset): {', '.join(assumed)}.")
    return "\n".join(lines)


__all__ = ["CaseCost", "expected_epochs", "history_records", "measure_case", "plan_cases", "render_plan",
           "selected_cases"]
