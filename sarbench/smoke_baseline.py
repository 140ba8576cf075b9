"""The smoke baseline: what every smoke case computed, and how a new run is compared with it.

``reports/baseline/smoke.json`` holds, by case id and seed, the test metrics of the model *and* of
the most-popular baseline under both exclusion rules and the first and last training loss (see
:func:`smoke_values`), the model's per-user test ranks (authors' rule, packed), the data fingerprint,
the code that made them, and the case's *portable tolerance*. Its ``platform`` block names what the
numbers are exactly reproducible on: the torch build, the device, the CPU and torch's kernels.

A new run of a case is compared in one of two ways (:func:`check_smoke_baseline`):

* **on the baseline's platform, exactly**: every number to the stored 6 decimals (``ROUNDING``). At
  the smoke scale's fixed thread count a rerun repeats every digit, beside any load;
* **on another platform** (another CPU, torch's kernels for another instruction set; or forced with
  ``SARBENCH_PORTABLE_BASELINE=1``, as the tests do), within the case's portable tolerance, measured
  (``reports/baseline/smoke_spread.json``, made by ``tools/smoke_tolerance.py``) from what moves when
  only the floating-point kernels change, plus a paired per-user test of the run's ranks against the
  stored ones: the case fails when it is worse than the baseline by more than the tolerance at
  p < 0.01. Most-popular's numbers are integer counts and compare exactly everywhere.

A case on a dataset or with a model that is not the suite's own (declared in ``datasets.toml``,
registered from outside) keeps its baseline in the user's results folder (``<results>/baseline/``
or the file ``--baseline-file`` names): its first run records it, the next ones compare with it.
"""

from __future__ import annotations

import base64
import fcntl
import json
import logging
import os
import platform
import tempfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

BASELINE_DIR = Path("reports") / "baseline"
SMOKE_FILE = "smoke.json"
SPREAD_FILE = "smoke_spread.json"
PORTABLE_ENV = "SARBENCH_PORTABLE_BASELINE"  # "1": compare as on another platform, wherever this runs
WORSE_ALPHA = 0.01  # the paired test of a run against the baseline's per-user ranks


@dataclass(frozen=True)
class Tolerance:
    """A number passes when ``|ours - base| <= max(abs, rel * |base|)``."""

    rel: float
    abs: float

    def band(self, base: float) -> float:
        return max(self.abs, self.rel * abs(base))

    def allows(self, ours: float, base: float) -> bool:
        return abs(ours - base) <= self.band(base)


ROUNDING = Tolerance(rel=0.0, abs=1e-6)  # the stored 6 decimals: the whole tolerance on the same platform
# On another platform, before a case's spread is measured: no measured move is assumed small.
UNMEASURED = Tolerance(rel=0.05, abs=1e-6)
# A measured tolerance is this many times the largest move the kernel perturbations made, and at least
# PORTABLE_FLOOR (the cases that moved by nothing under every perturbation: another CPU may still move them
# in the last digits of the loss, which 12 epochs of an AR model do not amplify past 1%).
KERNEL_FACTOR = 2.0
PORTABLE_FLOOR = Tolerance(rel=0.01, abs=1e-6)
# A case whose tolerance comes out wider than this is *unstable* at the smoke scale: its tolerance off its
# platform is as wide as its spread, wider than what some breaks move, and its entry says so.
UNSTABLE_MOVE = 0.10
SEED_SDS = 3.0

# What a smoke entry holds, as "<scorer>/<exclusion rule>". The model's primary ("input") metrics are
# what every comparison uses; the full-history rule and the untrained most-popular baseline are
# guarded too, because some regressions show nowhere else: dropping the full-history exclusion moves
# only "history" numbers, and ties counted in the target's favour change nothing for a trained model
# (its float scores do not tie) but lift most-popular, whose integer counts tie everywhere.
SMOKE_GROUPS = ("training/loss", "model/input", "model/history", "most-popular/input", "most-popular/history")


def smoke_values(record) -> dict[str, dict[str, float]]:
    """The numbers a smoke entry holds for ``record``, keyed by SMOKE_GROUPS (groups it lacks are left out)."""
    extra = record.extra or {}
    model = dict(extra.get("metrics_by_rule") or {})
    model.setdefault(extra.get("exclusion", "input"), record.metrics)
    popular = dict(extra.get("most_popular_by_rule") or {})
    if "most_popular" in extra:
        popular.setdefault(extra.get("exclusion", "input"), extra["most_popular"])
    values = {}
    losses = extra.get("epoch_loss") or []
    if losses:
        values["training/loss"] = {"first epoch": round(float(losses[0]), 6), "last epoch": round(float(losses[-1]), 6)}
    for group in SMOKE_GROUPS:
        scorer, rule = group.split("/")
        if scorer == "training":
            continue
        metrics = (model if scorer == "model" else popular).get(rule)
        if metrics:
            values[group] = {k: round(float(v), 6) for k, v in sorted(metrics.items())}
    return values


# --- platform ------------------------------------------------------------------------------------------
def smoke_platform(device: str = "cpu") -> dict:
    """What smoke numbers are exactly reproducible on: the torch build, the device, the CPU and its kernels."""
    import torch

    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    except OSError:
        pass
    return {"torch": torch.__version__, "device": str(device).split(":")[0],
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu": model or platform.processor(),
            "mkl_cbwr": os.environ.get("MKL_CBWR", "")}


def platform_difference(baseline: dict, record) -> str:
    """Why ``record``'s platform is not the baseline's ("" when it is: then numbers compare exactly)."""
    if os.environ.get(PORTABLE_ENV, "") not in ("", "0"):
        return f"{PORTABLE_ENV} is set"
    made, here = baseline.get("platform") or {}, smoke_platform(getattr(record, "device", "cpu"))
    differ = [f"{k} {made.get(k, '')!r} vs {here[k]!r}" for k in here if made.get(k, "") != here[k]]
    return "; ".join(differ)


# --- per-user ranks, packed --------------------------------------------------------------------------
def pack_ints(values) -> str:
    """Non-negative integers as base64 of zlib-compressed little-endian int32 (about 1-2 bytes a user)."""
    arr = np.asarray(values, dtype="<i4")
    return base64.b64encode(zlib.compress(arr.tobytes(), 9)).decode("ascii")


def unpack_ints(text: str) -> np.ndarray:
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype="<i4").astype(np.int64)


def _ranks(record) -> tuple[np.ndarray, np.ndarray] | None:
    per_user = getattr(record, "per_user", None) or {}
    if "users" not in per_user or "rank" not in per_user:
        return None
    return np.asarray(per_user["users"], dtype=np.int64), np.asarray(per_user["rank"], dtype=np.int64)


# --- the tolerance of a case off its platform ---------------------------------------------------------
def load_spread(folder: Path = BASELINE_DIR) -> dict:
    path = Path(folder) / SPREAD_FILE
    if not path.exists():
        return {"cases": {}}
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def portable_tolerance(spread_entry: dict | None) -> tuple[Tolerance, str]:
    """A case's tolerance off its platform, from its measured spread, and how it was set.

    A case no kernel-level perturbation moved is *bit-stable*: its tolerance is PORTABLE_FLOOR. A case
    one moved is *chaotic* (float noise changes its training path, as another seed would): its
    tolerance is KERNEL_FACTOR x the largest move, and at least SEED_SDS standard deviations over
    seeds where those were measured. An AE case with measured seeds counts as chaotic even when no
    perturbation here moved it: on another vendor's CPU, AE cases that were bit-stable under these
    perturbations moved like a reseed (video AE by 12.5% on an Intel Xeon), AR cases never did.
    Over UNSTABLE_MOVE it is flagged unstable. This is the case's widest tolerance; where the spread
    was measured number by number (:func:`metric_tolerances`), each number is held to its own.
    """
    if not spread_entry or not spread_entry.get("kernels"):
        return UNMEASURED, "kernel spread not measured: the default"
    move = max(spread_entry["kernels"].values())
    seeds = (spread_entry.get("seeds") or {}).get("metrics") or {}
    if move == 0.0 and not (seeds and spread_entry.get("attention") == "AE"):
        return PORTABLE_FLOOR, f"bit-stable: no kernel-level perturbation moved it; {PORTABLE_FLOOR.rel:.0%}"
    per_number = metric_tolerances(spread_entry)
    if per_number:
        rel = max(per_number.values())
        n = (spread_entry.get("seeds") or {}).get("n")
        over_seeds = f", {SEED_SDS:g} x its relative standard deviation over {n} seeds" if n else ""
        how = (f"chaotic (largest kernel-level move {move:.2%}): each number within max({PORTABLE_FLOOR.rel:.0%}, "
               f"{KERNEL_FACTOR:g} x its own kernel-level move{over_seeds}), {min(per_number.values()):.2%}-{rel:.2%}")
        if rel > UNSTABLE_MOVE:
            how += f"; unstable at smoke scale (a number's tolerance over {UNSTABLE_MOVE:.0%})"
        return Tolerance(rel=round(rel, 4), abs=PORTABLE_FLOOR.abs), how
    rel = max(PORTABLE_FLOOR.rel, KERNEL_FACTOR * move)
    how = f"chaotic: {KERNEL_FACTOR:g} x the largest kernel-level move ({move:.2%})"
    sds = [m["rel_sd"] for name, m in seeds.items() if m.get("rel_sd") is not None and name in ("N@10", "R@10")]
    if sds and SEED_SDS * max(sds) > rel:
        rel = SEED_SDS * max(sds)
        how = (f"chaotic (kernel-level move {move:.2%}): {SEED_SDS:g} x the relative standard deviation of "
               f"NDCG@10 / Recall@10 over {spread_entry['seeds']['n']} seeds ({max(sds):.2%})")
    if rel > UNSTABLE_MOVE:
        how += (f"; unstable at smoke scale (over {UNSTABLE_MOVE:.0%}): off its platform this tolerance is wider "
                "than what some breaks move; on it, the check is exact")
    return Tolerance(rel=round(rel, 4), abs=PORTABLE_FLOOR.abs), how


def metric_tolerances(spread_entry: dict | None) -> dict[str, float]:
    """Each number's own relative tolerance off the platform ("<group> <name>": rel), where the spread
    was measured number by number (kernel moves and seeds): max(PORTABLE_FLOOR, KERNEL_FACTOR x the
    number's largest kernel-level move, SEED_SDS x its relative standard deviation over seeds). The
    training loss, an average over every training window, moves far less than a test metric: held to
    its own spread, it catches breaks of training that the test metrics' spread would hide. Empty
    where the spread was measured case by case only (the case's tolerance then holds every number)."""
    kernels = (spread_entry or {}).get("metric_kernels") or {}
    sds = ((spread_entry or {}).get("seeds") or {}).get("rel_sd") or {}
    if not kernels:
        return {}
    names = set(sds).union(*(k.keys() for k in kernels.values()))
    return {name: round(max(PORTABLE_FLOOR.rel, KERNEL_FACTOR * max(k.get(name, 0.0) for k in kernels.values()),
                            SEED_SDS * sds.get(name, 0.0)), 4)
            for name in sorted(names)}


def is_unstable(entry: dict) -> bool:
    return "unstable" in (entry.get("portable_tolerance") or {}).get("how", "")


def entry_tolerance(entry: dict, number: str | None = None) -> Tolerance:
    """The entry's portable tolerance: of one ``number`` ("<group> <name>") where it has its own, else
    the case's."""
    t = entry.get("portable_tolerance")
    if not t:
        return UNMEASURED
    rel = (t.get("per_metric") or {}).get(number, t["rel"]) if number else t["rel"]
    return Tolerance(rel=float(rel), abs=float(t["abs"]))


# --- the file --------------------------------------------------------------------------------------------
def load_smoke(folder: Path = BASELINE_DIR, file: str = SMOKE_FILE) -> dict:
    """The smoke baseline file as a dict (``{"cases": {}}`` when there is none)."""
    path = Path(folder) / file
    if not path.exists():
        return {"cases": {}}
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data.get("cases"), dict):  # a file of an older layout holds nothing comparable
        log.warning("%s has no 'cases'; rewrite it with `pytest bench -m vanilla --update-baseline`", path)
        return {"cases": {}}
    return data


def smoke_entry(baseline: dict, record) -> dict | None:
    """The baseline entry of ``record``'s case and seed, or None (none, made on other data, or by code of
    another results version: its numbers are not this code's to match; :func:`stale_entry` tells that one)."""
    entry = baseline.get("cases", {}).get(record.case_id, {}).get(str(record.seed))
    if entry is None or entry.get("fingerprint") != record.fingerprint:
        return None
    from .provenance import current_version

    if entry.get("results_version") not in (None, getattr(record, "results_version", None) or current_version(record)):
        return None
    return entry


def stale_entry(baseline: dict, record) -> str:
    """Why the baseline's entry of ``record``'s case and seed is not this code's to match, when it exists on the
    same data but was made under another results version of the case's family ("" otherwise)."""
    entry = baseline.get("cases", {}).get(record.case_id, {}).get(str(record.seed))
    if entry is None or entry.get("fingerprint") != record.fingerprint or smoke_entry(baseline, record) is not None:
        return ""
    from .provenance import current_version, results_family

    family = results_family(getattr(record, "config", None) or {})
    ours = getattr(record, "results_version", None) or current_version(record)
    return (f"{record.case_id} seed {record.seed}: its smoke baseline entry was made under results version "
            f"{entry.get('results_version')} of the {family} family and this code is at version {ours}: the entry "
            f"is stale, nothing was compared")


def entry_family(case_id: str, entry: dict) -> str:
    """The results family of a baseline entry: as recorded, else (entries written before families) told from
    its case id: ``design`` cases are ModSAR's, ``hf`` cases their backbone's, a ``vanilla`` case of another
    registered model an outside model's, the rest the vanilla network's."""
    if entry.get("results_family"):
        return entry["results_family"]
    from .provenance import BACKBONE_FAMILIES

    table, _, inner = case_id.partition("[")
    parts = inner.rstrip("]").split("-")
    group = parts[-3] if len(parts) >= 3 else ""
    if table == "design":
        return "modsar"
    if table == "hf":
        return group if group in BACKBONE_FAMILIES else "outside"
    from .models.interface import registered

    return "outside" if group in set(registered()) - {"sar", *BACKBONE_FAMILIES} else "vanilla"


def _drop_stale(data: dict) -> None:
    """Remove the entries written under another results version of their family (cases this update did not rerun)."""
    from .provenance import results_version

    for case in list(data["cases"]):
        seeds = data["cases"][case]
        for seed in list(seeds):
            family = entry_family(case, seeds[seed])
            if seeds[seed].get("results_version") != results_version(family):
                log.warning("smoke baseline: dropping %s seed %s, made under results version %s of the %s family "
                            "(this code: %s)", case, seed, seeds[seed].get("results_version"), family,
                            results_version(family))
                del seeds[seed]
        if not seeds:
            del data["cases"][case]


def make_entry(record, spread: dict | None = None) -> dict:
    from .provenance import results_family

    measured = (spread or {}).get("cases", {}).get(record.case_id)
    tol, how = portable_tolerance(measured)
    per_metric = metric_tolerances(measured)
    entry = {
        "fingerprint": record.fingerprint,
        "values": smoke_values(record),
        "portable_tolerance": {**asdict(tol), "how": how, **({"per_metric": per_metric} if per_metric else {})},
        "code_version": record.code_version,
        "results_version": getattr(record, "results_version", None),
        "results_family": results_family(getattr(record, "config", None) or {}),
        "source_hash": getattr(record, "source_hash", None),
    }
    ranks = _ranks(record)
    if ranks is not None:
        entry["users"], entry["ranks"] = pack_ints(ranks[0]), pack_ints(ranks[1])
    return entry


def update_smoke(records, folder: Path = BASELINE_DIR, file: str = SMOKE_FILE, spread: dict | None = None) -> Path:
    """Write the smoke entries of ``records`` into ``folder/file`` (other entries kept), atomically.

    ``spread`` (default: the folder's smoke_spread.json) sets each case's portable tolerance.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f".{Path(file).stem}.lock", "w") as lock:  # xdist workers update it one at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = load_smoke(folder, file)
        spread = load_spread(folder) if spread is None else spread
        smoke = [r for r in records if r.scale == "smoke"]
        for rec in smoke:
            data["cases"].setdefault(rec.case_id, {})[str(rec.seed)] = make_entry(rec, spread)
        _drop_stale(data)
        devices = {r.device for r in smoke} or {"cpu"}
        if len(devices) > 1:
            raise ValueError(f"smoke records from several devices ({', '.join(sorted(devices))}); update from one")
        data["platform"] = smoke_platform(devices.pop())
        data["tolerance"] = {"same platform": asdict(ROUNDING), "another platform, unmeasured": asdict(UNMEASURED),
                             "another platform, measured": f"relative; each number where its spread was measured "
                             f"number by number (per_metric): max({PORTABLE_FLOOR.rel:g}, {KERNEL_FACTOR:g} x its "
                             f"largest kernel-level move, {SEED_SDS:g} x its relative sd over seeds); else the "
                             f"case's: max({PORTABLE_FLOOR.rel:g}, {KERNEL_FACTOR:g} x the case's largest "
                             f"kernel-level move, {SEED_SDS:g} x the seed sd of NDCG@10 / Recall@10); most-popular "
                             "exactly"}
        if spread.get("how"):
            data["measured_spread"] = spread["how"]
        path = folder / file
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{file}.", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)
    return path


# --- the comparison ----------------------------------------------------------------------------------
def group_tolerance(group: str, entry: dict, exact: bool, name: str | None = None) -> Tolerance:
    """The tolerance of one number (``name`` of ``group``; without it, the group's widest) of an entry:
    exact on the same platform; else its own where measured, else the case's, but exact for
    most-popular (integer counts, the same on every platform)."""
    if exact or group.startswith("most-popular"):
        return ROUNDING
    return entry_tolerance(entry, f"{group} {name}" if name else None)


def smoke_differences(baseline: dict, record, exact: bool = True) -> list[str]:
    """What in ``record`` moved beyond tolerance from its baseline entry (empty if nothing or no entry).

    Every number of the entry is compared (see SMOKE_GROUPS); a number the entry holds that the
    record lacks counts as moved. ``exact``: the same platform's comparison; else the portable one.
    """
    entry = smoke_entry(baseline, record)
    if entry is None:
        return []
    ours = smoke_values(record)
    moved = []
    for group, metrics in entry["values"].items():
        for name, base in metrics.items():
            tol = group_tolerance(group, entry, exact, name)
            value = ours.get(group, {}).get(name)
            if value is None:
                moved.append(f"{group} {name}: missing (baseline {base:.4f})")
            elif not tol.allows(value, base):
                moved.append(f"{group} {name}: {value:.4f} vs baseline {base:.4f} (allowed ±{tol.band(base):.2g})")
    if not exact and (worse := worse_than_baseline(entry, record)):
        moved.append(worse)
    return moved


def worse_than_baseline(entry: dict, record, metric: str = "N@10", alpha: float = WORSE_ALPHA) -> str:
    """The paired per-user test of ``record`` against the entry's stored ranks ("" when not worse).

    H0: the run's per-user NDCG@10 is on average no more than the case's tolerance below the
    baseline's. The Wilcoxon signed-rank test of (ours - base + tolerance) rejects it, one-sided, at
    ``alpha``: the run is worse by more than the tolerance.
    """
    from scipy.stats import wilcoxon

    from .significance import per_user_values

    if "ranks" not in entry:
        return ""
    users, ours = per_user_values(record, metric)
    stored = {"users": unpack_ints(entry["users"]), "rank": unpack_ints(entry["ranks"])}
    base_users, base = per_user_values(type("Baseline", (), {"per_user": stored, "case_id": "baseline"}), metric)
    if not np.array_equal(users, base_users):
        return f"paired test: the run scored other users than the baseline ({len(users)} vs {len(base_users)})"
    tol = entry_tolerance(entry, f"model/input {metric}").band(float(base.mean()))
    shifted = ours - base + tol
    if not np.any(shifted):
        return ""
    p = float(wilcoxon(shifted, alternative="less", zero_method="zsplit").pvalue)
    if p < alpha:
        return (f"paired test: per-user {metric} worse than the baseline's by more than its tolerance ±{tol:.2g} "
                f"({ours.mean():.4f} vs {base.mean():.4f}, one-sided Wilcoxon p={p:.2g} < {alpha:g}, "
                f"{len(users)} users)")
    return ""


def tolerance_text(entry: dict | None = None, exact: bool = True) -> str:
    if exact or entry is None:
        return f"±{ROUNDING.abs:g} (the stored decimals)"
    t = entry_tolerance(entry)
    own = (entry.get("portable_tolerance") or {}).get("per_metric")
    rel = f"±{min(own.values()):.1%}-{t.rel:.1%} relative, each number its own" if own else f"±{t.rel:.1%} relative"
    return f"{rel} (most-popular ±{ROUNDING.abs:g}), and no worse at p < {WORSE_ALPHA:g}"


def is_own_case(record) -> bool:
    """Whether ``record`` is a case of the suite itself (its datasets and models), which the committed
    baseline must cover, rather than a user's (a declared dataset, an outside model)."""
    from .data import DATASETS, SYNTHETIC
    from .models.interface import ENTRY_POINT_GROUP

    own_models = {"sar", *_own_entry_points(ENTRY_POINT_GROUP)}
    model = (getattr(record, "config", None) or {}).get("model_name") or getattr(record, "model_name", None)
    dataset_ok = record.dataset in (SYNTHETIC, *DATASETS)
    return dataset_ok and (model is None or model in own_models)


def _own_entry_points(group: str) -> set[str]:
    from importlib.metadata import entry_points

    return {ep.name for ep in entry_points(group=group) if ep.value.startswith("sarbench.")}


def check_smoke_baseline(record, baseline: dict, *, updating: bool = False, strict: bool | None = None,
                         user_baseline: Path | None = None) -> str:
    """Compare a smoke record with its baseline, as a test: pass (returns what was compared) or fail.

    ``baseline`` is the committed one. A case without an entry there that is the suite's own fails in
    CI (``strict``, default: when ``CI`` is set; it must compare every case) and skips elsewhere with
    the fix; a user's case (``is_own_case`` false) is compared with ``user_baseline`` (a smoke.json of
    the user's), which its first run writes. Nothing is compared while the baseline is being rewritten
    (``updating``). On another platform the comparison is the portable one (module docstring); a
    trained case is never skipped for its platform.
    """
    import pytest

    if updating:
        return "baseline being rewritten"
    strict = bool(os.environ.get("CI")) if strict is None else strict
    fix = "rerun with --update-baseline and commit reports/baseline/smoke.json"
    if smoke_entry(baseline, record) is None:
        if user_baseline is not None and not is_own_case(record):
            return _check_user_baseline(record, Path(user_baseline))
        stale = stale_entry(baseline, record)
        if stale:
            param = record.case_id.partition("[")[2].rstrip("]") or record.case_id
            problem = (f"{stale}; to refresh it, rerun this case with --update-baseline (pytest bench -k "
                       f"'{param}' --update-baseline) and commit reports/baseline/smoke.json")
        else:
            problem = (f"{record.case_id} seed {record.seed}: no smoke baseline for data {record.fingerprint}; "
                       f"to add it, {fix}")
        if strict:
            pytest.fail(problem + " (CI compares every smoke case)", pytrace=False)
        pytest.skip(problem)
    return _compare(record, baseline, fix)


def _compare(record, baseline: dict, fix: str) -> str:
    other = platform_difference(baseline, record)
    exact = not other
    moved = smoke_differences(baseline, record, exact=exact)
    entry = smoke_entry(baseline, record)
    how = "exactly" if exact else f"on another platform ({other}), within {tolerance_text(entry, exact)}"
    assert not moved, (f"{record.case_id} seed {record.seed} moved from its smoke baseline, compared {how}: "
                       + "; ".join(moved) + f". If the change is intended, {fix}.")
    return f"matches its smoke baseline {how}"


def _check_user_baseline(record, path: Path) -> str:
    baseline = load_smoke(path.parent, path.name)
    if smoke_entry(baseline, record) is None:
        update_smoke([record], path.parent, path.name, spread={"cases": {}})
        return f"first run: baseline recorded in {path} (the next run compares with it)"
    return _compare(record, baseline, f"delete its entry in {path} to record a new one")
