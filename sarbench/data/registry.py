"""The five datasets of the paper: where they come from, what file to drop in, and what the paper reports.

``paper_fingerprint`` is the fingerprint of the processed sequences that the paper used (the SASRec
files for beauty, video and ml-1m equal Table 1 exactly). A local file whose fingerprint equals it is
"the paper's version": only then are results compared with the paper cell by cell. Sports and Yelp
are available here only as the S3-Rec versions (iterated 5-core, different sizes), so their
``paper_fingerprint`` is None and every result on them is labelled as not comparable.

``sha256`` is the checksum of the processed file named by ``filename`` (of its uncompressed content
when gzipped). The ``url`` of each processed file is its raw GitHub address in the SASRec
(kang205/SASRec ``data/``: Beauty.txt, Video.txt, ml-1m.txt) or S3-Rec (RUCAIBox/CIKM2020-S3Rec
``data/``: Sports_and_Outdoors.txt, Yelp.txt) repository. When this was written, the stored copy of
SASRec's Video.txt and a copy of S3-Rec's Yelp.txt had exactly the sizes and leading content of
video.txt and yelp.s3rec.txt; ``fetch`` checks the sha256 of every download regardless.

``raw`` names the original, unprocessed source of each dataset (MovieLens ``ml-1m.zip``, Amazon 2014
ratings CSV, Yelp reviews JSON) for ``sarbench data fetch NAME --raw`` and for loading from a raw
file with the paper's one-pass preprocessing. Raw files have no pinned checksum: they could not be
verified when this registry was written, so a raw download is reported with its sha256 and marked
unverified, and whether the result is the paper's version is decided by its fingerprint (for
sports and yelp, where no fingerprint is known, by comparison with Table 1's counts).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATA_ENV = "SARBENCH_DATA"


@dataclass(frozen=True)
class PaperStats:
    """Table 1 of the paper (interactions rounded to thousands there, as printed)."""

    users: int
    items: int
    interactions: int
    avg_length: float
    density: float


@dataclass(frozen=True)
class RawSource:
    """The original, unprocessed source of a dataset."""

    filename: str  # the file a user drops into the data folder (or that `fetch --raw` writes)
    format: str  # raw reader: see sarbench.data.raw.RAW_READERS
    url: str | None  # direct download; None where the publisher requires a sign-up (Yelp)
    homepage: str  # where a person finds it and its terms
    item_order: str = "first_seen"  # see sarbench.data.preprocess
    sha256: str | None = None  # pinned checksum; None = cannot be verified here
    note: str = ""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    title: str
    filename: str  # the file a user drops into the data folder
    format: str  # reader: 'pairs' or 'lines'
    sha256: str  # of that file
    paper: PaperStats
    max_len: int  # the paper's maximum sequence length for this dataset
    paper_fingerprint: str | None  # fingerprint of the paper's processed data; None = not available here
    url: str  # where `sarbench data fetch` downloads the file
    source: str  # provenance, in words
    licence: str
    raw: RawSource | None = None  # the unprocessed source, for `fetch --raw` and raw loading

    @property
    def is_paper_version(self) -> bool:
        return self.paper_fingerprint is not None

    @property
    def comparability(self) -> str:
        if self.is_paper_version:
            return "paper's data"
        return "NOT the paper's version (S3-Rec iterated 5-core); not comparable cell by cell"


_SASREC = "https://raw.githubusercontent.com/kang205/SASRec/master/data/"
_S3REC = "https://raw.githubusercontent.com/RUCAIBox/CIKM2020-S3Rec/master/data/"
_AMAZON_2014 = "https://snap.stanford.edu/data/amazon/productGraph/categoryFiles/"
_AMAZON_HOME = "https://cseweb.ucsd.edu/~jmcauley/datasets/amazon/links.html"
_AMAZON_NOTE = (
    "ratings-only CSV of the Amazon review data 2014; SASRec read the review file "
    "(reviews_<Category>.json.gz, format 'amazon_json'), which carries the same (user, item, time) "
    "tuples per the dataset page but possibly in another line order, which changes tie-breaks"
)


def _amazon_raw(category: str) -> RawSource:
    return RawSource(
        filename=f"ratings_{category}.csv",
        format="amazon_csv",
        url=_AMAZON_2014 + f"ratings_{category}.csv",
        homepage=_AMAZON_HOME,
        note=_AMAZON_NOTE,
    )

DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in [
        DatasetInfo(
            name="beauty",
            title="Amazon 2014 Beauty",
            filename="beauty.txt",
            format="pairs",
            sha256="3cd3d56cee682f5118f22d0443d5d27116075c719ec83bfdfa3e45df33a95e12",
            paper=PaperStats(52204, 57289, 395000, 7.6, 1e-4),
            max_len=50,
            paper_fingerprint="11ee0d53c3454ab2",
            url=_SASREC + "Beauty.txt",
            source="SASRec repository (kang205/SASRec) data/Beauty.txt: Amazon review data 2014 (J. McAuley, "
            "UCSD), users/items with < 5 interactions dropped in one pass, sorted by time",
            licence="Amazon review data: research use (McAuley et al.)",
            raw=_amazon_raw("Beauty"),
        ),
        DatasetInfo(
            name="sports",
            title="Amazon 2014 Sports and Outdoors",
            filename="sports.s3rec.txt",
            format="lines",
            sha256="2a095e0648872beb9982408958290f5d655db5be2911c3756b5446de9f0b8de2",
            paper=PaperStats(83970, 83728, 589000, 7.0, 8e-5),
            max_len=50,
            paper_fingerprint=None,
            url=_S3REC + "Sports_and_Outdoors.txt",
            source="S3-Rec repository (RUCAIBox/CIKM2020-S3Rec) data/Sports_and_Outdoors.txt: Amazon review "
            "data 2014, iterated 5-core; NOT the paper's version (paper: 83,970 users / 83,728 items)",
            licence="Amazon review data: research use (McAuley et al.)",
            raw=_amazon_raw("Sports_and_Outdoors"),
        ),
        DatasetInfo(
            name="video",
            title="Amazon 2014 Video Games",
            filename="video.txt",
            format="pairs",
            sha256="b7376fe24430743f411dc7f567285657b2adb3f74361cc7ba0aee94f3024b651",
            paper=PaperStats(31013, 23715, 287000, 9.3, 4e-4),
            max_len=50,
            paper_fingerprint="7e4c4defa207be76",
            url=_SASREC + "Video.txt",
            source="SASRec repository (kang205/SASRec) data/Video.txt: Amazon review data 2014, one-pass "
            "5-filter, sorted by time",
            licence="Amazon review data: research use (McAuley et al.)",
            raw=_amazon_raw("Video_Games"),
        ),
        DatasetInfo(
            name="yelp",
            title="Yelp",
            filename="yelp.s3rec.txt",
            format="lines",
            sha256="724b219106b81dd2349027da997334ddb6da9fe2f152ad6e0d97a93170f7caed",
            paper=PaperStats(31371, 36616, 300000, 9.6, 3e-4),
            max_len=50,
            paper_fingerprint=None,
            url=_S3REC + "Yelp.txt",
            source="S3-Rec repository (RUCAIBox/CIKM2020-S3Rec) data/Yelp.txt: Yelp Open Dataset, iterated "
            "5-core, contains repeated user-item pairs; NOT the paper's version (paper: 31,371 / 36,616)",
            licence="Yelp Open Dataset terms of use (academic, non-commercial)",
            raw=RawSource(
                filename="yelp_academic_dataset_review.json",
                format="yelp_json",
                url=None,
                homepage="https://www.yelp.com/dataset",
                note="download needs accepting Yelp's terms on its site; the paper does not say which "
                "release or date window it used, so a one-pass filter of a release is not known to give "
                "the paper's 31,371 users / 36,616 items",
            ),
        ),
        DatasetInfo(
            name="ml-1m",
            title="MovieLens-1M",
            filename="ml-1m.txt",
            format="pairs",
            sha256="b725f3acb3986fe3130bffd1e77a74d182a1f51799567a236dbd60270f95b0a2",
            paper=PaperStats(6040, 3416, 1000000, 165.5, 5e-2),
            max_len=200,
            paper_fingerprint="a9a8b31b429b8e0d",
            url=_SASREC + "ml-1m.txt",
            source="SASRec repository (kang205/SASRec) data/ml-1m.txt: MovieLens-1M (GroupLens), sorted by time",
            licence="GroupLens MovieLens licence: no redistribution without permission (so not shipped here)",
            raw=RawSource(
                filename="ml-1m.zip",
                format="movielens",
                url="https://files.grouplens.org/datasets/movielens/ml-1m.zip",
                homepage="https://grouplens.org/datasets/movielens/1m/",
                item_order="sequence",
                note="ml-1m.txt numbers items in order of first appearance reading it top down, hence "
                "item_order='sequence'; whether preprocessing ratings.dat reproduces it exactly (tie-breaks "
                "among equal timestamps) was not verified here",
            ),
        ),
    ]
}


class UnknownDataset(KeyError):
    """A dataset name that is neither registered nor declared; the message lists the known names."""

    def __str__(self) -> str:  # the message as it is (KeyError's own quotes it)
        return str(self.args[0]) if self.args else ""


def dataset_info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(DATASETS) + ", synthetic"
        raise UnknownDataset(f"unknown dataset {name!r}; known datasets: {known}, and those declared in the data "
                       f"folder's datasets.toml") from None


def data_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The configured real-data folder: ``explicit``, else ``$SARBENCH_DATA``, else None."""
    value = explicit if explicit is not None else os.environ.get(DATA_ENV) or None
    return Path(value) if value else None


def matches_table1(stats, paper: PaperStats) -> bool:
    """True when ``stats`` (a DatasetStats) equals Table 1 as printed.

    Users and items must be equal; interactions must round to the printed value (thousands, or
    millions for ML-1M's "1M"), and the average length to the printed one decimal.
    """
    unit = 1_000_000 if paper.interactions % 1_000_000 == 0 else 1_000
    return (
        stats.users == paper.users
        and stats.items == paper.items
        and round(stats.interactions / unit) * unit == paper.interactions
        and round(stats.avg_length, 1) == round(paper.avg_length, 1)
    )


def paper_version(info: DatasetInfo, fingerprint: str, stats=None) -> tuple[bool | None, str]:
    """Whether a loaded dataset is the paper's version: (True/False/None for unknown, explanation).

    Decided by the fingerprint where the paper's is known. Otherwise (sports, yelp) a dataset whose
    statistics do not match Table 1 is not the paper's version, and one that matches is "unknown"
    (same sizes, but its exact sequences cannot be checked).
    """
    if info.paper_fingerprint is not None:
        if fingerprint == info.paper_fingerprint:
            return True, "yes: fingerprint equals the paper's data"
        return False, f"no: fingerprint {fingerprint} differs from the paper's {info.paper_fingerprint}"
    if stats is not None and matches_table1(stats, info.paper):
        return None, "unknown: sizes match Table 1, exact sequences not checkable"
    return False, "no: sizes differ from Table 1 (not the paper's version; not comparable cell by cell)"
