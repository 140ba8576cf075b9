"""Tuned presets: search a case, retrain its best configuration as a normal case, keep both in a file.

:func:`tune_case` is the whole pipeline (``sarbench tune``): run the search (:mod:`.tune`), take the
best trial (the authors' rule: last reported validation Recall@10), train that configuration from
scratch as an ordinary benchmark case (``sarbench.cases.run_case``: the case's protocol, early
stopping, the test of the best state, a record in the results store), and write a *preset file*.

A preset file, ``<presets>/<dataset>/<design>-<attention>.json`` (a Table-6 backbone's design is its
name: ``llama-AR.json``), holds the overrides to apply on
top of the design preset, and its provenance: the search space and protocol, every trial's
reports and how it ended, the best trial and the selection rule, the data fingerprint and
statistics, the results version and the hash of the result-determining source
(:mod:`sarbench.provenance`), the commit, Ray's version, and the retrained record's key and
metrics. The folder is ``presets/`` of the working directory unless ``$SARBENCH_PRESETS`` or an
argument names another; commit the files you want to share.

Benchmark cases load a preset by name: ``run_case(..., **tuned_case_kwargs(dataset, design,
attention))`` applies it and records ``extra["tuned_preset"]``; reports mark such rows "tuned".

The retrain is the case's protocol, so a tuned row is comparable with the untuned rows of the same
table: for the design space and the HF backbones that is the authors' rerun (protocol.md section 3:
up to 2000 epochs, validation every 5, patience 10 validations); for the vanilla network the
paper's Table-4 protocol (up to 1000 epochs, validation every epoch, patience 20).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..cases import SCALES, DataCache, Scale, run_case
from ..designs import DESIGNS, HF_BACKBONES, table_of
from ..data import DATASETS, SequenceDataset
from ..provenance import source_hash
from ..store import ResultRecord, ResultStore, code_version
from ..train import UNFINISHED
from .defaults import DEFAULT_PRESETS, METRIC, PRESETS_ENV
from .spaces import SpaceError, check_overrides, split_overrides
from .trial import SearchConfig, base_configs, case_results_version, model_class
from .tune import Resources, SearchOutcome, run_search

SCHEMA = 1


def presets_dir(folder: str | os.PathLike | None = None) -> Path:
    """The presets folder: ``folder``, else ``$SARBENCH_PRESETS``, else ``presets`` (working directory)."""
    return Path(folder or os.environ.get(PRESETS_ENV) or DEFAULT_PRESETS)


def preset_name(dataset: str, design: str, attention: str) -> str:
    return f"{dataset}/{design}-{attention}"


def preset_path(folder: str | os.PathLike | None, dataset: str, design: str, attention: str) -> Path:
    return presets_dir(folder) / dataset / f"{design}-{attention}.json"


def case_table(design: str) -> str:
    """The paper table a design's case fills: vanilla (Table 4), design (Table 5) or hf (Table 6)."""
    return table_of(design)


@dataclass(frozen=True)
class TunedPreset:
    """A preset file as cases use it: its name, overrides and the data it was tuned on."""

    name: str
    path: Path
    model: dict
    train: dict
    fingerprint: str
    space: str

    def case_kwargs(self) -> dict:
        """Keyword arguments of ``run_case`` that apply this preset."""
        return {"model_overrides": dict(self.model), "train_overrides": dict(self.train), "tuned_preset": self.name}


def read_preset(path: str | os.PathLike) -> TunedPreset:
    """A preset file, checked (schema, overrides that name searchable fields with typed values)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SpaceError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise SpaceError(f"{path}: not a tuned preset of schema {SCHEMA} (schema {doc.get('schema')!r})"
                         if isinstance(doc, dict) else f"{path}: not a tuned preset")
    over = doc.get("overrides")
    if not isinstance(over, dict) or set(over) != {"model", "train"}:
        raise SpaceError(f"{path}: 'overrides' must hold 'model' and 'train'")
    cls = model_class(str((doc.get("case") or {}).get("design", "")))
    model, train = split_overrides(check_overrides({**over["model"], **over["train"]}, str(path), cls), cls)
    if set(model) != set(over["model"]) or set(train) != set(over["train"]):
        raise SpaceError(f"{path}: an override is filed under the wrong config ('model' or 'train')")
    return TunedPreset(name=doc["name"], path=path, model=model, train=train,
                       fingerprint=doc["data"]["fingerprint"], space=doc["search"]["space"]["name"])


def tuned_overrides(dataset: str, design: str, attention: str,
                    folder: str | os.PathLike | None = None) -> TunedPreset | None:
    """The tuned preset of (dataset, design, attention), or None when there is no preset file."""
    path = preset_path(folder, dataset, design, attention)
    return read_preset(path) if path.is_file() else None


def tuned_case_kwargs(dataset: str, design: str, attention: str, folder: str | os.PathLike | None = None) -> dict:
    """``run_case`` keyword arguments applying the tuned preset of this case ({} when there is none)."""
    found = tuned_overrides(dataset, design, attention, folder)
    return found.case_kwargs() if found else {}


# --- writing ---------------------------------------------------------------------------------------
def best_overrides(outcome: SearchOutcome) -> tuple[dict, dict]:
    """(model overrides, train overrides) of the best trial: its grid point, the fixed and tied values."""
    if outcome.best is None:
        raise ValueError(f"search {outcome.name} has no best trial (complete: {outcome.complete})")
    return split_overrides(outcome.search.space.overrides(outcome.best.point), model_class(outcome.search.design))


def _record_summary(record: ResultRecord | None, store: ResultStore | None) -> dict | None:
    if record is None:
        return None
    extra = record.extra or {}
    return {"key": record.key, "case_id": record.case_id, "scale": record.scale, "seed": record.seed,
            "file": store.path_for(record).name if store else None, "epochs": record.epochs,
            "best_epoch": extra.get("best_epoch"), "stopped": extra.get("stopped"),
            "exclusion": extra.get("exclusion"), "valid": record.valid_metrics, "test": record.metrics,
            "test_by_rule": extra.get("metrics_by_rule"), "wall_time_s": record.wall_time_s}


def preset_document(outcome: SearchOutcome, data: SequenceDataset, record: ResultRecord | None = None,
                    store: ResultStore | None = None) -> dict:
    """The preset file's content for a finished search (and its retrained record, if any)."""
    search = outcome.search
    model, train = best_overrides(outcome)
    _, train_cfg = base_configs(search, data.num_items, data.num_users)
    info = DATASETS.get(search.dataset)
    rule = ("last reported" if search.best_scope == "last" else "best reported") + f" {METRIC}"
    return {
        "schema": SCHEMA,
        "name": preset_name(search.dataset, search.design, search.attention),
        "case": {"dataset": search.dataset, "design": search.design, "attention": search.attention,
                 "table": case_table(search.design)},
        "overrides": {"model": model, "train": train},
        "best": {"trial_id": outcome.best.trial_id, "point": outcome.best.point, "rule": rule,
                 "ray_scope": search.best_scope, "value": outcome.best.last if search.best_scope == "last"
                 else outcome.best.best, "reports": len(outcome.best.reports)},
        "retrained": _record_summary(record, store),
        "search": {**search.as_dict(), "metric": METRIC, "exclusion": train_cfg.exclusion, "rungs": search.rungs(),
                   "epochs_per_report": search.eval_every, "trials": search.space.size,
                   "experiment": outcome.name},
        "trials": [t.as_dict() for t in outcome.trials],
        "data": {"dataset": data.name, "fingerprint": data.fingerprint(), "stats": data.stats().as_dict(),
                 "paper_version": bool(info and info.paper_fingerprint == data.fingerprint())},
        "provenance": {"results_version": case_results_version(search), "source_hash": source_hash(),
                       "code_version": code_version(), "ray_version": outcome.ray_version,
                       "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")},
        "notes": list(outcome.notes),
    }


def write_preset(document: dict, folder: str | os.PathLike | None = None) -> Path:
    """Write a preset document atomically to its place under the presets folder; returns the path."""
    case = document["case"]
    path = preset_path(folder, case["dataset"], case["design"], case["attention"])
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=1, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)
    return path


# --- the pipeline ------------------------------------------------------------------------------------
@dataclass
class TuneResult:
    outcome: SearchOutcome
    record: ResultRecord | None = None
    preset: Path | None = None

    @property
    def interrupted(self) -> bool:
        """The search or the retrain did not finish (no preset was written; the same call resumes it)."""
        unfinished_retrain = self.record is not None and (self.record.extra or {}).get("stopped") in UNFINISHED
        return not self.outcome.complete or unfinished_retrain


def tune_case(search: SearchConfig, *, results: str | os.PathLike = "results", data: DataCache | None = None,
              data_dir: str | os.PathLike | None = None, scale: Scale | None = None,
              presets: str | os.PathLike | None = None, storage: str | os.PathLike | None = None,
              name: str | None = None, resources: Resources = Resources(), device: str = "cpu",
              retrain: bool = True, progress: bool = True, callbacks=()) -> TuneResult:
    """Search ``search``, retrain the best configuration as a normal case, write the preset file.

    Args:
        search: the case, space and protocol (see :class:`~sarbench.search.trial.SearchConfig`).
        results: results folder of the retrained case's record (and, by default, of the search:
            ``<results>/tune``).
        data, data_dir: a :class:`~sarbench.cases.DataCache`, or the real-data folder to make one.
        scale: the scale of the search data and the retrain (default ``SCALES[search.scale]``).
        presets: the presets folder (see :func:`presets_dir`).
        storage: where Ray keeps the search; a path every node of a cluster sees (or a URI).
        retrain: False writes the preset without the retrained record.
    Returns a :class:`TuneResult`; ``preset`` is None when the search or the retrain was interrupted
    (``interrupted``; run again to resume: finished trials are kept, the retrain continues from its checkpoint).
    """
    scale = scale or SCALES[search.scale]
    if scale.name != search.scale:
        raise ValueError(f"scale {scale.name!r} differs from the search's {search.scale!r}")
    data = data or DataCache(data_dir)
    ds = data.get(search.dataset, scale)
    results = Path(results)
    outcome = run_search(search, ds, storage=storage or results / "tune", name=name, resources=resources,
                         progress=progress, callbacks=callbacks)
    if not outcome.complete or outcome.best is None:
        return TuneResult(outcome)
    model, train = best_overrides(outcome)
    record = None
    store = ResultStore(results)
    if retrain:
        backbone = search.design in HF_BACKBONES  # Table 6: the backbone's own case, as the benchmark runs it
        record = run_case(table=case_table(search.design), dataset=search.dataset,
                          design="vanilla" if backbone else search.design, model=search.design if backbone else "sar",
                          attention=search.attention, seed=search.seed, scale=scale, device=device, data=data,
                          store=store, checkpoints=results / "checkpoints", model_overrides=model,
                          train_overrides=train, variant=None if backbone else DESIGNS[search.design].variant,
                          tuned_preset=preset_name(search.dataset, search.design, search.attention),
                          catch_interrupt=True)
        if record.extra.get("stopped") in UNFINISHED:  # a preset only from a retrain that finished
            return TuneResult(outcome, record)
    path = write_preset(preset_document(outcome, ds, record, store), presets)
    return TuneResult(outcome, record, path)


__all__ = ["PRESETS_ENV", "TunedPreset", "TuneResult", "best_overrides", "case_table", "preset_document",
           "preset_name", "preset_path", "presets_dir", "read_preset", "tune_case", "tuned_case_kwargs",
           "tuned_overrides", "write_preset"]
