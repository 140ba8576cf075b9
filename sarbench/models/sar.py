"""One self-attentive sequential recommender; AE and AR differ only in the attention mask.

    AE (BERT4Rec-like): bidirectional mask, trained to recover [MASK]ed items; at evaluation a
        [MASK] is appended after the history and its output predicts the next item.
    AR (SASRec-like):   causal mask, trained to predict the next item at every position; at
        evaluation the output at the last history position predicts the next item.

Everything else (embeddings, blocks, output layer) is shared, so an AE-vs-AR comparison changes one
thing. The design-space variants of the paper are knobs of the same model: a local attention
window on some or all heads (Local-attn, after LOCKER), user embeddings with stochastic shared
embeddings (SSE-PT), and the loss (see losses.py).

Vocabulary: 0 = padding, 1..N = items, N+1 = [MASK]. Sequences are left-aligned ("tail padding"):
a user's items sit at positions 0..len-1, padding after them, positions are counted from the left.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class SARConfig:
    num_items: int  # N; ids 1..N, 0 = padding, N+1 = [MASK]
    attention: str = "AR"  # "AR" = causal mask, "AE" = bidirectional mask
    max_len: int = 50
    hidden: int = 64
    layers: int = 2
    heads: int = 1
    dropout: float = 0.2  # hidden (embedding, residual branch) dropout
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

    def __post_init__(self):
        if self.attention not in ("AE", "AR"):
            raise ValueError(f"attention must be 'AE' or 'AR', got {self.attention!r}")
        if self.hidden % self.heads:
            raise ValueError(f"hidden={self.hidden} must be divisible by heads={self.heads}")
        if self.activation not in ("gelu", "relu"):
            raise ValueError(f"activation must be 'gelu' or 'relu', got {self.activation!r}")
        if self.num_users and self.hidden % 2:
            raise ValueError("SSE-PT splits the hidden size between items and users: hidden must be even")

    @property
    def mask_token(self) -> int:
        return self.num_items + 1


def attention_mask(real: torch.Tensor, attention: str, heads: int = 1, window: int = 0, local_heads: int = 0):
    """Which keys each query may attend to: (B, H or 1, L, L) bool, True = allowed.

    This function is the whole difference between AE and AR:
        AE: every real (non-padding) key;
        AR: every real key at or before the query (causal).
    A local window additionally restricts the last ``local_heads`` heads to |i - j| <= window.
    """
    L = real.shape[1]
    allowed = real[:, None, None, :]  # (B, 1, 1, L): keys must be items, not padding
    i = torch.arange(L, device=real.device)
    if attention == "AR":
        allowed = allowed & (i[None, :] <= i[:, None])  # (B, 1, L, L): key j <= query i
    if window > 0 and local_heads > 0:
        near = (i[None, :] - i[:, None]).abs() <= window  # (L, L)
        is_local = torch.arange(heads, device=real.device) >= heads - min(local_heads, heads)
        head_mask = near | ~is_local[:, None, None]  # (H, L, L)
        allowed = allowed & head_mask
    return allowed.expand(-1, -1, L, -1) if allowed.shape[2] == 1 else allowed


def _drop_threshold(p: float) -> int:
    """The drop probability as t/128 with t in 1..127, the resolution of ``_keep_mask``."""
    return min(127, max(1, round(p * 128)))


def _keep_mask(shape, threshold: int, device) -> torch.Tensor:
    """uint8 0/1 mask, 0 with probability threshold / 128, from random bytes.

    Each int64 from the generator gives eight 7-bit uniform numbers u; keep = (u + 128 - t) >> 7
    is 1 exactly when u >= t. Integer ops in place on the bytes: several times cheaper on CPU than
    torch's Bernoulli draw, a float compare or masked_fill, and a uint8 factor multiplies fast.
    """
    n = math.prod(shape)
    bytes_ = torch.empty((n + 7) // 8, dtype=torch.int64, device=device).random_()
    u = bytes_.view(torch.uint8)[:n].view(shape)
    return u.bitwise_and_(127).add_(128 - threshold).bitwise_right_shift_(7)


class _ByteDropout(torch.autograd.Function):
    """Dropout with the mask of ``_keep_mask``: the drop probability is rounded to a multiple of
    1/128 (0.2 -> 26/128 = 0.203; 0.5 exact). Kept values are scaled by 1 / (1 - p_effective), so
    the expectation is unchanged.
    """

    @staticmethod
    def forward(ctx, x, threshold: int):
        keep = _keep_mask(x.shape, threshold, x.device)
        ctx.save_for_backward(keep)
        ctx.scale = 128.0 / (128 - threshold)
        return (x * keep).mul_(ctx.scale)

    @staticmethod
    def backward(ctx, grad):
        (keep,) = ctx.saved_tensors
        return (grad * keep).mul_(ctx.scale), None


def dropout(x, p: float, training: bool):
    """F.dropout, with the cheaper byte-mask variant on CPU (see _ByteDropout)."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or not x.requires_grad:
        return F.dropout(x, p, training=True)
    return _ByteDropout.apply(x, _drop_threshold(p))


class Dropout(nn.Module):
    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x):
        return dropout(x, self.p, self.training)


def additive_bias(allowed: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """The bool mask as a float bias for the scores: 0 where allowed, the most negative float elsewhere.

    Finite rather than -inf: a query with no allowed key (a padding query under a local window) gets
    a uniform softmax instead of NaN, and padding rows never reach the loss. A mask that was only
    broadcast over the queries (AE) stays one row per user, so the bias is as small as the mask.
    """
    if allowed.stride(2) == 0:
        allowed = allowed[:, :, :1]
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(~allowed, torch.finfo(dtype).min)


class _DropoutAttention(torch.autograd.Function):
    """softmax(q k^T * scale + bias) with dropout on the probabilities, then @ v; batched (n, L, hs).

    Written by hand because on CPU the attention probabilities (n x L x L) dominate memory traffic:
    this makes 4 passes over them forward and 3 backward (scores with the bias, softmax, dropout,
    and their gradients), where composing torch ops makes twice as many. The dropout mask drops
    without rescaling; the 1 / keep factor is applied to the (much smaller) output instead.
    """

    @staticmethod
    def forward(ctx, q, k, v, bias, threshold: int, scale: float):
        probs = torch.baddbmm(bias, q, k.transpose(1, 2), alpha=scale).softmax(dim=-1)
        keep = _keep_mask(probs.shape, threshold, q.device)
        kept = probs * keep
        keep_scale = 128.0 / (128 - threshold)
        ctx.save_for_backward(q, k, v, probs, kept, keep)
        ctx.scale, ctx.keep_scale = scale, keep_scale
        return torch.bmm(kept, v).mul_(keep_scale)

    @staticmethod
    def backward(ctx, grad_y):
        q, k, v, probs, kept, keep = ctx.saved_tensors
        grad_y = grad_y * ctx.keep_scale
        grad_v = torch.bmm(kept.transpose(1, 2), grad_y)
        grad_kept = torch.bmm(grad_y, v.transpose(1, 2)) * keep
        grad_scores = torch._softmax_backward_data(grad_kept, probs, -1, probs.dtype)
        grad_q = torch.bmm(grad_scores, k).mul_(ctx.scale)
        grad_k = torch.bmm(grad_scores.transpose(1, 2), q).mul_(ctx.scale)
        return grad_q, grad_k, grad_v, None, None, None


def dropout_attention(q, k, v, bias, p: float):
    """Attention with dropout on the probabilities; q, k, v (B, H, L, hs), bias broadcastable to (B, H, L, L).

    Same distribution as the composed ops: the drop probability is rounded to 1/128 like ``dropout``.
    """
    B, H, L, hs = q.shape
    threshold = _drop_threshold(p)
    Lq = bias.shape[2]  # 1 when the bias does not vary over queries
    if bias.shape[0] == 1 and bias.shape[1] == 1:
        bias = bias.reshape(1, Lq, L)
    else:
        bias = bias.expand(B, H, Lq, L).reshape(B * H, Lq, L)
    y = _DropoutAttention.apply(q.reshape(B * H, L, hs), k.reshape(B * H, L, hs), v.reshape(B * H, L, hs),
                                bias, threshold, 1.0 / math.sqrt(hs))
    return y.view(B, H, L, hs)


class SelfAttention(nn.Module):
    def __init__(self, cfg: SARConfig):
        super().__init__()
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.hidden, 3 * cfg.hidden)
        self.out = nn.Linear(cfg.hidden, cfg.hidden)
        self.attn_dropout = cfg.attn_dropout

    def forward(self, x, allowed, causal_only: bool, capture: list | None = None, bias=None):
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, H, L, hs)
        p = self.attn_dropout if self.training else 0.0
        if capture is None and p == 0.0:
            # Fused kernel. For a plain causal mask it needs no mask tensor: with tail padding a real
            # query never sees padding under the causal mask, so "causal" equals "causal & real keys".
            if causal_only:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        elif capture is None and bias is not None and x.device.type == "cpu":
            y = dropout_attention(q, k, v, bias, p)  # same maths as below, fewer passes over L x L
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.shape[-1]))  # (B, H, L, L)
            att = att.masked_fill(~allowed, torch.finfo(att.dtype).min).softmax(dim=-1)
            if capture is not None:
                capture.append(att.detach())
            att = dropout(att, p, training=True)
            y = att @ v  # (B, H, L, hs)
        return self.out(y.transpose(1, 2).reshape(B, L, D))


class FeedForward(nn.Module):
    def __init__(self, cfg: SARConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.hidden, 4 * cfg.hidden)
        self.proj = nn.Linear(4 * cfg.hidden, cfg.hidden)
        # Exact (erf) GELU: the tanh approximation of BERT4Rec's code is 2x slower on CPU.
        self.act = nn.GELU() if cfg.activation == "gelu" else nn.ReLU()

    def forward(self, x):
        return self.proj(self.act(self.fc(x)))


class Block(nn.Module):
    def __init__(self, cfg: SARConfig):
        super().__init__()
        self.norm_first = cfg.norm_first
        self.attn = SelfAttention(cfg)
        self.ffn = FeedForward(cfg)
        self.norm1 = nn.LayerNorm(cfg.hidden)
        self.norm2 = nn.LayerNorm(cfg.hidden)
        self.drop = Dropout(cfg.dropout)

    def forward(self, x, allowed, causal_only, capture=None, bias=None):
        if self.norm_first:  # SASRec: x + f(LN(x))
            x = x + self.drop(self.attn(self.norm1(x), allowed, causal_only, capture, bias))
            return x + self.drop(self.ffn(self.norm2(x)))
        # BERT4Rec: LN(x + f(x))
        x = self.norm1(x + self.drop(self.attn(x, allowed, causal_only, capture, bias)))
        return self.norm2(x + self.drop(self.ffn(x)))


class SelfAttentiveRecommender(nn.Module):
    def __init__(self, cfg: SARConfig):
        super().__init__()
        self.cfg = cfg
        d_item = cfg.hidden // 2 if cfg.num_users else cfg.hidden
        self.item_emb = nn.Embedding(cfg.num_items + 2, d_item)  # 0 pad, 1..N items, N+1 mask
        self.user_emb = nn.Embedding(cfg.num_users, cfg.hidden - d_item) if cfg.num_users else None
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.hidden)
        self.emb_norm = nn.LayerNorm(cfg.hidden, eps=cfg.embedding_norm_eps) if cfg.embedding_norm else nn.Identity()
        self.emb_drop = Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.final_norm = nn.LayerNorm(cfg.hidden) if cfg.norm_first else nn.Identity()
        if cfg.output_transform:
            self.transform = nn.Sequential(
                nn.Linear(cfg.hidden, d_item), nn.GELU(), nn.LayerNorm(d_item)
            )
        else:
            self.transform = None
        self.item_bias = nn.Parameter(torch.zeros(cfg.num_items)) if cfg.item_bias else None
        self.apply(self._init)

    @staticmethod
    def _init(m):
        # BERT-style truncated normal(0, 0.02) for weights, zero biases, unit LayerNorm.
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.trunc_normal_(m.weight, std=0.02, a=-0.04, b=0.04)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    # --- the trunk ---------------------------------------------------------------------------
    def hidden_states(self, items, users=None, capture: list | None = None):
        """items (B, L) left-aligned ids -> hidden states (B, L, d) (before the output layer).

        ``capture``: a list that receives each layer's post-softmax attention (B, H, L, L).
        """
        cfg = self.cfg
        B, L = items.shape
        real = items != 0
        x = self.item_emb(items)
        if self.user_emb is not None:
            if users is None:
                raise ValueError("this model has user embeddings (SSE-PT): pass users")
            x = torch.cat([x, self.user_emb(users)[:, None, :].expand(B, L, -1)], dim=-1)
        x = x + self.pos_emb.weight[:L]
        x = self.emb_drop(self.emb_norm(x))
        allowed = attention_mask(real, cfg.attention, cfg.heads, cfg.local_window, cfg.local_heads)
        causal_only = cfg.attention == "AR" and not (cfg.local_window > 0 and cfg.local_heads > 0)
        bias = None
        if self.training and cfg.attn_dropout > 0 and capture is None:
            # The dropout-attention path adds the mask to the scores; with tail padding a causal mask
            # alone is exact for real queries (see SelfAttention), and one (L, L) bias serves all users.
            bias = additive_bias(torch.ones(L, L, dtype=torch.bool, device=items.device).tril()[None, None]
                                 if causal_only else allowed, x.dtype)
        for block in self.blocks:
            x = block(x, allowed, causal_only, capture, bias)
        return self.final_norm(x)

    @property
    def uses_users(self) -> bool:
        """Whether scoring needs user ids (SSE-PT); the evaluator passes them when True."""
        return self.user_emb is not None

    def output_hidden(self, h):
        """Map trunk states to the space of the (tied) output item embeddings.

        With SSE-PT and no output transform, items are scored by the item half of the state (the
        user half would add the same number to every item's score; see protocol.md §2b).
        """
        if self.transform is not None:
            return self.transform(h)
        return h[..., : self.item_emb.embedding_dim] if self.user_emb is not None else h

    def output_weights(self):
        """(N, d_item) output embeddings of items 1..N and their (N,) bias or None."""
        return self.item_emb.weight[1 : self.cfg.num_items + 1], self.item_bias

    # --- evaluation ----------------------------------------------------------------------------
    def history_window(self, max_len: int) -> int:
        """History items in the evaluation input: AR reads max_len, AE max_len - 1 and a [MASK]."""
        return max_len if self.cfg.attention == "AR" else max(1, min(max_len, self.cfg.max_len - 1))

    def eval_inputs(self, histories, lengths):
        """Place the prediction slot: AR reads the last history position; AE appends [MASK].

        ``histories`` (B, L) are each user's last min(len, max_len) items, left-aligned.
        Returns (inputs, position of the prediction per user).
        """
        if self.cfg.attention == "AR":
            return histories, lengths - 1
        L = histories.shape[1]
        # AE: keep the last max_len-1 history items, then [MASK].
        keep = torch.clamp(lengths, max=self.cfg.max_len - 1)
        shift = lengths - keep  # drop the oldest items of full-length histories
        idx = torch.arange(L, device=histories.device)[None, :] + shift[:, None]
        shifted = torch.gather(histories, 1, idx.clamp(max=L - 1)) * (idx < lengths[:, None])
        width = min(L + 1, self.cfg.max_len)
        inputs = torch.zeros(len(histories), width, dtype=histories.dtype, device=histories.device)
        inputs[:, : min(L, width)] = shifted[:, :width]
        inputs[torch.arange(len(histories), device=histories.device), keep] = self.cfg.mask_token
        return inputs, keep

    @torch.no_grad()
    def score(self, histories, lengths, users=None):
        """Scores (B, N + 1) for ids 0..N (column 0, padding, is -inf)."""
        inputs, pos = self.eval_inputs(histories, lengths)
        h = self.hidden_states(inputs, users)
        h = self.output_hidden(h[torch.arange(len(h), device=h.device), pos])  # (B, d_item)
        w, b = self.output_weights()
        logits = h @ w.T
        if b is not None:
            logits = logits + b
        pad = torch.full((len(h), 1), float("-inf"), device=h.device, dtype=logits.dtype)
        return torch.cat([pad, logits], dim=1)

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
