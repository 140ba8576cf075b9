"""evaluate() on hand-built splits and against a per-user reference; the MostPopular baseline."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from sarbench.baselines import MostPopular
from sarbench.data import SequenceDataset, SyntheticConfig, make_synthetic
from sarbench.evaluate import EvalResult, evaluate, history_matrix
from sarbench.metrics import ranks_from_scores

NUM_ITEMS = 8


@pytest.fixture(scope="module")
def toy_split():
    """Four users; user 1 is too short to evaluate.

    user 0: [1 2 3 4 5] -> train [1 2 3], valid 4, test 5
    user 2: [6 1 3 6]   -> train [6 1],   valid 3, test 6 (a repeat of a history item)
    user 3: [7 8 2]     -> train [7],     valid 8, test 2
    """
    seqs = [[1, 2, 3, 4, 5], [2, 2], [6, 1, 3, 6], [7, 8, 2]]
    return SequenceDataset.from_sequences("toy", seqs, num_items=NUM_ITEMS).split()


class ByIdScorer:
    """Score = -item id (item 1 best) for every user; padding and MASK columns get +inf.

    Records what it was called with so tests can check the inputs.
    """

    def __init__(self, extra_columns: int = 1):
        self.extra_columns = extra_columns
        self.calls = []

    def score(self, histories, lengths):
        self.calls.append((histories.clone(), lengths.clone()))
        b = histories.shape[0]
        scores = -torch.arange(NUM_ITEMS + 1 + self.extra_columns, dtype=torch.float32, device=histories.device)
        scores = scores.expand(b, -1).clone()
        scores[:, 0] = float("inf")  # padding
        scores[:, NUM_ITEMS + 1 :] = float("inf")  # MASK and any other extra token
        return scores


def expected_table(ranks, ks):
    out = {f"R@{k}": float(np.mean([r < k for r in ranks])) for k in ks}
    out.update({f"N@{k}": float(np.mean([1 / math.log2(r + 2) if r < k else 0.0 for r in ranks])) for k in ks})
    return out


# Hand-computed ranks for ByIdScorer (see toy_split): candidates are 1..8 minus the history,
# the target always included; rank = number of candidates with a smaller id than the target.
HAND_RANKS = {
    # test: u0 hist {1,2,3,4} t=5 -> {5..8}: 0;  u2 hist {6,1,3} t=6 -> {2,4,5} better: 3;
    #       u3 hist {7,8} t=2 -> {1} better: 1
    ("test", True): [0, 3, 1],
    # no exclusion: ids below the target
    ("test", False): [4, 5, 1],
    # valid: u0 hist {1,2,3} t=4 -> 0;  u2 hist {6,1} t=3 -> {2}: 1;  u3 hist {7} t=8 -> {1..6}: 6
    ("valid", True): [0, 1, 6],
    ("valid", False): [3, 2, 7],
}


@pytest.mark.parametrize(("stage", "exclude"), list(HAND_RANKS))
def test_hand_computed_metrics(toy_split, stage, exclude):
    ks = (1, 2, 5)
    result = evaluate(ByIdScorer(), toy_split, stage=stage, ks=ks, exclude="history" if exclude else "none", batch_size=2)
    assert isinstance(result, EvalResult)
    assert result.ranks.tolist() == HAND_RANKS[(stage, exclude)]
    assert result.users.tolist() == [0, 2, 3]
    assert result.num_users == 3 and result.stage == stage and result.exclusion == ("history" if exclude else "none")
    assert result.tie_rule == "pessimistic"
    expected = expected_table(HAND_RANKS[(stage, exclude)], ks)
    assert list(result.metrics) == list(expected)
    for name, value in expected.items():
        assert result.metrics[name] == pytest.approx(value, rel=1e-6)
        assert result.per_user[name].shape == (3,)
        assert result.per_user[name].mean() == pytest.approx(value, rel=1e-6)


def test_exclusion_lowers_ranks_only_by_history_items(toy_split):
    with_ex = evaluate(ByIdScorer(), toy_split, exclude="history")
    without = evaluate(ByIdScorer(), toy_split, exclude="none")
    assert np.all(with_ex.ranks <= without.ranks)
    assert with_ex.ranks.tolist() != without.ranks.tolist()
    assert with_ex.summary()["exclusion"] == "history" and without.summary()["exclusion"] == "none"


def test_full_history_is_excluded_not_only_the_window(toy_split):
    for max_len in (1, 2, 50):
        result = evaluate(ByIdScorer(), toy_split, max_len=max_len, exclude="history")
        assert result.ranks.tolist() == HAND_RANKS[("test", True)], max_len


@pytest.mark.parametrize("extra_columns", [0, 1, 3])
def test_padding_and_extra_columns_are_never_ranked(toy_split, extra_columns):
    result = evaluate(ByIdScorer(extra_columns), toy_split, exclude="none")
    assert result.ranks.tolist() == HAND_RANKS[("test", False)]


def test_scorer_gets_last_items_left_aligned(toy_split):
    scorer = ByIdScorer()
    evaluate(scorer, toy_split, stage="test", max_len=5, group_by_length=False)
    (hist, lengths), = scorer.calls
    assert hist.dtype == torch.int64 and lengths.dtype == torch.int64
    assert hist.tolist() == [[1, 2, 3, 4, 0], [6, 1, 3, 0, 0], [7, 8, 0, 0, 0]]
    assert lengths.tolist() == [4, 3, 2]

    scorer = ByIdScorer()
    evaluate(scorer, toy_split, stage="test", max_len=2, batch_size=2, group_by_length=False)
    assert [h.tolist() for h, _ in scorer.calls] == [[[3, 4], [1, 3]], [[7, 8]]]
    assert [n.tolist() for _, n in scorer.calls] == [[2, 2], [2]]

    scorer = ByIdScorer()
    evaluate(scorer, toy_split, stage="valid", max_len=3, group_by_length=False)
    (hist, lengths), = scorer.calls
    assert hist.tolist() == [[1, 2, 3], [6, 1, 0], [7, 0, 0]]
    assert lengths.tolist() == [3, 2, 1]


def test_users_are_scored_in_length_order_and_reported_in_theirs(toy_split):
    """By default the scorer sees users grouped by history length (shortest first); the result keeps
    the users' own order, with the same ranks as scoring them in that order."""
    scorer = ByIdScorer()
    grouped = evaluate(scorer, toy_split, stage="test", max_len=5, batch_size=2)
    assert [h.tolist() for h, _ in scorer.calls] == [[[7, 8, 0, 0, 0], [6, 1, 3, 0, 0]], [[1, 2, 3, 4, 0]]]
    given = evaluate(ByIdScorer(), toy_split, stage="test", max_len=5, batch_size=2, group_by_length=False)
    assert grouped.users.tolist() == given.users.tolist()
    for rule in grouped.ranks_by_rule:
        assert grouped.ranks_by_rule[rule].tolist() == given.ranks_by_rule[rule].tolist()
    assert grouped.metrics_by_rule == given.metrics_by_rule


def test_history_matrix_matches_split_histories():
    split = make_synthetic(SyntheticConfig(num_users=80, num_items=40, min_length=2, max_length=30)).split()
    for stage in ("valid", "test"):
        hists, targets = split.histories(stage)
        for max_len in (1, 7, 40):
            mat, lengths, tgt = history_matrix(split, stage, max_len)
            assert mat.shape == (len(hists), max_len)
            assert tgt.tolist() == list(targets)
            for j, h in enumerate(hists):
                window = h[-max_len:]
                assert lengths[j] == len(window)
                assert mat[j, : len(window)].tolist() == window.tolist()
                assert not mat[j, len(window) :].any()


def test_users_subset(toy_split):
    first_two = evaluate(ByIdScorer(), toy_split, users=2)
    assert first_two.users.tolist() == [0, 2]
    assert first_two.ranks.tolist() == HAND_RANKS[("test", True)][:2]
    picked = evaluate(ByIdScorer(), toy_split, users=np.array([2, 0]))
    assert picked.users.tolist() == [3, 0]
    assert picked.ranks.tolist() == [HAND_RANKS[("test", True)][2], HAND_RANKS[("test", True)][0]]
    assert picked.num_users == 2
    assert evaluate(ByIdScorer(), toy_split, users=100).num_users == 3


class BadScorer:
    def __init__(self, shape_fn):
        self.shape_fn = shape_fn

    def score(self, histories, lengths):
        return torch.zeros(self.shape_fn(histories.shape[0]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stage": "train"}, "stage"),
        ({"max_len": 0}, "max_len"),
        ({"batch_size": 0}, "batch_size"),
        ({"users": 0}, "users"),
        ({"users": np.array([0, 3])}, "users"),
        ({"users": np.array([0.5])}, "users"),
        ({"ks": (0,)}, "ks"),
    ],
)
def test_evaluate_rejects_bad_arguments(toy_split, kwargs, match):
    with pytest.raises(ValueError, match=match):
        evaluate(ByIdScorer(), toy_split, **kwargs)


@pytest.mark.parametrize(
    "shape_fn", [lambda b: (b, NUM_ITEMS), lambda b: (b + 1, NUM_ITEMS + 1), lambda b: (b,)], ids=["cols", "rows", "1d"]
)
def test_evaluate_rejects_bad_scorer_output(toy_split, shape_fn):
    with pytest.raises(ValueError, match="BadScorer.score"):
        evaluate(BadScorer(shape_fn), toy_split)


def test_evaluate_rejects_non_scorer_and_non_split(toy_split):
    with pytest.raises(ValueError, match="score"):
        evaluate(object(), toy_split)
    with pytest.raises(ValueError, match="Split"):
        evaluate(ByIdScorer(), toy_split.dataset)


def test_evaluate_runs_without_grad(toy_split):
    class GradCheck(ByIdScorer):
        def score(self, histories, lengths):
            assert not torch.is_grad_enabled()
            return super().score(histories, lengths)

    assert evaluate(GradCheck(), toy_split).num_users == 3


# --- property test against a per-user reference ------------------------------------------------


class LastItemScorer:
    """Scores depend on the last real history item through a fixed table (ties included)."""

    def __init__(self, table: torch.Tensor):
        self.table = table  # (num_items + 1, num_items + 2): one extra MASK column

    def score(self, histories, lengths):
        last = histories.gather(1, (lengths - 1).unsqueeze(1)).squeeze(1)
        return self.table[last]


def reference_evaluate(table: np.ndarray, split, stage, max_len, exclude, window=None):
    """Per-user ranks by definition; ``exclude``: True/"history", False/"none", or "input" (last ``window``)."""
    rule = {True: "history", False: "none"}.get(exclude, exclude)
    ranks = []
    hists, targets = split.histories(stage)
    n = split.dataset.num_items
    for hist, t in zip(hists, targets):
        s = table[hist[-max_len:][-1]]
        seen = {"history": set(hist.tolist()), "none": set(), "input": set(hist[-(window or max_len):].tolist())}[rule]
        candidates = [c for c in range(1, n + 1) if c == t or c not in seen]
        ranks.append(sum(1 for c in candidates if c != t and s[c] >= s[t]))
    return ranks


@st.composite
def evaluation_problems(draw):
    n = draw(st.integers(2, 8))
    seqs = draw(st.lists(st.lists(st.integers(1, n), min_size=1, max_size=9), min_size=1, max_size=8))
    if not any(len(s) >= 3 for s in seqs):
        seqs.append(draw(st.lists(st.integers(1, n), min_size=3, max_size=6)))
    table = draw(st.lists(st.sampled_from([0.0, 1.0, 2.0, 5.0]), min_size=(n + 1) * (n + 2), max_size=(n + 1) * (n + 2)))
    table = np.array(table, dtype=np.float32).reshape(n + 1, n + 2)
    return (
        SequenceDataset.from_sequences("prop", seqs, num_items=n).split(),
        table,
        draw(st.sampled_from(["valid", "test"])),
        draw(st.integers(1, 6)),
        draw(st.sampled_from(["input", "history", "none"])),
        draw(st.integers(1, 4)),
        draw(st.integers(1, 6)),
    )


@given(evaluation_problems())
def test_evaluate_matches_per_user_reference(problem):
    split, table, stage, max_len, rule, batch_size, window = problem
    window = min(window, max_len)
    scorer = LastItemScorer(torch.from_numpy(table))
    scorer.history_window = window
    others = [r for r in ("input", "history", "none") if r != rule]
    result = evaluate(scorer, split, stage=stage, max_len=max_len, exclude=(rule, *others), batch_size=batch_size)
    assert result.exclusion == rule and result.window == window
    assert result.ranks.tolist() == reference_evaluate(table, split, stage, max_len, rule, window)
    for other in others:  # every rule of the same scoring pass
        assert result.ranks_by_rule[other].tolist() == reference_evaluate(table, split, stage, max_len, other, window)
    assert result.users.tolist() == split.eval_users.tolist()


def test_input_rule_excludes_only_the_window(toy_split):
    """The authors' rule: only the last `window` history items are excluded (protocol.md §4)."""
    # test histories: u0 [1 2 3 4] t=5; u2 [6 1 3] t=6; u3 [7 8] t=2; ByIdScorer ranks lower ids first
    scorer = ByIdScorer()
    scorer.history_window = 1  # only the last history item is "in the input"
    result = evaluate(scorer, toy_split, exclude=("input", "history"))
    # u0 excludes {4}: 1,2,3 beat 5 -> 3; u2 excludes {3}: 1,2,4,5 beat 6 -> 4; u3 excludes {8}: 1 beats 2 -> 1
    assert result.ranks.tolist() == [3, 4, 1]
    assert result.ranks_by_rule["history"].tolist() == HAND_RANKS[("test", True)]
    assert set(result.metrics_by_rule) == {"input", "history"}
    assert result.metrics == result.metrics_by_rule["input"]


def test_model_windows_follow_the_mask_slot():
    """AR reads max_len history items; AE max_len - 1 and a [MASK] (protocol.md §1)."""
    from sarbench.models.sar import SARConfig, SelfAttentiveRecommender

    ar = SelfAttentiveRecommender(SARConfig(num_items=5, attention="AR", max_len=4))
    ae = SelfAttentiveRecommender(SARConfig(num_items=5, attention="AE", max_len=4))
    assert ar.history_window(4) == 4 and ae.history_window(4) == 3


def test_unknown_rule_is_rejected(toy_split):
    with pytest.raises(ValueError, match="unknown exclusion rule 'seen'"):
        evaluate(ByIdScorer(), toy_split, exclude="seen")


# --- MostPopular -------------------------------------------------------------------------------


def test_most_popular_ranks_most_frequent_train_item_first():
    seqs = [[3, 3, 1, 2, 4], [3, 2, 3, 5, 1], [2, 3, 4, 1, 3]]
    split = SequenceDataset.from_sequences("pop", seqs, num_items=6).split()
    # train: [3 3 1] [3 2 3] [2 3 4] -> counts 1:1 2:2 3:5 4:1 5:0 6:0
    baseline = MostPopular(split.train)
    scores = baseline.score(torch.zeros(2, 4, dtype=torch.long), torch.ones(2, dtype=torch.long))
    assert scores.shape == (2, 7)
    assert scores[0].tolist() == [0.0, 1.0, 2.0, 5.0, 1.0, 0.0, 0.0]
    assert ranks_from_scores(scores[:1], torch.tensor([3])).item() == 0
    assert ranks_from_scores(scores[:1], torch.tensor([2])).item() == 1  # beaten only by item 3
    # user 2's test target is item 3 (also in its history: still ranked, and first)
    for exclude in (True, False):
        assert evaluate(baseline, split, exclude="history" if exclude else "none").ranks[2] == 0
    # user 0's test target is item 4 (count 1, tied with item 1): 3, 2 and the tie rank above it
    assert evaluate(baseline, split, exclude="none").ranks[0] == 3


def test_most_popular_evaluates_like_reference():
    split = make_synthetic(SyntheticConfig(num_users=60, num_items=30, min_length=3, max_length=20)).split()
    counts = np.bincount(split.train.items, minlength=31).astype(np.float32)
    table = np.tile(counts, (31, 1))  # same scores whatever the last item
    for exclude in (True, False):
        result = evaluate(MostPopular(split.train), split, exclude="history" if exclude else "none")
        assert result.ranks.tolist() == reference_evaluate(table, split, "test", 50, exclude)


def test_most_popular_rejects_split():
    split = make_synthetic(SyntheticConfig(num_users=10, num_items=10)).split()
    with pytest.raises(ValueError, match="split.train"):
        MostPopular(split)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_evaluate_on_cuda_matches_cpu():
    split = make_synthetic(SyntheticConfig(num_users=200, num_items=50)).split()
    table = torch.randint(0, 5, (51, 52), generator=torch.Generator().manual_seed(0)).float()

    class CudaScorer(LastItemScorer):
        def score(self, histories, lengths):
            assert histories.device.type == "cuda" and lengths.device.type == "cuda"
            return super().score(histories, lengths)

    cpu = evaluate(LastItemScorer(table), split, batch_size=64)
    gpu = evaluate(CudaScorer(table.cuda()), split, batch_size=64, device="cuda")
    assert gpu.ranks.tolist() == cpu.ranks.tolist()
    assert gpu.metrics == pytest.approx(cpu.metrics)
    pop_cpu = evaluate(MostPopular(split.train), split)
    pop_gpu = evaluate(MostPopular(split.train), split, device="cuda")
    assert pop_gpu.ranks.tolist() == pop_cpu.ranks.tolist()


@pytest.mark.parametrize("name", ["vanilla-AE", "vanilla-AR", "local-AE", "local-AR", "ssept-AE", "ssept-AR", "ce-AR"])
def test_fast_scoring_path_gives_exactly_the_plain_metrics(name):
    """Length-grouped batches, trimmed padding and the last block computed at the read position only
    (the defaults) give every user the rank, hence every metric, of the plain path: users in their
    own order, full-width histories, every position of every block."""
    from dataclasses import replace

    from sarbench.models.interface import SequentialRecommender
    from sarbench.presets import preset
    from sarbench.train import Trainer

    torch.manual_seed(0)
    split = make_synthetic(SyntheticConfig(num_users=120, num_items=50, min_length=3, max_length=40, seed=2)).split()
    mc, tc = preset(name, "synthetic", split.dataset.num_items, split.dataset.num_users)
    mc = replace(mc, hidden=16, layers=2, heads=2 if mc.local_heads else 1, max_len=20)
    trainer = Trainer(mc, replace(tc, batch_size=32, max_epochs=1, progress=False), split)
    trainer.train_epoch()  # scores that are not near-constant
    model = trainer.model.eval()
    for stage in ("valid", "test"):
        fast = evaluate(model, split, stage=stage, max_len=mc.max_len, batch_size=16)
        model.trim_padding = False
        model.states_at = lambda items, pos, users=None: SequentialRecommender.states_at(model, items, pos, users)
        plain = evaluate(model, split, stage=stage, max_len=mc.max_len, batch_size=16, group_by_length=False)
        del model.states_at
        model.trim_padding = True
        for rule in plain.ranks_by_rule:
            assert fast.ranks_by_rule[rule].tolist() == plain.ranks_by_rule[rule].tolist(), (stage, rule)
        assert fast.metrics_by_rule == plain.metrics_by_rule
    # the states themselves agree to float rounding
    hist, lengths, _ = (torch.from_numpy(a) for a in history_matrix(split, "test", mc.max_len))
    users = torch.from_numpy(split.eval_users) if model.uses_users else None
    inputs, pos = model.eval_inputs(hist, lengths)
    with torch.no_grad():
        full = model.hidden_states(inputs, users)[torch.arange(len(pos)), pos]
        torch.testing.assert_close(model.states_at(inputs, pos, users), full, rtol=1e-5, atol=1e-5)
