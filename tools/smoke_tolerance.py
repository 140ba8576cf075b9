"""Measure the spread of every smoke case, and write it where the smoke baseline reads its tolerances.

    python tools/smoke_tolerance.py --reference DIR [--perturbed LABEL=DIR ...] [--out reports/baseline/smoke_spread.json]

Each DIR is the results folder of a run of the smoke cases through the benchmark's own code path:

    pytest bench --results DIR0                                        # the reference (seed 0 of every case)
    ATEN_CPU_CAPABILITY=avx2 pytest bench --results DIR1               # torch's kernels for another instruction set
    MKL_CBWR=COMPATIBLE pytest bench -m vanilla --results DIR2         # MKL's portable path
    pytest bench -m vanilla --seeds 5 --results DIR0                   # seeds 1-4 of the vanilla cases

(the perturbed runs fail their exact comparison with the committed baseline: that is what is
measured). A record of a perturbed folder is paired with the reference's by its key, which names
the configuration, data, seed, scale and results version and nothing of the platform. Per case the
file gets, for each perturbation, the largest relative move of the model's test metrics (both
exclusion rules) from the reference, and, where seeds 1-4 exist, each metric's mean and standard
deviation over the seeds. ``sarbench.smoke_baseline.portable_tolerance`` turns the kernel moves into
the case's tolerance off its platform; ``pytest bench --update-baseline`` writes it into smoke.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sarbench.smoke_baseline import smoke_values  # noqa: E402
from sarbench.store import ResultStore  # noqa: E402

MODEL_GROUPS = ("model/input", "model/history")
MEASURED_GROUPS = ("training/loss", *MODEL_GROUPS)  # most-popular is compared exactly everywhere


def metric_moves(ours: dict, ref: dict) -> dict[str, float]:
    """The relative move of every measured number ("<group> <name>": move) from the reference."""
    out = {}
    for group in MEASURED_GROUPS:
        for name, base in ref.get(group, {}).items():
            value = ours.get(group, {}).get(name)
            if value is not None and base:
                out[f"{group} {name}"] = round(abs(value - base) / abs(base), 6)
    return out


def largest_move(ours: dict, ref: dict) -> tuple[float, str]:
    """The largest relative move of the model's metrics, and where it is."""
    worst, where = 0.0, ""
    for group in MODEL_GROUPS:
        for name, base in ref.get(group, {}).items():
            value = ours.get(group, {}).get(name)
            if value is None or not base:
                continue
            move = abs(value - base) / abs(base)
            if move > worst:
                worst, where = move, f"{group} {name} {value:.4f} vs {base:.4f}"
    return worst, where


def measure(reference: Path, perturbed: dict[str, Path]) -> dict:
    ref_records = [r for r in ResultStore(reference).records() if r.scale == "smoke"]
    by_key = {label: {r.key: r for r in ResultStore(folder).records()} for label, folder in perturbed.items()}
    cases: dict[str, dict] = {}
    for rec in ref_records:
        if rec.seed != 0:
            continue
        values = smoke_values(rec)
        entry = cases.setdefault(rec.case_id, {"kernels": {}, "kernel_moves": {}, "attention": rec.attention})
        for label, records in by_key.items():
            other = records.get(rec.key)
            if other is None:
                continue
            move, where = largest_move(smoke_values(other), values)
            entry["kernels"][label] = round(move, 6)
            entry["kernel_moves"][label] = where or "none"
            entry.setdefault("metric_kernels", {})[label] = metric_moves(smoke_values(other), values)
    seeds: dict[str, list] = {}
    for rec in ref_records:
        seeds.setdefault(rec.case_id, []).append(rec)
    for case_id, recs in seeds.items():
        if len({r.seed for r in recs}) < 3 or case_id not in cases:
            continue
        per_metric = {}
        for name in sorted(recs[0].metrics):
            xs = [r.metrics[name] for r in sorted(recs, key=lambda r: r.seed)]
            mean = statistics.fmean(xs)
            per_metric[name] = {"mean": round(mean, 6), "sd": round(statistics.stdev(xs), 6),
                                "rel_sd": round(statistics.stdev(xs) / mean, 4) if mean else None}
        per_number = {}
        numbers = [smoke_values(r) for r in sorted(recs, key=lambda r: r.seed)]
        for group in MEASURED_GROUPS:
            for name in numbers[0].get(group, {}):
                xs = [v[group][name] for v in numbers if name in v.get(group, {})]
                mean = statistics.fmean(xs)
                if len(xs) >= 3 and mean:
                    per_number[f"{group} {name}"] = round(statistics.stdev(xs) / abs(mean), 6)
        cases[case_id]["seeds"] = {"n": len(recs), "metrics": per_metric, "rel_sd": per_number}
    return {k: v for k, v in cases.items() if v["kernels"] or "seeds" in v}  # measured cases only


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference", type=Path, required=True)
    ap.add_argument("--perturbed", action="append", default=[], metavar="LABEL=DIR")
    ap.add_argument("--out", type=Path, default=Path("reports/baseline/smoke_spread.json"))
    ap.add_argument("--how", default="", help="the commands that made the folders, stored with the numbers")
    ap.add_argument("--merge", action="store_true",
                    help="replace only the measured cases' entries of an existing --out file, keep the others")
    args = ap.parse_args(argv)
    perturbed = {}
    for item in args.perturbed:
        label, sep, folder = item.rpartition("=")
        if not sep or not label:
            ap.error(f"--perturbed takes LABEL=DIR, got {item!r}")
        perturbed[label] = Path(folder)
    cases = measure(args.reference, perturbed)
    how = args.how or f"python tools/smoke_tolerance.py (perturbations: {', '.join(perturbed)})"
    if args.merge and args.out.exists():
        old = json.loads(args.out.read_text(encoding="utf-8"))
        how = f"{old.get('how', '')}\nThen, for {', '.join(sorted(cases))}: {how}"
        cases = {**old.get("cases", {}), **cases}
    data = {"how": how, "cases": dict(sorted(cases.items()))}
    args.out.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    moved = sorted(((max(c["kernels"].values(), default=0.0), k) for k, c in cases.items()), reverse=True)
    print(f"wrote {args.out}: {len(cases)} cases; largest kernel-level moves:")
    for move, case in moved[:12]:
        print(f"  {case}: {move:.2%}  ({'; '.join(f'{l}: {w}' for l, w in cases[case]['kernel_moves'].items())})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
