"""sarbench compare: a model against stored AE/AR records, user by user, and the packaged references."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from sarbench import cli
from sarbench.compare import (BETTER, NO_DIFFERENCE, WORSE, ReferenceMismatch, compare_runs, model_label,
                              ranks_under)
from sarbench.references import (MANIFEST, PACKAGED, ReferenceChecksumError, build_references, is_reference,
                                 load_references)
from sarbench.store import ResultStore, make_record

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "reports" / "baseline" / "paper"
USERS = 400


def _record(attention, ranks, *, model="sar", seed=0, fingerprint="f" * 16, users=None, scale="paper", rule="input",
            dataset="toy"):
    users = np.arange(len(ranks)) if users is None else np.asarray(users)
    ranks = np.asarray(ranks)
    metrics = {f"{m}@{k}": float(np.mean(np.where(ranks < k, 1.0 if m == "R" else 1 / np.log2(ranks + 2), 0.0)))
               for m in ("R", "N") for k in (5, 10, 20)}
    inner = f"{dataset}-{attention}-ce" if model == "sar" else f"{dataset}-{model}-{attention}-ce"
    return make_record(case_id=f"vanilla[{inner}]", table="vanilla", dataset=dataset, model=model,
                       attention=attention, loss="ce", config={"model": model}, fingerprint=fingerprint, seed=seed,
                       scale=scale, metrics=metrics, variant="vanilla" if model == "sar" else model,
                       per_user={"users": users, "rank": ranks, "rank_history": ranks + 1},
                       extra={"exclusion": rule, "tie_rule": "pessimistic",
                              "metrics_by_rule": {rule: metrics}})


def _ranks(hit_share, seed):
    """Ranks with a share ``hit_share`` of users in the top 10 (rank 0..9), the rest far below."""
    rng = np.random.default_rng(seed)
    hit = rng.random(USERS) < hit_share
    return np.where(hit, rng.integers(0, 10, USERS), rng.integers(100, 1000, USERS))


@pytest.fixture
def refs():
    return [_record("AE", _ranks(0.2, 1)), _record("AR", _ranks(0.6, 2))]


def test_a_model_between_ae_and_ar_is_better_than_one_and_worse_than_the_other(refs):
    run = _record("AR", _ranks(0.4, 3), model="mine")
    (comp,) = compare_runs([run, *refs], refs)  # the references among the runs are left out
    verdicts = {v.reference: v for v in comp.verdicts}
    assert verdicts["AE"].verdict == BETTER and verdicts["AR"].verdict == WORSE
    for v, ref in zip((verdicts["AE"], verdicts["AR"]), refs):
        c = v.comparison
        mine = run.metrics["N@10"] - ref.metrics["N@10"]
        assert c.diff == pytest.approx(mine, abs=1e-12) and c.ci_low < mine < c.ci_high and c.n == USERS
        assert c.p_value < 0.01
    assert comp.run.label == "mine-AR-ce" == model_label(run)
    assert [row["model"] for row in comp.table()] == ["mine-AR-ce", "AE", "AR"]


def test_an_equal_model_is_no_significant_difference(refs):
    same = _record("AR", refs[1].per_user["rank"], model="mine")
    comp = compare_runs([same], refs)[0]
    ar = next(v for v in comp.verdicts if v.reference == "AR")
    assert ar.verdict == NO_DIFFERENCE and ar.comparison.diff == 0.0


def test_seeds_are_averaged_per_user_not_pooled(refs):
    runs = [_record("AR", _ranks(0.4, s), model="mine", seed=s) for s in (3, 4, 5)]
    comp = compare_runs(runs, refs)[0]
    c = next(v for v in comp.verdicts if v.reference == "AE").comparison
    assert c.n == USERS and c.n_seeds_ar == 3 and c.n_seeds_ae == 1
    assert c.mean_ar == pytest.approx(np.mean([r.metrics["N@10"] for r in runs]), abs=1e-12)
    assert comp.run.seeds == [3, 4, 5]


def test_the_history_rule_reads_the_other_ranks(refs):
    run = _record("AR", _ranks(0.4, 3), model="mine")
    assert list(ranks_under(run, "history").per_user["rank"]) == list(run.per_user["rank_history"])
    assert list(ranks_under(run, "input").per_user["rank"]) == list(run.per_user["rank"])


@pytest.mark.parametrize(("change", "message"), [
    (dict(fingerprint="0" * 16), "fingerprint 0000000000000000 matches no reference"),
    (dict(users=np.arange(1, USERS + 1)), "the evaluated users differ (400 vs 400; user 400 only in the run)"),
    (dict(scale="smoke"), "the run is smoke-scale, the reference paper-scale"),
])
def test_a_mismatched_reference_fails_and_says_what_differs(refs, change, message):
    run = _record("AR", _ranks(0.4, 3), model="mine", **change)
    with pytest.raises(ReferenceMismatch) as info:
        compare_runs([run], refs)
    assert message in str(info.value)


def test_fewer_users_and_an_unknown_dataset_are_named(refs):
    run = _record("AR", _ranks(0.4, 3)[:-1], model="mine")
    with pytest.raises(ReferenceMismatch, match=r"users differ \(399 vs 400; user 399 only in the reference\)"):
        compare_runs([run], refs)
    other = [_record("AE", _ranks(0.2, 1), fingerprint="e" * 16, dataset="elsewhere")]
    with pytest.raises(ReferenceMismatch, match=r"no reference records for dataset 'toy' .*hold: elsewhere"):
        compare_runs([run], other)


def test_the_command_prints_verdicts_and_fails_clearly_on_a_mismatch(refs, tmp_path, capsys):
    ResultStore(tmp_path / "refs").write(refs[0])
    ResultStore(tmp_path / "refs").write(refs[1])
    ResultStore(tmp_path / "mine").write(_record("AR", _ranks(0.4, 3), model="mine"))
    rc = cli.main(["compare", str(tmp_path / "mine"), "--against", str(tmp_path / "refs")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "mine-AR-ce vs AE: N@10 +" in out and ": better (alpha 0.01)" in out and ": worse (alpha 0.01)" in out
    ResultStore(tmp_path / "bad").write(_record("AR", _ranks(0.4, 3), model="mine", fingerprint="0" * 16))
    rc = cli.main(["compare", str(tmp_path / "bad"), "--against", str(tmp_path / "refs")])
    assert rc == 1 and "matches no reference" in capsys.readouterr().err


def test_a_trained_outside_model_compares_with_trained_references(tmp_path):
    """The whole path on real training: the paper's AE and AR and GRU4Rec (an outside model, registered
    by entry point) trained two epochs on the synthetic data, then GRU4Rec tested against the other two."""
    from sarbench.cases import DataCache, Scale, run_case

    tiny = Scale("smoke", max_epochs=2, patience=2, threads=1)
    store, data = ResultStore(tmp_path / "results"), DataCache(None)
    records = [run_case(table="vanilla", dataset="synthetic", design="vanilla", attention=a, seed=0, scale=tiny,
                        device="cpu", data=data, store=store, model=m) for m, a in (("sar", "AE"), ("sar", "AR"),
                                                                                    ("gru4rec", "AR"))]
    assert [is_reference(r) for r in records] == [True, True, False]
    (comp,) = compare_runs(records, records[:2])
    assert comp.run.label == "gru4rec-AR-ce" and set(comp.references) == {"AE", "AR"}
    for v in comp.verdicts:
        mine, ref = records[2].metrics["N@10"], comp.references[v.reference].records[0].metrics["N@10"]
        assert v.comparison.diff == pytest.approx(mine - ref, abs=1e-9)
        assert v.verdict in (BETTER, WORSE, NO_DIFFERENCE)


# --- the packaged references ---------------------------------------------------------------------
def test_the_packaged_references_are_the_committed_records():
    packaged = {r.key: r for r in load_references()}
    committed = {r.key: r for r in load_references(COMMITTED)}
    assert packaged.keys() == committed.keys() and packaged
    for key, ref in committed.items():
        mine = packaged[key]
        assert mine.metrics == ref.metrics and mine.per_user == ref.per_user and mine.epochs == ref.epochs
        assert mine.extra["metrics_by_rule"] == ref.extra["metrics_by_rule"]


def test_rebuilding_the_references_gives_the_same_bytes(tmp_path):
    build_references(COMMITTED, tmp_path)
    for name in json.loads((PACKAGED / MANIFEST).read_text())["files"]:
        assert (tmp_path / name).read_bytes() == (PACKAGED / name).read_bytes(), name


def test_a_changed_reference_file_is_refused_by_name(tmp_path):
    build_references(COMMITTED, tmp_path)
    name = sorted(json.loads((tmp_path / MANIFEST).read_text())["files"])[0]
    data = json.loads(gzip.decompress((tmp_path / name).read_bytes()))
    data["metrics"]["N@10"] += 0.01
    (tmp_path / name).write_bytes(gzip.compress(json.dumps(data).encode()))
    with pytest.raises(ReferenceChecksumError, match=name):
        load_references(tmp_path)
