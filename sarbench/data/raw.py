"""Readers for the raw (unprocessed) formats the five datasets are published in.

Each reader returns :class:`Interactions`: one row per line of the input, in file order, with the
original user and item ids and an integer timestamp (seconds since 1970-01-01 UTC). Nothing is
filtered or sorted here; that is :mod:`sarbench.data.preprocess`'s job.

Formats:

``movielens``
    MovieLens ``ratings.dat``: ``user::item::rating::timestamp``, integer ids. A ``.zip`` holding a
    single ``*ratings.dat`` member (as ``ml-1m.zip`` holds ``ml-1m/ratings.dat``) is read directly.
``amazon_csv``
    Amazon review data 2014 "ratings only" CSV (``ratings_Beauty.csv``): ``user,item,rating,timestamp``,
    no header; ids are strings (reviewerID, asin).
``amazon_json``
    Amazon review data 2014 review file (``reviews_Beauty.json.gz``), one record per line with
    ``reviewerID``, ``asin`` and ``unixReviewTime``; the records are strict JSON or the Python-literal
    "loose JSON" those files use. This is the file the SASRec preprocessing script reads.
``yelp_json``
    Yelp Open Dataset ``yelp_academic_dataset_review.json``: JSON lines with ``user_id``,
    ``business_id`` and ``date`` (``"2016-03-09 00:44:39"`` or ``"2016-03-09"``, read as UTC).

Every file may be gzipped (detected by content, see :func:`sarbench.data.readers.open_text`). Every
error is a :class:`~sarbench.data.readers.DataFormatError` naming the file, the line number and the
offending value.
"""

from __future__ import annotations

import ast
import io
import json
import logging
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from .readers import DataFormatError, open_text

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True, eq=False)
class Interactions:
    """Raw interactions in file order, ids stored once.

    ``user[k]`` and ``item[k]`` index ``user_ids`` and ``item_ids``, which hold the original ids in
    order of first appearance (so code 0 is the first user of the file). ``timestamp[k]`` is in
    seconds since the epoch (UTC). Row order is file order; preprocessing uses it to break ties
    between equal timestamps.
    """

    user: np.ndarray  # (n,) int64, index into user_ids
    item: np.ndarray  # (n,) int64, index into item_ids
    timestamp: np.ndarray  # (n,) int64 seconds
    user_ids: np.ndarray  # (U,) original user ids, first-appearance order
    item_ids: np.ndarray  # (N,) original item ids, first-appearance order
    source: str = ""

    def __post_init__(self):
        for name in ("user", "item", "timestamp"):
            object.__setattr__(self, name, np.ascontiguousarray(getattr(self, name), dtype=np.int64))
        n = len(self.user)
        if len(self.item) != n or len(self.timestamp) != n:
            raise ValueError(
                f"{self.source}: user, item and timestamp must have equal lengths, got "
                f"{n}, {len(self.item)}, {len(self.timestamp)}"
            )
        if n and (self.user.min() < 0 or self.user.max() >= len(self.user_ids)):
            raise ValueError(f"{self.source}: user codes must index user_ids")
        if n and (self.item.min() < 0 or self.item.max() >= len(self.item_ids)):
            raise ValueError(f"{self.source}: item codes must index item_ids")

    @classmethod
    def from_records(cls, records: Iterable[tuple], source: str = "") -> "Interactions":
        """Build from ``(user_id, item_id, timestamp)`` tuples in file order."""
        users: dict = {}
        items: dict = {}
        u, i, t = [], [], []
        for user, item, ts in records:
            u.append(users.setdefault(user, len(users)))
            i.append(items.setdefault(item, len(items)))
            t.append(ts)
        return cls(
            user=np.asarray(u, dtype=np.int64),
            item=np.asarray(i, dtype=np.int64),
            timestamp=np.asarray(t, dtype=np.int64),
            user_ids=_id_array(users),
            item_ids=_id_array(items),
            source=source,
        )

    def __len__(self) -> int:
        return len(self.user)

    def records(self) -> Iterator[tuple]:
        """``(user_id, item_id, timestamp)`` with the original ids, in file order."""
        for u, i, t in zip(self.user, self.item, self.timestamp):
            yield self.user_ids[u], self.item_ids[i], int(t)


def _id_array(ids: dict) -> np.ndarray:
    keys = list(ids)
    if keys and all(isinstance(k, (int, np.integer)) for k in keys):
        return np.asarray(keys, dtype=np.int64)
    out = np.empty(len(keys), dtype=object)
    out[:] = keys
    return out


# --- opening files ------------------------------------------------------------------------------


def _open_member(path: Path, suffix: str) -> tuple[io.TextIOBase, str]:
    """A text handle on ``path`` (gzip transparent) or on its one ``*suffix`` member when a zip."""
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    if zipfile.is_zipfile(path):
        zf = zipfile.ZipFile(path)
        members = [m for m in zf.namelist() if m.endswith(suffix)]
        if len(members) != 1:
            names = ", ".join(zf.namelist()[:20])
            zf.close()
            raise DataFormatError(
                f"{path}: expected exactly one member ending in {suffix!r} in the zip, found "
                f"{len(members)} (members: {names})"
            )
        fh = io.TextIOWrapper(zf.open(members[0]), encoding="utf-8")
        return _ClosingWrapper(fh, zf), f"{path}:{members[0]}"
    return open_text(path), str(path)


class _ClosingWrapper(io.TextIOBase):
    """Iterates the member's lines and closes the zip archive with it."""

    def __init__(self, fh, archive):
        self._fh, self._archive = fh, archive

    def __iter__(self):
        return iter(self._fh)

    def close(self):
        self._fh.close()
        self._archive.close()
        super().close()


def _lines(path, suffix: str = "") -> Iterator[tuple[int, str, str]]:
    """(line number, line without newline, source label) for every non-blank line."""
    path = Path(path)
    fh, label = _open_member(path, suffix) if suffix else (open_text(path), str(path))
    lineno = 0
    with fh:
        try:
            for lineno, line in enumerate(fh, 1):
                line = line.rstrip("\r\n")
                if line.strip():
                    yield lineno, line, label
        except UnicodeDecodeError as exc:
            raise DataFormatError(f"{label}: not UTF-8 text after line {lineno - 1} ({exc})") from None


def _int_field(value: str, what: str, label: str, lineno: int, line: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise DataFormatError(f"{label}:{lineno}: {what} {value!r} is not an integer in line {line!r}") from None


def _rating_field(value: str, label: str, lineno: int, line: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise DataFormatError(f"{label}:{lineno}: rating {value!r} is not a number in line {line!r}") from None


def _finish(records: list, label: str, fmt: str) -> Interactions:
    if not records:
        raise DataFormatError(f"{label}: no interactions (empty file) for format {fmt!r}")
    out = Interactions.from_records(records, source=label)
    log.info("%s: %d interactions, %d users, %d items (%s)", label, len(out), len(out.user_ids),
             len(out.item_ids), fmt)
    return out


# --- MovieLens ----------------------------------------------------------------------------------


def read_movielens(path) -> Interactions:
    """MovieLens ``ratings.dat`` (``user::item::rating::timestamp``), or a zip holding it.

    User and item ids must be integers, the timestamp an integer number of seconds.
    """
    records = []
    label = str(path)
    for lineno, line, label in _lines(path, suffix="ratings.dat"):
        parts = line.split("::")
        if len(parts) != 4:
            raise DataFormatError(
                f"{label}:{lineno}: expected 4 fields 'user::item::rating::timestamp', got {len(parts)} "
                f"in line {line!r}"
            )
        user = _int_field(parts[0], "user id", label, lineno, line)
        item = _int_field(parts[1], "item id", label, lineno, line)
        _rating_field(parts[2], label, lineno, line)
        ts = _int_field(parts[3], "timestamp", label, lineno, line)
        records.append((user, item, ts))
    return _finish(records, label, "movielens")


# --- Amazon 2014 --------------------------------------------------------------------------------


def read_amazon_ratings(path) -> Interactions:
    """Amazon 2014 ratings-only CSV: ``user,item,rating,timestamp`` per line, no header.

    Ids are kept as strings; the rating must be a number and the timestamp an integer.
    """
    records = []
    label = str(path)
    for lineno, line, label in _lines(path):
        parts = line.split(",")
        if len(parts) != 4:
            raise DataFormatError(
                f"{label}:{lineno}: expected 4 fields 'user,item,rating,timestamp', got {len(parts)} "
                f"in line {line!r}"
            )
        user, item = parts[0].strip(), parts[1].strip()
        if not user or not item:
            raise DataFormatError(f"{label}:{lineno}: empty user or item id in line {line!r}")
        _rating_field(parts[2], label, lineno, line)
        ts = _int_field(parts[3].strip(), "timestamp", label, lineno, line)
        records.append((user, item, ts))
    return _finish(records, label, "amazon_csv")


def _parse_record(line: str, label: str, lineno: int, loose: bool) -> dict:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as exc:
        if not loose:
            raise DataFormatError(f"{label}:{lineno}: invalid JSON ({exc.msg} at column {exc.colno}): "
                                  f"{line[:200]!r}") from None
        try:  # the 2014 Amazon files are Python literals ("loose JSON")
            rec = ast.literal_eval(line)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise DataFormatError(f"{label}:{lineno}: neither JSON nor a Python literal: {line[:200]!r}") from None
    if not isinstance(rec, dict):
        raise DataFormatError(f"{label}:{lineno}: expected an object, got {type(rec).__name__}: {line[:200]!r}")
    return rec


def _field(rec: dict, key: str, label: str, lineno: int) -> object:
    if key not in rec:
        raise DataFormatError(f"{label}:{lineno}: missing field {key!r} (fields: {', '.join(map(str, rec))})")
    return rec[key]


def _id(value, key: str, label: str, lineno: int) -> str:
    if not isinstance(value, str) or not value:
        raise DataFormatError(f"{label}:{lineno}: field {key!r} must be a non-empty string, got {value!r}")
    return value


def read_amazon_reviews(path) -> Interactions:
    """Amazon 2014 review records (``reviewerID``, ``asin``, ``unixReviewTime``), one per line."""
    records = []
    label = str(path)
    for lineno, line, label in _lines(path):
        rec = _parse_record(line, label, lineno, loose=True)
        user = _id(_field(rec, "reviewerID", label, lineno), "reviewerID", label, lineno)
        item = _id(_field(rec, "asin", label, lineno), "asin", label, lineno)
        ts = _field(rec, "unixReviewTime", label, lineno)
        if isinstance(ts, bool) or not isinstance(ts, (int, str)):
            raise DataFormatError(f"{label}:{lineno}: unixReviewTime {ts!r} is not an integer")
        records.append((user, item, _int_field(str(ts), "unixReviewTime", label, lineno, line[:200])))
    return _finish(records, label, "amazon_json")


# --- Yelp ---------------------------------------------------------------------------------------


def parse_yelp_date(value: object, label: str = "<date>", lineno: int = 0) -> int:
    """Seconds since the epoch for a Yelp ``date`` (``YYYY-MM-DD[ HH:MM:SS]``), read as UTC.

    >>> parse_yelp_date("2016-03-09 00:44:39")
    1457484279
    >>> parse_yelp_date("2016-03-09")
    1457481600
    """
    if not isinstance(value, str):
        raise DataFormatError(f"{label}:{lineno}: date {value!r} is not a string")
    try:
        if len(value) == 10:
            dt = datetime.strptime(value, "%Y-%m-%d")
        else:
            dt = datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise DataFormatError(
            f"{label}:{lineno}: bad date {value!r} (expected 'YYYY-MM-DD HH:MM:SS' or 'YYYY-MM-DD')"
        ) from None
    return int((dt.replace(tzinfo=timezone.utc) - _EPOCH).total_seconds())


def read_yelp_reviews(path) -> Interactions:
    """Yelp review JSON lines: ``user_id``, ``business_id`` and ``date`` of every review."""
    records = []
    label = str(path)
    for lineno, line, label in _lines(path):
        rec = _parse_record(line, label, lineno, loose=False)
        user = _id(_field(rec, "user_id", label, lineno), "user_id", label, lineno)
        item = _id(_field(rec, "business_id", label, lineno), "business_id", label, lineno)
        ts = parse_yelp_date(_field(rec, "date", label, lineno), label, lineno)
        records.append((user, item, ts))
    return _finish(records, label, "yelp_json")


RAW_READERS: dict[str, Callable[[Path], Interactions]] = {
    "movielens": read_movielens,
    "amazon_csv": read_amazon_ratings,
    "amazon_json": read_amazon_reviews,
    "yelp_json": read_yelp_reviews,
}


def read_raw(path, format: str) -> Interactions:
    """Read a raw file in one of :data:`RAW_READERS`' formats."""
    try:
        reader = RAW_READERS[format]
    except KeyError:
        raise ValueError(f"unknown raw format {format!r}; known: {', '.join(RAW_READERS)}") from None
    return reader(Path(path))
