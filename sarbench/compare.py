"""Your model against the paper's AE and AR, user by user, without retraining them.

The committed paper-scale records of the paper's AE (BERT4Rec-like) and AR (SASRec-like) keep each
test user's rank of the held-out item under both exclusion rules. A new model's paper-scale run on
the same data keeps the same. So the new model can be tested against them per user, as AR and AE
are tested against each other (:mod:`sarbench.significance`): per dataset, the six metrics of the
three models side by side, and for each reference the paired per-user difference of ``metric``
(new - reference) with its bootstrap confidence interval, the Wilcoxon signed-rank p-value and a
verdict at ``alpha``.

**What must match.** A per-user comparison is only honest on the same users, targets and candidate
sets. :func:`check_comparable` demands, and names what differs otherwise
(:class:`ReferenceMismatch`): the same data fingerprint (the same processed sequences, hence the
same leave-one-out split and test targets), the same scale, the same evaluated users, the same tie
rule, and ranks stored under the exclusion rule compared (``input``, the authors' rule by default,
or ``history``).

**Seeds.** Where a side has several seeds, each user's value is averaged over that side's seeds
first and the test runs on the per-user means (n = users), as in :mod:`sarbench.significance`:
pooling (seed, user) pairs would count each user several times.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .provenance import is_stale
from .references import is_reference
from .significance import AE_BETTER, AR_BETTER, PairedComparison, compare_paired, stack_seeds
from .record import ResultRecord

METRICS = ("R@5", "R@10", "R@20", "N@5", "N@10", "N@20")
RULES = ("input", "history")
BETTER, WORSE, NO_DIFFERENCE = "better", "worse", "no significant difference"


class ReferenceMismatch(ValueError):
    """The run and the reference records cannot be compared user by user (the message says why)."""


@dataclass(frozen=True)
class RankView:
    """A record's per-user ranks under one exclusion rule, in the shape significance reads."""

    case_id: str
    per_user: dict


def ranks_under(record: ResultRecord, rule: str) -> RankView:
    """``record``'s per-user ranks under ``rule`` ("input" or "history").

    Raises:
        ReferenceMismatch: the record stores no per-user ranks under that rule.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    per_user = record.per_user or {}
    key = "rank" if record.extra.get("exclusion", "input") == rule else f"rank_{rule}"
    if "users" not in per_user or key not in per_user:
        raise ReferenceMismatch(f"{record.case_id} seed {record.seed}: no per-user ranks under the {rule!r} "
                                f"exclusion rule (stored: {', '.join(per_user) or 'none'})")
    return RankView(record.case_id, {"users": per_user["users"], "rank": per_user[key]})


def metrics_under(record: ResultRecord, rule: str) -> dict[str, float]:
    """The record's test metrics under ``rule``."""
    by_rule = record.extra.get("metrics_by_rule") or {}
    if rule in by_rule:
        return dict(by_rule[rule])
    if record.extra.get("exclusion", "input") == rule:
        return dict(record.metrics)
    raise ReferenceMismatch(f"{record.case_id} seed {record.seed}: no metrics under the {rule!r} rule")


def check_comparable(run: ResultRecord, reference: ResultRecord, rule: str) -> None:
    """Raise :class:`ReferenceMismatch` naming the first thing that makes a per-user comparison unfair."""
    what = f"{run.case_id} seed {run.seed} against {reference.case_id} seed {reference.seed}"
    if run.fingerprint != reference.fingerprint:
        raise ReferenceMismatch(
            f"{what}: the data differ (fingerprint {run.fingerprint} vs the reference's {reference.fingerprint}): "
            f"another version or preprocessing of {run.dataset!r}; the split and test targets would differ")
    if run.scale != reference.scale:
        raise ReferenceMismatch(f"{what}: the run is {run.scale}-scale, the reference {reference.scale}-scale")
    tie_run, tie_ref = run.extra.get("tie_rule"), reference.extra.get("tie_rule")
    if tie_run != tie_ref:
        raise ReferenceMismatch(f"{what}: tie rules differ ({tie_run!r} vs {tie_ref!r})")
    users_run = np.asarray(ranks_under(run, rule).per_user["users"])
    users_ref = np.asarray(ranks_under(reference, rule).per_user["users"])
    if len(users_run) != len(users_ref) or not np.array_equal(np.sort(users_run), np.sort(users_ref)):
        only_run = np.setdiff1d(users_run, users_ref)
        only_ref = np.setdiff1d(users_ref, users_run)
        first = (f"user {only_run[0]} only in the run" if len(only_run) else
                 f"user {only_ref[0]} only in the reference" if len(only_ref) else "a user twice")
        raise ReferenceMismatch(
            f"{what}: the evaluated users differ ({len(users_run):,} vs {len(users_ref):,}; {first}); was the run "
            f"evaluated on a user sample (eval_users) or another split?")


@dataclass(frozen=True)
class Side:
    """One model on one dataset: its records (one per seed) and their mean metrics."""

    label: str
    records: tuple
    rule: str

    @property
    def seeds(self) -> list[int]:
        return sorted(r.seed for r in self.records)

    def metric_values(self, metric: str) -> list[float]:
        return [metrics_under(r, self.rule)[metric] for r in self.records]

    def mean(self, metric: str) -> float:
        return float(np.mean(self.metric_values(metric)))

    def sd(self, metric: str) -> float:
        values = self.metric_values(metric)
        return float(np.std(values, ddof=1)) if len(values) > 1 else math.nan

    @property
    def stale(self) -> list[int]:
        return sorted({r.results_version for r in self.records if is_stale(r)})


@dataclass(frozen=True)
class Verdict:
    """The run against one reference: the paired comparison (diff = run - reference) and its word."""

    reference: str
    comparison: PairedComparison
    verdict: str

    def line(self, run_label: str) -> str:
        c = self.comparison
        seeds = f", seeds {c.n_seeds_ar} vs {c.n_seeds_ae}" if max(c.n_seeds_ar, c.n_seeds_ae) > 1 else ""
        return (f"{run_label} vs {self.reference}: {c.metric} {c.diff:+.4f} ({c.rel_gain_pct:+.1f}%), "
                f"{c.ci_level:.0%} CI [{c.ci_low:+.4f}, {c.ci_high:+.4f}], Wilcoxon p = {c.p_value:.2g}, "
                f"n = {c.n:,} users{seeds}: {self.verdict} (alpha {c.alpha:g})")


@dataclass
class DatasetComparison:
    """A run's case against the paper's AE and AR on one dataset."""

    dataset: str
    fingerprint: str
    rule: str
    run: Side
    references: dict[str, Side]
    verdicts: list[Verdict] = field(default_factory=list)

    def table(self) -> list[dict]:
        """Rows of the six metrics (mean over seeds, and their sd where there are several)."""
        rows = []
        for side in (self.run, *self.references.values()):
            row = {"model": side.label, "seeds": ",".join(map(str, side.seeds))}
            for m in METRICS:
                row[m] = side.mean(m)
                row[f"{m} sd"] = side.sd(m)
            rows.append(row)
        return rows


def _word(c: PairedComparison) -> str:
    return {AR_BETTER: BETTER, AE_BETTER: WORSE}.get(c.verdict, NO_DIFFERENCE)


def compare_side(run: Side, reference: Side, *, metric: str, alpha: float, n_boot: int = 2000) -> Verdict:
    """Paired per-user comparison of ``run`` against ``reference`` on ``metric`` (seeds averaged per user)."""
    users_run, values_run = stack_seeds([ranks_under(r, run.rule) for r in run.records], metric)
    users_ref, values_ref = stack_seeds([ranks_under(r, reference.rule) for r in reference.records], metric)
    # check_comparable made the user sets equal; stack_seeds returns them sorted
    if not np.array_equal(users_run, users_ref):
        raise ReferenceMismatch(f"{run.label} and {reference.label}: the evaluated users differ")
    comparison = compare_paired(values_run, values_ref, metric=metric, alpha=alpha, n_boot=n_boot)
    return Verdict(reference.label, comparison, _word(comparison))


def model_label(record: ResultRecord) -> str:
    """The case without its table and dataset: ``gru4rec-AR-ce`` for ``vanilla[video-gru4rec-AR-ce]``."""
    inner = record.case_id.split("[", 1)[-1].rstrip("]")
    return inner.removeprefix(f"{record.dataset}-")


def compare_runs(runs: Iterable[ResultRecord], references: Sequence[ResultRecord], *, metric: str = "N@10",
                 rule: str = "input", alpha: float = 0.01, n_boot: int = 2000) -> list[DatasetComparison]:
    """Every case among ``runs`` against the paper's AE and AR on its dataset.

    ``runs``: records of the model(s) under test (several seeds of a case are pooled); records that
    are themselves references are left out. ``references``: the paper's AE/AR records
    (:func:`sarbench.references.load_references`).

    Raises:
        ReferenceMismatch: no reference for a run's dataset, or a reference that does not match the
            run (see :func:`check_comparable`).
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    cases: dict[tuple, list[ResultRecord]] = defaultdict(list)
    for record in runs:
        if not is_reference(record):
            cases[(record.dataset, record.case_id, record.fingerprint)].append(record)
    if not cases:
        raise ReferenceMismatch("no run to compare: every record given is one of the paper's AE/AR references")
    refs = [r for r in references if is_reference(r)]
    out = []
    for (dataset, case_id, fingerprint), records in sorted(cases.items()):
        same_data = [r for r in refs if r.fingerprint == fingerprint]
        if not same_data:
            named = sorted({(r.dataset, r.fingerprint) for r in refs if r.dataset == dataset})
            held = ", ".join(sorted({f"{r.dataset} ({r.fingerprint})" for r in refs})) or "none"
            if named:
                raise ReferenceMismatch(
                    f"{case_id}: the run's data fingerprint {fingerprint} matches no reference: the references' "
                    f"{dataset} is {', '.join(f for _, f in named)} (another version or preprocessing of the data)")
            raise ReferenceMismatch(f"{case_id}: no reference records for dataset {dataset!r} (data {fingerprint}); "
                                    f"the references hold: {held}")
        for ref in same_data:
            for record in records:
                check_comparable(record, ref, rule)
        run = Side(model_label(records[0]), tuple(sorted(records, key=lambda r: r.seed)), rule)
        sides = {}
        for attention in ("AE", "AR"):
            mine = tuple(sorted((r for r in same_data if r.attention == attention), key=lambda r: r.seed))
            if mine:
                sides[attention] = Side(attention, mine, rule)
        comparison = DatasetComparison(dataset, fingerprint, rule, run, sides)
        comparison.verdicts = [compare_side(run, side, metric=metric, alpha=alpha, n_boot=n_boot)
                               for side in sides.values()]
        out.append(comparison)
    return out


def _cell(side: Side, metric: str) -> str:
    sd = side.sd(metric)
    return f"{side.mean(metric):.4f}" + (f" ± {sd:.4f}" if not math.isnan(sd) else "")


def render(comparisons: Sequence[DatasetComparison], paper: dict | None = None) -> str:
    """Markdown: per dataset, Table 4's rows with the run's model as one more row, then the verdicts.

    ``paper``: the paper's cells ``{(dataset, attention): {metric: value}}``, shown as extra rows.
    """
    lines = []
    for comp in comparisons:
        rule = "the authors' input-window rule" if comp.rule == "input" else "the full-history rule"
        lines += [f"## {comp.dataset} (data {comp.fingerprint}; test metrics under {rule})", "",
                  "| model | seeds | " + " | ".join(METRICS) + " |", "|---|---|" + "---|" * len(METRICS)]
        for side in (comp.run, *comp.references.values()):
            note = f" (results version {', '.join(map(str, side.stale))}: stale)" if side.stale else ""
            lines.append(f"| {side.label}{note} | {','.join(map(str, side.seeds))} | "
                         + " | ".join(_cell(side, m) for m in METRICS) + " |")
        for attention in ("AE", "AR"):
            cells = (paper or {}).get((comp.dataset, attention))
            if cells:
                lines.append(f"| paper {attention} | | " + " | ".join(
                    f"{cells[m]:.4f}" if m in cells else "" for m in METRICS) + " |")
        lines += [""] + [f"- {v.line(comp.run.label)}" for v in comp.verdicts] + [""]
    return "\n".join(lines)


def check_against(records: Sequence[ResultRecord], bench) -> list[DatasetComparison]:
    """The bench form (``pytest bench -m vanilla --model NAME --against DIR``): compare a case's records
    (its seeds) with the references of ``bench.against`` ("packaged": sarbench's own) and add the verdicts
    to the run's checks; a reference that does not match fails the case with the reason."""
    import pytest

    from .references import load_references

    runs = [r for r in records if not is_reference(r)]
    if not runs:  # the paper's AE or AR itself: nothing to compare it with but itself
        bench.checks.append(f"{records[0].case_id}: a reference case, not compared with the references")
        return []
    try:
        references = load_references(None if bench.against == "packaged" else bench.against)
        comparisons = compare_runs(runs, references)
    except (ReferenceMismatch, FileNotFoundError) as exc:
        pytest.fail(f"--against {bench.against}: {exc}", pytrace=False)
    for comp in comparisons:
        bench.checks += [f"{runs[0].case_id}: {v.line(comp.run.label)}" for v in comp.verdicts]
    return comparisons


def paper_table4() -> dict:
    """The paper's Table 4 cells as ``{(dataset, attention): {metric: value}}``."""
    from .paper import paper_cells

    cells = paper_cells("vanilla")
    out: dict = defaultdict(dict)
    for row in cells.itertuples():
        if row.variant == "vanilla":
            out[(row.dataset, row.attention)][row.metric] = float(row.value)
    return dict(out)


__all__ = ["BETTER", "DatasetComparison", "check_against", "NO_DIFFERENCE", "ReferenceMismatch", "Side", "Verdict", "WORSE",
           "check_comparable", "compare_runs", "compare_side", "metrics_under", "model_label", "paper_table4",
           "ranks_under", "render"]
