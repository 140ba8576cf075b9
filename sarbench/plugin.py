"""The sarbench pytest plugin: options, markers, fixtures and the end-of-run report for `pytest bench`.

Registered through the ``pytest11`` entry point, so any pytest run in an environment where sarbench
is installed knows the options below. It costs such runs nothing: this module imports only pytest,
and the benchmark's state (torch, data, results store) is built the first time a benchmark case
asks for it. From a source tree that is not installed, load it with ``-p sarbench.plugin`` (as
``gpu_check/gpu_check.sh`` does). Session state lives in ``config.stash``.

Benchmark cases are named after the paper table they fill (``vanilla[ml-1m-AR-ce]``,
``direction[ml-1m-vanilla]``), not ``test_*``. In the modules the ini option ``sarbench_case_modules``
names (sarbench's pytest.ini: ``bench/test_*.py``), every public function defined in the module is
collected as a test, whatever its name; helpers there start with ``_``. A function imported into
such a module is never a case (only pytest's own ``python_functions`` rule applies to it), nor is a
fixture or a ``pytest_*`` hook.

Tests marked ``gpu`` are skipped unless ``--gpu`` is given (and ``--gpu`` refuses to start without a
CUDA device). Every case that trains appends one line per epoch to ``<results>/logs/<case>.log``,
written the moment the epoch ends, so a killed run still shows how far each case got.
"""

from __future__ import annotations

import fnmatch
import inspect
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from .progress import Progress, append_epoch_line, epoch_line, epoch_log_path  # noqa: F401  (re-exported)

MARKERS = {
    "vanilla": "Table 4: vanilla AE vs AR on each dataset (trains models)",
    "design": "Table 5: the design space (local attention, SSE-PT, CE vs BPR loss) (trains models)",
    "hf": "Table 6: HuggingFace backbones (ALBERT, LLaMA, Transformer-XL) (trains models)",
    "analysis": "Tables 2-3 and Figures 1-3, 5: attention sparsity and hard-threshold rank",
    "math": "hypothesis properties of the paper's measures",
    "perf": "throughput and memory benchmarks",
    "gpu": "needs a CUDA device (skipped without --gpu)",
}

log = logging.getLogger(__name__)


@dataclass
class BenchState:
    scale: object
    device: str
    data: object
    store: object
    rerun: bool
    seeds: int
    checkpoints: Path
    report_dir: Path
    update_baseline: bool = False
    baseline: dict = field(default_factory=dict)
    baseline_dir: Path = Path("reports/baseline")
    user_baseline: Path | None = None  # a smoke.json of the user's: their datasets' and models' cases
    ran_cases: list = field(default_factory=list)
    checks: list = field(default_factory=list)  # what each case's checks found, in words (check_record)
    model: str | None = None  # --model: only this registered model's cases run
    against: str | None = None  # --against: compare its records with these AE/AR references ("packaged": ours)


STATE = pytest.StashKey[BenchState]()


def _scale(value: str) -> str:
    if value not in ("smoke", "paper"):
        raise pytest.UsageError(f"--scale must be 'smoke' or 'paper', got {value!r}")
    return value


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise pytest.UsageError(f"expected a positive integer, got {value!r}") from None
    if n < 1:
        raise pytest.UsageError(f"expected a positive integer, got {value!r}")
    return n


def _positive_minutes(value: str) -> float:
    try:
        minutes = float(value)
    except ValueError:
        raise pytest.UsageError(f"--case-minutes: expected a number of minutes, got {value!r}") from None
    if not minutes > 0 or minutes != minutes or minutes == float("inf"):
        raise pytest.UsageError(f"--case-minutes: expected a positive number of minutes, got {value!r}")
    return minutes


def pytest_addoption(parser):
    group = parser.getgroup("sarbench", "sarbench: AE vs AR self-attention benchmarks")
    group.addoption("--gpu", action="store_true", default=False,
                    help="train on CUDA (one GPU per xdist worker); stop at start-up if no CUDA device exists "
                         "(default: CPU)")
    group.addoption("--scale", type=_scale, default="smoke",
                    help="smoke: a few epochs on a user subset (CI, laptops); paper: the paper's protocol "
                         "(default: smoke)")
    group.addoption("--data-dir", default=None,
                    help="folder with the real datasets (default: $SARBENCH_DATA, else only the embedded "
                         "synthetic dataset)")
    group.addoption("--seeds", type=_positive_int, default=1,
                    help="number of seeds per case, 0..N-1 (default: 1)")
    group.addoption("--results", default="results",
                    help="folder of the resumable results store (default: results)")
    group.addoption("--rerun", action="store_true", default=False,
                    help="retrain cases even when a matching stored result exists (default: reuse)")
    group.addoption("--report-dir", default=None,
                    help="where the end-of-run report, tables and figures are written; a run never writes "
                         "into the committed reports/ unless named here (default: <results>/report)")
    group.addoption("--datasets", default=None, metavar="A,B",
                    help="run only these datasets (names: synthetic, the paper's five, those declared in the data "
                         "folder's datasets.toml) (default: all)")
    group.addoption("--case-minutes", type=_positive_minutes, default=None,
                    help="stop each case's training after this many minutes of wall time, then test and store "
                         "its best state with stopped=time (a later run continues it from its checkpoint); a run "
                         "control, not part of the record key (default: no cap)")
    group.addoption("--baseline-file", default=None, metavar="FILE",
                    help="smoke baseline of your own datasets' and models' cases: their first run records it, "
                         "later runs compare with it (default: <results>/baseline/smoke.json)")
    group.addoption("--model", default=None, metavar="NAME",
                    help="run only this registered model's cases (e.g. gru4rec, or your own); the paper's AE and AR "
                         "are not trained (default: every model)")
    group.addoption("--against", default=None, metavar="DIR",
                    help="test each case's records user by user against the paper's AE and AR of this folder of "
                         "reference records ('packaged': those shipped with sarbench), without retraining them "
                         "(default: no comparison)")
    group.addoption("--update-baseline", action="store_true", default=False,
                    help="write this run's smoke results into the committed smoke baseline instead of "
                         "failing on moved numbers (default: compare)")
    parser.addini("sarbench_case_modules", type="args", default=[],
                  help="sarbench: test modules, as globs relative to the rootdir, in which every public "
                       "function defined in the module is collected as a benchmark case, whatever its name "
                       "(sarbench's pytest.ini: bench/test_*.py; default: none)")


def is_case_module(config, path) -> bool:
    """Whether the test module at ``path`` matches the ini option ``sarbench_case_modules``."""
    patterns = config.getini("sarbench_case_modules")
    if not patterns:
        return False
    try:
        rel = Path(path).resolve().relative_to(config.rootpath.resolve()).as_posix()
    except ValueError:  # outside the rootdir
        return False
    return any(fnmatch.fnmatchcase(rel, pattern) for pattern in patterns)


def is_case(module, name: str, obj) -> bool:
    """Whether ``name`` of a case module is one of its cases: a public function defined in the module
    itself (not imported into it), neither a fixture nor a ``pytest_*`` hook."""
    if name.startswith(("_", "pytest_")) or not inspect.isfunction(obj):
        return False
    from _pytest.fixtures import getfixturemarker  # pytest 8.0-8.3 fixtures are plain functions

    return getattr(obj, "__module__", None) == module.__name__ and getfixturemarker(obj) is None


class CaseModule(pytest.Module):
    """A module of benchmark cases (:func:`is_case`); its ``test_*`` functions are collected as anywhere."""

    def istestfunction(self, obj, name: str) -> bool:
        return is_case(self.obj, name, obj) or super().istestfunction(obj, name)


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path, parent):
    if is_case_module(parent.config, module_path):
        return CaseModule.from_parent(parent, path=module_path)
    return None


def _worker_device(config) -> str:
    if not config.getoption("--gpu"):
        return "cpu"
    import torch

    worker = getattr(config, "workerinput", {}).get("workerid", "gw0")
    index = int(worker[2:]) if worker.startswith("gw") else 0
    return f"cuda:{index % torch.cuda.device_count()}"


def pytest_configure(config):
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")
    if config.getoption("--gpu", default=False):
        import torch

        if not torch.cuda.is_available():
            raise pytest.UsageError("--gpu was given but no CUDA device is available; refusing to train on CPU")


def _data_dir(config):
    return config.getoption("--data-dir", default=None) or os.environ.get("SARBENCH_DATA") or None


def bench_state(config) -> BenchState:
    """The run's state, built on first use (so that pytest runs without benchmark cases never import torch)."""
    st = config.stash.get(STATE, None)
    if st is not None:
        return st
    from .regression import BASELINE_DIR, load_smoke
    from .cases import SCALES, DataCache
    from .store import ResultStore

    results = Path(config.getoption("--results"))
    scale = SCALES[config.getoption("--scale")]
    if config.getoption("--case-minutes"):
        scale = replace(scale, max_minutes=config.getoption("--case-minutes"))
    st = config.stash[STATE] = BenchState(
        scale=scale,
        device=_worker_device(config),
        data=DataCache(_data_dir(config)),
        store=ResultStore(results),
        rerun=config.getoption("--rerun"),
        seeds=config.getoption("--seeds"),
        checkpoints=results / "checkpoints",
        report_dir=Path(config.getoption("--report-dir") or results / "report"),
        update_baseline=config.getoption("--update-baseline"),
        baseline=load_smoke(config.rootpath / BASELINE_DIR),
        baseline_dir=config.rootpath / BASELINE_DIR,
        user_baseline=Path(config.getoption("--baseline-file") or results / "baseline" / "smoke.json"),
        model=config.getoption("--model"),
        against=config.getoption("--against"),
    )
    return st


def bench_datasets(config) -> list[str]:
    """The datasets of this run's cases: all known ones, or those named by ``--datasets``."""
    from .data import dataset_names

    known = dataset_names(_data_dir(config))
    wanted = config.getoption("--datasets", default=None)
    if not wanted:
        return known
    names = [n.strip() for n in wanted.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise pytest.UsageError(f"--datasets: unknown dataset(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return names


def table_datasets(config, table: str, default: tuple[str, ...] = ("synthetic",)) -> list[str]:
    """Datasets of an on-demand table's cases (``design``, ``hf``): all of :func:`bench_datasets` when the
    run asks for the table (``-m design``, ``-m hf``) or names datasets (``--datasets``); otherwise, as in
    a plain ``pytest`` (CI), only ``default`` (those of them that exist)."""
    datasets = bench_datasets(config)
    return datasets if table_requested(config, table) else [d for d in datasets if d in default]


def table_requested(config, table: str) -> bool:
    """Whether the run asks for an on-demand table: ``-m <table>`` or ``--datasets``."""
    markexpr = config.getoption("markexpr", default="") or ""
    return bool(config.getoption("--datasets", default=None)
                or table in markexpr.replace("(", " ").replace(")", " ").split())


def bench_models(config) -> list:
    """The registered models (sarbench.models.interface): the paper's "sar", then the others by name;
    only the one ``--model`` names when given."""
    from .models.interface import registered

    models = registered()
    wanted = config.getoption("--model", default=None)
    if wanted:
        if wanted not in models:
            raise pytest.UsageError(f"--model: no registered model {wanted!r}; registered: {', '.join(sorted(models))}")
        return [models[wanted]]
    return [models["sar"], *(models[n] for n in sorted(models) if n != "sar")]


def pytest_collection_modifyitems(config, items):
    _group_for_xdist(items)
    if config.getoption("--gpu", default=False):
        return
    skip = pytest.mark.skip(reason="needs a CUDA device: run with --gpu")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def _group_for_xdist(items) -> None:
    """Work units for ``pytest -n N --dist loadgroup``: the cases that share trained models run on one
    worker, in order (a dataset's vanilla cases, its direction case and its attention study; a
    dataset's design cases and theirs; its hf cases), so no model is trained twice at once. Tests
    over every dataset (the attention tables and figures) go last. Harmless without xdist."""
    last, analysis_group = [], "analysis-all"
    for item in items:
        path = getattr(item, "path", None)
        if path is None or path.parent.name != "bench":
            continue
        spec = getattr(item, "callspec", None)
        dataset = spec.params.get("dataset") if spec else None
        if dataset is None:
            if "analysis" in item.keywords:
                last.append(item)
            continue
        family = path.stem.removeprefix("test_")
        group = f"{family}-{dataset}" if family in ("design", "hf") else dataset
        item.add_marker(pytest.mark.xdist_group(group))
        if "analysis" in item.keywords:
            analysis_group = group
    if last:  # after the last dataset's study, in its group: the earlier datasets' groups went out first
        for item in last:
            item.add_marker(pytest.mark.xdist_group(analysis_group))
        items[:] = [i for i in items if i not in last] + last


def plan_lines(config, items) -> list[str]:
    """At --scale paper, the cost of the collected Table 4 cases (sarbench.plan) before any trains."""
    if config.getoption("--scale", default="smoke") != "paper" or hasattr(config, "workerinput"):
        return []
    cases = []
    for item in items:
        spec = getattr(item, "callspec", None)
        if getattr(item, "originalname", "") == "vanilla" and spec is not None:
            p = spec.params
            cases.append(dict(table="vanilla", dataset=p["dataset"], design="vanilla", attention=p["attention"],
                              model=p["model"]))
    if not cases:
        return []
    from .data import DatasetMissing
    from .plan import measure_case, history_records

    import torch

    st = bench_state(config)
    threads = torch.get_num_threads() if st.device == "cpu" else 0  # paper scale: torch's default threads
    rows, missing, history = [], [], history_records()  # read once, not once per case
    for case in cases:
        try:
            rows.append(measure_case(case, data=st.data, scale=st.scale, device=st.device, history=history))
        except DatasetMissing:
            missing.append(case["dataset"])
    if not rows:
        return []
    total = sum(r.total_s for r in rows)
    lines = [f"sarbench plan ({threads or 'GPU'} thread{'s' if threads != 1 else ''}): {r.case_id} "
             f"{(r.flops_train + r.flops_valid) / 1e12:.2f} TFLOP/epoch x {r.epochs:.0f} epochs ({r.epochs_from}), "
             f"{r.peak_bytes / 2**20:.0f} MiB, {r.epoch_s:.0f} s/epoch, {r.total_s / 3600:.2f} h" for r in rows]
    lines.append(f"sarbench plan: {len(rows)} case(s), {total / 3600:.1f} h one after the other on this device"
                 + (f" (datasets missing: {', '.join(sorted(set(missing)))})" if missing else ""))
    return lines


def pytest_report_collectionfinish(config, start_path, items):
    return plan_lines(config, items) or None


def pytest_report_header(config):
    if not any(str(a).split("::")[0].rstrip("/").endswith("bench") or "bench/" in str(a) for a in config.args):
        return None
    data = _data_dir(config) or "none (synthetic dataset only)"
    cap = f" case-minutes={config.getoption('--case-minutes'):g}" if config.getoption("--case-minutes") else ""
    return [f"sarbench: scale={config.getoption('--scale')} gpu={config.getoption('--gpu')} "
            f"seeds={config.getoption('--seeds')} data={data} results={config.getoption('--results')}{cap}"]


@pytest.fixture(scope="session")
def bench(pytestconfig) -> BenchState:
    """The run's settings: scale, device, data cache, results store, seeds."""
    return bench_state(pytestconfig)


@pytest.fixture(scope="session")
def data_dir(bench):
    """The real-data folder, or None when only the synthetic dataset is configured."""
    return bench.data.data_dir


@pytest.fixture(scope="session")
def device(bench) -> str:
    return bench.device


@pytest.fixture(scope="session")
def scale(bench) -> str:
    return bench.scale.name


@pytest.fixture(scope="session")
def run(bench, pytestconfig):
    """``run(table=..., dataset=..., design=..., attention=..., seed=...)`` -> the case's record.

    Trains the case or reuses its stored record; skips (with how to get it) when the dataset is
    missing.
    """
    from .cases import run_case, torch_threads
    from .data import DatasetMissing

    progress = Progress(pytestconfig)
    threads = bench.scale.threads if bench.device == "cpu" else 0

    def _run(**case):
        progress.start(case)
        log_file = epoch_log_path(bench.store.folder, case)

        def on_epoch(row):
            append_epoch_line(log_file, row)
            progress.epoch(row)

        try:
            with torch_threads(threads):  # the scale's thread count (smoke: fixed, see cases.SCALES)
                record = run_case(scale=bench.scale, device=bench.device, data=bench.data, store=bench.store,
                                  rerun=bench.rerun, checkpoints=bench.checkpoints, on_epoch=on_epoch,
                                  **case)
        except DatasetMissing as exc:
            pytest.skip(str(exc))
        finally:
            progress.done()
        bench.ran_cases.append(record)
        return record

    return _run


def _update_baseline(st) -> None:
    from .smoke_baseline import is_own_case, update_smoke

    checked = [r for r in st.ran_cases if r.scale == "smoke"]  # every smoke case compares with it
    own = [r for r in checked if is_own_case(r)]
    users = [r for r in checked if not is_own_case(r)]  # a user's datasets and models: their own file
    if own:
        path = update_smoke(own, st.baseline_dir)
        log.warning("smoke baseline updated from %d case(s): %s", len(own), path)
    if users and st.user_baseline is not None:
        path = update_smoke(users, st.user_baseline.parent, st.user_baseline.name, spread={"cases": {}})
        log.warning("your smoke baseline updated from %d case(s): %s", len(users), path)


def pytest_sessionfinish(session, exitstatus):
    if hasattr(session.config, "workerinput"):  # an xdist worker: its own cases into the baseline, no report
        st = session.config.stash.get(STATE, None)
        if st is not None and st.update_baseline:
            _update_baseline(st)
        return
    st = session.config.stash.get(STATE, None)  # None: no benchmark case asked for it here
    if st is None:
        if not (_xdist_ran_cases(session) and Path(session.config.getoption("--results")).is_dir()):
            return
        st = bench_state(session.config)
    if not st.ran_cases and not _xdist_ran_cases(session):
        return
    from .report import build_report, build_tables, summary_text
    from .store import ResultStore

    if st.update_baseline:
        _update_baseline(st)
    records = ResultStore(st.store.folder).records()
    if not records:
        return
    build_report(st.store.folder, st.report_dir)
    st.summary = summary_text(build_tables(records))


def _xdist_ran_cases(session) -> bool:
    # Under xdist the controller runs no case itself; the results folder is the evidence.
    return bool(getattr(session.config, "workerinput", None) is None and session.config.pluginmanager.has_plugin(
        "dsession") and session.testscollected)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    st = config.stash.get(STATE, None)
    if st is not None and st.checks:
        terminalreporter.section("sarbench checks")
        for line in st.checks:
            terminalreporter.write_line(line)
    text = getattr(st, "summary", None) if st else None
    if text:
        terminalreporter.section("sarbench report")
        terminalreporter.write_line(text)
        terminalreporter.write_line(f"full report: {st.report_dir}/report.md")
