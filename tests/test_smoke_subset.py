"""The smoke subset: most active users, most frequent items, each user's last items, a k-core."""

import numpy as np
import pytest

from sarbench.data import SequenceDataset, SyntheticConfig, make_synthetic
from sarbench.smoke import SmokeSubset, smoke_subset


def _sequences(ds):
    return [ds.sequence(u).tolist() for u in range(ds.num_users)]


def test_most_active_users_top_items_last_items_and_core_by_hand():
    ds = SequenceDataset.from_sequences("toy", [
        [1, 2, 3, 1, 2],
        [2, 3, 4, 2, 3, 1],
        [4],
        [3, 1, 2, 3, 2, 4, 4],
    ], num_items=4)
    # Top 3 items: 2 (6 times), 3 (5), 1 (4); item 4 (4 times, a tie with 1) loses on its id.
    # Restricted: [1,2,3,1,2], [2,3,2,3,1], [], [3,1,2,3,2]: all three non-empty users have 5 items,
    # so the 2 most active are users 0 and 1 (ties by user id). Their last 4 items: [2,3,1,2] and
    # [3,2,3,1]. A 3-core drops item 1 (twice), leaving [2,3,2] and [3,2,3]; re-indexed 2->1, 3->2.
    sub = smoke_subset(ds, SmokeSubset(users=2, items=3, last=4, core=3))
    assert _sequences(sub) == [[1, 2, 1], [2, 1, 2]]
    assert sub.num_items == 2


def test_subset_is_a_core_within_its_limits_and_deterministic():
    ds = make_synthetic(SyntheticConfig(num_users=300, num_items=80, min_length=3, max_length=30, seed=2))
    spec = SmokeSubset(users=100, items=50, last=12, core=4)
    sub = smoke_subset(ds, spec)
    assert 0 < sub.num_users <= 100 and sub.num_items <= 50
    assert sub.lengths.min() >= 4 and sub.lengths.max() <= 12
    assert np.bincount(sub.items)[1:].min() >= 4
    assert sub.stats().items == sub.num_items  # re-indexed to the items that occur
    assert smoke_subset(ds, spec).fingerprint() == sub.fingerprint()


def test_random_pick_is_seeded():
    ds = make_synthetic(SyntheticConfig(num_users=200, num_items=40, min_length=5, max_length=20, seed=1))
    spec = SmokeSubset(users=50, pick="random", core=0, last=0)
    assert smoke_subset(ds, spec, seed=0).fingerprint() == smoke_subset(ds, spec, seed=0).fingerprint()
    assert smoke_subset(ds, spec, seed=0).fingerprint() != smoke_subset(ds, spec, seed=1).fingerprint()


def test_bad_spec_and_empty_subset_raise():
    with pytest.raises(ValueError, match="pick"):
        SmokeSubset(users=10, pick="densest")
    ds = SequenceDataset.from_sequences("toy", [[1, 2], [3, 4]], num_items=4)
    with pytest.raises(ValueError, match="empty"):
        smoke_subset(ds, SmokeSubset(users=2, core=5))
