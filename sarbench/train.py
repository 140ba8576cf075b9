"""Training: one sequence per user per epoch, tensors on the device, early stopping on validation.

The data path is built for speed: every user's training window is prepared once as a (users, L)
tensor on the training device; a batch is an index into it, trimmed to its longest sequence. AE
masking, SSE-PT replacement and negative sampling are drawn on the device. There is no per-sample
Python in the loop. Optionally users are grouped by length (``length_buckets``): batches are cut
from length-sorted pools of several batches, which removes most padding while batch order and pool
membership stay random every epoch.

**The objective is the authors' either way.** With random batches the loss is the mean over the
batch's targets (the authors' code). Length grouping would change that objective if it kept the
per-batch mean: a batch of short users would weigh as much as a batch of long ones (on ml-1m the
shortest quarter of users would get ~25% of the gradient weight instead of ~6.5%). So with
``length_buckets`` > 1 the loss of a batch is the *sum* over its targets divided by the epoch's mean
number of targets per batch, a constant: every target weighs the same, as it does (in expectation)
under random batches. ``target_weights`` (objective.py) computes both schemes; a test compares them.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .data import Split
from .evaluate import EvalResult, evaluate
from .config import Attention, SARConfig, TrainConfig, training_fields
from .models.losses import chunked_cross_entropy, sample_negatives, sampled_loss
from .models.interface import build_model
from .objective import mask_counts, mask_positions, sequence_targets, target_weights, targets_per_user, training_windows  # noqa: F401
from .optim import BertAdamW
from .process import release_freed_memory, reuse_freed_memory, signals_deferred  # noqa: F401  (re-exported)
from .keys import identity_config

log = logging.getLogger(__name__)


# Why training ended. "patience": the early stop; "max_epochs": the epoch limit; "time": the wall-time
# cap (max_minutes); "interrupted": a signal or Ctrl-C stopped it (only where the caller asked fit()
# to catch it). The last two are unfinished: their checkpoint is kept and a later run resumes them.
STOPPED = ("patience", "max_epochs", "time", "interrupted")
UNFINISHED = ("time", "interrupted")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; metrics from such a run would be garbage."""


# --- batches ------------------------------------------------------------------------------------
def batches(lengths: torch.Tensor, batch_size: int, buckets: int, generator: torch.Generator):
    """Index batches for one epoch; with ``buckets`` > 1, users of similar length share a batch."""
    n = len(lengths)
    perm = torch.randperm(n, generator=generator, device="cpu")
    if buckets > 1:
        pool = batch_size * buckets
        parts = []
        for s in range(0, n, pool):
            chunk = perm[s : s + pool]
            parts.append(chunk[torch.argsort(lengths[chunk], stable=True)])
        perm = torch.cat(parts)
    out = list(perm.split(batch_size))
    order = torch.randperm(len(out), generator=generator, device="cpu")
    return [out[i] for i in order]


# --- the trainer -----------------------------------------------------------------------------
@dataclass
class TrainResult:
    model_config: SARConfig  # or another registered model's config
    train_config: TrainConfig
    best_epoch: int
    epochs: int
    best_valid: dict
    test: EvalResult | None
    history: list = field(default_factory=list)
    wall_time: float = 0.0
    stopped: str = ""  # why training ended: see STOPPED

    def summary(self) -> dict:
        return {
            "best_epoch": self.best_epoch,
            "epochs": self.epochs,
            "stopped": self.stopped,
            "wall_time": self.wall_time,
            "best_valid": self.best_valid,
            "test": self.test.metrics if self.test else None,
        }


def _param_groups(model, weight_decay, decay_all: bool = False):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if not decay_all and (p.ndim < 2 or "norm" in name or "bias" in name) else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class Trainer:
    """Trains one model on one split. ``fit()`` runs to early stopping and tests the best state."""

    def __init__(self, model_cfg: SARConfig, cfg: TrainConfig, split: Split,
                 checkpoint: str | os.PathLike | None = None):
        self.model_cfg, self.cfg, self.split = model_cfg, cfg, split
        self.device = torch.device(cfg.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' requested but no CUDA device is available")
        self.checkpoint = Path(checkpoint) if checkpoint else None
        if self.device.type == "cpu":
            reuse_freed_memory()
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.fields = training_fields(model_cfg)  # what the trainer reads of any model's config
        self.model = build_model(model_cfg).to(self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.batch_generator = torch.Generator().manual_seed(cfg.seed + 1)
        groups = _param_groups(self.model, cfg.weight_decay, cfg.decay_all)
        if cfg.optimizer == "bert_adamw":
            self.optimizer = BertAdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
        elif cfg.optimizer == "adamw":
            self.optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas,
                                               eps=cfg.eps)
        else:
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                                              weight_decay=cfg.weight_decay)
        f = self.fields
        users, inputs, targets, lengths = training_windows(split.train, f.attention, f.max_len)
        self.users = torch.as_tensor(users, device=self.device)
        self.inputs = torch.as_tensor(inputs, device=self.device)
        self.targets = torch.as_tensor(targets, device=self.device)
        self.lengths = torch.as_tensor(lengths, device=self.device)
        self.lengths_cpu = torch.as_tensor(lengths)
        # negatives="user": each window's user's whole-sequence targets, for the exclusion (objective.py)
        self.user_targets = (torch.as_tensor(sequence_targets(split.train, users), device=self.device)
                             if cfg.negatives == "user" and cfg.loss != "ce" else None)
        # The length-grouped objective divides each batch's summed loss by this constant (module doc).
        n_batches = math.ceil(len(lengths) / cfg.batch_size)
        targets = targets_per_user(lengths, f.attention, f.max_len, f.mask_prob)
        self.loss_denominator = float(targets.sum()) / n_batches if cfg.length_buckets > 1 else None
        self.eval_users = None
        if cfg.eval_users and cfg.eval_users < len(split.eval_users):
            rng = np.random.default_rng(cfg.seed)
            self.eval_users = np.sort(rng.choice(len(split.eval_users), cfg.eval_users, replace=False))
        self.epoch = 0
        self.best_metric = -math.inf
        self.best_epoch = 0
        self.best_state = None
        self.bad_epochs = 0
        self.history: list[dict] = []

    # --- one batch -----------------------------------------------------------------------------
    def _batch(self, idx):
        """Inputs, users and (positions, target items) for one batch, drawn on the device."""
        mc = self.fields
        L = int(self.lengths_cpu[idx].max())
        idx = idx.to(self.device)
        x = self.inputs[idx, :L]
        y = self.targets[idx, :L]
        users = self.users[idx] if mc.num_users else None
        real = x != 0
        if mc.attention == Attention.AE:
            # Mask exactly k random real positions (objective.py).
            masked = mask_positions(real, mask_counts(self.lengths[idx], mc.max_len, mc.mask_prob), self.generator)
            x = x.masked_fill(masked, mc.mask_token)
            y = y * masked  # loss only where masked
        if mc.num_users and self.model.training:
            # SSE-PT: replace input items / the user by random ones, training inputs only (never labels).
            if mc.sse_item_prob > 0:
                swap = (torch.rand(x.shape, generator=self.generator, device=self.device) < mc.sse_item_prob)
                swap &= real & (x != mc.mask_token)
                rnd = torch.randint(1, mc.num_items + 1, x.shape, generator=self.generator, device=self.device)
                x = torch.where(swap, rnd, x)
            if mc.sse_user_prob > 0:
                swap = torch.rand(users.shape, generator=self.generator, device=self.device) < mc.sse_user_prob
                rnd = torch.randint(0, mc.num_users, users.shape, generator=self.generator, device=self.device)
                users = torch.where(swap, rnd, users)
        return x, users, y

    def _loss(self, x, users, y, idx=None):
        h = self.model.hidden_states(x, users)
        sel = y != 0
        hs = self.model.output_hidden(h[sel])  # only positions with a target
        pos = y[sel]
        w, b = self.model.output_weights()
        denominator = self.loss_denominator  # None: the mean over this batch's targets
        if self.cfg.loss == "ce":
            return chunked_cross_entropy(hs, w, b, pos - 1, denominator=denominator)
        rows = sel.nonzero()[:, 0]
        if self.cfg.negatives in ("sequence", "user"):  # exclude every target of the window / the user's sequence
            seen = y if self.cfg.negatives == "sequence" else self.user_targets[idx.to(self.device)]
            neg = sample_negatives(pos, self.fields.num_items, self.cfg.num_negatives, generator=self.generator,
                                   exclude=(seen, rows))
        else:
            neg = sample_negatives(pos, self.fields.num_items, self.cfg.num_negatives, generator=self.generator)
        offset = self.model.logit_offset(h[sel], users[rows]) if users is not None else None  # SSE-PT's user term
        acc = torch.promote_types(hs.dtype, torch.float32)  # bf16 states: the loss in fp32
        return sampled_loss(self.cfg.loss, hs.to(acc), w.to(acc), None if b is None else b.to(acc), pos, neg,
                            denominator=denominator, offset=None if offset is None else offset.to(acc))

    def train_step(self, idx: torch.Tensor) -> torch.Tensor:
        """One optimiser step on the users ``idx`` (a batch of :func:`batches`); returns its loss, detached.

        The model's mode is the caller's (training: ``model.train()``, as :meth:`train_epoch` sets
        it). The loss stays on the device: reading it is the caller's choice of synchronisation.
        """
        x, users, y = self._batch(idx)
        autocast = self.device.type == "cuda" and self.cfg.precision == "bf16"
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            loss = self._loss(x, users, y, idx)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        return loss.detach()

    def train_epoch(self) -> float:
        """One epoch over all users; returns the mean loss per user.

        The loss total and the divergence check stay on the device until the epoch ends (no
        host-device synchronisation per batch): a non-finite loss raises :class:`TrainingDiverged`
        after the epoch, naming the epoch and its first non-finite batch. The epoch is lost either
        way, and its checkpoint is never written.
        """
        cfg = self.cfg
        self.model.train()
        count = 0
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        first_bad = torch.full((), -1, dtype=torch.long, device=self.device)  # batch index, -1 = none yet
        bad_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        for i, idx in enumerate(batches(self.lengths_cpu, cfg.batch_size, cfg.length_buckets, self.batch_generator)):
            value = self.train_step(idx).double()
            first = torch.logical_not(torch.isfinite(value)) & (first_bad < 0)
            first_bad = torch.where(first, i, first_bad)
            bad_loss = torch.where(first, value, bad_loss)
            total += value * len(idx)
            count += len(idx)
        bad = int(first_bad)  # the epoch's one wait for the device
        if bad >= 0:
            raise TrainingDiverged(
                f"loss is {bad_loss.item()} at epoch {self.epoch + 1}, batch {bad + 1}: training diverged "
                f"(try a lower lr or check the data); no metrics are reported for this run"
            )
        return total.item() / max(count, 1)

    def evaluate(self, stage: str) -> EvalResult:
        self.model.eval()
        # validation: the early-stopping rule only; test: that rule first, then the other of the two
        rules = (self.cfg.exclusion, *(r for r in ("input", "history") if r != self.cfg.exclusion))
        return evaluate(
            self.model, self.split, stage=stage, ks=self.cfg.ks, exclude=rules[0] if stage == "valid" else rules,
            max_len=self.fields.max_len, device=str(self.device), users=self.eval_users,
        )

    # --- checkpoints -----------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "batch_generator": self.batch_generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
            "epoch": self.epoch,
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
            "bad_epochs": self.bad_epochs,
            "history": self.history,
            "model_config": asdict(self.model_cfg),
            "train_config": asdict(self.cfg),
        }

    def save_checkpoint(self):
        if self.checkpoint is None:
            return
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        # one temporary name per process: two processes training the same case never rename each other's
        tmp = self.checkpoint.with_name(f"{self.checkpoint.name}.{os.getpid()}.tmp")
        with signals_deferred():  # Ctrl-C or SIGTERM now would leave the epoch without its checkpoint
            torch.save(self.state(), tmp)
            os.replace(tmp, self.checkpoint)  # atomic: a kill never leaves a half-written checkpoint

    def load_checkpoint(self, path: str | os.PathLike | None = None) -> bool:
        """Continue from the state saved at ``path`` (default: this trainer's checkpoint), when it exists.

        A search trial passes the state its scheduler kept (``state()`` saved by the trial); the
        trainer's own checkpoint is left as it is.
        """
        path = Path(path) if path is not None else self.checkpoint
        if path is None or not path.exists():
            return False
        # Load to CPU: random-generator states must stay CPU tensors (Generator.set_state takes no
        # other), and load_state_dict moves model and optimiser tensors to where their parameters are.
        st = torch.load(path, map_location="cpu", weights_only=False)
        # The same run: equal configurations up to run controls and options added since at their neutral value.
        saved = identity_config({"model": st["model_config"], "train": st["train_config"]})
        if saved != identity_config({"model": asdict(self.model_cfg), "train": asdict(self.cfg)}):
            raise ValueError(f"checkpoint {path} was written for a different configuration")
        self.model.load_state_dict(st["model"])
        self.optimizer.load_state_dict(st["optimizer"])
        self.generator.set_state(st["generator"])
        self.batch_generator.set_state(st["batch_generator"])
        torch.set_rng_state(st["torch_rng"])
        if st["cuda_rng"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(st["cuda_rng"])
        for key in ("epoch", "best_metric", "best_epoch", "best_state", "bad_epochs", "history"):
            setattr(self, key, st[key])
        log.info("resumed from %s at epoch %d", path, self.epoch)
        return True

    # --- the loop ----------------------------------------------------------------------------------
    def fit(self, resume: bool = True, on_epoch=None, catch_interrupt: bool = False) -> TrainResult:
        """Train to the early stop (or max_epochs, or max_minutes of this process), then test the best state.

        Args:
            resume: continue from the checkpoint when there is one.
            on_epoch: called with each epoch's history row (epoch, loss, times, valid metrics) after
                the epoch's checkpoint is written.
            catch_interrupt: a KeyboardInterrupt (Ctrl-C, or a signal the caller turned into one)
                ends training like an early stop, with ``stopped="interrupted"``: the best state is
                tested and returned, and the checkpoint of the last whole epoch is kept for a resume.
                Off by default, so that pytest's Ctrl-C still ends a whole run.
        """
        cfg = self.cfg
        if not (resume and self.load_checkpoint()) and self.epoch == 0:
            # Reseed here, not only in __init__: dropout draws from the global generator, and other
            # trainers built in between must not change this run.
            torch.manual_seed(cfg.seed)
        start = time.perf_counter()
        elapsed_before = sum(h["wall_time"] for h in self.history)
        stopped = "max_epochs"
        bar = None
        if cfg.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.max_epochs, initial=self.epoch, desc=f"{self.fields.attention} train",
                       unit="epoch", leave=False)
        try:
            if self.bad_epochs >= cfg.patience:  # a resumed run that had already stopped early
                stopped = "patience"
            while self.epoch < cfg.max_epochs and stopped != "patience":
                row = self.run_epoch()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{row['loss']:.4f}", **{cfg.metric: f"{self.best_metric:.4f}"})
                if on_epoch is not None:
                    on_epoch(row)
                if self.bad_epochs >= cfg.patience:
                    stopped = "patience"
                elif cfg.max_minutes and time.perf_counter() - start > cfg.max_minutes * 60:
                    stopped = "time"
                    break
        except KeyboardInterrupt:
            if not catch_interrupt:
                raise
            stopped = "interrupted"
            log.warning("interrupted after epoch %d; testing the best state (epoch %d)", self.epoch, self.best_epoch)
        finally:
            if bar is not None:
                bar.close()
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        test = self.evaluate("test")
        best_valid = next((h["valid"] for h in self.history if h["epoch"] == self.best_epoch), {})
        return TrainResult(
            model_config=self.model_cfg, train_config=cfg, best_epoch=self.best_epoch, epochs=self.epoch,
            best_valid=best_valid, test=test, history=self.history,
            wall_time=elapsed_before + time.perf_counter() - start, stopped=stopped,
        )

    def run_epoch(self) -> dict:
        """One training epoch, its validation when due, and the checkpoint; returns the history row."""
        cfg = self.cfg
        t0, c0 = time.perf_counter(), time.process_time()
        loss = self.train_epoch()
        self.epoch += 1
        row = {"epoch": self.epoch, "loss": loss, "epoch_time": time.perf_counter() - t0}
        if self.epoch % cfg.eval_every == 0 or self.epoch == cfg.max_epochs:
            valid = self.evaluate("valid").metrics
            row["valid"] = valid
            if valid[cfg.metric] > self.best_metric:
                self.best_metric, self.best_epoch, self.bad_epochs = valid[cfg.metric], self.epoch, 0
                self.best_state = copy.deepcopy(self.model.state_dict())
            else:
                self.bad_epochs += cfg.eval_every
        if self.device.type == "cpu":
            release_freed_memory()
        row["wall_time"] = time.perf_counter() - t0
        # CPU time of this process's threads: unlike wall time, not inflated by other processes on the cores
        row["cpu_time"] = time.process_time() - c0
        self.history.append(row)
        log.info("epoch %d loss %.4f time %.1fs %s", self.epoch, loss, row["epoch_time"], row.get("valid", ""))
        self.save_checkpoint()
        return row


def train(model_cfg: SARConfig, cfg: TrainConfig, split: Split, checkpoint=None) -> TrainResult:
    """Train a model to early stopping and test its best validation state."""
    return Trainer(model_cfg, cfg, split, checkpoint).fit()
