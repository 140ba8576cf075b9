"""Reference records that travel with the package: the committed paper-scale AE and AR runs.

``sarbench compare`` tests a new model's run against the paper's AE and AR user by user, from their
stored per-user ranks, without training them again. Those ranks live in the paper-scale records of
a checkout (``reports/baseline/paper/``); an installed package carries a slim copy of them here, in
``sarbench/references/``:

* one gzip-compressed JSON record per run (``<case>.s<seed>.<key>.json.gz``): the record as it is,
  less what no comparison reads (most-popular's per-user ranks and the per-epoch loss curve);
  every metric, the evaluated users and their ranks under both exclusion rules stay;
* ``manifest.json``: per file its sha256 and size, and the case, seed, dataset, data fingerprint and
  results version of the record inside, so that a reader can check what it loads.

:func:`load_references` verifies every file against the manifest before it is read (a changed or
truncated file is a :class:`ReferenceChecksumError` naming it); a folder without a manifest (a
results folder, ``reports/baseline/paper``) is read as plain records. :func:`build_references`
remakes the packaged copy from the committed records (``sarbench compare --build-references``), and
``tests/test_references.py`` fails when the two disagree.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from .record import ResultRecord
from .store import ResultStore

PACKAGED = Path(__file__).with_name("references")
MANIFEST = "manifest.json"
SUFFIX = ".json.gz"
# What a comparison never reads: dropped from the packaged copies to keep the package small.
DROPPED_EXTRA = ("most_popular_per_user", "epoch_loss")


class ReferenceChecksumError(ValueError):
    """A packaged reference file differs from its manifest entry (the message names the file)."""


def is_reference(record: ResultRecord) -> bool:
    """The paper's vanilla AE or AR (what a comparison tests against; a comparison demands equal scales)."""
    return (record.table == "vanilla" and record.variant == "vanilla"
            and record.case_id == f"vanilla[{record.dataset}-{record.attention}-{record.loss}]")


def slim(record: ResultRecord) -> dict:
    """The record's dict form without the fields listed in :data:`DROPPED_EXTRA`."""
    data = record.to_dict()
    data["extra"] = {k: v for k, v in data["extra"].items() if k not in DROPPED_EXTRA}
    return data


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _encode(record: ResultRecord) -> bytes:
    text = json.dumps(slim(record), sort_keys=True, allow_nan=True, separators=(",", ":"))
    return gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)  # mtime 0: the same bytes every time


def build_references(source: str | os.PathLike, dest: str | os.PathLike = PACKAGED) -> dict:
    """Write the slim copies of every reference record in ``source`` into ``dest``; return the manifest.

    Files in ``dest`` that are no longer references are removed. The bytes are deterministic, so an
    unchanged source rebuilds to identical files.
    """
    records = [r for r in ResultStore(source).records() if is_reference(r) and r.scale == "paper"]
    if not records:
        raise ValueError(f"{source}: no paper-scale vanilla AE/AR records to package")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    entries = {}
    for record in sorted(records, key=lambda r: (r.dataset, r.attention, r.seed, r.key)):
        name = ResultStore(dest).path_for(record).name.removesuffix(".json") + SUFFIX
        blob = _encode(record)
        (dest / name).write_bytes(blob)
        entries[name] = {"sha256": _sha256(blob), "bytes": len(blob), "case_id": record.case_id,
                         "seed": record.seed, "dataset": record.dataset, "fingerprint": record.fingerprint,
                         "results_version": record.results_version}
    for old in dest.glob("*" + SUFFIX):
        if old.name not in entries:
            old.unlink()
    manifest = {"source": "reports/baseline/paper", "files": entries}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def _read_packaged(folder: Path) -> list[ResultRecord]:
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    records = []
    for name, entry in sorted(manifest["files"].items()):
        path = folder / name
        if not path.is_file():
            raise ReferenceChecksumError(f"{path}: listed in {folder / MANIFEST} but missing")
        blob = path.read_bytes()
        if _sha256(blob) != entry["sha256"]:
            raise ReferenceChecksumError(f"{path}: sha256 {_sha256(blob)[:16]}... differs from the manifest's "
                                         f"{entry['sha256'][:16]}... (a changed or truncated reference file)")
        record = ResultRecord.from_dict(json.loads(gzip.decompress(blob)))
        if (record.case_id, record.seed, record.fingerprint) != (entry["case_id"], entry["seed"], entry["fingerprint"]):
            raise ReferenceChecksumError(f"{path}: holds {record.case_id} seed {record.seed}, the manifest says "
                                         f"{entry['case_id']} seed {entry['seed']}")
        records.append(record)
    return records


def load_references(source: str | os.PathLike | None = None) -> list[ResultRecord]:
    """The reference records of ``source``: the packaged copy (None), a folder with a manifest
    (checksums verified), or any folder of plain records (only its references are returned)."""
    folder = PACKAGED if source is None else Path(source)
    if not folder.is_dir():
        raise FileNotFoundError(f"reference folder {folder} does not exist")
    if (folder / MANIFEST).is_file():
        return _read_packaged(folder)
    return [r for r in ResultStore(folder).records() if is_reference(r)]


def packaged_size(folder: str | os.PathLike = PACKAGED) -> int:
    """Bytes of the packaged references (files and manifest)."""
    folder = Path(folder)
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def describe(records: Iterable[ResultRecord]) -> list[str]:
    """One line per reference record: case, seed, data fingerprint, results version."""
    return [f"{r.case_id} seed {r.seed} (data {r.fingerprint}, results version {r.results_version})"
            for r in sorted(records, key=lambda r: (r.dataset, r.attention, r.seed))]


__all__ = ["MANIFEST", "PACKAGED", "ReferenceChecksumError", "build_references", "describe", "is_reference",
           "load_references", "packaged_size", "slim"]
