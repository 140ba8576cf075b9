"""The results store: keys, atomic writes, resume, concurrent writers, corrupt files."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import sarbench
from sarbench.store import (
    SCHEMA,
    CorruptRecordWarning,
    RecordError,
    ResultRecord,
    ResultStore,
    code_version,
    latest_per_seed,
    make_key,
    make_record,
)


@dataclass(frozen=True)
class Cfg:
    d: int = 64
    heads: int = 2
    dropout: float = 0.2
    grid: tuple = (1, 2)


def record(case="vanilla[synthetic-AR-ce]", seed=0, config=None, metrics=None, **kw) -> ResultRecord:
    fields = dict(
        case_id=case, table="vanilla", dataset="synthetic", model="bert4rec", attention="AR", loss="ce",
        config=config if config is not None else Cfg(), fingerprint="0123456789abcdef", seed=seed,
        scale="smoke", metrics=metrics if metrics is not None else {"R@10": 0.25, "N@10": 0.125},
        code_version="0.1.0+gabc", host={"hostname": "test"},
    )
    fields.update(kw)
    return ResultRecord(**fields)


def visible_records(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix == ".json" and not p.name.startswith("."))


# --- keys ------------------------------------------------------------------------------------
def test_key_depends_on_identity_fields_only():
    base = make_key("c", Cfg(), "fp", 0, "smoke", 2)
    assert make_key("c", {"grid": [1, 2], "dropout": 0.2, "heads": 2, "d": 64}, "fp", 0, "smoke", 2) == base
    changed = [
        make_key("c2", Cfg(), "fp", 0, "smoke", 2),
        make_key("c", Cfg(d=32), "fp", 0, "smoke", 2),
        make_key("c", Cfg(), "fp2", 0, "smoke", 2),
        make_key("c", Cfg(), "fp", 1, "smoke", 2),
        make_key("c", Cfg(), "fp", 0, "paper", 2),
        make_key("c", Cfg(), "fp", 0, "smoke", 3),
    ]
    assert base not in changed and len(set(changed)) == len(changed)
    # Measurements and provenance (the commit, the source hash) are not part of the key.
    assert record(metrics={"R@10": 0.9}, wall_time_s=5.0, device="cuda").key == record().key
    assert record(code_version="0.1.0+gother-dirty", source_hash="0" * 16).key == record().key
    with pytest.raises(RecordError, match="results_version must be an int"):
        make_key("c", Cfg(), "fp", 0, "smoke", "v")


def test_run_controls_are_not_part_of_the_key():
    """A time cap or a progress bar does not make another run: a capped run resumes under the same key."""
    train = {"lr": 1e-3, "max_minutes": 0.0, "progress": True}
    base = make_key("c", {"model": {"d": 64}, "train": train}, "fp", 0, "paper")
    capped = make_key("c", {"model": {"d": 64}, "train": {**train, "max_minutes": 90.0, "progress": False}}, "fp", 0,
                      "paper")
    assert capped == base
    assert make_key("c", {"model": {"d": 64}, "train": {**train, "lr": 5e-4}}, "fp", 0, "paper") != base


def test_records_of_another_results_version_are_stale_but_readable(tmp_path):
    from sarbench.provenance import RESULTS_VERSION, is_stale

    store = ResultStore(tmp_path)
    old = record(results_version=RESULTS_VERSION - 1)
    store.write(old)
    assert is_stale(store.records()[0]) and not is_stale(record())
    assert store.find(record().key) is None  # never reused by the current code


def test_a_record_of_another_schema_is_skipped_with_a_warning(tmp_path):
    """No committed record is of schema 1 (before results versions): such a file is not read."""
    import json

    rec = record().to_dict()
    for name in ("results_version", "source_hash", "schema"):
        rec.pop(name)
    (tmp_path / f"old.s0.{rec['key']}.json").write_text(json.dumps(rec))
    with pytest.warns(CorruptRecordWarning, match="schema 1"):
        assert ResultStore(tmp_path).records() == []


def test_committed_records_are_of_the_current_schema():
    """Every record committed under reports/ is of the schema this code reads, and loads as it is."""
    from pathlib import Path

    from sarbench.provenance import current_version, is_stale, results_family

    folder = Path(__file__).resolve().parents[1] / "reports" / "baseline" / "paper"
    records = ResultStore(folder).records()
    assert len(records) == len(list(folder.glob("*.json"))) > 0
    assert all(r.schema == SCHEMA for r in records)
    # Each family has its own results version: no record is ahead of its family's, and a record is
    # stale exactly when it is behind. Only vanilla records predate a results change (the exact CPU
    # dropout of version 3); the design and HF records were made under their families' current ones.
    assert all(r.results_version <= current_version(r) for r in records)
    assert all(is_stale(r) == (r.results_version < current_version(r)) for r in records)
    assert {results_family(r.config) for r in records if is_stale(r)} <= {"vanilla"}


def test_record_validation_names_the_problem():
    with pytest.raises(RecordError, match="attention"):
        record(attention="causal")
    with pytest.raises(RecordError, match="table"):
        record(table="table9")
    with pytest.raises(RecordError, match="differ in length"):
        record(per_user={"users": [0, 1], "N@10": [0.5]})
    with pytest.raises(RecordError, match="not a number"):
        record(metrics={"N@10": "high"})


# --- write / find / resume -------------------------------------------------------------------
def test_write_then_find_roundtrip(tmp_path):
    store = ResultStore(tmp_path / "results")
    rec = record(per_user={"users": np.arange(3), "N@10": np.array([0.0, 1.0, 0.5], dtype=np.float32)},
                 metrics={"N@10": np.float64(0.5)}, seed=np.int64(3))
    path = store.write(rec)
    assert path.exists() and rec.key in path.name
    found = store.find(rec.key)
    assert found is not None
    assert found.to_dict() == rec.to_dict()
    assert found.per_user["N@10"] == [0.0, 1.0, 0.5] and found.seed == 3
    assert json.loads(path.read_text())["config"] == {"d": 64, "heads": 2, "dropout": 0.2, "grid": [1, 2]}


def test_resume_semantics(tmp_path):
    store = ResultStore(tmp_path)
    rec = record()
    assert store.find(rec.key) is None  # nothing stored yet (folder may not even exist)
    store.write(rec)
    same = make_key(rec.case_id, Cfg(), rec.fingerprint, 0, "smoke")
    assert store.find(same).metrics == rec.metrics
    changed = make_key(rec.case_id, Cfg(dropout=0.5), rec.fingerprint, 0, "smoke")
    assert store.find(changed) is None
    # Rewriting the same case replaces the file instead of adding one.
    store.write(record(metrics={"R@10": 0.5}))
    assert len(store.records()) == 1 and store.find(rec.key).metrics == {"R@10": 0.5}


def test_records_filters(tmp_path):
    store = ResultStore(tmp_path)
    store.write(record())
    store.write(record(case="vanilla[synthetic-AE-ce]", attention="AE"))
    store.write(record(case="hf[beauty-AR-ce]", table="hf", dataset="beauty", model="albert"))
    assert len(store.records()) == 3
    assert {r.attention for r in store.records(table="vanilla")} == {"AE", "AR"}
    assert [r.model for r in store.records(dataset=("beauty", "yelp"))] == ["albert"]
    assert store.records(table="hf")[0].variant == "albert"  # variant defaults to the model outside vanilla
    with pytest.raises(ValueError, match="unknown field"):
        store.records(colour="red")


def test_make_record_fills_gpu_and_device(tmp_path):
    rec = make_record(case_id="c", table="design", dataset="synthetic", model="modsar", attention="AE",
                      loss="bce", config=Cfg(), fingerprint="f", seed=0, scale="smoke", metrics={}, device="cpu",
                      variant="ssept")
    assert rec.device == "cpu" and rec.gpu is None and rec.variant == "ssept"
    assert rec.code_version.startswith(sarbench.__version__)
    assert rec.host["python"]


@pytest.mark.parametrize("stored,name", [("sar", "sar"), ("bert4rec", "sar"), ("modsar", "sar"),
                                         ("gru4rec", "gru4rec"), ("llama", "llama")])
def test_model_name_reads_the_committed_network_names_as_the_paper_model(stored, name):
    """Records made before records named the model that ran hold the paper model's network in ``model``."""
    rec = record(model=stored)
    assert rec.model_name == name and rec.model == stored  # the stored field (and so the file) is kept


def test_committed_records_name_their_model():
    folder = Path(__file__).resolve().parents[1] / "reports" / "baseline" / "paper"
    names = {r.case_id: r.model_name for r in ResultStore(folder).records()}
    assert names["vanilla[ml-1m-AR-ce]"] == names["analysis[ml-1m-local-AE-ce]"] == "sar"
    assert names["vanilla[video-gru4rec-AR-ce]"] == "gru4rec"


# --- atomicity -------------------------------------------------------------------------------
def test_failed_write_leaves_nothing_visible(tmp_path, monkeypatch):
    store = ResultStore(tmp_path)

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        store.write(record())
    assert list(tmp_path.iterdir()) == []  # neither the record nor its temporary file
    assert store.records() == []


def _killed_writer(folder: str, metrics: dict) -> None:
    """Write a record but die (as with SIGKILL) after the data is on disk, before the rename."""
    os.replace = lambda src, dst: os._exit(3)
    ResultStore(folder).write(record(metrics=metrics))


def _ctx():
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("needs the fork start method")
    return multiprocessing.get_context("fork")


def test_writer_killed_mid_write_leaves_no_partial_record(tmp_path):
    store = ResultStore(tmp_path)
    store.write(record(metrics={"R@10": 0.1}))  # an earlier complete version of the same case
    proc = _ctx().Process(target=_killed_writer, args=(str(tmp_path), {"R@10": 0.9}))
    proc.start()
    proc.join(30)
    assert proc.exitcode == 3
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers, "the killed writer should have left its temporary file behind"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a leftover temporary file must not even warn
        records = store.records()
    assert [r.metrics for r in records] == [{"R@10": 0.1}]
    assert store.find(record().key).metrics == {"R@10": 0.1}


def _writer(folder: str, worker: int, n: int) -> None:
    store = ResultStore(folder)
    for i in range(n):
        store.write(record(case=f"vanilla[synthetic-AR-ce-{worker}-{i}]", metrics={"R@10": worker + i / 10}))
        store.write(record(case="vanilla[shared]", metrics={"R@10": float(worker)}))


def test_concurrent_writers(tmp_path):
    ctx = _ctx()
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, 5)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        records = ResultStore(tmp_path).records()
    assert len(records) == 4 * 5 + 1
    assert len(visible_records(tmp_path)) == 21 and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    shared = [r for r in records if r.case_id == "vanilla[shared]"]
    assert len(shared) == 1 and shared[0].metrics["R@10"] in {0.0, 1.0, 2.0, 3.0}


# --- corrupt files ---------------------------------------------------------------------------
def test_corrupt_files_are_skipped_with_a_warning(tmp_path):
    store = ResultStore(tmp_path)
    good = record()
    store.write(good)
    full = store.path_for(record(seed=1)).name
    text = record(seed=1).to_json()
    (tmp_path / full).write_text(text[: len(text) // 2])  # truncated by a non-atomic tool
    (tmp_path / "junk.s0.abc123.json").write_text("not json at all")
    (tmp_path / "partial.s0.def456.json").write_text(json.dumps({"case_id": "x"}))
    with pytest.warns(CorruptRecordWarning) as caught:
        records = store.records()
    assert [r.key for r in records] == [good.key]
    messages = " ".join(str(w.message) for w in caught)
    for name in (full, "junk.s0.abc123.json", "partial.s0.def456.json"):
        assert name in messages
    assert "lacks field" in messages  # the partial record says what is missing
    with pytest.warns(CorruptRecordWarning, match="junk"):
        assert store.find("abc123") is None


def test_latest_per_seed_keeps_newest():
    old = record(timestamp="2024-01-01T00:00:00+00:00", code_version="0.1.0+gold", metrics={"R@10": 0.1})
    new = record(timestamp="2024-02-01T00:00:00+00:00", code_version="0.1.0+gnew", metrics={"R@10": 0.2})
    other_seed = record(seed=1)
    kept = latest_per_seed([new, old, other_seed])
    assert sorted((r.seed, r.metrics["R@10"]) for r in kept) == [(0, 0.2), (1, 0.25)]


# --- code version ----------------------------------------------------------------------------
def test_code_version_outside_git(tmp_path):
    (tmp_path / "__init__.py").write_text("")
    assert code_version(str(tmp_path)) == sarbench.__version__


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_code_version_commit_and_dirty_mark(tmp_path):
    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    git("init", "-q")
    (tmp_path / "__init__.py").write_text("x = 1\n")
    git("add", "__init__.py")
    git("commit", "-q", "-m", "init")
    clean = code_version(str(tmp_path))
    assert clean.startswith(sarbench.__version__ + "+g") and not clean.endswith("-dirty")
    (tmp_path / "__init__.py").write_text("x = 2\n")
    code_version.cache_clear()
    assert code_version(str(tmp_path)) == clean + "-dirty"
    code_version.cache_clear()
    assert sys.modules["sarbench"].__version__ in code_version()


# Fields of the model and train configs when results version 2 began; anything newer must be listed in
# ADDED_FIELDS with its neutral value, so that adding an option never changes existing keys.
V2_FIELDS = {
    "model": {"num_items", "attention", "max_len", "hidden", "layers", "heads", "dropout", "attn_dropout",
              "norm_first", "activation", "embedding_norm", "embedding_norm_eps", "output_transform", "item_bias",
              "mask_prob", "local_window", "local_heads", "num_users", "sse_item_prob", "sse_user_prob"},
    "train": {"loss", "num_negatives", "optimizer", "lr", "weight_decay", "betas", "eps", "grad_clip", "batch_size",
              "max_epochs", "eval_every", "patience", "metric", "ks", "exclusion", "eval_users", "length_buckets",
              "seed", "deterministic", "device", "precision", "progress", "max_minutes"},
}


def test_new_config_fields_are_declared_with_a_neutral_value():
    import dataclasses

    from sarbench.models.sar import SARConfig
    from sarbench.store import ADDED_FIELDS
    from sarbench.train import TrainConfig

    for section, cls in (("model", SARConfig), ("train", TrainConfig)):
        fields = {f.name: f.default for f in dataclasses.fields(cls)}
        undeclared = set(fields) - V2_FIELDS[section] - set(ADDED_FIELDS[section])
        assert not undeclared, f"{cls.__name__} fields {sorted(undeclared)} must be listed in store.ADDED_FIELDS"
        for name, neutral in ADDED_FIELDS[section].items():
            assert fields[name] == neutral, f"{cls.__name__}.{name} defaults to {fields[name]!r}, not neutral"


def test_an_added_field_at_its_neutral_value_leaves_the_key_alone():
    from sarbench.store import ADDED_FIELDS

    before = {"model": {"hidden": 64}, "train": {"lr": 1e-3}}
    after = {"model": {"hidden": 64, **ADDED_FIELDS["model"]}, "train": {"lr": 1e-3}}
    assert make_key("c", before, "fp", 0, "paper") == make_key("c", after, "fp", 0, "paper")
    used = {"model": {"hidden": 64, **ADDED_FIELDS["model"], "init": "xavier"}, "train": {"lr": 1e-3}}
    assert make_key("c", used, "fp", 0, "paper") != make_key("c", before, "fp", 0, "paper")


def test_each_results_family_has_its_own_version(tmp_path):
    """A record carries its family's version; a bump of one family leaves the others' records current."""
    import sarbench.provenance as prov

    modsar = {"model": {"norm_residual": True}, "train": {}}
    vanilla = {"model": {"norm_residual": False}, "train": {}}
    assert prov.results_family(modsar) == "modsar" and prov.results_family(vanilla) == "vanilla"
    assert prov.results_family({"model": {}, "model_name": "llama"}) == "llama"
    assert prov.results_family({"model": {}, "model_name": "gru4rec"}) == "outside"
    a, b = record(config=modsar), record(config=vanilla)
    assert (a.results_version, b.results_version) == (prov.RESULTS_VERSIONS["modsar"], prov.RESULTS_VERSIONS["vanilla"])
    bumped = {**prov.RESULTS_VERSIONS, "modsar": prov.RESULTS_VERSIONS["modsar"] + 1}
    import pytest as _pytest

    with _pytest.MonkeyPatch.context() as mp:
        mp.setattr(prov, "RESULTS_VERSIONS", bumped)
        assert prov.is_stale(a) and not prov.is_stale(b)
        assert "of the modsar family" in prov.stale_note(a)
