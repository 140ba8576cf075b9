"""Training: one sequence per user per epoch, tensors on the device, early stopping on validation.

The data path is built for speed: every user's training window is prepared once as a (users, L)
tensor on the training device; a batch is an index into it, trimmed to its longest sequence. AE
masking, SSE-PT replacement and negative sampling are drawn on the device. There is no per-sample
Python in the loop. Optionally users are grouped by length (``length_buckets``): batches are cut
from length-sorted pools of several batches, which removes most padding while batch order and pool
membership stay random every epoch.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .data import SequenceDataset, Split
from .evaluate import EvalResult, evaluate
from .models.losses import chunked_cross_entropy, sample_negatives, sampled_loss
from .models.sar import SARConfig, SelfAttentiveRecommender

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    loss: str = "ce"  # "ce" over all items, or "bpr" / "bce" with sampled negatives
    num_negatives: int = 1  # negatives per positive for bpr / bce
    optimizer: str = "adamw"  # "adamw" (decoupled decay, none on biases/norms) or "adam" (L2 decay)
    lr: float = 1e-3
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 5.0  # max gradient norm; 0 = off
    batch_size: int = 256
    max_epochs: int = 1000
    eval_every: int = 1  # validate every N epochs
    patience: int = 20  # stop after this many epochs without a better validation metric (paper: 20)
    metric: str = "R@10"  # validation metric for early stopping
    ks: tuple[int, ...] = (5, 10, 20)
    exclude_history: bool = True  # evaluation excludes the user's history items (as the paper)
    eval_users: int = 0  # > 0: validate and test on this many users only (smoke runs)
    length_buckets: int = 8  # pool size in batches for length grouping; 0 or 1 = plain random batches
    seed: int = 0
    deterministic: bool = False
    device: str = "cpu"
    bf16: bool = True  # autocast to bfloat16 on CUDA (ignored on CPU)
    progress: bool = True
    max_minutes: float = 0.0  # > 0: stop training after this much wall time (then test the best state)

    def __post_init__(self):
        if self.loss not in ("ce", "bpr", "bce"):
            raise ValueError(f"loss must be 'ce', 'bpr' or 'bce', got {self.loss!r}")
        if self.optimizer not in ("adam", "adamw"):
            raise ValueError(f"optimizer must be 'adam' or 'adamw', got {self.optimizer!r}")


@functools.lru_cache(maxsize=None)
def _libc():
    """glibc, loaded once (find_library runs ldconfig); None where there is no mallopt/malloc_trim."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc if libc is not None and hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def reuse_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of returning it to the system.

    A training step allocates and frees tens of tensors of 10-50 MB (batch x L x L attention, batch
    x L x 4d feed-forward). By default glibc serves the larger ones from fresh pages (mmap) and
    returns them on free, so each allocation pays thousands of page faults: on one thread, 15-17 s
    of system time per ml-1m epoch. Here blocks up to 32 MB (glibc's maximum) come from the heap,
    and freed heap memory is kept (up to 1 GB above the top) for the next batch: 2.6-3.3 s.
    Larger blocks still use mmap, which keeps the heap from fragmenting (with mmap switched off
    entirely, an ml-1m run's resident memory crept from 2 to 6 GB over 20 epochs). ``Trainer``
    applies this on CPU and calls ``release_freed_memory`` after every epoch. Process-wide, like
    ``torch.set_num_threads``. Returns False where it does not apply (not glibc).
    """
    global _MALLOC_TUNED
    if not _MALLOC_TUNED:
        libc = _libc()
        if libc is None:
            return False
        M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
        _MALLOC_TUNED = all(libc.mallopt(option, value) for option, value in
                            ((M_MMAP_THRESHOLD, 32 << 20), (M_TRIM_THRESHOLD, 1 << 30), (M_TOP_PAD, 256 << 20)))
    return _MALLOC_TUNED


def release_freed_memory() -> None:
    """Return free heap pages to the system (glibc ``malloc_trim``); a no-op elsewhere."""
    if _MALLOC_TUNED:
        _libc().malloc_trim(0)


_MALLOC_TUNED = False


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; metrics from such a run would be garbage."""


# --- training windows --------------------------------------------------------------------------
def training_windows(train: SequenceDataset, attention: str, max_len: int):
    """Each user's training window as (users, inputs, targets, lengths) numpy arrays.

    AR: inputs s[:-1], targets s[1:], over the last max_len + 1 items of the training sequence.
    AE: the last max_len items (inputs = targets; masking is drawn per batch).
    Left-aligned, zero padded to max_len. Users without a target (AR: fewer than 2 items) are left out.
    """
    lengths = train.lengths
    ends = train.offsets[1:]
    span = max_len + 1 if attention == "AR" else max_len
    m = np.minimum(lengths, span)
    n_in = m - 1 if attention == "AR" else m
    keep = n_in >= 1
    users = np.nonzero(keep)[0]
    pos = np.arange(max_len)[None, :]
    start = (ends - m)[keep][:, None]
    valid = pos < n_in[keep][:, None]
    items = np.concatenate([train.items, [0]])  # sentinel for masked-out gathers
    idx = np.where(valid, start + pos, len(items) - 1)
    inputs = items[idx]
    if attention == "AR":
        targets = items[np.where(valid, idx + 1, len(items) - 1)]
    else:
        targets = inputs.copy()
    return users, inputs, targets, n_in[keep]


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
    model_config: SARConfig
    train_config: TrainConfig
    best_epoch: int
    epochs: int
    best_valid: dict
    test: EvalResult | None
    history: list = field(default_factory=list)
    wall_time: float = 0.0
    stopped: str = ""  # why training ended: "patience", "max_epochs", "time"

    def summary(self) -> dict:
        return {
            "best_epoch": self.best_epoch,
            "epochs": self.epochs,
            "stopped": self.stopped,
            "wall_time": self.wall_time,
            "best_valid": self.best_valid,
            "test": self.test.metrics if self.test else None,
        }


def _param_groups(model, weight_decay):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "norm" in name or "bias" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class Trainer:
    """Trains one model on one split. ``fit()`` runs to early stopping and tests the best state."""

    def __init__(self, model_cfg: SARConfig, cfg: TrainConfig, split: Split, checkpoint: str | os.PathLike | None = None):
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
        self.model = SelfAttentiveRecommender(model_cfg).to(self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.batch_generator = torch.Generator().manual_seed(cfg.seed + 1)
        if cfg.optimizer == "adamw":
            self.optimizer = torch.optim.AdamW(_param_groups(self.model, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas)
        else:
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=cfg.betas,
                                              weight_decay=cfg.weight_decay)
        users, inputs, targets, lengths = training_windows(split.train, model_cfg.attention, model_cfg.max_len)
        self.users = torch.as_tensor(users, device=self.device)
        self.inputs = torch.as_tensor(inputs, device=self.device)
        self.targets = torch.as_tensor(targets, device=self.device)
        self.lengths = torch.as_tensor(lengths, device=self.device)
        self.lengths_cpu = torch.as_tensor(lengths)
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
        mc = self.model_cfg
        L = int(self.lengths_cpu[idx].max())
        idx = idx.to(self.device)
        x = self.inputs[idx, :L]
        y = self.targets[idx, :L]
        users = self.users[idx] if mc.num_users else None
        real = x != 0
        if mc.attention == "AE":
            # Mask exactly k = min(int(max_len * p), max(1, round(len * p))) random real positions.
            n = self.lengths[idx]
            k = torch.clamp(torch.round(n.double() * mc.mask_prob).long(), min=1)
            k = torch.clamp(k, max=int(mc.max_len * mc.mask_prob))
            k = torch.maximum(k, torch.ones_like(k))
            noise = torch.rand(x.shape, generator=self.generator, device=self.device)
            noise = noise.masked_fill(~real, 2.0)
            rank = noise.argsort(dim=1).argsort(dim=1)
            masked = rank < k[:, None]
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

    def _loss(self, x, users, y):
        h = self.model.hidden_states(x, users)
        sel = y != 0
        hs = self.model.output_hidden(h[sel])  # only positions with a target
        pos = y[sel]
        w, b = self.model.output_weights()
        if self.cfg.loss == "ce":
            return chunked_cross_entropy(hs, w, b, pos - 1)
        neg = sample_negatives(pos, self.model_cfg.num_items, self.cfg.num_negatives, generator=self.generator)
        return sampled_loss(self.cfg.loss, hs.float(), w.float(), None if b is None else b.float(), pos, neg)

    def train_epoch(self) -> float:
        cfg = self.cfg
        self.model.train()
        total, count = 0.0, 0
        autocast = self.device.type == "cuda" and cfg.bf16
        for i, idx in enumerate(batches(self.lengths_cpu, cfg.batch_size, cfg.length_buckets, self.batch_generator)):
            x, users, y = self._batch(idx)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                loss = self._loss(x, users, y)
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"loss is {loss.item()} at epoch {self.epoch + 1}, batch {i + 1}: training diverged "
                    f"(try a lower lr or check the data); no metrics are reported for this run"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            total += loss.item() * len(idx)
            count += len(idx)
        return total / max(count, 1)

    def evaluate(self, stage: str) -> EvalResult:
        self.model.eval()
        return evaluate(
            self.model, self.split, stage=stage, ks=self.cfg.ks, exclude_history=self.cfg.exclude_history,
            max_len=self.model_cfg.max_len, device=str(self.device), users=self.eval_users,
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
        tmp = self.checkpoint.with_name(self.checkpoint.name + ".tmp")
        torch.save(self.state(), tmp)
        os.replace(tmp, self.checkpoint)  # atomic: a kill never leaves a half-written checkpoint

    def load_checkpoint(self) -> bool:
        if self.checkpoint is None or not self.checkpoint.exists():
            return False
        st = torch.load(self.checkpoint, map_location=self.device, weights_only=False)
        if st["model_config"] != asdict(self.model_cfg) or st["train_config"] != asdict(self.cfg):
            raise ValueError(f"checkpoint {self.checkpoint} was written for a different configuration")
        self.model.load_state_dict(st["model"])
        self.optimizer.load_state_dict(st["optimizer"])
        self.generator.set_state(st["generator"])
        self.batch_generator.set_state(st["batch_generator"])
        torch.set_rng_state(st["torch_rng"])
        if st["cuda_rng"] is not None:
            torch.cuda.set_rng_state_all(st["cuda_rng"])
        for key in ("epoch", "best_metric", "best_epoch", "best_state", "bad_epochs", "history"):
            setattr(self, key, st[key])
        log.info("resumed from %s at epoch %d", self.checkpoint, self.epoch)
        return True

    # --- the loop ----------------------------------------------------------------------------------
    def fit(self, resume: bool = True) -> TrainResult:
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

            bar = tqdm(total=cfg.max_epochs, initial=self.epoch, desc=f"{self.model_cfg.attention} train",
                       unit="epoch", leave=False)
        while self.epoch < cfg.max_epochs:
            t0 = time.perf_counter()
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
            self.history.append(row)
            log.info("epoch %d loss %.4f time %.1fs %s", self.epoch, loss, row["epoch_time"], row.get("valid", ""))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}", **{cfg.metric: f"{self.best_metric:.4f}"})
            self.save_checkpoint()
            if self.bad_epochs >= cfg.patience:
                stopped = "patience"
                break
            if cfg.max_minutes and (elapsed_before + time.perf_counter() - start) > cfg.max_minutes * 60:
                stopped = "time"
                break
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


def train(model_cfg: SARConfig, cfg: TrainConfig, split: Split, checkpoint=None) -> TrainResult:
    """Train a model to early stopping and test its best validation state."""
    return Trainer(model_cfg, cfg, split, checkpoint).fit()
