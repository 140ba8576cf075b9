"""The data of the smoke scale: a subset of each real dataset on which a few CPU minutes of training learn.

A smoke case must be cheap (CI trains every one of them on two cores) and still show that the model
learns: it has to beat most-popular with a paired per-user test at p < 0.01 (bench/test_vanilla.py).
A seeded sample of 1,000 random users does not: Amazon and Yelp users have 5-8 interactions, the
sample keeps ~5,500 items that occur ~1.3 times each, and nothing can be learnt about an item seen
once (test NDCG@10 0.000-0.007, below most-popular). So the subset is chosen for signal:

1. the catalogue: the ``items`` most frequent items of the dataset, every sequence restricted to them
   (order kept). Fewer items, each seen often enough to learn an embedding;
2. the users: the ``users`` longest restricted sequences ("most_active"), or a seeded sample
   ("random"). Long histories carry the sequential signal, and the item embeddings they train are
   shared by many users;
3. each user's last ``last`` items (a little more than the smoke window, so that the exclusion rules
   see nearly the same history and long users cost no more than they train);
4. a ``core``-core: items occurring fewer than ``core`` times and users with fewer than ``core`` items
   are dropped, repeatedly, until none is left; items are re-indexed 1..N'.

Per dataset (SMOKE_SUBSETS, with the reason of each choice beside it); a dataset without an entry
(one of a user's own) gets DEFAULT_SUBSET. The subsets are NOT comparable with the paper: they are
a different population (the most active users, the most popular items), chosen to make a regression
visible, not to reproduce a number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import SequenceDataset


@dataclass(frozen=True)
class SmokeSubset:
    users: int  # at most this many users
    pick: str = "most_active"  # "most_active" (longest sequences first, ties by user id) or "random" (seeded)
    items: int = 0  # > 0: only the this many most frequent items of the dataset (ties by item id)
    last: int = 60  # > 0: each user's last this many items
    core: int = 5  # items and users with fewer occurrences are dropped repeatedly

    def __post_init__(self):
        if self.pick not in ("most_active", "random"):
            raise ValueError(f"pick must be 'most_active' or 'random', got {self.pick!r}")
        if self.users < 1 or self.items < 0 or self.last < 0 or self.core < 0:
            raise ValueError(f"users must be positive and items, last, core non-negative: {self}")

    def describe(self) -> str:
        parts = [f"{self.users} {self.pick.replace('_', ' ')} users"]
        if self.items:
            parts.insert(0, f"top {self.items} items")
        if self.last:
            parts.append(f"last {self.last} items each")
        if self.core:
            parts.append(f"{self.core}-core")
        return ", ".join(parts)


# Measured on one CPU thread with the smoke schedule (cases.SCALES["smoke"]: 12 epochs, batch 64, lr 3e-3);
# tools/smoke_spread.py prints the table. Reasons for each choice:
#   * items 1000: on Amazon and Yelp, 1,000-3,000 most active users without an item cap keep 1,700-4,000
#     items; AE stayed at most-popular's level on sports (p 0.08-0.5 at 1,000-2,000 users) and was
#     marginal on yelp (p 0.003). With the 1,000 most frequent items every case is far past it.
#   * users 2000 (Amazon, Yelp): 20-30k interactions, ~20 CPU-seconds per case; 1,000 users were too
#     few for AE on sports and yelp.
#   * ml-1m: every user is long, so 1,000 users already give 60k interactions. Its most active users
#     with the whole catalogue left AE at most-popular's level (p 0.66); the 1,000-item cap fixes that.
#   * last 60 = the smoke window (50) + 10: training windows fill all 50 positions, so the positions
#     read at test time are trained (cut at exactly 50, every ml-1m training sequence had 48 items and
#     AE's [MASK] sat at a position no training step had used: AE below most-popular).
DEFAULT_SUBSET = SmokeSubset(users=2000, items=1000, last=60)
SMOKE_SUBSETS = {
    "beauty": DEFAULT_SUBSET,
    "sports": DEFAULT_SUBSET,
    "video": DEFAULT_SUBSET,
    "yelp": DEFAULT_SUBSET,
    "ml-1m": SmokeSubset(users=1000, items=1000, last=60),
}


def _interactions(ds: SequenceDataset) -> tuple[np.ndarray, np.ndarray]:
    """(user of each interaction, item of each interaction), in the dataset's order."""
    return np.repeat(np.arange(ds.num_users), ds.lengths), ds.items


def _core(users: np.ndarray, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Drop items with fewer than k interactions and users with fewer than k, until none is left."""
    while True:
        keep = np.bincount(items)[items] >= k
        keep &= np.bincount(users[keep], minlength=users.max() + 1 if len(users) else 0)[users] >= k
        if keep.all():
            return users, items
        users, items = users[keep], items[keep]


def smoke_subset(ds: SequenceDataset, spec: SmokeSubset, seed: int = 0, name: str | None = None) -> SequenceDataset:
    """The subset of ``ds`` described by ``spec`` (see the module docstring), items re-indexed 1..N'.

    Users keep their order in ``ds``; each user's items keep their order.

    Raises:
        ValueError: when nothing is left (the dataset is too small for the spec).
    """
    users, items = _interactions(ds)
    if spec.items and spec.items < ds.num_items:
        counts = np.bincount(items, minlength=ds.num_items + 1)
        counts[0] = -1
        top = np.argsort(-counts, kind="stable")[: spec.items]
        keep = np.zeros(ds.num_items + 1, dtype=bool)
        keep[top] = True
        users, items = users[keep[items]], items[keep[items]]
    lengths = np.bincount(users, minlength=ds.num_users)
    if spec.pick == "most_active":
        order = np.lexsort((np.arange(ds.num_users), -lengths))  # longest first, ties by user id
    else:
        order = np.random.default_rng(seed).permutation(ds.num_users)
    chosen = np.zeros(ds.num_users, dtype=bool)
    chosen[order[lengths[order] > 0][: spec.users]] = True
    users, items = users[chosen[users]], items[chosen[users]]
    if spec.last:
        ends = np.cumsum(np.bincount(users, minlength=ds.num_users))  # one past each user's last interaction
        keep = np.arange(len(users)) >= ends[users] - spec.last
        users, items = users[keep], items[keep]
    if spec.core:
        users, items = _core(users, items, spec.core)
    if not len(items):
        raise ValueError(f"{ds.name}: the smoke subset ({spec.describe()}) is empty")
    lengths = np.bincount(users, minlength=ds.num_users)
    lengths = lengths[lengths > 0]
    sub = SequenceDataset(name or ds.name, items, np.concatenate([[0], np.cumsum(lengths)]), ds.num_items,
                          source=ds.source)
    return sub.compact_items(name or f"{ds.name}[smoke: {spec.describe()}]")


def subset_for(dataset: str) -> SmokeSubset:
    return SMOKE_SUBSETS.get(dataset, DEFAULT_SUBSET)
