"""`sarbench train`: help, preset list, --set overrides and their errors, end-to-end runs on the synthetic data."""

from __future__ import annotations

import doctest
import json
import re

import pytest
import torch

import sarbench.cli as cli
from sarbench.cli import OverrideError, apply_overrides, convert_value
from sarbench.models.sar import SARConfig
from sarbench.presets import preset_names
from sarbench.train import TrainConfig

# Small and fast: the default synthetic dataset, a one-layer d=16 model over the last 20 items.
TINY = ["--dataset", "synthetic", "--set", "hidden=16", "--set", "layers=1", "--set", "max_len=20",
        "--no-progress", "--eval-users", "300"]


pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in tests/conftest.py


def test_train_help(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: sarbench train")
    for flag in ("--dataset", "--model", "--preset", "--attention", "--set KEY=VALUE", "--epochs", "--device", "--seed", "--checkpoint",
                 "--no-progress", "--eval-users", "--json", "--list-presets", "--data-dir"):
        assert flag in out, flag


def test_top_level_help_lists_both_groups(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "data" in out and "train" in out


def test_list_presets(capsys):
    assert cli.main(["train", "--list-presets"]) == 0
    out = capsys.readouterr().out
    listed = re.findall(r"^\s+(\S+-A[ER])\s", out, flags=re.M)
    assert listed == preset_names()


@pytest.mark.parametrize("argv,missing", [([], "--dataset and --preset"), (["--dataset", "synthetic"], "--preset"),
                                          (["--preset", "vanilla-AR"], "--dataset")])
def test_dataset_and_preset_are_required(argv, missing, capsys):
    assert cli.main(["train", *argv]) == 2
    assert f"{missing} required" in capsys.readouterr().err


def test_unknown_preset(capsys):
    assert cli.main(["train", "--dataset", "synthetic", "--preset", "sasrec"]) == 1
    assert "sarbench: error: unknown preset 'sasrec'; known presets: vanilla-AE" in capsys.readouterr().err


def test_unknown_dataset_is_a_one_line_error(capsys, tmp_path):
    """Any name may be a dataset declared in the data folder; an unknown one says where names come from."""
    assert cli.main(["train", "--dataset", "amazon", "--preset", "vanilla-AR", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "unknown dataset 'amazon'" in err and "datasets.toml" in err


# --- --set ----------------------------------------------------------------------------------------

BASE = SARConfig(num_items=10), TrainConfig()


def test_overrides_convert_to_the_field_types():
    model, train = apply_overrides(*BASE, [
        "hidden=32", "dropout=0.5", "norm_first=TRUE", "attention=AE", "lr=5e-4", "ks=5, 10,50",
        "betas=0.8,0.9", "train.progress=off", "model.heads=4", "metric=N@10",
    ])
    assert (model.hidden, model.dropout, model.norm_first, model.attention, model.heads) == (32, 0.5, True, "AE", 4)
    assert (train.lr, train.ks, train.betas, train.progress, train.metric) == (5e-4, (5, 10, 50), (0.8, 0.9),
                                                                              False, "N@10")
    assert isinstance(model.hidden, int) and isinstance(train.lr, float)
    # untouched fields keep their values; later pairs win (the CLI puts explicit flags last)
    assert model.layers == BASE[0].layers and train.batch_size == BASE[1].batch_size
    _, train = apply_overrides(*BASE, ["max_epochs=5", ("max_epochs", 1)])
    assert train.max_epochs == 1


@pytest.mark.parametrize(
    "pair,match",
    [
        ("hiden=32", r"unknown key 'hiden'; valid keys \(model and train config\): .*\bhidden\b.*\blr\b"),
        ("model.lr=0.1", r"unknown key 'model.lr'"),
        ("hidden=abc", r"--set hidden=abc: 'abc' is not a valid int"),
        ("norm_first=maybe", r"'maybe' is not a valid bool \(1/true/yes/on or 0/false/no/off\)"),
        ("betas=0.9", r"--set betas=0.9: expected 2 comma-separated values, got 1"),
        ("num_items=5", r"--set num_items: cannot be set \(it is the dataset's item count\)"),
        ("heads=3", r"--set: hidden=64 must be divisible by heads=3"),
        ("loss=hinge", r"--set: loss must be 'ce', 'bpr' or 'bce', got 'hinge'"),
        ("hidden", r"--set expects KEY=VALUE, got 'hidden'"),
    ],
)
def test_override_errors_name_the_key(pair, match):
    with pytest.raises(OverrideError, match=match):
        apply_overrides(*BASE, [pair])


def test_convert_value_doctests():
    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(convert_value, "convert_value", globs={"convert_value": convert_value}):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted == 3 and result.failed == 0


def test_bad_set_through_the_command(capsys):
    assert cli.main(["train", *TINY, "--preset", "vanilla-AR", "--set", "hiden=8"]) == 1
    err = capsys.readouterr().err
    assert "sarbench: error: --set: unknown key 'hiden'" in err and "hidden" in err and "max_epochs" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_device(capsys):
    assert cli.main(["train", *TINY, "--preset", "vanilla-AR", "--device", "cuda"]) == 1
    assert "no CUDA device is available" in capsys.readouterr().err


# --- end to end -------------------------------------------------------------------------------------

EPOCH_LINE = re.compile(
    r"^epoch (\d)/2  time +[\d.]+s \(train [\d.]+s\)  loss ([\d.]+)  valid R@5 [\d.]+ .*N@20 [\d.]+$", flags=re.M)


@pytest.mark.parametrize("name", ["vanilla-AR", "vanilla-AE"])
def test_train_end_to_end(name, tmp_path, capsys):
    out_json = tmp_path / "out" / "result.json"
    assert cli.main(["train", *TINY, "--preset", name, "--epochs", "2", "--seed", "3", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    epochs = EPOCH_LINE.findall(out)
    assert [e for e, _ in epochs] == ["1", "2"], out
    assert f"training {name} on synthetic" in out and "stopped (max_epochs) after 2 epochs" in out
    table = out.split("test metrics of the best state (300 users, full ranking):\n", 1)[1]
    header, rule, recall, ndcg = table.splitlines()[:4]
    assert header.split() == ["test", "@5", "@10", "@20"]
    assert recall.split()[0] == "Recall" and ndcg.split()[0] == "NDCG"

    record = json.loads(out_json.read_text())
    assert record["dataset"] == "synthetic" and record["preset"] == name
    assert record["epochs"] == 2 and record["stopped"] == "max_epochs" and record["best_epoch"] in (1, 2)
    assert record["model_config"]["hidden"] == 16 and record["model_config"]["attention"] == name[-2:]
    assert record["train_config"]["max_epochs"] == 2 and record["train_config"]["seed"] == 3
    assert record["train_config"]["eval_users"] == 300 and record["train_config"]["progress"] is False
    assert record["overrides"] == ["hidden=16", "layers=1", "max_len=20"]
    assert [round(h["loss"], 4) for h in record["history"]] == [float(loss) for _, loss in epochs]
    test = record["test"]
    assert set(test) == {f"{m}@{k}" for m in "RN" for k in (5, 10, 20)}
    # the printed table shows the recorded metrics
    assert [float(v) for v in recall.split()[1:]] == [round(test[f"R@{k}"], 4) for k in (5, 10, 20)]
    assert [float(v) for v in ndcg.split()[1:]] == [round(test[f"N@{k}"], 4) for k in (5, 10, 20)]
    assert all(0 <= v <= 1 for v in test.values()) and test["R@20"] >= test["R@10"] >= test["R@5"]
    assert record["best_valid"] == record["history"][record["best_epoch"] - 1]["valid"]


def test_train_any_registered_model(tmp_path, capsys):
    """`--model NAME` trains a registered model from its defaults; --set reaches its own config's fields."""
    out_json = tmp_path / "gru.json"
    assert cli.main(["train", *TINY, "--model", "gru4rec", "--epochs", "1", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "training gru4rec-AR on synthetic" in out and "stopped (max_epochs) after 1 epochs" in out
    record = json.loads(out_json.read_text())
    assert record["model"] == "gru4rec" and record["model_config"]["hidden"] == 16
    assert "norm_first" not in record["model_config"]  # GRU4Rec's config, not the paper model's
    assert cli.main(["train", *TINY, "--model", "gru4rec", "--set", "heads=2"]) == 1
    assert "--set: unknown key 'heads'" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--model", "sasrec"], "unknown model 'sasrec'; registered models: albert, gru4rec"),
    (["--model", "llama"], "--model llama needs --attention (AE or AR)"),
    (["--model", "gru4rec", "--preset", "vanilla-AR"], "--model gru4rec takes --attention"),
    (["--preset", "vanilla-AR", "--attention", "AR"], "the paper's model takes --preset"),
])
def test_model_and_preset_errors_name_the_bad_value(argv, message, capsys):
    assert cli.main(["train", "--dataset", "synthetic", *argv]) == 1
    assert message in capsys.readouterr().err


def test_checkpoint_resumes_and_refuses_another_configuration(tmp_path, capsys):
    ckpt = tmp_path / "run.pt"
    argv = ["train", *TINY, "--preset", "vanilla-AR", "--set", "max_epochs=7", "--epochs", "1",
            "--checkpoint", str(ckpt), "--json", str(tmp_path / "a.json")]
    assert cli.main(argv) == 0 and ckpt.exists()
    first = capsys.readouterr().out
    assert "epoch 1/1" in first, "--epochs must win over --set max_epochs"
    # the same command again: resumes after the finished epoch, trains nothing, same test metrics
    assert cli.main([*argv[:-1], str(tmp_path / "b.json")]) == 0
    second = capsys.readouterr().out
    assert f"resumed from {ckpt} after epoch 1" in second and "epoch 1/1" not in second
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    assert a["test"] == b["test"] and a["history"][0]["loss"] == b["history"][0]["loss"]
    # another configuration with the same checkpoint is refused
    assert cli.main([*argv, "--set", "lr=0.01"]) == 1
    assert "was written for a different configuration" in capsys.readouterr().err


def test_divergence_is_reported_not_raised(capsys):
    argv = ["train", *TINY, "--preset", "vanilla-AR", "--epochs", "3", "--set", "lr=1e30", "--set", "grad_clip=0"]
    assert cli.main(argv) == 1
    assert "training diverged" in capsys.readouterr().err


def test_sarbench_run_trains_a_study_model(tmp_path, capsys, monkeypatch):
    """`sarbench run --study local-AE` runs the attention study's Local-AE case (table analysis, a +-2 window
    on the last head), resumable like every other case."""
    import signal

    from sarbench.store import ResultStore

    monkeypatch.setattr(signal, "signal", lambda *args: None)  # cmd_run's SIGTERM handler stays out of pytest
    monkeypatch.delenv("SARBENCH_DATA", raising=False)
    assert cli.main(["run", "--dataset", "synthetic", "--study", "local-AE", "--scale", "smoke",
                     "--max-minutes", "0.001", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "synthetic local-AE seed 0: epoch    1" in out
    (record,) = ResultStore(tmp_path).records()
    assert (record.table, record.attention, record.variant) == ("analysis", "AE", "local")
    assert record.config["model"]["local_window"] == 2 and record.config["model"]["local_heads"] == 1
    assert cli.main(["run", "--dataset", "synthetic"]) == 2
    assert "needs --attention (or --study)" in capsys.readouterr().err
