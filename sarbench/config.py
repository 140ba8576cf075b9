"""Configurations: what AE and AR are as a type, the model and training settings, the exclusion rules.

A leaf module (no torch, no model, no trainer): models, presets, the trainer, the search and the
store all read their settings from here, so importing a configuration never imports a model.

``Attention`` is the paper's one switch: ``AE`` (bidirectional, BERT4Rec-like, trained to recover
[MASK]ed items) or ``AR`` (causal, SASRec-like, trained to predict the next item). It is a ``str``
enum, so ``attention == "AR"``, JSON and case ids read as the plain strings they always were.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass


class Attention(enum.StrEnum):
    """The attention of a self-attentive recommender: ``AE`` (bidirectional) or ``AR`` (causal)."""

    AE = "AE"
    AR = "AR"

    @classmethod
    def parse(cls, value, what: str = "attention") -> "Attention":
        """``value`` ("AE", "AR" or an Attention) as an Attention; a ValueError names ``what`` otherwise."""
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"{what} must be 'AE' or 'AR', got {value!r}") from None


#: Both attentions, in the paper's column order.
ATTENTIONS: tuple[Attention, ...] = (Attention.AE, Attention.AR)

# Seen items excluded at evaluation (see evaluate.py).
RULES = ("input", "history", "none")
PAPER_RULE = "input"  # what the authors' code did; every comparison with the paper uses it
DEFAULT_RULES = ("input", "history")


# --- the model interface's fields ------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingFields:
    """The config fields the trainer reads, with the interface's defaults filled in."""

    num_items: int
    attention: Attention
    max_len: int
    mask_prob: float = 0.2
    num_users: int = 0
    sse_item_prob: float = 0.0
    sse_user_prob: float = 0.0

    @property
    def mask_token(self) -> int:
        return self.num_items + 1


def training_fields(cfg) -> TrainingFields:
    """The interface fields of a model config; a clear error names what is missing or wrong."""
    name = type(cfg).__name__
    if not dataclasses.is_dataclass(cfg):
        raise TypeError(f"a model config must be a frozen dataclass instance, got {name}")
    values = {}
    for f in dataclasses.fields(TrainingFields):
        if hasattr(cfg, f.name):
            values[f.name] = getattr(cfg, f.name)
        elif f.default is dataclasses.MISSING:
            raise TypeError(f"model config {name} lacks {f.name!r}, which the model interface requires "
                            f"(num_items, attention, max_len; see sarbench.models.interface)")
    values["attention"] = Attention.parse(values["attention"], f"{name}.attention")
    return TrainingFields(**values)



# --- the paper's self-attentive model (models/sar.py) ----------------------------------------------
@dataclass(frozen=True)
class SARConfig:
    num_items: int  # N; ids 1..N, 0 = padding, N+1 = [MASK]
    attention: Attention = Attention.AR  # AR = causal mask, AE = bidirectional mask
    max_len: int = 50
    hidden: int = 64
    layers: int = 2
    heads: int = 1
    dropout: float = 0.2  # hidden dropout (embeddings, residual branches; ModSAR: inside the FFN)
    attn_dropout: float = 0.2  # dropout on the attention probabilities
    norm_first: bool = False  # pre-LN (SASRec style) or post-LN (BERT4Rec style)
    activation: str = "gelu"  # "gelu" or "relu" in the feed-forward block
    embedding_norm: bool = True  # LayerNorm after the embedding sum (BERT4Rec)
    embedding_norm_eps: float = 1e-12  # its epsilon: BERT's and the authors' 1e-12 (other norms: torch's 1e-5)
    output_transform: bool = True  # Linear -> GELU -> LayerNorm before the tied output (BERT4Rec)
    item_bias: bool = True  # per-item output bias
    mask_prob: float = 0.2  # AE: fraction of positions replaced by [MASK] in training
    local_window: int = 0  # > 0: local heads attend only to |i - j| <= local_window
    local_heads: int = 0  # how many heads (the last ones) are local; >= heads means all
    num_users: int = 0  # > 0: SSE-PT user embeddings (half of the hidden size), concatenated to items
    sse_item_prob: float = 0.0  # SSE-PT: per-position probability of a random input item (training only)
    sse_user_prob: float = 0.0  # SSE-PT: probability of a random user id (training only)
    # The authors' modular network (ModSAR); each off by default (the Table-4 network):
    embedding_scale: bool = False  # multiply item embeddings by sqrt(hidden)
    norm_residual: bool = False  # pre-LN block whose residual is the normalised input: x~ = LN(x); x = x~ + f(x~)
    ffn_inner_dropout: bool = False  # FFN = Drop(W2(act(Drop(W1 x)))), no dropout on the attention output
    init: str = "trunc_normal"  # "trunc_normal" (BERT: N(0, 0.02) within +-0.04) or "xavier" (ModSAR)

    def __post_init__(self):
        object.__setattr__(self, "attention", Attention.parse(self.attention))
        if self.hidden % self.heads:
            raise ValueError(f"hidden={self.hidden} must be divisible by heads={self.heads}")
        if self.activation not in ("gelu", "relu"):
            raise ValueError(f"activation must be 'gelu' or 'relu', got {self.activation!r}")
        if self.num_users and self.hidden % 2:
            raise ValueError("SSE-PT splits the hidden size between items and users: hidden must be even")
        if self.init not in ("trunc_normal", "xavier"):
            raise ValueError(f"init must be 'trunc_normal' or 'xavier', got {self.init!r}")
        if self.norm_residual and not self.norm_first:
            raise ValueError("norm_residual is a pre-LN block: set norm_first=True with it")

    @property
    def mask_token(self) -> int:
        return self.num_items + 1


# --- training (train.py) ---------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainConfig:
    loss: str = "ce"  # "ce" over all items, or "bpr" / "bce" with sampled negatives
    num_negatives: int = 1  # negatives per positive for bpr / bce
    # bpr / bce negatives are uniform over the items except: "own" the position's own target,
    # "sequence" every target of the training window, or "user" every target of the user's whole
    # training sequence (s[1:]; the authors' modular code does this for AR)
    negatives: str = "own"
    # "bert_adamw" (the authors' Table-4 optimiser: AdamW without bias correction, see optim.py),
    # "adamw" (torch's, with bias correction) or "adam" (L2 decay); the AdamW kinds decay no bias or norm.
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8  # optimiser epsilon (torch's default; the authors' Table-4 code: 1e-6)
    decay_all: bool = False  # AdamW kinds: decay every parameter (the authors' local_attn); else none on biases/norms
    grad_clip: float = 5.0  # max gradient norm; 0 = off
    batch_size: int = 256
    max_epochs: int = 1000
    eval_every: int = 1  # validate every N epochs
    patience: int = 20  # stop after this many epochs without a better validation metric (paper: 20)
    metric: str = "R@10"  # validation metric for early stopping
    ks: tuple[int, ...] = (5, 10, 20)
    # seen items excluded at validation (early stopping) and as the test's primary metrics: "input"
    # (the ids in the model's input window, the authors' rule), "history" or "none"; test results
    # always carry both "input" and "history" (see evaluate.py)
    exclusion: str = PAPER_RULE
    eval_users: int = 0  # > 0: validate and test on this many users only (smoke runs)
    # pool size in batches for length grouping, with the loss weighted per target (module doc);
    # 0 or 1 = plain random batches with the per-batch mean, as the authors
    length_buckets: int = 8
    seed: int = 0
    deterministic: bool = False
    device: str = "cpu"
    precision: str = "fp32"  # "fp32" (the authors') or "bf16" (autocast on CUDA; CPU always runs fp32)
    progress: bool = True
    max_minutes: float = 0.0  # > 0: stop after this process trained this long (then test the best state)

    def __post_init__(self):
        if self.loss not in ("ce", "bpr", "bce"):
            raise ValueError(f"loss must be 'ce', 'bpr' or 'bce', got {self.loss!r}")
        if self.optimizer not in ("adam", "adamw", "bert_adamw"):
            raise ValueError(f"optimizer must be 'adam', 'adamw' or 'bert_adamw', got {self.optimizer!r}")
        if self.exclusion not in RULES:
            raise ValueError(f"exclusion must be one of {', '.join(RULES)}, got {self.exclusion!r}")
        if self.negatives not in ("own", "sequence", "user"):
            raise ValueError(f"negatives must be 'own', 'sequence' or 'user', got {self.negatives!r}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
