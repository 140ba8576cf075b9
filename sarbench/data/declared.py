"""Your own datasets: declared in a ``datasets.toml`` beside the files in the data folder.

    # <data folder>/datasets.toml
    [mydata]
    file = "mydata.txt"      # relative to the data folder (gzipped files work too)
    format = "lines"         # pairs | lines | movielens | amazon_csv | amazon_json | yelp_json
    max_len = 50             # optional (default 50): the longest input the models take
    sha256 = "..."           # optional: checked before the file is read
    preprocess = "none"      # optional: "none" (default) or "paper" (drop users and items with
                             # fewer than 5 interactions, one pass, as the paper's data)

``pairs`` is one ``user item`` per line in chronological order per user, ``lines`` one user per line
(``user item item ...``); the raw formats are those of :mod:`sarbench.data.raw` and are ordered by
time when read (``preprocess = "none"`` keeps every interaction). A declared dataset joins
``sarbench data stats``, ``sarbench train --dataset NAME``, ``sarbench run`` and the benchmark's
parametrized cases (``vanilla[mydata-AR-ce]``); it is not one of the paper's datasets, so no paper
band or direction is asserted for it and its report rows say so.

A bad declaration fails when it is read, naming the file and the key: an unknown format, key or
preprocessing, a missing file, a name that clashes with a paper dataset or ``synthetic``, a
duplicate section or key, a wrong type. A dataset with no user of 3 or more interactions (none could
be evaluated) fails when it is loaded, naming the file and the dataset.
"""

from __future__ import annotations

import functools
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .readers import READERS, ChecksumError, DataFormatError, check_evaluable, file_sha256
from .registry import DATASETS

DECLARATIONS = "datasets.toml"
FORMATS = ("pairs", "lines", "movielens", "amazon_csv", "amazon_json", "yelp_json")
PREPROCESS = ("none", "paper")
KEYS = {"file": str, "format": str, "max_len": int, "sha256": str, "preprocess": str}
REQUIRED = ("file", "format")
RESERVED = (*DATASETS, "synthetic")


class DeclarationError(ValueError):
    """A datasets.toml entry is invalid; the message names the file and the key."""


@dataclass(frozen=True)
class DeclaredDataset:
    name: str
    path: Path
    format: str
    max_len: int = 50
    sha256: str | None = None
    preprocess: str = "none"
    declared_in: Path | None = None


def _check(name: str, entry: object, where: Path) -> DeclaredDataset:
    if not isinstance(entry, dict):
        raise DeclarationError(f"{where}: [{name}] must be a table of keys (file, format, ...), got {entry!r}")
    if name in RESERVED:
        raise DeclarationError(f"{where}: [{name}] clashes with a built-in dataset ({', '.join(RESERVED)}); "
                               "choose another name")
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise DeclarationError(f"{where}: dataset name {name!r} may use letters, digits, '-', '_' and '.' only")
    unknown = sorted(set(entry) - set(KEYS))
    if unknown:
        raise DeclarationError(f"{where}: [{name}] has unknown key(s) {', '.join(unknown)}; keys: {', '.join(KEYS)}")
    for key in REQUIRED:
        if key not in entry:
            raise DeclarationError(f"{where}: [{name}] lacks the required key {key!r}")
    for key, typ in KEYS.items():
        if key in entry and (not isinstance(entry[key], typ) or isinstance(entry[key], bool)):
            raise DeclarationError(f"{where}: [{name}] {key} must be a {typ.__name__}, got {entry[key]!r}")
    if entry["format"] not in FORMATS:
        raise DeclarationError(f"{where}: [{name}] format {entry['format']!r} is unknown; formats: "
                               f"{', '.join(FORMATS)}")
    preprocess = entry.get("preprocess", "none")
    if preprocess not in PREPROCESS:
        raise DeclarationError(f"{where}: [{name}] preprocess {preprocess!r} is unknown; use "
                               f"{' or '.join(repr(p) for p in PREPROCESS)}")
    max_len = entry.get("max_len", 50)
    if max_len < 2:
        raise DeclarationError(f"{where}: [{name}] max_len must be at least 2, got {max_len}")
    path = (where.parent / entry["file"]).resolve()
    if not path.is_file():
        raise DeclarationError(f"{where}: [{name}] file {entry['file']!r} does not exist ({path})")
    return DeclaredDataset(name=name, path=path, format=entry["format"], max_len=max_len,
                           sha256=entry.get("sha256"), preprocess=preprocess, declared_in=where)


@functools.lru_cache(maxsize=8)
def _read(path: str, mtime: float) -> dict[str, DeclaredDataset]:
    where = Path(path)
    try:
        with open(where, "rb") as fh:
            data = tomllib.load(fh)  # duplicate sections and keys are errors here, with their line
    except tomllib.TOMLDecodeError as exc:
        raise DeclarationError(f"{where}: {exc}") from None
    return {name: _check(name, entry, where) for name, entry in data.items()}


def declared_datasets(folder: str | os.PathLike | None) -> dict[str, DeclaredDataset]:
    """The datasets declared in ``folder``/datasets.toml (empty when there is none)."""
    if folder is None:
        return {}
    path = Path(folder) / DECLARATIONS
    if not path.is_file():
        return {}
    return dict(_read(str(path), path.stat().st_mtime))


def load_declared(ds: DeclaredDataset):
    """Read a declared dataset: checksum (if given), reader, optional paper preprocessing."""
    from .preprocess import preprocess
    from .raw import Interactions, read_raw

    if ds.sha256 is not None:
        actual = file_sha256(ds.path)
        if actual != ds.sha256:
            raise ChecksumError(f"{ds.path}: sha256 {actual} differs from the {ds.sha256} declared for "
                                f"[{ds.name}] in {ds.declared_in}")
    min_count = 5 if ds.preprocess == "paper" else 1
    where = f"{ds.path} (dataset [{ds.name}] of {ds.declared_in})"
    if ds.format in READERS:
        data = READERS[ds.format](ds.path, name=ds.name)
        if ds.preprocess == "none":
            return check_evaluable(data, where)
        rows = [(u, int(i), t) for u in range(data.num_users) for t, i in enumerate(data.sequence(u))]
        interactions = Interactions.from_records(rows)
    else:
        interactions = read_raw(ds.path, ds.format)
    out = preprocess(interactions, ds.name, min_count=min_count, iterate=False)
    if out.num_users == 0:
        raise DataFormatError(f"{ds.path}: no user is left of [{ds.name}] after preprocessing")
    return check_evaluable(out, where)
