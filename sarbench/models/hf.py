"""HuggingFace ``transformers`` backbones as sarbench recommenders: ALBERT and LLaMA, each as AE and AR
(the paper's Section 5.3 and Table 6).

Item ids are the backbone's token ids: vocabulary N + 2 (0 = padding, 1..N = items, N+1 = [MASK]),
sequences left-aligned with padding after the items. The recommender's hidden states are the
backbone's last hidden state; the score of item i is that state times row i of the backbone's own
input embedding matrix (tied, no bias, no LM head). Training targets, losses, evaluation, cases and
reports are sarbench's (see ``interface.py``).

Backbones are always initialised at random from a config object built here; nothing is loaded from
or looked up on the Hugging Face hub (``from_pretrained`` is never called).

**AE vs AR through the library's own interfaces** (no copied or patched transformers code; the
authors vendored two edited copies of the library for this):

* LLaMA is causal by design. AE sets ``is_causal=False`` in its config, the documented switch for
  bidirectional attention in decoder models (transformers >= 5.2; the mask builder then makes a
  bidirectional padding mask and the sdpa kernel is told ``is_causal=False``). Both take the 2D
  padding mask.
* ALBERT is bidirectional by design and has no such switch. AE passes the 2D padding mask. AR passes
  a prepared 4D mask (batch, 1, L, L), which ALBERT's mask builder documents and returns as it is:
  boolean (True = may attend) for the sdpa kernel, additive float (0, or the dtype's minimum) for the
  eager one -- the eager kernel *adds* the mask to the scores, so a boolean mask there would be
  silently ignored. (``create_causal_mask`` is not used: under sdpa it returns None, which leaves
  ALBERT bidirectional, unless told ``allow_is_causal_skip=False``.)

The padding mask is respected for every real position in both modes (the tests check that padding
never changes a real position's output).

Backbone settings (the authors' ``design/huggingface`` configs, protocol §2c): hidden d, intermediate
4d, L layers, H heads, GELU; ALBERT with embedding_size d, one layer group shared by all L layers
(ALBERT's design), one token type, max_len positions, dropout p on hidden states and attention
probabilities; LLaMA with RMSNorm pre-norm, rotary positions and its gated MLP (GELU gate). LLaMA has
no hidden-state dropout at all; its only dropout is ``attention_dropout``, which ``dropout`` sets
here. The authors' LLaMA trained without dropout (their dropout grid had no effect on it), so the
Table-6 defaults set 0.0 for LLaMA: that is the model their cells measure.

Differences from the authors' run: CE over items 1..N (theirs: all N+2 ids, PAD and [MASK] as
classes, as everywhere in sarbench), and the evaluation's exclusion and tie rules are sarbench's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ..config import ATTENTIONS, Attention, TrainConfig
from .interface import ModelSpec, SequentialRecommender

ATTN_IMPLEMENTATIONS = ("sdpa", "eager")
# LLaMA's is_causal switch arrived in 5.2; older releases ignore it silently (AE would stay causal).
MIN_TRANSFORMERS = "5.2"


@dataclass(frozen=True)
class BackboneConfig:
    """Fields shared by the Table-6 backbones (hf.py and trxl.py)."""

    num_items: int  # N; ids 1..N, 0 = padding, N+1 = [MASK]
    attention: str = "AR"  # "AR" = causal, "AE" = bidirectional with [MASK] training
    max_len: int = 50
    mask_prob: float = 0.2  # AE: fraction of positions replaced by [MASK] in training
    hidden: int = 64  # d; the feed-forward inner size is 4d
    layers: int = 2
    heads: int = 1
    dropout: float = 0.2  # hidden and attention dropout (LLaMA: attention only)

    def __post_init__(self):
        name = type(self).__name__
        if self.attention not in ATTENTIONS:
            raise ValueError(f"{name}.attention must be 'AE' or 'AR', got {self.attention!r}")
        if self.num_items < 1 or self.max_len < 2:
            raise ValueError(f"{name} needs num_items >= 1 and max_len >= 2, got {self.num_items} and {self.max_len}")
        if self.hidden < 1 or self.layers < 1 or self.heads < 1 or self.hidden % self.heads:
            raise ValueError(f"{name}: hidden={self.hidden} must be a positive multiple of heads={self.heads}, "
                             f"layers={self.layers} >= 1")
        if not 0.0 <= self.dropout < 1.0 or not 0.0 < self.mask_prob <= 1.0:
            raise ValueError(f"{name}: dropout must be in [0, 1) and mask_prob in (0, 1], got {self.dropout} and "
                             f"{self.mask_prob}")

    @property
    def vocab_size(self) -> int:
        return self.num_items + 2


@dataclass(frozen=True)
class HFConfig(BackboneConfig):
    attn_implementation: str = "sdpa"  # transformers' attention kernel: "sdpa" or "eager"

    def __post_init__(self):
        super().__post_init__()
        if self.attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise ValueError(f"{type(self).__name__}.attn_implementation must be one of "
                             f"{', '.join(ATTN_IMPLEMENTATIONS)}, got {self.attn_implementation!r}")


@dataclass(frozen=True)
class AlbertRecConfig(HFConfig):
    """ALBERT (bidirectional by design): AE with the padding mask, AR with a 4D causal mask."""


@dataclass(frozen=True)
class LlamaRecConfig(HFConfig):
    """LLaMA (causal by design): AR as is, AE through ``is_causal=False``. ``dropout`` is its
    attention dropout, the only one LLaMA has (Table-6 default 0.0, as the authors' model)."""

    dropout: float = 0.0


def prepared_mask(items: torch.Tensor, causal: bool, implementation: str, dtype: torch.dtype) -> torch.Tensor:
    """A 4D attention mask (B, 1, L, L) over left-aligned ``items`` in the format of ``implementation``.

    A query may attend a key when the key is a real item (not padding) and, if ``causal``, not after
    the query; every query may attend itself, so no row is empty (a padding query then sees real
    keys or itself; its output is never read). "sdpa": boolean, True = may attend. "eager": additive
    float, 0 where allowed and the dtype's minimum elsewhere.
    """
    L = items.shape[1]
    allowed = (items != 0)[:, None, None, :]  # (B, 1, 1, L): keys
    if causal:
        allowed = allowed & torch.ones(L, L, dtype=torch.bool, device=items.device).tril()
    allowed = allowed | torch.eye(L, dtype=torch.bool, device=items.device)  # (B, 1, L, L)
    if implementation == "sdpa":
        return allowed
    return torch.zeros(allowed.shape, dtype=dtype, device=items.device).masked_fill(~allowed, torch.finfo(dtype).min)


def check_transformers(version: str | None = None) -> None:
    """Refuse a transformers release older than MIN_TRANSFORMERS (its masks would be wrong without an error)."""
    from packaging.version import Version

    if version is None:
        import transformers

        version = transformers.__version__
    if Version(version) < Version(MIN_TRANSFORMERS):
        raise RuntimeError(f"sarbench's HF backbones need transformers >= {MIN_TRANSFORMERS} (LLaMA's is_causal "
                           f"switch); found {version}. Upgrade with: pip install 'transformers>={MIN_TRANSFORMERS},<6'")


class HFRecommender(SequentialRecommender):
    """A transformers base model (no head) as a sarbench recommender; subclasses build the backbone."""

    def __init__(self, cfg: HFConfig):
        super().__init__(cfg)
        check_transformers()
        self.backbone = self.build_backbone(cfg)
        got = self.backbone.config._attn_implementation
        if got != cfg.attn_implementation:
            raise RuntimeError(f"{type(self).__name__}: asked transformers for attention {cfg.attn_implementation!r} "
                               f"and got {got!r}")

    def build_backbone(self, cfg):
        raise NotImplementedError

    def backbone_mask(self, items: torch.Tensor) -> torch.Tensor:
        """The ``attention_mask`` argument of the backbone: the 2D padding mask (1 = real item)."""
        return (items != 0).long()

    def hidden_states(self, items, users=None):
        """items (B, L) left-aligned ids -> the backbone's last hidden state (B, L, d)."""
        out = self.backbone(input_ids=items, attention_mask=self.backbone_mask(items))
        return out.last_hidden_state

    def output_weights(self):
        """Rows 1..N of the backbone's input embedding matrix (tied output), no bias."""
        return self.backbone.get_input_embeddings().weight[1 : self.cfg.num_items + 1], None


class AlbertRecommender(HFRecommender):
    def build_backbone(self, cfg: AlbertRecConfig):
        from transformers import AlbertConfig, AlbertModel

        config = AlbertConfig(
            vocab_size=cfg.vocab_size, embedding_size=cfg.hidden, hidden_size=cfg.hidden,
            num_hidden_layers=cfg.layers, num_hidden_groups=1, inner_group_num=1,  # one layer shared by all
            num_attention_heads=cfg.heads, intermediate_size=4 * cfg.hidden, hidden_act="gelu",
            hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.dropout,
            max_position_embeddings=cfg.max_len, type_vocab_size=1, pad_token_id=0,
            attn_implementation=cfg.attn_implementation,
        )
        return AlbertModel(config, add_pooling_layer=False)

    def backbone_mask(self, items):
        if self.cfg.attention == Attention.AE:
            return super().backbone_mask(items)
        dtype = self.backbone.get_input_embeddings().weight.dtype
        return prepared_mask(items, causal=True, implementation=self.cfg.attn_implementation, dtype=dtype)


class LlamaRecommender(HFRecommender):
    def build_backbone(self, cfg: LlamaRecConfig):
        from transformers import LlamaConfig, LlamaModel

        config = LlamaConfig(
            vocab_size=cfg.vocab_size, hidden_size=cfg.hidden, intermediate_size=4 * cfg.hidden,
            num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads,
            hidden_act="gelu", max_position_embeddings=cfg.max_len, attention_dropout=cfg.dropout,
            pad_token_id=0, bos_token_id=None, eos_token_id=None, use_cache=False,
            is_causal=cfg.attention == Attention.AR, attn_implementation=cfg.attn_implementation,
        )
        return LlamaModel(config)


# --- Table-6 settings ----------------------------------------------------------------------------
def base_settings(dataset: str) -> dict:
    """The authors' base values of the HF runs for a dataset (protocol §5): one head, dropout 0.5 on
    beauty else 0.2, mask probability 0.8 on beauty, 0.5 on ml-1m, else 0.2."""
    return {
        "heads": 1,
        "dropout": 0.5 if dataset == "beauty" else 0.2,
        "mask_prob": {"beauty": 0.8, "ml-1m": 0.5}.get(dataset, 0.2),
    }


def table6_defaults(config_cls, attention: str, dataset: str, num_items: int, num_users: int = 0,
                    overrides: dict | None = None, **fixed):
    """(model config, TrainConfig) of a Table-6 case, as the authors' HF runs.

    d=64, 2 layers, the dataset's max_len and base values (:func:`base_settings`), then ``fixed``
    (a backbone's own settings, e.g. LLaMA's dropout 0). Training: CE over all items, Adam with
    betas (0.9, 0.98), lr 1e-3, no weight decay, no clipping, batch 128, fp32; as the authors' reruns
    and sarbench's design presets: up to 2000 epochs, validation every 5, early stop after 10
    validations (50 epochs) without a better R@10.

    ``overrides`` (e.g. tuned values from a search) is one flat dict applied last: each key a field
    of the model config or of TrainConfig. An unknown key, ``num_items``/``attention`` (fixed by the
    case) or a name of both configs is an error naming it.
    """
    from ..data import dataset_max_len

    model_fields = {f.name for f in dataclasses.fields(config_cls)}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    overrides = dict(overrides or {})
    bad = {"num_items", "attention"} | (model_fields & train_fields)
    unknown = sorted(k for k in overrides if k not in model_fields | train_fields or k in bad)
    if unknown:
        raise KeyError(f"{config_cls.__name__} overrides: unknown or fixed key(s) {', '.join(unknown)}; valid: "
                       f"{', '.join(sorted((model_fields | train_fields) - bad))}")
    model = {"max_len": dataset_max_len(dataset), "hidden": 64, "layers": 2, **base_settings(dataset), **fixed}
    train = {"loss": "ce", "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "betas": (0.9, 0.98), "eps": 1e-8,
             "grad_clip": 0.0, "batch_size": 128, "max_epochs": 2000, "eval_every": 5, "patience": 50,
             "precision": "fp32"}
    for key, value in overrides.items():
        (model if key in model_fields else train)[key] = value
    return config_cls(num_items=num_items, attention=attention, **model), TrainConfig(**train)


def albert_defaults(attention, dataset, num_items, num_users, overrides=None):
    return table6_defaults(AlbertRecConfig, attention, dataset, num_items, num_users, overrides)


def llama_defaults(attention, dataset, num_items, num_users, overrides=None):
    return table6_defaults(LlamaRecConfig, attention, dataset, num_items, num_users, overrides, dropout=0.0)


ALBERT = ModelSpec(name="albert", config=AlbertRecConfig, build=AlbertRecommender, defaults=albert_defaults,
                   description="ALBERT from transformers (shared layers), item ids as tokens, tied output (Table 6)")
LLAMA = ModelSpec(name="llama", config=LlamaRecConfig, build=LlamaRecommender, defaults=llama_defaults,
                  description="LLaMA from transformers (RMSNorm, rotary, gated MLP), item ids as tokens, tied "
                              "output (Table 6)")
