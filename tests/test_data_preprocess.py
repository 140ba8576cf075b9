"""Preprocessing compared with a plain-Python transcription of the SASRec / S3-Rec scripts."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sarbench.data.preprocess import filter_min_count, preprocess, preprocess_with_ids, write_pairs
from sarbench.data.raw import Interactions, read_movielens
from sarbench.data.readers import read_pairs

RAW = Path(__file__).resolve().parents[1] / "fixtures" / "raw"


def reference(records, min_count=5, iterate=False, item_order="first_seen"):
    """[(user id, [item ids])] the way SASRec's DataProcessing.py (one pass) or S3-Rec (iterated) do it.

    Returns the original ids and the new item numbering {original: 1..N}.
    """
    kept = list(records)
    while True:
        count_u, count_i = defaultdict(int), defaultdict(int)
        for u, i, _ in kept:
            count_u[u] += 1
            count_i[i] += 1
        new = [(u, i, t) for u, i, t in kept if count_u[u] >= min_count and count_i[i] >= min_count]
        done = len(new) == len(kept)
        kept = new
        if not iterate or done:
            break
    users: dict = {}
    numbering: dict = {}
    for u, i, t in kept:  # SASRec numbers users and items while reading the kept lines
        users.setdefault(u, []).append((t, i))
        numbering.setdefault(i, len(numbering) + 1)
    out = []
    for u, pairs in users.items():
        pairs.sort(key=lambda p: p[0])  # stable: equal times keep line order
        out.append((u, [i for _, i in pairs]))
    if item_order == "sequence":
        numbering = {}
        for _, seq in out:
            for i in seq:
                numbering.setdefault(i, len(numbering) + 1)
    elif item_order == "sorted":
        numbering = {i: k + 1 for k, i in enumerate(sorted(numbering))}
    return out, numbering


def _check_against_reference(records, min_count, iterate, item_order):
    inter = Interactions.from_records(records, source="mem")
    ref, numbering = reference(records, min_count, iterate, item_order)
    if not ref:
        with pytest.raises(ValueError, match="no interactions"):
            preprocess(inter, "toy", min_count, iterate, item_order)
        return
    got = preprocess_with_ids(inter, "toy", min_count, iterate, item_order)
    ds = got.dataset
    assert ds.num_users == len(ref)
    assert ds.num_items == len(numbering)
    for u, (user, seq) in enumerate(ref):
        assert got.user_ids[u] == user
        assert [got.item_ids[j - 1] for j in ds.sequence(u)] == seq
        assert ds.sequence(u).tolist() == [numbering[i] for i in seq]
    assert got.dropped == len(records) - int(ds.lengths.sum())


@settings(max_examples=150)
@given(
    records=st.lists(st.tuples(st.integers(0, 7), st.sampled_from("abcdefgh"), st.integers(0, 4)), max_size=60),
    min_count=st.integers(1, 4),
    iterate=st.booleans(),
    item_order=st.sampled_from(["first_seen", "sequence", "sorted"]),
)
@example(records=[(0, "a", 1)] * 3 + [(1, "a", 0), (1, "b", 0)], min_count=2, iterate=False, item_order="first_seen")
def test_preprocess_equals_reference(records, min_count, iterate, item_order):
    _check_against_reference(records, min_count, iterate, item_order)


@pytest.mark.parametrize("iterate", [False, True])
@pytest.mark.parametrize("item_order", ["first_seen", "sequence", "sorted"])
def test_fixture_equals_reference(iterate, item_order):
    inter = read_movielens(RAW / "ratings.dat")
    _check_against_reference(list(inter.records()), 5, iterate, item_order)


def test_one_pass_is_not_iterated():
    """After one pass some users keep fewer than 5 interactions; iterating removes them."""
    inter = read_movielens(RAW / "ratings.dat")
    one = preprocess_with_ids(inter, "fixture")
    core = preprocess_with_ids(inter, "fixture", iterate=True)
    assert one.passes == 1 and core.passes > 1
    assert one.dataset.lengths.min() < 5
    assert core.dataset.lengths.min() >= 5
    assert np.bincount(core.dataset.items)[1:].min() >= 5
    assert core.dataset.stats().interactions < one.dataset.stats().interactions


def test_ties_keep_input_order():
    rows = [("u", "x", 10), ("u", "y", 5), ("u", "z", 10), ("u", "w", 5)]
    ds = preprocess(Interactions.from_records(rows), "ties", min_count=1, item_order="sorted")
    # w < x < y < z: w=1, x=2, y=3, z=4; time 5 (y then w, input order), then time 10 (x then z)
    assert ds.sequence(0).tolist() == [3, 1, 2, 4]


def test_users_numbered_by_first_kept_interaction():
    rows = [("A", "rare", 0), ("B", "x", 1), ("A", "x", 2), ("B", "x", 3), ("A", "x", 4)]
    got = preprocess_with_ids(Interactions.from_records(rows), "t", min_count=2)
    # A's first line is dropped (rare item), so B's line comes first among the kept ones
    assert got.user_ids.tolist() == ["B", "A"]


def test_write_pairs_round_trip(tmp_path):
    ds = preprocess(read_movielens(RAW / "ratings.dat"), "fixture", item_order="sequence")
    path = write_pairs(ds, tmp_path / "fixture.txt")
    back = read_pairs(path, name="fixture")
    assert back.fingerprint() == ds.fingerprint()
    assert not (tmp_path / "fixture.txt.tmp").exists()


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "5"])
def test_min_count_must_be_a_positive_integer(bad):
    inter = Interactions.from_records([("a", "x", 0)])
    with pytest.raises(ValueError, match="min_count must be a positive integer"):
        filter_min_count(inter, bad)


def test_errors_for_empty_and_unknown_order():
    empty = Interactions.from_records([], source="empty.csv")
    with pytest.raises(ValueError, match="empty.csv: no interactions to preprocess"):
        preprocess(empty, "e")
    inter = Interactions.from_records([("a", "x", 0)] * 5, source="mem")
    with pytest.raises(ValueError, match="item_order must be one of"):
        preprocess(inter, "t", item_order="random")
    with pytest.raises(ValueError, match="no interactions left.*fewer than 6.*5 were read"):
        preprocess(inter, "t", min_count=6)


def test_docstring_examples():
    import doctest

    import sarbench.data.preprocess as preprocess_module
    import sarbench.data.raw as raw_module

    for module in (preprocess_module, raw_module):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
