"""Unit tests of sarbench.analysis (Tables 2-3 from trained models) and sarbench.analysis.figures."""

from __future__ import annotations

import math
from dataclasses import asdict

import hypothesis.extra.numpy as hnp
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sarbench.analysis import attention_rank, attention_sparsity
from sarbench.analysis import (
    MODELS,
    AttentionMeasures,
    analyse_model,
    attention_distance,
    capture_attention,
    case_kwargs,
    check_sane,
    paper_table,
    pick_user,
    rank_order,
    select_users,
    singular_spectrum,
    sparsity_order,
    study_case,
    summary_frame,
    uniform_attention,
    user_attention,
    write_study_tables,
)
from sarbench.data import SequenceDataset
from sarbench.evaluate import history_matrix
from sarbench.models.sar import SARConfig, SelfAttentiveRecommender
from sarbench.paper import load_table


def tiny_split(users=40, items=30, max_len_seen=14, seed=0):
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(1, items + 1, rng.integers(3, max_len_seen + 1)) for _ in range(users)]
    return SequenceDataset.from_sequences("tiny", seqs, items).split()


def tiny_model(attention="AE", heads=2, max_len=10, **kw):
    torch.manual_seed(0)
    cfg = SARConfig(num_items=30, attention=attention, heads=heads, hidden=16, max_len=max_len, **kw)
    model = SelfAttentiveRecommender(cfg).eval()
    with torch.no_grad():  # sharper than the N(0, 0.02) init, so that attention is far from uniform
        for p in model.parameters():
            if p.ndim == 2:
                p.normal_(0.0, 0.5)
    return model


# ------------------------------------------------------------------------------------------------
# cases and users
# ------------------------------------------------------------------------------------------------


def test_case_kwargs_reuse_the_vanilla_cases_and_add_a_local_head():
    assert case_kwargs("vanilla-AE", "ml-1m") == {"table": "vanilla", "dataset": "ml-1m", "design": "vanilla",
                                                  "attention": "AE", "seed": 0}
    assert case_kwargs("vanilla-AR", "beauty", seed=2)["attention"] == "AR"
    local = case_kwargs("local-AE", "beauty")
    assert local["table"] == "analysis" and local["variant"] == "local" and local["attention"] == "AE"
    assert local["model_overrides"] == {"local_window": 2, "local_heads": 1}
    with pytest.raises(KeyError, match="unknown study model 'local-AR'"):
        case_kwargs("local-AR", "beauty")


def test_select_users_is_seeded_sorted_and_bounded():
    assert select_users(7, 10).tolist() == list(range(7))
    a = select_users(5000, 1000, seed=3)
    assert len(a) == 1000 and len(set(a.tolist())) == 1000 and np.all(np.diff(a) > 0) and a.max() < 5000
    assert a.tolist() == select_users(5000, 1000, seed=3).tolist()
    assert a.tolist() != select_users(5000, 1000, seed=4).tolist()
    with pytest.raises(ValueError, match="no evaluated users"):
        select_users(0)


def test_pick_user_takes_the_length_closest_to_the_target():
    assert pick_user(np.array([3, 5, 8]), np.array([40, 21, 19])) == 5  # tie 21/19: the first
    assert pick_user(np.array([1]), np.array([200])) == 1
    with pytest.raises(ValueError, match="one length per user"):
        pick_user(np.array([1, 2]), np.array([3]))


# ------------------------------------------------------------------------------------------------
# measures of padded attention, against numpy references on the cropped blocks
# ------------------------------------------------------------------------------------------------


def padded_batch(seed, users, L, layers=2, heads=2):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, L + 1, users)
    attn = rng.random((users, layers, heads, L, L)) * 10.0  # garbage everywhere, incl. the padding
    for u, n in enumerate(lengths):
        attn[u, :, :, :n, :n] = rng.dirichlet(np.full(n, 0.3), size=(layers, heads, n))
    return attn, lengths


def distance_reference(a):
    n = a.shape[-1]
    d = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
    return sum(a[i, j] * d[i, j] for i in range(n) for j in range(n)) / n


@settings(max_examples=40)
@given(seed=st.integers(0, 2**32 - 1), users=st.integers(1, 4), L=st.integers(1, 9))
def test_attention_distance_matches_a_loop_over_the_real_block(seed, users, L):
    attn, lengths = padded_batch(seed, users, L)
    got = attention_distance(torch.as_tensor(attn), lengths, aggregate="none").numpy()
    want = np.array([[[distance_reference(attn[u, l, h, :n, :n]) for h in range(2)] for l in range(2)]
                     for u, n in enumerate(lengths)])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert attention_distance(attn, lengths) == pytest.approx(want.mean(), rel=1e-5, abs=1e-6)


def test_attention_distance_of_known_matrices():
    n = 7
    assert attention_distance(np.eye(n)[None, None], n) == 0.0
    uniform = np.full((1, 1, n, n), 1.0 / n)
    assert attention_distance(uniform, n) == pytest.approx((n * n - 1) / (3 * n), rel=1e-6)
    single = attention_distance(uniform, n, aggregate="none")
    assert tuple(single.shape) == (1, 1)
    with pytest.raises(ValueError, match="outside 1..L=7"):
        attention_distance(uniform, 8)
    with pytest.raises(ValueError, match="aggregate"):
        attention_distance(uniform, n, aggregate="head_mean")


@settings(max_examples=30)
@given(seed=st.integers(0, 2**32 - 1), users=st.integers(1, 3), L=st.integers(1, 30))
def test_singular_spectrum_matches_numpy_svd_of_the_crop(seed, users, L):
    attn, lengths = padded_batch(seed, users, L, layers=1, heads=2)
    got = singular_spectrum(torch.as_tensor(attn), lengths, k=21).numpy()
    for u, n in enumerate(lengths):
        for h in range(2):
            s = np.linalg.svd(attn[u, 0, h, :n, :n], compute_uv=False)[:21]
            np.testing.assert_allclose(got[u, 0, h, : len(s)], s, rtol=1e-9, atol=1e-12)
            assert np.all(got[u, 0, h, len(s):] == 0)


@given(n=st.integers(1, 40), attention=st.sampled_from(["AE", "AR"]), local=st.booleans())
def test_uniform_attention_is_uniform_over_the_allowed_keys(n, attention, local):
    cfg = SARConfig(num_items=3, attention=attention, heads=2, hidden=8,
                    local_window=2 if local else 0, local_heads=1 if local else 0)
    u = uniform_attention(cfg, n).numpy()
    assert u.shape == (2, n, n)
    np.testing.assert_allclose(u.sum(-1), 1.0, rtol=1e-12)
    i, j = np.indices((n, n))
    allowed = np.ones((n, n), bool) if attention == "AE" else j <= i
    for h in range(2):
        ok = allowed & (np.abs(i - j) <= 2) if (local and h == 1) else allowed
        assert np.all(u[h][~ok] == 0)
        np.testing.assert_allclose(u[h][ok], np.repeat(1.0 / ok.sum(1), ok.sum(1)), rtol=1e-12)
    if attention == "AE" and not local:  # S(uniform n x n) = 1/n, rank 1
        assert attention_sparsity(u[None, None], n) == pytest.approx(1.0 / n, rel=1e-12)


# ------------------------------------------------------------------------------------------------
# capture and the analysis of a model
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("attention,heads,local", [("AE", 2, False), ("AE", 2, True), ("AR", 1, False)])
def test_capture_attention_crops_the_real_positions(attention, heads, local):
    split = tiny_split()
    extra = {"local_window": 2, "local_heads": 1} if local else {}
    model = tiny_model(attention, heads, **extra)
    hist, lens, _ = history_matrix(split, "test", model.cfg.max_len, np.arange(12))
    attn, real, inputs = capture_attention(model, hist, lens)
    assert attn.shape[:3] == (12, 2, heads)
    expected = np.minimum(lens + 1, model.cfg.max_len) if attention == "AE" else lens
    np.testing.assert_array_equal(real, expected)
    for u, n in enumerate(real):
        block = attn[u, :, :, :n, :n].double().numpy()
        np.testing.assert_allclose(block.sum(-1), 1.0, rtol=1e-5)  # no mass on padded keys
        i, j = np.indices((n, n))
        if attention == "AR":
            assert np.abs(block[..., j > i]).max(initial=0) == 0.0
        if local:
            assert np.abs(block[:, 1][..., np.abs(i - j) > 2]).max(initial=0) == 0.0
            if n > 3:  # the global head does look further
                assert np.abs(block[:, 0][..., np.abs(i - j) > 2]).max() > 0.0
        if attention == "AE":
            assert int(inputs[u, n - 1]) == model.cfg.mask_token


def test_capture_attention_refuses_inputs_that_are_not_tail_padded():
    class Gappy:
        def parameters(self):
            yield torch.zeros(1)

        def attention_maps(self, h, n):
            inputs = torch.tensor([[5, 0, 6, 0]])
            return torch.full((1, 1, 1, 4, 4), 0.25), inputs

    with pytest.raises(ValueError, match="row 0 .* not tail-padded"):
        capture_attention(Gappy(), np.zeros((1, 4)), np.array([3]))


@pytest.mark.parametrize("attention,heads", [("AE", 2), ("AR", 1)])
def test_analyse_model_equals_the_measures_of_full_width_batches(attention, heads):
    """Length-sorted batches cut to their longest history must give the same per-user values."""
    split = tiny_split(users=60)
    model = tiny_model(attention, heads)
    m = analyse_model(model, split, max_users=50, seed=1, sigma=0.0, batch_size=7, spectrum_users=50)
    idx = select_users(len(split.eval_users), 50, 1)
    np.testing.assert_array_equal(m.users, idx)
    hist, lens, _ = history_matrix(split, "test", model.cfg.max_len, idx)
    attn, real, _ = capture_attention(model, hist, lens)  # one batch, full width, selection order
    np.testing.assert_array_equal(m.lengths, real)
    np.testing.assert_allclose(m.sparsity, attention_sparsity(attn, real, aggregate="none").numpy(), rtol=1e-5)
    np.testing.assert_array_equal(m.rank, attention_rank(attn, real, 0.0, 0, aggregate="none").numpy())
    np.testing.assert_allclose(m.distance, attention_distance(attn, real, aggregate="none").numpy(), rtol=1e-5)
    np.testing.assert_allclose(m.spectrum, singular_spectrum(attn, real).numpy().mean(0), rtol=1e-4, atol=1e-6)
    assert m.sparsity.shape == m.rank.shape == m.distance.shape == (50, 2, heads)
    assert m.ref_sparsity.shape == (50, heads)
    assert check_sane(m, heads=heads) == []
    # the learnt attention of this model is not the mask-only uniform one
    assert not np.allclose(m.sparsity.mean(), m.ref_sparsity.mean(), rtol=1e-3)
    s = m.summary()
    assert s["users"] == 50 and s["matrices"] == 50 * 2 * heads
    assert s["sparsity"] == pytest.approx(float(m.sparsity.mean()))
    assert s["rel_distance"] == pytest.approx(float((m.distance / m.lengths[:, None, None]).mean()))
    np.testing.assert_allclose(m.per_user("rank"), m.rank.reshape(50, -1).mean(1))


def test_analyse_model_is_deterministic_and_round_trips_through_a_file(tmp_path):
    split = tiny_split()
    model = tiny_model("AE", 2, local_window=2, local_heads=1)
    a = analyse_model(model, split, max_users=20, seed=0, info={"model": "local-AE"})
    b = analyse_model(model, split, max_users=20, seed=0)
    np.testing.assert_array_equal(a.rank, b.rank)
    np.testing.assert_array_equal(a.sparsity, b.sparsity)
    c = AttentionMeasures.load(a.save(tmp_path / "m.npz"))
    for name in ("users", "lengths", "sparsity", "rank", "distance", "spectrum", "ref_sparsity", "ref_rank"):
        np.testing.assert_array_equal(getattr(a, name), getattr(c, name))
    assert c.info == {"model": "local-AE"} and c.sigma == a.sigma and c.seed == 0


def test_mask_only_reference_of_a_bidirectional_model_is_one_over_n_and_rank_one():
    split = tiny_split()
    m = analyse_model(tiny_model("AE", 2), split, max_users=15)
    np.testing.assert_allclose(m.ref_sparsity, np.repeat(1.0 / m.lengths[:, None], 2, axis=1), rtol=1e-12)
    assert np.all(m.ref_rank == 1)
    local = analyse_model(tiny_model("AE", 2, local_window=2, local_heads=1), split, max_users=15)
    np.testing.assert_allclose(local.ref_sparsity[:, 0], 1.0 / local.lengths, rtol=1e-12)  # the global head
    for u, n in enumerate(local.lengths):  # the local head: the uniform band |i - j| <= 2
        band = uniform_attention(local_model_cfg(), int(n))[1].numpy()
        assert local.ref_sparsity[u, 1] == pytest.approx(attention_sparsity(band[None, None], int(n)), rel=1e-12)


def local_model_cfg():
    return SARConfig(num_items=3, attention="AE", heads=2, hidden=8, local_window=2, local_heads=1)


def test_check_sane_names_impossible_values():
    split = tiny_split()
    m = analyse_model(tiny_model("AR", 1), split, max_users=10)
    assert check_sane(m) == []
    m.sparsity[3, 1, 0] = 2.0  # above 1/n
    m.rank[0, 0, 0] = 0
    problems = check_sane(m, heads=2)
    assert any("sparsity of user" in p for p in problems)
    assert any("rank of user" in p for p in problems)
    assert any("expected 2 heads" in p for p in problems)


def test_user_attention_labels_the_mask_position():
    split = tiny_split()
    attn, labels = user_attention(tiny_model("AE", 2), split, 0)
    n = attn.shape[-1]
    assert attn.shape[:2] == (2, 2) and labels[-1] == "M" and labels[:-1] == [str(i) for i in range(n - 1)]
    attn_ar, labels_ar = user_attention(tiny_model("AR", 1), split, 0)
    assert attn_ar.shape[-1] == n - 1 or n == 10  # AE has one more position unless the history is full
    assert "M" not in labels_ar


# ------------------------------------------------------------------------------------------------
# the cached study of a stored case
# ------------------------------------------------------------------------------------------------


def test_study_case_computes_once_then_reads_the_cache(tmp_path, monkeypatch):
    from sarbench.analysis import cache as attention_study
    from sarbench.cases import model_path
    from sarbench.store import ResultStore, make_record

    ds = SequenceDataset.from_sequences("tiny", [np.arange(1, 12) % 9 + 1] * 20, 9)
    model = tiny_model("AR", 1)
    model = SelfAttentiveRecommender(SARConfig(**{**asdict(model.cfg), "num_items": 9})).eval()
    store = ResultStore(tmp_path / "results")
    record = make_record(case_id="vanilla[tiny-AR-ce]", table="vanilla", dataset="tiny", model="bert4rec",
                         attention="AR", loss="ce", config={}, fingerprint=ds.fingerprint(), seed=0,
                         scale="smoke", metrics={"N@10": 0.5})
    with pytest.raises(FileNotFoundError, match="no trained weights"):
        study_case(store, record, ds, "vanilla-AR")
    path = model_path(store, record.key)
    path.parent.mkdir(parents=True)
    torch.save({"model_config": asdict(model.cfg), "state_dict": model.state_dict()}, path)
    first = study_case(store, record, ds, "vanilla-AR", max_users=10)
    assert first.info["model"] == "vanilla-AR" and first.info["N@10"] == 0.5
    monkeypatch.setattr(attention_study, "analyse_model", lambda *a, **k: pytest.fail("cache not used"))
    again = study_case(store, record, ds, "vanilla-AR", max_users=10)
    np.testing.assert_array_equal(again.sparsity, first.sparsity)
    with pytest.raises(pytest.fail.Exception, match="cache not used"):
        study_case(store, record, ds, "vanilla-AR", max_users=10, refresh=True)


# ------------------------------------------------------------------------------------------------
# tables and ordering claims
# ------------------------------------------------------------------------------------------------


class Rec:
    def __init__(self, dataset, scale="paper", fingerprint="x", ndcg=0.1, case_id="c"):
        self.dataset, self.scale, self.fingerprint, self.case_id = dataset, scale, fingerprint, case_id
        self.metrics = {"N@10": ndcg}


def fake_measures(sparsity, rank, users=3):
    shape = (users, 2, 1)
    return AttentionMeasures(
        users=np.arange(users), lengths=np.full(users, 10), sparsity=np.full(shape, sparsity),
        rank=np.full(shape, rank), distance=np.full(shape, 2.0), spectrum=np.ones((2, 1, 21)),
        ref_sparsity=np.full((users, 1), 0.1), ref_rank=np.full((users, 1), 1.0))


def paper_fingerprint(dataset):
    from sarbench.data import DATASETS

    return DATASETS[dataset].paper_fingerprint


def frame_for(datasets, scale="paper"):
    items = []
    for d in datasets:
        fp = paper_fingerprint(d) if d != "synthetic" else "f"
        for i, m in enumerate(MODELS):
            items.append((m, Rec(d, scale, fp or "f", ndcg=0.1 + i), fake_measures(0.02 + 0.001 * i, 5 + i)))
    return summary_frame(items)


def test_paper_table_sets_ours_beside_the_paper_with_the_relative_difference():
    frame = frame_for(["beauty", "ml-1m", "synthetic"])
    wide, long, notes = paper_table(frame, "sparsity")
    paper = load_table("table2").set_index("model")
    assert list(wide["model"]) == list(MODELS)
    assert list(wide.columns[1:4]) == ["beauty", "beauty paper", "beauty diff %"]
    row = wide.set_index("model").loc["local-AE"]
    assert row["beauty"] == pytest.approx(0.021)
    assert row["beauty paper"] == paper.loc["local-AE", "beauty"]
    assert row["beauty diff %"] == pytest.approx((0.021 - paper.loc["local-AE", "beauty"])
                                                 / paper.loc["local-AE", "beauty"] * 100)
    assert math.isnan(row["synthetic paper"]) and math.isnan(row["synthetic diff %"])
    # avg over the paper's datasets present only; the paper's avg recomputed over the same two
    assert row["avg"] == pytest.approx(0.021)
    assert row["avg paper"] == pytest.approx(paper.loc["local-AE", ["beauty", "ml-1m"]].mean())
    assert any(n.startswith("synthetic: not comparable") for n in notes)
    assert len(long) == 9 and set(long.columns) >= {"ours", "paper", "diff %", "mask-only", "note"}


def test_paper_table_uses_the_papers_avg_when_all_five_datasets_are_present():
    frame = frame_for(["beauty", "sports", "video", "yelp", "ml-1m"])
    wide, _, notes = paper_table(frame, "rank")
    paper = load_table("table3").set_index("model")
    row = wide.set_index("model").loc["vanilla-AR"]
    assert row["avg paper"] == paper.loc["vanilla-AR", "avg"] and row["avg"] == pytest.approx(7.0)
    assert list(wide.columns[1::3])[:5] == ["beauty", "sports", "video", "yelp", "ml-1m"]
    # sports and yelp are not the paper's versions of the data
    assert any(n.startswith("sports: not comparable") for n in notes)


def test_paper_table_with_synthetic_only_has_no_paper_values():
    wide, _, notes = paper_table(frame_for(["synthetic"], scale="smoke"), "sparsity")
    assert wide["avg paper"].isna().all() and wide["avg"].notna().all()
    assert "smoke scale" in notes[0]
    with pytest.raises(ValueError, match="measure must be one of"):
        paper_table(frame_for(["synthetic"]), "distance")


def test_summary_frame_refuses_duplicates_and_unknown_models():
    m = fake_measures(0.02, 5)
    with pytest.raises(ValueError, match="more than one result"):
        summary_frame([("vanilla-AE", Rec("beauty"), m), ("vanilla-AE", Rec("beauty"), m)])
    with pytest.raises(ValueError, match="unknown study model"):
        summary_frame([("AE", Rec("beauty"), m)])


def test_write_study_tables_writes_every_format(tmp_path):
    paths = write_study_tables(frame_for(["beauty", "synthetic"], scale="smoke"), tmp_path)
    names = {p.name for p in paths}
    assert {"table2_sparsity.md", "table2_sparsity.csv", "table2_sparsity.tex", "table3_rank.md",
            "table3_rank_long.csv", "attention_measures.csv"} <= names
    md = (tmp_path / "table2_sparsity.md").read_text()
    assert "not comparable" in md and "beauty paper" in md
    back = pd.read_csv(tmp_path / "table3_rank.csv")
    assert list(back["model"]) == list(MODELS)


@given(values=hnp.arrays(np.float64, 3, elements=st.floats(0.001, 1.0)))
def test_order_checks_hold_exactly_when_the_papers_order_does(values):
    v = dict(zip(MODELS, values.tolist()))
    assert bool(sparsity_order(v)) == (v["vanilla-AR"] < v["local-AE"] < v["vanilla-AE"])
    assert bool(rank_order(v)) == (v["vanilla-AE"] < min(v["local-AE"], v["vanilla-AR"]))
    assert "vanilla-AE" in sparsity_order(v).found


def test_order_checks_report_the_share_of_users_and_refuse_missing_models():
    per_user = {"vanilla-AE": np.array([3.0, 3.0, 1.0, 3.0]), "local-AE": np.array([2.0, 2.0, 2.0, 2.0]),
                "vanilla-AR": np.array([1.0, 1.0, 3.0, 1.0])}
    check = sparsity_order({"vanilla-AE": 0.3, "local-AE": 0.2, "vanilla-AR": 0.1}, per_user)
    assert check.holds and "75% of the 4 users" in check.found
    check = rank_order({"vanilla-AE": 9.0, "local-AE": 10.0, "vanilla-AR": 8.0},
                       reference={"vanilla-AE": 1.0, "local-AE": 8.0, "vanilla-AR": 7.0})
    assert not check.holds and "vanilla-AR lowest, not vanilla-AE" in check.found
    assert "masks alone gives vanilla-AE 1.00, local-AE 8.00, vanilla-AR 7.00 (the same order)" in check.found
    check = sparsity_order({"vanilla-AE": 0.3, "local-AE": 0.2, "vanilla-AR": 0.1},
                           reference={"vanilla-AE": 0.1, "local-AE": 0.2, "vanilla-AR": 0.3})
    assert check.holds and check.found.endswith("(not that order)")
    with pytest.raises(ValueError, match="needs a finite value for local-AE"):
        rank_order({"vanilla-AE": 1.0, "vanilla-AR": 2.0})


# ------------------------------------------------------------------------------------------------
# figures
# ------------------------------------------------------------------------------------------------


def user_maps():
    split = tiny_split()
    models = {"vanilla-AE": tiny_model("AE", 2), "local-AE": tiny_model("AE", 2, local_window=2, local_heads=1),
              "vanilla-AR": tiny_model("AR", 1)}
    maps = {m: user_attention(model, split, 1) for m, model in models.items()}
    return {m: (attn[:1], labels) for m, (attn, labels) in maps.items()}  # layer 0: fewer panels, faster


def test_figures_are_written_as_png_and_pdf(tmp_path):
    from sarbench.analysis.figures import figure_attention, figure_locality, figure_low_rank, figure_spectra

    maps = user_maps()
    paths = figure_attention(maps, dataset="tiny", user=1, out_dir=tmp_path)
    paths += figure_low_rank(maps, dataset="tiny", user=1, out_dir=tmp_path, k=2)
    spectra = {"tiny": {m: (singular_spectrum(maps[m][0], maps[m][0].shape[-1]).numpy(),
                            np.sort(np.random.default_rng(0).random((1, maps[m][0].shape[1], 21)))[..., ::-1])
                        for m in ("vanilla-AE", "vanilla-AR")}}
    paths += figure_spectra(spectra, users={"tiny": 1}, out_dir=tmp_path, note="test data")
    frame = frame_for(["beauty", "synthetic"], scale="smoke")
    frame.loc[0, "N@10"] = 0.0  # drawn hollow at the bottom of the log axis
    paths += figure_locality(frame, out_dir=tmp_path)
    assert sorted(p.name for p in paths) == sorted(
        f"{stem}.{ext}" for stem in ("fig1_attention", "fig2_low_rank", "fig3_singular_values", "fig5_locality")
        for ext in ("png", "pdf"))
    for p in paths:
        head = p.read_bytes()[:8]
        assert head.startswith(b"\x89PNG") if p.suffix == ".png" else head.startswith(b"%PDF")


def test_figures_refuse_malformed_input(tmp_path):
    from sarbench.analysis.figures import figure_attention, figure_locality, truncated_svd

    with pytest.raises(ValueError, match="no attention maps"):
        figure_attention({}, dataset="d", user=0, out_dir=tmp_path)
    with pytest.raises(ValueError, match="2 position labels for 3 positions"):
        figure_attention({"vanilla-AE": (np.ones((1, 1, 3, 3)) / 3, ["0", "1"])}, dataset="d", user=0,
                         out_dir=tmp_path)
    with pytest.raises(ValueError, match="lacks column"):
        figure_locality(pd.DataFrame({"model": ["vanilla-AE"]}), out_dir=tmp_path)
    a = np.random.default_rng(0).random((6, 6))
    np.testing.assert_allclose(truncated_svd(a, 6), a, atol=1e-12)
    assert np.linalg.matrix_rank(truncated_svd(a, 2)) == 2
