"""The sarbench pytest plugin: options, markers, fixtures and the end-of-run report for `pytest bench`.

Registered through the ``pytest11`` entry point, so any pytest run in an environment where sarbench
is installed knows the options below. Session state lives in ``config.stash``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

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
    ran_cases: list = field(default_factory=list)


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
    group.addoption("--update-baseline", action="store_true", default=False,
                    help="write this run's smoke results into the committed smoke baseline instead of "
                         "failing on moved numbers (default: compare)")


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
    from .baseline import BASELINE_DIR, load_smoke
    from .cases import SCALES, DataCache
    from .store import ResultStore

    data_dir = config.getoption("--data-dir") or os.environ.get("SARBENCH_DATA") or None
    results = Path(config.getoption("--results"))
    config.stash[STATE] = BenchState(
        scale=SCALES[config.getoption("--scale")],
        device=_worker_device(config),
        data=DataCache(data_dir),
        store=ResultStore(results),
        rerun=config.getoption("--rerun"),
        seeds=config.getoption("--seeds"),
        checkpoints=results / "checkpoints",
        report_dir=Path(config.getoption("--report-dir") or results / "report"),
        update_baseline=config.getoption("--update-baseline"),
        baseline=load_smoke(config.rootpath / BASELINE_DIR),
        baseline_dir=config.rootpath / BASELINE_DIR,
    )


def pytest_report_header(config):
    st = config.stash.get(STATE, None)
    if st is None:
        return None
    data = st.data.data_dir or "none (synthetic dataset only)"
    return [f"sarbench: scale={st.scale.name} device={st.device} seeds={st.seeds} data={data} "
            f"results={st.store.folder}"]


@pytest.fixture(scope="session")
def bench(pytestconfig) -> BenchState:
    """The run's settings: scale, device, data cache, results store, seeds."""
    return pytestconfig.stash[STATE]


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
def run(bench):
    """``run(table=..., dataset=..., design=..., attention=..., seed=...)`` -> the case's record.

    Trains the case or reuses its stored record; skips (with how to get it) when the dataset is
    missing.
    """
    from .cases import run_case, torch_threads
    from .data import DatasetMissing

    threads = bench.scale.threads if bench.device == "cpu" else 0

    def _run(**case):
        try:
            with torch_threads(threads):  # the scale's thread count (smoke: fixed, see cases.SCALES)
                record = run_case(scale=bench.scale, device=bench.device, data=bench.data, store=bench.store,
                                  rerun=bench.rerun, checkpoints=bench.checkpoints, **case)
        except DatasetMissing as exc:
            pytest.skip(str(exc))
        bench.ran_cases.append(record)
        return record

    return _run


def pytest_sessionfinish(session, exitstatus):
    st = session.config.stash.get(STATE, None)
    if st is None or hasattr(session.config, "workerinput"):
        return  # xdist workers leave the report to the controller
    if not st.ran_cases and not _xdist_ran_cases(session):
        return
    from .report import build_report, build_tables, summary_text
    from .store import ResultStore

    if st.update_baseline:
        from .baseline import update_smoke

        checked = [r for r in st.ran_cases if r.table == "vanilla"]  # the cases that compare with it
        path = update_smoke(checked, st.baseline_dir)
        log.warning("smoke baseline updated from %d case(s): %s", len(checked), path)
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
    text = getattr(st, "summary", None) if st else None
    if text:
        terminalreporter.section("sarbench report")
        terminalreporter.write_line(text)
        terminalreporter.write_line(f"full report: {st.report_dir}/report.md")
