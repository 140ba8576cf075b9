"""What keys a stored result: a configuration's canonical JSON form and the record key.

**The record key** decides whether a stored result can be reused instead of retraining. It is a hash
of what determines the result: the case id, the configuration (the frozen dataclass as a dict,
without run controls such as a time cap or a progress bar, ``RUN_CONTROLS``), the data
fingerprint, the seed, the scale and the results version (:mod:`sarbench.provenance`), which is
bumped on purpose when a change moves results. Not the commit: a README edit or a refactor does
not invalidate hours of training. A record of another results version is *stale*: it is never
reused, and reports show it as stale. The commit (``code_version``) and a hash of the
result-determining source (``source_hash``) are recorded for provenance. Host, timings and the
metrics themselves are recorded but are not part of the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .provenance import RESULTS_VERSION

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


class RecordError(ValueError):
    """A record (or a stored file) is malformed; the message names the field and the value."""


# --- canonical JSON and the key ----------------------------------------------------------------
def jsonable(value: Any) -> Any:
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
    return json.loads(json.dumps(dict(config), default=jsonable, sort_keys=True))


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
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=jsonable)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


__all__ = ["ADDED_FIELDS", "RUN_CONTROLS", "RecordError", "config_dict", "identity_config", "jsonable", "make_key"]
