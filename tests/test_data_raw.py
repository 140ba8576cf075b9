"""Raw-format readers: MovieLens ratings.dat (plain, gzip, zip), Amazon CSV and review JSON, Yelp JSON."""

from __future__ import annotations

import gzip
import json
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from sarbench.data.raw import (
    Interactions,
    parse_yelp_date,
    read_amazon_ratings,
    read_amazon_reviews,
    read_movielens,
    read_raw,
    read_yelp_reviews,
)
from sarbench.data.readers import DataFormatError

RAW = Path(__file__).resolve().parents[1] / "fixtures" / "raw"


def _plain_movielens(path: Path) -> list[tuple[int, int, int]]:
    out = []
    for line in path.read_text().splitlines():
        u, i, _, t = line.split("::")
        out.append((int(u), int(i), int(t)))
    return out


def test_movielens_matches_plain_parsing():
    inter = read_movielens(RAW / "ratings.dat")
    assert list(inter.records()) == _plain_movielens(RAW / "ratings.dat")
    assert inter.user_ids.dtype == np.int64 and inter.item_ids.dtype == np.int64
    # codes follow first appearance
    first_user = int((RAW / "ratings.dat").read_text().split("::", 1)[0])
    assert inter.user[0] == 0 and inter.user_ids[0] == first_user


def test_movielens_zip_and_gzip(tmp_path):
    plain = read_movielens(RAW / "ratings.dat")
    archive = tmp_path / "ml-1m.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ml-1m/README", "not ratings")
        zf.write(RAW / "ratings.dat", "ml-1m/ratings.dat")
    gz = tmp_path / "ratings.dat.gz"
    gz.write_bytes(gzip.compress((RAW / "ratings.dat").read_bytes()))
    for path in (archive, gz):
        got = read_raw(path, "movielens")
        assert list(got.records()) == list(plain.records())
    assert "ml-1m.zip:ml-1m/ratings.dat" in read_movielens(archive).source


def test_all_raw_formats_of_the_fixture_agree():
    """The fixtures hold the same interactions in every format; only the id spelling differs."""
    ml = list(read_movielens(RAW / "ratings.dat").records())
    csv = list(read_amazon_ratings(RAW / "ratings_tiny.csv").records())
    reviews = list(read_amazon_reviews(RAW / "reviews_tiny.json").records())
    yelp = list(read_yelp_reviews(RAW / "yelp_reviews_tiny.json").records())
    assert csv == reviews
    assert [(f"U{u:04d}", f"B{i:05d}", t) for u, i, t in ml] == csv
    assert [(f"u{u}", f"b{i}", t) for u, i, t in ml] == yelp


def test_yelp_dates_are_utc_seconds():
    assert parse_yelp_date("2016-03-09 00:44:39") == int(
        datetime(2016, 3, 9, 0, 44, 39, tzinfo=timezone.utc).timestamp()
    )
    assert parse_yelp_date("2016-03-09") == parse_yelp_date("2016-03-09 00:00:00")


def test_interactions_from_records_and_validation():
    inter = Interactions.from_records([("a", "x", 5), ("b", "x", 1), ("a", "y", 2)], source="mem")
    assert inter.user.tolist() == [0, 1, 0] and inter.item.tolist() == [0, 0, 1]
    assert inter.user_ids.tolist() == ["a", "b"] and len(inter) == 3
    with pytest.raises(ValueError, match="equal lengths"):
        Interactions(np.zeros(2), np.zeros(3), np.zeros(2), np.array([0]), np.array([0]), source="bad")
    with pytest.raises(ValueError, match="unknown raw format 'parquet'"):
        read_raw(RAW / "ratings.dat", "parquet")


# --- bad input ------------------------------------------------------------------------------------


def _write(tmp_path, text, name):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "reader,name,text,needle,lineno",
    [
        # wrong field counts
        (read_movielens, "ratings.dat", "1::2::5::100\n1::2::5\n", "expected 4 fields", 2),
        (read_amazon_ratings, "r.csv", "A,B,5.0,100\nA,B,5.0,100,extra\n", "expected 4 fields", 2),
        # non-integer ids (MovieLens ids are integers)
        (read_movielens, "ratings.dat", "1::2::5::100\nu7::2::5::100\n", "user id 'u7' is not an integer", 2),
        (read_movielens, "ratings.dat", "1::i2::5::100\n", "item id 'i2' is not an integer", 1),
        (read_amazon_ratings, "r.csv", "A,,5.0,100\n", "empty user or item id", 1),
        # bad timestamps and ratings
        (read_movielens, "ratings.dat", "1::2::5::100\n\n1::3::5::2001-01-01\n", "timestamp '2001-01-01'", 3),
        (read_amazon_ratings, "r.csv", "A,B,5.0,12.5\n", "timestamp '12.5' is not an integer", 1),
        (read_amazon_ratings, "r.csv", "A,B,five,100\n", "rating 'five' is not a number", 1),
        # bad JSON, missing fields, bad dates
        (read_yelp_reviews, "y.json",
         '{"user_id": "u", "business_id": "b", "date": "2016-03-09"}\n{"user_id": "u", \n', "invalid JSON", 2),
        (read_yelp_reviews, "y.json", '{"user_id": "u", "date": "2016-03-09"}\n', "missing field 'business_id'", 1),
        (read_yelp_reviews, "y.json", '{"user_id": "u", "business_id": "b", "date": "09/03/2016"}\n',
         "bad date '09/03/2016'", 1),
        (read_yelp_reviews, "y.json", '{"user_id": "u", "business_id": "b", "date": "2016-02-30"}\n',
         "bad date '2016-02-30'", 1),
        (read_yelp_reviews, "y.json", '{"user_id": "u", "business_id": "b", "date": 20160309}\n',
         "date 20160309 is not a string", 1),
        (read_yelp_reviews, "y.json", '["u", "b", "2016-03-09"]\n', "expected an object", 1),
        (read_yelp_reviews, "y.json", '{"user_id": 7, "business_id": "b", "date": "2016-03-09"}\n',
         "'user_id' must be a non-empty string", 1),
        (read_amazon_reviews, "r.json", "{'reviewerID': 'A', 'asin': 'B', 'unixReviewTime': 'soon'}\n",
         "unixReviewTime 'soon' is not an integer", 1),
        (read_amazon_reviews, "r.json", "{'reviewerID': 'A', 'asin': \n", "neither JSON nor a Python literal", 1),
    ],
)
def test_bad_lines_name_file_line_and_value(tmp_path, reader, name, text, needle, lineno):
    path = _write(tmp_path, text, name)
    with pytest.raises(DataFormatError) as info:
        reader(path)
    message = str(info.value)
    assert needle in message
    assert f"{path}:{lineno}:" in message


@pytest.mark.parametrize(
    "reader", [read_movielens, read_amazon_ratings, read_amazon_reviews, read_yelp_reviews]
)
def test_empty_raw_file_is_an_error(tmp_path, reader):
    path = _write(tmp_path, "\n \n", "empty.txt")
    with pytest.raises(DataFormatError, match="empty file") as info:
        reader(path)
    assert str(path) in str(info.value)


def test_zip_without_ratings_is_an_error(tmp_path):
    archive = tmp_path / "ml-1m.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ml-1m/movies.dat", "1::Toy Story::Animation\n")
    with pytest.raises(DataFormatError, match=r"exactly one member ending in 'ratings.dat'.*ml-1m/movies.dat"):
        read_movielens(archive)


def test_missing_raw_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="ratings.dat"):
        read_movielens(tmp_path / "ratings.dat")
    with pytest.raises(FileNotFoundError, match="ml-1m.zip"):
        read_movielens(tmp_path / "ml-1m.zip")


def test_non_utf8_raw_file(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes(b"A,B,5.0,100\n\xff\xfe,B,5.0,100\n")
    with pytest.raises(DataFormatError, match="not UTF-8") as info:
        read_amazon_ratings(path)
    assert str(path) in str(info.value)


def test_yelp_json_lines_from_a_generated_file(tmp_path):
    rows = [{"user_id": f"u{k % 3}", "business_id": f"b{k % 4}", "date": f"2019-01-{k + 1:02d} 10:00:00",
             "text": "déjà vu, \"quoted\""} for k in range(9)]
    path = tmp_path / "reviews.json.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    inter = read_yelp_reviews(path)
    assert [(u, i) for u, i, _ in inter.records()] == [(r["user_id"], r["business_id"]) for r in rows]
    assert np.all(np.diff(inter.timestamp) == 86400)
