"""One self-attentive sequential recommender; AE and AR differ only in the attention mask.

    AE (BERT4Rec-like): bidirectional mask, trained to recover [MASK]ed items; at evaluation a
        [MASK] is appended after the history and its output predicts the next item.
    AR (SASRec-like):   causal mask, trained to predict the next item at every position; at
        evaluation the output at the last history position predicts the next item.

The mask is built in one function, ``attention_mask``; every attention path (the fused kernel, the
CPU kernel with dropout, the capture for the analysis) reads it. Everything else (embeddings,
blocks, output layer) is shared, so an AE-vs-AR comparison changes one thing.

Two networks of the paper are settings of this one model:
    the authors' Table-4 network (BERT4Rec-style, the ``vanilla`` presets): post-LN blocks, GELU,
        an embedding LayerNorm, an output transform and a per-item bias, truncated-normal init;
    the authors' modular network (ModSAR, SASRec-style, the design presets): item embeddings scaled
        by sqrt(d), pre-LN blocks whose residual starts from the normalised input, ReLU with dropout
        inside the feed-forward block, dropout on the attention probabilities but not on the
        attention output, a final LayerNorm, xavier-uniform init.
The design-space variants are knobs too: a local window on some heads (LOCKER), user embeddings
with stochastic shared embeddings (SSE-PT), and the loss (losses.py).

Vocabulary: 0 = padding, 1..N = items, N+1 = [MASK]. Sequences are left-aligned ("tail padding"):
a user's items sit at positions 0..len-1, padding after them, positions are counted from the left.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import Attention, SARConfig
from .interface import ModelSpec, SequentialRecommender
from .kernels import Dropout, additive_bias, dropout, dropout_attention


# --- the mask: the whole difference between AE and AR ----------------------------------------------
class Mask(NamedTuple):
    allowed: torch.Tensor  # bool, broadcastable to (B, H, L, L); True = the query may attend to the key
    causal: bool  # allowed is exactly "keys at or before the query": kernels may use is_causal


def attention_mask(real: torch.Tensor, attention: str, heads: int = 1, window: int = 0,
                   local_heads: int = 0) -> Mask:
    """Which keys each query may attend to; ``real`` (B, L) marks items (True) and padding (False).

    This function is the whole difference between AE and AR:
        AE: every real (non-padding) key;
        AR: every real key at or before the query (causal).
    A local window additionally restricts the last ``local_heads`` heads to |i - j| <= window.
    ``allowed`` has shape (B, H or 1, L, L). ``causal`` says that, for every real query, the mask is
    the plain causal one: with tail padding a real query never has a padding key before it, so a
    kernel's built-in causal mask (no mask tensor at all) is exact for AR without a local window.
    """
    L = real.shape[1]
    allowed = real[:, None, None, :]  # (B, 1, 1, L): keys must be items, not padding
    i = torch.arange(L, device=real.device)
    if attention == Attention.AR:
        allowed = allowed & (i[None, :] <= i[:, None])  # (B, 1, L, L): key j <= query i
    local = window > 0 and local_heads > 0
    if local:
        near = (i[None, :] - i[:, None]).abs() <= window  # (L, L)
        is_local = torch.arange(heads, device=real.device) >= heads - min(local_heads, heads)
        head_mask = near | ~is_local[:, None, None]  # (H, L, L)
        allowed = allowed & head_mask
    allowed = allowed.expand(-1, -1, L, -1) if allowed.shape[2] == 1 else allowed
    return Mask(allowed, causal=attention == Attention.AR and not local)


# --- the blocks ----------------------------------------------------------------------------------------
def _at_rows(t: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """t (B, L, ...) -> (B, 1, ...): each sequence's entry at its position ``rows`` (B,)."""
    return t[torch.arange(len(t), device=t.device), rows][:, None]


class SelfAttention(nn.Module):
    def __init__(self, cfg: SARConfig):
        super().__init__()
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.hidden, 3 * cfg.hidden)
        self.out = nn.Linear(cfg.hidden, cfg.hidden)
        self.attn_dropout = cfg.attn_dropout

    def forward(self, x, mask: Mask, capture: list | None = None, rows=None):
        B, L, D = x.shape
        if rows is not None:  # only the queries at rows (B,), one per sequence: see Block.forward
            return self._forward_rows(x, mask, rows)
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, H, L, hs)
        p = self.attn_dropout if self.training else 0.0
        if capture is not None:  # the analysis reads the probabilities: compute them explicitly
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.shape[-1]))  # (B, H, L, L)
            att = att.masked_fill(~mask.allowed, torch.finfo(att.dtype).min).softmax(dim=-1)
            capture.append(att.detach())
            y = dropout(att, p, training=True) @ v  # (B, H, L, hs)
        elif p > 0.0 and x.device.type == "cpu":
            y = dropout_attention(q, k, v, _bias(mask, L, x), p)  # kernels.py: fewer passes over L x L on CPU
        elif mask.causal:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.allowed, dropout_p=p)
        return self.out(y.transpose(1, 2).reshape(B, L, D))

    def _forward_rows(self, x, mask: Mask, rows):
        """Attention output (B, 1, D) of the query at ``rows`` of each sequence; keys and values from all of x."""
        B, L, D = x.shape
        hs = D // self.heads
        w, b = self.qkv.weight, self.qkv.bias
        q = F.linear(_at_rows(x, rows), w[:D], b[:D])  # (B, 1, D)
        k, v = F.linear(x, w[D:], b[D:]).view(B, L, 2, self.heads, hs).permute(2, 0, 3, 1, 4)
        q = q.view(B, 1, self.heads, hs).transpose(1, 2)  # (B, H, 1, hs)
        allowed = mask.allowed.expand(B, -1, L, L)[torch.arange(B, device=x.device), :, rows][:, :, None]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=0.0)  # (B, H, 1, hs)
        return self.out(y.transpose(1, 2).reshape(B, 1, D))


def _bias(mask: Mask, L: int, x: torch.Tensor) -> torch.Tensor:
    """The mask as an additive score bias; a causal mask is one (L, L) bias shared by the batch."""
    if mask.causal:
        return additive_bias(torch.ones(L, L, dtype=torch.bool, device=x.device).tril()[None, None], x.dtype)
    return additive_bias(mask.allowed, x.dtype)


class FeedForward(nn.Module):
    def __init__(self, cfg: SARConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.hidden, 4 * cfg.hidden)
        self.proj = nn.Linear(4 * cfg.hidden, cfg.hidden)
        # Exact (erf) GELU: the tanh approximation of BERT4Rec's code is 2x slower on CPU.
        self.act = nn.GELU() if cfg.activation == "gelu" else nn.ReLU()
        self.inner_drop = Dropout(cfg.dropout) if cfg.ffn_inner_dropout else nn.Identity()

    def forward(self, x):
        return self.proj(self.act(self.inner_drop(self.fc(x))))


class Block(nn.Module):
    def __init__(self, cfg: SARConfig):
        super().__init__()
        self.norm_first, self.norm_residual = cfg.norm_first, cfg.norm_residual
        self.attn = SelfAttention(cfg)
        self.ffn = FeedForward(cfg)
        self.norm1 = nn.LayerNorm(cfg.hidden)
        self.norm2 = nn.LayerNorm(cfg.hidden)
        self.drop = Dropout(cfg.dropout)  # on the residual branches
        # ModSAR drops inside the FFN and on the attention probabilities only, not on the branch outputs.
        self.attn_drop = nn.Identity() if cfg.ffn_inner_dropout else self.drop

    def forward(self, x, mask: Mask, capture=None, rows=None):
        """x (B, L, d) -> (B, L, d); with ``rows`` (B,), only the output at those positions, (B, 1, d).

        Every output position depends on the inputs at all positions only through attention's keys and
        values, so a block whose output is read at one position per sequence (the last block, when
        scoring) computes its residual, feed-forward and norms there alone.
        """
        at = (lambda t: _at_rows(t, rows)) if rows is not None else (lambda t: t)
        if self.norm_residual:  # SASRec / ModSAR: x~ = LN(x); x = x~ + f(x~)
            x = self.norm1(x)
            x = at(x) + self.attn_drop(self.attn(x, mask, capture, rows))
            x = self.norm2(x)
            return x + self.drop(self.ffn(x))
        if self.norm_first:  # pre-LN: x + f(LN(x))
            x = at(x) + self.attn_drop(self.attn(self.norm1(x), mask, capture, rows))
            return x + self.drop(self.ffn(self.norm2(x)))
        # BERT4Rec, post-LN: LN(x + f(x))
        x = self.norm1(at(x) + self.attn_drop(self.attn(x, mask, capture, rows)))
        return self.norm2(x + self.drop(self.ffn(x)))


# --- the model -----------------------------------------------------------------------------------------
class SelfAttentiveRecommender(SequentialRecommender):
    def __init__(self, cfg: SARConfig):
        super().__init__(cfg)
        d_item = cfg.hidden // 2 if cfg.num_users else cfg.hidden
        self.item_emb = nn.Embedding(cfg.num_items + 2, d_item)  # 0 pad, 1..N items, N+1 mask
        self.user_emb = nn.Embedding(cfg.num_users, cfg.hidden - d_item) if cfg.num_users else None
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.hidden)
        self.emb_scale = math.sqrt(cfg.hidden) if cfg.embedding_scale else 1.0
        self.emb_norm = nn.LayerNorm(cfg.hidden, eps=cfg.embedding_norm_eps) if cfg.embedding_norm else nn.Identity()
        self.emb_drop = Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.final_norm = nn.LayerNorm(cfg.hidden) if cfg.norm_first else nn.Identity()
        if cfg.output_transform:
            self.transform = nn.Sequential(nn.Linear(cfg.hidden, d_item), nn.GELU(), nn.LayerNorm(d_item))
        else:
            self.transform = None
        self.item_bias = nn.Parameter(torch.zeros(cfg.num_items)) if cfg.item_bias else None
        if cfg.init == "xavier":  # ModSAR: xavier-uniform on every parameter with >= 2 dims
            for name, p in self.named_parameters():
                if name.endswith("attn.qkv.weight"):  # theirs: three Linear(d, d), each initialised on its own
                    for part in p.data.view(3, cfg.hidden, cfg.hidden):
                        nn.init.xavier_uniform_(part)
                elif p.ndim >= 2:
                    nn.init.xavier_uniform_(p)
        else:
            self.apply(self._init)

    @staticmethod
    def _init(m):
        # BERT-style truncated normal(0, 0.02) for weights, zero biases, unit LayerNorm.
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.trunc_normal_(m.weight, std=0.02, a=-0.04, b=0.04)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    @property
    def uses_users(self) -> bool:
        """Whether scoring needs user ids (SSE-PT); the evaluator passes them when True."""
        return self.user_emb is not None

    def hidden_states(self, items, users=None, capture: list | None = None, rows=None):
        """items (B, L) left-aligned ids -> hidden states (B, L, d) (before the output layer).

        ``capture``: a list that receives each layer's post-softmax attention (B, H, L, L).
        ``rows`` (B,): return only the states at these positions, (B, d); the last block is then
        computed at them alone (scoring reads one position per user).
        """
        cfg = self.cfg
        B, L = items.shape
        x = self.item_emb(items)
        if self.emb_scale != 1.0:
            x = x * self.emb_scale
        if self.user_emb is not None:
            if users is None:
                raise ValueError("this model has user embeddings (SSE-PT): pass users")
            x = torch.cat([x, self.user_emb(users)[:, None, :].expand(B, L, -1)], dim=-1)
        x = x + self.pos_emb.weight[:L]
        x = self.emb_drop(self.emb_norm(x))
        mask = attention_mask(items != 0, cfg.attention, cfg.heads, cfg.local_window, cfg.local_heads)
        for i, block in enumerate(self.blocks):
            last = i == len(self.blocks) - 1
            x = block(x, mask, capture, rows if last and capture is None else None)
        if rows is not None:
            x = (x if capture is None else _at_rows(x, rows))[:, 0]
        return self.final_norm(x)

    def states_at(self, items, pos, users=None):
        """The states at ``pos`` (B,), with the last block computed at those positions only."""
        return self.hidden_states(items, users, rows=pos)

    def output_hidden(self, h):
        """Map trunk states to the space of the (tied) output item embeddings.

        With SSE-PT and no output transform, items are scored by the item half of the state (the
        user half would add the same number to every item's score; see protocol.md §2b).
        """
        if self.transform is not None:
            return self.transform(h)
        return h[..., : self.item_emb.embedding_dim] if self.user_emb is not None else h

    def logit_offset(self, h, users):
        """SSE-PT: the user term of the score, (user half of h) . E_user(u), one number per state (else None).

        It is the same for every item, so it changes no ranking and no softmax; the authors' BCE adds it to
        the positive's and the negative's logit alike (protocol.md §2b), and so does the trainer here.
        """
        if self.user_emb is None or self.transform is not None:
            return None
        return (h[..., self.item_emb.embedding_dim :] * self.user_emb(users)).sum(-1)

    def output_weights(self):
        """(N, d_item) output embeddings of items 1..N and their (N,) bias or None."""
        return self.item_emb.weight[1 : self.cfg.num_items + 1], self.item_bias

    @torch.no_grad()
    def attention_maps(self, histories, lengths, users=None):
        """Post-softmax attention of every layer for the evaluation input: (layers, B, H, L, L)."""
        was_training = self.training
        self.eval()
        try:
            inputs, _ = self.eval_inputs(histories, lengths)
            maps: list = []
            self.hidden_states(inputs, users, capture=maps)
            return torch.stack(maps), inputs
        finally:
            self.train(was_training)


# Registered by name (models/interface.py, BUILTIN_MODELS) as the other models are through their entry
# points. No defaults: a case of this model takes its settings from a design preset (sarbench.presets).
SPEC = ModelSpec(
    name="sar", config=SARConfig, build=SelfAttentiveRecommender,
    description="the paper's self-attentive recommender (AE or AR by the mask; presets vanilla and design)",
)
