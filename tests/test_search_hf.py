"""Table 6 is tunable: ``sarbench tune`` searches a HF backbone as it searches the design space.

The named ``hf`` space is the authors' HF grid (mask_prob x heads x dropout at d = 64: 40 AE / 10 AR
trials; LLaMA without the dropout axis, which did nothing in the authors' LLaMA). A tiny search of
Transformer-XL (two trials, one epoch each, on a local Ray instance with one CPU; our own torch layer,
so no trial pays for importing transformers) runs end to end: the trials,
the best trial retrained as the benchmark's own Table-6 case, the preset file a case then loads.
"""

from __future__ import annotations

import json

import pytest

from sarbench.data import make_synthetic
from sarbench.search import SPACES, SearchConfig, Space

DATA = make_synthetic()


@pytest.mark.parametrize(("model", "ae", "ar"), [("albert", 40, 10), ("transfo_xl", 40, 10), ("llama", 8, 2)])
def test_the_hf_space_fits_each_backbone(model, ae, ar):
    from sarbench.search.trial import trial_configs, validated

    sizes = {}
    for attention in ("AE", "AR"):
        search = validated(SearchConfig("video", model, attention, SPACES["hf"].for_attention(attention)),
                           DATA.num_items, DATA.num_users)
        sizes[attention] = search.space.size
        assert search.scheduler == "asha" and "attn_dropout" not in dict(search.space.tied)
        mc, tc = trial_configs(search, DATA.num_items, DATA.num_users, search.space.points()[-1])
        assert (mc.hidden, mc.layers, tc.lr, tc.max_epochs, tc.eval_every) == (64, 2, 1e-3, 200, 5)
        assert type(mc).__name__ != "SARConfig"
    assert sizes == {"AE": ae, "AR": ar}


def test_the_vanilla_space_is_a_plain_grid_by_default():
    assert SearchConfig("video", "vanilla", "AR", SPACES["vanilla"]).scheduler == "grid"
    assert SearchConfig("video", "ce", "AR", SPACES["loss_ce"]).scheduler == "asha"


def test_the_dry_run_prints_a_plan_for_a_backbone(capsys):
    from sarbench.cli import main

    assert main(["tune", "--space", "hf", "--design", "llama", "--dataset", "synthetic", "--attention", "AR",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "search hf for synthetic llama-AR: 2 trial(s) over heads; ASHA" in out


def test_a_tiny_hf_search_runs_end_to_end(tmp_path):
    pytest.importorskip("ray.tune", reason="the search tests need Ray Tune: pip install 'sarbench[tune]'")
    import ray
    import torch

    from sarbench.cases import DataCache, Scale
    from sarbench.provenance import results_version
    from sarbench.search import Resources, read_preset, tune_case, tuned_case_kwargs

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(num_cpus=1, include_dashboard=False)
    try:
        data = DataCache(None)
        data._loaded[("synthetic", "smoke")] = DATA
        space = Space("tiny_hf", (("heads", (1, 2)),), (("hidden", 16), ("layers", 1), ("max_len", 20)))
        search = SearchConfig("synthetic", "transfo_xl", "AR", space, scheduler="grid", max_t=1, grace_period=1, eval_every=1,
                              eval_users=200, scale="smoke")
        result = tune_case(search, results=tmp_path / "results", data=data, presets=tmp_path / "presets",
                           scale=Scale("smoke", max_epochs=1, patience=1, max_len=20),
                           resources=Resources(max_concurrent=1), progress=False)
    finally:
        torch.set_num_threads(threads)
        if started_here:
            ray.shutdown()
    outcome = result.outcome
    assert outcome.complete and len(outcome.trials) == 2 and all(t.status == "max_t" for t in outcome.trials)
    record = result.record
    assert record.case_id == "hf[synthetic-transfo_xl-AR-ce]" and record.config["model_name"] == "transfo_xl"
    assert record.extra["tuned_preset"] == "synthetic/transfo_xl-AR" and record.config["model"]["hidden"] == 16
    assert record.results_version == results_version("transfo_xl")
    assert result.preset.relative_to(tmp_path / "presets").as_posix() == "synthetic/transfo_xl-AR.json"
    doc = json.loads(result.preset.read_text())
    assert doc["case"] == {"dataset": "synthetic", "design": "transfo_xl", "attention": "AR", "table": "hf"}
    assert doc["provenance"]["results_version"] == results_version("transfo_xl")
    assert doc["overrides"]["model"]["heads"] == outcome.best.point["heads"]
    assert read_preset(result.preset).model == doc["overrides"]["model"]
    assert tuned_case_kwargs("synthetic", "transfo_xl", "AR", tmp_path / "presets")["tuned_preset"] == \
        "synthetic/transfo_xl-AR"
