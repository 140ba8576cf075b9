"""The processed form every dataset takes: one chronological item sequence per user.

Items are re-indexed 1..N with 0 reserved for padding; users are 0..U-1 in file order.
Sequences are stored flat (CSR: ``items`` plus ``offsets``) so that a 1M-interaction dataset is two
numpy arrays, cheap to hash, slice and move to a device.

Leave-one-out split (paper and SASRec): for a user with sequence s of length n >= 3,
``train = s[:-2]``, validation target ``s[-2]`` (history ``s[:-2]``) and test target ``s[-1]``
(history ``s[:-1]``). Users with n < 3 cannot give a train item, a validation item and a test item:
as in the authors' code they are kept for training (their whole sequence) and not evaluated. They are
counted in ``Split.short_users`` so that a report can say how many there were.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class DatasetStats:
    users: int
    items: int
    interactions: int
    avg_length: float
    density: float

    def as_dict(self) -> dict:
        return {
            "users": self.users,
            "items": self.items,
            "interactions": self.interactions,
            "avg_length": self.avg_length,
            "density": self.density,
        }


@dataclass(frozen=True, eq=False)
class SequenceDataset:
    """Chronological item sequences, one per user, items in 1..num_items (0 = padding)."""

    name: str
    items: np.ndarray  # (total interactions,) int64, every user's items back to back
    offsets: np.ndarray  # (num_users + 1,) int64, user u owns items[offsets[u]:offsets[u+1]]
    num_items: int
    source: str = ""  # where it came from (file path or generator description), for records
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        items = np.ascontiguousarray(self.items, dtype=np.int64)
        offsets = np.ascontiguousarray(self.offsets, dtype=np.int64)
        object.__setattr__(self, "items", items)
        object.__setattr__(self, "offsets", offsets)
        if offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != len(items):
            raise ValueError(f"{self.name}: offsets must start at 0 and end at len(items)={len(items)}")
        if np.any(np.diff(offsets) < 0):
            raise ValueError(f"{self.name}: offsets must be non-decreasing")
        if len(items) and (items.min() < 1 or items.max() > self.num_items):
            raise ValueError(
                f"{self.name}: item ids must lie in 1..{self.num_items}, found {items.min()}..{items.max()}"
            )

    @classmethod
    def from_sequences(cls, name: str, sequences, num_items: int | None = None, source: str = ""):
        seqs = [np.asarray(s, dtype=np.int64) for s in sequences]
        lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        items = np.concatenate(seqs) if seqs else np.zeros(0, dtype=np.int64)
        if num_items is None:
            num_items = int(items.max()) if len(items) else 0
        return cls(name=name, items=items, offsets=offsets, num_items=num_items, source=source)

    # --- basic views -------------------------------------------------------------------------
    @property
    def num_users(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def sequence(self, user: int) -> np.ndarray:
        return self.items[self.offsets[user] : self.offsets[user + 1]]

    def __len__(self) -> int:
        return self.num_users

    # --- statistics and identity -------------------------------------------------------------
    def stats(self) -> DatasetStats:
        """Users, items, interactions, average sequence length and density (= I / (U * N)).

        ``items`` counts the distinct item ids that occur, which equals ``num_items`` for a
        re-indexed dataset.
        """
        u, n, i = self.num_users, int(len(np.unique(self.items))), len(self.items)
        return DatasetStats(
            users=u,
            items=n,
            interactions=i,
            avg_length=i / u if u else 0.0,
            density=i / (u * n) if u and n else 0.0,
        )

    def fingerprint(self) -> str:
        """sha256 over the processed sequences and the item count (16 hex digits).

        Two datasets with equal fingerprints train and evaluate identically; it is what result
        records use to decide whether a stored result still applies and whether a local file is
        the paper's version.
        """
        if "fingerprint" not in self._cache:
            h = hashlib.sha256()
            h.update(np.int64(self.num_items).tobytes())
            h.update(self.offsets.astype("<i8").tobytes())
            h.update(self.items.astype("<i8").tobytes())
            self._cache["fingerprint"] = h.hexdigest()[:16]
        return self._cache["fingerprint"]

    # --- leave-one-out split -----------------------------------------------------------------
    def split(self) -> "Split":
        if "split" not in self._cache:
            self._cache["split"] = Split.leave_one_out(self)
        return self._cache["split"]

    def compact_items(self, name: str | None = None) -> "SequenceDataset":
        """Items re-indexed to 1..N' over the items that occur, in ascending id order (identity if all occur)."""
        used = np.unique(self.items)
        remap = np.zeros(self.num_items + 1, dtype=np.int64)
        remap[used] = np.arange(1, len(used) + 1)
        return SequenceDataset(name or self.name, remap[self.items], self.offsets, len(used), source=self.source)

    def subset_users(self, users: np.ndarray, name: str | None = None) -> "SequenceDataset":
        """A dataset holding only ``users`` (item ids unchanged, so scores stay comparable)."""
        users = np.asarray(users, dtype=np.int64)
        seqs = [self.sequence(u) for u in users]
        return SequenceDataset.from_sequences(
            name or f"{self.name}[{len(users)} users]", seqs, num_items=self.num_items, source=self.source
        )


@dataclass(frozen=True, eq=False)
class Split:
    """Leave-one-out split of a SequenceDataset.

    ``train`` holds every user's training sequence (s[:-2], or all of s for users shorter than 3).
    ``eval_users`` are the users with a validation and a test item; ``valid_target[j]`` and
    ``test_target[j]`` belong to user ``eval_users[j]``. The validation history of user u is
    ``train.sequence(u)``; its test history is that plus the validation item.
    """

    dataset: SequenceDataset
    train: SequenceDataset
    eval_users: np.ndarray
    valid_target: np.ndarray
    test_target: np.ndarray
    short_users: int

    @classmethod
    def leave_one_out(cls, ds: SequenceDataset) -> "Split":
        lengths = ds.lengths
        evaluable = lengths >= 3
        # Train keeps everything but the last two items of evaluable users.
        keep = np.ones(len(ds.items), dtype=bool)
        ends = ds.offsets[1:][evaluable]
        keep[ends - 1] = False
        keep[ends - 2] = False
        train_lengths = np.where(evaluable, lengths - 2, lengths)
        train = SequenceDataset(
            name=f"{ds.name}/train",
            items=ds.items[keep],
            offsets=np.concatenate([[0], np.cumsum(train_lengths)]),
            num_items=ds.num_items,
            source=ds.source,
        )
        return cls(
            dataset=ds,
            train=train,
            eval_users=np.nonzero(evaluable)[0].astype(np.int64),
            valid_target=ds.items[ends - 2],
            test_target=ds.items[ends - 1],
            short_users=int((~evaluable).sum()),
        )

    def histories(self, stage: str) -> tuple[list[np.ndarray], np.ndarray]:
        """(history per evaluated user, target per evaluated user) for stage 'valid' or 'test'."""
        if stage == "valid":
            hist = [self.train.sequence(u) for u in self.eval_users]
            return hist, self.valid_target
        if stage == "test":
            hist = [
                np.append(self.train.sequence(u), v) for u, v in zip(self.eval_users, self.valid_target)
            ]
            return hist, self.test_target
        raise ValueError(f"stage must be 'valid' or 'test', got {stage!r}")
