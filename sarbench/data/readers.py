"""Readers for the preprocessed formats: ``pairs`` (SASRec) and ``lines`` (S3-Rec).

Both formats are already filtered and chronological, so these readers never filter again (a second
"fewer than 5" pass would change the data; see the data README). Item ids are re-indexed to 1..N in
ascending order of the original id, which is the identity for files that already use 1..N. Users
keep the order of their first appearance in the file.

Raw formats (MovieLens ratings.dat, Amazon ratings CSV, Yelp reviews JSON) live in ``raw.py`` and
go through ``preprocess.py``.

Every error names the file and, where it is about one line, the line number and its text. A user on
two lines of a ``lines`` file is an error naming both lines (the format has one line per user). A
file named ``*.gz`` that is not gzipped is read as text, with a logged warning naming it.

Parsing has two paths that give the same result: a vectorised fast path (numpy) for well-formed
files, and a line-by-line path that is also the reference and produces the precise error message.
Whenever the fast path sees anything it does not expect (a token that is not a non-negative integer,
a wrong number of fields on some line), the line-by-line path runs and raises.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np

from .sequences import SequenceDataset

log = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"


class DataFormatError(ValueError):
    """A data file is malformed; the message names the file and line."""


class ChecksumError(ValueError):
    """A file's sha256 differs from the expected one; the message names both hashes and the file or url."""


def is_gzip(path) -> bool:
    """True when the file starts with the gzip magic bytes (whatever its name)."""
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def open_text(path: Path):
    """Open a text file, transparently un-gzipping ``*.gz`` or any file starting with the gzip magic."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    if is_gzip(path):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    if path.suffix.lower() == ".gz":
        log.warning("%s: named .gz but not gzipped (no gzip header); reading it as plain text", path)
    return open(path, encoding="utf-8")


def file_sha256(path) -> str:
    """sha256 (hex) of a file's content, of the *uncompressed* content when the file is gzipped.

    So ``beauty.txt`` and a ``beauty.txt.gz`` holding the same text have the same checksum, which is
    what the registry's ``sha256`` refers to.
    """
    path = Path(path)
    h = hashlib.sha256()
    opener = gzip.open if is_gzip(path) else open
    with opener(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _read_all(path: Path) -> str:
    try:
        with open_text(path) as fh:
            return fh.read()
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{path}: not UTF-8 text ({exc})") from None
    except (gzip.BadGzipFile, EOFError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise DataFormatError(f"{path}: cannot read ({exc})") from None


def _parse_int(token: str, path: Path, lineno: int, line: str) -> int:
    try:
        value = int(token)
    except ValueError:
        raise DataFormatError(f"{path}:{lineno}: {token!r} is not an integer id in line {line.rstrip()!r}") from None
    if value < 0:
        raise DataFormatError(f"{path}:{lineno}: negative id {value} in line {line.rstrip()!r}")
    if value >= _MAX_ID:
        raise DataFormatError(
            f"{path}:{lineno}: id {value} is too large (limit {_MAX_ID - 1}) in line {line.rstrip()!r}"
        )
    return value


_MAX_ID = 2**63 - 1  # ids must fit int64; the largest value is reserved because fromstring clips to it

_SPACE = np.zeros(256, dtype=bool)
_SPACE[[9, 10, 11, 12, 13, 32]] = True


def _fast_tokens(text: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(integer value of every token, 0-based line of every token), or None when anything is off.

    None means "let the line-by-line parser decide": any character other than ASCII digits and
    whitespace (signs, dots, letters, non-ASCII), or a value too large for int64.
    """
    if not text.isascii():
        return None
    raw = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    space = _SPACE[raw]
    solid = raw[~space]
    if np.any((solid < 48) | (solid > 57)):  # only digits: fromstring reads "-" or "+" alone as 0
        return None
    starts = np.flatnonzero(~space & np.concatenate([[True], space[:-1]]))
    token_line = np.cumsum(raw == 10)[starts]  # newlines before each token (a token never starts on one)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            values = np.fromstring(text, dtype=np.int64, sep=" ")
        except (ValueError, DeprecationWarning, OverflowError):
            return None
    # fromstring clips out-of-range values to the int64 limits instead of failing
    if len(values) != len(starts) or (len(values) and (values.min() < 0 or values.max() >= _MAX_ID)):
        return None
    return values, token_line.astype(np.int64)


MIN_EVAL_LENGTH = 3  # a user needs a train, a validation and a test item to be evaluated (sequences.py)


def check_evaluable(ds: SequenceDataset, where: str) -> SequenceDataset:
    """``ds``, or a DataFormatError naming ``where`` when no user is long enough to be evaluated."""
    if not np.any(ds.lengths >= MIN_EVAL_LENGTH):
        longest = int(ds.lengths.max()) if ds.num_users else 0
        raise DataFormatError(
            f"{where}: no user has {MIN_EVAL_LENGTH} or more interactions ({ds.num_users} user(s), the longest "
            f"with {longest}), so none can be evaluated (leave-one-out keeps each user's last two items for "
            "validation and test)"
        )
    return ds


def _reindex(name: str, users: np.ndarray, items: np.ndarray, source: str) -> SequenceDataset:
    """Group interactions (already chronological within user) by user, items re-indexed 1..N."""
    if len(users) == 0:
        raise DataFormatError(f"{source}: no interactions (empty file)")
    uniq_users, first_pos, user_idx = np.unique(users, return_index=True, return_inverse=True)
    # users in order of first appearance
    order_of_users = np.argsort(first_pos, kind="stable")
    rank = np.empty_like(order_of_users)
    rank[order_of_users] = np.arange(len(order_of_users))
    user_idx = rank[user_idx]
    uniq_items, item_idx = np.unique(items, return_inverse=True)
    order = np.argsort(user_idx, kind="stable")  # stable: keeps the chronological line order
    counts = np.bincount(user_idx, minlength=len(uniq_users))
    offsets = np.concatenate([[0], np.cumsum(counts)])
    return SequenceDataset(
        name=name, items=item_idx[order] + 1, offsets=offsets, num_items=len(uniq_items), source=source
    )


def _pairs_slow(path: Path, text: str) -> tuple[np.ndarray, np.ndarray]:
    users, items = [], []
    for lineno, line in enumerate(io.StringIO(text), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DataFormatError(
                f"{path}:{lineno}: expected 2 fields 'user item', got {len(parts)} in line {line.rstrip()!r}"
            )
        users.append(_parse_int(parts[0], path, lineno, line))
        items.append(_parse_int(parts[1], path, lineno, line))
    return np.asarray(users, np.int64), np.asarray(items, np.int64)


def _pairs_fast(text: str) -> tuple[np.ndarray, np.ndarray] | None:
    parsed = _fast_tokens(text)
    if parsed is None:
        return None
    values, token_line = parsed
    if len(values) % 2:
        return None
    # every non-blank line holds exactly two tokens: tokens 2k and 2k+1 share a line, and that line
    # differs from the one of token 2k+2
    if np.any(token_line[0::2] != token_line[1::2]) or np.any(token_line[2::2] == token_line[1:-1:2]):
        return None
    return values[0::2].copy(), values[1::2].copy()


def read_pairs(path, name: str | None = None) -> SequenceDataset:
    """``user item`` per line, whitespace separated, chronological within each user (SASRec format)."""
    path = Path(path)
    text = _read_all(path)
    parsed = _pairs_fast(text)
    users, items = parsed if parsed is not None else _pairs_slow(path, text)
    return _reindex(name or path.stem, users, items, str(path))


def _lines_slow(path: Path, text: str) -> tuple[np.ndarray, np.ndarray]:
    users, items = [], []
    first_line: dict[int, int] = {}
    for lineno, line in enumerate(io.StringIO(text), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise DataFormatError(f"{path}:{lineno}: user {parts[0]!r} has no items in line {line.rstrip()!r}")
        user = _parse_int(parts[0], path, lineno, line)
        if first_line.setdefault(user, lineno) != lineno:
            raise DataFormatError(f"{path}:{lineno}: user {user} is on lines {first_line[user]} and {lineno}; "
                                  "the lines format has one line per user (merge them, in time order)")
        seq = [_parse_int(t, path, lineno, line) for t in parts[1:]]
        users.extend([user] * len(seq))
        items.extend(seq)
    return np.asarray(users, np.int64), np.asarray(items, np.int64)


def _lines_fast(text: str) -> tuple[np.ndarray, np.ndarray] | None:
    parsed = _fast_tokens(text)
    if parsed is None:
        return None
    values, token_line = parsed
    if len(values) == 0:
        return values, values
    first = np.concatenate([[True], token_line[1:] != token_line[:-1]])  # first token of its line
    line_start = np.flatnonzero(first)
    per_line = np.diff(np.append(line_start, len(values)))
    if np.any(per_line < 2) or len(np.unique(values[line_start])) != len(line_start):  # a user on two lines
        return None
    users = np.repeat(values[line_start], per_line - 1)
    return users, values[~first]


def read_lines(path, name: str | None = None) -> SequenceDataset:
    """``user item1 item2 ...`` per line, chronological (S3-Rec format)."""
    path = Path(path)
    text = _read_all(path)
    parsed = _lines_fast(text)
    users, items = parsed if parsed is not None else _lines_slow(path, text)
    return _reindex(name or path.stem, users, items, str(path))


READERS = {"pairs": read_pairs, "lines": read_lines}
