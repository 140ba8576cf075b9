"""One trial of a search: the protocol it follows and the function Ray Tune runs.

A trial trains the case's preset with the grid point's overrides (``dataclasses.replace``) and
reports once every ``eval_every`` epochs: the epoch, the loss and the validation metrics (Recall@10
under the case's exclusion rule, the authors' input window, is the search metric). It never stops
by itself: the scheduler stops it at a rung, or it ends after ``max_t`` reports. Each report
carries a checkpoint of the trainer, so an interrupted trial resumes from its last report.

**The test split never reaches a trial.** The driver sends :func:`search_split`: the training
sequences and the validation targets, with the test targets withheld (an empty array). A trial
runs the trainer's epoch loop itself (``Trainer.run_epoch``: train, validate when due) and never calls
``Trainer.fit``, which tests the best state at the end.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..config import ATTENTIONS
from ..data import Split
from ..designs import DESIGNS, HF_BACKBONES
from ..presets import preset
from ..provenance import results_version
from ..train import Trainer
from .defaults import (AUTHORS_EVAL_EVERY, AUTHORS_GRACE_PERIOD, AUTHORS_MAX_T, AUTHORS_REDUCTION_FACTOR,
                       BEST_SCOPES, SCHEDULERS, default_scheduler)
from .spaces import Space, check_space, for_model, split_overrides

STATE_FILE = "trainer.pt"


@dataclass(frozen=True)
class SearchConfig:
    """What a search is: the case, its space, the scheduler and the report protocol.

    Defaults are the authors' (protocol.md section 5): ASHA with ``max_t=40`` reports,
    ``grace_period=5``, ``reduction_factor=2`` on ``training_iteration``, one report every 5 epochs
    (rungs at 25/50/100/200 epochs), seed 0, and the best trial by its last reported value
    (``best_scope="last"``, Ray's default scope, which the authors used). ``scheduler="grid"`` runs
    every trial to ``max_t`` reports (a plain grid search); left empty, the scheduler is the design's
    default (:func:`~sarbench.search.defaults.default_scheduler`: a plain grid for the vanilla network,
    as the paper's Section 5.1, ASHA otherwise).
    """

    dataset: str
    design: str
    attention: str
    space: Space
    scheduler: str = ""
    max_t: int = AUTHORS_MAX_T
    grace_period: int = AUTHORS_GRACE_PERIOD
    reduction_factor: float = AUTHORS_REDUCTION_FACTOR
    eval_every: int = AUTHORS_EVAL_EVERY
    best_scope: str = "last"
    seed: int = 0
    eval_users: int = 0  # > 0: validate on this many users (smoke runs); 0 = all, as the authors
    scale: str = "paper"

    def __post_init__(self):
        if not self.scheduler:
            object.__setattr__(self, "scheduler", default_scheduler(self.design))
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention must be 'AE' or 'AR', got {self.attention!r}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {self.scheduler!r}")
        if self.best_scope not in BEST_SCOPES:
            raise ValueError(f"best_scope must be one of {', '.join(BEST_SCOPES)}, got {self.best_scope!r}")
        if self.max_t < 1 or self.eval_every < 1:
            raise ValueError(f"max_t and eval_every must be at least 1, got {self.max_t} and {self.eval_every}")
        if not 1 <= self.grace_period <= self.max_t:
            raise ValueError(f"grace_period must be within 1..max_t={self.max_t}, got {self.grace_period}")
        if not self.reduction_factor > 1:
            raise ValueError(f"reduction_factor must be above 1, got {self.reduction_factor}")

    @property
    def max_epochs(self) -> int:
        return self.max_t * self.eval_every

    def rungs(self) -> list[int]:
        """Reports at which ASHA compares trials (Ray's bracket: grace_period x reduction_factor^k up to
        max_t); empty for a plain grid. A trial that passes the last rung runs on to max_t."""
        if self.scheduler != "asha":
            return []
        count = int(math.log(self.max_t / self.grace_period) / math.log(self.reduction_factor) + 1)
        return [int(self.grace_period * self.reduction_factor ** k) for k in range(count)]

    def as_dict(self) -> dict:
        out = asdict(self)
        out["space"] = self.space.as_dict()
        return out

    def identity(self, fingerprint: str, results_version: int) -> str:
        """12 hex digits naming this search on this data: the experiment folder's suffix."""
        text = json.dumps({**self.as_dict(), "fingerprint": fingerprint, "results_version": results_version},
                          sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def case_family(design: str) -> str:
    """The results family (sarbench.provenance) of a search's case: a backbone's name, else its network's."""
    if design in HF_BACKBONES:
        return design
    found = DESIGNS.get(design)
    return "modsar" if found is not None and found.network == "modsar" else "vanilla"


def case_results_version(search: SearchConfig) -> int:
    """The current results version of the searched case's family (part of the search's identity)."""
    return results_version(case_family(search.design))


def search_split(split: Split) -> Split:
    """``split`` without its test targets: what trials receive (they cannot look at the test split)."""
    return replace(split, dataset=split.train, test_target=np.empty(0, dtype=np.int64))


def base_configs(search: SearchConfig, num_items: int, num_users: int):
    """The case's preset: (model config, train config) before any override. A Table-6 backbone's
    ``design`` is its name (``albert``, ``llama``, ``transfo_xl``): its Table-6 defaults."""
    if search.design in HF_BACKBONES:
        from ..models.interface import get_spec

        return get_spec(search.design).defaults(search.attention, search.dataset, num_items, num_users)
    return preset(f"{search.design}-{search.attention}", search.dataset, num_items, num_users)


def model_class(design: str) -> type:
    """The model config class of a search's case: a backbone's, else the paper's model's."""
    if design in HF_BACKBONES:
        from ..models.interface import get_spec

        return get_spec(design).config
    from ..config import SARConfig

    return SARConfig


def validated(search: SearchConfig, num_items: int, num_users: int) -> SearchConfig:
    """``search`` with its space fitted to the case's model (spaces.for_model), checked against the case's
    preset and its values typed (SpaceError if bad)."""
    model_cfg, train_cfg = base_configs(search, num_items, num_users)
    return replace(search, space=check_space(for_model(search.space, model_cfg), model_cfg, train_cfg))


def trial_configs(search: SearchConfig, num_items: int, num_users: int, point: dict, device: str = "cpu"):
    """(model config, train config) of the trial at grid ``point``: preset, overrides, search protocol."""
    model_cfg, train_cfg = base_configs(search, num_items, num_users)
    model_over, train_over = split_overrides(search.space.overrides(point), type(model_cfg))
    protocol = {"max_epochs": search.max_epochs, "eval_every": search.eval_every, "patience": search.max_epochs + 1,
                "seed": search.seed, "device": device, "progress": False, "eval_users": search.eval_users}
    return replace(model_cfg, **model_over), replace(train_cfg, **train_over, **protocol)


def report_metrics(row: dict) -> dict:
    """What a trial reports for one validation: epoch, loss, every validation metric as ``valid_<name>``."""
    return {"epoch": row["epoch"], **{f"valid_{k}": float(v) for k, v in row["valid"].items()},
            "loss": float(row["loss"])}


@dataclass
class TrialSetup:
    """What every trial of a search shares besides its grid point (sent once through Ray's object store)."""

    search: SearchConfig
    split: Split
    threads: int = 1
    device: str = "cpu"
    extra: dict = field(default_factory=dict)


def run_trial(config: dict, setup: TrialSetup) -> None:
    """The Ray Tune function trainable: train the grid point ``config`` and report every ``eval_every`` epochs."""
    from ray import tune

    # One line per saved checkpoint (every report of every trial) is noise in the driver's console.
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    torch.set_num_threads(max(1, setup.threads))
    train = setup.split.train
    model_cfg, train_cfg = trial_configs(setup.search, train.num_items, train.num_users, config, setup.device)
    trainer = Trainer(model_cfg, train_cfg, setup.split)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            trainer.load_checkpoint(Path(folder) / STATE_FILE)
    while trainer.epoch < train_cfg.max_epochs:
        row = trainer.run_epoch()
        if "valid" not in row:
            continue
        with tempfile.TemporaryDirectory() as folder:
            torch.save(trainer.state(), Path(folder) / STATE_FILE)
            tune.report(report_metrics(row), checkpoint=tune.Checkpoint.from_directory(folder))


__all__ = ["SearchConfig", "TrialSetup", "base_configs", "case_family", "case_results_version", "model_class", "report_metrics", "run_trial",
           "search_split", "trial_configs", "validated"]
