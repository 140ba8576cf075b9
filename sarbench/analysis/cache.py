"""One stored case of the attention study, analysed once: its measures cached next to the results store."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from .study import ANALYSIS_VERSION, MAX_USERS, SIGMA, AttentionMeasures, analyse_model

log = logging.getLogger(__name__)

__all__ = ["study_case"]


def _cache_path(folder: Path, record, max_users: int, seed: int, sigma: float) -> Path:
    params = json.dumps({"v": ANALYSIS_VERSION, "users": max_users, "seed": seed, "sigma": sigma,
                         "trained": record.timestamp}, sort_keys=True)
    tag = hashlib.sha256(params.encode()).hexdigest()[:10]
    return folder / "analysis" / f"{record.key}-{tag}.npz"


def study_case(store, record, dataset, model_label: str, *, max_users: int = MAX_USERS, seed: int = 0,
               sigma: float = SIGMA, refresh: bool = False) -> AttentionMeasures:
    """The measures of a stored case: computed from its kept weights, or read from the cache.

    The cache lives next to the results store (``<store>/analysis/<record key>-<params>.npz``). A
    record key changes with the configuration, the data and the code version, and the parameters
    include the record's timestamp (a retrained case), so a stale analysis is not reused.

    Args:
        store: the :class:`~sarbench.store.ResultStore` of the record.
        record: the case's :class:`~sarbench.store.ResultRecord`.
        dataset: the :class:`~sarbench.data.SequenceDataset` the case trained on (its split is used).
        model_label: one of :data:`MODELS` (kept in ``info``).
        refresh: recompute even when a cached analysis exists.

    Raises:
        FileNotFoundError: when the case's trained weights were not kept (rerun the case).
    """
    from ..cases import load_model, model_path

    path = _cache_path(Path(store.folder), record, max_users, seed, sigma)
    if path.exists() and not refresh:
        try:
            return AttentionMeasures.load(path)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("cached analysis %s is unreadable (%s); recomputing", path, exc)
    model = load_model(store, record)
    if model is None:
        raise FileNotFoundError(
            f"{record.case_id} seed {record.seed}: no trained weights at {model_path(store, record.key)}; "
            f"rerun the case (pytest ... --rerun) to keep them")
    info = {"model": model_label, "dataset": record.dataset, "case_id": record.case_id, "key": record.key,
            "scale": record.scale, "fingerprint": record.fingerprint, "N@10": record.metrics.get("N@10")}
    measures = analyse_model(model, dataset.split(), max_users=max_users, seed=seed, sigma=sigma, info=info)
    measures.save(path)
    return measures
