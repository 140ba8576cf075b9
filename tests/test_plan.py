"""sarbench plan: FLOPs counted on real batches, epochs from records, a timed calibration."""

from __future__ import annotations

import math

import pytest

from sarbench import cli
from sarbench.cases import DataCache, Scale
from sarbench.plan import CaseCost, expected_epochs, measure_case, plan_cases, render_plan, selected_cases
from sarbench.store import make_record

SCALE = Scale("paper", max_epochs=1000, patience=20)


@pytest.fixture(scope="module")
def data():
    return DataCache(None)


@pytest.mark.parametrize("attention", ["AE", "AR"])
def test_counted_flops_lie_between_the_output_layer_and_a_fully_padded_network(data, attention):
    """The softmax layer alone costs 6 x targets x d x items FLOPs per epoch (forward, and the two
    gradients); on top, each layer costs at most 3 x 2 x (12 d^2 + 2 L d) per token (projections, FFN of
    4d, scores and values) when every row is padded to the window L. The count lies between the two."""
    from sarbench.cases import configure
    from sarbench.train import targets_per_user, training_windows

    case = dict(table="vanilla", dataset="synthetic", design="vanilla", attention=attention, model="sar")
    cost = measure_case(case, data=data, scale=SCALE, calibrate=False)
    ds = data.get("synthetic", SCALE)
    model, train = configure("synthetic", "vanilla", attention, ds, SCALE, 0, "cpu")
    _, _, _, lengths = training_windows(ds.split().train, attention, model.max_len)
    targets = targets_per_user(lengths, attention, model.max_len, model.mask_prob).sum()
    d, L = model.hidden, model.max_len
    output = 6 * targets * d * ds.num_items
    network = 3 * 2 * len(lengths) * L * model.layers * (12 * d * d + 2 * L * d) + 3 * 2 * targets * d * d
    assert output < cost.flops_train <= output + network
    assert cost.flops_valid >= 2 * len(ds.split().eval_users) * model.hidden * ds.num_items
    assert math.isnan(cost.train_s) and cost.peak_bytes > 0


def test_calibration_times_real_steps(data):
    case = dict(table="vanilla", dataset="synthetic", design="vanilla", attention="AR", model="sar")
    cost = measure_case(case, data=data, scale=SCALE)
    assert 0 < cost.train_s < 600 and 0 < cost.valid_s < 600
    assert cost.total_s == pytest.approx(cost.epochs * (cost.train_s + cost.valid_s) + cost.valid_s)


def _rec(case_id, dataset, attention, epochs, seed=0):
    return make_record(case_id=case_id, table="vanilla", dataset=dataset, model="sar", attention=attention,
                       loss="ce", config={}, fingerprint="f" * 16, seed=seed, scale="paper", metrics={},
                       epochs=epochs)


def test_expected_epochs_come_from_the_case_then_the_dataset_then_an_assumption():
    history = [_rec("vanilla[video-AR-ce]", "video", "AR", 40), _rec("vanilla[video-AR-ce]", "video", "AR", 50, 1),
               _rec("vanilla[video-AE-ce]", "video", "AE", 70)]
    assert expected_epochs("vanilla[video-AR-ce]", "video", "AR", history, 20) == (45.0, "records (2)")
    assert expected_epochs("vanilla[video-gru4rec-AR-ce]", "video", "AR", history, 20) == (45.0, "dataset (2)")
    assert expected_epochs("vanilla[beauty-AR-ce]", "beauty", "AR", history, 20) == (60.0, "assumed")


def test_selection_and_table():
    cases = selected_cases("vanilla", "video,ml-1m", "gru4rec")
    assert [(c["dataset"], c["model"], c["attention"]) for c in cases] == [
        ("video", "sar", "AE"), ("video", "sar", "AR"), ("video", "gru4rec", "AR"),
        ("ml-1m", "sar", "AE"), ("ml-1m", "sar", "AR"), ("ml-1m", "gru4rec", "AR")]
    row = CaseCost("vanilla[video-AR-ce]", 1.5e12, 1e11, 45, "records (1)", 200 * 2**20, 50.0, 7.0)
    text = render_plan([row, row])
    assert "| vanilla[video-AR-ce] | 1.50 + 0.10 | 45 (records (1)) | 200 MiB | 50.0 + 7.0 | 0.71 | 0.71 |" in text
    assert "Total: 2 cases" in text and "1.43 h" in text


def test_a_case_validated_every_five_epochs_pays_for_its_validations_only():
    """Tables 5 and 6 validate every 5 epochs: 80 epochs pay 16 validations and the test, not 81."""
    every_epoch = CaseCost("vanilla[ml-1m-AR-ce]", 1e12, 1e11, 80, "records (1)", 1, 20.0, 5.0)
    every_five = CaseCost("hf[ml-1m-llama-AR-ce]", 1e12, 1e11, 80, "records (1)", 1, 20.0, 5.0, eval_every=5)
    assert every_epoch.total_s == 80 * 20.0 + 81 * 5.0
    assert every_five.total_s == 80 * 20.0 + 17 * 5.0 and every_five.epoch_s == 21.0
    assert every_five.run_s(81) == 81 * 20.0 + 18 * 5.0  # a started check counts


def test_the_command_prints_a_plan(capsys):
    assert cli.main(["plan", "--datasets", "synthetic", "--no-calibration"]) == 0
    out = capsys.readouterr().out
    assert "| vanilla[synthetic-AE-ce] |" in out and "| vanilla[synthetic-AR-ce] |" in out and "Total: 2 cases" in out


def test_side_by_side_calibration_times_beside_other_runs_and_stops_them(data):
    import multiprocessing

    case = dict(table="vanilla", dataset="synthetic", design="vanilla", attention="AR", model="sar")
    cost = measure_case(case, data=data, scale=SCALE, concurrent=2, budget_s=1.0)
    assert 0 < cost.train_s < 600 and 0 < cost.valid_s < 600
    assert multiprocessing.active_children() == []  # the process that trained beside it has ended
    text = render_plan([cost], concurrent=2)
    assert "timed 2 at once" in text
    with pytest.raises(ValueError, match="concurrent must be at least 1"):
        plan_cases([case], concurrent=0)
