"""From raw interactions to chronological item sequences, as the paper and SASRec preprocess.

The paper (Sec. 2.2.1) follows common practice: "remove users and items with fewer than 5
interactions" and explicitly does *not* use k-core filtering. The SASRec script that made the
Beauty, Video and ML-1M files the paper's Table 1 matches does exactly this:

1. count every user's and every item's interactions in the raw data (each line counts, repeated
   user-item pairs included);
2. drop every interaction whose user has fewer than ``min_count`` interactions or whose item has
   fewer than ``min_count`` interactions -- **one pass**: the counts are not recomputed, so after the
   pass some users and items can have fewer than ``min_count`` left (that is expected);
3. order each user's remaining interactions by timestamp; ties keep the order of the input lines
   (a stable sort, as Python's ``list.sort`` in the SASRec script);
4. number users 0..U-1 in order of their first remaining interaction in the input, and items 1..N
   (0 is the padding id) in the order chosen by ``item_order``.

``iterate=True`` repeats step 2 with fresh counts until nothing changes (the iterated k-core of
S3-Rec's preprocessing; *not* what the paper did).

``item_order``:

``"first_seen"``
    order of first appearance among the remaining input lines (the SASRec Amazon script, which
    numbers items while it reads the review file);
``"sequence"``
    order of first appearance in the output, users in order and each user chronologically (the
    layout of SASRec's ``ml-1m.txt``, where items appear as 1, 2, 3, ... reading the file top down);
``"sorted"``
    ascending original id.

The item numbering changes the fingerprint but not the statistics or what a model can learn.
Whether preprocessing a raw download reproduces a published file exactly also depends on the raw
file's line order (tie-breaks among equal timestamps); compare fingerprints to know.

The already-preprocessed files (``pairs``/``lines`` formats, read by :mod:`sarbench.data.readers`)
never go through this module: filtering them again would change them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .raw import Interactions
from .sequences import SequenceDataset

log = logging.getLogger(__name__)

ITEM_ORDERS = ("first_seen", "sequence", "sorted")


@dataclass(frozen=True, eq=False)
class Preprocessed:
    """A preprocessed dataset with the original ids of its users and items.

    ``user_ids[u]`` is the original id of user ``u`` (row ``u`` of ``dataset``); ``item_ids[j - 1]``
    is the original id of item ``j`` (items are 1..N). ``dropped`` counts the removed interactions,
    ``passes`` the filtering passes made (1 unless ``iterate``).
    """

    dataset: SequenceDataset
    user_ids: np.ndarray
    item_ids: np.ndarray
    dropped: int
    passes: int


def _first_appearance_rank(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(new code per element, distinct old codes in new order): codes renumbered 0.. by first appearance."""
    uniq, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[order] = np.arange(len(uniq))
    return rank[inverse], uniq[order]


def filter_min_count(
    interactions: Interactions, min_count: int = 5, iterate: bool = False
) -> tuple[np.ndarray, int]:
    """Mask of the interactions kept by the "fewer than ``min_count``" filter, and the passes made.

    One pass (default): counts over all interactions, then drop. ``iterate=True``: repeat with the
    counts of what is left until no interaction is dropped.
    """
    if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) or min_count < 1:
        raise ValueError(f"min_count must be a positive integer, got {min_count!r}")
    u, i = interactions.user, interactions.item
    keep = np.ones(len(u), dtype=bool)
    passes = 0
    while True:
        passes += 1
        user_count = np.bincount(u[keep], minlength=len(interactions.user_ids))
        item_count = np.bincount(i[keep], minlength=len(interactions.item_ids))
        new_keep = keep & (user_count[u] >= min_count) & (item_count[i] >= min_count)
        changed = bool(np.any(new_keep != keep))
        keep = new_keep
        if not iterate or not changed:
            return keep, passes


def preprocess_with_ids(
    interactions: Interactions,
    name: str,
    min_count: int = 5,
    iterate: bool = False,
    item_order: str = "first_seen",
) -> Preprocessed:
    """Filter, sort and re-index ``interactions`` (see the module docstring); keeps the original ids."""
    if item_order not in ITEM_ORDERS:
        raise ValueError(f"item_order must be one of {', '.join(ITEM_ORDERS)}, got {item_order!r}")
    source = interactions.source or name
    if len(interactions) == 0:
        raise ValueError(f"{source}: no interactions to preprocess")
    keep, passes = filter_min_count(interactions, min_count, iterate)
    rows = np.flatnonzero(keep)  # input order
    if len(rows) == 0:
        raise ValueError(
            f"{source}: no interactions left after dropping users and items with fewer than {min_count} "
            f"interactions ({'iterated' if iterate else 'one pass'}); {len(interactions)} were read"
        )
    user_rank, user_codes = _first_appearance_rank(interactions.user[rows])
    ts = interactions.timestamp[rows]
    # user first, then time, then input line: np.lexsort sorts by the last key first
    order = np.lexsort((np.arange(len(rows)), ts, user_rank))
    item_codes_sorted = interactions.item[rows][order]

    if item_order == "first_seen":
        _, item_codes = _first_appearance_rank(interactions.item[rows])
    elif item_order == "sequence":
        _, item_codes = _first_appearance_rank(item_codes_sorted)
    else:
        distinct = np.unique(interactions.item[rows])
        original = interactions.item_ids[distinct]
        try:
            item_codes = distinct[np.argsort(original, kind="stable")]
        except TypeError:
            raise ValueError(f"{source}: item ids of mixed types cannot be sorted; use another item_order") from None
    new_id = np.zeros(len(interactions.item_ids), dtype=np.int64)
    new_id[item_codes] = np.arange(1, len(item_codes) + 1)

    counts = np.bincount(user_rank, minlength=len(user_codes))
    dataset = SequenceDataset(
        name=name,
        items=new_id[item_codes_sorted],
        offsets=np.concatenate([[0], np.cumsum(counts)]),
        num_items=len(item_codes),
        source=f"{source} (preprocessed: min_count={min_count}, "
        f"{'iterated' if iterate else 'one pass'}, item_order={item_order})",
    )
    dropped = len(interactions) - len(rows)
    log.info("%s: kept %d of %d interactions (%d users, %d items) after %d pass(es)", source, len(rows),
             len(interactions), dataset.num_users, dataset.num_items, passes)
    return Preprocessed(
        dataset=dataset,
        user_ids=interactions.user_ids[user_codes],
        item_ids=interactions.item_ids[item_codes],
        dropped=dropped,
        passes=passes,
    )


def preprocess(
    interactions: Interactions,
    name: str,
    min_count: int = 5,
    iterate: bool = False,
    item_order: str = "first_seen",
) -> SequenceDataset:
    """Raw interactions to a :class:`SequenceDataset` as the paper/SASRec do (see the module docstring).

    >>> from sarbench.data.raw import Interactions
    >>> rows = [("a", "x", 3), ("a", "y", 1), ("b", "x", 2), ("a", "x", 1)]
    >>> ds = preprocess(Interactions.from_records(rows), "toy", min_count=1)
    >>> [ds.sequence(u).tolist() for u in range(ds.num_users)]
    [[2, 1, 1], [1]]
    """
    return preprocess_with_ids(interactions, name, min_count, iterate, item_order).dataset


def write_pairs(dataset: SequenceDataset, path) -> Path:
    """Write ``dataset`` in the SASRec ``pairs`` format (users 1..U, items 1..N, chronological).

    Reading the file back with :func:`sarbench.data.readers.read_pairs` gives a dataset with the same
    fingerprint when every user has at least one item and every item 1..N occurs, which always holds
    for the output of :func:`preprocess`; so a raw download needs preprocessing only once.
    """
    path = Path(path)
    users = np.repeat(np.arange(1, dataset.num_users + 1), dataset.lengths)
    tmp = path.with_name(path.name + ".tmp")
    np.savetxt(tmp, np.stack([users, dataset.items], axis=1), fmt="%d")
    tmp.replace(path)
    return path
