"""Readers of the preprocessed formats (pairs, lines): fast path vs line-by-line reference, gzip, errors."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sarbench.data.readers import (
    DataFormatError,
    _lines_fast,
    _lines_slow,
    _pairs_fast,
    _pairs_slow,
    file_sha256,
    read_lines,
    read_pairs,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _reference_sequences(text: str, fmt: str) -> dict[int, list[int]]:
    """Plain-Python reading of a well-formed file: user -> items in file order."""
    seqs: dict[int, list[int]] = {}
    for line in text.splitlines():
        parts = [int(p) for p in line.split()]
        if not parts:
            continue
        if fmt == "pairs":
            seqs.setdefault(parts[0], []).append(parts[1])
        else:
            seqs.setdefault(parts[0], []).extend(parts[1:])
    return seqs


@pytest.mark.parametrize("fmt,reader,name", [("pairs", read_pairs, "pairs_tiny.txt"),
                                             ("lines", read_lines, "lines_tiny.txt")])
def test_fixture_matches_plain_reading(fmt, reader, name):
    path = FIXTURES / "processed" / name
    ds = reader(path)
    ref = _reference_sequences(path.read_text(), fmt)
    items = sorted({i for s in ref.values() for i in s})
    new_id = {old: k + 1 for k, old in enumerate(items)}  # ascending original id -> 1..N
    assert ds.num_users == len(ref) and ds.num_items == len(items)
    for u, (user, seq) in enumerate(ref.items()):  # users in order of first appearance
        assert ds.sequence(u).tolist() == [new_id[i] for i in seq], user


def test_pairs_and_lines_fixtures_agree():
    a = read_pairs(FIXTURES / "processed" / "pairs_tiny.txt")
    b = read_lines(FIXTURES / "processed" / "lines_tiny.txt")
    assert a.fingerprint() == b.fingerprint()


def test_gzip_is_transparent(tmp_path):
    src = FIXTURES / "processed" / "pairs_tiny.txt"
    gz = tmp_path / "pairs_tiny.txt.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    disguised = tmp_path / "pairs_no_suffix.txt"  # gzip detected by content, not by name
    disguised.write_bytes(gz.read_bytes())
    plain = read_pairs(src)
    assert read_pairs(gz).fingerprint() == plain.fingerprint()
    assert read_pairs(disguised).fingerprint() == plain.fingerprint()
    assert file_sha256(gz) == file_sha256(src) == hashlib.sha256(src.read_bytes()).hexdigest()


# --- fast path == reference --------------------------------------------------------------------

# digits, separators and the characters of the near-integers that must be rejected (-1, +3, 1.5, 1e3,
# 0x1, \x1c which str.split treats as whitespace)
_text = st.text(alphabet="0123456789      \t\n\n\n-+.ex\x1c", max_size=80)


def _outcome(fn, *args):
    try:
        users, items = fn(*args)
    except DataFormatError:
        return "error"
    return users.tolist(), items.tolist()


@settings(max_examples=150)
@given(_text)
@example("1 2\n\n3 4\n")
@example("1 \u00e9\n")
@example("1 99999999999999999999\n")  # fromstring clips to the int64 maximum instead of failing
@example("1 2 3\n4\n")  # wrong field counts that cancel out in total
@example("0 -")  # found by hypothesis: np.fromstring reads a lone "-" as 0
def test_pairs_fast_path_agrees_with_reference(text):
    fast = _pairs_fast(text)
    slow = _outcome(_pairs_slow, Path("x.txt"), text)
    if fast is not None:  # the fast path only answers when the reference accepts the same values
        assert slow == (fast[0].tolist(), fast[1].tolist())


@settings(max_examples=150)
@given(_text)
@example("1 2 3\n4 5\n")
@example("1\n2 3\n")
@example("0 -")
def test_lines_fast_path_agrees_with_reference(text):
    fast = _lines_fast(text)
    slow = _outcome(_lines_slow, Path("x.txt"), text)
    if fast is not None:
        assert slow == (fast[0].tolist(), fast[1].tolist())


_rows = st.lists(st.lists(st.integers(0, 2**62), min_size=1, max_size=6), max_size=10)


@settings(max_examples=100)
@given(_rows, st.sampled_from([" ", "\t", "  "]), st.sampled_from(["\n", "\n\n", " \n"]))
def test_fast_path_reads_wellformed_text_like_reference(rows, sep, newline):
    text = newline.join(sep.join(map(str, r)) for r in rows)
    for fast_fn, slow_fn, ok in [(_pairs_fast, _pairs_slow, all(len(r) == 2 for r in rows)),
                                 (_lines_fast, _lines_slow, all(len(r) >= 2 for r in rows)
                                  and len({r[0] for r in rows}) == len(rows))]:  # one line per user
        fast = fast_fn(text)
        slow = _outcome(slow_fn, Path("x.txt"), text)
        assert (fast is not None) == ok  # well-formed text takes the fast path, malformed does not
        if ok:
            assert slow == (fast[0].tolist(), fast[1].tolist())
        else:
            assert slow == "error"


def test_fast_path_is_taken_for_clean_files():
    text = (FIXTURES / "processed" / "pairs_tiny.txt").read_text()
    assert _pairs_fast(text) is not None
    assert _lines_fast((FIXTURES / "processed" / "lines_tiny.txt").read_text()) is not None


# --- bad input ------------------------------------------------------------------------------------


def _write(tmp_path, text, name="data.txt"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text,needle,lineno",
    [
        ("1 2\n1 2 3\n", "expected 2 fields 'user item', got 3", 2),
        ("1 2\n7\n", "expected 2 fields 'user item', got 1", 2),
        ("1 2\n1 b7\n", "'b7' is not an integer id", 2),
        ("1 2\n\n1 2.5\n", "'2.5' is not an integer id", 3),
        ("1 -4\n", "negative id -4", 1),
        ("1 99999999999999999999\n", "is too large", 1),
    ],
)
def test_pairs_errors_name_file_line_and_value(tmp_path, text, needle, lineno):
    path = _write(tmp_path, text)
    with pytest.raises(DataFormatError) as info:
        read_pairs(path)
    message = str(info.value)
    assert needle in message
    assert f"{path}:{lineno}:" in message


@pytest.mark.parametrize(
    "text,needle,lineno",
    [("1 2 3\n4\n", "user '4' has no items", 2), ("1 2 x\n", "'x' is not an integer id", 1)],
)
def test_lines_errors_name_file_line_and_value(tmp_path, text, needle, lineno):
    path = _write(tmp_path, text)
    with pytest.raises(DataFormatError, match=needle) as info:
        read_lines(path)
    assert f"{path}:{lineno}:" in str(info.value)


@pytest.mark.parametrize("reader", [read_pairs, read_lines])
@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_empty_file_is_an_error(tmp_path, reader, text):
    path = _write(tmp_path, text)
    with pytest.raises(DataFormatError, match="empty file") as info:
        reader(path)
    assert str(path) in str(info.value)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_pairs(tmp_path / "nope.txt")


def test_non_utf8_and_broken_gzip(tmp_path):
    bad = tmp_path / "latin.txt"
    bad.write_bytes(b"1 2\n1 \xe9\n")
    with pytest.raises(DataFormatError, match="not UTF-8") as info:
        read_pairs(bad)
    assert str(bad) in str(info.value)
    broken = tmp_path / "broken.txt.gz"
    payload = "".join(f"{k} {k * 7 % 13}\n" for k in range(2000)).encode()
    broken.write_bytes(gzip.compress(payload)[:200])  # cut mid-stream
    with pytest.raises(DataFormatError, match="cannot read"):
        read_pairs(broken)


def test_reindex_keeps_first_appearance_user_order(tmp_path):
    path = _write(tmp_path, "9 30\n2 10\n9 20\n")
    ds = read_pairs(path)
    assert [ds.sequence(u).tolist() for u in range(ds.num_users)] == [[3, 2], [1]]
    assert np.array_equal(ds.offsets, [0, 2, 3])


def test_lines_user_on_two_lines_is_an_error_naming_both_lines(tmp_path):
    path = _write(tmp_path, "5 1 2\n6 3 4\n\n5 7\n")
    with pytest.raises(DataFormatError, match="user 5 is on lines 1 and 4") as info:
        read_lines(path)
    assert f"{path}:4:" in str(info.value)


def test_plain_text_named_gz_is_read_with_a_warning(tmp_path, caplog):
    src = FIXTURES / "processed" / "pairs_tiny.txt"
    fake = tmp_path / "pairs_tiny.txt.gz"
    fake.write_bytes(src.read_bytes())  # plain text under a .gz name
    with caplog.at_level("WARNING", logger="sarbench.data.readers"):
        ds = read_pairs(fake)
    assert ds.fingerprint() == read_pairs(src).fingerprint()
    assert any(str(fake) in r.getMessage() and "not gzipped" in r.getMessage() for r in caplog.records)
