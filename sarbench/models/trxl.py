"""A compact Transformer-XL-style recommender on torch (Table 6's Transformer-XL row), AE or AR by the mask.

Transformer-XL (Dai et al., ACL'19) is gone from transformers 5.x (4.57 was the last release to ship
it, deprecated; its forward hard-codes a causal mask and takes no attention mask). This is our own
small version of its layer, enough to put the row of Table 6 on the same footing as ALBERT and LLaMA:

* relative sinusoidal positions: the score of query i and key j is
  ``(q_i + r_w) . k_j + (q_i + r_r) . W_r p(i - j)``, scaled by 1/sqrt(d_head), with p the sinusoid
  of the distance and r_w, r_r the learned content and position biases (one pair per layer);
* post-LN blocks, as the authors' configuration ran (their ``pre_lnorm`` flag was misspelt and so
  ignored): x = LN(x + Drop(Attn(x))), x = LN(x + Drop(W2 Drop(ReLU(W1 x)))), inner size 4d (the
  original's feed-forward is ReLU, which the authors' config could not change);
* item embeddings scaled by sqrt(d), dropout on them, on the position embeddings and after the last
  layer, attention dropout = dropout (the authors' dropout = dropatt = p);
* optional segment memory (``segment_len`` > 0): the input is read in segments of that length, and
  each layer of a segment also attends to that layer's inputs of the previous segment (the memory,
  no gradient through it), as Transformer-XL's recurrence. Off by default: one window is one segment.

AE vs AR is the mask, built in :func:`allowed_keys`: keys that are real items (the padding mask is
always applied), and, for AR, not after the query. AE scores signed distances (keys before and after
the query have different position embeddings, as XLNet's bidirectional mode); AR needs only
distances >= 0, as the original.

Differences from the original and from the authors' run:
    * original: adaptive input/softmax (the authors ran it non-adaptive, div_val 1, as here), a memory
      that is always on (mem_len) with ``same_length`` and ``clamp_len``; causal only; no padding mask.
    * the authors' run (protocol §2c, §7.6): every forward prepended 200 *zero* memory slots (keys and
      values 0, but position scores not, so attention mass leaked onto zero vectors), no padding mask
      (AE queries attended padding), AR with ``same_length`` (query i saw memory slots i+1..199 only);
      their AE removed the causal mask but kept the relative-shift of distances >= 0, so keys after
      the query got the shift's wrapped-around position scores instead of their own distance.
    * here: no memory unless asked for (then the previous segment's real states), the padding mask,
      no ``same_length``/``clamp_len`` (distances stay below max_len), signed distances for AE, and
      tied output = last hidden state x item embeddings (no bias, no adaptive softmax).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..config import Attention
from .hf import BackboneConfig, table6_defaults
from .interface import ModelSpec, SequentialRecommender


@dataclass(frozen=True)
class TransfoXLConfig(BackboneConfig):
    segment_len: int = 0  # > 0: read the input in segments of this length with the previous one as memory
    layer_norm_eps: float = 1e-5

    def __post_init__(self):
        super().__post_init__()
        if self.segment_len < 0:
            raise ValueError(f"TransfoXLConfig.segment_len must be >= 0, got {self.segment_len}")


def sinusoid(distances: torch.Tensor, d: int) -> torch.Tensor:
    """Sinusoidal embeddings (P, d) of the (float) distances (P,): [sin(x w_k), cos(x w_k)], w_k = 10000^(-2k/d)."""
    inv_freq = 1.0 / (10000 ** (torch.arange(0, d, 2, device=distances.device, dtype=torch.float32) / d))
    angles = distances.float()[:, None] * inv_freq[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def allowed_keys(real_keys: torch.Tensor, q: int, causal: bool) -> torch.Tensor:
    """Boolean mask (B, 1, q, k): query i (the last q of the k keys) may attend key j.

    Keys are [memory, segment]; a key must be a real item and, if ``causal``, not after the query.
    Every query may attend itself, so no row is empty (a padding query's output is never read).
    """
    k = real_keys.shape[1]
    m = k - q
    allowed = real_keys[:, None, None, :].expand(-1, 1, q, -1)
    query_at = torch.arange(q, device=real_keys.device)[:, None] + m  # (q, 1): key index of each query
    key_at = torch.arange(k, device=real_keys.device)[None, :]
    if causal:
        allowed = allowed & (key_at <= query_at)
    return allowed | (key_at == query_at)


class RelativeAttention(nn.Module):
    """Multi-head attention with Transformer-XL's relative positions, post-LN residual."""

    def __init__(self, cfg: TransfoXLConfig):
        super().__init__()
        d, self.heads = cfg.hidden, cfg.heads
        self.d_head = d // cfg.heads
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.r_net = nn.Linear(d, d, bias=False)  # position embedding -> per-head position keys
        self.out = nn.Linear(d, d, bias=False)
        self.r_w_bias = nn.Parameter(torch.zeros(cfg.heads, self.d_head))  # content bias (u)
        self.r_r_bias = nn.Parameter(torch.zeros(cfg.heads, self.d_head))  # position bias (v)
        self.drop = nn.Dropout(cfg.dropout)
        self.drop_attn = nn.Dropout(cfg.dropout)
        self.norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)

    def forward(self, x, pos_emb, allowed, memory=None):
        """x (B, q, d) the segment; pos_emb (P, d) the sinusoids of distances k-1, k-2, ... (P >= k; AE: down to
        -(q-1)); allowed (B, 1, q, k) from allowed_keys; memory (B, m, d) or None, k = m + q. Returns (B, q, d)."""
        B, q, d = x.shape
        H, dh = self.heads, self.d_head
        context = x if memory is None else torch.cat([memory, x], dim=1)  # (B, k, d)
        k = context.shape[1]
        qs, ks, vs = self.qkv(context).split(d, dim=-1)
        qs = qs[:, -q:].view(B, q, H, dh).transpose(1, 2)  # (B, H, q, dh)
        ks = ks.view(B, k, H, dh).transpose(1, 2)  # (B, H, k, dh)
        vs = vs.view(B, k, H, dh).transpose(1, 2)
        r = self.r_net(pos_emb).view(-1, H, dh)  # (P, H, dh)
        content = (qs + self.r_w_bias[:, None]) @ ks.transpose(-1, -2)  # (B, H, q, k)
        position = torch.einsum("bhqd,phd->bhqp", qs + self.r_r_bias[:, None], r)  # (B, H, q, P)
        # pos_emb row p holds distance (k - 1) - p; query i sits at key m + i, so key j is row q - 1 - i + j.
        rows = torch.arange(q, device=x.device)[:, None]
        cols = torch.arange(k, device=x.device)[None, :]
        index = (q - 1 - rows + cols).clamp(max=position.shape[-1] - 1)  # beyond: causally masked anyway
        position = position.gather(-1, index.expand(B, H, q, k))
        scores = (content + position) / math.sqrt(dh)
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        probs = self.drop_attn(scores.softmax(dim=-1))
        h = (probs @ vs).transpose(1, 2).reshape(B, q, d)
        return self.norm(x + self.drop(self.out(h)))


class FeedForward(nn.Module):
    def __init__(self, cfg: TransfoXLConfig):
        super().__init__()
        d = cfg.hidden
        self.net = nn.Sequential(nn.Linear(d, 4 * d), nn.ReLU(), nn.Dropout(cfg.dropout), nn.Linear(4 * d, d),
                                 nn.Dropout(cfg.dropout))
        self.norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)

    def forward(self, x):
        return self.norm(x + self.net(x))


class Layer(nn.Module):
    def __init__(self, cfg: TransfoXLConfig):
        super().__init__()
        self.attn = RelativeAttention(cfg)
        self.ff = FeedForward(cfg)

    def forward(self, x, pos_emb, allowed, memory=None):
        return self.ff(self.attn(x, pos_emb, allowed, memory))


class TransfoXLRecommender(SequentialRecommender):
    def __init__(self, cfg: TransfoXLConfig):
        super().__init__(cfg)
        self.item_emb = nn.Embedding(cfg.vocab_size, cfg.hidden, padding_idx=0)
        self.drop = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.layers))
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Embedding):
                nn.init.zeros_(m.weight[m.padding_idx])
            elif m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, RelativeAttention):
            nn.init.normal_(m.r_w_bias, std=0.02)
            nn.init.normal_(m.r_r_bias, std=0.02)

    def segment(self, x, real, memory=None, memory_real=None):
        """One segment through every layer.

        x (B, q, d) embedded segment, real (B, q) its padding mask; memory: per layer (B, m, d) inputs of
        that layer on the previous segment, with memory_real (B, m). Returns (output (B, q, d), the
        per-layer inputs of this segment, detached: the next segment's memory).
        """
        q = x.shape[1]
        real_keys = real if memory is None else torch.cat([memory_real, real], dim=1)
        k = real_keys.shape[1]
        causal = self.cfg.attention == Attention.AR
        allowed = allowed_keys(real_keys, q, causal)
        lowest = 0 if causal else -(q - 1)  # AR needs distances >= 0 only; AE also keys after the query
        distances = torch.arange(k - 1, lowest - 1, -1, device=x.device)
        pos_emb = self.drop(sinusoid(distances, self.cfg.hidden).to(x.dtype))
        inputs = []
        for i, layer in enumerate(self.layers):
            inputs.append(x.detach())
            x = layer(x, pos_emb, allowed, None if memory is None else memory[i])
        return x, inputs

    def hidden_states(self, items, users=None):
        """items (B, L) left-aligned -> (B, L, d); with ``segment_len`` > 0, segment by segment."""
        x = self.drop(self.item_emb(items) * math.sqrt(self.cfg.hidden))
        real = items != 0
        step = self.cfg.segment_len or items.shape[1]
        outputs, memory, memory_real = [], None, None
        for start in range(0, items.shape[1], step):
            seg_real = real[:, start : start + step]
            h, memory = self.segment(x[:, start : start + step], seg_real, memory, memory_real)
            memory_real = seg_real
            outputs.append(h)
        return self.drop(torch.cat(outputs, dim=1))

    def output_weights(self):
        return self.item_emb.weight[1 : self.cfg.num_items + 1], None


def defaults(attention, dataset, num_items, num_users, overrides=None):
    """The Table-6 settings (hf.table6_defaults): d=64, 2 layers, the dataset's base dropout, heads and
    mask probability, Adam (0.9, 0.98), lr 1e-3, batch 128, CE."""
    return table6_defaults(TransfoXLConfig, attention, dataset, num_items, num_users, overrides)


SPEC = ModelSpec(name="transfo_xl", config=TransfoXLConfig, build=TransfoXLRecommender, defaults=defaults,
                 description="Transformer-XL-style layers (relative positions, post-LN), our own torch code (Table 6)")
