"""A finished benchmark case as a record: its fields, their checks, and its dict and JSON forms.

Records are of schema 2 (with results versions); a record of another schema is refused with a
:class:`~sarbench.keys.RecordError` (the store skips such a file as a corrupt one). The record's
``key`` is :func:`~sarbench.keys.make_key` of its identity fields, computed, never set by hand.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .config import ATTENTIONS
from .designs import DESIGNS, PAPER_MODEL
from .keys import RecordError, config_dict, jsonable, make_key
from .provenance import RESULTS_VERSION, code_version, gpu_name, host_info, source_hash
from .provenance import results_version as family_version

log = logging.getLogger(__name__)

# What the paper's model stored as ``model`` before records named the model that ran: its networks.
PAPER_NETWORKS = frozenset(d.network for d in DESIGNS.values())
SCHEMA = 2
TABLES: tuple[str, ...] = ("vanilla", "design", "hf", "analysis")
SCALES: tuple[str, ...] = ("smoke", "paper")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")



@dataclass
class ResultRecord:
    """The outcome of one finished case.

    Attributes:
        case_id: the pytest id, e.g. ``"vanilla[ml-1m-AR-ce]"``.
        table: which paper table the case belongs to: ``vanilla``, ``design``, ``hf`` or ``analysis``.
        dataset: registry name (``beauty`` ... ``ml-1m``) or ``synthetic``.
        model: the registered model that ran (``sar``, ``gru4rec``, ``llama`` ...; the paper's model
            with a design says which in ``variant``). Records made before it named the model stored
            the paper model's network here ("bert4rec", "modsar"); read :attr:`model_name`.
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

    @property
    def model_name(self) -> str:
        """The registered model that ran: ``model``, or ``sar`` where ``model`` names one of its networks.

        The committed records made before records named the model that ran hold the paper model's
        network in ``model`` ("bert4rec", "modsar": ``Design.network``). The stored field is kept as
        it is: it is no part of the key, and the packaged references are byte copies of those records.
        """
        return PAPER_MODEL if self.model in PAPER_NETWORKS else self.model

    # --- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=jsonable, sort_keys=True, allow_nan=True)

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



__all__ = ["SCALES", "SCHEMA", "TABLES", "ResultRecord", "latest_per_seed", "make_record"]
