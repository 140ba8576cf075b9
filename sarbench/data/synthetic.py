"""The embedded default dataset: seeded synthetic sequences with planted sequential structure.

Two planted signals, as in real interaction logs:
  * short-term: the next item often depends on the last item (a sparse first-order transition table
    with a few successors per item), sometimes on the item before it (a second table);
  * long-term: otherwise the item comes from the user's taste, one of ``clusters`` groups of items,
    with Zipf popularity inside the group (and, rarely, from the whole catalogue).
A most-popular baseline sees only popularity. AR models pick up the transitions almost at once (the
last item sits in the residual stream of the predicting position); AE models predict a [MASK]ed slot
and must learn to attend to its neighbours, which takes longer, but the user's taste is visible to
any attention pattern. On this data both clearly beat most-popular after a short CPU training; the
default size trains in about a minute on a laptop CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .sequences import SequenceDataset


@dataclass(frozen=True)
class SyntheticConfig:
    num_users: int = 2000
    num_items: int = 400
    min_length: int = 8
    max_length: int = 60
    successors: int = 4  # successors per item in each transition table
    p_first_order: float = 0.4  # next item from the last item's successors
    p_second_order: float = 0.1  # next item from the second-to-last item's successors
    zipf_exponent: float = 1.0  # popularity skew of the fallback and of the start items
    clusters: int = 20  # taste groups of items; each user has one
    p_taste: float = 0.9  # share of non-transition items drawn from the user's group (else catalogue)
    seed: int = 0


def make_synthetic(config: SyntheticConfig = SyntheticConfig(), name: str = "synthetic") -> SequenceDataset:
    cfg = config
    if cfg.p_first_order + cfg.p_second_order > 1:
        raise ValueError("p_first_order + p_second_order must be at most 1")
    if not (2 <= cfg.min_length <= cfg.max_length):
        raise ValueError("need 2 <= min_length <= max_length")
    rng = np.random.default_rng(cfg.seed)
    n = cfg.num_items
    popularity = 1.0 / np.arange(1, n + 1) ** cfg.zipf_exponent
    popularity /= popularity.sum()
    popularity = popularity[rng.permutation(n)]  # popular items are not simply the low ids

    def transition_table():
        succ = rng.integers(0, n, size=(n, cfg.successors))
        weights = rng.dirichlet(np.ones(cfg.successors), size=n)
        return succ, np.cumsum(weights, axis=1)

    succ1, cum1 = transition_table()
    succ2, cum2 = transition_table()
    group_of = rng.integers(0, cfg.clusters, size=n)
    groups = [np.nonzero(group_of == g)[0] for g in range(cfg.clusters)]
    group_p = [popularity[m] / popularity[m].sum() if len(m) else None for m in groups]

    lengths = rng.integers(cfg.min_length, cfg.max_length + 1, size=cfg.num_users)
    sequences = []
    for length in lengths:
        taste = rng.integers(0, cfg.clusters)
        while not len(groups[taste]):
            taste = rng.integers(0, cfg.clusters)
        seq = np.empty(length, dtype=np.int64)
        mode = rng.random(length)
        pick = rng.random(length)
        fallback = np.where(
            rng.random(length) < cfg.p_taste,
            rng.choice(groups[taste], size=length, p=group_p[taste]),
            rng.choice(n, size=length, p=popularity),
        )
        seq[0] = fallback[0]
        for t in range(1, length):
            if mode[t] < cfg.p_first_order:
                last = seq[t - 1]
                seq[t] = succ1[last, np.searchsorted(cum1[last], pick[t])]
            elif mode[t] < cfg.p_first_order + cfg.p_second_order and t >= 2:
                prev = seq[t - 2]
                seq[t] = succ2[prev, np.searchsorted(cum2[prev], pick[t])]
            else:
                seq[t] = fallback[t]
        sequences.append(np.minimum(seq, n - 1) + 1)  # items 1..n, 0 is padding

    ds = SequenceDataset.from_sequences(name, sequences, num_items=n, source=f"synthetic {cfg}")
    # Items that never occur would make stats() disagree with num_items; re-index to the used ones.
    return ds.compact_items()
