"""The five datasets of the paper: where they come from, what file to drop in, and what the paper reports.

``paper_fingerprint`` is the fingerprint of the processed sequences that the paper used (the SASRec
files for beauty, video and ml-1m equal Table 1 exactly). A local file whose fingerprint equals it is
"the paper's version": only then are results compared with the paper cell by cell. Sports and Yelp
are available here only as the S3-Rec versions (iterated 5-core, different sizes), so their
``paper_fingerprint`` is None and every result on them is labelled as not comparable.
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
        ),
    ]
}


def dataset_info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(DATASETS) + ", synthetic"
        raise KeyError(f"unknown dataset {name!r}; known datasets: {known}") from None


def data_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The configured real-data folder: ``explicit``, else ``$SARBENCH_DATA``, else None."""
    value = explicit if explicit is not None else os.environ.get(DATA_ENV) or None
    return Path(value) if value else None
