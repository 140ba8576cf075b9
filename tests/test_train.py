"""The trainer: windows, batches, AE masking, SSE-PT, early stopping, divergence, seeds, resume; quality on synthetic.

Tiny models (hidden 16, one or two layers) on a tiny synthetic dataset; everything is CPU and exact.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from sarbench.baselines import MostPopular
from sarbench.data import SequenceDataset, SyntheticConfig, make_synthetic
from sarbench.evaluate import evaluate
from sarbench.models.sar import SARConfig
from sarbench.presets import preset
from sarbench.train import TrainConfig, Trainer, TrainingDiverged, batches, training_windows


pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in tests/conftest.py


@pytest.fixture(scope="module")
def split():
    ds = make_synthetic(SyntheticConfig(num_users=60, num_items=30, min_length=3, max_length=16, seed=5))
    return ds.split()


def tiny(split, attention="AR", model=None, **train) -> tuple[SARConfig, TrainConfig]:
    mc = SARConfig(num_items=split.dataset.num_items, attention=attention, max_len=10, hidden=16, layers=1,
                   heads=2, dropout=0.2, attn_dropout=0.2, mask_prob=0.3, **(model or {}))
    train = {"batch_size": 16, "max_epochs": 3, "patience": 100, "progress": False, "length_buckets": 2, **train}
    return mc, TrainConfig(**train)


def params(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def assert_same_params(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"parameter {k} differs"


def losses(result) -> list[float]:
    return [row["loss"] for row in result.history]


# --- training windows and batches ----------------------------------------------------------------

TOY = SequenceDataset.from_sequences("toy", [[1, 2, 3, 4, 5], [6, 7], [8], [1, 2, 3]], num_items=8)


def test_training_windows_ar():
    users, inputs, targets, lengths = training_windows(TOY, "AR", max_len=3)
    # the last max_len + 1 items, inputs s[:-1], targets s[1:]; user 2 (one item) has no target
    assert users.tolist() == [0, 1, 3]
    assert inputs.tolist() == [[2, 3, 4], [6, 0, 0], [1, 2, 0]]
    assert targets.tolist() == [[3, 4, 5], [7, 0, 0], [2, 3, 0]]
    assert lengths.tolist() == [3, 1, 2]


def test_training_windows_ae():
    users, inputs, targets, lengths = training_windows(TOY, "AE", max_len=3)
    # the last max_len items; masking happens per batch, so targets = inputs
    assert users.tolist() == [0, 1, 2, 3]
    assert inputs.tolist() == [[3, 4, 5], [6, 7, 0], [8, 0, 0], [1, 2, 3]]
    assert targets.tolist() == inputs.tolist()
    assert lengths.tolist() == [3, 2, 1, 3]


def test_training_windows_long_max_len_and_empty_user():
    ds = SequenceDataset.from_sequences("toy", [[4, 5, 6], [], [7, 8]], num_items=8)
    users, inputs, targets, lengths = training_windows(ds, "AR", max_len=5)
    assert users.tolist() == [0, 2]
    assert inputs.tolist() == [[4, 5, 0, 0, 0], [7, 0, 0, 0, 0]]
    assert targets.tolist() == [[5, 6, 0, 0, 0], [8, 0, 0, 0, 0]]
    users, inputs, _, lengths = training_windows(ds, "AE", max_len=5)
    assert users.tolist() == [0, 2] and lengths.tolist() == [3, 2]


@pytest.mark.parametrize("n,batch_size,buckets", [(100, 16, 0), (100, 16, 1), (100, 16, 4), (7, 16, 8), (64, 8, 3)])
def test_batches_cover_every_user_once(n, batch_size, buckets):
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 50, (n,), generator=torch.Generator().manual_seed(1))
    epochs = [batches(lengths, batch_size, buckets, g) for _ in range(3)]
    for epoch in epochs:
        assert torch.cat(epoch).sort().values.tolist() == list(range(n))
        sizes = sorted(len(b) for b in epoch)
        assert len(epoch) == -(-n // batch_size) and sizes[1:] == [batch_size] * (len(epoch) - 1)
    if n > batch_size:
        orders = [torch.cat(e).tolist() for e in epochs]
        assert orders[0] != orders[1] != orders[2], "every epoch should draw a new order"


def test_length_buckets_reduce_padding():
    lengths = torch.randint(1, 200, (2000,), generator=torch.Generator().manual_seed(0))

    def padding(buckets):
        bs = batches(lengths, 64, buckets, torch.Generator().manual_seed(0))
        return sum(int(lengths[b].max()) * len(b) - int(lengths[b].sum()) for b in bs)

    assert padding(8) < 0.3 * padding(0)


# --- AE masking and SSE-PT ----------------------------------------------------------------------


@pytest.mark.parametrize("mask_prob,max_len", [(0.2, 10), (0.5, 10), (0.3, 20)])
def test_ae_masks_exactly_k_real_positions(mask_prob, max_len):
    seqs = [list(range(1, n + 1)) for n in range(1, 2 * max_len)]  # every length, ids within 1..N
    ds = SequenceDataset.from_sequences("lengths", seqs, num_items=2 * max_len)
    mc = SARConfig(num_items=ds.num_items, attention="AE", max_len=max_len, hidden=16, layers=1, mask_prob=mask_prob)
    trainer = Trainer(mc, TrainConfig(batch_size=7, progress=False), ds.split())
    M = mc.mask_token
    for idx in batches(trainer.lengths_cpu, 7, 0, torch.Generator().manual_seed(0)):
        x, users, y = trainer._batch(idx)
        L = x.shape[1]
        original = trainer.inputs[idx, :L]
        n = trainer.lengths[idx]
        assert users is None and L == int(n.max())
        for row in range(len(idx)):
            length = int(n[row])
            k = min(int(max_len * mask_prob), max(1, round(length * mask_prob)))  # Python round: half to even
            masked = x[row] == M
            assert int(masked.sum()) == k, f"length {length}: {int(masked.sum())} masked, expected {k}"
            assert not masked[length:].any(), "padding was masked"
            assert torch.equal(y[row] != 0, masked), "loss positions must be exactly the masked ones"
            assert torch.equal(y[row][masked], original[row][masked])
            assert torch.equal(x[row][~masked], original[row][~masked])
    # masks are redrawn on every call
    idx = torch.arange(len(trainer.lengths_cpu))
    assert not torch.equal(trainer._batch(idx)[0], trainer._batch(idx)[0])


@pytest.mark.parametrize("attention", ["AR", "AE"])
def test_sse_pt_replaces_inputs_only_in_training(split, attention):
    mc, tc = tiny(split, attention, model=dict(num_users=split.dataset.num_users, sse_item_prob=0.5,
                                               sse_user_prob=0.5), loss="bce")
    trainer = Trainer(mc, tc, split)
    idx = torch.arange(len(trainer.users))
    L = int(trainer.lengths_cpu.max())
    original_x, original_y = trainer.inputs[:, :L], trainer.targets[:, :L]
    real = original_x != 0

    trainer.model.eval()
    for _ in range(3):
        x, users, y = trainer._batch(idx)
        assert torch.equal(users, trainer.users), "evaluation mode must not swap users"
        if attention == "AR":
            assert torch.equal(x, original_x) and torch.equal(y, original_y)
        else:  # only the [MASK] draw changes the input
            keep = x != mc.mask_token
            assert torch.equal(x[keep], original_x[keep])

    trainer.model.train()
    x, users, y = trainer._batch(idx)
    if attention == "AE":
        masked = x == mc.mask_token
        assert torch.equal(y != 0, masked) and torch.equal(y[masked], original_y[masked])
        swappable = real & ~masked
    else:
        assert torch.equal(y, original_y), "labels must never be replaced"
        swappable = real
    swapped = x != original_x
    assert not (swapped & ~real).any(), "padding was replaced"
    assert 0.3 < swapped[swappable].float().mean() < 0.7  # p = 0.5 (a replacement may draw the same item)
    assert (x[real] >= 1).all() and (x[real] <= mc.num_items + (attention == "AE")).all()
    user_swapped = (users != trainer.users).float().mean()
    assert 0.2 < user_swapped < 0.7 and users.min() >= 0 and users.max() < mc.num_users


# --- divergence ---------------------------------------------------------------------------------


def test_nan_loss_raises_training_diverged(split):
    class NaNOnThirdBatch(Trainer):
        calls = 0

        def _loss(self, x, users, y, idx=None):
            self.calls += 1
            loss = super()._loss(x, users, y, idx)
            return loss * float("nan") if self.calls == 3 else loss

    trainer = NaNOnThirdBatch(*tiny(split), split)
    with pytest.raises(TrainingDiverged, match=r"loss is nan at epoch 1, batch 3: training diverged"):
        trainer.fit()


def test_huge_learning_rate_diverges(split):
    mc, tc = tiny(split, lr=1e30, grad_clip=0.0, max_epochs=5)
    with pytest.raises(TrainingDiverged, match="diverged.*no metrics are reported"):
        Trainer(mc, tc, split).fit()


# --- early stopping -------------------------------------------------------------------------------


class ScriptedValidation(Trainer):
    """Validation metrics follow a script; the model state at each validation is kept for comparison."""

    script: list[float] = []

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.snapshots: dict[int, dict] = {}
        self.tested_params: dict | None = None

    def evaluate(self, stage):
        if stage == "valid":
            self.snapshots[self.epoch] = params(self)
            value = self.script[self.epoch - 1]
            return type("Fake", (), {"metrics": {"R@10": value, "N@10": value / 2}})()
        self.tested_params = params(self)
        return super().evaluate(stage)


def test_early_stopping_waits_patience_epochs_then_tests_best_state(split):
    mc, tc = tiny(split, max_epochs=20, patience=3)

    class Run(ScriptedValidation):
        # best at epoch 2; a tie (epoch 4) is no improvement; epoch 5 is the third bad epoch
        script = [0.1, 0.3, 0.2, 0.3, 0.25, 0.9, 0.9]

    trainer = Run(mc, tc, split)
    result = trainer.fit()
    assert result.stopped == "patience"
    assert result.epochs == 5 and len(result.history) == 5
    assert result.best_epoch == 2 and result.best_valid == {"R@10": 0.3, "N@10": 0.15}
    assert_same_params(trainer.tested_params, trainer.snapshots[2])
    with pytest.raises(AssertionError):
        assert_same_params(trainer.tested_params, trainer.snapshots[5])
    assert set(result.test.metrics) == {f"{m}@{k}" for m in "RN" for k in (5, 10, 20)}


def test_improvement_resets_patience_and_max_epochs_ends(split):
    mc, tc = tiny(split, max_epochs=6, patience=2)

    class Run(ScriptedValidation):
        script = [0.1, 0.05, 0.2, 0.1, 0.3, 0.2]  # never two bad epochs in a row

    trainer = Run(mc, tc, split)
    result = trainer.fit()
    assert result.stopped == "max_epochs" and result.epochs == 6 and result.best_epoch == 5
    assert_same_params(trainer.tested_params, trainer.snapshots[5])
    summary = result.summary()
    assert summary["best_epoch"] == 5 and summary["test"] == result.test.metrics


def test_eval_every_counts_skipped_epochs(split):
    mc, tc = tiny(split, max_epochs=12, patience=4, eval_every=2)

    class Run(ScriptedValidation):
        script = [0.0, 0.5, 0.0, 0.4, 0.0, 0.4, 0.0, 0.9]

    result = Run(mc, tc, split).fit()
    validated = [row["epoch"] for row in result.history if "valid" in row]
    assert validated == [2, 4, 6] and result.stopped == "patience" and result.best_epoch == 2


# --- seeds and resume -----------------------------------------------------------------------------


def test_same_seed_same_run_different_seed_different_run(split):
    mc, tc = tiny(split, "AE")
    a = Trainer(mc, tc, split)
    ra = a.fit()
    b = Trainer(mc, tc, split)
    rb = b.fit()
    assert losses(ra) == losses(rb)
    assert ra.test.metrics == rb.test.metrics and np.array_equal(ra.test.ranks, rb.test.ranks)
    assert_same_params(params(a), params(b))
    c = Trainer(mc, replace(tc, seed=1), split)
    rc = c.fit()
    assert losses(rc) != losses(ra)
    assert not np.array_equal(rc.test.ranks, ra.test.ranks)


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("attention,loss", [("AR", "ce"), ("AE", "ce"), ("AE", "bce")])
def test_resume_equals_uninterrupted_run(split, tmp_path, attention, loss):
    """Killed after epoch 2 of 4 and restarted from the checkpoint: the same run, bit for bit."""
    mc, tc = tiny(split, attention, loss=loss, max_epochs=4, eval_every=1)

    whole = Trainer(mc, tc, split, checkpoint=tmp_path / "whole.pt")
    expected = whole.fit()

    class KilledAfterEpoch2(Trainer):
        def save_checkpoint(self):
            super().save_checkpoint()
            if self.epoch == 2:
                raise Interrupted

    ckpt = tmp_path / "resumed.pt"
    with pytest.raises(Interrupted):
        KilledAfterEpoch2(mc, tc, split, checkpoint=ckpt).fit()
    torch.manual_seed(1234)  # whatever ran in between must not matter

    class Counting(Trainer):
        trained = 0

        def train_epoch(self):
            self.trained += 1
            return super().train_epoch()

    resumed = Counting(mc, tc, split, checkpoint=ckpt)
    got = resumed.fit()
    assert resumed.trained == 2, "the restart should train only the remaining epochs"
    assert got.epochs == expected.epochs == 4
    assert losses(got) == losses(expected)
    assert [r.get("valid") for r in got.history] == [r.get("valid") for r in expected.history]
    assert got.best_epoch == expected.best_epoch
    assert got.test.metrics == expected.test.metrics and np.array_equal(got.test.ranks, expected.test.ranks)
    assert_same_params(params(resumed), params(whole))


def test_checkpoint_of_another_configuration_is_refused(split, tmp_path):
    mc, tc = tiny(split, max_epochs=1)
    Trainer(mc, tc, split, checkpoint=tmp_path / "c.pt").fit()
    other = Trainer(mc, replace(tc, lr=5e-4), split, checkpoint=tmp_path / "c.pt")
    with pytest.raises(ValueError, match="c.pt was written for a different configuration"):
        other.fit()
    # a finished checkpoint resumes straight to the test
    again = Trainer(mc, tc, split, checkpoint=tmp_path / "c.pt")
    assert again.load_checkpoint() and again.epoch == 1


# --- quality on the default synthetic dataset ----------------------------------------------------

# Measured on the default synthetic data (MostPopular test N@10 0.094): AR passes 3x after about 6 epochs,
# AE, which must first learn to attend to the [MASK]'s neighbours, after about 20. About 30 CPU-seconds per
# 10 epochs on one thread.
QUALITY_EPOCHS = {"vanilla-AR": 8, "vanilla-AE": 24}


def test_vanilla_presets_beat_most_popular_on_synthetic():
    """Both vanilla presets, briefly trained, reach >= 3x MostPopular's test NDCG@10 on the default synthetic data."""
    ds = make_synthetic()
    sp = ds.split()
    popular = evaluate(MostPopular(sp.train), sp, stage="test").metrics["N@10"]
    report = {}
    for name, epochs in QUALITY_EPOCHS.items():
        mc, tc = preset(name, "synthetic", ds.num_items, ds.num_users)
        tc = replace(tc, max_epochs=epochs, eval_every=epochs, progress=False)
        t0 = time.perf_counter()
        result = Trainer(mc, tc, sp).fit()
        report[name] = (result.test.metrics["N@10"], time.perf_counter() - t0)
    for name, (ndcg, seconds) in report.items():
        assert ndcg >= 3 * popular, (
            f"{name}: test N@10 {ndcg:.4f} after {QUALITY_EPOCHS[name]} epochs ({seconds:.0f}s) is below "
            f"3 x MostPopular's {popular:.4f}; all: {report}"
        )
