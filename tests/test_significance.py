"""Paired AR-vs-AE significance: known answers, references, and symmetry properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from sarbench.significance import (
    AE_BETTER,
    AR_BETTER,
    NO_DIFFERENCE,
    bootstrap_mean_ci,
    compare_paired,
    compare_records,
    per_user_values,
    stack_seeds,
)
from sarbench.store import ResultRecord


def sparse_ndcg(rng, n, hit_rate):
    """Leave-one-out-like per-user N@10: mostly zeros, else 1/log2(rank+2) for a rank in 0..9."""
    hits = rng.random(n) < hit_rate
    return np.where(hits, 1.0 / np.log2(rng.integers(0, 10, n) + 2), 0.0)


def test_clear_ar_advantage():
    rng = np.random.default_rng(1)
    ae = rng.uniform(0, 1, 400)
    ar = ae + 0.1 + rng.normal(0, 0.05, 400)
    res = compare_paired(ar, ae)
    assert res.verdict == AR_BETTER
    assert res.p_value < 1e-10
    assert res.ci_low < res.diff < res.ci_high
    assert 0.09 < res.ci_low and res.ci_high < 0.11
    assert res.diff == pytest.approx(ar.mean() - ae.mean())
    assert res.rel_gain_pct == pytest.approx((ar.mean() - ae.mean()) / ae.mean() * 100)
    assert res.n == 400


def test_clear_ae_advantage_on_sparse_metric():
    rng = np.random.default_rng(2)
    ae = sparse_ndcg(rng, 3000, 0.30)
    ar = sparse_ndcg(rng, 3000, 0.15)
    res = compare_paired(ar, ae)
    assert res.verdict == AE_BETTER and res.ci_high < 0 and res.p_value < 1e-6


def test_identical_models_no_difference():
    ae = sparse_ndcg(np.random.default_rng(3), 500, 0.2)
    res = compare_paired(ae.copy(), ae)
    assert res.verdict == NO_DIFFERENCE and res.p_value == 1.0 and res.diff == 0.0
    assert res.ci_low == res.ci_high == 0.0


def test_same_distribution_no_difference():
    rng = np.random.default_rng(4)
    base = rng.uniform(0, 1, 300)
    ar = base + rng.normal(0, 0.1, 300)
    ae = base + rng.normal(0, 0.1, 300)
    res = compare_paired(ar, ae)
    assert res.verdict == NO_DIFFERENCE
    assert res.p_value > 0.05 and res.ci_low < 0 < res.ci_high


def test_wilcoxon_matches_scipy_and_bootstrap_matches_normal_ci():
    rng = np.random.default_rng(5)
    ae = rng.uniform(0, 1, 2000)
    ar = ae + rng.normal(0.01, 0.2, 2000)
    d = ar - ae
    res = compare_paired(ar, ae, n_boot=4000)
    assert res.p_value == pytest.approx(stats.wilcoxon(d).pvalue)
    se = d.std(ddof=1) / np.sqrt(len(d))
    assert res.ci_low == pytest.approx(d.mean() - 1.96 * se, abs=0.15 * se)
    assert res.ci_high == pytest.approx(d.mean() + 1.96 * se, abs=0.15 * se)


def test_bootstrap_is_seeded_and_chunking_does_not_matter():
    d = np.random.default_rng(6).normal(size=257)
    a = bootstrap_mean_ci(d, n_boot=300, seed=11)
    assert a == bootstrap_mean_ci(d, n_boot=300, seed=11)
    assert a == bootstrap_mean_ci(d, n_boot=300, seed=11, chunk=257 * 7)  # 7 resamples per chunk
    assert a != bootstrap_mean_ci(d, n_boot=300, seed=12)


def test_seeds_are_averaged_per_user():
    rng = np.random.default_rng(7)
    ar = rng.uniform(0, 1, (3, 200))
    ae = rng.uniform(0, 1, (2, 200))
    res = compare_paired(ar, ae)
    ref = compare_paired(ar.mean(axis=0), ae.mean(axis=0))
    assert (res.n, res.n_seeds_ar, res.n_seeds_ae) == (200, 3, 2)
    assert (res.diff, res.p_value, res.ci_low, res.ci_high) == (ref.diff, ref.p_value, ref.ci_low, ref.ci_high)


@pytest.mark.parametrize(
    "ar, ae, match",
    [
        (np.ones(5), np.ones(6), "same users"),
        (np.ones((2, 2, 2)), np.ones(2), "shape"),
        (np.array([0.1, np.nan]), np.ones(2), "non-finite"),
        (np.array([]), np.array([]), "empty"),
    ],
)
def test_bad_inputs_raise(ar, ae, match):
    with pytest.raises(ValueError, match=match):
        compare_paired(ar, ae)


@settings(max_examples=40)
@given(
    arrays(np.float64, st.integers(5, 60), elements=st.floats(0, 1)),
    st.floats(-0.5, 0.5),
    st.integers(0, 2**16),
)
def test_swapping_models_mirrors_the_result(ae, shift, seed):
    rng = np.random.default_rng(seed)
    ar = np.clip(ae + shift + rng.normal(0, 0.05, len(ae)), 0, 1)
    a = compare_paired(ar, ae, n_boot=200, seed=seed)
    b = compare_paired(ae, ar, n_boot=200, seed=seed)
    assert a.p_value == pytest.approx(b.p_value)
    assert a.diff == pytest.approx(-b.diff, abs=1e-12)
    assert a.ci_low == pytest.approx(-b.ci_high, abs=1e-12) and a.ci_high == pytest.approx(-b.ci_low, abs=1e-12)
    mirror = {AR_BETTER: AE_BETTER, AE_BETTER: AR_BETTER, NO_DIFFERENCE: NO_DIFFERENCE}
    assert b.verdict == mirror[a.verdict]
    assert a.ci_low <= a.diff <= a.ci_high


# --- records ---------------------------------------------------------------------------------
def rec(attention, seed, users, **per_user):
    return ResultRecord(
        case_id=f"vanilla[synthetic-{attention}-ce]", table="vanilla", dataset="synthetic", model="m",
        attention=attention, loss="ce", config={}, fingerprint="f", seed=seed, scale="smoke", metrics={},
        per_user={"users": list(users), **per_user}, code_version="v", host={},
    )


def test_metrics_derived_from_ranks():
    r = rec("AR", 0, [0, 1, 2, 3], rank=[0, 4, 9, 10])
    _, recall = per_user_values(r, "R@10")
    _, ndcg = per_user_values(r, "N@5")
    np.testing.assert_array_equal(recall, [1, 1, 1, 0])
    np.testing.assert_allclose(ndcg, [1.0, 1 / np.log2(6), 0, 0])
    with pytest.raises(KeyError, match="MRR@10"):
        per_user_values(r, "MRR@10")


def test_records_are_aligned_by_user_index():
    ar = [rec("AR", 0, [3, 1, 2], **{"N@10": [0.3, 0.1, 0.2]}), rec("AR", 1, [1, 2, 3], **{"N@10": [0.1, 0.2, 0.5]})]
    users, values = stack_seeds(ar, "N@10")
    np.testing.assert_array_equal(users, [1, 2, 3])
    np.testing.assert_allclose(values, [[0.1, 0.2, 0.3], [0.1, 0.2, 0.5]])
    ae = [rec("AE", 0, [2, 3, 4], **{"N@10": [0.0, 0.0, 0.9]})]  # user 1 and 4 are not shared
    res = compare_records(ar, ae, n_boot=50)
    assert res.n == 2 and res.mean_ar == pytest.approx((0.2 + 0.4) / 2) and res.mean_ae == 0.0


def test_a_direction_case_asserts_the_claim_only_at_paper_scale():
    from types import SimpleNamespace

    from sarbench.regression import check_direction

    rng = np.random.default_rng(0)
    users = range(300)
    high, low = rng.uniform(0.4, 0.6, 300), rng.uniform(0.0, 0.2, 300)
    runs = {"AR": [rec("AR", 0, users, **{"N@10": list(high)})], "AE": [rec("AE", 0, users, **{"N@10": list(low)})]}
    paper, smoke = (SimpleNamespace(scale=SimpleNamespace(name=n), seeds=1) for n in ("paper", "smoke"))
    check_direction("synthetic", runs, paper, "AR")  # AR is clearly better: the claim holds
    with pytest.raises(AssertionError, match="paper: AE better on synthetic; we found .*AR better"):
        check_direction("synthetic", runs, paper, "AE")
    with pytest.raises(pytest.skip.Exception, match="smoke scale cannot judge"):
        check_direction("synthetic", runs, smoke, "AE")
    with pytest.raises(pytest.skip.Exception, match="no claim here; found synthetic: AR NDCG@10 0.5"):
        check_direction("synthetic", runs, paper, None, "no claim here")


def test_a_record_with_a_non_finite_metric_fails_before_anything_else():
    from types import SimpleNamespace

    from sarbench.regression import check_record

    bad = rec("AR", 0, [0, 1])
    bad.metrics = {"N@10": float("nan"), "R@10": 0.5}
    with pytest.raises(AssertionError, match=r"non-finite metrics \{'N@10': nan\}"):
        check_record(bad, SimpleNamespace(scale=SimpleNamespace(name="paper")), lambda r: None)


def test_the_paper_band_holds_only_records_on_the_papers_data():
    from sarbench.regression import check_paper_band

    r = rec("AR", 0, [0, 1])
    r.metrics = {"N@10": 0.100, "R@10": 0.200}
    r.extra = {"paper_version": True}
    check_paper_band(r, {"N@10": 0.105, "R@10": 0.190})  # within 10%
    with pytest.raises(AssertionError, match=r"R@10: ours 0.2000 vs paper 0.1500 \(\+33.3%\)"):
        check_paper_band(r, {"N@10": 0.105, "R@10": 0.150})
    r.extra = {"paper_version": False}
    with pytest.raises(pytest.skip.Exception, match="data is not the paper's version; paper band not asserted"):
        check_paper_band(r, {"R@10": 0.150})


def _vs_popular(model_ndcg, pop_ndcg):
    r = rec("AR", 0, range(len(model_ndcg)), **{"N@10": list(model_ndcg)})
    r.extra = {"most_popular_per_user": {"users": list(range(len(pop_ndcg))), "N@10": list(pop_ndcg)}}
    return r


def test_beating_most_popular_is_asserted_as_far_as_the_data_can_tell():
    """A clear win passes; no win on data large enough to show one fails; on data too small to show a
    win (a user's small dataset) a run that is not worse passes and says why; a clear loss fails."""
    from sarbench.regression import check_beats_most_popular, detectable_gain

    rng = np.random.default_rng(1)
    hit = lambda n, p: (rng.random(n) < p) * rng.uniform(0.3, 1.0, n)  # noqa: E731  (per-user NDCG@10)
    assert check_beats_most_popular(_vs_popular(hit(2000, 0.3), hit(2000, 0.1))).startswith("beats most-popular")
    with pytest.raises(AssertionError, match="not clearly better than most-popular"):
        check_beats_most_popular(_vs_popular(hit(3000, 0.1), hit(3000, 0.1)))
    small_model, small_pop = hit(60, 0.12), hit(60, 0.1)
    said = check_beats_most_popular(_vs_popular(small_model, small_pop))
    assert said.startswith("too few users to judge") and "60 users" in said
    assert detectable_gain(small_model - small_pop) > 0.5 * small_pop.mean()
    with pytest.raises(AssertionError, match="not clearly better"):
        check_beats_most_popular(_vs_popular(np.zeros(60), hit(60, 0.9)))  # clearly worse, even on 60 users
