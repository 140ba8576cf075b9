"""`sarbench report DIR` rebuilds the report from stored records without rerunning."""

from sarbench.cli import main
from sarbench.store import ResultStore, make_record


def _record(attention, ndcg):
    metrics = {f"{m}@{k}": ndcg * (1.5 if m == "R" else 1.0) for m in "RN" for k in (5, 10, 20)}
    return make_record(case_id=f"vanilla[ml-1m-{attention}-ce]", table="vanilla", dataset="ml-1m", model="bert4rec",
                       attention=attention, loss="ce", config={"d": 64}, fingerprint="a9a8b31b429b8e0d", seed=0,
                       scale="paper", metrics=metrics, per_user={"users": [0, 1, 2], "rank": [0, 3, 50]},
                       code_version="test")


def test_report_command_writes_tables_with_paper_values(tmp_path, capsys):
    store = ResultStore(tmp_path / "results")
    store.write(_record("AE", 0.10))
    store.write(_record("AR", 0.15))
    out = tmp_path / "reports"
    assert main(["report", str(tmp_path / "results"), "--out", str(out)]) == 0
    table = (out / "table4_vanilla_paper.md").read_text()
    assert "ml-1m" in table and "0.1738" in table  # the paper's AR NDCG@10 beside ours
    assert (out / "table4_vanilla_paper.csv").exists() and (out / "table4_vanilla_paper.tex").exists()
    assert "+50.00%" in capsys.readouterr().out  # our mean AR-over-AE gain: 0.15 vs 0.10


def test_report_command_missing_folder_fails_clearly(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 1
    assert "does not exist" in capsys.readouterr().err
