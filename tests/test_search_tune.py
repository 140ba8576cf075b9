"""A real Ray Tune search on CPU: ASHA stops poor trials, an interrupted search resumes without redoing
finished trials, the best configuration is retrained and written as a preset, and a case loads it.

One small search (4 trials over lr x dropout at hidden 16 on the synthetic dataset, one report per
epoch, max_t 4, grace period 1) is run once for the module, on a local Ray instance with one CPU.
Trials run one at a time, in grid order, so ASHA's decisions are deterministic: the first trial
(lr 1e-3) runs to max_t and sets the first rung; the lr 1e-6 trials cannot learn in one epoch
(validation Recall@10 0.08 against 0.14 and more) and are stopped at the first rung. The search is
interrupted (SIGUSR1, Tune's stop signal) when the second trial completes, and run again.
"""

from __future__ import annotations

import json
import os
import signal

import pytest

pytest.importorskip("ray.tune", reason="the search tests need Ray Tune: pip install 'sarbench[tune]'")

import ray  # noqa: E402
from ray import tune  # noqa: E402

from sarbench.cases import DataCache, Scale, run_case  # noqa: E402
from sarbench.data import make_synthetic  # noqa: E402
from sarbench.provenance import results_version, source_hash  # noqa: E402
from sarbench.report import records_frame  # noqa: E402
from sarbench.search import Resources, SearchConfig, Space, read_preset, tune_case, tuned_case_kwargs  # noqa: E402
from sarbench.store import ResultStore  # noqa: E402

TINY = Scale("smoke", max_epochs=2, patience=2)
SPACE = Space("tiny", (("lr", (1e-3, 1e-6)), ("dropout", (0.1, 0.3))), (("hidden", 16),))
SEARCH = SearchConfig("synthetic", "ce", "AR", SPACE, max_t=4, grace_period=1, eval_every=1, eval_users=500,
                      scale="smoke")


class StopAfterTwo(tune.Callback):
    """Writes each completed trial's id to a file and sends Tune's stop signal at the second one."""

    def __init__(self, path):
        self.path = str(path)

    def on_trial_complete(self, iteration, trials, trial, **info):
        with open(self.path, "a") as f:
            f.write(trial.trial_id + "\n")
        with open(self.path) as f:
            if len(f.read().split()) == 2:
                os.kill(os.getpid(), signal.SIGUSR1)


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    import torch

    root = tmp_path_factory.mktemp("search")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the retrain runs here; on a busy machine a second thread costs more than it gives
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(num_cpus=1, include_dashboard=False)
    data = DataCache(None)
    data._loaded[("synthetic", "smoke")] = make_synthetic()
    kwargs = dict(results=root / "results", data=data, scale=TINY, presets=root / "presets",
                  resources=Resources(max_concurrent=1), progress=False)
    marker = root / "completed.txt"
    first = tune_case(SEARCH, callbacks=[StopAfterTwo(marker)], **kwargs)
    finished_first = marker.read_text().split()
    second = tune_case(SEARCH, **kwargs)
    yield {"first": first, "second": second, "finished_first": finished_first, "root": root, "data": data}
    torch.set_num_threads(threads)
    if started_here:
        ray.shutdown()


def test_interrupted_search_writes_no_preset(searched):
    first = searched["first"]
    assert not first.outcome.complete and first.preset is None and first.record is None
    assert len(searched["finished_first"]) == 2


def test_resume_keeps_finished_trials_and_runs_the_rest(searched):
    first = {t.trial_id: t for t in searched["first"].outcome.trials}
    second = {t.trial_id: t for t in searched["second"].outcome.trials}
    assert searched["second"].outcome.complete and len(second) == 4
    for trial_id in searched["finished_first"]:
        # same reports, to the timestamp and the run time: not trained again
        assert second[trial_id].reports == first[trial_id].reports
    rest = set(second) - set(searched["finished_first"])
    assert len(rest) == 2 and all(second[t].reports for t in rest)
    latest_first = max(r["timestamp"] for t in first.values() for r in t.reports)
    assert all(r["timestamp"] >= latest_first for t in rest for r in second[t].reports if t not in first)


def test_asha_stops_the_poor_trials_at_the_first_rung(searched):
    trials = searched["second"].outcome.trials
    poor = [t for t in trials if t.point["lr"] == 1e-6]
    good = [t for t in trials if t.point["lr"] == 1e-3]
    assert len(poor) == 2 and all(len(t.reports) == 1 and t.status == "stopped" for t in poor)
    first = min(good, key=lambda t: t.trial_id)
    assert len(first.reports) == 4 and first.status == "max_t"
    assert [r["epoch"] for r in first.reports] == [1, 2, 3, 4]
    best = searched["second"].outcome.best
    assert best.point["lr"] == 1e-3
    # the authors' rule: the best last reported value
    assert best.last == max(t.last for t in trials)


def test_preset_holds_the_best_configuration_and_its_provenance(searched):
    result = searched["second"]
    doc = json.loads(result.preset.read_text())
    best = result.outcome.best
    assert result.preset.relative_to(searched["root"] / "presets").as_posix() == "synthetic/ce-AR.json"
    assert doc["overrides"] == {"model": {"hidden": 16, "dropout": best.point["dropout"]},
                                "train": {"lr": best.point["lr"]}}
    assert doc["search"]["space"]["grid"] == {"lr": [1e-3, 1e-6], "dropout": [0.1, 0.3]}
    assert doc["search"]["rungs"] == [1, 2, 4] and doc["best"]["ray_scope"] == "last"
    assert len(doc["trials"]) == 4 and sum(len(t["reports"]) for t in doc["trials"]) == sum(
        len(t.reports) for t in result.outcome.trials)
    assert doc["data"]["fingerprint"] == make_synthetic().fingerprint()
    assert doc["provenance"]["results_version"] == results_version("modsar")  # the ce design: ModSAR
    assert doc["provenance"]["source_hash"] == source_hash()
    record = result.record
    assert doc["retrained"]["key"] == record.key and doc["retrained"]["test"] == record.metrics
    assert record.extra["tuned_preset"] == "synthetic/ce-AR" and record.config["model"]["hidden"] == 16
    assert record.config["train"]["max_epochs"] == TINY.max_epochs  # the case's protocol, not the search's
    assert read_preset(result.preset).model == doc["overrides"]["model"]


def test_a_benchmark_case_loads_the_preset_by_name(searched):
    root = searched["root"]
    store = ResultStore(root / "results")
    kwargs = tuned_case_kwargs("synthetic", "ce", "AR", root / "presets")
    record = run_case(table="design", dataset="synthetic", design="ce", attention="AR", seed=0, scale=TINY,
                      device="cpu", data=searched["data"], store=store, checkpoints=root / "results" / "checkpoints",
                      **kwargs)
    assert record.key == searched["second"].record.key  # the same case: reused, not retrained
    notes = set(records_frame([record])["note"])
    assert any("tuned (synthetic/ce-AR)" in n for n in notes)


def test_a_folder_of_another_search_or_missing_gpus_are_refused(searched):
    from sarbench.search import run_search
    from sarbench.search.tune import SearchError

    outcome = searched["second"].outcome
    ds = searched["data"].get("synthetic", TINY)
    other = SearchConfig("synthetic", "ce", "AR", Space("other", (("dropout", (0.1, 0.2)),)), max_t=2,
                         grace_period=1, eval_every=1, scale="smoke")
    storage = searched["root"] / "results" / "tune"
    with pytest.raises(SearchError, match="holds another search"):
        run_search(other, ds, storage=storage, name=outcome.name, progress=False)
    with pytest.raises(SearchError, match=r"asks for 0.25 GPU\(s\) but the Ray cluster has 0"):
        run_search(other, ds, storage=storage, resources=Resources(gpus_per_trial=0.25), progress=False)
