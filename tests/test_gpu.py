"""The CUDA path: resume, precision, no host-device synchronisation in the loss, the plugin's GPU options.

Tests marked ``gpu`` need a CUDA device and are skipped unless pytest runs with ``--gpu``
(``gpu_check/gpu_check.sh`` runs them first: ``pytest tests -m gpu --gpu``). The others run everywhere:
they check on the CPU what can be checked there (a checkpoint shaped like a CUDA run's, precision
under autocast, the loss's sync-free path, the marker's skip and the time-cap option).
"""

from __future__ import annotations

import signal
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from sarbench import plugin
from sarbench.data import SyntheticConfig, make_synthetic
from sarbench.models.losses import chunked_cross_entropy, exact_underflowed_rows, sampled_loss
from sarbench.models.sar import SARConfig
from sarbench.train import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in tests/conftest.py
LOW_PRECISION = (torch.bfloat16, torch.float16)


@pytest.fixture(scope="module")
def split():
    return make_synthetic(SyntheticConfig(num_users=60, num_items=30, min_length=3, max_length=16, seed=5)).split()


def tiny(split, attention="AR", device="cpu", **train):
    mc = SARConfig(num_items=split.dataset.num_items, attention=attention, max_len=10, hidden=16, layers=1,
                   heads=2, dropout=0.2, attn_dropout=0.2, mask_prob=0.3)
    tc = TrainConfig(**{"batch_size": 16, "max_epochs": 3, "patience": 100, "progress": False,
                        "length_buckets": 2, "device": device, **train})
    return mc, tc


class DtypeRecorder(TorchDispatchMode):
    """Records the dtype of every floating-point tensor that any aten operation returns."""

    def __init__(self):
        super().__init__()
        self.dtypes: dict[torch.dtype, set[str]] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                self.dtypes.setdefault(t.dtype, set()).add(str(func))
        return out


def needs_cuda():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")


# --- resume from a checkpoint written by a CUDA run -----------------------------------------------


class Interrupted(Exception):
    pass


def save_as_cuda_would(monkeypatch, trainer_cls):
    """A Trainer subclass whose checkpoints are written as on a GPU: every tensor's storage tagged
    'cuda:0' (a CPU-only torch.load without map_location refuses them) and CUDA generator states."""

    class CudaShaped(trainer_cls):
        def state(self):
            st = super().state()
            st["cuda_rng"] = [torch.zeros(16, dtype=torch.uint8)]  # what get_rng_state_all() returns
            return st

        def save_checkpoint(self):
            with monkeypatch.context() as m:
                m.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
                super().save_checkpoint()

    return CudaShaped


def test_resume_from_a_cuda_shaped_checkpoint_equals_the_uninterrupted_run(split, tmp_path, monkeypatch):
    mc, tc = tiny(split, "AE", max_epochs=4)
    whole = Trainer(mc, tc, split).fit()

    class KilledAfterEpoch2(Trainer):
        def save_checkpoint(self):
            super().save_checkpoint()
            if self.epoch == 2:
                raise Interrupted

    ckpt = tmp_path / "cuda.pt"
    with pytest.raises(Interrupted):
        save_as_cuda_would(monkeypatch, KilledAfterEpoch2)(mc, tc, split, checkpoint=ckpt).fit()
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):  # the file really is shaped like a GPU run's
            torch.load(ckpt, weights_only=False)
    resumed = Trainer(mc, tc, split, checkpoint=ckpt)
    got = resumed.fit()
    assert [h["loss"] for h in got.history] == [h["loss"] for h in whole.history]
    assert got.test.metrics == whole.test.metrics


def test_checkpoint_writing_holds_back_sigint_and_sigterm(split, tmp_path, monkeypatch):
    """A signal between writing the checkpoint and renaming it would lose the epoch's checkpoint."""
    seen = []
    real_save = torch.save

    def save(obj, path):
        seen.append(signal.pthread_sigmask(signal.SIG_BLOCK, []))
        real_save(obj, path)

    monkeypatch.setattr(torch, "save", save)
    mc, tc = tiny(split, max_epochs=1)
    Trainer(mc, tc, split, checkpoint=tmp_path / "c.pt").fit()
    assert seen and all({signal.SIGINT, signal.SIGTERM} <= blocked for blocked in seen)
    assert not {signal.SIGINT, signal.SIGTERM} & signal.pthread_sigmask(signal.SIG_BLOCK, [])
    assert (tmp_path / "c.pt").exists() and not (tmp_path / "c.pt.tmp").exists()


# --- precision ------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("attention,loss", [("AR", "ce"), ("AE", "bce")])
def test_fp32_training_runs_no_low_precision_operation(split, device, attention, loss):
    if device == "cuda":
        needs_cuda()
    trainer = Trainer(*tiny(split, attention, device=device, loss=loss, max_epochs=1), split)
    with DtypeRecorder() as rec:
        trainer.train_epoch()
    assert torch.float32 in rec.dtypes
    assert not set(rec.dtypes) & set(LOW_PRECISION), {str(d): sorted(rec.dtypes[d])[:5] for d in LOW_PRECISION
                                                       if d in rec.dtypes}
    if device == "cuda":  # TF32 would be reduced precision too
        assert not torch.backends.cuda.matmul.allow_tf32
        assert torch.get_float32_matmul_precision() == "highest"


@pytest.mark.parametrize("hidden_dtype", [torch.float32, torch.bfloat16])  # what the trunk hands over
def test_cross_entropy_under_bf16_autocast_sums_in_fp32(hidden_dtype):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(300, 16, generator=g).requires_grad_()
    w = torch.randn(500, 16, generator=g).requires_grad_()
    b = torch.randn(500, generator=g).requires_grad_()
    t = torch.randint(0, 500, (300,), generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = chunked_cross_entropy(h.to(hidden_dtype), w, b, t, chunk=64)
    loss.backward()
    assert loss.dtype == torch.float32 and w.grad.dtype == torch.float32 and h.grad.dtype == torch.float32
    # The reference: the same bf16 logits (as an autocast linear layer makes them), softmax and mean in fp32.
    logits = (torch.cat([h, torch.ones(300, 1)], 1).bfloat16() @ torch.cat([w, b[:, None]], 1).bfloat16().T).float()
    ref = F.cross_entropy(logits, t)
    torch.testing.assert_close(loss.detach(), ref.detach(), rtol=1e-6, atol=1e-6)
    rounded = ref.detach().bfloat16().float()  # what a bf16 loss would have been
    assert rounded != ref.detach(), "the case should tell an fp32 sum from a bf16 one"


@pytest.mark.parametrize("kind", ["bpr", "bce"])
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_sampled_scores_stay_fp32_under_bf16_autocast(kind, device):
    if device == "cuda":
        needs_cuda()
    g = torch.Generator().manual_seed(1)
    h = torch.randn(64, 16, generator=g).to(device)
    w = torch.randn(40, 16, generator=g).to(device)
    b = torch.randn(40, generator=g).to(device)
    pos = torch.randint(1, 41, (64,), generator=g).to(device)
    neg = torch.randint(1, 41, (64, 5), generator=g).to(device)
    plain = sampled_loss(kind, h, w, b, pos, neg)
    with torch.autocast(device, dtype=torch.bfloat16):
        auto = sampled_loss(kind, h, w, b, pos, neg)
    assert auto.dtype == torch.float32
    assert torch.equal(auto, plain), f"{kind} scores ran in another precision under autocast: {auto} vs {plain}"


@pytest.mark.gpu
@pytest.mark.parametrize("attention,loss", [("AR", "ce"), ("AE", "bce")])
def test_bf16_training_on_cuda_uses_bf16_but_keeps_the_loss_fp32(split, attention, loss):
    needs_cuda()
    trainer = Trainer(*tiny(split, attention, device="cuda", loss=loss, precision="bf16", max_epochs=1), split)
    losses = []
    real = trainer._loss

    def recorded(*args):
        out = real(*args)
        losses.append(out.dtype)
        return out

    trainer._loss = recorded
    with DtypeRecorder() as rec:
        trainer.train_epoch()
    assert torch.bfloat16 in rec.dtypes, "precision='bf16' should run the model's products in bf16"
    assert losses and set(losses) == {torch.float32}


# --- no host-device synchronisation in the loss ---------------------------------------------------


def test_sync_free_underflow_fix_equals_the_host_checked_one():
    g = torch.Generator().manual_seed(3)
    logits = 300 * torch.randn(50, 20, generator=g)
    targets = torch.randint(0, 20, (50,), generator=g)
    rows = torch.arange(50)
    nll = -torch.log(torch.softmax(logits, 1)[rows, targets])
    assert not torch.isfinite(nll).all(), "the case should make some target probabilities underflow"
    host = exact_underflowed_rows(nll.clone(), logits, rows, targets, ask_host=True)
    device = exact_underflowed_rows(nll.clone(), logits, rows, targets, ask_host=False)
    assert torch.isfinite(device).all() and torch.equal(host, device)
    torch.testing.assert_close(device, F.cross_entropy(logits, targets, reduction="none"), rtol=1e-6, atol=1e-4)


@pytest.mark.gpu
def test_cross_entropy_on_cuda_never_waits_for_the_device():
    needs_cuda()
    g = torch.Generator().manual_seed(0)
    h = (30 * torch.randn(1000, 16, generator=g)).cuda().requires_grad_()  # some rows underflow
    w = torch.randn(700, 16, generator=g).cuda().requires_grad_()
    b = torch.randn(700, generator=g).cuda().requires_grad_()
    t = torch.randint(0, 700, (1000,), generator=g).cuda()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss = chunked_cross_entropy(h, w, b, t, chunk=128)
        loss.backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    ref_h, ref_w, ref_b = (x.detach().clone().requires_grad_() for x in (h, w, b))
    ref = F.cross_entropy(ref_h @ ref_w.T + ref_b, t)
    ref.backward()
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss.detach(), ref.detach(), rtol=1e-5, atol=1e-4)
    for ours, theirs in ((h, ref_h), (w, ref_w), (b, ref_b)):
        torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-4, atol=1e-5)


# --- resume on the GPU ----------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("attention", ["AR", "AE"])
def test_resume_on_cuda_continues_the_run(split, tmp_path, attention):
    needs_cuda()
    mc, tc = tiny(split, attention, device="cuda", max_epochs=3, deterministic=True)
    whole = Trainer(mc, tc, split).fit()

    class KilledAfterEpoch2(Trainer):
        def save_checkpoint(self):
            super().save_checkpoint()
            if self.epoch == 2:
                raise Interrupted

    with pytest.raises(Interrupted):
        KilledAfterEpoch2(mc, tc, split, checkpoint=tmp_path / "c.pt").fit()
    resumed = Trainer(mc, tc, split, checkpoint=tmp_path / "c.pt")
    got = resumed.fit()  # loads the checkpoint: generator states to the CPU, the rest where it belongs
    assert resumed.history[0]["epoch"] == 1 and got.epochs == 3
    assert next(resumed.model.parameters()).device.type == "cuda"
    # the same run up to the float noise of CUDA kernels (a wrong random state moves the loss by far more)
    assert [h["loss"] for h in got.history] == pytest.approx([h["loss"] for h in whole.history], rel=1e-4)


# --- the plugin's GPU options ---------------------------------------------------------------------


def fake_item(*markers):
    item = SimpleNamespace(keywords={m: True for m in markers}, added=[])
    item.add_marker = item.added.append
    return item


@pytest.mark.parametrize("gpu", [False, True])
def test_gpu_marked_tests_skip_without_the_gpu_option(gpu):
    config = SimpleNamespace(getoption=lambda name, default=None: gpu if name == "--gpu" else default)
    marked, plain = fake_item("gpu", "vanilla"), fake_item("vanilla")
    plugin.pytest_collection_modifyitems(config, [marked, plain])
    assert plain.added == []
    if gpu:
        assert marked.added == []
    else:
        (skip,) = marked.added
        assert skip.mark.name == "skip" and "--gpu" in skip.mark.kwargs["reason"]


def test_case_minutes_option():
    assert plugin._positive_minutes("4") == 4.0 and plugin._positive_minutes("0.25") == 0.25
    for bad in ("0", "-1", "nan", "inf", "four"):
        with pytest.raises(pytest.UsageError, match="--case-minutes"):
            plugin._positive_minutes(bad)


def test_epoch_log_lines(tmp_path):
    path = plugin.epoch_log_path(tmp_path, {"table": "vanilla", "dataset": "ml-1m", "design": "vanilla",
                                            "attention": "AR", "seed": 0})
    assert path == tmp_path / "logs" / "vanilla_ml-1m-vanilla-AR.s0.log"
    plugin.append_epoch_line(path, {"epoch": 1, "loss": 8.1, "epoch_time": 2.0, "wall_time": 2.5})
    plugin.append_epoch_line(path, {"epoch": 2, "loss": 7.9, "epoch_time": 2.0, "wall_time": 2.6,
                                    "valid": {"R@10": 0.1, "N@10": 0.05, "R@5": 0.01}})
    first, second = path.read_text().splitlines()
    assert first.endswith("epoch    1 loss 8.1000 train 2.00s all 2.50s")
    assert second.endswith("epoch    2 loss 7.9000 train 2.00s all 2.60s valid R@10 0.1000 N@10 0.0500")
