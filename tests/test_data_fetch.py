"""fetch() against a local HTTP server on 127.0.0.1 serving small fixture files (never the network)."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import threading
import zipfile
from pathlib import Path

import pytest

from sarbench.data import DATA_ENV, DATASETS, ChecksumError, DataFormatError, load_dataset
from sarbench.data.fetch import FetchError, download, fetch
from sarbench.data.readers import read_pairs

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PAIRS = FIXTURES / "processed" / "pairs_tiny.txt"


class Server:
    """Serves ``routes[path] = (status, body, headers)``; records the requests it got."""

    def __init__(self):
        self.routes: dict[str, tuple[int, bytes, dict]] = {}
        self.requests: list[tuple[str, dict]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append((self.path, dict(self.headers)))
                status, body, headers = server.routes.get(self.path, (404, b"not found", {}))
                self.send_response(status)
                headers = {"Content-Length": str(len(body)), **headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep test output quiet
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    s = Server()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


@pytest.fixture
def beauty(monkeypatch, server):
    """Registry entry 'beauty' pointing at the fixture served locally, with the fixture's checksum."""
    body = PAIRS.read_bytes()
    server.routes["/Beauty.txt"] = (200, body, {})
    info = dataclasses.replace(DATASETS["beauty"], sha256=hashlib.sha256(body).hexdigest(),
                               url=server.url("/Beauty.txt"), paper_fingerprint=None)
    monkeypatch.setitem(DATASETS, "beauty", info)
    return info


def _only_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_fetch_success(tmp_path, beauty, server):
    folder = tmp_path / "data"  # created by fetch
    result = fetch("beauty", folder, progress=False)
    assert result.path == folder / beauty.filename
    assert result.path.read_bytes() == PAIRS.read_bytes()
    assert result.verified and result.downloaded and result.sha256 == beauty.sha256
    assert result.fingerprint == read_pairs(PAIRS).fingerprint()
    assert result.stats.interactions == len(PAIRS.read_text().split("\n")) - 1
    assert result.dataset.source == str(result.path)
    assert _only_files(folder) == [beauty.filename]  # no temporary file left
    assert load_dataset("beauty", folder).fingerprint() == result.fingerprint
    assert server.requests[0][1].get("Accept-Encoding") == "gzip"

    again = fetch("beauty", folder, progress=False)  # present and verified: not downloaded again
    assert not again.downloaded and len(server.requests) == 1


def test_checksum_mismatch_leaves_nothing(tmp_path, beauty, server):
    server.routes["/Beauty.txt"] = (200, PAIRS.read_bytes() + b"999 1\n", {})
    with pytest.raises(ChecksumError) as info:
        fetch("beauty", tmp_path, progress=False)
    message = str(info.value)
    assert beauty.sha256 in message  # expected
    assert hashlib.sha256(PAIRS.read_bytes() + b"999 1\n").hexdigest() in message  # actual
    assert beauty.url in message
    assert _only_files(tmp_path) == []


def test_http_404(tmp_path, beauty, server):
    url = server.url("/missing.txt")
    with pytest.raises(FetchError, match=r"download of .*/missing.txt failed: HTTP 404"):
        fetch("beauty", tmp_path, url=url, progress=False)
    assert _only_files(tmp_path) == []


def test_gzip_content_encoding_is_decoded(tmp_path, beauty, server):
    body = PAIRS.read_bytes()
    server.routes["/Beauty.txt"] = (200, gzip.compress(body), {"Content-Encoding": "gzip"})
    result = fetch("beauty", tmp_path, progress=False)
    assert result.path.read_bytes() == body and result.verified


def test_gzip_file_is_kept_compressed(tmp_path, beauty, server):
    server.routes["/Beauty.txt.gz"] = (200, gzip.compress(PAIRS.read_bytes()), {})
    result = fetch("beauty", tmp_path, url=server.url("/Beauty.txt.gz"), progress=False)
    assert result.path == tmp_path / (beauty.filename + ".gz")
    assert gzip.decompress(result.path.read_bytes()) == PAIRS.read_bytes()
    assert result.sha256 == beauty.sha256  # checksum of the uncompressed content
    assert load_dataset("beauty", tmp_path).fingerprint() == result.fingerprint


def test_truncated_body(tmp_path, beauty, server):
    body = PAIRS.read_bytes()
    server.routes["/Beauty.txt"] = (200, body[:100], {"Content-Length": str(len(body))})
    with pytest.raises(FetchError, match=r"Beauty.txt (is incomplete|failed after)"):
        fetch("beauty", tmp_path, progress=False, timeout=5)
    assert _only_files(tmp_path) == []


def test_corrupt_gzip_body(tmp_path, beauty, server):
    server.routes["/Beauty.txt.gz"] = (200, gzip.compress(PAIRS.read_bytes())[:-20], {})
    with pytest.raises(FetchError, match="corrupt gzip"):
        fetch("beauty", tmp_path, url=server.url("/Beauty.txt.gz"), progress=False)
    assert _only_files(tmp_path) == []


def test_progress_bar_goes_to_stderr(tmp_path, beauty, capsys):
    fetch("beauty", tmp_path, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert beauty.filename in captured.err and "100%" in captured.err


def test_unparsable_download_is_discarded(tmp_path, server):
    server.routes["/bad.txt"] = (200, b"1 2\n1 x\n", {})
    with pytest.raises(DataFormatError, match=r"does not parse.*'x' is not an integer id"):
        download(server.url("/bad.txt"), tmp_path / "bad.txt", progress=False, validate=read_pairs)
    assert _only_files(tmp_path) == []


def test_existing_file_with_wrong_checksum(tmp_path, beauty, server):
    (tmp_path / beauty.filename).write_text("1 2\n")
    with pytest.raises(ChecksumError, match=r"already there.*--force"):
        fetch("beauty", tmp_path, progress=False)
    assert server.requests == []
    result = fetch("beauty", tmp_path, progress=False, force=True)
    assert result.downloaded and (tmp_path / beauty.filename).read_bytes() == PAIRS.read_bytes()


def test_raw_fetch_is_unverified_and_preprocessed(tmp_path, monkeypatch, server, caplog):
    archive = tmp_path / "served.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(FIXTURES / "raw" / "ratings.dat", "ml-1m/ratings.dat")
    server.routes["/ml-1m.zip"] = (200, archive.read_bytes(), {})
    info = DATASETS["ml-1m"]
    monkeypatch.setitem(DATASETS, "ml-1m", dataclasses.replace(
        info, raw=dataclasses.replace(info.raw, url=server.url("/ml-1m.zip"))))
    folder = tmp_path / "data"
    with caplog.at_level("WARNING"):
        result = fetch("ml-1m", folder, raw=True, progress=False)
    assert result.raw and not result.verified
    assert result.sha256 == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert "NOT verified" in caplog.text
    assert result.path == folder / "ml-1m.zip"
    assert result.is_paper_version is False  # the fixture is not MovieLens
    assert load_dataset("ml-1m", folder).fingerprint() == result.fingerprint


def test_raw_without_download_url(tmp_path):
    with pytest.raises(FetchError, match=r"cannot be downloaded automatically.*yelp.com/dataset"):
        fetch("yelp", tmp_path, raw=True, progress=False)


def test_no_data_folder(monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    with pytest.raises(FetchError, match=rf"--data-dir DIR or set \${DATA_ENV}"):
        fetch("beauty", None, progress=False)


def test_unknown_name_and_unreachable_host(tmp_path, server):
    with pytest.raises(KeyError, match="known datasets"):
        fetch("nope", tmp_path)
    # a port on which nothing listens: connection refused, reported as FetchError naming the url
    closed = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    port = closed.server_address[1]
    closed.server_close()
    with pytest.raises(FetchError, match=rf"127.0.0.1:{port}/x.txt failed"):
        download(f"http://127.0.0.1:{port}/x.txt", tmp_path / "x.txt", progress=False, timeout=5)
    assert _only_files(tmp_path) == []
