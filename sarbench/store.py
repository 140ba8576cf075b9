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

**The record key** decides whether a stored result can be reused instead of retraining. It is a hash
of what determines the result: the case id, the configuration (the frozen dataclass as a dict,
without run controls such as a time cap or a progress bar, ``RUN_CONTROLS``), the data
fingerprint, the seed, the scale and the results version (:mod:`sarbench.provenance`), which is
bumped on purpose when a change moves results. Not the commit: a README edit or a refactor does
not invalidate hours of training. A record of another results version is *stale*: it is never
reused, and reports show it as stale. The commit (``code_version``) and a hash of the
result-determining source (``source_hash``) are recorded for provenance. Host, timings and the
metrics themselves are recorded but are not part of the key.

Records are of schema 2 (with results versions); a file of another schema is not read (skipped
with a :class:`CorruptRecordWarning`, as a corrupt file).

Corrupt or partial files (a crash of an older tool, a disk full, a hand edit) are skipped with a
:class:`CorruptRecordWarning` that names the file; they never stop a report.

Example:
    >>> import tempfile
    >>> store = ResultStore(tempfile.mkdtemp())
    >>> rec = ResultRecord(case_id="vanilla[synthetic-AR-ce]", table="vanilla", dataset="synthetic",
    ...                    model="bert4rec", attention="AR", loss="ce", config={"d": 64},
    ...                    fingerprint="0123456789abcdef", seed=0, scale="smoke",
    ...                    metrics={"N@10": 0.1}, code_version="0.1.0")
    >>> path = store.write(rec)
    >>> store.find(rec.key).metrics
    {'N@10': 0.1}
    >>> store.find(make_key("vanilla[synthetic-AR-ce]", {"d": 32}, "0123456789abcdef", 0, "smoke",
    ...                     "0.1.0")) is None
    True
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import fcntl
import hashlib
import json
import logging
import os
import re
import tempfile
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import ATTENTIONS
from .provenance import RESULTS_VERSION, code_version, gpu_name, host_info, source_hash  # noqa: F401  (re-exported)
from .provenance import results_version as family_version

log = logging.getLogger(__name__)

SCHEMA = 2
# Train-config fields that control a run without changing its result; left out of the key.
RUN_CONTROLS: tuple[str, ...] = ("progress", "max_minutes")
# Config fields added after results version 2, each with the value that means "as before it existed".
# At that value a field is left out of the key, so adding an option never changes the key of (or
# orphans the stored records of) a configuration that does not use it. A new field of a model or
# train config must be listed here (tests/test_store.py checks it); its neutral value never changes.
ADDED_FIELDS: dict[str, dict[str, Any]] = {
    "model": {"embedding_scale": False, "norm_residual": False, "ffn_inner_dropout": False, "init": "trunc_normal"},
    "train": {"decay_all": False, "negatives": "own"},
}
TABLES: tuple[str, ...] = ("vanilla", "design", "hf", "analysis")
SCALES: tuple[str, ...] = ("smoke", "paper")
SUFFIX = ".json"
LOCKS = "locks"  # subfolder of the results folder holding the per-case claim files


class RecordError(ValueError):
    """A record (or a stored file) is malformed; the message names the field and the value."""


class CorruptRecordWarning(UserWarning):
    """A file in the results folder could not be read as a record and was skipped."""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# --- canonical JSON and the key ----------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    """Default hook for json: dataclasses, numpy scalars/arrays, paths, sets."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors
        return value.tolist()
    if isinstance(value, (Path, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__} {value!r:.80}")


def config_dict(config: Any) -> dict[str, Any]:
    """A configuration as a plain dict: a (frozen) dataclass via ``dataclasses.asdict``, or a mapping."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    if not isinstance(config, Mapping):
        raise RecordError(f"config must be a dataclass instance or a mapping, got {type(config).__name__}")
    # Round-trip through JSON so that the stored and the hashed form are the same (tuples -> lists).
    return json.loads(json.dumps(dict(config), default=_jsonable, sort_keys=True))


def identity_config(config: Any) -> dict[str, Any]:
    """The configuration as the key sees it: without run controls (``RUN_CONTROLS``, in a ``train``
    section or at top level) and without added fields at their neutral value (``ADDED_FIELDS``)."""
    config = config_dict(config)
    out = {k: v for k, v in config.items() if k not in RUN_CONTROLS}
    if isinstance(out.get("train"), Mapping):
        out["train"] = {k: v for k, v in out["train"].items() if k not in RUN_CONTROLS}
    for section, neutral in ADDED_FIELDS.items():
        if isinstance(out.get(section), Mapping):
            out[section] = {k: v for k, v in out[section].items() if not (k in neutral and v == neutral[k])}
    return out


def make_key(
    case_id: str,
    config: Any,
    fingerprint: str,
    seed: int,
    scale: str,
    results_version: int = RESULTS_VERSION,
) -> str:
    """The reuse key of a case: 24 hex digits of sha256 over its identity (see the module doc).

    ``config`` may be a dataclass instance or a dict; equal configurations give equal keys whatever
    their key order, and run controls (``RUN_CONTROLS``) do not count.
    """
    if isinstance(results_version, bool) or not isinstance(results_version, int):
        raise RecordError(f"results_version must be an int, got {results_version!r}")
    payload = {
        "case_id": str(case_id),
        "config": identity_config(config),
        "fingerprint": str(fingerprint),
        "seed": int(seed),
        "scale": str(scale),
        "results_version": results_version,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=_jsonable)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


# --- the record ------------------------------------------------------------------------------
@dataclass
class ResultRecord:
    """The outcome of one finished case.

    Attributes:
        case_id: the pytest id, e.g. ``"vanilla[ml-1m-AR-ce]"``.
        table: which paper table the case belongs to: ``vanilla``, ``design``, ``hf`` or ``analysis``.
        dataset: registry name (``beauty`` ... ``ml-1m``) or ``synthetic``.
        model: the model family (free text, e.g. ``bert4rec``, ``modsar``, ``albert``).
        attention: ``AE`` (bidirectional) or ``AR`` (causal).
        loss: ``ce``, ``bpr`` or ``bce``.
        config: the case's configuration (a frozen dataclass is stored via ``dataclasses.asdict``).
        fingerprint: ``SequenceDataset.fingerprint()`` of the data the case ran on.
        seed: the random seed.
        scale: ``smoke`` or ``paper``.
        metrics: test metrics, e.g. ``{"R@10": 0.3, "N@10": 0.17}``.
        per_user: per evaluated user, for paired significance tests: ``{"users": [...], "N@10":
            [...], "R@10": [...]}`` (equal-length lists; ``users`` are dataset user indices). A
            ``"rank"`` list (0-based rank of the target) may stand in for the metric lists.
        variant: the paper's column group the case fills (``vanilla``; a design ``local_attn``,
            ``ssept``, ``loss_ce``, ``loss_bpr``; a backbone ``albert``, ``llama``,
            ``transfo_xl``). Empty means ``vanilla`` for the vanilla table and ``model`` otherwise.
        valid_metrics: validation metrics of the selected checkpoint (optional).
        data_stats: ``SequenceDataset.stats().as_dict()`` (optional; feeds Table 1 of a report).
        wall_time_s, epochs: training cost.
        device, gpu: where it ran; ``gpu`` is the CUDA device name (None on CPU).
        code_version: see :func:`code_version`; filled in automatically (provenance, not identity).
        results_version: the results version of its family (:func:`sarbench.provenance.results_version`)
            in the code that made it; by default this code's.
        source_hash: :func:`sarbench.provenance.source_hash` of the code that made it.
        timestamp, host: when and where; filled in automatically.
        extra: anything else worth keeping (not interpreted).
        key: :func:`make_key` of the identity fields; computed, never set by hand.
    """

    case_id: str
    table: str
    dataset: str
    model: str
    attention: str
    loss: str
    config: dict
    fingerprint: str
    seed: int
    scale: str
    metrics: dict
    per_user: dict = field(default_factory=dict)
    variant: str = ""
    valid_metrics: dict = field(default_factory=dict)
    data_stats: dict = field(default_factory=dict)
    wall_time_s: float = 0.0
    epochs: int = 0
    device: str = "cpu"
    gpu: str | None = None
    code_version: str = field(default_factory=lambda: code_version())
    timestamp: str = field(default_factory=_now)
    host: dict = field(default_factory=host_info)
    extra: dict = field(default_factory=dict)
    schema: int = SCHEMA
    results_version: int | None = None
    source_hash: str = field(default_factory=lambda: source_hash())
    key: str = ""

    def __post_init__(self):
        self.config = config_dict(self.config)
        if self.table not in TABLES:
            raise RecordError(f"{self.case_id}: table must be one of {TABLES}, got {self.table!r}")
        if self.attention not in ATTENTIONS:
            raise RecordError(f"{self.case_id}: attention must be 'AE' or 'AR', got {self.attention!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            if hasattr(self.seed, "item"):
                self.seed = int(self.seed.item())
            else:
                raise RecordError(f"{self.case_id}: seed must be an int, got {self.seed!r}")
        if not isinstance(self.metrics, Mapping):
            raise RecordError(f"{self.case_id}: metrics must be a dict, got {type(self.metrics).__name__}")
        metrics = {}
        for name, value in self.metrics.items():
            try:
                metrics[str(name)] = float(value)
            except (TypeError, ValueError):
                raise RecordError(f"{self.case_id}: metric {name!r} is not a number: {value!r}") from None
        self.metrics = metrics
        self.valid_metrics = {str(k): float(v) for k, v in dict(self.valid_metrics).items()}
        self.per_user = _check_per_user(self.case_id, self.per_user)
        if not self.variant:
            self.variant = "vanilla" if self.table == "vanilla" else self.model
        if self.schema != SCHEMA:
            raise RecordError(f"{self.case_id}: a record of schema {self.schema!r}; this code reads schema {SCHEMA}")
        if self.results_version is None:
            self.results_version = family_version(self.config)
        key = make_key(self.case_id, self.config, self.fingerprint, self.seed, self.scale, int(self.results_version))
        if self.key and self.key != key:
            raise RecordError(f"{self.case_id}: stored key {self.key} does not match its fields (expected {key})")
        self.key = key

    # --- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=_jsonable, sort_keys=True, allow_nan=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ResultRecord":
        """Build a record from its dict form; unknown keys are kept under ``extra``."""
        if not isinstance(data, Mapping):
            raise RecordError(f"a record must be a JSON object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        missing = sorted(required - set(data))
        if missing:
            raise RecordError(f"record lacks field(s) {', '.join(missing)}")
        known = {k: v for k, v in data.items() if k in names}
        known.setdefault("schema", 1)  # a record without a schema field predates schema 2 (and is refused)
        unknown = {k: v for k, v in data.items() if k not in names}
        if unknown:
            known["extra"] = {**dict(known.get("extra") or {}), **unknown}
        try:
            return cls(**known)
        except TypeError as exc:  # wrong value types deep inside
            raise RecordError(str(exc)) from None


def _check_per_user(case_id: str, per_user: Any) -> dict[str, list]:
    if per_user is None:
        return {}
    if not isinstance(per_user, Mapping):
        raise RecordError(f"{case_id}: per_user must be a dict of lists, got {type(per_user).__name__}")
    out: dict[str, list] = {}
    for name, values in per_user.items():
        values = values.tolist() if hasattr(values, "tolist") else list(values)
        out[str(name)] = values
    lengths = {name: len(v) for name, v in out.items()}
    if len(set(lengths.values())) > 1:
        raise RecordError(f"{case_id}: per_user lists differ in length: {lengths}")
    if out and "users" not in out:
        raise RecordError(f"{case_id}: per_user needs a 'users' list (the user index of each value)")
    return out


def make_record(
    *,
    case_id: str,
    table: str,
    dataset: str,
    model: str,
    attention: str,
    loss: str,
    config: Any,
    fingerprint: str,
    seed: int,
    scale: str,
    metrics: Mapping[str, float],
    device: str = "cpu",
    **fields: Any,
) -> ResultRecord:
    """A :class:`ResultRecord` with ``gpu`` filled in from ``device`` (other fields as given)."""
    fields.setdefault("gpu", gpu_name(device))
    return ResultRecord(case_id=case_id, table=table, dataset=dataset, model=model, attention=attention,
                        loss=loss, config=config, fingerprint=fingerprint, seed=seed, scale=scale,
                        metrics=dict(metrics), device=str(device), **fields)


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


def latest_per_seed(records: Iterable[ResultRecord]) -> list[ResultRecord]:
    """One record per (case id, scale, data fingerprint, seed): the newest by timestamp.

    Records of the same case and seed made by another code version or configuration would otherwise
    be averaged together as if they were extra seeds.
    """
    best: dict[tuple, ResultRecord] = {}
    dropped = 0
    for rec in records:
        ident = (rec.case_id, rec.scale, rec.fingerprint, rec.seed)
        if ident in best:
            dropped += 1
            if rec.timestamp <= best[ident].timestamp:
                continue
        best[ident] = rec
    if dropped:
        log.info("%d superseded record(s) ignored (same case, scale, data and seed; older)", dropped)
    return list(best.values())


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
]
