"""Download a dataset into the data folder: ``sarbench data fetch NAME [--raw]``.

The processed files (the default) come from the SASRec and S3-Rec GitHub repositories named in the
registry and are checked against the registry's sha256 before they are kept. A raw source (``--raw``:
MovieLens ``ml-1m.zip``, the Amazon 2014 ratings CSVs) has no pinned checksum, because none could be
verified when the registry was written: its sha256 is computed and reported, marked *unverified*,
and whether its preprocessed form is the paper's version is decided by its fingerprint.

A download goes to a hidden temporary file next to its destination; only after the checksum (where
pinned) matches and the file parses as a dataset is it renamed into place, atomically. A failed
download, a checksum mismatch or a file that does not parse leaves nothing behind.

The body may be sent gzip-encoded (``Content-Encoding: gzip``, asked for with ``Accept-Encoding``);
it is decoded while it streams. A body that is itself a gzip file (a ``.gz`` url) is kept compressed
as ``<filename>.gz``; checksums are over the uncompressed content (see ``readers.file_sha256``).
"""

from __future__ import annotations

import http.client
import logging
import os
import sys
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .readers import GZIP_MAGIC, READERS, ChecksumError, DataFormatError, file_sha256
from .registry import DATA_ENV, DatasetInfo, data_dir as configured_data_dir, dataset_info, paper_version
from .sequences import DatasetStats, SequenceDataset

log = logging.getLogger(__name__)

USER_AGENT = "sarbench-data-fetch/0.1 (+python urllib)"


class FetchError(RuntimeError):
    """A download failed (HTTP error, network error, truncated body, no download url)."""


@dataclass(frozen=True, eq=False)
class FetchResult:
    """What ``fetch`` did and what it got."""

    name: str
    path: Path  # the file now in the data folder
    url: str | None  # where it came from (None: an existing file was kept)
    raw: bool  # the raw source (preprocessed on load) rather than the processed file
    sha256: str  # of the (uncompressed) file content
    verified: bool  # sha256 compared with a pinned checksum and equal
    downloaded: bool  # False when a file already present was kept
    dataset: SequenceDataset
    is_paper_version: bool | None  # True / False / None = cannot tell
    paper_version_note: str

    @property
    def stats(self) -> DatasetStats:
        return self.dataset.stats()

    @property
    def fingerprint(self) -> str:
        return self.dataset.fingerprint()


def _progress_bar(total: int | None, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                disable=not enabled, leave=True)


def download(
    url: str,
    dest: Path,
    expected_sha256: str | None = None,
    progress: bool = True,
    validate: Callable[[Path], object] | None = None,
    timeout: float = 60.0,
) -> tuple[Path, str, object]:
    """Download ``url`` to ``dest`` atomically; returns (final path, sha256, validate's result).

    The final path is ``dest``, or ``dest`` + ``.gz`` when the body is a gzip file. ``validate``
    receives the temporary file and may raise to reject it.
    """
    dest = Path(dest)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip"})
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(request, timeout=timeout)
            except urllib.error.HTTPError as exc:
                exc.close()
                raise FetchError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
            except urllib.error.URLError as exc:
                raise FetchError(f"download of {url} failed: {exc.reason}") from None
            except (OSError, http.client.HTTPException) as exc:  # timeouts, resets, bad status lines
                raise FetchError(f"download of {url} failed: {exc!r}") from None
            with response:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                encoded = response.headers.get("Content-Encoding", "").strip().lower() in ("gzip", "x-gzip")
                decoder = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoded else None
                received = 0
                with _progress_bar(total, dest.name, progress) as bar:
                    while True:
                        try:
                            chunk = response.read(1 << 16)
                        except (OSError, http.client.HTTPException) as exc:  # timeouts, resets, IncompleteRead
                            raise FetchError(
                                f"download of {url} failed after {received} bytes: {exc!r}"
                            ) from None
                        if not chunk:
                            break
                        received += len(chunk)
                        bar.update(len(chunk))
                        try:
                            out.write(decoder.decompress(chunk) if decoder else chunk)
                        except zlib.error as exc:
                            raise FetchError(f"download of {url}: bad gzip content encoding ({exc})") from None
                if total is not None and received != total:
                    raise FetchError(f"download of {url} is incomplete: got {received} of {total} bytes")
                if decoder is not None:
                    out.write(decoder.flush())
                    if not decoder.eof:
                        raise FetchError(f"download of {url} is truncated (gzip stream did not end)")
        with open(tmp, "rb") as fh:
            body_is_gzip = fh.read(2) == GZIP_MAGIC
        final = dest.with_name(dest.name + ".gz") if body_is_gzip and dest.suffix != ".gz" else dest
        try:
            actual = file_sha256(tmp)
        except (OSError, EOFError, zlib.error) as exc:  # a gzip body that does not decompress
            raise FetchError(f"download of {url} is a corrupt gzip file ({exc})") from None
        if expected_sha256 is not None and actual != expected_sha256:
            raise ChecksumError(
                f"sha256 mismatch for {url}: expected {expected_sha256}, got {actual}; "
                f"the download was discarded and {final} was not written"
            )
        try:
            checked = validate(tmp) if validate is not None else None
        except (ValueError, OSError) as exc:
            kind = DataFormatError if isinstance(exc, DataFormatError) else FetchError
            raise kind(f"the download of {url} does not parse as expected and was discarded: {exc}") from exc
        os.replace(tmp, final)
        log.info("saved %s (%d bytes received, sha256 %s)", final, received, actual)
        return final, actual, checked
    finally:
        if tmp.exists():
            tmp.unlink()


def _existing(root: Path, filename: str) -> Path | None:
    for candidate in (root / filename, root / (filename + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def _loader(info: DatasetInfo, raw: bool) -> Callable[[Path], SequenceDataset]:
    if raw:
        from . import load_raw

        return lambda path: load_raw(info.name, path)
    return lambda path: READERS[info.format](path, name=info.name)


def fetch(
    name: str,
    data_dir: str | os.PathLike | None,
    url: str | None = None,
    progress: bool = True,
    *,
    raw: bool = False,
    force: bool = False,
    timeout: float = 60.0,
) -> FetchResult:
    """Download dataset ``name`` into ``data_dir`` (default ``$SARBENCH_DATA``), verify and load it.

    ``url`` overrides the registry's address (a mirror); the processed file's sha256 is still checked
    against the registry. ``raw=True`` fetches the raw source instead (unverified, see the module
    docstring). A file already present is kept when its checksum matches (processed) or always
    (raw), unless ``force``; a processed file present with a wrong checksum is an error unless
    ``force``. The file is parsed before it is kept; its statistics, fingerprint and whether it is
    the paper's version are in the result.
    """
    info = dataset_info(name)
    root = configured_data_dir(data_dir)
    if root is None:
        raise FetchError(f"no data folder: give --data-dir DIR or set ${DATA_ENV}")
    if not root.is_dir():
        log.info("creating data folder %s", root)
        root.mkdir(parents=True, exist_ok=True)

    if raw:
        if info.raw is None:
            raise FetchError(f"dataset {name!r} has no raw source in the registry")
        filename, expected = info.raw.filename, info.raw.sha256
        source_url = url or info.raw.url
        if source_url is None:
            raise FetchError(
                f"the raw source of {name!r} ({info.raw.filename}) cannot be downloaded automatically: "
                f"{info.raw.note}. Get it from {info.raw.homepage} and put it in {root} "
                f"(or pass a url you are entitled to use)"
            )
    else:
        filename, expected, source_url = info.filename, info.sha256, url or info.url
    load = _loader(info, raw)

    present = _existing(root, filename)
    if present is not None and not force:
        actual = file_sha256(present)
        if expected is not None and actual != expected:
            raise ChecksumError(
                f"{present} is already there but its sha256 is {actual}, expected {expected}; "
                f"remove it or fetch with --force to replace it"
            )
        log.info("%s already present (sha256 %s), not downloading", present, actual)
        ds = load(present)
        path, downloaded, got_url = present, False, None
    else:
        path, actual, ds = download(source_url, root / filename, expected, progress, validate=load,
                                    timeout=timeout)
        # the dataset was parsed from the temporary file: name the kept file as its source
        source = f"{path} (preprocessed from the raw source: one pass, min 5)" if raw else str(path)
        ds = SequenceDataset(ds.name, ds.items, ds.offsets, ds.num_items, source=source)
        downloaded, got_url = True, source_url
        if present is not None and present != path:
            present.unlink()  # --force replaced foo.txt by foo.txt.gz (or back): keep one copy
    verified = expected is not None
    if not verified:
        log.warning("%s: sha256 %s was NOT verified (no pinned checksum for this source)", path, actual)
    is_paper, note = paper_version(info, ds.fingerprint(), ds.stats())
    return FetchResult(
        name=name,
        path=path,
        url=got_url,
        raw=raw,
        sha256=actual,
        verified=verified,
        downloaded=downloaded,
        dataset=ds,
        is_paper_version=is_paper,
        paper_version_note=note,
    )
