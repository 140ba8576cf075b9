"""Search spaces: the paper's grids, and bad spaces rejected before any trial starts (no Ray needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import sarbench.search.tune as tune_driver
from sarbench.baselines import MostPopular
from sarbench.data import SyntheticConfig, make_synthetic
from sarbench.evaluate import evaluate
from sarbench.presets import preset
from sarbench.search import SPACES, SearchConfig, Space, SpaceError, check_space, get_space, with_axes
from sarbench.search.spaces import load_space, space_from_dict
from sarbench.search.trial import search_split, trial_configs
from sarbench.search.tuned import read_preset, tuned_case_kwargs

# Grid sizes of protocol.md section 5 (AE #, AR #) and of the paper's Section 2.2.3 ranges.
PAPER_COUNTS = {"loss_ce": (80, 20), "loss_bce": (80, 20), "ssept": (1280, 320), "local_attn": (320, 80),
                "hf": (40, 10), "vanilla": (5 * 9 * 9 * 3 * 3 * 4, 5 * 9 * 9 * 3 * 3)}


def configs(design="ce", attention="AR"):
    return preset(f"{design}-{attention}", "ml-1m", 3416, 6040)


@pytest.mark.parametrize("name", list(SPACES))
def test_named_spaces_have_the_papers_grid_sizes_and_validate(name):
    space = SPACES[name]
    for attention, expected in zip(("AE", "AR"), PAPER_COUNTS[name]):
        checked = check_space(space.for_attention(attention), *configs(space.design or "vanilla", attention))
        assert checked.size == expected == len(checked.points())


def test_authors_grids_fix_layers_and_lr_and_tie_attention_dropout():
    space = check_space(SPACES["loss_ce"].for_attention("AR"), *configs("ce", "AR"))
    assert "mask_prob" not in space.axes and space.axes["heads"] == (1, 2)
    for point in space.points():
        values = space.overrides(point)
        assert values["layers"] == 2 and values["lr"] == 1e-3 and values["attn_dropout"] == values["dropout"]
    # the int 0 of a float field is typed as a float
    assert all(isinstance(v, float) for v in space.axes["dropout"])
    assert SPACES["vanilla"].tied == ()  # Section 2.2.3 searches the two dropouts separately


def test_trial_configs_apply_the_point_and_the_search_protocol():
    search = SearchConfig("ml-1m", "local", "AR", SPACES["local_attn"].for_attention("AR"), seed=3)
    point = {"heads": 1, "dropout": 0.4, "hidden": 32, "weight_decay": 1e-2}
    model, train = trial_configs(search, 3416, 6040, point)
    assert (model.heads, model.dropout, model.attn_dropout, model.hidden, model.local_heads) == (1, 0.4, 0.4, 32, 1)
    assert (train.weight_decay, train.lr, train.optimizer) == (1e-2, 1e-3, "adamw")
    assert (train.max_epochs, train.eval_every, train.seed, train.progress) == (200, 5, 3, False)
    assert search.rungs() == [5, 10, 20, 40]  # the authors' rungs: 25/50/100/200 epochs


@pytest.mark.parametrize("grid, fixed, key", [
    ({"headz": [1, 2]}, {}, "unknown parameter 'headz'"),
    ({"heads": []}, {}, "'heads' has an empty choice list"),
    ({"heads": [1, 2.5]}, {}, "heads=2.5 has the wrong type float"),
    ({"heads": [True]}, {}, "heads=True has the wrong type bool"),
    ({"dropout": [0.2, "0.4"]}, {}, "dropout='0.4' has the wrong type str"),
    ({"dropout": [0.2, 1.0]}, {}, "dropout=1.0 is outside what the model accepts"),
    ({"heads": [0, 1]}, {}, "heads=0 is outside what the model accepts"),
    ({"weight_decay": [-1e-4]}, {}, "weight_decay=-0.0001 is outside"),
    ({"heads": [1, 3]}, {}, "grid point heads=3 is not a valid configuration: hidden=64 must be divisible by heads=3"),
    ({"seed": [0, 1]}, {}, "'seed' cannot be searched"),
    ({"max_epochs": [10]}, {}, "'max_epochs' cannot be searched"),
    ({"heads": [1, 1]}, {}, "'heads' lists a value twice"),
    ({"heads": [1, 2]}, {"heads": 2}, "'heads' is both searched and fixed"),
    ({"mask_prob": [0.2, 0.4]}, {}, "'mask_prob' does nothing for AR"),
    ({"sse_item_prob": [0.2]}, {}, "'sse_item_prob' does nothing without user embeddings"),
    ({}, {"heads": 2}, "no parameter to search"),
])
def test_bad_spaces_name_the_key(grid, fixed, key):
    space = space_from_dict({"name": "mine", "grid": grid, "fixed": fixed})
    with pytest.raises(SpaceError) as info:
        check_space(space, *configs("ce", "AR"))
    assert "space mine" in str(info.value) and key in str(info.value)


def test_tied_field_needs_its_source():
    space = Space("mine", (("heads", (1, 2)),), tied=(("attn_dropout", "dropout"),))
    with pytest.raises(SpaceError, match="'attn_dropout' is tied to 'dropout', which the space does not set"):
        check_space(space, *configs())


def test_space_files_and_grid_flags(tmp_path):
    good = tmp_path / "mine.json"
    good.write_text(json.dumps({"name": "mine", "design": "ce", "grid": {"heads": [1, 2]}, "fixed": {"hidden": 32}}))
    space = get_space(str(good))
    assert space.axes == {"heads": (1, 2)} and space.design == "ce"
    space = with_axes(space, ["dropout=0,0.5", "hidden=16,32"])  # a grid axis replaces a fixed value
    assert space.axes == {"heads": (1, 2), "dropout": (0, 0.5), "hidden": (16, 32)} and dict(space.fixed) == {}
    bad = tmp_path / "bad.json"
    bad.write_text('{"grid": {"heads": [1, 2],}}')
    with pytest.raises(SpaceError, match=r"bad\.json, line 1: not valid JSON"):
        load_space(bad)
    with pytest.raises(SpaceError, match="unknown space 'loss_xx'"):
        get_space("loss_xx")
    with pytest.raises(SpaceError, match="expects KEY=V1,V2"):
        with_axes(space, ["heads"])


def test_bad_space_fails_before_ray_starts(tmp_path, monkeypatch):
    def no_ray(*args, **kwargs):
        raise AssertionError("Ray must not be imported or started for a bad space")

    monkeypatch.setattr(tune_driver, "import_tune", no_ray)
    monkeypatch.setattr(tune_driver, "ensure_ray", no_ray)
    ds = make_synthetic(SyntheticConfig(num_users=50, num_items=30, seed=1))
    space = space_from_dict({"name": "mine", "grid": {"dropout": [0.1, 1.5]}})
    with pytest.raises(SpaceError, match="dropout=1.5 is outside"):
        tune_driver.run_search(SearchConfig("synthetic", "ce", "AR", space), ds, storage=tmp_path)
    assert not any(tmp_path.iterdir())


def test_trials_get_no_test_targets():
    ds = make_synthetic(SyntheticConfig(num_users=50, num_items=30, seed=1))
    split = ds.split()
    hidden = search_split(split)
    assert len(hidden.test_target) == 0 and len(split.test_target) == len(split.eval_users)
    assert np.array_equal(hidden.valid_target, split.valid_target) and hidden.train is split.train
    # the trial's data does not contain the test items at all: its dataset is the training part
    assert hidden.dataset.items.size == split.train.items.size < ds.items.size

    # validation works on it as on the full split; a test evaluation has nothing to read
    popular = MostPopular(split.train)
    assert evaluate(popular, hidden, stage="valid", max_len=20).metrics == \
        evaluate(popular, split, stage="valid", max_len=20).metrics
    with pytest.raises(IndexError):
        evaluate(popular, hidden, stage="test", max_len=20)


def test_preset_files_are_checked(tmp_path):
    folder = tmp_path / "presets"
    (folder / "ml-1m").mkdir(parents=True)
    path = folder / "ml-1m" / "ce-AR.json"
    doc = {"schema": 1, "name": "ml-1m/ce-AR", "overrides": {"model": {"heads": 2, "dropout": 0.4},
                                                              "train": {"lr": 0.001}},
           "data": {"fingerprint": "0" * 16}, "search": {"space": {"name": "loss_ce"}}}
    path.write_text(json.dumps(doc))
    kwargs = tuned_case_kwargs("ml-1m", "ce", "AR", folder)
    assert kwargs == {"model_overrides": {"heads": 2, "dropout": 0.4}, "train_overrides": {"lr": 0.001},
                      "tuned_preset": "ml-1m/ce-AR"}
    assert tuned_case_kwargs("ml-1m", "ce", "AE", folder) == {}
    doc["overrides"]["model"]["seed"] = 1
    path.write_text(json.dumps(doc))
    with pytest.raises(SpaceError, match="'seed' cannot be searched"):
        read_preset(path)
    doc["overrides"] = {"model": {"lr": 0.001}, "train": {}}
    path.write_text(json.dumps(doc))
    with pytest.raises(SpaceError, match="filed under the wrong config"):
        read_preset(path)


# --- the command line and the report (no Ray needed) ------------------------------------------------
def test_tune_command_lists_spaces_and_plans_without_ray(capsys, tmp_path):
    import sarbench.cli as cli

    assert cli.main(["tune", "--list-spaces"]) == 0
    out = capsys.readouterr().out
    assert "loss_ce" in out and "1280" in out and "14580" in out
    argv = ["tune", "--dataset", "synthetic", "--attention", "AR", "--space", "loss_ce", "--results", str(tmp_path),
            "--dry-run"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "20 trial(s) over heads, dropout, hidden" in out and "rungs at reports [5, 10, 20, 40]" in out
    assert "epochs [25, 50, 100, 200]" in out and "best trial by its last reported value" in out
    assert not any(tmp_path.iterdir())  # a dry run writes nothing
    assert cli.main([*argv, "--grid", "seed=0,1"]) == 1
    assert "'seed' cannot be searched" in capsys.readouterr().err
    assert cli.main(["tune", "--dataset", "synthetic", "--attention", "AE", "--space", "hf", "--dry-run"]) == 1
    assert "pass --design" in capsys.readouterr().err
    assert cli.main(["tune", "--dataset", "synthetic"]) == 2


def test_report_marks_tuned_rows():
    from sarbench.report import records_frame
    from sarbench.store import ResultRecord

    def record(extra):
        return ResultRecord(case_id="design[synthetic-loss_ce-AR-ce]", table="design", dataset="synthetic",
                            model="modsar", attention="AR", loss="ce", config={}, fingerprint="0" * 16, seed=0,
                            scale="smoke", metrics={"N@10": 0.1}, variant="loss_ce", extra=extra)

    tuned = records_frame([record({"tuned_preset": "synthetic/ce-AR"})])["note"].iloc[0]
    plain = records_frame([record({})])["note"].iloc[0]
    assert "tuned (synthetic/ce-AR)" in tuned and "untuned" not in tuned
    assert "untuned (base values)" in plain and " tuned (" not in plain and not plain.startswith("tuned")
