"""CPU rehearsal of gpu_check/gpu_check.sh: the same script, end to end, as a bare GPU machine would run it.

The checkout is copied without ``.git`` into a folder with nothing beside it (no ``../shared``), its
data folder is prepared by ``gpu_check/prepare_gpu_data.py`` (video only), and the script runs with
``GPU_CHECK_REHEARSAL=1``: the CPU instead of CUDA, video at smoke scale for one epoch per case,
pip pointed at no index, no SARBENCH_DATA or PYTHONPATH from outside. What the script leaves in
``$OUT`` is then read back the way the GPU machine returns it (at most 8 files of 16 MiB, two
folders deep, plain names); anything it would not return fails the test. A second run is stopped
with SIGTERM in the middle of training: its trap must still return the archive. A third, without
data and without CUDA, must fail loudly.

Needs git (to list the checkout's files and name its commit) and the video dataset in
``$SARBENCH_DATA``; skipped otherwise. About a minute of CPU in all. Two steps of
``gpu_check/gpu_check_steps.py`` are also tested alone, without data: the weights archive kept
within its size limit, and the summary's line for a case killed before its record.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT_TIMEOUT = 420  # seconds; the rehearsal itself takes about one minute
MAX_FILES, MAX_BYTES, MAX_TOTAL, MAX_DEPTH = 8, 16 * 2**20, 64 * 2**20, 2
NAME = re.compile(r"^[A-Za-z0-9._-]+$")


def machine_return(out: Path) -> tuple[list[str], list[str]]:
    """What a GPU machine sends back from ``out``: (returned, left out with the reason), relative paths.

    Its rules: plain files only, each name of letters, digits, '.', '_' and '-', no more than two
    folders down, at most 16 MiB each and 64 MiB together, at most 8 files (the rest are refused).
    """
    returned, left, total = [], [], 0
    for path in sorted(p for p in out.rglob("*") if not p.is_dir()):
        rel = path.relative_to(out)
        why = None
        if path.is_symlink() or not path.is_file():
            why = "not a plain file"
        elif not all(NAME.match(part) for part in rel.parts):
            why = "odd characters in the name"
        elif len(rel.parts) - 1 > MAX_DEPTH:
            why = "too deep"
        elif path.stat().st_size > MAX_BYTES or total + path.stat().st_size > MAX_TOTAL:
            why = "too large"
        elif len(returned) >= MAX_FILES:
            why = f"a file beyond the first {MAX_FILES}"
        if why:
            left.append(f"{rel} ({why})")
        else:
            returned.append(str(rel))
            total += path.stat().st_size
    return returned, left


def _steps_module():
    """gpu_check/gpu_check_steps.py, which the script runs by path (it is no package module)."""
    spec = importlib.util.spec_from_file_location("gpu_check_steps", ROOT / "gpu_check" / "gpu_check_steps.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(dataset):
    from sarbench.store import make_record

    return make_record(case_id=f"vanilla[{dataset}-AR-ce]", table="vanilla", dataset=dataset, model="bert4rec",
                       attention="AR", loss="ce", config={"d": 64}, fingerprint="0123456789abcdef", seed=0,
                       scale="paper", metrics={"N@10": 0.1, "R@10": 0.2}, code_version="test",
                       extra={"stopped": "time", "best_epoch": 3})


def test_the_models_archive_packs_ml1m_first_then_the_smallest_within_the_limit(tmp_path):
    from sarbench.store import ResultStore

    steps = _steps_module()
    results = tmp_path / "results"
    store, sizes = ResultStore(results), {"beauty": 1, "video": 3, "yelp": 5, "ml-1m": 6}  # KiB
    (results / "models").mkdir(parents=True)
    names = {}
    for dataset, kib in sizes.items():
        record = _record(dataset)
        store.write(record)
        names[dataset] = f"{record.key}.pt"
        (results / "models" / names[dataset]).write_bytes(bytes(kib * 1024))
    archive = tmp_path / "models.tar.gz"
    lines = steps.pack_models(results, str(archive), limit_mib=10.5 / 1024)  # room for 10.5 KiB
    with tarfile.open(archive) as tar:
        packed = tar.getnames()
    # ml-1m first whatever its size, then the smallest while they fit: 6 + 1 + 3 KiB; yelp's 5 would not
    assert packed == [f"results/models/{names[d]}" for d in ("ml-1m", "beauty", "video")]
    assert not (tmp_path / "models.tar.gz.part").exists()
    assert [line.split(" ")[0] for line in lines] == ["packed", "packed", "packed", "left"]
    assert lines[-1].startswith(f"left out {names['yelp']} (yelp,") and "over the" in lines[-1]


def test_the_summary_names_a_case_killed_before_its_record(tmp_path):
    from sarbench.store import ResultStore

    steps = _steps_module()
    results = tmp_path / "results"
    ResultStore(results).write(_record("ml-1m"))
    (results / "logs").mkdir()
    (results / "logs" / "vanilla_ml-1m-vanilla-AR.s0.log").write_text("2025 epoch 1 loss 8.1\n")
    (results / "logs" / "vanilla_beauty-vanilla-AE.s0.log").write_text("2025 epoch 1 loss 9.0\n2025 epoch 2 loss 8.7\n")
    lines = steps.case_lines(results)
    assert len(lines) == 2 and lines[0].startswith("  vanilla[ml-1m-AR-ce] seed 0 on cpu:")
    assert "stopped=time" in lines[0] and "N@10 0.1000 (paper 0.1738)" in lines[0]
    assert lines[1] == "  vanilla_beauty-vanilla-AE: NO RECORD (stopped before the case finished); last: epoch 2 loss 8.7"


# --- the rehearsal ------------------------------------------------------------------------------------


def _git(*args) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def _copy_checkout(dest: Path) -> None:
    """The working tree as the GPU machine receives it: tracked and untracked-not-ignored files, no .git."""
    for rel in _git("ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0"):
        src = ROOT / rel
        if rel and src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def _script_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("SARBENCH_DATA", "PYTHONPATH", "SARBENCH_COMMIT")
           and not k.startswith("GPU_CHECK_") and not k.startswith("PYTEST_")}
    env.update({"PYTHON": sys.executable, **extra})
    return env


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    """A bare 'machine': the copied checkout with its prepared .gpu-data, and the commit it names."""
    if shutil.which("git") is None or shutil.which("timeout") is None or shutil.which("tar") is None:
        pytest.skip("the rehearsal needs git, timeout and tar")
    try:
        commit = _git("rev-parse", "HEAD").strip()
    except subprocess.CalledProcessError:
        pytest.skip("not a git checkout: the rehearsal copies the checkout's files as git lists them")
    data = os.environ.get("SARBENCH_DATA")
    if not data or not any((Path(data) / f).is_file() for f in ("video.txt", "video.txt.gz")):
        pytest.skip("the rehearsal needs the video dataset in $SARBENCH_DATA")
    base = tmp_path_factory.mktemp("machine")
    checkout = base / "sarbench"  # nothing beside it: no ../shared
    _copy_checkout(checkout)
    prep = subprocess.run([sys.executable, "gpu_check/prepare_gpu_data.py", "--datasets", "video", "--allow-dirty",
                           "--dest", str(checkout / ".gpu-data")], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert prep.returncode == 0, prep.stderr
    assert (checkout / ".gpu-data" / "COMMIT").read_text().strip() == commit
    assert not (checkout / ".git").exists() and not (base / "shared").exists()
    return checkout, commit


def _archive(out: Path, tmp: Path) -> Path:
    returned, left = machine_return(out)
    assert not left, f"the GPU machine would not return: {left}"
    assert "gpu-check.tar.gz" in returned and "summary.txt" in returned, returned
    unpacked = tmp / "unpacked"
    with tarfile.open(out / "gpu-check.tar.gz") as tar:
        tar.extractall(unpacked, filter="data")
    return unpacked


def _steps(unpacked: Path) -> dict[str, list[str]]:
    return {line.split("\t")[0]: line.split("\t")[1:] for line in (unpacked / "steps.tsv").read_text().splitlines()}


def test_the_cpu_rehearsal_returns_records_report_and_logs(machine, tmp_path):
    checkout, commit = machine
    out, work = tmp_path / "out", tmp_path / "work"
    start = time.monotonic()
    run = subprocess.run(["bash", "gpu_check/gpu_check.sh"], cwd=checkout, capture_output=True, text=True,
                         timeout=SCRIPT_TIMEOUT,
                         env=_script_env(GPU_CHECK_REHEARSAL="1", OUT=str(out), GPU_CHECK_WORK=str(work)))
    seconds = time.monotonic() - start
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    unpacked = _archive(out, tmp_path)

    steps = _steps(unpacked)
    for name in ("env", "preflight-unit", "preflight-two-epochs", "preflight-resume", "preflight-speed"):
        assert steps[name][0] == "ok", (name, steps[name], (unpacked / "logs" / f"{name}.log").read_text()[-2000:])
    # 1 = some case failed its checks (a one-epoch run is not the committed smoke baseline); it still ran
    assert steps["main"][0] in ("ok", "exit-1"), steps["main"]

    env_log = (unpacked / "logs" / "env.log").read_text()
    assert f"sarbench from {checkout / 'sarbench'}" in env_log, env_log  # the copy, not an installed sarbench
    records = [json.loads(p.read_text()) for p in (unpacked / "results").glob("*.json")]
    assert sorted(r["case_id"] for r in records) == ["design[video-loss_ce-AE-ce]", "design[video-loss_ce-AR-ce]",
                                                     "vanilla[video-AE-ce]", "vanilla[video-AR-ce]"]
    for r in records:
        assert r["device"] == "cpu" and r["scale"] == "smoke" and r["seed"] == 0
        assert r["extra"]["stopped"] == "time" and r["epochs"] == 1  # the per-case cap, honestly recorded
        assert r["code_version"].endswith(f"+g{commit[:12]}"), r["code_version"]  # no .git there
        design = "vanilla" if r["table"] == "vanilla" else "ce"
        epoch_log = unpacked / "results" / "logs" / f"{r['table']}_video-{design}-{r['attention']}.s0.log"
        assert re.search(r"epoch +1 loss \d", epoch_log.read_text())
    report = (unpacked / "report" / "report.md").read_text()
    assert "4 record(s)" in report and "video" in report and "Table 5" in report
    assert not list(unpacked.rglob("*.pt")), "weights and checkpoints belong in the models archive, not here"
    assert "| synthetic |" in (unpacked / "preflight" / "speed_epoch.md").read_text()
    assert "resume check passed" in (unpacked / "logs" / "preflight-resume.log").read_text()
    with tarfile.open(out / "gpu-check-models.tar.gz") as tar:
        assert len([m for m in tar.getnames() if m.endswith(".pt")]) == 4

    summary = (out / "summary.txt").read_text()
    assert run.stdout.rstrip().endswith(summary.rstrip()), "the summary is printed last"
    for case in ("vanilla[video-AE-ce]", "vanilla[video-AR-ce]", "design[video-loss_ce-AE-ce]",
                 "design[video-loss_ce-AR-ce]"):
        assert re.search(re.escape(case) + r" seed 0 on cpu: 1 epochs .*stopped=time", summary), summary
    assert "gpu-check.tar.gz" in summary and "STOPPED EARLY" not in summary
    print(f"rehearsal: {seconds:.0f} s")


def _wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False


def test_a_rehearsal_stopped_by_sigterm_still_returns_its_archive(machine, tmp_path):
    checkout, _ = machine
    out, work = tmp_path / "out", tmp_path / "work"
    env = _script_env(GPU_CHECK_REHEARSAL="1", GPU_CHECK_PREFLIGHT="0", GPU_CHECK_CASE_MINUTES="5", GPU_CHECK_WORKERS="1",
                      OUT=str(out), GPU_CHECK_WORK=str(work))
    proc = subprocess.Popen(["bash", "gpu_check/gpu_check.sh"], cwd=checkout, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        epoch_logs = work / "results" / "logs"
        started = _wait_for(lambda: any("epoch" in p.read_text() for p in epoch_logs.glob("*.log")), 180)
        assert started, "no case finished an epoch"
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stdout[-3000:]
    unpacked = _archive(out, tmp_path)
    assert "SIGTERM" in (unpacked / "stopped_by.txt").read_text()
    assert _steps(unpacked)["main"][0] == "stopped"
    assert list((unpacked / "results" / "logs").glob("*.log")), "the per-epoch logs must come back"
    summary = (out / "summary.txt").read_text()
    assert "STOPPED EARLY: SIGTERM" in summary and stdout.rstrip().endswith(summary.rstrip())


def test_no_cuda_and_no_data_fail_loudly(machine, tmp_path):
    checkout, _ = machine
    bare = tmp_path / "sarbench"
    shutil.copytree(checkout, bare, ignore=shutil.ignore_patterns(".gpu-data"))
    out = tmp_path / "out"
    run = subprocess.run(["bash", "gpu_check/gpu_check.sh"], cwd=bare, capture_output=True, text=True, timeout=300,
                         env=_script_env(OUT=str(out), GPU_CHECK_WORK=str(tmp_path / "work")))
    assert run.returncode == 1
    assert "FAILED: no CUDA device" in run.stderr and "FAILED: dataset ml-1m" in run.stderr, run.stderr
    assert "prepare_gpu_data.py" in run.stderr
    unpacked = _archive(out, tmp_path)
    assert _steps(unpacked)["env"][0] == "exit-1" and "main" not in _steps(unpacked)
