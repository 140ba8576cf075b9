"""A resumable results store: one JSON file per finished benchmark case.

Every finished case becomes a :class:`ResultRecord`, written by :meth:`ResultStore.write` the moment
the case ends. A write is atomic: the JSON goes to a hidden temporary file in the same folder, is
flushed and fsync'ed, and then renamed over the final name with :func:`os.replace`. A reader (or a
later run) therefore sees either no record or a whole record, never a half-written one, even when
the writing process is killed. Files are named from the record's key, so processes running cases in
parallel (pytest-xdist) never write the same file unless they ran the very same case; if they do, the
last complete write wins.

**Claims.** Two processes on one results folder (two pytest runs, ``sarbench run`` beside ``pytest
bench``) share the work: ``run_case`` holds :meth:`ResultStore.claim` on a case's key while it looks
for the record and, if there is none, trains and writes it. The claim is an exclusive ``flock`` on
``<results>/locks/<key>.lock``, so a second process asking for the same case waits, then finds the
first one's record and reuses it; the kernel drops the lock of a process that dies, so a crash
leaves nothing to clean up (the small lock files stay, and are reused).

Records are of schema 2 (with results versions); a file of another schema is not read (skipped
with a :class:`CorruptRecordWarning`, as a corrupt file).

Corrupt or partial files (a crash of an older tool, a disk full, a hand edit) are skipped with a
:class:`CorruptRecordWarning` that names the file; they never stop a report.

Example:
    >>> import tempfile
    >>> store = ResultStore(tempfile.mkdtemp())
    >>> rec = ResultRecord(case_id="vanilla[synthetic-AR-ce]", table="vanilla", dataset="synthetic",
    ...                    model="sar", attention="AR", loss="ce", config={"d": 64},
    ...                    fingerprint="0123456789abcdef", seed=0, scale="smoke",
    ...                    metrics={"N@10": 0.1}, code_version="0.1.0")
    >>> path = store.write(rec)
    >>> store.find(rec.key).metrics
    {'N@10': 0.1}
    >>> store.find(make_key("vanilla[synthetic-AR-ce]", {"d": 32}, "0123456789abcdef", 0, "smoke")) is None
    True
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import re
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# The record and its key live in record.py and keys.py; their names are re-exported here.
from .keys import ADDED_FIELDS, RUN_CONTROLS, RecordError, config_dict, identity_config, make_key  # noqa: F401
from .provenance import RESULTS_VERSION, code_version, gpu_name, host_info, source_hash  # noqa: F401
from .record import SCALES, SCHEMA, TABLES, ResultRecord, latest_per_seed, make_record  # noqa: F401

log = logging.getLogger(__name__)

SUFFIX = ".json"
LOCKS = "locks"  # subfolder of the results folder holding the per-case claim files


class CorruptRecordWarning(UserWarning):
    """A file in the results folder could not be read as a record and was skipped."""


# --- the store -------------------------------------------------------------------------------
_SLUG = re.compile(r"[^A-Za-z0-9@.+-]+")


def _slug(text: str) -> str:
    return _SLUG.sub("_", text).strip("_")[:80] or "case"


class ResultStore:
    """A folder of JSON records, one file per key: ``<case-slug>.s<seed>.<key>.json``.

    The folder is created on the first write. Hidden files (temporary files of writes in progress
    or of killed writers) are never read as records.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def __repr__(self) -> str:
        return f"ResultStore({str(self.folder)!r})"

    def path_for(self, record: ResultRecord) -> Path:
        return self.folder / f"{_slug(record.case_id)}.s{record.seed}.{record.key}{SUFFIX}"

    def _paths(self, pattern: str = "*") -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.glob(pattern + SUFFIX) if not p.name.startswith("."))

    def write(self, record: ResultRecord) -> Path:
        """Write ``record`` atomically (temp file, fsync, ``os.replace``); returns its path."""
        if not isinstance(record, ResultRecord):
            record = ResultRecord.from_dict(record)
        text = record.to_json()
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.path_for(record)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        _fsync_dir(self.folder)
        log.debug("stored %s -> %s", record.case_id, target)
        return target

    def load(self, path: str | os.PathLike) -> ResultRecord | None:
        """Read one record file; None (with a :class:`CorruptRecordWarning`) if it is not a valid record."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            record = ResultRecord.from_dict(data)
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecordError) as exc:
            warnings.warn(f"skipping corrupt result file {path}: {exc}", CorruptRecordWarning, stacklevel=3)
            return None
        if not path.name.endswith(f".{record.key}{SUFFIX}"):
            warnings.warn(f"skipping result file {path}: its name does not carry its key {record.key}",
                          CorruptRecordWarning, stacklevel=3)
            return None
        return record

    @contextlib.contextmanager
    def claim(self, key: str, what: str = ""):
        """Hold case ``key`` for this process (see "Claims" above); waits while another process holds it."""
        if not re.fullmatch(r"[0-9a-f]+", key or ""):
            raise ValueError(f"a record key is a hex string, got {key!r}")
        path = self.folder / LOCKS / f"{key}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning("%s: another process is running this case (%s); waiting for its record",
                            what or key, path)
                fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def find(self, key: str) -> ResultRecord | None:
        """The stored record with this key, or None (also when that file is corrupt)."""
        if not re.fullmatch(r"[0-9a-f]+", key or ""):
            raise ValueError(f"a record key is a hex string, got {key!r}")
        for path in self._paths(f"*.{key}"):
            record = self.load(path)
            if record is not None and record.key == key:
                return record
        return None

    def records(self, **where: Any) -> list[ResultRecord]:
        """Every readable record, optionally filtered: ``records(table="vanilla", dataset=("beauty", "yelp"))``.

        Each keyword is a record field; its value is either the wanted value or a list/tuple/set of
        accepted values. Corrupt files are skipped with a warning.
        """
        names = {f.name for f in dataclasses.fields(ResultRecord)}
        for name in where:
            if name not in names:
                raise ValueError(f"records(): unknown field {name!r}; fields: {', '.join(sorted(names))}")
        out = []
        for path in self._paths():
            record = self.load(path)
            if record is None:
                continue
            if all(_matches(getattr(record, k), v) for k, v in where.items()):
                out.append(record)
        return out

    def __iter__(self):
        return iter(self.records())

    def __len__(self) -> int:
        return len(self.records())


def read_records(paths: Iterable[str | os.PathLike]) -> list[ResultRecord]:
    """The records of ``paths``, each a results folder (its readable records) or one record file.

    Raises :class:`FileNotFoundError` naming a path that is neither, and :class:`RecordError`
    naming a file that is not a readable record.
    """
    records = []
    for path in map(Path, paths):
        if path.is_dir():
            records += ResultStore(path).records()
        elif path.is_file():
            record = ResultStore(path.parent).load(path)
            if record is None:
                raise RecordError(f"{path}: not a readable result record")
            records.append(record)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return records


def _matches(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, (list, tuple, set, frozenset)):
        return value in wanted
    return value == wanted


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


__all__ = [
    "CorruptRecordWarning",
    "RecordError",
    "ResultRecord",
    "ResultStore",
    "SCHEMA",
    "TABLES",
    "RUN_CONTROLS",
    "code_version",
    "config_dict",
    "identity_config",
    "gpu_name",
    "host_info",
    "latest_per_seed",
    "make_key",
    "make_record",
    "read_records",
]
