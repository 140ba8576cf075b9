"""Two processes on one results folder share a case: the second waits for the first's claim and reuses its
record instead of training it again; a process that dies releases its claim.

The case is a one-epoch vanilla AR on the synthetic dataset at hidden 16 (about 2 s on one thread). The
first process holds its first epoch until the second has loaded its data and is about to ask for the case.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from sarbench.store import LOCKS, ResultStore

WORKER = r"""
import json, sys, time
from pathlib import Path

import torch

from sarbench.cases import DataCache, Scale, run_case
from sarbench.store import ResultStore

torch.set_num_threads(1)
results, markers, role = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
scale = Scale("smoke", max_epochs=1, patience=1)
data = DataCache(None)
data.get("synthetic", scale)  # loaded before the race
epochs = []


def on_epoch(row):
    epochs.append(row["epoch"])
    if role == "first":
        (markers / "first-training").touch()
        deadline = time.monotonic() + 60
        while not (markers / "second-ready").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)  # the second process is at the case's claim by now


(markers / f"{role}-ready").touch()
record = run_case(table="vanilla", dataset="synthetic", design="vanilla", attention="AR", seed=0, scale=scale,
                  device="cpu", data=data, store=ResultStore(results), model_overrides={"hidden": 16},
                  on_epoch=on_epoch)
print(json.dumps({"key": record.key, "timestamp": record.timestamp, "epochs": epochs}))
"""


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


def _start(results: Path, markers: Path, role: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WORKER, str(results), str(markers), role],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_second_process_waits_for_the_case_and_reuses_its_record(tmp_path):
    results, markers = tmp_path / "results", tmp_path / "markers"
    markers.mkdir()
    first = _start(results, markers, "first")
    _wait_for(markers / "first-training", first)  # the first process holds the case
    second = _start(results, markers, "second")
    out = {}
    for role, proc in (("first", first), ("second", second)):
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        out[role] = json.loads(stdout.strip().splitlines()[-1]), stderr
    (a, _), (b, b_err) = out["first"], out["second"]
    assert a["epochs"] == [1] and b["epochs"] == []  # trained once
    assert b["key"] == a["key"] and b["timestamp"] == a["timestamp"]  # the second got the first's record
    assert "another process is running this case" in b_err and "waiting for its record" in b_err
    assert len(ResultStore(results).records()) == 1
    assert (results / LOCKS / f"{a['key']}.lock").is_file()


HOLDER = r"""
import sys, time
from pathlib import Path

from sarbench.store import ResultStore

with ResultStore(sys.argv[1]).claim(sys.argv[2]):
    Path(sys.argv[3]).touch()
    time.sleep(60)
"""


def test_a_claim_dies_with_its_process(tmp_path):
    key, held = "abc123", tmp_path / "held"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "results"), key, str(held)])
    _wait_for(held, holder)
    holder.kill()
    holder.wait(timeout=30)
    claimed = threading.Event()

    def claim():
        with ResultStore(tmp_path / "results").claim(key):
            claimed.set()

    thread = threading.Thread(target=claim, daemon=True)
    thread.start()
    assert claimed.wait(timeout=10), "the claim of a killed process was not released"
