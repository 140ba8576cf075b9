"""Tables 2 and 3 from the attention study: our measures beside the paper's, and its ordering claims.

``summary_frame`` gathers the measures of studied models, ``paper_table`` sets them beside the
paper's cells (with the mask-only reference), ``write_study_tables`` writes Markdown/CSV/LaTeX, and
``sparsity_order``/``rank_order`` test the paper's orderings (Vanilla-AE vs Local-AE vs Vanilla-AR).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..report import comparability, to_latex, to_markdown
from .study import MODELS, PAPER_TABLES, SIGMA, AttentionMeasures

# --------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------

SUMMARY_COLUMNS = ["model", "dataset", "scale", "fingerprint", "users", "matrices", "mean_length", "sparsity",
                   "ref_sparsity", "rank", "ref_rank", "distance", "rel_distance", "N@10", "case_id", "note"]


def summary_frame(items: Iterable[tuple[str, object, AttentionMeasures]]) -> pd.DataFrame:
    """One row per (model, dataset) from ``(model label, record, measures)`` triples.

    Columns: :data:`SUMMARY_COLUMNS`; ``note`` is :func:`sarbench.report.comparability` of the
    record (empty when comparable with the paper).
    """
    rows = []
    for label, record, m in items:
        if label not in MODELS:
            raise ValueError(f"unknown study model {label!r}; known: {', '.join(MODELS)}")
        s = m.summary()
        rows.append({"model": label, "dataset": record.dataset, "scale": record.scale,
                     "fingerprint": record.fingerprint, **{k: s[k] for k in ("users", "matrices", "mean_length",
                                                                            "sparsity", "ref_sparsity", "rank",
                                                                            "ref_rank", "distance",
                                                                            "rel_distance")},
                     "N@10": float(record.metrics.get("N@10", math.nan)), "case_id": record.case_id,
                     "note": comparability(record.dataset, record.fingerprint, record.scale)})
    frame = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    dup = frame.duplicated(["model", "dataset"])
    if dup.any():
        first = frame[dup].iloc[0]
        raise ValueError(f"more than one result for model {first.model!r} on dataset {first.dataset!r}")
    return frame


def _dataset_order(datasets: Iterable[str], paper_cols: Sequence[str]) -> list[str]:
    datasets = list(dict.fromkeys(datasets))
    return [d for d in paper_cols if d in datasets] + sorted(d for d in datasets if d not in paper_cols)


def paper_table(frame: pd.DataFrame, measure: str) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Our Table 2 (``measure="sparsity"``) or Table 3 (``"rank"``) beside the paper's.

    Args:
        frame: :func:`summary_frame` rows.
        measure: ``"sparsity"`` or ``"rank"``.

    Returns:
        ``(wide, long, notes)``. ``wide`` has one row per model (the paper's order) and, per dataset
        and for ``avg``, the columns ``<d>`` (ours), ``<d> paper`` and ``<d> diff %``
        (``(ours - paper) / paper * 100``). ``long`` has one row per (model, dataset):
        ``model, dataset, ours, paper, diff %, mask-only, ours / mask-only, note`` (mask-only: the
        measure of the uniform attention over the allowed keys, for the same users). ``notes`` are the comparability
        notes per dataset and how ``avg`` was formed.

        ``avg`` is the mean over the paper's datasets present (the paper's own avg column when all
        five are; otherwise the mean of its cells over the same datasets). With none of the paper's
        datasets present it is the mean over the datasets shown, without a paper value.
    """
    from ..paper import load_table

    if measure not in PAPER_TABLES:
        raise ValueError(f"measure must be one of {tuple(PAPER_TABLES)}, got {measure!r}")
    paper = load_table(PAPER_TABLES[measure]).set_index("model")
    paper_cols = [c for c in paper.columns if c != "avg"]
    datasets = _dataset_order(frame["dataset"], paper_cols)
    ours = frame.set_index(["model", "dataset"])
    in_paper = [d for d in datasets if d in paper_cols]
    avg_over = in_paper or datasets
    long_rows, wide_rows = [], []
    for model in MODELS:
        row: dict = {"model": model}
        for d in [*datasets, "avg"]:
            if d == "avg":
                vals = [ours.loc[(model, x), measure] for x in avg_over if (model, x) in ours.index]
                value = float(np.mean(vals)) if vals and len(vals) == len(avg_over) else math.nan
                if not in_paper:
                    p = math.nan
                elif len(in_paper) == len(paper_cols):
                    p = float(paper.loc[model, "avg"])
                else:
                    p = float(paper.loc[model, in_paper].mean())
                ref = math.nan
                note = ""
            else:
                have = (model, d) in ours.index
                value = float(ours.loc[(model, d), measure]) if have else math.nan
                ref = float(ours.loc[(model, d), f"ref_{measure}"]) if have else math.nan
                p = float(paper.loc[model, d]) if d in paper_cols else math.nan
                note = str(ours.loc[(model, d), "note"]) if have else ""
            diff = (value - p) / p * 100.0 if p and math.isfinite(p) and math.isfinite(value) else math.nan
            row.update({d: value, f"{d} paper": p, f"{d} diff %": diff})
            if d != "avg":
                ratio = value / ref if ref and math.isfinite(ref) else math.nan
                long_rows.append({"model": model, "dataset": d, "ours": value, "paper": p, "diff %": diff,
                                  "mask-only": ref, "ours / mask-only": ratio, "note": note})
        wide_rows.append(row)
    wide = pd.DataFrame(wide_rows)
    long = pd.DataFrame(long_rows, columns=["model", "dataset", "ours", "paper", "diff %", "mask-only",
                                            "ours / mask-only", "note"])
    notes = []
    for d in datasets:
        reasons = sorted({n for n in frame.loc[frame.dataset == d, "note"] if n})
        notes.append(f"{d}: " + ("; ".join(reasons) if reasons else "comparable with the paper"))
    if in_paper:
        notes.append("avg: mean over the paper's datasets present (" + ", ".join(in_paper) + ")"
                     + ("" if len(in_paper) == len(paper_cols) else "; the paper's avg is recomputed over them"))
    else:
        notes.append("avg: mean over the datasets shown; the paper has no value for them")
    return wide, long, notes


TABLE_TEXT = {
    "sparsity": ("Table 2: L1/L2 sparsity of the attention matrices (smaller = sparser)",
                 "Mean over every (user, layer, head) matrix of S = (||A||_1 / N) / ||A||_2, each matrix "
                 "cropped to the user's real positions. 'mask-only' in the long table is S of the uniform "
                 "attention over the keys the mask allows, for the same users. A row-stochastic n x n block "
                 "has n^-1.5 <= S <= 1/n, so the level is set by the sequence lengths of a dataset (short "
                 "Amazon histories give large S, long ML-1M histories small S); the paper does not say how "
                 "it treated padding or lengths, so the order of the three models is the comparable part."),
    "rank": ("Table 3: rank k from noise-based hard thresholding",
             "Mean over every (user, layer, head) matrix of k = #{singular values of A + E above tau}, "
             "E ~ N(0, sigma^2), tau from the paper's Eq. 8, sigma = {sigma:g}. 'mask-only' in the long "
             "table is k of the uniform attention over the keys the mask allows, for the same users. "
             "k <= n, so short histories bound the rank; blocks of 4 or fewer positions can get k = 0 "
             "(the threshold exceeds the largest singular value)."),
}


def write_study_tables(frame: pd.DataFrame, out_dir: str | os.PathLike, *, sigma: float = SIGMA) -> list[Path]:
    """Write Tables 2 and 3 (Markdown with notes, CSV, LaTeX; wide and long) and the summary frame.

    Files: ``table2_sparsity.{md,csv,tex}``, ``table2_sparsity_long.csv``, the same for
    ``table3_rank``, and ``attention_measures.{md,csv}`` (every measure per model and dataset).
    Returns the paths written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for measure, stem in (("sparsity", "table2_sparsity"), ("rank", "table3_rank")):
        wide, long, notes = paper_table(frame, measure)
        title, text = TABLE_TEXT[measure]
        md = [f"# {title}", "", text.replace("{sigma:g}", f"{sigma:g}"), "", "Ours beside the paper's value; "
              "diff % = (ours - paper) / paper x 100.", "", to_markdown(wide), "", "Notes:", ""]
        md += [f"- {n}" for n in notes]
        md += ["", "## Per model and dataset", "", to_markdown(long), ""]
        paths.append(out / f"{stem}.md")
        paths[-1].write_text("\n".join(md), encoding="utf-8")
        wide.to_csv(out / f"{stem}.csv", index=False)
        long.to_csv(out / f"{stem}_long.csv", index=False)
        (out / f"{stem}.tex").write_text(to_latex(wide) + "\n", encoding="utf-8")
        paths += [out / f"{stem}.csv", out / f"{stem}_long.csv", out / f"{stem}.tex"]
    frame.to_csv(out / "attention_measures.csv", index=False)
    shown = frame.drop(columns=["fingerprint", "case_id"])
    (out / "attention_measures.md").write_text(
        "# Attention measures per model and dataset\n\n"
        "Means over every (user, layer, head) matrix. distance = mean |i - j| under the attention "
        "(smaller = more local); rel_distance = distance / number of positions; ref_* = the same measure of the uniform attention over the allowed "
        f"keys; N@10 = test NDCG@10 of the case; sigma = {sigma:g}.\n\n" + to_markdown(shown) + "\n",
        encoding="utf-8")
    paths += [out / "attention_measures.csv", out / "attention_measures.md"]
    return paths


# --------------------------------------------------------------------------------------------------
# The paper's ordering claims
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderCheck:
    """The outcome of an ordering claim: ``holds`` and a sentence saying what was found."""

    holds: bool
    found: str
    claim: str

    def __bool__(self) -> bool:
        return self.holds


def _fmt(values: Mapping[str, float], digits: int) -> str:
    return ", ".join(f"{m} {values[m]:.{digits}f}" for m in MODELS if m in values)


def _missing(values: Mapping[str, float]) -> list[str]:
    return [m for m in MODELS if m not in values or not math.isfinite(values[m])]


def _paired_share(per_user: Mapping[str, np.ndarray] | None, test) -> str:
    if not per_user or any(m not in per_user for m in MODELS):
        return ""
    sizes = {len(v) for v in per_user.values()}
    if len(sizes) != 1:
        return ""
    share = float(np.mean(test(*(np.asarray(per_user[m]) for m in MODELS))))
    return f"; it holds for {share:.0%} of the {sizes.pop()} users taken one by one"


def _reference(reference: Mapping[str, float] | None, holds, digits: int) -> str:
    if not reference or _missing(reference):
        return ""
    same = "the same order" if holds(reference) else "not that order"
    return f"; the uniform attention over the same masks alone gives {_fmt(reference, digits)} ({same})"


def sparsity_order(values: Mapping[str, float], per_user: Mapping[str, np.ndarray] | None = None,
                   reference: Mapping[str, float] | None = None) -> OrderCheck:
    """The paper's Table-2 claim: Vanilla-AR < Local-AE < Vanilla-AE (smaller = sparser).

    Args:
        values: mean sparsity per model label.
        per_user: optional per-user values of the same users (same order) per model; when given, the
            message also says for what share of users the order holds.
        reference: optional mask-only values (``ref_sparsity``); when given, the message also says
            whether the masks alone, with uniform attention, already give the order.

    Example:
        >>> bool(sparsity_order({"vanilla-AE": 0.04, "local-AE": 0.03, "vanilla-AR": 0.02}))
        True
        >>> sparsity_order({"vanilla-AE": 0.02, "local-AE": 0.03, "vanilla-AR": 0.04}).found
        'vanilla-AE 0.0200, local-AE 0.0300, vanilla-AR 0.0400: not AR < Local-AE < AE'
    """
    claim = "vanilla-AR < local-AE < vanilla-AE"
    missing = _missing(values)
    if missing:
        raise ValueError(f"sparsity_order needs a finite value for {', '.join(missing)}; got {dict(values)}")
    holds = values["vanilla-AR"] < values["local-AE"] < values["vanilla-AE"]
    found = f"{_fmt(values, 4)}: " + ("AR < Local-AE < AE" if holds else "not AR < Local-AE < AE")
    found += _paired_share(per_user, lambda ae, loc, ar: (ar < loc) & (loc < ae))
    found += _reference(reference, lambda v: v["vanilla-AR"] < v["local-AE"] < v["vanilla-AE"], 4)
    return OrderCheck(bool(holds), found, claim)


def rank_order(values: Mapping[str, float], per_user: Mapping[str, np.ndarray] | None = None,
               reference: Mapping[str, float] | None = None) -> OrderCheck:
    """The paper's Table-3 claim: Vanilla-AE has the lowest hard-threshold rank of the three.

    ``per_user`` and ``reference`` (mask-only ``ref_rank`` values) add to the message as in
    :func:`sparsity_order`.

    Example:
        >>> bool(rank_order({"vanilla-AE": 5.4, "local-AE": 10.6, "vanilla-AR": 8.6}))
        True
        >>> bool(rank_order({"vanilla-AE": 9.0, "local-AE": 10.6, "vanilla-AR": 8.6}))
        False
    """
    claim = "vanilla-AE lowest"
    missing = _missing(values)
    if missing:
        raise ValueError(f"rank_order needs a finite value for {', '.join(missing)}; got {dict(values)}")
    holds = values["vanilla-AE"] < min(values["local-AE"], values["vanilla-AR"])
    lowest = min(MODELS, key=lambda m: values[m])
    found = f"{_fmt(values, 2)}: " + ("vanilla-AE lowest" if holds else f"{lowest} lowest, not vanilla-AE")
    found += _paired_share(per_user, lambda ae, loc, ar: (ae < loc) & (ae < ar))
    found += _reference(reference, lambda v: v["vanilla-AE"] < min(v["local-AE"], v["vanilla-AR"]), 2)
    return OrderCheck(bool(holds), found, claim)


def measure_values(frame: pd.DataFrame, dataset: str, measure: str) -> dict[str, float]:
    """``{model: value}`` of one measure on one dataset from a :func:`summary_frame`."""
    rows = frame[frame.dataset == dataset]
    return {r.model: float(getattr(r, measure)) for r in rows.itertuples(index=False)}


def check_sane(m: AttentionMeasures, heads: int | None = None) -> list[str]:
    """Problems with a set of measures that cannot come from row-stochastic attention (empty = none).

    Checks: ``length**-1.5 <= S <= 1/length`` for every matrix (with a 1e-9 relative slack),
    ``0 <= k <= length`` and ``k >= 1`` from 8 positions on, ``0 <= distance <= length - 1``, a
    non-increasing mean spectrum whose first value is at least 1 (a row-stochastic matrix has
    ``||A||_2 >= 1``). ``k = 0`` is possible for tiny blocks: the paper's threshold
    ``||Y||_F sqrt(2 log 2n) / n`` can exceed the largest singular value (always for n = 1, where it
    is ``sqrt(2 log 2) |a|``); it is below ``||Y||_F / sqrt(n) <= s_1`` once ``2 log 2n < n``.
    """
    problems = []
    n = m.lengths.astype(np.float64)[:, None, None]
    lo, hi = n ** -1.5, 1.0 / n
    bad = (m.sparsity < lo * (1 - 1e-9)) | (m.sparsity > hi * (1 + 1e-9))
    if bad.any():
        u = int(np.argwhere(bad)[0][0])
        problems.append(f"sparsity of user {int(m.users[u])} outside [n^-1.5, 1/n] for n={int(m.lengths[u])}: "
                        f"{m.sparsity[u].ravel().tolist()}")
    bad = (m.rank < 0) | (m.rank > n) | ((m.rank < 1) & (n >= 8))
    if bad.any():
        u = int(np.argwhere(bad)[0][0])
        low = 1 if m.lengths[u] >= 8 else 0
        problems.append(f"rank of user {int(m.users[u])} outside {low}..{int(m.lengths[u])}: "
                        f"{m.rank[u].ravel().tolist()}")
    bad = (m.distance < -1e-9) | (m.distance > n - 1 + 1e-9)
    if bad.any():
        u = int(np.argwhere(bad)[0][0])
        problems.append(f"attention distance of user {int(m.users[u])} outside [0, n-1]: "
                        f"{m.distance[u].ravel().tolist()}")
    if (np.diff(m.spectrum, axis=-1) > 1e-9).any():
        problems.append("mean singular values are not sorted in descending order")
    if (m.spectrum[..., 0] < 1 - 1e-6).any():
        problems.append(f"largest mean singular value below 1: {m.spectrum[..., 0].ravel().tolist()}")
    if heads is not None and m.sparsity.shape[2] != heads:
        problems.append(f"expected {heads} heads, measured {m.sparsity.shape[2]}")
    return problems


__all__ = ["OrderCheck", "SUMMARY_COLUMNS", "check_sane", "measure_values", "paper_table", "rank_order",
           "sparsity_order", "summary_frame", "write_study_tables"]
