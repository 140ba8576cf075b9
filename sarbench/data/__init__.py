"""Datasets: readers, the registry of the paper's five datasets, declared datasets, the synthetic default, loading.

A real dataset is found in the data folder (``--data-dir`` or ``$SARBENCH_DATA``) as its processed file
(``DatasetInfo.filename``, optionally gzipped as ``<filename>.gz``), which is checked against the
registry's sha256 and read as is; or, when only the raw source is there (``DatasetInfo.raw.filename``,
e.g. ``ml-1m.zip``), it is read and preprocessed with the paper's one-pass filter. The processed file
wins when both are present. Other datasets are declared in the data folder's ``datasets.toml``
(see :mod:`sarbench.data.declared`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .declared import DECLARATIONS, DeclarationError, DeclaredDataset, declared_datasets, load_declared
from .preprocess import preprocess as _preprocess  # not re-exported: the name is the submodule's
from .raw import RAW_READERS, Interactions, read_raw
from .readers import READERS, ChecksumError, DataFormatError, check_evaluable, file_sha256, read_lines, read_pairs
from .registry import (
    DATA_ENV,
    DATASETS,
    DatasetInfo,
    PaperStats,
    RawSource,
    UnknownDataset,
    data_dir,
    dataset_info,
    paper_version,
)
from .sequences import DatasetStats, SequenceDataset, Split
from .synthetic import SyntheticConfig, make_synthetic

log = logging.getLogger(__name__)

SYNTHETIC = "synthetic"


class DatasetMissing(FileNotFoundError):
    """A real dataset is not in the data folder; the message says how to get it."""


def how_to_get(name: str, folder: Path | None) -> str:
    info = dataset_info(name)
    where = str(folder) if folder else f"a folder named by ${DATA_ENV} or --data-dir"
    text = (
        f"dataset {name!r} needs {info.filename} in {where}; get it with "
        f"`sarbench data fetch {name} --data-dir DIR` (downloads {info.url})"
    )
    if info.raw is not None:
        if info.raw.url:
            text += f", or its raw source {info.raw.filename} with `--raw` (downloads {info.raw.url})"
        else:
            text += f", or put its raw source {info.raw.filename} there (from {info.raw.homepage})"
    return text


def find_dataset_file(name: str, folder: str | os.PathLike | None = None) -> tuple[Path, str] | None:
    """(path, 'processed' or 'raw') of the file ``load_dataset`` would read, or None if absent.

    Raises DatasetMissing when no data folder is configured or it does not exist.
    """
    info = dataset_info(name)
    root = data_dir(folder)
    if root is None:
        raise DatasetMissing(how_to_get(name, None))
    if not root.is_dir():
        raise DatasetMissing(
            f"data folder {root} does not exist ({DATA_ENV} or --data-dir); " + how_to_get(name, root)
        )
    for candidate in (root / info.filename, root / (info.filename + ".gz")):
        if candidate.is_file():
            return candidate, "processed"
    if info.raw is not None:
        for candidate in (root / info.raw.filename, root / (info.raw.filename + ".gz")):
            if candidate.is_file():
                return candidate, "raw"
    return None


def load_raw(name: str, path: str | os.PathLike) -> SequenceDataset:
    """Read a dataset's raw source file and preprocess it as the paper does (one pass, min 5)."""
    info = dataset_info(name)
    if info.raw is None:
        raise ValueError(f"dataset {name!r} has no raw source in the registry")
    interactions = read_raw(path, info.raw.format)
    out = _preprocess(interactions, name, min_count=5, iterate=False, item_order=info.raw.item_order)
    return check_evaluable(out, f"{path} (dataset {name!r})")


def dataset_names(folder: str | os.PathLike | None = None) -> list[str]:
    """Every dataset a run can use: 'synthetic', the paper's five, then those declared in the data folder."""
    return [SYNTHETIC, *DATASETS, *declared_datasets(data_dir(folder))]


def dataset_max_len(name: str, default: int = 50, folder: str | os.PathLike | None = None) -> int:
    """The maximum sequence length of a dataset: the paper's, or its declaration's, else ``default``."""
    if name in DATASETS:
        return DATASETS[name].max_len
    declared = declared_datasets(data_dir(folder)).get(name)
    return declared.max_len if declared is not None else default


def is_paper_data(name: str, fingerprint: str) -> bool:
    """The one answer to "is this the paper's data?": a paper dataset whose processed sequences have
    the fingerprint of the paper's version (only then are results compared with the paper cell by cell)."""
    info = DATASETS.get(name)
    return info is not None and info.paper_fingerprint is not None and fingerprint == info.paper_fingerprint


def load_dataset(name: str, folder: str | os.PathLike | None = None, verify: bool = True) -> SequenceDataset:
    """Load a dataset by registry name ('beauty', 'sports', 'video', 'yelp', 'ml-1m'), 'synthetic', or
    a name declared in the data folder's datasets.toml.

    ``folder`` defaults to ``$SARBENCH_DATA``. The synthetic dataset needs no folder. A processed
    file whose sha256 differs from the registry's raises :class:`ChecksumError` (``verify=False``
    loads it anyway, with a warning; its fingerprint then tells whether it is the paper's data).
    A raw source is preprocessed with a logged warning; it has no pinned checksum.
    """
    if name == SYNTHETIC:
        return make_synthetic()
    if name not in DATASETS:
        declared = declared_datasets(data_dir(folder)).get(name)
        if declared is not None:
            return load_declared(declared)
    info = dataset_info(name)
    found = find_dataset_file(name, folder)
    if found is None:
        raise DatasetMissing(how_to_get(name, data_dir(folder)))
    path, kind = found
    if kind == "raw":
        log.warning("%s: %s is missing, preprocessing the raw source %s (one pass, min 5); the result is "
                    "the paper's version only if its fingerprint says so", name, info.filename, path)
        return load_raw(name, path)
    actual = file_sha256(path)  # ~20 ms for ml-1m
    if actual != info.sha256:
        message = (
            f"{path}: sha256 {actual} differs from the registry's {info.sha256} for dataset {name!r}; "
            f"this is not the expected {info.filename} ({info.url})"
        )
        if verify:
            raise ChecksumError(message + "; pass verify=False to load it anyway")
        log.warning(message)
    return check_evaluable(READERS[info.format](path, name=name), f"{path} (dataset {name!r})")


def dataset_paper_version(name: str, ds: SequenceDataset) -> tuple[bool | None, str]:
    """Whether ``ds`` (loaded as dataset ``name``) is the paper's version; see registry.paper_version."""
    return paper_version(dataset_info(name), ds.fingerprint(), ds.stats())


__all__ = [
    "DATASETS",
    "DECLARATIONS",
    "DeclarationError",
    "DeclaredDataset",
    "dataset_max_len",
    "dataset_names",
    "declared_datasets",
    "is_paper_data",
    "DATA_ENV",
    "ChecksumError",
    "DataFormatError",
    "check_evaluable",
    "DatasetInfo",
    "DatasetMissing",
    "DatasetStats",
    "Interactions",
    "PaperStats",
    "RAW_READERS",
    "RawSource",
    "SequenceDataset",
    "Split",
    "SYNTHETIC",
    "SyntheticConfig",
    "UnknownDataset",
    "data_dir",
    "dataset_info",
    "dataset_paper_version",
    "file_sha256",
    "find_dataset_file",
    "how_to_get",
    "load_dataset",
    "load_raw",
    "make_synthetic",
    "paper_version",
    "read_lines",
    "read_pairs",
    "read_raw",
]
