"""A benchmark case trains once, stores its record and weights, and is reused on the next run."""

import pytest

import sarbench.cases as cases
from sarbench.cases import Scale, DataCache, load_model, model_path, run_case
from sarbench.data import SyntheticConfig, make_synthetic
from sarbench.store import ResultStore

TINY = Scale("smoke", max_users=0, max_epochs=2, patience=2)


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
