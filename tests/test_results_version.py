"""Guard of RESULTS_VERSION: a change that moves results must bump it (sarbench/provenance.py).

Tiny models of every kind (each design preset, AE and AR) train for two epochs on a tiny synthetic
dataset; their per-epoch losses, trained weights and test metrics under both exclusion rules are
compared with ``golden_results.json``, which was written for the current results version. Runs are
deterministic on one torch build, so a refactor leaves them equal (within float noise), while a
change to a mask, loss, optimiser, initialisation, data split or metric moves them. When that was
intended:

    1. bump RESULTS_VERSION in sarbench/provenance.py (stored records become stale, on purpose);
    2. python tests/test_results_version.py --update   (rewrites golden_results.json)

A changed *configuration* (a preset now sets other values) needs no bump: the configuration is part
of every record's key, so its old records are not reused anyway. The golden file keeps each case's
configuration; ``--update`` rewrites a case whose configuration changed, and refuses to rewrite one
whose configuration is the same but whose numbers moved unless the results version was bumped.

The golden numbers belong to the torch version that wrote them; under another one the test skips.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

GOLDEN = Path(__file__).with_name("golden_results.json")
CASES = ["vanilla-AE", "vanilla-AR", "local-AE", "local-AR", "ssept-AE", "ssept-AR", "ce-AE", "bpr-AR", "bce-AE",
         "bce-AR"]
LOSS_REL = 1e-4  # float noise of a refactor is ~1e-7; any change to what is computed moves far more
PARAM_TOL = 1e-6  # on projections of the trained weights, relative to their norm (float noise: ~1e-8)
METRIC_ABS = 0.02  # one of the ~60 evaluated users changing rank moves a metric by up to ~0.017
PROJECTIONS = 8


def golden_numbers(name: str) -> dict:
    from sarbench.data import SyntheticConfig, make_synthetic
    from sarbench.presets import preset
    from sarbench.train import Trainer

    torch.set_num_threads(1)
    ds = make_synthetic(SyntheticConfig(num_users=80, num_items=40, min_length=4, max_length=24, seed=11))
    mc, tc = preset(name, "synthetic", ds.num_items, ds.num_users)
    heads = 2 if mc.local_heads else 1
    mc = replace(mc, hidden=16, layers=1, heads=heads, max_len=12)
    # validated once, at the end: the weights tested never depend on which epoch won a close validation
    tc = replace(tc, batch_size=16, max_epochs=2, eval_every=2, patience=10, progress=False, seed=3)
    from sarbench.store import identity_config

    trainer = Trainer(mc, tc, ds.split())
    result = trainer.fit()
    config = identity_config({"model": dataclasses.asdict(mc), "train": dataclasses.asdict(tc)})
    # The trained weights, seen through fixed random projections: as sensitive as the weights themselves.
    theta = torch.cat([p.detach().double().flatten() for p in trainer.model.state_dict().values()])
    directions = torch.randn(PROJECTIONS, len(theta), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return {"config": config, "loss": [row["loss"] for row in result.history],
            "weights": {"norm": theta.norm().item(), "projections": (directions @ theta / len(theta) ** 0.5).tolist()},
            "test": {rule: m for rule, m in result.test.metrics_by_rule.items()}}


def moved(got: dict, want: dict) -> list[str]:
    """What differs between two golden_numbers() results beyond the tolerances (empty: the same)."""
    out = []
    if got["loss"] != pytest.approx(want["loss"], rel=LOSS_REL):
        out.append(f"losses {got['loss']} vs {want['loss']}")
    norm = want["weights"]["norm"]
    worst = max(abs(a - b) for a, b in zip(got["weights"]["projections"], want["weights"]["projections"]))
    if worst > PARAM_TOL * norm or abs(got["weights"]["norm"] - norm) > PARAM_TOL * norm:
        out.append(f"trained weights moved by {worst / norm:.1e} of their norm")
    for rule, metrics in want["test"].items():
        for metric, value in metrics.items():
            if abs(got["test"][rule][metric] - value) > METRIC_ABS:
                out.append(f"test {metric} ({rule} rule) {got['test'][rule][metric]:.4f} vs {value:.4f}")
    return out


def write_golden() -> str:
    from sarbench.provenance import RESULTS_VERSION

    old = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    cases = {name: golden_numbers(name) for name in CASES}
    if old.get("results_version") == RESULTS_VERSION and old.get("torch") == torch.__version__:
        refused = [f"{name}: {'; '.join(moved(got, old['cases'][name]))}" for name, got in cases.items()
                   if name in old.get("cases", {}) and got["config"] == old["cases"][name].get("config")
                   and moved(got, old["cases"][name])]
        if refused:
            raise SystemExit("results moved for unchanged configurations -- bump RESULTS_VERSION in "
                             "sarbench/provenance.py first:\n" + "\n".join(refused))
    data = {"results_version": RESULTS_VERSION, "torch": torch.__version__, "cases": cases}
    GOLDEN.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return f"wrote {GOLDEN} for results version {RESULTS_VERSION}"


@pytest.fixture(scope="module")
def golden():
    from sarbench.provenance import RESULTS_VERSION

    data = json.loads(GOLDEN.read_text())
    assert data["results_version"] == RESULTS_VERSION, (
        f"{GOLDEN.name} was written for results version {data['results_version']}, the code says "
        f"{RESULTS_VERSION}: regenerate it with `python tests/test_results_version.py --update`")
    if data["torch"] != torch.__version__:
        pytest.skip(f"golden numbers were recorded with torch {data['torch']}; this is {torch.__version__}")
    return data["cases"]


@pytest.mark.parametrize("name", CASES)
def test_results_unchanged_for_this_results_version(golden, name):
    got = golden_numbers(name)
    assert got["config"] == golden[name]["config"], (
        f"{name}: the preset's configuration changed; that needs no results-version bump (the configuration is "
        "part of the key): run `python tests/test_results_version.py --update`")
    problems = moved(got, golden[name])
    assert not problems, (f"{name}: " + "; ".join(problems) + " -- results moved: if intended, bump "
                          "RESULTS_VERSION in sarbench/provenance.py and run `python tests/test_results_version.py --update`")


SMALL_CHANGES = {  # changes of the kind this guard exists for, each smaller than any real regression
    "optimiser eps 1e-6 -> 1e-8": lambda m, t: (m, replace(t, eps=1e-8)),
    "embedding LayerNorm eps 1e-12 -> 1e-5": lambda m, t: (replace(m, embedding_norm_eps=1e-5), t),
    "weight decay 0.1 -> 0.09": lambda m, t: (m, replace(t, weight_decay=0.09)),
}


@pytest.mark.parametrize("change", list(SMALL_CHANGES))
def test_the_guard_notices_a_small_change(golden, monkeypatch, change):
    import sarbench.presets as presets

    real = presets.preset
    monkeypatch.setattr(presets, "preset", lambda *a, **kw: SMALL_CHANGES[change](*real(*a, **kw)))
    assert moved(golden_numbers("vanilla-AR"), golden["vanilla-AR"]), f"{change} went unnoticed"


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    if "--update" not in sys.argv:
        sys.exit("usage: python tests/test_results_version.py --update  (after bumping RESULTS_VERSION)")
    print(write_golden())
