"""Tables 2-3 and Figures 1, 2, 3, 5: the attention of trained Vanilla-AE, Local-AE and Vanilla-AR.

Per dataset, three models are trained or reused: the vanilla benchmark's ``vanilla[<d>-AE-ce]`` and
``vanilla[<d>-AR-ce]`` cases, and ``analysis[<d>-local-AE-ce]`` (the AE network whose last head only
sees |i - j| <= 2). The attention of up to 1,000 test users per model is measured
(:mod:`sarbench.analysis`): L1/L2 sparsity (Table 2), noise-based hard-threshold rank
(Table 3), mean attention distance and singular values (Figures 3 and 5).

Cases:
    test_sparsity_order[<d>]: the paper's claim Vanilla-AR < Local-AE < Vanilla-AE (sparser to the
        left), asserted at --scale paper; at smoke scale it only reports (skips with the numbers).
    test_rank_order[<d>]: the paper's claim that Vanilla-AE has the lowest rank, likewise.
    test_attention_tables: writes Tables 2 and 3 beside the paper's into <report-dir>/analysis/.
    test_attention_figures: writes Figures 1, 2, 3 and 5 into <report-dir>/figures/.
Every case first checks that the measures are possible for row-stochastic attention (bounds of S, k
and the distance), which fails on a broken capture or crop at any scale.

A plain ``pytest`` (CI) studies the synthetic dataset and ml-1m; ``-m analysis`` or ``--datasets``
every dataset at hand.
"""

from __future__ import annotations

import numpy as np
import pytest

from sarbench.analysis import (
    MODELS,
    SIGMA,
    case_kwargs,
    check_sane,
    measure_values,
    pick_user,
    rank_order,
    singular_spectrum,
    sparsity_order,
    study_case,
    summary_frame,
    user_attention,
    write_study_tables,
)
from sarbench.cases import load_model
from sarbench.data import DATASETS, is_paper_data
FIG3_DATASETS = ("ml-1m", "beauty")  # the paper's Figure 3
FIG12_DATASET = "ml-1m"  # the paper's Figure 2 (and the user of Figure 1)

pytestmark = pytest.mark.analysis


def pytest_generate_tests(metafunc):
    if "dataset" in metafunc.fixturenames:
        # synthetic needs no download; the paper's five need --data-dir; --datasets selects
        metafunc.parametrize("dataset", _study_datasets(metafunc.config))


CI_DATASETS = ("synthetic", "ml-1m")  # a plain `pytest`: the embedded data and the paper's Figure 2 dataset


def _study_datasets(config) -> list[str]:
    """Every dataset at hand with ``-m analysis`` or ``--datasets``; else (a plain ``pytest``, CI)
    only CI_DATASETS: the study adds a Local-AE model per dataset."""
    from sarbench.plugin import table_datasets

    return table_datasets(config, "analysis", default=CI_DATASETS)


class DatasetStudy:
    """The three models of one dataset: records, measures and the data they ran on."""

    def __init__(self, name, data, records, measures):
        self.name, self.data, self.records, self.measures = name, data, records, measures

    def summary(self, key):
        return {m: self.measures[m].summary()[key] for m in MODELS}

    def per_user(self, measure):
        return {m: self.measures[m].per_user(measure) for m in MODELS}

    def items(self):
        return [(m, self.records[m], self.measures[m]) for m in MODELS]


class Study:
    """Trains/reuses and measures each dataset once per session; remembers why a dataset was skipped."""

    def __init__(self, bench, run, config):
        self.bench, self.run, self.bench_config = bench, run, config
        self.done: dict[str, object] = {}

    def get(self, dataset) -> DatasetStudy:
        got = self.done.get(dataset)
        if isinstance(got, DatasetStudy):
            return got
        if isinstance(got, str):
            pytest.skip(got)
        try:
            records = {m: self.run(**case_kwargs(m, dataset)) for m in MODELS}
            data = self.bench.data.get(dataset, self.bench.scale)
            measures = {}
            for m, rec in records.items():
                try:
                    measures[m] = study_case(self.bench.store, rec, data, m, refresh=self.bench.rerun)
                except FileNotFoundError as exc:
                    pytest.skip(str(exc))
        except pytest.skip.Exception as exc:
            self.done[dataset] = str(exc.msg)
            raise
        for m in MODELS:
            problems = check_sane(measures[m], heads=_load_heads(records[m]))
            assert not problems, f"{dataset} {m}: impossible attention measures: " + "; ".join(problems)
        self.done[dataset] = DatasetStudy(dataset, data, records, measures)
        return self.done[dataset]

    def available(self) -> list[DatasetStudy]:
        out = []
        for d in _study_datasets(self.bench_config):
            try:
                out.append(self.get(d))
            except pytest.skip.Exception:
                pass
        return out


def _load_heads(record):
    return int(record.config["model"]["heads"])


@pytest.fixture(scope="session")
def study(bench, run, pytestconfig):
    return Study(bench, run, pytestconfig)


def _verdict(dataset, check, what, bench, fingerprint):
    if bench.scale.name != "paper":
        pytest.skip(f"smoke scale cannot judge the paper's {what} claim ({check.claim}); found: {check.found}")
    if dataset not in DATASETS:
        pytest.skip(f"the paper makes no {what} claim on {dataset}; found: {check.found}")
    note = "" if is_paper_data(dataset, fingerprint) else " (note: not the paper's version of the data)"
    assert check.holds, f"paper: {check.claim} on {dataset}; we found {check.found}{note}"


def test_sparsity_order(dataset, bench, study):
    s = study.get(dataset)
    check = sparsity_order(s.summary("sparsity"), s.per_user("sparsity"), reference=s.summary("ref_sparsity"))
    _verdict(dataset, check, "sparsity", bench, s.records["vanilla-AR"].fingerprint)


def test_rank_order(dataset, bench, study):
    s = study.get(dataset)
    check = rank_order(s.summary("rank"), s.per_user("rank"), reference=s.summary("ref_rank"))
    _verdict(dataset, check, "rank", bench, s.records["vanilla-AR"].fingerprint)


def test_attention_tables(bench, study):
    studies = study.available()
    if not studies:
        pytest.skip("no dataset could be studied: " + "; ".join(f"{d}: {r}" for d, r in study.done.items()))
    frame = summary_frame([item for s in studies for item in s.items()])
    paths = write_study_tables(frame, bench.report_dir / "analysis", sigma=SIGMA)
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    assert len(frame) == 3 * len(studies)
    for s in studies:  # the table holds exactly what was measured
        for measure in ("sparsity", "rank"):
            values = measure_values(frame, s.name, measure)
            assert values == pytest.approx(s.summary(measure))


def _figure_dataset(studies, preferred):
    names = {s.name: s for s in studies}
    if preferred in names:
        return names[preferred], ""
    fallback = next((s for s in studies if s.name != "synthetic"), studies[0])
    return fallback, f"({preferred} is not available here; shown: {fallback.name})"


def _user_maps(bench, s, user, models=MODELS):
    split = s.data.split()
    maps = {}
    for m in models:
        model = load_model(bench.store, s.records[m])
        assert model is not None, f"{s.name} {m}: trained weights are missing"
        maps[m] = user_attention(model, split, user)
    return maps


def test_attention_figures(bench, study):
    from sarbench.analysis.figures import figure_attention, figure_locality, figure_low_rank, figure_spectra

    studies = study.available()
    if not studies:
        pytest.skip("no dataset could be studied: " + "; ".join(f"{d}: {r}" for d, r in study.done.items()))
    out = bench.report_dir / "figures"
    scale_note = "" if bench.scale.name == "paper" else f"{bench.scale.name} scale: NOT comparable with the paper"
    paths = []

    s, fallback = _figure_dataset(studies, FIG12_DATASET)
    ar = s.measures["vanilla-AR"]
    user = pick_user(ar.users, ar.lengths)
    maps = _user_maps(bench, s, user)
    for m, (attn, _) in maps.items():  # the figure shows the matrices the tables measured
        row = int(np.flatnonzero(s.measures[m].users == user)[0])
        assert attn.shape[-1] == s.measures[m].lengths[row]
        assert np.allclose(attn.sum(-1), 1.0, atol=1e-4), f"{m}: attention rows do not sum to 1"
    note = "; ".join(x for x in (fallback, scale_note) if x)
    paths += figure_attention(maps, dataset=s.name, user=user, out_dir=out, note=note)
    paths += figure_low_rank(maps, dataset=s.name, user=user, out_dir=out, sigma=SIGMA, note=note)

    spectra, users, notes = {}, {}, []
    for preferred in FIG3_DATASETS:
        s, fallback = _figure_dataset(studies, preferred)
        if s.name in spectra:
            continue
        notes.append(fallback)
        ar = s.measures["vanilla-AR"]
        users[s.name] = pick_user(ar.users, ar.lengths)
        one = _user_maps(bench, s, users[s.name], models=("vanilla-AE", "vanilla-AR"))
        spectra[s.name] = {m: (singular_spectrum(one[m][0], one[m][0].shape[-1]).numpy(), s.measures[m].spectrum)
                           for m in ("vanilla-AE", "vanilla-AR")}
    note = "; ".join(x for x in (*notes, scale_note) if x)
    paths += figure_spectra(spectra, users=users, out_dir=out, note=note)

    frame = summary_frame([item for s in studies for item in s.items()])
    paths += figure_locality(frame, out_dir=out, note=scale_note)
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths), [str(p) for p in paths]
