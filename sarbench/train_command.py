"""The ``sarbench train`` command: one registered model on one dataset, with ``--set`` overrides."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import ATTENTIONS
from .data import DATA_ENV, DATASETS, SYNTHETIC, load_dataset
from .designs import PAPER_MODEL
from .overrides import OverrideError, apply_overrides


def _metric_table(metrics: dict[str, float]) -> str:
    """Recall and NDCG rows, one column per cut-off."""
    from tabulate import tabulate

    names = {"R": "Recall", "N": "NDCG"}
    ks = sorted({int(m.split("@")[1]) for m in metrics})
    rows = []
    for prefix in dict.fromkeys(m.split("@")[0] for m in metrics):
        rows.append([names.get(prefix, prefix)] + [metrics.get(f"{prefix}@{k}") for k in ks])
    return tabulate(rows, headers=["test"] + [f"@{k}" for k in ks], floatfmt=".4f")


def _epoch_line(row: dict, max_epochs: int, metric: str) -> str:
    width = len(str(max_epochs))
    line = (f"epoch {row['epoch']:>{width}}/{max_epochs}  time {row['wall_time']:6.2f}s "
            f"(train {row['epoch_time']:.2f}s)  loss {row['loss']:.4f}")
    if "valid" in row:
        line += "  valid " + " ".join(f"{k} {v:.4f}" for k, v in row["valid"].items())
    return line


def _json_ready(value):
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def cmd_train_list_presets() -> int:
    from .presets import describe, preset_names

    print("presets (NAME-AE: bidirectional mask, BERT4Rec-like; NAME-AR: causal mask, SASRec-like):")
    for name in preset_names():
        design, attention = name.rsplit("-", 1)
        print(f"  {name:<12} {describe(design)}")  # from the design's declaration (designs.py) and its preset
    return 0


def _error(message: str) -> int:
    print(f"sarbench: error: {message}", file=sys.stderr)
    return 1


def _what(args: argparse.Namespace) -> tuple[str, str, str] | str:
    """(run name, design, attention) that ``args`` ask to train, or the error naming the bad value."""
    from .models.interface import registered
    from .presets import preset_names

    if args.model == PAPER_MODEL:
        if args.attention:
            return "--attention goes with --model NAME; the paper's model takes --preset (e.g. vanilla-AR)"
        if args.preset not in preset_names():
            return f"unknown preset {args.preset!r}; known presets: {', '.join(preset_names())}"
        design, attention = args.preset.rsplit("-", 1)
        return args.preset, design, attention
    models = registered()
    if args.model not in models:
        return f"unknown model {args.model!r}; registered models: {', '.join(sorted(models))}"
    if args.preset:
        return f"--preset names a design of the paper's model; --model {args.model} takes --attention"
    attentions = models[args.model].attentions
    attention = args.attention or (attentions[0] if len(attentions) == 1 else "")
    if not attention:
        return f"--model {args.model} needs --attention ({' or '.join(attentions)})"
    return f"{args.model}-{attention}", "vanilla", attention


def _configs(args: argparse.Namespace, ds, design: str, attention: str):
    """The run's (model config, train config): its start, then --set, then the explicit flags."""
    from .cases import start_configs

    model_cfg, train_cfg = start_configs(args.model, design, attention, args.dataset, ds.num_items, ds.num_users)
    flags = [(k, v) for k, v in (("max_epochs", args.epochs), ("device", args.device), ("seed", args.seed),
                                 ("eval_users", args.eval_users)) if v is not None]
    if args.no_progress:
        flags.append(("progress", False))
    model_cfg, train_cfg = apply_overrides(model_cfg, train_cfg, [*args.set, *flags])
    users = getattr(model_cfg, "num_users", 0)
    if users and users != ds.num_users:
        raise OverrideError(f"--set num_users={users}: SSE-PT needs the dataset's user count ({ds.num_users}) "
                            "or 0 (off)")
    return model_cfg, train_cfg


def _write_json(path: str, args: argparse.Namespace, ds, result, model_cfg, train_cfg) -> None:
    import json
    from dataclasses import asdict

    record = {
        "dataset": ds.name, "fingerprint": ds.fingerprint(), "model": args.model, "preset": args.preset,
        "overrides": args.set, **result.summary(),
        "model_config": asdict(model_cfg), "train_config": asdict(train_cfg),
        "history": result.history,
    }
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_json_ready(record), indent=2) + "\n")
    print(f"wrote {out}")


def cmd_train(args: argparse.Namespace) -> int:
    if args.list_presets:
        return cmd_train_list_presets()
    needed = (("--dataset", args.dataset), *((("--preset", args.preset),) if args.model == PAPER_MODEL else ()))
    missing = " and ".join(flag for flag, value in needed if not value)
    if missing:
        print(f"sarbench train: error: {missing} required (or --list-presets)", file=sys.stderr)
        return 2
    import torch

    from .train import Trainer, TrainingDiverged

    what = _what(args)  # before loading the data
    if isinstance(what, str):
        return _error(what)
    name, design, attention = what
    if args.device == "cuda" and not torch.cuda.is_available():
        return _error("--device cuda: no CUDA device is available")
    ds = load_dataset(args.dataset, args.data_dir)
    try:
        model_cfg, train_cfg = _configs(args, ds, design, attention)
    except (OverrideError, ValueError) as exc:
        return _error(str(exc))
    if train_cfg.progress:
        from tqdm.auto import tqdm

        say = tqdm.write  # keeps the progress bar intact
    else:
        say = print
    trainer = Trainer(model_cfg, train_cfg, ds.split(), checkpoint=args.checkpoint)
    n_params = sum(p.numel() for p in trainer.model.parameters())
    print(f"training {name} on {ds.name} ({ds.num_users:,} users, {ds.num_items:,} items; "
          f"fingerprint {ds.fingerprint()}) on {train_cfg.device}, seed {train_cfg.seed}: {n_params:,} parameters; "
          f"up to {train_cfg.max_epochs} epochs, early stopping on valid {train_cfg.metric} "
          f"(patience {train_cfg.patience})")
    try:
        if trainer.load_checkpoint():
            say(f"resumed from {args.checkpoint} after epoch {trainer.epoch}")
        result = trainer.fit(resume=False, on_epoch=lambda row: say(_epoch_line(row, train_cfg.max_epochs,
                                                                                 train_cfg.metric)))
    except TrainingDiverged as exc:
        return _error(str(exc))
    except ValueError as exc:
        if "different configuration" not in str(exc):
            raise
        return _error(f"{exc}; remove it or pass another --checkpoint")
    best = result.best_valid.get(train_cfg.metric)
    print(f"stopped ({result.stopped}) after {result.epochs} epochs in {result.wall_time:.1f}s; best epoch "
          f"{result.best_epoch}" + (f" (valid {train_cfg.metric} {best:.4f})" if best is not None else ""))
    users = result.test.num_users if result.test else 0
    print(f"test metrics of the best state ({users:,} users, full ranking):")
    print(_metric_table(result.test.metrics))
    if args.json:
        _write_json(args.json, args, ds, result, model_cfg, train_cfg)
    return 0


def add_train_commands(sub) -> None:
    """The ``train`` command: one model, one dataset, a preset (or a registered model's defaults) with overrides."""
    train = sub.add_parser(
        "train", help="train one model and report its test metrics",
        description="Train one model on a dataset: the paper's model of a named preset, or any registered model "
        "(--model) from its defaults. Print each epoch's wall time, loss and validation metrics, then the test "
        "metrics of the best validation state. Settings come from the preset (or the model's defaults), then "
        "--set, then the explicit flags (--epochs, --device, --seed, --eval-users, --no-progress).",
    )
    train.add_argument("--dataset", default=None,
                       help=f"dataset name: {', '.join([*DATASETS, SYNTHETIC])} or one declared in the data folder's "
                       "datasets.toml (required unless --list-presets)")
    train.add_argument("--data-dir", default=None, help=f"folder with the real datasets (default: ${DATA_ENV})")
    train.add_argument("--model", default=PAPER_MODEL, metavar="NAME",
                       help="registered model: sar (the paper's, set by --preset), albert, llama, transfo_xl, "
                       "gru4rec or your own (default: sar)")
    train.add_argument("--preset", default=None, metavar="NAME",
                       help="the paper's model: a preset such as vanilla-AR or ssept-AE, see --list-presets "
                       "(required for --model sar unless --list-presets)")
    train.add_argument("--attention", default=None, choices=list(ATTENTIONS),
                       help="another --model: AE or AR (default: the model's only one, if it has one)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a field of the model config (e.g. SARConfig) or train config (TrainConfig), "
                       "e.g. hidden=32, lr=5e-4, ks=5,10, norm_first=true; repeatable (default: none)")
    train.add_argument("--epochs", type=int, default=None, metavar="N",
                       help="maximum epochs, max_epochs (default: the preset's)")
    train.add_argument("--device", choices=["cpu", "cuda"], default=None, help="training device (default: cpu)")
    train.add_argument("--seed", type=int, default=None, metavar="S",
                       help="random seed (default: the preset's, 0)")
    train.add_argument("--checkpoint", default=None, metavar="PATH",
                       help="save after every epoch and resume from PATH if it exists (default: no checkpoint)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar (default: bar on stderr)")
    train.add_argument("--eval-users", type=int, default=None, metavar="N",
                       help="validate and test on N random users only, for smoke runs (default: all)")
    train.add_argument("--json", default=None, metavar="OUT",
                       help="write the result summary, configurations and per-epoch history as JSON (default: none)")
    train.add_argument("--list-presets", action="store_true", help="list the preset names and exit")
    train.set_defaults(func=cmd_train)



__all__ = ["add_train_commands", "cmd_train"]
