"""Readers for the preprocessed formats: ``pairs`` (SASRec) and ``lines`` (S3-Rec).

Both formats are already filtered and chronological, so these readers never filter again (a second
"fewer than 5" pass would change the data; see the data README). Item ids are re-indexed to 1..N in
ascending order of the original id, which is the identity for files that already use 1..N. Users
keep the order of their first appearance in the file.

Raw formats (MovieLens ratings.dat, Amazon ratings CSV, Yelp reviews JSON) live in ``raw.py`` and
go through ``preprocess.py``.

Every error names the file and, where it is about one line, the line number and its text.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np

from .sequences import SequenceDataset


class DataFormatError(ValueError):
    """A data file is malformed; the message names the file and line."""


def open_text(path: Path):
    """Open a text file, transparently un-gzipping ``*.gz`` or any file starting with the gzip magic."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def _parse_int(token: str, path: Path, lineno: int, line: str) -> int:
    try:
        value = int(token)
    except ValueError:
        raise DataFormatError(f"{path}:{lineno}: {token!r} is not an integer id in line {line.rstrip()!r}") from None
    if value < 0:
        raise DataFormatError(f"{path}:{lineno}: negative id {value} in line {line.rstrip()!r}")
    return value


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


def read_pairs(path, name: str | None = None) -> SequenceDataset:
    """``user item`` per line, whitespace separated, chronological within each user (SASRec format)."""
    path = Path(path)
    users, items = [], []
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise DataFormatError(
                    f"{path}:{lineno}: expected 2 fields 'user item', got {len(parts)} in line {line.rstrip()!r}"
                )
            users.append(_parse_int(parts[0], path, lineno, line))
            items.append(_parse_int(parts[1], path, lineno, line))
    return _reindex(name or path.stem, np.asarray(users, np.int64), np.asarray(items, np.int64), str(path))


def read_lines(path, name: str | None = None) -> SequenceDataset:
    """``user item1 item2 ...`` per line, chronological (S3-Rec format)."""
    path = Path(path)
    users, items = [], []
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                raise DataFormatError(f"{path}:{lineno}: user {parts[0]!r} has no items in line {line.rstrip()!r}")
            user = _parse_int(parts[0], path, lineno, line)
            seq = [_parse_int(t, path, lineno, line) for t in parts[1:]]
            users.extend([user] * len(seq))
            items.extend(seq)
    return _reindex(name or path.stem, np.asarray(users, np.int64), np.asarray(items, np.int64), str(path))


READERS = {"pairs": read_pairs, "lines": read_lines}
