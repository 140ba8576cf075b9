"""The smoke regression check bites: each real regression, injected alone, makes it fail.

A small synthetic case (AE and AR) is trained through the benchmark's own code path
(``cases.run_case``, at a small scale with the smoke scale's fixed thread count) and written as the
smoke baseline (``baseline.update_smoke``). Then one break at a time replaces one real function of
the package, the case is retrained, and the comparison every smoke case runs in CI
(``baseline.smoke_differences``, called by bench/test_vanilla.py) must report a move. A retrain
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
from sarbench.regression import load_smoke, smoke_differences, update_smoke
from sarbench.cases import SCALES, DataCache, Scale, run_case, torch_threads
from sarbench.data import SyntheticConfig, make_synthetic
from sarbench.store import ResultStore

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


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("regression")
    small = SmallCase(folder)
    records = {a: small.run(a) for a in ("AE", "AR")}
    update_smoke(records.values(), folder / "baseline")
    small.baseline = load_smoke(folder / "baseline")
    small.records = records
    return small


def test_the_small_case_learns(case):
    for attention, rec in case.records.items():
        ndcg, popular = rec.metrics["N@10"], rec.extra["most_popular"]["N@10"]
        assert ndcg > popular, f"{attention}: NDCG@10 {ndcg:.4f} vs most-popular {popular:.4f}"


@pytest.mark.parametrize("attention", ["AE", "AR"])
def test_an_unbroken_rerun_passes(case, attention):
    assert not smoke_differences(case.baseline, case.run(attention))


@pytest.mark.parametrize("name", list(BREAKS))
def test_each_break_fails_the_check(case, monkeypatch, name):
    attention, inject = BREAKS[name]
    inject(monkeypatch)
    broken = case.run(attention)
    moved = smoke_differences(case.baseline, broken)
    assert moved, f"{name}: the smoke regression check did not notice"


def test_another_platform_skips_and_a_missing_entry_fails_in_ci():
    from sarbench.regression import check_smoke_baseline, smoke_platform

    class Rec:
        case_id, seed, fingerprint, device = "vanilla[synthetic-AR-ce]", 0, "abc", "cpu"

    here = smoke_platform("cpu")
    entry = {"cases": {Rec.case_id: {"0": {"fingerprint": "abc", "values": {}}}}}
    with pytest.raises(pytest.skip.Exception, match="another platform"):
        check_smoke_baseline(Rec, {**entry, "platform": {**here, "cpu_capability": "OTHER"}}, strict=True)
    with pytest.raises(pytest.fail.Exception, match="no smoke baseline"):
        check_smoke_baseline(Rec, {"cases": {}, "platform": here}, strict=True)
    with pytest.raises(pytest.skip.Exception, match="no smoke baseline"):
        check_smoke_baseline(Rec, {"cases": {}, "platform": here}, strict=False)
