"""Datasets: readers, the registry of the paper's five datasets, the synthetic default, loading."""

from __future__ import annotations

import os
from pathlib import Path

from .readers import READERS, DataFormatError, read_lines, read_pairs
from .registry import DATA_ENV, DATASETS, DatasetInfo, data_dir, dataset_info
from .sequences import DatasetStats, SequenceDataset, Split
from .synthetic import SyntheticConfig, make_synthetic

SYNTHETIC = "synthetic"


class DatasetMissing(FileNotFoundError):
    """A real dataset is not in the data folder; the message says how to get it."""


def how_to_get(name: str, folder: Path | None) -> str:
    info = dataset_info(name)
    where = str(folder) if folder else f"a folder named by ${DATA_ENV} or --data-dir"
    return (
        f"dataset {name!r} needs {info.filename} in {where}; get it with "
        f"`sarbench data fetch {name} --data-dir DIR` (downloads {info.url})"
    )


def load_dataset(name: str, folder: str | os.PathLike | None = None) -> SequenceDataset:
    """Load a dataset by registry name ('beauty', 'sports', 'video', 'yelp', 'ml-1m') or 'synthetic'.

    ``folder`` defaults to ``$SARBENCH_DATA``. The synthetic dataset needs no folder.
    """
    if name == SYNTHETIC:
        return make_synthetic()
    info = dataset_info(name)
    root = data_dir(folder)
    if root is None:
        raise DatasetMissing(how_to_get(name, None))
    if not root.is_dir():
        raise DatasetMissing(f"data folder {root} does not exist ({DATA_ENV} or --data-dir); " + how_to_get(name, root))
    path = root / info.filename
    if not path.exists() and (root / (info.filename + ".gz")).exists():
        path = root / (info.filename + ".gz")
    if not path.exists():
        raise DatasetMissing(how_to_get(name, root))
    return READERS[info.format](path, name=name)


__all__ = [
    "DATASETS",
    "DATA_ENV",
    "DataFormatError",
    "DatasetInfo",
    "DatasetMissing",
    "DatasetStats",
    "SequenceDataset",
    "Split",
    "SYNTHETIC",
    "SyntheticConfig",
    "data_dir",
    "dataset_info",
    "how_to_get",
    "load_dataset",
    "make_synthetic",
    "read_lines",
    "read_pairs",
]
