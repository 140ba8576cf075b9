"""The pytest form of a comparison: ``pytest bench -m vanilla --model NAME --against DIR`` trains only the
named model and tests its records user by user against the stored AE and AR of DIR."""

from __future__ import annotations

import shutil
from pathlib import Path

from sarbench.regression import BASELINE_DIR
from sarbench.store import ResultRecord, ResultStore

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[1]


def _bench(pytester, *args):
    return pytester.runpytest_subprocess("bench/test_vanilla.py", "-m", "vanilla", "--datasets", "synthetic",
                                         "-p", "no:cacheprovider", "-rs", *args)


def test_only_the_named_model_runs_and_gets_per_user_verdicts(pytester, tmp_path, monkeypatch):
    (pytester.path / "bench").mkdir()
    shutil.copy(ROOT / "bench" / "test_vanilla.py", pytester.path / "bench")
    shutil.copy(ROOT / "pytest.ini", pytester.path)
    (pytester.path / "reports" / "baseline").mkdir(parents=True)
    shutil.copy(ROOT / BASELINE_DIR / "smoke.json", pytester.path / "reports" / "baseline")
    monkeypatch.delenv("SARBENCH_DATA", raising=False)
    results = tmp_path / "results"
    first = _bench(pytester, "-k", "not direction", "--results", str(results))  # AE, AR and GRU4Rec
    first.assert_outcomes(passed=3)

    mine = _bench(pytester, "--model", "gru4rec", "--against", str(results), "--results", str(results))
    mine.assert_outcomes(passed=1, skipped=1)  # the direction case needs the paper's AE and AR: skipped
    mine.stdout.fnmatch_lines(["*vanilla?synthetic-gru4rec-AR-ce?: gru4rec-AR-ce vs AE: N@10 * n = * users: *",
                               "*vanilla?synthetic-gru4rec-AR-ce?: gru4rec-AR-ce vs AR: N@10 * n = * users: *",
                               "*--model gru4rec: only that model's cases run*"])
    assert "vanilla[synthetic-AE-ce]" not in mine.stdout.str().split("sarbench checks")[-1]

    bad = tmp_path / "other-data"  # the references' data differ from the run's
    for record in ResultStore(results).records(case_id=("vanilla[synthetic-AE-ce]", "vanilla[synthetic-AR-ce]")):
        data = {**record.to_dict(), "fingerprint": "0" * 16, "key": ""}
        ResultStore(bad).write(ResultRecord.from_dict(data))
    wrong = _bench(pytester, "--model", "gru4rec", "-k", "not direction", "--against", str(bad),
                   "--results", str(results))
    wrong.assert_outcomes(failed=1)
    wrong.stdout.fnmatch_lines(["*--against *other-data: vanilla?synthetic-gru4rec-AR-ce?: the run's data "
                                "fingerprint * matches no reference*"])
