"""The `sarbench` command line: entry points that are not pytest runs.

Commands come in groups (``sarbench data ...``, ``sarbench train``). A group is one function
``add_<group>_commands(sub)`` that adds its parser to the top-level subparsers and sets ``func`` on each
leaf command; a command function takes the parsed arguments and returns the exit status. To add a group,
write such a function and append it to :data:`COMMAND_GROUPS`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Callable

from .data import (
    DATA_ENV,
    DATASETS,
    SYNTHETIC,
    ChecksumError,
    DataFormatError,
    DatasetMissing,
    DeclarationError,
    data_dir,
    load_dataset,
)
from .data.table1 import paper_verdict, stats_rows

log = logging.getLogger(__name__)

# Errors that are the user's input, not a bug: reported as one line, exit status 1.
USER_ERRORS: tuple[type[BaseException], ...] = (ChecksumError, DataFormatError, DatasetMissing, DeclarationError,
                                                KeyError)


# --- sarbench data stats --------------------------------------------------------------------------


def cmd_data_stats(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    folder = args.data_dir
    rows, problems = stats_rows(folder)
    columns = [c for c in rows[0] if c != "kind"]
    table = tabulate([[r[c] for c in columns] for r in rows], headers=columns,
                     tablefmt="github" if args.markdown else "simple", disable_numparse=True)
    root = data_dir(folder)
    where = f"data folder: {root}" if root else f"no data folder (--data-dir or ${DATA_ENV}): synthetic only"
    print(("**Table 1, regenerated** — " if args.markdown else "Table 1, regenerated from the data; ") + where)
    print()
    print(table)
    if problems:
        print()
        for line in problems:
            print(f"- {line}" if args.markdown else line)
    return 1 if any(": unreadable;" in p for p in problems) else 0


# --- sarbench data fetch --------------------------------------------------------------------------


def cmd_data_fetch(args: argparse.Namespace) -> int:
    from .data.fetch import FetchError, fetch

    try:
        result = fetch(args.name, args.data_dir, url=args.url, progress=not args.no_progress, raw=args.raw,
                       force=args.force)
    except FetchError as exc:
        print(f"sarbench: error: {exc}", file=sys.stderr)
        return 1
    st = result.stats
    print(f"{'downloaded' if result.downloaded else 'already present'}: {result.path}"
          + (f" (from {result.url})" if result.url else ""))
    if result.verified:
        print(f"sha256: {result.sha256} (verified against the registry)")
    else:
        print(f"sha256: {result.sha256} (NOT verified: no pinned checksum for this source)")
    print(f"users {st.users:,}, items {st.items:,}, interactions {st.interactions:,}, "
          f"avg length {st.avg_length:.2f}, density {st.density:.2e}")
    print(f"fingerprint: {result.fingerprint}")
    print(f"paper's version: {paper_verdict(result.is_paper_version, result.paper_version_note)}")
    return 0


def add_data_commands(sub) -> None:
    """The ``data`` group: ``stats`` and ``fetch``."""
    data = sub.add_parser("data", help="datasets: statistics and downloads",
                          description="Datasets: Table 1 statistics of what is in the data folder, and downloads.")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    data_dir_help = f"folder with the real datasets (default: ${DATA_ENV})"

    stats = dsub.add_parser(
        "stats", help="Table 1 regenerated from the data, beside the paper's",
        description="Print users, items, interactions, average length, density and fingerprint of every "
        "registered dataset found in the data folder beside the paper's Table 1, whether each is the "
        "paper's version, and the embedded synthetic dataset; list the missing ones with how to get them.",
    )
    stats.add_argument("--data-dir", default=None, help=data_dir_help)
    stats.add_argument("--markdown", action="store_true", help="print a Markdown table (default: plain text)")
    stats.set_defaults(func=cmd_data_stats)

    fetch = dsub.add_parser(
        "fetch", help="download a dataset into the data folder",
        description="Download a dataset's processed file (SASRec/S3-Rec repositories; sha256 verified) or, "
        "with --raw, its raw source (not verified: its sha256 is printed). The file is kept only if it "
        "parses; its statistics and whether it is the paper's version are printed.",
    )
    fetch.add_argument("name", choices=list(DATASETS), help="dataset name")
    fetch.add_argument("--data-dir", default=None, help=data_dir_help + "; created if missing")
    fetch.add_argument("--raw", action="store_true",
                       help="fetch the raw source (e.g. ml-1m.zip, Amazon ratings CSV) instead of the processed "
                       "file (default: processed)")
    fetch.add_argument("--url", default=None, help="download from this url instead (default: the registry's)")
    fetch.add_argument("--force", action="store_true",
                       help="download even if the file is present, replacing it (default: keep it)")
    fetch.add_argument("--no-progress", action="store_true", help="no progress bar (default: bar on stderr)")
    fetch.set_defaults(func=cmd_data_fetch)


# --- sarbench train -------------------------------------------------------------------------------

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
# Fields --set must not touch: the dataset decides them.
_FIXED = {"num_items": "it is the dataset's item count"}


class OverrideError(ValueError):
    """A --set KEY=VALUE that names no configuration field or whose value does not convert."""


def _config_fields() -> dict[str, tuple[str, object]]:
    """Every overridable field: name -> ('model' or 'train', its resolved type); the search's field table."""
    from .search.spaces import config_fields

    return {name: value for name, value in config_fields().items() if name not in _FIXED}


def convert_value(key: str, text: str, typ) -> object:
    """``text`` as a value of type ``typ`` (bool, int, float, str, or a tuple of those).

    Examples:
        >>> convert_value("lr", "5e-4", float)
        0.0005
        >>> convert_value("ks", "5,10", tuple[int, ...])
        (5, 10)
        >>> convert_value("norm_first", "yes", bool)
        True
    """
    import typing

    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin is tuple:
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert_value(key, p, args[0]) for p in parts)
        if len(parts) != len(args):
            raise OverrideError(f"--set {key}={text}: expected {len(args)} comma-separated values, got {len(parts)}")
        return tuple(convert_value(key, p, a) for p, a in zip(parts, args))
    try:
        if typ is bool:
            low = text.strip().lower()
            if low in _TRUE or low in _FALSE:
                return low in _TRUE
            raise ValueError
        if typ is int:
            return int(text)
        if typ is float:
            return float(text)
    except ValueError:
        name = getattr(typ, "__name__", str(typ))
        hint = f" ({'/'.join(_TRUE)} or {'/'.join(_FALSE)})" if typ is bool else ""
        raise OverrideError(f"--set {key}={text}: {text!r} is not a valid {name}{hint}") from None
    if isinstance(typ, type) and issubclass(typ, str):  # str, or a str enum such as Attention (the config converts)
        return text
    raise OverrideError(f"--set {key}: fields of type {typ} cannot be set from the command line")


def apply_overrides(model_cfg, train_cfg, pairs) -> tuple:
    """(model config, train config) with ``pairs`` applied; each pair is ``"key=value"`` or ``(key, value)``.

    A key is a field name of :class:`~sarbench.models.sar.SARConfig` or
    :class:`~sarbench.train.TrainConfig`, optionally qualified as ``model.key`` / ``train.key``. String
    values are converted to the field's type; already typed values are used as they are. Raises
    :class:`OverrideError` naming the key for an unknown key, a bad value, or a combination the
    configuration rejects.
    """
    from dataclasses import replace

    fields = _config_fields()
    changes: dict[str, dict] = {"model": {}, "train": {}}
    for pair in pairs:
        if isinstance(pair, str):
            key, sep, text = pair.partition("=")
            key = key.strip()
            if not sep or not key:
                raise OverrideError(f"--set expects KEY=VALUE, got {pair!r}")
        else:
            key, text = pair
        group, _, name = key.rpartition(".")
        if name in _FIXED:
            raise OverrideError(f"--set {key}: cannot be set ({_FIXED[name]})")
        if name not in fields or group not in ("", fields[name][0]):
            valid = ", ".join(sorted(fields))
            raise OverrideError(f"--set: unknown key {key!r}; valid keys (model and train config): {valid}")
        where, typ = fields[name]
        changes[where][name] = convert_value(key, text, typ) if isinstance(text, str) else text
    try:
        return replace(model_cfg, **changes["model"]), replace(train_cfg, **changes["train"])
    except ValueError as exc:
        raise OverrideError(f"--set: {exc}") from None


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


def cmd_train(args: argparse.Namespace) -> int:
    if args.list_presets:
        return cmd_train_list_presets()
    if not args.dataset or not args.preset:
        missing = " and ".join(f for f, v in (("--dataset", args.dataset), ("--preset", args.preset)) if not v)
        print(f"sarbench train: error: {missing} required (or --list-presets)", file=sys.stderr)
        return 2
    import json
    from dataclasses import asdict

    import torch

    from .presets import preset, preset_names
    from .train import TrainingDiverged

    if args.preset not in preset_names():  # before loading the data
        print(f"sarbench: error: unknown preset {args.preset!r}; known presets: {', '.join(preset_names())}",
              file=sys.stderr)
        return 1
    if args.device == "cuda" and not torch.cuda.is_available():
        print("sarbench: error: --device cuda: no CUDA device is available", file=sys.stderr)
        return 1
    ds = load_dataset(args.dataset, args.data_dir)
    split = ds.split()
    model_cfg, train_cfg = preset(args.preset, args.dataset, ds.num_items, ds.num_users)
    flags = [(k, v) for k, v in (("max_epochs", args.epochs), ("device", args.device), ("seed", args.seed),
                                 ("eval_users", args.eval_users)) if v is not None]
    if args.no_progress:
        flags.append(("progress", False))
    try:
        model_cfg, train_cfg = apply_overrides(model_cfg, train_cfg, [*args.set, *flags])
    except OverrideError as exc:
        print(f"sarbench: error: {exc}", file=sys.stderr)
        return 1
    if model_cfg.num_users and model_cfg.num_users != ds.num_users:
        print(f"sarbench: error: --set num_users={model_cfg.num_users}: SSE-PT needs the dataset's user count "
              f"({ds.num_users}) or 0 (off)", file=sys.stderr)
        return 1

    if train_cfg.progress:
        from tqdm.auto import tqdm

        say = tqdm.write  # keeps the progress bar intact
    else:
        say = print
    from .train import Trainer

    trainer = Trainer(model_cfg, train_cfg, split, checkpoint=args.checkpoint)
    n_params = sum(p.numel() for p in trainer.model.parameters())
    print(f"training {args.preset} on {ds.name} ({ds.num_users:,} users, {ds.num_items:,} items; "
          f"fingerprint {ds.fingerprint()}) on {train_cfg.device}, seed {train_cfg.seed}: {n_params:,} parameters; "
          f"up to {train_cfg.max_epochs} epochs, early stopping on valid {train_cfg.metric} "
          f"(patience {train_cfg.patience})")
    try:
        if trainer.load_checkpoint():
            say(f"resumed from {args.checkpoint} after epoch {trainer.epoch}")
        result = trainer.fit(resume=False, on_epoch=lambda row: say(_epoch_line(row, train_cfg.max_epochs,
                                                                                 train_cfg.metric)))
    except TrainingDiverged as exc:
        print(f"sarbench: error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        if "different configuration" not in str(exc):
            raise
        print(f"sarbench: error: {exc}; remove it or pass another --checkpoint", file=sys.stderr)
        return 1
    best = result.best_valid.get(train_cfg.metric)
    print(f"stopped ({result.stopped}) after {result.epochs} epochs in {result.wall_time:.1f}s; best epoch "
          f"{result.best_epoch}" + (f" (valid {train_cfg.metric} {best:.4f})" if best is not None else ""))
    users = result.test.num_users if result.test else 0
    print(f"test metrics of the best state ({users:,} users, full ranking):")
    print(_metric_table(result.test.metrics))
    if args.json:
        record = {
            "dataset": ds.name, "fingerprint": ds.fingerprint(), "preset": args.preset, "overrides": args.set,
            **result.summary(),
            "model_config": asdict(model_cfg), "train_config": asdict(train_cfg),
            "history": result.history,
        }
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_json_ready(record), indent=2) + "\n")
        print(f"wrote {path}")
    return 0


def add_train_commands(sub) -> None:
    """The ``train`` command: one model, one dataset, a preset with overrides."""
    train = sub.add_parser(
        "train", help="train one model and report its test metrics",
        description="Train one model of a named preset on a dataset: print each epoch's wall time, loss and "
        "validation metrics, then the test metrics of the best validation state. Settings come from the "
        "preset, then --set, then the explicit flags (--epochs, --device, --seed, --eval-users, --no-progress).",
    )
    train.add_argument("--dataset", default=None,
                       help=f"dataset name: {', '.join([*DATASETS, SYNTHETIC])} or one declared in the data folder's "
                       "datasets.toml (required unless --list-presets)")
    train.add_argument("--data-dir", default=None, help=f"folder with the real datasets (default: ${DATA_ENV})")
    train.add_argument("--preset", default=None, metavar="NAME",
                       help="preset such as vanilla-AR or ssept-AE, see --list-presets "
                       "(required unless --list-presets)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a field of the model config (SARConfig) or train config (TrainConfig), "
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


def cmd_report(args) -> int:
    from .report import build_report, build_tables, summary_text
    from .store import ResultStore

    results = Path(args.results)
    if not results.is_dir():
        print(f"sarbench report: results folder {results} does not exist", file=sys.stderr)
        return 1
    paths = build_report(results, args.out)
    print(summary_text(build_tables(ResultStore(results).records())))
    print(f"wrote {len(paths)} file(s) to {args.out}")
    return 0


def add_report_commands(sub) -> None:
    p = sub.add_parser(
        "report",
        help="rebuild the report (paper tables beside ours) from a results folder, without rerunning",
        description="Aggregate every record in a results folder into the paper's tables (Markdown, CSV, "
        "LaTeX) with the paper's values, relative differences, AR-over-AE gains and significance tests.",
    )
    p.add_argument("results", help="results folder written by `pytest bench` (--results)")
    p.add_argument("--out", default="reports", help="output folder (default: reports)")
    p.set_defaults(func=cmd_report)


# --- sarbench run -----------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    """One benchmark case through the code path of `pytest bench` (cases.run_case), resumable."""
    import signal
    from dataclasses import replace

    import torch

    from .cases import SCALES, DataCache, run_case
    from .store import ResultStore

    if not args.study and not args.attention:
        print("sarbench: error: run needs --attention (or --study)", file=sys.stderr)
        return 2
    threads = args.threads or (SCALES[args.scale].threads if args.device == "cpu" else 0)  # as `pytest bench`
    if threads:
        torch.set_num_threads(threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"sarbench: error: --device {args.device}: no CUDA device is available", file=sys.stderr)
        return 1

    def interrupt(signum, frame):  # a `kill` ends the run like Ctrl-C: the best state is tested and stored
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    scale = replace(SCALES[args.scale], max_minutes=args.max_minutes)
    results = Path(args.results)
    from .designs import table_of

    table = table_of(args.design, args.model)
    name = args.study or f"{args.design if args.model == 'sar' else args.model}-{args.attention}"

    def on_epoch(row):
        valid = row.get("valid", {})
        line = (f"{args.dataset} {name} seed {args.seed}: epoch {row['epoch']:>4} "
                f"loss {row['loss']:.4f} train {row['epoch_time']:.1f}s all {row['wall_time']:.1f}s")
        if valid:
            line += " valid " + " ".join(f"{k} {valid[k]:.4f}" for k in ("R@10", "N@10") if k in valid)
        print(line, flush=True)

    case = {"table": table, "dataset": args.dataset, "design": args.design, "attention": args.attention,
            "seed": args.seed, "model": args.model}
    if args.study:  # a model of the attention study (Tables 2-3): its own case, e.g. Local-AE
        from .analysis.study import case_kwargs

        case = case_kwargs(args.study, args.dataset, args.seed)
    record = run_case(scale=scale, device=args.device, data=DataCache(args.data_dir), store=ResultStore(results),
                      checkpoints=results / "checkpoints", rerun=args.rerun, on_epoch=on_epoch,
                      catch_interrupt=True, **case)
    metrics = " ".join(f"{k} {v:.4f}" for k, v in record.metrics.items())
    print(f"{record.case_id} seed {record.seed}: stopped ({record.extra['stopped']}) after {record.epochs} epochs, "
          f"best {record.extra['best_epoch']}, {record.wall_time_s / 60:.1f} min; test ({record.extra['exclusion']} "
          f"exclusion) {metrics}")
    print(f"record: {ResultStore(results).path_for(record)}")
    return 0


def add_run_commands(sub) -> None:
    """The ``run`` command: one benchmark case, stored and resumable, outside pytest."""
    from .config import ATTENTIONS
    from .designs import DESIGNS

    p = sub.add_parser(
        "run", help="run one benchmark case (as `pytest bench` would) and store its record; resumable",
        description="Train one case of the benchmark through the same code path as `pytest bench`, store its "
        "record (and best weights) in the results folder, and keep an epoch checkpoint. Run the same command "
        "again to continue an interrupted or time-capped run from its checkpoint. SIGTERM and Ctrl-C stop it "
        "cleanly: the best state is tested and stored with stopped=interrupted.",
    )
    p.add_argument("--dataset", required=True, help=f"dataset name ({', '.join([*DATASETS, SYNTHETIC])})")
    p.add_argument("--attention", choices=list(ATTENTIONS), help="AE (bidirectional) or AR (causal); required "
                   "unless --study names the model")
    p.add_argument("--study", choices=["vanilla-AE", "vanilla-AR", "local-AE"], default=None,
                   help="a model of the attention study (Tables 2-3) instead of --design/--model/--attention: "
                   "local-AE is Vanilla-AE with a +-2 window on its last head (default: none)")
    p.add_argument("--design", default="vanilla", choices=list(DESIGNS), help="preset design (default: vanilla)")
    p.add_argument("--model", default="sar",
                   help="registered model: sar (the paper's, set by --design), albert, llama, transfo_xl (Table 6), "
                   "gru4rec or your own (default: sar)")
    p.add_argument("--scale", default="paper", choices=["smoke", "paper"], help="scale (default: paper)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--data-dir", default=None, help=f"folder with the real datasets (default: ${DATA_ENV})")
    p.add_argument("--results", default="results", help="results folder (default: results)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads; 0 = the scale's (smoke: 1), else torch's default (default: 0)")
    p.add_argument("--max-minutes", type=float, default=0.0,
                   help="stop training after this many minutes of this process, test and store the best state "
                   "(stopped=time; run again to continue); 0 = no cap (default: 0)")
    p.add_argument("--rerun", action="store_true", help="train from scratch even if a record exists (default: reuse)")
    p.set_defaults(func=cmd_run)


def add_tune_commands(sub) -> None:
    """The ``tune`` command: hyperparameter search on Ray Tune (sarbench.search; Ray is imported only to run)."""
    from .search.command import add_tune_parser

    add_tune_parser(sub)


def add_compare_and_plan_commands(sub) -> None:
    """``compare`` (a model against the committed AE and AR) and ``plan`` (a selection's cost): compare_command.py."""
    from .compare_command import add_compare_commands, add_plan_commands

    add_compare_commands(sub)
    add_plan_commands(sub)


COMMAND_GROUPS: list[Callable] = [add_data_commands, add_train_commands, add_run_commands, add_report_commands,
                                  add_tune_commands, add_compare_and_plan_commands]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sarbench", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log more (-v: info, -vv: debug; default: warnings only)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_commands in COMMAND_GROUPS:
        add_commands(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"sarbench: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
