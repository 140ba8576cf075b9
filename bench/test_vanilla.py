"""Table 4: vanilla AE (BERT4Rec-like) vs AR (SASRec-like) on every dataset.

Each ``vanilla[<dataset>-<AE|AR>-ce]`` case trains (or reuses) one model per seed and asserts:
    * finite metrics;
    * clearly better than most-popular on the same split (paired per-user test at p < 0.01), at every
      scale: the smoke subsets are chosen so that a few epochs learn (sarbench/smoke.py);
    * at smoke scale: the model's and most-popular's test metrics, under both exclusion rules, equal
      the committed smoke baseline within its measured tolerance (sarbench/regression.py);
    * at --scale paper on the paper's version of the data: every metric within PAPER_BAND of the
      paper's cell.
Each ``direction[<dataset>-vanilla]`` case tests the paper's AR-vs-AE claim on that dataset with a
paired per-user test over all seeds (at --scale paper; at smoke scale it only reports).

``--model NAME`` runs only that registered model's cases; ``--against DIR`` also tests each case's
records user by user against the paper's AE and AR stored in DIR ("packaged": the references shipped
with sarbench), without training them (sarbench/compare.py).

Datasets: the embedded synthetic one, the paper's five and any declared in the data folder's
datasets.toml (``--datasets a,b`` selects). Models: the paper's self-attentive model as AE and AR,
and every other registered model (``vanilla[<dataset>-<model>-AR-ce]``, e.g. GRU4Rec) as a row beside
them in Table 4's report -- except Table 6's backbones, whose cases are in bench/test_hf.py.
"""

import pytest

from sarbench.compare import check_against
from sarbench.regression import check_direction, check_paper_band, check_record
from sarbench.cases import PAPER_DIRECTION
from sarbench.config import ATTENTIONS
from sarbench.designs import HF_BACKBONES, PAPER_MODEL, Case
from sarbench.paper import paper_cells

pytestmark = pytest.mark.vanilla


def pytest_generate_tests(metafunc):
    from sarbench.plugin import bench_datasets, bench_models

    datasets = bench_datasets(metafunc.config)  # synthetic needs no download; the others need --data-dir
    if metafunc.function.__name__ == "vanilla":
        models = bench_models(metafunc.config)  # --model NAME: that model only
        cases = [(d, PAPER_MODEL, a) for d in datasets for a in ATTENTIONS if any(m.name == PAPER_MODEL for m in models)]
        # Table 6's backbones (albert, llama, transfo_xl) are rows of their own table: bench/test_hf.py.
        others = [m for m in models if m.name not in (PAPER_MODEL, *HF_BACKBONES)]
        cases += [(d, m.name, a) for m in others for d in datasets for a in m.attentions]
        ids = [Case("vanilla", d, a, model=m).param_id for d, m, a in cases]
        metafunc.parametrize(("dataset", "model", "attention"), cases, ids=ids)
    elif metafunc.function.__name__ == "direction":
        metafunc.parametrize("dataset", datasets, ids=[f"{d}-vanilla" for d in datasets])


def _paper_values(dataset, attention):
    cells = paper_cells("vanilla")
    cells = cells[(cells.dataset == dataset) & (cells.attention == attention)]
    return dict(zip(cells.metric, cells.value))


def _paper_band(record):
    check_paper_band(record, _paper_values(record.dataset, record.attention))


def vanilla(dataset, model, attention, bench, run):
    records = []
    for seed in range(bench.seeds):
        record = run(table="vanilla", dataset=dataset, design="vanilla", attention=attention, seed=seed, model=model)
        check_record(record, bench, _paper_band)
        records.append(record)
    if bench.against:  # --against: the paper's AE and AR from their stored ranks, user by user
        check_against(records, bench)


def direction(dataset, bench, run):
    if bench.model and bench.model != PAPER_MODEL:
        pytest.skip(f"--model {bench.model}: only that model's cases run (the direction compares the paper's AE and AR)")
    runs = {a: [run(table="vanilla", dataset=dataset, design="vanilla", attention=a, seed=s)
                for s in range(bench.seeds)] for a in ATTENTIONS}
    check_direction(dataset, runs, bench, PAPER_DIRECTION.get(dataset), f"the paper makes no claim on {dataset}")
