"""An interrupted search or retrain writes no preset and says so; the same call then resumes it.

Tune stops an interrupted search by saving its state and then terminating the trials still running,
so a search interrupted during its last trial looked finished: the best trial was chosen among
unfinished ones, retrained and written as a preset. Here a one-trial search (grid, max_t 3, one
report per epoch on the synthetic dataset) is interrupted with Tune's stop signal (SIGUSR1) at its
first report, and the retrain is interrupted with a real SIGINT at its first epoch.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

pytest.importorskip("ray.tune", reason="the search tests need Ray Tune: pip install 'sarbench[tune]'")

import ray  # noqa: E402
from ray import tune  # noqa: E402

import sarbench.search.tuned as tuned  # noqa: E402
from sarbench.cases import DataCache, Scale  # noqa: E402
from sarbench.data import make_synthetic  # noqa: E402
from sarbench.search import Resources, SearchConfig, Space, tune_case  # noqa: E402

TINY = Scale("smoke", max_epochs=2, patience=2)
ONE = Space("one", (("lr", (1e-3,)),), (("hidden", 16),))
SEARCH = SearchConfig("synthetic", "ce", "AR", ONE, scheduler="grid", max_t=3, grace_period=1, eval_every=1,
                      eval_users=200, scale="smoke")


class StopAtFirstReport(tune.Callback):
    """Sends Tune's stop signal at the first report (the only trial is running), once: a resumed search
    runs a copy of this callback (Tune keeps the callbacks with the experiment), so ``marker`` says it was sent."""

    def __init__(self, marker):
        self.marker = str(marker)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os.kill(os.getpid(), signal.SIGUSR1)


@pytest.fixture(scope="module")
def local_ray():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(num_cpus=1, include_dashboard=False)
    yield
    torch.set_num_threads(threads)
    if started_here:
        ray.shutdown()


def test_an_interrupted_search_or_retrain_writes_no_preset_and_resumes(local_ray, tmp_path, monkeypatch):
    # Python's own Ctrl-C handler before the search, as in a fresh process: in a test worker an earlier
    # Ray session may have left SIGINT ignored, and the search gives back whatever it found.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _interrupted_search_and_retrain(tmp_path, monkeypatch)
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupted_search_and_retrain(tmp_path, monkeypatch):
    data = DataCache(None)
    data._loaded[("synthetic", "smoke")] = make_synthetic()
    kwargs = dict(results=tmp_path / "results", data=data, scale=TINY, presets=tmp_path / "presets",
                  resources=Resources(max_concurrent=1), progress=False)
    first = tune_case(SEARCH, callbacks=[StopAtFirstReport(tmp_path / "sent")], **kwargs)
    assert first.preset is None and first.record is None and not (tmp_path / "presets").exists()
    assert not first.outcome.complete and first.outcome.best is None and first.interrupted
    assert [t.status for t in first.outcome.trials] == ["unfinished"]

    run_case = tuned.run_case

    handlers = []

    def ctrl_c(row):  # a real SIGINT at the retrain's first epoch, then wait for Python to act on it
        handlers.append(signal.getsignal(signal.SIGINT))
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(500):  # Python runs the handler in the main thread at its next check: a sleep is one
            time.sleep(0.01)

    def interrupted_retrain(**case):
        return run_case(**case, on_epoch=ctrl_c)

    monkeypatch.setattr(tuned, "run_case", interrupted_retrain)
    second = tune_case(SEARCH, **kwargs)
    assert handlers == [signal.default_int_handler]  # the search gave Ctrl-C back before the retrain
    assert second.outcome.complete and [t.status for t in second.outcome.trials] == ["max_t"]
    assert second.record.extra["stopped"] == "interrupted" and second.record.epochs == 1
    assert second.interrupted and second.preset is None and not (tmp_path / "presets").exists()

    monkeypatch.setattr(tuned, "run_case", run_case)
    third = tune_case(SEARCH, **kwargs)
    assert not third.interrupted and third.record.extra["stopped"] == "max_epochs" and third.record.epochs == 2
    assert third.preset == tmp_path / "presets" / "synthetic" / "ce-AR.json" and third.preset.is_file()
    assert third.outcome.trials[0].reports == second.outcome.trials[0].reports  # the search was not rerun


def test_the_command_exits_130_and_says_how_to_resume(local_ray, tmp_path, monkeypatch, capsys):
    from sarbench import cli

    run_search = tuned.run_search
    stop = StopAtFirstReport(tmp_path / "sent")
    monkeypatch.setattr(tuned, "run_search", lambda *a, **k: run_search(*a, **{**k, "callbacks": [stop]}))
    space = tmp_path / "one.json"
    space.write_text('{"name": "one", "grid": {"lr": [0.001]}, "fixed": {"hidden": 16}}')
    rc = cli.main(["tune", "--dataset", "synthetic", "--attention", "AR", "--design", "ce", "--space", str(space),
                   "--scheduler", "grid", "--max-t", "3", "--grace-period", "1", "--eval-every", "1",
                   "--eval-users", "200", "--scale", "smoke", "--results", str(tmp_path / "results"),
                   "--presets", str(tmp_path / "presets"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 130
    assert "interrupted" in err and "no preset written" in err and "Run the same command again" in err
    assert not (tmp_path / "presets").exists()
