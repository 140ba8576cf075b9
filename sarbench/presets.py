"""Named configurations of the paper's experiments.

``vanilla-AE`` / ``vanilla-AR`` are the authors' pre-set best values for Table 4 (their
``search_standard_allrank.sh``; see protocol.md): a BERT4Rec-style network (post-LN, GELU,
embedding LayerNorm with eps 1e-12, output transform, tied output with item bias, truncated-normal
init), d=64, 2 layers, batch 256, lr 1e-3, AdamW (eps 1e-6 as theirs, decoupled decay 0.1, none
on biases and norms), gradient clipping at 5, fp32, up to 1000 epochs, early stopping on validation
Recall@10 with the authors' exclusion rule (ids of the input window).

Differences from the authors' code, on purpose:
  * patience 20 epochs, as the paper states (their script used 30);
  * torch's AdamW, with bias correction; theirs (BERT's) had none. ``optimizer="bert_adamw"`` is
    theirs. Measured: on the synthetic dataset Vanilla-AE with theirs stays at the popularity
    plateau for 24 epochs (test N@10 0.093, most-popular 0.094), against 0.33 with bias correction;
    its first few hundred steps are 3-6x larger than lr.
  * vocabulary N+2 (padding, items, [MASK]); no unused ids are scored;
  * batches grouped by length, with the loss weighted per target so that the objective is theirs
    (see train.py).

The design-space presets (``local``, ``ssept``, ``ce``, ``bpr``, ``bce``; the paper's Table 5) run
on the authors' modular network (ModSAR, protocol.md §2b): item embeddings x sqrt(d) plus learned
positions, no embedding LayerNorm; SASRec blocks (the residual starts from the normalised input),
ReLU with dropout inside the feed-forward block, dropout on the attention probabilities only; a
final LayerNorm; tied output without bias; xavier-uniform init. Training as theirs: Adam
(0.9, 0.98), lr 1e-3, no weight decay, no clipping, batch 128, fp32, validation every 5 epochs,
early stop after 10 validations (50 epochs) without a better Recall@10, at most 2000 epochs.

The authors tuned these per (dataset, design, attention) with Ray Tune and kept no tuned values
(protocol.md §5). Untuned, a design preset takes the base values of their run files: dropout 0.5
on beauty and 0.2 elsewhere (on the hidden states and the attention probabilities alike), mask
probability 0.8 on beauty and 0.2 elsewhere, 1 head; d = 64 (their files say 50, which no grid
contains; 64 is a grid value). Q, K and V are initialised as three xavier-uniform (d x d) matrices, as
their three Linear(d, d). Per design:
  * ``local``: 1 head, local (|i - j| <= 2: AR sees j in [i-2, i]), as their base run file; their
    grid's heads=2 adds a global head beside it (the last head local, "in addition to vanilla
    self-attention"); AdamW as theirs, decaying every parameter, with decay 0 untuned (their grid:
    0, 1e-4, 1e-2, 1; the 1e-2 in their files is a memory probe);
  * ``ssept``: user embeddings (d/2 beside d/2 of the item), stochastic shared embeddings 0.2 / 0.2
    (in training only, per position with probability p; see the README's differences), BCE whose
    logit includes the user term (user half of h) . E_user(u), as theirs;
  * ``ce``, ``bpr``, ``bce``: the loss; BPR and BCE with one uniform negative per target, which for
    AR excludes every target of the user's whole training sequence (not only the window's) and for
    AE only the position's own (theirs).
``sarbench tune`` finds tuned values; a case uses them when a tuned preset exists.
"""

from __future__ import annotations

from dataclasses import replace

from .config import ATTENTIONS, Attention, SARConfig, TrainConfig
from .designs import DESIGNS

# Per-dataset settings of the authors' Table-4 script: heads, dropout, attention dropout, mask prob.
VANILLA = {
    # dataset: (AE heads, AE dropout, AE attn dropout, AE mask prob, AR heads, AR dropout, AR attn dropout)
    "beauty": (2, 0.2, 0.2, 0.5, 1, 0.5, 0.5),
    "ml-1m": (2, 0.2, 0.2, 0.2, 1, 0.2, 0.2),
    "video": (2, 0.2, 0.2, 0.5, 1, 0.5, 0.5),
    "sports": (2, 0.2, 0.2, 0.5, 1, 0.5, 0.5),
    "yelp": (2, 0.2, 0.2, 0.5, 1, 0.5, 0.5),
}
# Any other dataset (the embedded synthetic one, a declared one): the settings common to the table.
DEFAULT_VANILLA = (2, 0.2, 0.2, 0.5, 1, 0.2, 0.2)
DEFAULT_MAX_LEN = 50


def max_len(dataset: str) -> int:
    """The maximum sequence length of a dataset: the paper's (its registry entry, e.g. 200 on ml-1m),
    a declared dataset's ``max_len``, else 50."""
    from .data import dataset_max_len

    return dataset_max_len(dataset, DEFAULT_MAX_LEN)

# The authors' modular network (ModSAR) as settings of the one model.
MODSAR = dict(norm_first=True, norm_residual=True, activation="relu", embedding_norm=False, output_transform=False,
              item_bias=False, embedding_scale=True, ffn_inner_dropout=True, init="xavier")


def preset_names() -> list[str]:
    return [f"{d}-{a}" for d in DESIGNS for a in ATTENTIONS]


def preset(name: str, dataset: str, num_items: int, num_users: int = 0) -> tuple[SARConfig, TrainConfig]:
    """(model config, train config) of a named preset such as ``vanilla-AR`` on ``dataset``."""
    try:
        design, attention = name.rsplit("-", 1)
    except ValueError:
        design, attention = name, ""
    if design not in DESIGNS or attention not in ATTENTIONS:
        raise KeyError(f"unknown preset {name!r}; known presets: {', '.join(preset_names())}")
    declared, attention = DESIGNS[design], Attention(attention)
    ae_h, ae_do, ae_ado, mask_p, ar_h, ar_do, ar_ado = VANILLA.get(dataset, DEFAULT_VANILLA)
    heads, dropout, attn_dropout = (ae_h, ae_do, ae_ado) if attention == Attention.AE else (ar_h, ar_do, ar_ado)
    model = SARConfig(
        num_items=num_items, attention=attention, max_len=max_len(dataset), hidden=64, layers=2,
        heads=heads, dropout=dropout, attn_dropout=attn_dropout, mask_prob=mask_p,
    )
    train = TrainConfig(loss="ce", optimizer="adamw", lr=1e-3, weight_decay=0.1, eps=1e-6, batch_size=256,
                        max_epochs=1000, patience=20, grad_clip=5.0)
    if declared.network == "bert4rec":
        return model, replace(train, loss=declared.loss, **declared.train)
    # The authors' modular (ModSAR) network, shared by every design variant (module doc).
    drop = 0.5 if dataset == "beauty" else 0.2
    model = replace(model, heads=1, dropout=drop, attn_dropout=drop, mask_prob=0.8 if dataset == "beauty" else 0.2,
                    **MODSAR)
    train = replace(train, optimizer="adam", weight_decay=0.0, betas=(0.9, 0.98), eps=1e-8, grad_clip=0.0,
                    batch_size=128, max_epochs=2000, eval_every=5, patience=50,
                    negatives="user" if attention == Attention.AR else "own")
    # The design's own settings, as declared (designs.py).
    if declared.needs_users:
        if num_users <= 0:
            raise ValueError(f"the {design} preset needs num_users (user embeddings)")
        model = replace(model, num_users=num_users)
    return replace(model, **declared.model), replace(train, loss=declared.loss, **declared.train)


_LOSSES = {"ce": "cross-entropy over all items", "bpr": "BPR with {n} uniform negative(s)",
           "bce": "binary cross-entropy with {n} uniform negative(s)"}
_OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "bert_adamw": "BERT's AdamW"}


def describe(design: str) -> str:
    """One line for listings: the design's summary, then its loss and optimiser as its preset sets them."""
    _, train = preset(f"{design}-{Attention.AR}", "", 1, 1)
    decay = f" (decay {train.weight_decay:g})" if train.optimizer != "adam" else ""
    loss = _LOSSES[train.loss].format(n=train.num_negatives)
    return f"{DESIGNS[design].summary}; {loss}, {_OPTIMIZERS[train.optimizer]}{decay}"
