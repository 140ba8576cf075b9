"""Guard of RESULTS_VERSION: a change that moves results must bump it (sarbench/provenance.py).

Tiny models of every results family (sarbench/provenance.py: the vanilla network, ModSAR with each
design preset, each Table-6 backbone, an outside model; AE and AR) train for two epochs on a tiny
synthetic dataset; their per-epoch losses, trained weights and test metrics under both exclusion
rules are compared with ``golden_results.json``, which holds each family's numbers for its current
results version. A change to a mask, loss, optimiser, initialisation, data split or metric moves
them; a refactor does not. When the move was intended:

    1. bump that family's entry of RESULTS_VERSIONS in sarbench/provenance.py (its stored records
       become stale, on purpose; the other families' stay current);
    2. python tests/test_results_version.py --update   (rewrites the entries of the families whose
       version changed, and of cases whose configuration changed; every other entry is kept as it is)

The guard trains in float64 (the default dtype while it runs), so that it holds on any x86-64 CPU.
In float32, what moves when only the floating-point kernels change (another instruction set for
torch's kernels or MKL's, MKL's reproducibility mode, two threads instead of one) is as large as
what the smallest real changes move: trained weights 2e-6 of their norm against 1.5e-6 for an
embedding LayerNorm eps of 1e-5 instead of 1e-12 (reports/kernel_spread_golden.md, made by
``python tools/kernel_spread.py golden``). In float64 the kernels move the losses by at most 2e-16
and the weights by 7e-15 of their norm, while those changes still move the losses by 7e-8 and the
weights by 1.5e-6. The tolerances below sit about four orders of magnitude from either side, and
``test_a_kernel_level_perturbation_passes`` / ``test_the_guard_notices_a_small_change`` show both.

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
         "bce-AR", "albert-AR", "llama-AE", "transfo_xl-AE", "gru4rec-AR"]
OTHER_MODELS = ("albert", "llama", "transfo_xl", "gru4rec")  # registered models: their spec's defaults
# Measured in float64 (tools/kernel_spread.py): kernels move losses <= 2e-16 (relative) and weights <= 7e-15
# (of their norm); the smallest deliberate changes move losses >= 7e-8 and weights >= 1.5e-6.
LOSS_REL = 1e-12
PARAM_TOL = 1e-10  # on projections of the trained weights, relative to their norm
METRIC_ABS = 1e-9  # a rank flip (1/60 of a user) needs two scores within ~1e-10 of each other: the same model
PROJECTIONS = 8
DTYPE = torch.float64


def golden_numbers(name: str, dtype: torch.dtype = DTYPE) -> dict:
    """The guard's numbers of one case, trained with ``dtype`` as the default dtype."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        return _golden_numbers(name)
    finally:
        torch.set_default_dtype(before)


def family(name: str) -> str:
    """The results family (sarbench.provenance) of a guard case."""
    from sarbench.designs import DESIGNS

    model = name.rsplit("-", 1)[0]
    if model in OTHER_MODELS:
        return model if model != "gru4rec" else "outside"
    return "modsar" if DESIGNS[model].network == "modsar" else "vanilla"


def _golden_numbers(name: str) -> dict:
    from sarbench.data import SyntheticConfig, make_synthetic
    from sarbench.presets import preset
    from sarbench.train import Trainer

    torch.set_num_threads(1)
    ds = make_synthetic(SyntheticConfig(num_users=80, num_items=40, min_length=4, max_length=24, seed=11))
    model, attention = name.rsplit("-", 1)
    if model in OTHER_MODELS:
        from sarbench.models.interface import get_spec

        mc, tc = get_spec(model).defaults(attention, "synthetic", ds.num_items, ds.num_users)
        mc = replace(mc, hidden=16, layers=1, max_len=12, **({"heads": 1} if hasattr(mc, "heads") else {}))
    else:
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
    """Rewrite the entries of the families whose results version changed (and of cases whose configuration
    changed); keep every other entry as it is, refusing when its numbers moved under the same version."""
    from sarbench.provenance import RESULTS_VERSIONS

    old = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    same_torch = old.get("torch") == torch.__version__
    stored = old.get("results_versions", {})
    cases, refused, rewritten = {}, [], []
    for name in CASES:
        got = golden_numbers(name)
        want = old.get("cases", {}).get(name)
        current = same_torch and want is not None and stored.get(family(name)) == RESULTS_VERSIONS[family(name)]
        if current and got["config"] == want.get("config"):
            if moved(got, want):
                refused.append(f"{name} ({family(name)} family): {'; '.join(moved(got, want))}")
            cases[name] = want  # unchanged: kept exactly as it was
        else:
            cases[name] = got
            rewritten.append(name)
    if refused:
        raise SystemExit("results moved for unchanged configurations -- bump the family's entry of RESULTS_VERSIONS "
                         "in sarbench/provenance.py first:\n" + "\n".join(refused))
    families = sorted({family(n) for n in CASES})
    data = {"results_versions": {f: RESULTS_VERSIONS[f] for f in families}, "torch": torch.__version__, "cases": cases}
    GOLDEN.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return (f"wrote {GOLDEN}: rewrote {', '.join(rewritten) or 'nothing'}; results versions "
            + ", ".join(f"{f} {RESULTS_VERSIONS[f]}" for f in families))


@pytest.fixture(scope="module")
def golden():
    data = json.loads(GOLDEN.read_text())
    if data["torch"] != torch.__version__:
        pytest.skip(f"golden numbers were recorded with torch {data['torch']}; this is {torch.__version__}")
    return data


@pytest.fixture
def golden_cases(golden):
    return golden["cases"]


@pytest.mark.parametrize("name", CASES)
def test_results_unchanged_for_this_results_version(golden, name):
    from sarbench.provenance import RESULTS_VERSIONS

    fam = family(name)
    stored = golden.get("results_versions", {}).get(fam)
    assert stored == RESULTS_VERSIONS[fam], (
        f"{GOLDEN.name} holds the {fam} family's numbers for results version {stored}, the code says "
        f"{RESULTS_VERSIONS[fam]}: regenerate them with `python tests/test_results_version.py --update`")
    golden = golden["cases"]
    assert name in golden, f"{name}: no golden numbers; run `python tests/test_results_version.py --update`"
    got = golden_numbers(name)
    assert got["config"] == golden[name]["config"], (
        f"{name}: the preset's configuration changed; that needs no results-version bump (the configuration is "
        "part of the key): run `python tests/test_results_version.py --update`")
    problems = moved(got, golden[name])
    assert not problems, (f"{name}: " + "; ".join(problems) + " -- results moved: if intended, bump "
                          f"the {fam} family's results version (RESULTS_VERSIONS) in sarbench/provenance.py and run `python tests/test_results_version.py --update`")


SMALL_CHANGES = {  # changes of the kind this guard exists for, each smaller than any real regression
    "optimiser eps 1e-6 -> 1e-8": lambda m, t: (m, replace(t, eps=1e-8)),
    "embedding LayerNorm eps 1e-12 -> 1e-5": lambda m, t: (replace(m, embedding_norm_eps=1e-5), t),
    "weight decay 0.1 -> 0.09": lambda m, t: (m, replace(t, weight_decay=0.09)),
    "attention dropout 0.2 -> 26/128 (the old CPU rounding)": lambda m, t: (replace(m, attn_dropout=26 / 128), t),
    "dropout 0.2 -> 0.19": lambda m, t: (replace(m, dropout=0.19), t),
}


@pytest.mark.parametrize("change", list(SMALL_CHANGES))
def test_the_guard_notices_a_small_change(golden_cases, monkeypatch, change):
    golden = golden_cases
    import sarbench.presets as presets

    real = presets.preset
    monkeypatch.setattr(presets, "preset", lambda *a, **kw: SMALL_CHANGES[change](*real(*a, **kw)))
    assert moved(golden_numbers("vanilla-AR"), golden["vanilla-AR"]), f"{change} went unnoticed"


def test_the_guard_notices_a_mask_off_by_one(golden_cases, monkeypatch):
    """AR's causal mask letting each query see one key too far (the next item): a code change, not a preset's."""
    import sarbench.models.sar as sar

    real = sar.attention_mask

    def off_by_one(items, attention, heads=1, window=0, local_heads=0):
        if attention != "AR":
            return real(items, attention, heads, window, local_heads)
        i = torch.arange(items.shape[1])
        return sar.Mask(items[:, None, None, :] & (i[None, :] <= i[:, None] + 1), causal=False)

    monkeypatch.setattr(sar, "attention_mask", off_by_one)
    assert moved(golden_numbers("vanilla-AR"), golden_cases["vanilla-AR"]), "a mask off by one went unnoticed"


# Kernel-level perturbations (each in a fresh process: torch picks its kernels when it loads). On a CPU
# without AVX-512, ATEN_CPU_CAPABILITY=default still swaps torch's vectorised kernels for scalar ones.
KERNEL_PERTURBATIONS = {
    "torch's scalar kernels": {"ATEN_CPU_CAPABILITY": "default"},
    "MKL's portable path": {"MKL_CBWR": "COMPATIBLE"},
    "two threads": {"GOLDEN_THREADS": "2"},
}
_CHILD = """
import json, os, sys, torch
sys.path[:0] = [sys.argv[1], sys.argv[2]]
threads = int(os.environ.get("GOLDEN_THREADS", "1"))
real = torch.set_num_threads
torch.set_num_threads = lambda n: real(threads)
import test_results_version as guard
print(json.dumps({name: guard.golden_numbers(name) for name in sys.argv[3:]}))
"""


@pytest.mark.parametrize("perturbation", list(KERNEL_PERTURBATIONS))
def test_a_kernel_level_perturbation_passes(golden_cases, perturbation):
    golden = golden_cases
    """Other floating-point kernels, as on another CPU, move nothing beyond the guard's tolerances."""
    import os
    import subprocess

    here = Path(__file__).resolve().parent
    env = {**os.environ, **KERNEL_PERTURBATIONS[perturbation]}
    names = ["vanilla-AE", "ssept-AE", "local-AR"]
    done = subprocess.run([sys.executable, "-c", _CHILD, str(here), str(here.parent), *names], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    for name in names:
        assert not moved(got[name], golden[name]), f"{perturbation}: {name}: " + "; ".join(moved(got[name], golden[name]))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    if "--update" not in sys.argv:
        sys.exit("usage: python tests/test_results_version.py --update  (after bumping a family's RESULTS_VERSIONS entry)")
    print(write_golden())
