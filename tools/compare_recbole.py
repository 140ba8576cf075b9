"""Side-by-side CPU training speed: sarbench's Vanilla-AR epoch against RecBole's SASRec, on ml-1m.

    python tools/compare_recbole.py --data-dir DIR --recbole-python PY \\
        [--recbole-batches 40] [--epochs 2] [--out reports/speed_recbole.md]

Both sides train the same data (ml-1m, leave-one-out: the last two items of each user held out) at
the same sizes: d=64, 2 layers, 1 head, maximum length 200, batch 256, cross-entropy over all items,
dropout and attention dropout 0.2, on the CPU.

* sarbench: the ``vanilla-AR`` preset with those sizes, ``sarbench.train.Trainer``, one sequence per
  user with the loss at every position; ``--epochs`` full epochs of ``Trainer.train_epoch()`` are
  timed (each reported, and their median).
* RecBole: SASRec (``loss_type: CE``, no negative sampling), set up from an atomic file written from
  the same loaded dataset. RecBole trains every prefix of every sequence as its own sample, so an
  epoch is ~3,800 batches (hours on a CPU); ``--recbole-batches`` batches (after ``--recbole-warmup``
  untimed ones) are timed, forward + backward + optimiser step including data loading, and the epoch
  time is extrapolated as mean seconds per batch x batches per epoch.

Each side runs in a subprocess of its own, so each peak RSS (``resource.getrusage``) is its own; the
RecBole side runs with ``--recbole-python`` (a separate environment, see tools/README.md) from a
script generated into a temporary folder. Because the two epochs cover different amounts of work,
the report gives both the epoch speed-up (RecBole extrapolated epoch / sarbench epoch) and the ratio
of targets trained per second ((position, next item) pairs for sarbench, samples for RecBole).

Not part of CI: a full run takes a few minutes of both cores and ~7 GB of memory on RecBole's side.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from reporting import cpu_model  # noqa: E402  sibling module in tools/

log = logging.getLogger("compare_recbole")

DATASET = "ml-1m"
PRESET = "vanilla-AR"
# The benchmark sizes, shared by both sides.
SIZES = dict(hidden=64, layers=2, heads=1, max_len=200, batch_size=256, dropout=0.2, attn_dropout=0.2, inner=256)
ATOMIC_NAME = "ml1m"  # RecBole dataset name: <data_path>/ml1m/ml1m.inter


# --- sarbench side (runs in its own subprocess) ------------------------------------------------
def sarbench_side(data_dir: str | None, epochs: int, threads: int, seed: int) -> dict:
    """Time ``epochs`` training epochs of the Vanilla-AR preset at the benchmark sizes."""
    import resource
    from dataclasses import asdict, replace

    import torch

    from sarbench.data import load_dataset
    from sarbench.presets import preset
    from sarbench.train import Trainer, release_freed_memory

    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    ds = load_dataset(DATASET, data_dir)
    model_cfg, train_cfg = preset(PRESET, DATASET, ds.num_items)
    model_cfg = replace(model_cfg, hidden=SIZES["hidden"], layers=SIZES["layers"], heads=SIZES["heads"],
                        max_len=SIZES["max_len"], dropout=SIZES["dropout"], attn_dropout=SIZES["attn_dropout"])
    train_cfg = replace(train_cfg, batch_size=SIZES["batch_size"], loss="ce", device="cpu", progress=False,
                        seed=seed)
    trainer = Trainer(model_cfg, train_cfg, ds.split())
    setup_s = time.perf_counter() - t0
    rss_setup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    targets = int(trainer.lengths.sum())
    sequences = int(len(trainer.lengths))
    epoch_s, epoch_cpu_s, losses = [], [], []
    for e in range(epochs):
        t, c = time.perf_counter(), time.process_time()
        losses.append(trainer.train_epoch())
        release_freed_memory()  # as Trainer.fit does after every epoch (its cost lands in the next epoch)
        epoch_s.append(time.perf_counter() - t)
        epoch_cpu_s.append(time.process_time() - c)
        log.info("sarbench epoch %d: %.2f s, loss %.4f", e + 1, epoch_s[-1], losses[-1])
    return {
        "side": "sarbench",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "fingerprint": ds.fingerprint(),
        "users": ds.num_users,
        "items": ds.num_items,
        "interactions": int(len(ds.items)),
        "sequences_per_epoch": sequences,
        "targets_per_epoch": targets,
        "batches_per_epoch": math.ceil(sequences / train_cfg.batch_size),
        "parameters": sum(p.numel() for p in trainer.model.parameters()),
        "setup_s": setup_s,
        "epoch_s": epoch_s,
        "epoch_cpu_s": epoch_cpu_s,
        "losses": losses,
        "rss_setup_kb": rss_setup,
        "rss_peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "model_config": {k: v for k, v in asdict(model_cfg).items() if k != "num_items"},
        "train_config": {k: asdict(train_cfg)[k] for k in
                         ("loss", "optimizer", "lr", "weight_decay", "grad_clip", "batch_size", "length_buckets")},
    }


def write_atomic(ds, folder: Path) -> Path:
    """Write ``ds`` as RecBole's atomic ``<folder>/ml1m/ml1m.inter`` (timestamp = order within user)."""
    import numpy as np

    out = folder / ATOMIC_NAME
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{ATOMIC_NAME}.inter"
    lengths = ds.lengths
    users = np.repeat(np.arange(1, ds.num_users + 1), lengths)
    order = np.arange(len(ds.items)) - np.repeat(ds.offsets[:-1], lengths)
    with open(path, "w") as f:
        f.write("user_id:token\titem_id:token\ttimestamp:float\n")
        np.savetxt(f, np.stack([users, ds.items, order], axis=1), fmt="%d", delimiter="\t")
    return path


# --- RecBole side: a script generated at run time, run with --recbole-python ---------------------
RECBOLE_SCRIPT = textwrap.dedent(
    '''
    """Times RecBole SASRec training batches; generated by tools/compare_recbole.py."""
    import argparse, json, resource, sys, time

    ap = argparse.ArgumentParser()
    ap.add_argument("--data-path", required=True)
    ap.add_argument("--batches", type=int, required=True)
    ap.add_argument("--warmup", type=int, required=True)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import numpy, torch, recbole
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    if args.threads:
        torch.set_num_threads(args.threads)
    SIZES = __SIZES__
    config_dict = {
        "data_path": args.data_path,
        "checkpoint_dir": "saved",
        "seed": args.seed,
        "reproducibility": True,
        "use_gpu": False,
        "device": "cpu",
        "worker": 0,
        "show_progress": False,
        "save_dataset": False,
        "save_dataloaders": False,
        "log_wandb": False,
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "user_inter_num_interval": "[0,inf)",
        "item_inter_num_interval": "[0,inf)",
        "MAX_ITEM_LIST_LENGTH": SIZES["max_len"],
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "hidden_size": SIZES["hidden"],
        "inner_size": SIZES["inner"],
        "n_layers": SIZES["layers"],
        "n_heads": SIZES["heads"],
        "hidden_dropout_prob": SIZES["dropout"],
        "attn_dropout_prob": SIZES["attn_dropout"],
        "train_batch_size": SIZES["batch_size"],
        "eval_args": {"split": {"LS": "valid_and_test"}, "group_by": "user", "order": "TO", "mode": "full"},
        "metrics": ["Recall", "NDCG"],
        "topk": [5, 10, 20],
        "valid_metric": "NDCG@10",
    }
    t0 = time.perf_counter()
    config = Config(model="SASRec", dataset="__NAME__", config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    read = (int(dataset.user_num - 1), int(dataset.item_num - 1), int(dataset.inter_num))  # before augmentation
    train_data, valid_data, test_data = data_preparation(config, dataset)
    prep_s = time.perf_counter() - t0
    rss_prep = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    init_seed(config["seed"], config["reproducibility"])
    model = SASRec(config, train_data._dataset).to(config["device"])
    trainer = Trainer(config, model)  # only for its optimiser (Adam, lr and decay from the config)
    optimizer = trainer.optimizer
    model.train()
    times, cpu_times, samples, losses = [], [], [], []
    it = iter(train_data)
    for i in range(args.warmup + args.batches):
        t, c = time.perf_counter(), time.process_time()
        try:
            interaction = next(it)
        except StopIteration:
            break
        interaction = interaction.to(config["device"])
        optimizer.zero_grad()
        loss = model.calculate_loss(interaction)
        loss.backward()
        optimizer.step()
        value = loss.item()
        dt = time.perf_counter() - t
        if i >= args.warmup:
            times.append(dt)
            cpu_times.append(time.process_time() - c)
            samples.append(len(interaction))
            losses.append(value)
        print(f"RecBole batch {i + 1}{' (warm-up)' if i < args.warmup else ''}: {dt:.2f} s, loss {value:.4f}",
              file=sys.stderr, flush=True)
    result = {
        "side": "recbole",
        "recbole": recbole.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "threads": torch.get_num_threads(),
        "users": read[0],
        "items": read[1],
        "interactions": read[2],
        "samples_per_epoch": int(len(train_data._dataset)),
        "batches_per_epoch": int(len(train_data)),
        "parameters": sum(p.numel() for p in model.parameters()),
        "learner": str(config["learner"]),
        "lr": float(config["learning_rate"]),
        "weight_decay": float(config["weight_decay"] or 0.0),
        "prep_s": prep_s,
        "warmup": args.warmup,
        "batch_s": times,
        "batch_cpu_s": cpu_times,
        "batch_samples": samples,
        "losses": losses,
        "rss_prep_kb": rss_prep,
        "rss_peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    with open(args.out, "w") as f:
        json.dump(result, f)
    '''
)


def recbole_script() -> str:
    return RECBOLE_SCRIPT.replace("__SIZES__", repr(SIZES)).replace("__NAME__", ATOMIC_NAME)


# --- running both ------------------------------------------------------------------------------
class SideFailed(RuntimeError):
    """A side's subprocess failed; the message carries its command, exit status and output tail."""


def run_side(cmd: list[str], out: Path, cwd: str | None, what: str, timeout: float | None) -> dict:
    log.info("%s: %s", what, shlex.join(cmd))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        log.debug("[%s] %s", what, line)
    if proc.returncode != 0 or not out.is_file():
        tail = "\n".join(proc.stdout.splitlines()[-30:])
        raise SideFailed(f"{what} failed (exit status {proc.returncode}) running: {shlex.join(cmd)}\n{tail}")
    result = json.loads(out.read_text())
    result["wall_s"] = time.perf_counter() - t0
    return result


def check_recbole_python(py: str) -> str:
    """Version line of the RecBole environment; a clear error if it cannot import recbole and torch."""
    if not (Path(py).is_file() and os.access(py, os.X_OK)):
        raise SystemExit(f"--recbole-python {py!r} is not an executable file; see tools/README.md for the set-up")
    probe = "import recbole, torch, numpy, pandas; print(recbole.__version__, torch.__version__, numpy.__version__, pandas.__version__)"
    proc = subprocess.run([py, "-c", probe], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"--recbole-python {py}: cannot import recbole/torch/numpy/pandas:\n{proc.stderr[-2000:]}\n"
                         f"see tools/README.md for the set-up (RecBole 1.2.1 needs numpy<2 and pandas<3)")
    return proc.stdout.strip()


def summarize(sar: dict | None, rb: dict | None) -> dict:
    s = {}
    if sar:
        s["sar_epoch_s"] = statistics.median(sar["epoch_s"])
        s["sar_targets_per_s"] = sar["targets_per_epoch"] / s["sar_epoch_s"]
    if rb and rb["batch_s"]:
        s["rb_batch_s"] = statistics.fmean(rb["batch_s"])
        s["rb_epoch_s"] = s["rb_batch_s"] * rb["batches_per_epoch"]
        s["rb_targets_per_s"] = sum(rb["batch_samples"]) / sum(rb["batch_s"])
    if "sar_epoch_s" in s and "rb_epoch_s" in s:
        s["speedup"] = s["rb_epoch_s"] / s["sar_epoch_s"]
        s["targets_ratio"] = s["sar_targets_per_s"] / s["rb_targets_per_s"]
    return s


def fmt_time(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds:.0f} s ({seconds / 3600:.2f} h)"
    return f"{seconds:.2f} s"


def gb(kb: int) -> str:
    return f"{kb / 1024 ** 2:.2f} GB"


def report(sar: dict | None, rb: dict | None, rb_versions: str | None, command: str,
           load_start: tuple[float, float, float] | None = None) -> str:
    import torch

    s = summarize(sar, rb)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"
    lines = [
        "# Training speed on the CPU: sarbench Vanilla-AR vs RecBole SASRec (ml-1m)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} by `tools/compare_recbole.py`, both sides one after the "
        "other in one run.",
        "",
        "## Machine",
        "",
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores",
        f"- Python {platform.python_version()}, torch {torch.__version__} (sarbench side)",
    ]
    if rb_versions:
        rv, rt, rn, rp = (rb_versions.split() + ["?"] * 4)[:4]
        lines.append(f"- RecBole side: recbole {rv}, torch {rt}, numpy {rn}, pandas {rp}")
    if load_start is not None:
        lines.append(f"- load average at the start of the run (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in load_start)}")
        if load_start[0] > 0.5:
            lines.append(f"- **the machine was busy at the start** (1-min load {load_start[0]:.2f} before either side "
                         "ran): wall times are inflated by other processes; the process CPU seconds and the ratios "
                         "measured in this run suffer less")
    lines.append(f"- load average at the end of the run (1, 5, 15 min): {load}")
    threads = [f"sarbench {sar['threads']}" if sar else None, f"RecBole {rb['threads']}" if rb else None]
    lines.append(f"- torch threads: {', '.join(t for t in threads if t)}")
    lines += [
        "",
        "## Set-up (same for both)",
        "",
        f"ml-1m, leave-one-out (last two items of each user held out); d={SIZES['hidden']}, "
        f"{SIZES['layers']} layers, {SIZES['heads']} head, feed-forward {SIZES['inner']}, maximum length "
        f"{SIZES['max_len']}, batch {SIZES['batch_size']}, cross-entropy over all items, dropout "
        f"{SIZES['dropout']} and attention dropout {SIZES['attn_dropout']}, CPU.",
        "",
    ]
    if sar:
        mc, tc = sar["model_config"], sar["train_config"]
        lines += [
            f"- sarbench: preset `{PRESET}` at these sizes ({'pre' if mc['norm_first'] else 'post'}-LN, "
            f"{mc['activation'].upper()}, output transform {'on' if mc['output_transform'] else 'off'}, item bias "
            f"{'on' if mc['item_bias'] else 'off'}, {tc['optimizer']} lr {tc['lr']:g} decay {tc['weight_decay']:g}, "
            f"gradient clipping {tc['grad_clip']:g}, length buckets {tc['length_buckets']}), "
            f"{sar['parameters']:,} parameters; one sequence per user "
            f"(its last {SIZES['max_len'] + 1} training items), loss at every position: "
            f"{sar['sequences_per_epoch']:,} sequences, {sar['targets_per_epoch']:,} targets, "
            f"{sar['batches_per_epoch']} batches per epoch. Data fingerprint {sar['fingerprint']} "
            f"({sar['users']:,} users, {sar['items']:,} items, {sar['interactions']:,} interactions).",
        ]
    if rb:
        lines += [
            f"- RecBole: SASRec, `loss_type: CE`, no negative sampling, {rb['learner']} lr {rb['lr']:g} decay "
            f"{rb['weight_decay']:g}, {rb['parameters']:,} "
            f"parameters; every prefix of every training sequence is a sample (history cut to the last "
            f"{SIZES['max_len']} items), the loss at its last position only: {rb['samples_per_epoch']:,} samples, "
            f"{rb['batches_per_epoch']:,} batches per epoch ({rb['users']:,} users, {rb['items']:,} items, "
            f"{rb['interactions']:,} interactions as RecBole read them).",
        ]
    lines += ["", "## Results", "", "| | sarbench Vanilla-AR | RecBole SASRec |", "|---|---|---|"]

    na = "not run"
    sar_cells = dict.fromkeys(("epoch", "batch", "cpu", "tps", "setup", "rss_setup", "rss"), na)
    rb_cells = dict(sar_cells)
    if sar:
        per = ", ".join(f"{t:.2f}" for t in sar["epoch_s"])
        sar_cells.update(
            epoch=f"{fmt_time(s['sar_epoch_s'])} (median of {len(sar['epoch_s'])}: {per} s)",
            batch=f"{s['sar_epoch_s'] / sar['batches_per_epoch']:.3f}",
            cpu=f"{statistics.median(sar['epoch_cpu_s']):.2f} per epoch",
            tps=f"{s['sar_targets_per_s']:,.0f}",
            setup=f"{sar['setup_s']:.1f} s",
            rss_setup=gb(sar["rss_setup_kb"]),
            rss=gb(sar["rss_peak_kb"]),
        )
    rb_ok = rb is not None and "rb_batch_s" in s
    if rb:
        rb_cells.update(setup=f"{rb['prep_s']:.1f} s", rss_setup=gb(rb["rss_prep_kb"]), rss=gb(rb["rss_peak_kb"]))
    if rb_ok:
        rb_cells.update(
            epoch=(f"≈ {fmt_time(s['rb_epoch_s'])} (extrapolated: {rb['batches_per_epoch']:,} batches × "
                   f"{s['rb_batch_s']:.3f} s, mean of {len(rb['batch_s'])} timed batch(es) after "
                   f"{rb['warmup']} warm-up; min {min(rb['batch_s']):.2f}, max {max(rb['batch_s']):.2f} s)"),
            batch=f"{s['rb_batch_s']:.3f}",
            cpu=f"{statistics.fmean(rb['batch_cpu_s']):.3f} per batch",
            tps=f"{s['rb_targets_per_s']:,.1f}",
        )
    for key, label in (("epoch", "epoch time"), ("batch", "seconds per batch"),
                       ("cpu", "process CPU seconds (all threads)"),
                       ("tps", "targets trained per second"), ("setup", "set-up before training"),
                       ("rss_setup", "peak RSS after set-up"), ("rss", "peak RSS")):
        lines.append(f"| {label} | {sar_cells[key]} | {rb_cells[key]} |")
    lines.append("")
    if "speedup" in s:
        lines += [
            f"**Epoch speed-up** (RecBole extrapolated epoch / sarbench epoch): **{s['speedup']:,.0f}×**.",
            "",
            f"**Targets per second** (sarbench / RecBole): **{s['targets_ratio']:,.0f}×**. This is the "
            "work-for-work ratio: RecBole's epoch holds every prefix as its own sample, sarbench's one window "
            "per user with a target at every position.",
            "",
            f"Goal (one sarbench epoch ≤ 15 s and ≥ 5× faster than RecBole): epoch "
            f"{'met' if s['sar_epoch_s'] <= 15 else 'NOT met'} ({s['sar_epoch_s']:.2f} s), speed-up "
            f"{'met' if s['speedup'] >= 5 else 'NOT met'} ({s['speedup']:,.0f}×).",
            "",
        ]
    if rb_ok and len(rb["batch_s"]) < 20:
        lines += [f"Only {len(rb['batch_s'])} RecBole batch(es) timed: a smoke run, not a measurement.", ""]
    lines += [
        "## Commands",
        "",
        "```",
        command,
        "```",
        "",
        "DATA_DIR is the folder holding ml-1m.txt; RECBOLE_PY is the python of an environment with RecBole "
        "1.2.1 (see tools/README.md). Each side runs in a subprocess of its own: the sarbench side with this "
        "python, the RecBole side with RECBOLE_PY on a script generated into a temporary folder.",
        "",
    ]
    return "\n".join(lines)


def public_command(argv: list[str]) -> str:
    """The command line of this run, with the data folder and the RecBole python as placeholders."""
    out, skip = [], None
    for a in argv:
        if skip:
            out.append(skip)
            skip = None
            continue
        if a in ("--data-dir", "--recbole-python"):
            out.append(a)
            skip = "DATA_DIR" if a == "--data-dir" else "RECBOLE_PY"
        elif a.startswith("--data-dir="):
            out.append("--data-dir=DATA_DIR")
        elif a.startswith("--recbole-python="):
            out.append("--recbole-python=RECBOLE_PY")
        else:
            out.append(a)
    return "python tools/compare_recbole.py " + shlex.join(out)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None, help="folder with ml-1m.txt (default: $SARBENCH_DATA)")
    ap.add_argument("--recbole-python", default=None, help="python of the RecBole environment")
    ap.add_argument("--recbole-batches", type=int, default=40, help="timed RecBole batches (default 40)")
    ap.add_argument("--recbole-warmup", type=int, default=1, help="untimed RecBole batches before those (default 1)")
    ap.add_argument("--epochs", type=int, default=2, help="timed sarbench epochs (default 2)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads on both sides (default: torch's own)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=["sarbench", "recbole"], default=None, help="run one side only")
    ap.add_argument("--out", default="reports/speed_recbole.md", help="Markdown report ('-' = print only)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds allowed to each side (default 3600)")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--sarbench-worker", default=None, help=argparse.SUPPRESS)  # internal: JSON output path
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(message)s",
                        stream=sys.stderr)

    if args.sarbench_worker:
        result = sarbench_side(args.data_dir, args.epochs, args.threads, args.seed)
        Path(args.sarbench_worker).write_text(json.dumps(result))
        return 0

    if args.epochs < 1 or args.recbole_batches < 1 or args.recbole_warmup < 0:
        ap.error("--epochs and --recbole-batches must be >= 1, --recbole-warmup >= 0")
    run_recbole = args.only != "sarbench"
    run_sarbench = args.only != "recbole"
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    rb_versions = None
    if run_recbole:
        if not args.recbole_python:
            ap.error("--recbole-python is required (or --only sarbench)")
        rb_versions = check_recbole_python(args.recbole_python)
        log.info("RecBole environment: recbole, torch, numpy, pandas = %s", rb_versions)

    sar = rb = None
    with tempfile.TemporaryDirectory(prefix="compare_recbole_") as tmp:
        tmp = Path(tmp)
        if run_sarbench:
            out = tmp / "sarbench.json"
            cmd = [sys.executable, str(Path(__file__).resolve()), "--sarbench-worker", str(out),
                   "--epochs", str(args.epochs), "--threads", str(args.threads), "--seed", str(args.seed)]
            if args.data_dir:
                cmd += ["--data-dir", args.data_dir]
            sar = run_side(cmd, out, None, "sarbench side", args.timeout)
            log.info("sarbench: epochs %s s", ", ".join(f"{t:.2f}" for t in sar["epoch_s"]))
        if run_recbole:
            from sarbench.data import load_dataset

            ds = load_dataset(DATASET, args.data_dir)
            atomic = write_atomic(ds, tmp / "data")
            log.info("wrote %s (%d interactions)", atomic, len(ds.items))
            script = tmp / "recbole_side.py"
            script.write_text(recbole_script())
            out = tmp / "recbole.json"
            work = tmp / "work"  # RecBole writes log/, log_tensorboard/ and saved/ into its working folder
            work.mkdir()
            cmd = [args.recbole_python, str(script), "--data-path", str(tmp / "data"), "--batches",
                   str(args.recbole_batches), "--warmup", str(args.recbole_warmup), "--threads", str(args.threads),
                   "--seed", str(args.seed), "--out", str(out)]
            rb = run_side(cmd, out, str(work), "RecBole side", args.timeout)
            if rb["batch_s"]:
                log.info("RecBole: %.3f s per batch over %d batches", statistics.fmean(rb["batch_s"]), len(rb["batch_s"]))
            if sar and rb["interactions"] != sar["interactions"]:
                log.warning("RecBole read %d interactions, sarbench %d: the sides did not train the same data",
                            rb["interactions"], sar["interactions"])

    text = report(sar, rb, rb_versions, public_command(argv), load_start)
    print(text)
    if args.out != "-":
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        log.info("report written to %s", path)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SideFailed as e:
        log.error("%s", e)
        sys.exit(1)
