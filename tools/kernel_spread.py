"""What moves when only the floating-point kernels change: the measurement behind the tolerances of
the results-version guard (tests/test_results_version.py) and of the smoke baseline off its platform.

    python tools/kernel_spread.py golden [--out reports/kernel_spread_golden.md]
    python tools/kernel_spread.py smoke CASE_ID [CASE_ID ...] [--data-dir DIR] [--out FILE.json]

Each perturbation runs in a process of its own, since the kernels are chosen when torch loads:

    ATEN_CPU_CAPABILITY=avx2 / default    torch's own vectorised kernels for another instruction set
    MKL_ENABLE_INSTRUCTIONS=AVX2          MKL's matrix products as on an AVX2-only CPU
    MKL_CBWR=COMPATIBLE                   MKL's conditional numerical reproducibility, the portable path
    2 threads                             reductions summed in another order

``golden`` runs the guard's ten tiny cases under each and reports, per case, how far the losses,
the trained weights (relative to their norm) and the test metrics moved from the unperturbed run,
beside how far the guard's deliberate small changes (SMALL_CHANGES) move them. ``smoke`` trains
the named smoke cases under each perturbation and writes their smoke values (sarbench.regression).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PERTURBATIONS = {
    "none": {},
    "ATEN_CPU_CAPABILITY=avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "ATEN_CPU_CAPABILITY=default": {"ATEN_CPU_CAPABILITY": "default"},
    "MKL_ENABLE_INSTRUCTIONS=AVX2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "MKL_CBWR=COMPATIBLE": {"MKL_CBWR": "COMPATIBLE"},
    "2 threads": {"SARBENCH_SPREAD_THREADS": "2"},
}


def _child_golden() -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT))
    import torch

    import test_results_version as guard

    threads = int(os.environ.get("SARBENCH_SPREAD_THREADS", "1"))
    dtype = torch.float32 if os.environ.get("SARBENCH_SPREAD_DTYPE") == "float32" else torch.float64
    real = torch.set_num_threads
    torch.set_num_threads = lambda n: real(threads)  # the guard sets one thread; the perturbation may not
    out = {"capability": torch.backends.cpu.get_cpu_capability(),
           "cases": {name: guard.golden_numbers(name, dtype) for name in guard.CASES}}
    if os.environ.get("SARBENCH_SPREAD_CHANGES"):
        import sarbench.presets as presets

        preset = presets.preset
        out["changes"] = {}
        for change, fn in guard.SMALL_CHANGES.items():
            presets.preset = lambda *a, _fn=fn, **kw: _fn(*preset(*a, **kw))
            out["changes"][change] = guard.golden_numbers("vanilla-AR", dtype)
        presets.preset = preset
    print(json.dumps(out))


def _run(env_extra: dict, args: list[str], base: dict | None = None) -> dict:
    env = {**os.environ, **(base or {}), **env_extra, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, __file__, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{args} under {env_extra} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def distance(got: dict, want: dict) -> dict:
    """The largest moves of got from want: relative loss, weights relative to their norm, metric (absolute)."""
    loss = max(abs(a - b) / abs(b) for a, b in zip(got["loss"], want["loss"]))
    norm = want["weights"]["norm"]
    weights = max([abs(a - b) / norm for a, b in zip(got["weights"]["projections"], want["weights"]["projections"])]
                  + [abs(got["weights"]["norm"] - norm) / norm])
    metric = max(abs(got["test"][r][m] - v) for r, ms in want["test"].items() for m, v in ms.items())
    return {"loss": loss, "weights": weights, "metric": metric}


def golden_table(dtype: str) -> tuple[list[str], dict]:
    runs = {}
    for label, env in PERTURBATIONS.items():
        extra = {"SARBENCH_SPREAD_CHANGES": "1"} if label == "none" else {}
        runs[label] = _run({**env, **extra, "SARBENCH_SPREAD_DTYPE": dtype}, ["--child-golden"])
    base = runs["none"]
    lines = [f"## {dtype}", "", "| perturbation | CPU kernels | losses | weights | metrics |", "|---|---|---|---|---|"]
    worst = {"loss": 0.0, "weights": 0.0, "metric": 0.0}
    for label, run in runs.items():
        if label == "none":
            continue
        d = [distance(run["cases"][n], base["cases"][n]) for n in base["cases"]]
        row = {k: max(x[k] for x in d) for k in worst}
        worst = {k: max(worst[k], row[k]) for k in worst}
        lines.append(f"| {label} | {run['capability']} | {row['loss']:.1e} | {row['weights']:.1e} | {row['metric']:.4f} |")
    lines += ["", "| deliberate change (vanilla-AR) | | losses | weights | metrics |", "|---|---|---|---|---|"]
    for change, got in base["changes"].items():
        d = distance(got, base["cases"]["vanilla-AR"])
        lines.append(f"| {change} | | {d['loss']:.1e} | {d['weights']:.1e} | {d['metric']:.4f} |")
    return lines + [""], {"capability": base["capability"], "worst": worst}


def golden(out: str | None) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    body, info = [], {}
    for dtype in ("float32", "float64"):
        lines, info[dtype] = golden_table(dtype)
        body += lines
    lines = ["# Kernel-level spread of the results-version guard's golden numbers", "",
             f"`python tools/kernel_spread.py golden --out reports/kernel_spread_golden.md` on a "
             f"{info['float64']['capability']} CPU. Each row: the largest move, over the guard's ten tiny cases "
             "(tests/test_results_version.py), of the per-epoch losses (relative), the trained weights (fixed "
             "random projections, relative to the weights' norm) and the test metrics (absolute), from the "
             "unperturbed run; below, what the guard's deliberate small changes move (vanilla-AR). The guard "
             "trains in float64: there the two blocks lie orders of magnitude apart, in float32 they overlap.",
             "", *body]
    text = "\n".join(lines) + "\n"
    print(text)
    print("largest kernel-level move:", json.dumps(info))
    if out:
        Path(out).write_text(text, encoding="utf-8")


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child-golden":
        return _child_golden()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["golden"])
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    golden(args.out)


if __name__ == "__main__":
    main()
