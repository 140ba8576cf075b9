"""GRU4Rec (Hidasi et al., ICLR'16; Hidasi & Karatzoglou, CIKM'18) as a sarbench model: the worked
"add a model" example.

A GRU reads the item embeddings left to right; its state at position t scores the next item with
the (tied) item embeddings, trained with cross-entropy over all items like the paper's AR models.
It is causal by construction, so it only runs as "AR". Everything else -- data, training
targets, losses, early stopping, evaluation, records, reports -- is sarbench's, through the model
interface (sarbench/models/interface.py).

It is registered exactly as an outside package would register its model: through the
``sarbench.models`` entry point in pyproject.toml, which points at ``SPEC`` below. A model in your
own project needs the same three things: a config dataclass, a SequentialRecommender subclass and
a ModelSpec (register it from your package's entry points or from your conftest.py).

Differences from the original: one sequence per user with the loss at every position (not
session-parallel mini-batches), full softmax cross-entropy (the CIKM'18 paper's TOP1-max/BPR-max
losses with sampled negatives are not used), tied input/output embeddings, Adam.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from ..config import Attention, TrainConfig
from .interface import ModelSpec, SequentialRecommender


@dataclass(frozen=True)
class GRU4RecConfig:
    num_items: int  # N; ids 1..N, 0 = padding
    attention: str = "AR"  # a GRU is causal: "AR" only
    max_len: int = 50
    hidden: int = 64
    layers: int = 1
    dropout: float = 0.25  # on the embeddings and between GRU layers

    def __post_init__(self):
        if self.attention != Attention.AR:
            raise ValueError(f"GRU4Rec is causal by construction: attention must be 'AR', got {self.attention!r}")
        if self.layers < 1 or self.hidden < 1:
            raise ValueError(f"GRU4Rec needs layers >= 1 and hidden >= 1, got {self.layers} and {self.hidden}")


class GRU4Rec(SequentialRecommender):
    def __init__(self, cfg: GRU4RecConfig):
        super().__init__(cfg)
        self.item_emb = nn.Embedding(cfg.num_items + 2, cfg.hidden)  # 0 pad, 1..N items (N+1 unused: no [MASK])
        self.drop = nn.Dropout(cfg.dropout)
        self.gru = nn.GRU(cfg.hidden, cfg.hidden, num_layers=cfg.layers, batch_first=True,
                          dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        nn.init.normal_(self.item_emb.weight, std=0.02)

    def hidden_states(self, items, users=None):
        """items (B, L) left-aligned -> (B, L, hidden). Padding sits after the real items, so it
        never reaches a real position's state."""
        h, _ = self.gru(self.drop(self.item_emb(items)))
        return h

    def output_weights(self):
        return self.item_emb.weight[1 : self.cfg.num_items + 1], None


def defaults(attention: str, dataset: str, num_items: int, num_users: int):
    """Settings of a benchmark case: d=64, one layer, CE over all items, Adam, batch 256, the
    dataset's max_len; training length and early stopping as the paper's vanilla models."""
    from ..data import dataset_max_len

    model = GRU4RecConfig(num_items=num_items, attention=attention, max_len=dataset_max_len(dataset))
    train = TrainConfig(loss="ce", optimizer="adam", lr=1e-3, weight_decay=0.0, batch_size=256, max_epochs=1000,
                        patience=20, grad_clip=5.0)
    return model, train


SPEC = ModelSpec(name="gru4rec", config=GRU4RecConfig, build=GRU4Rec, defaults=defaults, attentions=("AR",),
                 description="GRU4Rec: a GRU over item embeddings, CE over all items (a baseline beside AE and AR)")
