"""load_dataset and the registry: unknown names, missing folders and files, checksums, raw fallback."""

from __future__ import annotations

import dataclasses
import gzip
import shutil
import zipfile
from pathlib import Path

import pytest

from sarbench.data import (
    DATA_ENV,
    DATASETS,
    SYNTHETIC,
    ChecksumError,
    DatasetMissing,
    dataset_info,
    dataset_paper_version,
    file_sha256,
    find_dataset_file,
    how_to_get,
    load_dataset,
    SyntheticConfig,
)
from sarbench.data.preprocess import preprocess
from sarbench.data.raw import read_movielens
from sarbench.data.readers import read_pairs
from sarbench.data.registry import PaperStats, matches_table1, paper_version
from sarbench.data.sequences import DatasetStats

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PAIRS = FIXTURES / "processed" / "pairs_tiny.txt"


@pytest.fixture
def fake_beauty(monkeypatch):
    """Registry entry 'beauty' pointing at the small fixture (its real checksum stays untouched elsewhere)."""
    info = dataclasses.replace(DATASETS["beauty"], sha256=file_sha256(PAIRS), paper_fingerprint=None)
    monkeypatch.setitem(DATASETS, "beauty", info)
    return info


def test_unknown_dataset_lists_known_names(tmp_path):
    for call in (lambda: dataset_info("beuaty"), lambda: load_dataset("beuaty", tmp_path)):
        with pytest.raises(KeyError) as info:
            call()
        message = info.value.args[0]
        assert "unknown dataset 'beuaty'" in message
        for name in [*DATASETS, SYNTHETIC]:
            assert name in message


def test_synthetic_needs_no_folder(monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    ds = load_dataset(SYNTHETIC)
    assert ds.name == SYNTHETIC and ds.num_users == SyntheticConfig().num_users


def test_no_folder_configured(monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    with pytest.raises(DatasetMissing, match=rf"\${DATA_ENV} or --data-dir.*sarbench data fetch beauty"):
        load_dataset("beauty")


def test_missing_data_folder(tmp_path):
    folder = tmp_path / "does-not-exist"
    with pytest.raises(DatasetMissing) as info:
        load_dataset("video", folder)
    message = str(info.value)
    assert f"data folder {folder} does not exist" in message
    assert "sarbench data fetch video" in message


def test_missing_file_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetMissing) as info:
        load_dataset("ml-1m", tmp_path)
    message = str(info.value)
    assert "ml-1m.txt" in message and str(tmp_path) in message
    assert "sarbench data fetch ml-1m --data-dir DIR" in message
    assert DATASETS["ml-1m"].url in message
    assert "ml-1m.zip" in message and "--raw" in message  # the raw alternative
    assert isinstance(info.value, FileNotFoundError)
    assert "yelp.com/dataset" in how_to_get("yelp", tmp_path)  # no direct raw download for Yelp


def test_env_var_is_the_default_folder(tmp_path, monkeypatch, fake_beauty):
    shutil.copy(PAIRS, tmp_path / fake_beauty.filename)
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert load_dataset("beauty").fingerprint() == read_pairs(PAIRS).fingerprint()


def test_processed_file_plain_and_gzipped(tmp_path, fake_beauty):
    gz = tmp_path / (fake_beauty.filename + ".gz")
    gz.write_bytes(gzip.compress(PAIRS.read_bytes()))
    assert find_dataset_file("beauty", tmp_path) == (gz, "processed")
    ds = load_dataset("beauty", tmp_path)
    assert ds.name == "beauty" and ds.fingerprint() == read_pairs(PAIRS).fingerprint()


def test_checksum_mismatch_on_load(tmp_path, caplog):
    """A file under a registered name that is not the registered file is refused, not silently used."""
    path = tmp_path / DATASETS["beauty"].filename
    shutil.copy(PAIRS, path)
    with pytest.raises(ChecksumError) as info:
        load_dataset("beauty", tmp_path)
    message = str(info.value)
    assert str(path) in message
    assert DATASETS["beauty"].sha256 in message and file_sha256(path) in message
    assert "verify=False" in message
    with caplog.at_level("WARNING"):
        ds = load_dataset("beauty", tmp_path, verify=False)
    assert ds.fingerprint() == read_pairs(PAIRS).fingerprint()
    assert "differs from the registry" in caplog.text
    assert dataset_paper_version("beauty", ds)[0] is False


def test_raw_source_is_preprocessed_when_processed_file_is_absent(tmp_path, caplog):
    archive = tmp_path / DATASETS["ml-1m"].raw.filename
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(FIXTURES / "raw" / "ratings.dat", "ml-1m/ratings.dat")
    assert find_dataset_file("ml-1m", tmp_path) == (archive, "raw")
    with caplog.at_level("WARNING"):
        ds = load_dataset("ml-1m", tmp_path)
    expected = preprocess(read_movielens(FIXTURES / "raw" / "ratings.dat"), "ml-1m", item_order="sequence")
    assert ds.fingerprint() == expected.fingerprint()
    assert "preprocessing the raw source" in caplog.text
    is_paper, note = dataset_paper_version("ml-1m", ds)
    assert is_paper is False and "differs from the paper's" in note


def test_processed_file_wins_over_raw(tmp_path, fake_beauty):
    shutil.copy(PAIRS, tmp_path / fake_beauty.filename)
    (tmp_path / fake_beauty.raw.filename).write_text("not even read\n")
    assert find_dataset_file("beauty", tmp_path) == (tmp_path / fake_beauty.filename, "processed")


def test_matches_table1_rounding():
    paper = PaperStats(52204, 57289, 395000, 7.6, 1e-4)
    assert matches_table1(DatasetStats(52204, 57289, 394908, 7.5647, 1.3e-4), paper)
    assert not matches_table1(DatasetStats(52204, 57289, 394400, 7.555, 1.3e-4), paper)  # rounds to 394K
    assert not matches_table1(DatasetStats(52203, 57289, 394908, 7.5648, 1.3e-4), paper)
    ml = PaperStats(6040, 3416, 1000000, 165.5, 5e-2)
    assert matches_table1(DatasetStats(6040, 3416, 999611, 165.4985, 0.0484), ml)


def test_paper_version_verdicts():
    beauty, sports = DATASETS["beauty"], DATASETS["sports"]
    assert paper_version(beauty, beauty.paper_fingerprint)[0] is True
    assert paper_version(beauty, "0" * 16)[0] is False
    p = sports.paper
    same_size = DatasetStats(p.users, p.items, p.interactions, p.avg_length, p.density)
    assert paper_version(sports, "0" * 16, same_size)[0] is None  # cannot tell
    assert paper_version(sports, "0" * 16, DatasetStats(35598, 18357, 296337, 8.3, 4.5e-4))[0] is False


def test_registry_is_consistent():
    for name, info in DATASETS.items():
        assert info.name == name
        assert len(info.sha256) == 64 and int(info.sha256, 16) >= 0
        assert info.format in ("pairs", "lines")
        assert info.url.startswith("https://raw.githubusercontent.com/")
        assert info.raw is not None and info.raw.format in ("movielens", "amazon_csv", "amazon_json", "yelp_json")
        assert (info.paper_fingerprint is None) == (name in ("sports", "yelp"))
