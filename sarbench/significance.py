"""Paired per-user significance of AR vs AE on the same test users.

Both models are evaluated on the same users with one held-out item each, so the natural unit is the
user: for every user we have an AR value and an AE value of a per-user metric (N@10 by default) and
test their difference.

* **Wilcoxon signed-rank test** (``scipy.stats.wilcoxon``, two-sided, zero differences dropped as in
  Wilcoxon's original procedure). Leave-one-out N@10 is zero for most users under both models;
  those users carry no information about which model is better and are dropped by the test.
* **Paired bootstrap** of the mean difference (AR − AE): users are resampled with replacement,
  ``n_boot`` times, with a seeded generator; the CI is the percentile interval.

**Several seeds.** With several seeds per model, each user's metric is first *averaged over that
model's seeds*, and the test runs on the per-user averages (n = number of users). Pooling the
(seed, user) pairs instead would count the same user several times as if the observations were
independent and overstate significance. AR and AE may have different numbers of seeds.

**Verdict** at level ``alpha``: "AR better" or "AE better" only when the Wilcoxon p-value is below
``alpha`` *and* the bootstrap CI of the mean difference excludes zero on the same side; otherwise
"no significant difference". The two can disagree on very skewed data (Wilcoxon is about the
location of the differences, the CI about their mean); the verdict then stays neutral.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ae = rng.uniform(0, 1, 500)
    >>> ar = ae + 0.05 + rng.normal(0, 0.02, 500)
    >>> result = compare_paired(ar, ae)
    >>> result.verdict, result.n
    ('AR better', 500)
    >>> bool(result.ci_low > 0)
    True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

AR_BETTER = "AR better"
AE_BETTER = "AE better"
NO_DIFFERENCE = "no significant difference"


@dataclass(frozen=True)
class PairedComparison:
    """The outcome of :func:`compare_paired`.

    ``diff`` is mean(AR) − mean(AE) over users; ``rel_gain_pct`` is ``diff / mean_ae * 100`` (NaN when
    ``mean_ae`` is 0); ``ci_low``/``ci_high`` bound ``diff`` at ``ci_level``; ``n`` is the number of
    paired users and ``n_seeds_ar``/``n_seeds_ae`` the seeds averaged per user.
    """

    metric: str
    n: int
    n_seeds_ar: int
    n_seeds_ae: int
    mean_ar: float
    mean_ae: float
    diff: float
    rel_gain_pct: float
    ci_low: float
    ci_high: float
    ci_level: float
    p_value: float
    alpha: float
    verdict: str

    def as_dict(self) -> dict:
        return asdict(self)


def _per_user(values, name: str) -> tuple[np.ndarray, int]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be (users,) or (seeds, users), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name} has a non-finite value at index {tuple(int(i) for i in bad)}")
    return arr.mean(axis=0), arr.shape[0]


def bootstrap_mean_ci(
    diffs: np.ndarray, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0, chunk: int = 2_000_000
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``diffs.mean()``, resampling entries with replacement.

    Deterministic for a given ``seed``. Works in chunks of about ``chunk`` drawn indices so memory
    stays bounded for large user counts.
    """
    diffs = np.asarray(diffs, dtype=np.float64)
    n = len(diffs)
    if n == 0:
        raise ValueError("diffs is empty")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be positive, got {n_boot}")
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    step = max(1, chunk // n)
    for start in range(0, n_boot, step):
        stop = min(n_boot, start + step)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = diffs[idx].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def wilcoxon_p(diffs: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences; 1.0 when all are zero."""
    diffs = np.asarray(diffs, dtype=np.float64)
    if not np.any(diffs != 0):
        return 1.0
    return float(stats.wilcoxon(diffs, zero_method="wilcox", alternative="two-sided").pvalue)


def compare_paired(
    ar,
    ae,
    *,
    metric: str = "N@10",
    alpha: float = 0.05,
    n_boot: int = 2000,
    ci_level: float = 0.95,
    seed: int = 0,
) -> PairedComparison:
    """Compare AR with AE on paired per-user values.

    Args:
        ar: per-user values of the AR model, shape ``(users,)`` or ``(seeds, users)``.
        ae: the same for AE, with the users in the same order (seeds may differ in number).
        metric: the metric's name, for the result.
        alpha: significance level of the verdict.
        n_boot: bootstrap resamples for the CI.
        ci_level: coverage of the CI.
        seed: seed of the bootstrap generator.

    Raises:
        ValueError: when the shapes do not pair up, an input is empty or holds NaN/inf, or
            ``alpha`` is not in (0, 1).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    ar_mean, seeds_ar = _per_user(ar, "ar")
    ae_mean, seeds_ae = _per_user(ae, "ae")
    if ar_mean.shape != ae_mean.shape:
        raise ValueError(f"ar and ae must cover the same users: {ar_mean.shape[0]} vs {ae_mean.shape[0]} users")
    diffs = ar_mean - ae_mean
    m_ar, m_ae = float(ar_mean.mean()), float(ae_mean.mean())
    diff = float(diffs.mean())
    low, high = bootstrap_mean_ci(diffs, n_boot=n_boot, level=ci_level, seed=seed)
    p = wilcoxon_p(diffs)
    if p < alpha and low > 0:
        verdict = AR_BETTER
    elif p < alpha and high < 0:
        verdict = AE_BETTER
    else:
        verdict = NO_DIFFERENCE
    return PairedComparison(
        metric=metric,
        n=len(diffs),
        n_seeds_ar=seeds_ar,
        n_seeds_ae=seeds_ae,
        mean_ar=m_ar,
        mean_ae=m_ae,
        diff=diff,
        rel_gain_pct=diff / m_ae * 100 if m_ae != 0 else math.nan,
        ci_low=low,
        ci_high=high,
        ci_level=ci_level,
        p_value=p,
        alpha=alpha,
        verdict=verdict,
    )


# --- from result records ---------------------------------------------------------------------
_RANK = "rank"


def per_user_values(record, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """``(users, values)`` of ``metric`` from a record's ``per_user`` dict.

    ``metric`` is read directly when stored; otherwise ``R@k``/``N@k`` are derived from a stored
    0-based ``rank`` list (R@k = 1[rank < k], N@k = 1[rank < k] / log2(rank + 2)).

    Raises:
        KeyError: the record has neither the metric nor ranks (the message names the case).
    """
    per_user = getattr(record, "per_user", None) or {}
    case = getattr(record, "case_id", "?")
    if "users" not in per_user:
        raise KeyError(f"{case}: no per-user results stored")
    users = np.asarray(per_user["users"], dtype=np.int64)
    if metric in per_user:
        return users, np.asarray(per_user[metric], dtype=np.float64)
    if _RANK in per_user and len(metric) > 2 and metric[:2] in ("R@", "N@") and metric[2:].isdigit():
        rank = np.asarray(per_user[_RANK], dtype=np.float64)
        k = int(metric[2:])
        hit = rank < k
        if metric.startswith("R@"):
            return users, hit.astype(np.float64)
        return users, np.where(hit, 1.0 / np.log2(rank + 2), 0.0)
    raise KeyError(f"{case}: per-user {metric!r} not stored (have {', '.join(per_user)})")


def stack_seeds(records: Sequence, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """``(users, values[seeds, users])`` of several records (one per seed) on their common users."""
    if not records:
        raise ValueError("no records to stack")
    pairs = [per_user_values(r, metric) for r in records]
    common = pairs[0][0]
    for users, _ in pairs[1:]:
        common = np.intersect1d(common, users)
    common = np.unique(common)
    rows = []
    for users, values in pairs:
        order = np.argsort(users, kind="stable")
        pos = np.searchsorted(users[order], common)
        rows.append(values[order][pos])
    return common, np.vstack(rows)


def compare_records(ar_records: Iterable, ae_records: Iterable, *, metric: str = "N@10", **kwargs) -> PairedComparison:
    """:func:`compare_paired` on records (one per seed) of AR and AE, on the users both evaluated."""
    ar_records, ae_records = list(ar_records), list(ae_records)
    users_ar, ar = stack_seeds(ar_records, metric)
    users_ae, ae = stack_seeds(ae_records, metric)
    common = np.intersect1d(users_ar, users_ae)
    if len(common) == 0:
        raise ValueError("AR and AE records share no evaluated users")
    ar = ar[:, np.searchsorted(users_ar, common)]
    ae = ae[:, np.searchsorted(users_ae, common)]
    return compare_paired(ar, ae, metric=metric, **kwargs)


__all__ = [
    "AE_BETTER",
    "AR_BETTER",
    "NO_DIFFERENCE",
    "PairedComparison",
    "bootstrap_mean_ci",
    "compare_paired",
    "compare_records",
    "per_user_values",
    "stack_seeds",
    "wilcoxon_p",
]
