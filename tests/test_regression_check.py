"""The smoke regression check bites: each real regression, injected alone, makes it fail.

A small synthetic case (AE and AR) is trained through the benchmark's own code path
(``cases.run_case``, at a small scale with the smoke scale's fixed thread count) and written as the
smoke baseline (``smoke_baseline.update_smoke``). Then one break at a time replaces one real function of
the package, the case is retrained, and the comparison every smoke case runs in CI
(``smoke_baseline.smoke_differences``, called by bench/test_vanilla.py) must report a move: the exact comparison of the baseline's own platform, and the portable one of any
other platform (forced here: ``exact=False``, at the tolerances the committed baseline gives the
synthetic cases), each for all six. A retrain
without a break must report none: the check is neither blind nor trigger-happy. A patch that stops
reaching the code (a renamed function) leaves the numbers unmoved, so this test then fails instead
of passing silently.
"""

from __future__ import annotations

import pytest
import torch

import sarbench.evaluate as evaluate_module
import sarbench.models.sar as sar
import sarbench.train as train_module
from sarbench.smoke_baseline import (BASELINE_DIR, PORTABLE_ENV, check_smoke_baseline, entry_tolerance, is_unstable,
                                     load_smoke, smoke_differences, update_smoke)
from sarbench.cases import SCALES, DataCache, Scale, run_case, torch_threads
from sarbench.data import SyntheticConfig, make_synthetic
from sarbench.store import ResultStore

pytest_plugins = ["pytester"]

# Small enough to train in about a second per model; both models learn past most-popular.
DATA = SyntheticConfig(num_users=300, num_items=50, min_length=6, max_length=16, seed=5)
SCALE = Scale("smoke", max_epochs=5, patience=5, lr=5e-3, batch_size=32, threads=SCALES["smoke"].threads)
MODEL = {"hidden": 32, "max_len": 16}


# --- the breaks: each replaces one real function ------------------------------------------------
def ae_causal_mask(monkeypatch):
    real = sar.attention_mask
    monkeypatch.setattr(sar, "attention_mask", lambda mask, attention, *a, **k: real(mask, "AR", *a, **k))


def ar_sees_next_item(monkeypatch):
    real_mask = sar.attention_mask

    def leaky_mask(mask, attention, *a, **k):
        allowed = real_mask(mask, "AE", *a, **k).allowed  # every real key
        if attention == "AR":
            i = torch.arange(mask.shape[1], device=mask.device)
            allowed = allowed & (i[None, :] <= i[:, None] + 1)  # key j <= query i + 1: one step ahead
        return sar.Mask(allowed, causal=False)  # not the plain causal mask: kernels must read it

    monkeypatch.setattr(sar, "attention_mask", leaky_mask)


def labels_shifted(monkeypatch):
    real = train_module.training_windows

    def shifted(*a, **k):
        users, inputs, targets, lengths = real(*a, **k)
        targets = targets.copy()
        targets[:, 1:] = targets[:, :-1]  # the label of position i is the one of position i - 1
        targets[:, 0] = 0
        return users, inputs, targets, lengths

    monkeypatch.setattr(train_module, "training_windows", shifted)


def ties_favour_target(monkeypatch):
    def optimistic_ranks(scores, targets, exclude=None):
        above = scores > scores.gather(1, targets[:, None])
        above[:, 0] = False
        if exclude is not None:
            above &= ~exclude
        return above.sum(1)

    monkeypatch.setattr(evaluate_module, "ranks_from_scores", optimistic_ranks)


def history_exclusion_dropped(monkeypatch):
    real = evaluate_module._exclusion_mask
    monkeypatch.setattr(evaluate_module, "_exclusion_mask", lambda *a, **k: torch.zeros_like(real(*a, **k)))


def mask_position_off_by_one(monkeypatch):
    real = sar.SelfAttentiveRecommender.eval_inputs

    def eval_inputs(self, histories, lengths):
        inputs, pos = real(self, histories, lengths)
        return inputs, (pos - 1).clamp(min=0) if self.cfg.attention == "AE" else pos

    monkeypatch.setattr(sar.SelfAttentiveRecommender, "eval_inputs", eval_inputs)


BREAKS = {  # name: (the case it breaks, the injection)
    "AE given the causal mask": ("AE", ae_causal_mask),
    "AR sees the next item": ("AR", ar_sees_next_item),
    "labels shifted by one position": ("AR", labels_shifted),
    "ties counted in the target's favour": ("AR", ties_favour_target),
    "history exclusion dropped": ("AR", history_exclusion_dropped),
    "[MASK] position read off by one": ("AE", mask_position_off_by_one),
}


# --- the case -------------------------------------------------------------------------------------
class SmallCase:
    def __init__(self, folder):
        self.data = DataCache(None)
        self.data._loaded[("synthetic", SCALE.name)] = make_synthetic(DATA)
        self.store = ResultStore(folder / "results")

    def run(self, attention):
        with torch_threads(SCALE.threads):
            return run_case(table="vanilla", dataset="synthetic", design="vanilla", attention=attention, seed=0,
                            scale=SCALE, device="cpu", data=self.data, store=self.store, rerun=True,
                            model_overrides=MODEL)


def committed_tolerance() -> dict:
    """The small case's portable tolerances: those the committed baseline gives the synthetic vanilla
    AE and AR smoke cases, number by number where it has them (AR: bit-stable, 1%; AE: each number's
    measured spread, 1-4%)."""
    from pathlib import Path

    committed = load_smoke(Path(__file__).resolve().parents[1] / BASELINE_DIR)
    out = {}
    for a in ("AE", "AR"):
        entry = committed["cases"].get(f"vanilla[synthetic-{a}-ce]", {}).get("0")
        rel = entry_tolerance(entry).rel if entry else 0.05
        per = (entry or {}).get("portable_tolerance", {}).get("per_metric", {})
        out[f"vanilla[synthetic-{a}-ce]"] = {"kernels": {"as committed": rel / 2}, "attention": "AR",
                                             **({"metric_kernels": {"as committed": {n: r / 2 for n, r in per.items()}}}
                                                if per else {})}
    return {"cases": out}


# Off its platform a case is compared within its measured spread: since the AE smoke schedule trains to
# where float noise no longer moves it (24 epochs), AE's tolerance is narrower than what its breaks move.
PORTABLE_BREAKS = list(BREAKS)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("regression")
    small = SmallCase(folder)
    records = {a: small.run(a) for a in ("AE", "AR")}
    update_smoke(records.values(), folder / "baseline", spread=committed_tolerance())
    small.baseline = load_smoke(folder / "baseline")
    small.records = records
    return small


def test_the_small_case_learns(case):
    for attention, rec in case.records.items():
        ndcg, popular = rec.metrics["N@10"], rec.extra["most_popular"]["N@10"]
        assert ndcg > popular, f"{attention}: NDCG@10 {ndcg:.4f} vs most-popular {popular:.4f}"


@pytest.mark.parametrize("exact", [True, False], ids=["same-platform", "another-platform"])
@pytest.mark.parametrize("attention", ["AE", "AR"])
def test_an_unbroken_rerun_passes(case, attention, exact):
    assert not smoke_differences(case.baseline, case.run(attention), exact=exact)


@pytest.mark.parametrize(("name", "exact"), [(n, True) for n in BREAKS] + [(n, False) for n in PORTABLE_BREAKS],
                         ids=[f"{n}-same-platform" for n in BREAKS] + [f"{n}-another-platform" for n in PORTABLE_BREAKS])
def test_each_break_fails_the_check(case, monkeypatch, name, exact):
    attention, inject = BREAKS[name]
    inject(monkeypatch)
    broken = case.run(attention)
    moved = smoke_differences(case.baseline, broken, exact=exact)
    assert moved, f"{name}: the smoke regression check did not notice"


def test_another_platform_compares_instead_of_skipping(case, monkeypatch):
    """Off the baseline's platform (forced with the environment variable, as a user's CI may be) a case
    is compared within its tolerance and by the paired test, never skipped; a break still fails."""
    monkeypatch.setenv(PORTABLE_ENV, "1")
    said = check_smoke_baseline(case.records["AR"], case.baseline, strict=True)
    assert "on another platform" in said and PORTABLE_ENV in said
    ar_sees_next_item(monkeypatch)
    with pytest.raises(AssertionError, match="moved from its smoke baseline, compared on another platform"):
        check_smoke_baseline(case.run("AR"), case.baseline, strict=True)


def test_a_missing_entry_fails_in_ci_and_a_users_case_records_its_own(case, tmp_path):
    rec = case.records["AR"]
    with pytest.raises(pytest.fail.Exception, match="no smoke baseline"):
        check_smoke_baseline(rec, {"cases": {}}, strict=True)
    with pytest.raises(pytest.skip.Exception, match="no smoke baseline"):
        check_smoke_baseline(rec, {"cases": {}}, strict=False)

    class UsersCase:  # the same run, as a case on a dataset the user declared
        def __getattr__(self, name):
            return getattr(rec, name)
        dataset = "my-data"

    mine = tmp_path / "mine" / "smoke.json"
    first = check_smoke_baseline(UsersCase(), {"cases": {}}, strict=True, user_baseline=mine)
    assert first.startswith("first run: baseline recorded") and mine.exists()
    second = check_smoke_baseline(UsersCase(), {"cases": {}}, strict=True, user_baseline=mine)
    assert second.startswith("matches its smoke baseline")


def test_an_entry_of_another_results_version_is_named_stale_never_passed(case):
    """An entry made under another results version of the case's family is not compared: the check says the
    entry is stale (its family, both versions, the command that refreshes it), failing in CI, skipping elsewhere."""
    import copy

    rec = case.records["AR"]
    old = copy.deepcopy(case.baseline)
    old["cases"][rec.case_id]["0"]["results_version"] = rec.results_version - 1
    with pytest.raises(pytest.fail.Exception, match="results version .* of the vanilla family .* stale") as failed:
        check_smoke_baseline(rec, old, strict=True)
    assert "--update-baseline" in str(failed.value) and "no smoke baseline" not in str(failed.value)
    with pytest.raises(pytest.skip.Exception, match="stale"):
        check_smoke_baseline(rec, old, strict=False)


def test_entries_written_before_families_are_told_their_family_by_case_id():
    from sarbench.smoke_baseline import entry_family

    assert entry_family("design[ml-1m-ssept-AR-bce]", {}) == "modsar"
    assert entry_family("hf[synthetic-transfo_xl-AE-ce]", {}) == "transfo_xl"
    assert entry_family("vanilla[ml-1m-AR-ce]", {}) == "vanilla"
    assert entry_family("analysis[ml-1m-local-AE-ce]", {}) == "vanilla"
    assert entry_family("vanilla[video-gru4rec-AR-ce]", {}) == "outside"
    assert entry_family("vanilla[video-AR-ce]", {"results_family": "modsar"}) == "modsar"


_USERS_BREAK = '''
import sarbench.models.sar as sar

_real = sar.attention_mask


def _causal_for_everyone(mask, attention, *a, **k):
    return _real(mask, "AR", *a, **k)


sar.attention_mask = _causal_for_everyone  # AE given the causal mask, as a user's conftest could
'''


@pytest.mark.parametrize(("broken", "portable"), [(False, True), (True, False), (True, True)],
                         ids=["as-shipped-another-platform", "break-from-a-conftest",
                              "break-from-a-conftest-another-platform"])
def test_the_first_command_on_another_platform(pytester, monkeypatch, tmp_path, broken, portable):
    """The README's first command: on a platform other than the baseline's (forced) the synthetic AE case
    passes with its numbers; with AE given the causal mask from a conftest it fails, on the baseline's
    platform and off it."""
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    (pytester.path / "bench").mkdir()
    shutil.copy(root / "bench" / "test_vanilla.py", pytester.path / "bench")
    shutil.copy(root / "pytest.ini", pytester.path)
    (pytester.path / "reports" / "baseline").mkdir(parents=True)
    shutil.copy(root / BASELINE_DIR / "smoke.json", pytester.path / "reports" / "baseline")
    if broken:
        (pytester.path / "bench" / "conftest.py").write_text(_USERS_BREAK)
    if portable:
        monkeypatch.setenv(PORTABLE_ENV, "1")
    monkeypatch.delenv("SARBENCH_DATA", raising=False)
    result = pytester.runpytest_subprocess("bench/test_vanilla.py", "-m", "vanilla", "--datasets", "synthetic", "-k",
                                           "synthetic-AE-ce", "-p", "no:cacheprovider", "--results",
                                           str(tmp_path / "results"))
    if broken:
        result.assert_outcomes(failed=1)
        how = "on another platform" if portable else "exactly"
        result.stdout.fnmatch_lines([f"*moved from its smoke baseline, compared {how}*"])
    else:
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(["*vanilla?synthetic-AE-ce? seed 0: beats most-popular: NDCG@10*matches its "
                                     "smoke baseline on another platform*"])
