"""The five real datasets, when a data folder is configured: Table 1, fingerprints, checksums.

Skipped unless ``$SARBENCH_DATA`` (or ``--data-dir``) names the folder holding beauty.txt, video.txt,
ml-1m.txt, sports.s3rec.txt and yelp.s3rec.txt (get them with ``sarbench data fetch NAME``). Every
dataset is read once per session (about 2 s for all five).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sarbench.data import DATA_ENV, DATASETS, dataset_paper_version, file_sha256, find_dataset_file, load_dataset
from sarbench.data.registry import matches_table1

NAMES = list(DATASETS)
PAPER_VERSION = [n for n in NAMES if DATASETS[n].paper_fingerprint is not None]
OTHER_VERSION = [n for n in NAMES if DATASETS[n].paper_fingerprint is None]


@pytest.fixture(scope="module")
def folder(pytestconfig) -> Path:
    try:
        value = pytestconfig.getoption("--data-dir")
    except ValueError:  # plugin not loaded
        value = None
    value = value or os.environ.get(DATA_ENV)
    if not value:
        pytest.skip(f"real datasets not configured: set {DATA_ENV}=/path/to/data (or pass --data-dir); "
                    f"get the files with `sarbench data fetch NAME --data-dir /path/to/data`")
    return Path(value)


@pytest.fixture(scope="module")
def loaded(folder):
    cache: dict = {}

    def get(name):
        if name not in cache:
            cache[name] = load_dataset(name, folder)
        return cache[name]

    return get


@pytest.mark.parametrize("name", NAMES)
def test_file_checksum_equals_registry(folder, name):
    found = find_dataset_file(name, folder)
    assert found is not None and found[1] == "processed", f"{name}: {DATASETS[name].filename} not in {folder}"
    assert file_sha256(found[0]) == DATASETS[name].sha256


@pytest.mark.parametrize("name", NAMES)
def test_loads(loaded, name):
    ds = loaded(name)
    st = ds.stats()
    assert st.users > 0 and st.items == ds.num_items and st.interactions == int(ds.lengths.sum())
    assert ds.lengths.min() >= 1


@pytest.mark.parametrize("name", PAPER_VERSION)
def test_paper_version_reproduces_table1(loaded, name):
    ds = loaded(name)
    st, paper = ds.stats(), DATASETS[name].paper
    assert (st.users, st.items) == (paper.users, paper.items)
    unit = 1_000_000 if name == "ml-1m" else 1_000  # Table 1 prints 395K ... and 1M
    assert round(st.interactions / unit) * unit == paper.interactions
    assert round(st.avg_length, 1) == paper.avg_length
    assert matches_table1(st, paper)
    assert ds.fingerprint() == DATASETS[name].paper_fingerprint
    assert dataset_paper_version(name, ds)[0] is True


@pytest.mark.parametrize("name", OTHER_VERSION)
def test_s3rec_versions_are_flagged_not_the_papers(loaded, name):
    ds = loaded(name)
    is_paper, note = dataset_paper_version(name, ds)
    assert is_paper is False and "not the paper's version" in note
    assert not matches_table1(ds.stats(), DATASETS[name].paper)
    assert "NOT the paper's version" in DATASETS[name].comparability


def test_one_pass_files_are_not_5_cores(loaded):
    """The paper's files come from a one-pass filter: some users and items have fewer than 5 left."""
    for name in ("beauty", "video"):
        ds = loaded(name)
        assert ds.lengths.min() < 5, name
