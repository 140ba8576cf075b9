"""The `sarbench` command line: help texts, `data stats`, `data fetch` (local server only), exit codes."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import sarbench.cli as cli
import sarbench.data.table1 as table1
from sarbench.data import DATA_ENV, DATASETS, SyntheticConfig, make_synthetic
from sarbench.data.readers import read_pairs

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PAIRS = FIXTURES / "processed" / "pairs_tiny.txt"


@pytest.fixture(autouse=True)
def small_synthetic(monkeypatch):
    """`data stats` always adds the synthetic row; a small one keeps these tests fast."""
    monkeypatch.setattr(table1, "make_synthetic", lambda: make_synthetic(SyntheticConfig(num_users=40)))
    monkeypatch.delenv(DATA_ENV, raising=False)


@pytest.fixture
def fake_beauty(monkeypatch):
    info = dataclasses.replace(DATASETS["beauty"], sha256=hashlib.sha256(PAIRS.read_bytes()).hexdigest(),
                               paper_fingerprint=read_pairs(PAIRS).fingerprint())
    monkeypatch.setitem(DATASETS, "beauty", info)
    return info


@pytest.mark.parametrize("argv", [[], ["data"], ["data", "stats"], ["data", "fetch"]])
def test_help_on_every_command(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([*argv, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: sarbench")
    if argv[-1:] == ["fetch"]:
        assert "--raw" in out and "--data-dir" in out and "beauty,sports,video,yelp,ml-1m" in out
    if argv[-1:] == ["stats"]:
        assert "--markdown" in out


def test_command_is_required(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["data"])
    assert info.value.code == 2
    assert "required" in capsys.readouterr().err


def test_groups_are_pluggable():
    calls = []

    def add_demo_commands(sub):
        demo = sub.add_parser("demo", help="demo group")
        demo.set_defaults(func=lambda args: calls.append(args.command) or 7)

    cli.COMMAND_GROUPS.append(add_demo_commands)
    try:
        assert cli.main(["demo"]) == 7 and calls == ["demo"]
    finally:
        cli.COMMAND_GROUPS.remove(add_demo_commands)


def test_stats_without_data_folder(capsys):
    assert cli.main(["data", "stats"]) == 0
    out = capsys.readouterr().out
    assert f"no data folder (--data-dir or ${DATA_ENV})" in out
    assert "synthetic" in out
    for name in DATASETS:
        assert f"{name}: missing;" in out and f"sarbench data fetch {name}" in out


def test_stats_with_data(tmp_path, capsys, fake_beauty):
    shutil.copy(PAIRS, tmp_path / fake_beauty.filename)
    (tmp_path / DATASETS["video"].filename).write_text("1 2\n1 3\n")  # wrong checksum: shown, not hidden
    assert cli.main(["data", "stats", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    ds = read_pairs(PAIRS)
    st = ds.stats()
    beauty_line = next(line for line in out.splitlines() if line.startswith("beauty "))
    for cell in (f"{st.users:,}", f"{st.items:,}", f"{st.interactions:,}", f"{st.avg_length:.2f}",
                 ds.fingerprint(), "ok", "yes"):
        assert cell in beauty_line
    paper = fake_beauty.paper
    paper_line = out.splitlines()[out.splitlines().index(beauty_line) + 1]
    assert "paper, Table 1" in paper_line and f"{paper.users:,}" in paper_line and "395K" in paper_line
    video_line = next(line for line in out.splitlines() if line.startswith("video "))
    assert "MISMATCH" in video_line and "no (fingerprint" in video_line
    assert "ml-1m: missing;" in out and "sports: missing;" in out


def test_stats_markdown_and_unreadable_file(tmp_path, capsys):
    (tmp_path / DATASETS["sports"].filename).write_text("1 2 3\nx 4 5\n")
    assert cli.main(["data", "stats", "--data-dir", str(tmp_path), "--markdown"]) == 1
    out = capsys.readouterr().out
    assert "| dataset" in out and "|---" in out
    assert "- sports: unreadable;" in out and ":2:" in out


def test_fetch_errors_exit_1(tmp_path, capsys):
    assert cli.main(["data", "fetch", "yelp", "--raw", "--data-dir", str(tmp_path)]) == 1
    assert "cannot be downloaded automatically" in capsys.readouterr().err
    assert cli.main(["data", "fetch", "beauty"]) == 1
    assert f"${DATA_ENV}" in capsys.readouterr().err


def test_fetch_through_cli_from_local_server(tmp_path, capsys, monkeypatch, fake_beauty):
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    body = PAIRS.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            ok = self.path == "/Beauty.txt"
            self.send_response(200 if ok else 404)
            payload = body if ok else b"no"
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        argv = ["data", "fetch", "beauty", "--data-dir", str(tmp_path), "--no-progress"]
        assert cli.main([*argv, "--url", base + "/Beauty.txt"]) == 0
        out = capsys.readouterr().out
        assert f"downloaded: {tmp_path / fake_beauty.filename}" in out
        assert "verified against the registry" in out
        assert read_pairs(PAIRS).fingerprint() in out and "paper's version: yes" in out
        (tmp_path / fake_beauty.filename).unlink()
        assert cli.main([*argv, "--url", base + "/gone.txt"]) == 1
        assert "HTTP 404" in capsys.readouterr().err
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_console_script_entry_point():
    """`python -m sarbench.cli` and the installed `sarbench` script run the same main()."""
    proc = subprocess.run([sys.executable, "-m", "sarbench.cli", "data", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and "stats" in proc.stdout and "fetch" in proc.stdout
