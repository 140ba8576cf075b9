"""The Python steps of gpu_check/gpu_check.sh: environment check, kill-and-resume, weights archive and summary.

    python gpu_check/gpu_check_steps.py env --datasets ml-1m ... [--require-cuda]
    python gpu_check/gpu_check_steps.py resume --device cuda --dataset synthetic --results DIR
    python gpu_check/gpu_check_steps.py summary --work DIR [--models-archive FILE --limit-mib 15]

Each prints what it found; a non-zero exit status means the step failed, with the reason on stderr.
Run from the checkout root with the checkout on PYTHONPATH (the script does both).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

# --- env -------------------------------------------------------------------------------------------


def cmd_env(args) -> int:
    """Python, torch, CUDA, the sarbench being imported, its code version, and the datasets (loud if missing)."""
    import torch

    import sarbench
    from sarbench.data import DATASETS, DatasetMissing, data_dir, find_dataset_file
    from sarbench.store import code_version

    cuda = torch.cuda.is_available()
    print(f"python {platform.python_version()} ({sys.executable}); torch {torch.__version__}; "
          f"CUDA available: {cuda}; {os.cpu_count()} CPUs")
    if cuda:
        props = torch.cuda.get_device_properties(0)
        print(f"GPU: {torch.cuda.get_device_name(0)}, {props.total_memory / 2**30:.0f} GiB, compute capability "
              f"{props.major}.{props.minor}, {torch.cuda.device_count()} device(s); CUDA {torch.version.cuda}")
    print(f"sarbench from {Path(sarbench.__file__).parent}; code version {code_version()}")
    print(f"data folder: {data_dir()}")
    problems = []
    if args.require_cuda and not cuda:
        problems.append("no CUDA device is visible to torch (torch.cuda.is_available() is False)")
    for name in args.datasets:
        try:
            found = find_dataset_file(name, None)
        except DatasetMissing as exc:
            found, reason = None, str(exc)
        else:
            reason = f"{DATASETS[name].filename}[.gz] is not in {data_dir()}"
        if found is None:
            problems.append(f"dataset {name}: {reason}")
        else:
            print(f"dataset {name}: {found[0]} ({found[0].stat().st_size / 2**20:.1f} MiB)")
    for problem in problems:
        print(f"gpu_check: FAILED: {problem}", file=sys.stderr)
    if any(p.startswith("dataset") for p in problems):
        print("gpu_check: prepare the data before sending the checkout: `python gpu_check/prepare_gpu_data.py` "
              "(with SARBENCH_DATA set), and send the .gpu-data folder along", file=sys.stderr)
    return 1 if problems else 0


# --- kill-and-resume ---------------------------------------------------------------------------------

EPOCH_LINE = re.compile(r" seed \d+: epoch\s+(\d+) loss ")  # `sarbench run`'s line, printed after the checkpoint
STOPPED_LINE = re.compile(r"stopped \((\w+)\) after (\d+) epochs")


def _run_case_process(cmd: list[str], kill_after_epoch: int | None, timeout: float) -> tuple[int, list[str]]:
    """Run ``sarbench run``; with ``kill_after_epoch``, send SIGTERM once that epoch's line is printed."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines, signalled, deadline = [], False, time.monotonic() + timeout
    for line in proc.stdout:
        print(line, end="", flush=True)
        lines.append(line.rstrip("\n"))
        m = EPOCH_LINE.search(line)
        if kill_after_epoch and not signalled and m and int(m.group(1)) >= kill_after_epoch:
            print(f"resume check: sending SIGTERM after epoch {m.group(1)}", flush=True)
            proc.send_signal(signal.SIGTERM)
            signalled = True
        if time.monotonic() > deadline:
            proc.kill()
            break
    return proc.wait(), lines


def cmd_resume(args) -> int:
    """Stop one case with SIGTERM after its first epoch, start it again: it must resume where it stopped."""
    base = [sys.executable, "-m", "sarbench.cli", "-v", "run", "--dataset", args.dataset, "--attention", "AR",
            "--scale", "smoke", "--device", args.device, "--results", args.results]
    rc, first = _run_case_process(base + ["--max-minutes", "10"], kill_after_epoch=1, timeout=args.timeout / 2)
    stop = next((STOPPED_LINE.search(line) for line in first if STOPPED_LINE.search(line)), None)
    if rc != 0 or stop is None or stop.group(1) != "interrupted":
        print(f"resume check FAILED: the first run should stop cleanly on SIGTERM (stopped=interrupted); exit "
              f"status {rc}, stop line {stop.group(0) if stop else 'none'}", file=sys.stderr)
        return 1
    done = int(stop.group(2))
    rc, second = _run_case_process(base + ["--max-minutes", str(args.resume_minutes)], None, args.timeout / 2)
    epochs = [int(m.group(1)) for m in map(EPOCH_LINE.search, second) if m]
    resumed = any(f"at epoch {done}" in line and "resumed from" in line for line in second)
    stop = next((STOPPED_LINE.search(line) for line in second if STOPPED_LINE.search(line)), None)
    if rc != 0 or not resumed or not epochs or epochs[0] != done + 1 or stop is None or int(stop.group(2)) <= done:
        print(f"resume check FAILED: the second run should resume after epoch {done} and train on; exit status "
              f"{rc}, resumed line {'found' if resumed else 'missing'}, epochs trained {epochs}, stop line "
              f"{stop.group(0) if stop else 'none'}", file=sys.stderr)
        return 1
    print(f"resume check passed: stopped by SIGTERM after epoch {done}, resumed at epoch {epochs[0]}, "
          f"{stop.group(0)} on {args.device}")
    return 0


# --- the models archive --------------------------------------------------------------------------------


def pack_models(results: Path, archive: str, limit_mib: float) -> list[str]:
    """Best-validation weights of the finished cases into ``archive``, ml-1m first then the smallest,
    within the size limit; returns a line per weight file (packed or left out)."""
    from sarbench.store import ResultStore

    records = ResultStore(results).records() if results.is_dir() else []
    weights = [(r.dataset, results / "models" / f"{r.key}.pt") for r in records]
    weights = [(d, p) for d, p in weights if p.is_file()]
    weights.sort(key=lambda dp: (dp[0] != "ml-1m", dp[1].stat().st_size))
    limit, packed, left = limit_mib * 2**20, [], []
    total = 0
    for dataset, path in weights:
        size = path.stat().st_size  # weights hardly compress: count them whole
        (packed if total + size <= limit else left).append((dataset, path))
        total += size if total + size <= limit else 0
    if packed:
        tmp = Path(archive + ".part")
        with tarfile.open(tmp, "w:gz", compresslevel=1) as tar:
            for _, path in packed:
                tar.add(path, arcname=f"results/models/{path.name}")
        tmp.replace(archive)
    lines = [f"packed {p.name} ({d}, {p.stat().st_size / 2**20:.1f} MiB)" for d, p in packed]
    return lines + [f"left out {p.name} ({d}, {p.stat().st_size / 2**20:.1f} MiB): over the {limit_mib:g} MiB limit"
                    for d, p in left]


# --- the summary ---------------------------------------------------------------------------------------


def _steps(work: Path) -> list[list[str]]:
    path = work / "steps.tsv"
    return [line.split("\t") for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _pytest_tally(log: Path) -> str:
    """The closing line of a pytest log ('3 passed, 1 failed in 12.3s'), or ''."""
    if not log.exists():
        return ""
    tally = re.compile(r"\b\d+ (passed|failed|skipped|error|errors|deselected)\b")
    lines = [line.strip("= ") for line in log.read_text(errors="replace").splitlines() if tally.search(line)]
    return lines[-1] if lines else ""


def _last_line_starting(log: Path, prefix: str) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.startswith(prefix)] \
        if log.exists() else []
    return lines[-1] if lines else ""


def _last_epoch(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    return lines[-1].split(" ", 1)[-1] if lines else "no epoch finished"


def _paper(dataset: str, attention: str) -> dict:
    try:
        from sarbench.paper import paper_cells

        cells = paper_cells("vanilla")
        cells = cells[(cells.dataset == dataset) & (cells.attention == attention)]
        return dict(zip(cells.metric, cells.value))
    except Exception:  # noqa: BLE001 - the summary must be written whatever else is broken
        return {}


def case_lines(results: Path) -> list[str]:
    """One line per record (epochs, stop reason, wall time, test metrics beside the paper's); then cases
    that left an epoch log but no record (killed mid-training)."""
    from sarbench.store import ResultStore

    records = sorted(ResultStore(results).records(), key=lambda r: (r.dataset != "ml-1m", r.case_id, r.seed))
    out = []
    for r in records:
        paper = _paper(r.dataset, r.attention) if r.scale == "paper" else {}
        metrics = "  ".join(
            f"{m} {r.metrics[m]:.4f}" + (f" (paper {paper[m]:.4f})" if m in paper else "")
            for m in ("N@10", "R@10") if m in r.metrics)
        seconds = r.extra.get("epoch_seconds") or []
        per_epoch = f", {sorted(seconds)[len(seconds) // 2]:.1f} s/epoch" if seconds else ""
        out.append(f"  {r.case_id} seed {r.seed} on {r.gpu or r.device}: {r.epochs} epochs (best "
                   f"{r.extra.get('best_epoch')}), stopped={r.extra.get('stopped')}, {r.wall_time_s:.0f} s"
                   f"{per_epoch}; test {metrics}")
    logged = {p.name.split(".s")[0] for p in (results / "logs").glob("*.log")} if (results / "logs").is_dir() else set()
    from sarbench.cases import DESIGN_VARIANT

    design = {variant: name for name, variant in DESIGN_VARIANT.items()}
    recorded = {f"{r.table}_{r.dataset}-{design.get(r.variant, r.variant)}-{r.attention}" for r in records}
    for name in sorted(logged - recorded):
        log = next((results / "logs").glob(f"{name}.s*.log"))
        out.append(f"  {name}: NO RECORD (stopped before the case finished); last: {_last_epoch(log)}")
    return out


def cmd_summary(args) -> int:
    """The models archive (when there are weights), then summary.txt in the work folder."""
    work = Path(args.work)
    models = []
    if args.models_archive and (work / "results" / "models").is_dir():
        models = pack_models(work / "results", args.models_archive, args.limit_mib)
    env = (work / "logs" / "env.log").read_text(errors="replace").splitlines() if (work / "logs" / "env.log").exists() else []
    lines = [f"GPU check summary ({time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())})"]
    lines += [f"  {line}" for line in env if line.startswith(("python", "GPU:", "sarbench from", "gpu_check:"))]
    settings = work / "settings.txt"
    if settings.exists():
        lines += [f"  {line}" for line in settings.read_text().splitlines()]
    lines.append("steps (status, seconds, limit):")
    failures = []
    for name, status, seconds, limit, *note in _steps(work):
        log = work / "logs" / f"{name}.log"
        tally = _pytest_tally(log) or _last_line_starting(log, "resume check")
        extra = "; ".join(x for x in (*note, tally) if x)
        lines.append(f"  {name:<22} {status:<10} {seconds:>5} s / {limit:>4} s" + (f"  {extra}" if extra else ""))
        if log.exists():
            failures += [f"  {name}: {line[:240]}" for line in log.read_text(errors="replace").splitlines()
                         if line.startswith(("FAILED ", "ERROR "))]
    if failures:
        lines += ["failed tests (see logs/):"] + failures[:20]
    speed = work / "preflight" / "speed_epoch.md"
    if speed.exists():
        rows = [line for line in speed.read_text().splitlines() if line.startswith("| ") and "---" not in line]
        lines += ["epoch benchmark (preflight; one process alone on the device):"] + [f"  {row}" for row in rows]
    for title, folder in (("preflight cases", work / "preflight" / "results"), ("cases", work / "results")):
        if folder.is_dir():
            cases = case_lines(folder)
            lines += [f"{title}:"] + (cases or ["  none"])
    if models:
        lines += ["model weights (gpu-check-models.tar.gz):"] + [f"  {line}" for line in models]
    stop = work / "stopped_by.txt"
    if stop.exists():
        lines.append(f"STOPPED EARLY: {stop.read_text().strip()}")
    text = "\n".join(lines) + "\n"
    (work / "summary.txt").write_text(text)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("env")
    p.add_argument("--datasets", nargs="*", default=[])
    p.add_argument("--require-cuda", action="store_true")
    p.set_defaults(func=cmd_env)
    p = sub.add_parser("resume")
    p.add_argument("--device", required=True)
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--results", required=True)
    p.add_argument("--resume-minutes", type=float, default=0.01, help="time cap of the resumed run")
    p.add_argument("--timeout", type=float, default=120.0)
    p.set_defaults(func=cmd_resume)
    p = sub.add_parser("summary")
    p.add_argument("--work", required=True)
    p.add_argument("--models-archive", default=None, help="also pack the best weights into this archive")
    p.add_argument("--limit-mib", type=float, default=15.0)
    p.set_defaults(func=cmd_summary)
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
