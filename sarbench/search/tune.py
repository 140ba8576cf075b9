"""The search driver: a grid of trials run by Ray Tune, with ASHA or as a plain grid.

Ray Tune is the engine (``tune.Tuner`` over ``tune.grid_search`` axes with ``num_samples=1``, as
the authors ran it); this module writes no scheduler. What it adds:

* validation of the space before Ray starts (:func:`~sarbench.search.trial.validated`);
* the trials' data through Ray's object store (``tune.with_parameters``), so no node of a cluster
  needs the data files, and their resources through ``tune.with_resources`` (fractional GPUs: with
  ``gpus_per_trial=0.25`` four trials share one GPU);
* one experiment folder per search, named after the case, the space and a hash of the whole
  search (space, scheduler, protocol, data fingerprint, the results version of the case's family): running the same search
  again resumes it with ``Tuner.restore`` (finished trials are kept, unfinished ones continue from
  their last checkpoint, errored ones stay errored); another search never resumes into it;
* an interrupted search (Ctrl-C, or Tune's stop signal SIGUSR1) is incomplete even where Tune's
  results show every trial terminated: the trials still running in the saved state had not ended
  (:func:`saved_unfinished`), and no best trial is chosen;
* Ray's progress reporter trimmed to trial, grid values, epoch and validation Recall@10, and a
  summary table at the end.

**How the best trial is chosen.** ``ResultGrid.get_best_result(metric="valid_R@10", mode="max",
scope=best_scope)`` with ``best_scope="last"`` by default: each trial counts with its *last*
reported validation Recall@10, Ray's default scope, which is what the authors used
(``get_best_trial("recall", "max")``). We keep it for fidelity: the grids, the stopping rungs and
the choice among trials are then the authors'. ``best_scope="all"`` (a trial's best report) is the
alternative; it matches the retrain better (the retrain keeps its best validation state), but it
also rewards a single lucky validation. Under ASHA a trial stopped at a rung is compared by its value at
that rung either way.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..data import SequenceDataset
from .defaults import METRIC
from .trial import SearchConfig, TrialSetup, case_results_version, run_trial, search_split, validated

log = logging.getLogger(__name__)

TUNE_EXTRA = "pip install 'sarbench[tune]'"
SEARCH_KEY = "sarbench_search"  # a constant of every trial's config: the search's identity


class TuneUnavailable(ImportError):
    """Ray Tune is not installed."""


class SearchError(ValueError):
    """A search that cannot run here: resources the cluster lacks, a folder holding another search."""


@dataclass(frozen=True)
class Resources:
    """Where and how trials run; not part of what a search is (a resumed search may change them).

    ``address``: an existing Ray cluster ("auto", "ray://host:10001", "host:6379"); None starts a
    local one with ``num_cpus`` CPUs (None: all). ``gpus_per_trial`` may be fractional.
    ``max_concurrent``: at most this many trials at once (0: as many as the resources allow).
    """

    address: str | None = None
    num_cpus: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int = 0

    def __post_init__(self):
        if self.cpus_per_trial <= 0 or self.gpus_per_trial < 0 or self.max_concurrent < 0:
            raise ValueError("cpus_per_trial must be above 0; gpus_per_trial and max_concurrent at least 0")
        if self.address and self.num_cpus:
            raise ValueError("num_cpus applies to a local Ray instance only, not with an address")

    @property
    def device(self) -> str:
        return "cuda" if self.gpus_per_trial > 0 else "cpu"

    @property
    def threads(self) -> int:
        return max(1, int(self.cpus_per_trial))


def import_tune():
    """``ray.tune``, or :class:`TuneUnavailable` saying how to install it."""
    try:
        from ray import tune
    except ImportError as exc:
        raise TuneUnavailable(f"the search needs Ray Tune ({exc}); install it with: {TUNE_EXTRA}") from None
    return tune


def ensure_ray(resources: Resources) -> None:
    """Attach to the cluster at ``resources.address``, or start a local instance (once per process)."""
    import ray

    if ray.is_initialized():
        return
    if resources.address:
        ray.init(address=resources.address, logging_level=logging.WARNING)
    else:
        ray.init(num_cpus=resources.num_cpus, include_dashboard=False, logging_level=logging.WARNING)


@contextlib.contextmanager
def _console(progress: bool):
    """Environment of ``Tuner.fit``: Ray's classic console output when ``progress`` (the newer output
    ignores a trimmed ``CLIReporter``), and no warning about experiment snapshots after every
    checkpoint (with ``num_to_keep=1`` Tune snapshots the experiment whenever a trial saves one; that
    is what keeps trials and the scheduler's state consistent for a resume)."""
    settings = {"TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0"}
    if progress:
        settings["RAY_AIR_NEW_OUTPUT"] = "0"
    before = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _own_signal_handlers():
    """Give back SIGINT and SIGUSR1 after ``Tuner.fit``: Tune installs its stop handlers and leaves them
    in place, so without this a Ctrl-C during the retrain would be swallowed by a search that has ended."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {name: signal.getsignal(getattr(signal, name)) for name in ("SIGINT", "SIGUSR1") if hasattr(signal, name)}
    try:
        yield
    finally:
        for name, handler in before.items():
            if handler is not None:
                signal.signal(getattr(signal, name), handler)


def saved_unfinished(path: str) -> set[str] | None:
    """Ids of the trials that the experiment's saved state (what a resume starts from) holds as not ended.

    Tune stops an interrupted search (Ctrl-C, SIGUSR1) by saving its state and then terminating the
    running trials, so the ``ResultGrid`` of ``fit`` shows those trials as terminated like the ones
    that ended; the saved state still has them running. None when the state cannot be read.
    """
    from ray.tune import ExperimentAnalysis

    try:
        trials = ExperimentAnalysis(path).trials
    except Exception as exc:  # noqa: BLE001 - any failure to read the state means: do not trust the search
        log.warning("cannot read the saved state of the search in %s (%s)", path, exc)
        return None
    return {str(t.trial_id) for t in trials if t.status not in ("TERMINATED", "ERROR")}


def experiment_name(search: SearchConfig, fingerprint: str) -> str:
    """Folder name of a search: case, space, scheduler and the hash of everything that defines it."""
    space = re.sub(r"[^A-Za-z0-9_.-]+", "_", search.space.name)
    return (f"{search.dataset}-{search.design}-{search.attention}-{space}-{search.scheduler}-"
            f"{search.identity(fingerprint, case_results_version(search))}")


def storage_uri(storage: str | os.PathLike) -> str:
    """A storage path as Ray wants it: URIs (s3://, gs://, ...) as given, local paths absolute."""
    text = str(storage)
    return text if "://" in text else str(Path(text).expanduser().resolve())


# --- results --------------------------------------------------------------------------------------
@dataclass
class TrialSummary:
    """One trial: its grid point, every report, and how it ended."""

    trial_id: str
    point: dict
    reports: list[dict]
    status: str  # "max_t" | "stopped" (by the scheduler) | "error" | "unfinished"
    error: str = ""

    @property
    def last(self) -> float:
        return self.reports[-1][METRIC] if self.reports else math.nan

    @property
    def best(self) -> float:
        return max((r[METRIC] for r in self.reports), default=math.nan)

    @property
    def epochs(self) -> int:
        return self.reports[-1]["epoch"] if self.reports else 0

    def as_dict(self) -> dict:
        return {"trial_id": self.trial_id, "point": self.point, "status": self.status, "error": self.error,
                "reports": self.reports}


def _reports(result) -> list[dict]:
    frame = result.metrics_dataframe
    if frame is None or frame.empty:
        return []
    keep = ["training_iteration", "epoch", "loss", *sorted(c for c in frame if c.startswith("valid_")),
            "time_total_s", "timestamp"]
    rows = frame[[c for c in keep if c in frame]].to_dict("records")
    # A trial resumed from a checkpoint may list the checkpoint's report twice: keep one per iteration.
    by_iteration = {int(row["training_iteration"]): row for row in rows}
    ints = ("training_iteration", "epoch", "timestamp")
    return [{k: (int(v) if k in ints else float(v)) for k, v in row.items()} for _, row in sorted(by_iteration.items())]


def summarize(results, search: SearchConfig, complete: bool, unfinished: set[str] | None = None) -> list[TrialSummary]:
    """A :class:`TrialSummary` per trial of a ``ResultGrid``, in the grid's order. In an incomplete search,
    ``unfinished`` holds the ids of the trials that had not ended (:func:`saved_unfinished`; None: unknown,
    every trial short of max_t counts as unfinished)."""
    names = [k for k, _ in search.space.grid]
    out = []
    for result in results:
        reports = _reports(result)
        trial_id = str((result.metrics or {}).get("trial_id") or Path(result.path).name)
        if result.error is not None:
            status = "error"
        elif reports and reports[-1]["training_iteration"] >= search.max_t:
            status = "max_t"
        else:
            ended = complete or (unfinished is not None and reports and trial_id not in unfinished)
            status = "stopped" if ended else "unfinished"
        point = {k: result.config.get(k) for k in names}
        error = f"{type(result.error).__name__}: {result.error}".splitlines()[0] if result.error is not None else ""
        out.append(TrialSummary(trial_id, point, reports, status, error))
    return sorted(out, key=lambda t: t.trial_id)


@dataclass
class SearchOutcome:
    """A finished (or interrupted) search: every trial, the best one, and where Ray keeps it."""

    search: SearchConfig
    name: str
    path: str
    trials: list[TrialSummary]
    complete: bool
    best: TrialSummary | None = None
    fingerprint: str = ""
    ray_version: str = ""
    notes: list[str] = field(default_factory=list)

    def table(self) -> str:
        """The summary table: one row per trial, best first by the selection rule's value."""
        from tabulate import tabulate

        names = [k for k, _ in self.search.space.grid]
        rule = self.search.best_scope
        value = (lambda t: t.best) if rule == "all" else (lambda t: t.last)
        rows = []
        for t in sorted(self.trials, key=lambda t: -value(t) if not math.isnan(value(t)) else math.inf):
            mark = "*" if self.best is not None and t.trial_id == self.best.trial_id else ""
            rows.append([mark + t.trial_id, *(t.point.get(k) for k in names), len(t.reports), t.epochs,
                         t.last, t.best, t.status + (f" ({t.error})" if t.error else "")])
        headers = ["trial", *names, "reports", "epochs", "last valid R@10", "best valid R@10", "ended"]
        return tabulate(rows, headers=headers, floatfmt=".4f")


def _check_cluster(available: dict, resources: Resources) -> None:
    """Trials that ask for more than the cluster has would wait forever: refuse them up front."""
    for key, need in (("CPU", resources.cpus_per_trial), ("GPU", resources.gpus_per_trial)):
        if need > available.get(key, 0):
            raise SearchError(f"a trial asks for {need:g} {key}(s) but the Ray cluster has {available.get(key, 0):g}")


def make_scheduler(search: SearchConfig):
    """ASHA with the search's settings (metric and mode come from TuneConfig), or None for a plain grid."""
    if search.scheduler != "asha":
        return None
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(time_attr="training_iteration", max_t=search.max_t, grace_period=search.grace_period,
                         reduction_factor=search.reduction_factor)


def run_search(search: SearchConfig, data: SequenceDataset, *, storage: str | os.PathLike,
               name: str | None = None, resources: Resources = Resources(), progress: bool = True,
               callbacks=()) -> SearchOutcome:
    """Run (or resume) ``search`` on ``data`` with Ray Tune; the test split never reaches a trial.

    The space is validated first (:class:`~sarbench.search.spaces.SpaceError` before Ray starts).
    Results go to ``storage/name`` (``name`` defaults to :func:`experiment_name`); if that folder
    holds this search already, it is resumed. ``callbacks`` are extra ``ray.tune.Callback`` objects.
    """
    search = validated(search, data.num_items, data.num_users)
    tune = import_tune()
    import ray

    ensure_ray(resources)
    _check_cluster(ray.cluster_resources(), resources)
    fingerprint = data.fingerprint()
    identity = search.identity(fingerprint, case_results_version(search))
    name = name or experiment_name(search, fingerprint)
    root = storage_uri(storage)
    path = f"{root.rstrip('/')}/{name}"
    setup = TrialSetup(search=search, split=search_split(data.split()), threads=resources.threads,
                       device=resources.device)
    trainable = tune.with_resources(tune.with_parameters(run_trial, setup=setup),
                                    {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial})
    if tune.Tuner.can_restore(path):
        log.warning("resuming the search in %s", path)
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=False)
        other = {r.config.get(SEARCH_KEY) for r in tuner.get_results()} - {identity}
        if other:
            raise SearchError(f"{path} holds another search ({sorted(map(str, other))[0]}, this one is {identity}); "
                             "choose another name or storage")
    else:
        reporter = None
        if progress:
            reporter = tune.CLIReporter(metric_columns={"epoch": "epoch", METRIC: "valid R@10"},
                                        parameter_columns=[k for k, _ in search.space.grid],
                                        max_report_frequency=30)
        scheduler = make_scheduler(search)
        if scheduler is not None:
            from .callbacks import SchedulerState

            callbacks = [SchedulerState(scheduler), *callbacks]
        tuner = tune.Tuner(
            trainable,
            param_space={**{k: tune.grid_search(list(v)) for k, v in search.space.grid}, SEARCH_KEY: identity},
            tune_config=tune.TuneConfig(metric=METRIC, mode="max", scheduler=scheduler, num_samples=1,
                                        reuse_actors=True, max_concurrent_trials=resources.max_concurrent or None),
            run_config=tune.RunConfig(name=name, storage_path=root, progress_reporter=reporter,
                                      verbose=1 if progress else 0, callbacks=list(callbacks),
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
        )
    with _console(progress), _own_signal_handlers():
        results = tuner.fit()
    unfinished = saved_unfinished(path)
    complete = (unfinished == set()
                and results.num_terminated + results.num_errors == len(results) == search.space.size)
    trials = summarize(results, search, complete, unfinished)
    outcome = SearchOutcome(search=search, name=name, path=path, trials=trials, complete=complete,
                            fingerprint=fingerprint, ray_version=ray.__version__)
    if complete and any(t.reports for t in trials):
        best = results.get_best_result(metric=METRIC, mode="max", scope=search.best_scope)
        best_id = str(best.metrics.get("trial_id"))
        outcome.best = next(t for t in trials if t.trial_id == best_id)
    if results.num_errors:
        outcome.notes.append(f"{results.num_errors} trial(s) ended in an error; the best is chosen among the others")
    return outcome


__all__ = ["Resources", "SearchError", "SearchOutcome", "TrialSummary", "TuneUnavailable", "ensure_ray",
           "experiment_name", "import_tune", "run_search", "summarize"]
