"""A benchmark case trains once, stores its record and weights, and is reused on the next run."""

import pytest

import sarbench.cases as cases
from sarbench.cases import Scale, DataCache, load_model, model_path, run_case
from sarbench.data import SyntheticConfig, make_synthetic
from sarbench.store import ResultStore

TINY = Scale("smoke", max_epochs=2, patience=2)


@pytest.fixture()
def data():
    cache = DataCache(None)
    ds = make_synthetic(SyntheticConfig(num_users=60, num_items=40, min_length=5, max_length=15, seed=3))
    cache._loaded[("synthetic", TINY.name)] = ds
    return cache


def _run(data, store, **kw):
    return run_case(table="vanilla", dataset="synthetic", design="vanilla", attention="AR", seed=0, scale=TINY,
                    device="cpu", data=data, store=store, checkpoints=store.folder / "checkpoints", **kw)


def test_finished_case_is_reused_and_rerun_retrains(tmp_path, data, monkeypatch):
    store = ResultStore(tmp_path / "results")
    first = _run(data, store)
    assert first.case_id == "vanilla[synthetic-AR-ce]" and first.epochs == 2
    assert store.find(first.key) is not None and model_path(store, first.key).exists()
    assert not list((store.folder / "checkpoints").glob("*.pt"))  # removed once the case finished
    assert load_model(store, first) is not None

    class Boom:
        def __init__(self, *a, **k):
            raise AssertionError("a stored case must not be retrained")

    monkeypatch.setattr(cases, "Trainer", Boom)
    again = _run(data, store)
    assert again.key == first.key and again.metrics == first.metrics
    with pytest.raises(AssertionError, match="must not be retrained"):
        _run(data, store, rerun=True)


def test_different_configuration_is_a_different_case(tmp_path, data):
    store = ResultStore(tmp_path / "results")
    a = _run(data, store)
    b = _run(data, store, model_overrides={"local_window": 2, "local_heads": 1}, variant="local")
    assert a.key != b.key and len(store.records()) == 2


def test_record_carries_both_exclusion_rules_and_provenance(tmp_path, data):
    from sarbench.provenance import RESULTS_VERSION, source_hash

    rec = _run(data, ResultStore(tmp_path / "results"))
    assert rec.extra["exclusion"] == "input" and rec.extra["stopped"] == "max_epochs"
    by_rule = rec.extra["metrics_by_rule"]
    assert set(by_rule) == {"input", "history"} and by_rule["input"] == rec.metrics
    assert len(rec.per_user["rank"]) == len(rec.per_user["rank_history"]) == len(rec.per_user["users"])
    # the full-history rule excludes a superset, so no target ranks worse under it
    assert all(h <= i for h, i in zip(rec.per_user["rank_history"], rec.per_user["rank"]))
    assert set(rec.extra["most_popular_by_rule"]) == {"input", "history"}
    assert rec.results_version == RESULTS_VERSION and rec.source_hash == source_hash()
    assert rec.extra["precision"] == "fp32"
    assert rec.model == rec.model_name == "sar" and rec.variant == "vanilla"  # the model that ran, and its design


def test_unfinished_case_resumes_from_its_checkpoint(tmp_path, data, monkeypatch):
    """A run stopped by a signal is stored as 'interrupted', keeps its checkpoint, and the next run continues it."""
    import sarbench.train as train

    store = ResultStore(tmp_path / "results")
    scale = Scale("smoke", max_epochs=4, patience=4)
    real_epoch = train.Trainer.run_epoch
    calls = {"n": 0}

    def epoch_then_signal(self):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # during the third epoch, as SIGTERM would under `sarbench run`
        return real_epoch(self)

    monkeypatch.setattr(train.Trainer, "run_epoch", epoch_then_signal)
    first = run_case(
        table="vanilla", dataset="synthetic", design="vanilla", attention="AR", seed=0, scale=scale, device="cpu",
        data=data, store=store, checkpoints=store.folder / "checkpoints", catch_interrupt=True)
    assert first.extra["stopped"] == "interrupted" and first.epochs == 2
    assert list((store.folder / "checkpoints").glob("*.pt")), "an unfinished run keeps its checkpoint"
    monkeypatch.setattr(train.Trainer, "run_epoch", real_epoch)
    second = run_case(table="vanilla", dataset="synthetic", design="vanilla", attention="AR", seed=0, scale=scale,
                      device="cpu", data=data, store=store, checkpoints=store.folder / "checkpoints")
    assert second.key == first.key and second.extra["stopped"] == "max_epochs" and second.epochs == 4
    assert len(second.extra["epoch_seconds"]) == 4  # the epochs of both processes
    assert len(store.records()) == 1 and not list((store.folder / "checkpoints").glob("*.pt"))


def test_interrupt_propagates_unless_caught(tmp_path, data, monkeypatch):
    """Inside pytest a Ctrl-C must end the whole run, not just the case."""
    import sarbench.train as train

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(train.Trainer, "run_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(data, ResultStore(tmp_path / "results"))


def test_the_record_names_the_commit_that_trained_not_the_one_checked_out_at_the_end(tmp_path, data, monkeypatch):
    import sarbench.provenance as store_module

    commits = iter(["aaaaaaaaaaaa", "bbbbbbbbbbbb"])
    commit = {"now": next(commits)}

    def fake_git(args, cwd):
        if args[0] == "rev-parse":
            return commit["now"]
        return "" if args[0] == "status" else "sarbench/__init__.py"

    monkeypatch.setattr(store_module, "_git", fake_git)
    store_module.code_version.cache_clear()
    fit = cases.Trainer.fit

    def fit_then_commit(self, *a, **k):
        out = fit(self, *a, **k)
        commit["now"] = next(commits)  # the checkout moves on while the run trains
        return out

    monkeypatch.setattr(cases.Trainer, "fit", fit_then_commit)
    try:
        record = _run(data, ResultStore(tmp_path / "results"))
    finally:
        store_module.code_version.cache_clear()
    assert record.code_version.endswith("+gaaaaaaaaaaaa"), record.code_version
