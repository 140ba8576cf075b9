"""The model: masks do what they claim (AR causal, AE bidirectional, local windows, padding), eval inputs, scores.

Every check compares hidden states of a small float64 model in eval mode (no dropout) before and after
changing one input, so "unchanged" can be asserted to 1e-12 and "changed" to well above that.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from sarbench.models.sar import SARConfig, SelfAttentiveRecommender, attention_mask

N_ITEMS = 20
SAME = dict(rtol=0.0, atol=1e-12)  # "unchanged": float64 rounding only
CHANGED = 1e-9  # "changed": a real dependency moves the output by far more than this


def make_model(seed: int = 0, **kw) -> SelfAttentiveRecommender:
    """A small float64 model in eval mode; weights larger than the 0.02 init so every path matters."""
    torch.manual_seed(seed)
    cfg = SARConfig(**{"num_items": N_ITEMS, "max_len": 12, "hidden": 16, "layers": 1, "heads": 2, **kw})
    model = SelfAttentiveRecommender(cfg).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 2:
                p.normal_(0.0, 0.5)
    return model


def seq(length: int, width: int | None = None, seed: int = 1) -> torch.Tensor:
    """(1, width) left-aligned random items 1..N_ITEMS, zero tail padding."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(1, width or length, dtype=torch.long)
    x[0, :length] = torch.randint(1, N_ITEMS + 1, (length,), generator=g)
    return x


def changed_at(x: torch.Tensor, pos: int) -> torch.Tensor:
    y = x.clone()
    y[0, pos] = y[0, pos] % N_ITEMS + 1  # another item id, still in 1..N
    return y


def position_deltas(model, x) -> torch.Tensor:
    """(L, L): row t holds, per position, the max abs change of the hidden state when item t changes.

    One forward pass over the original sequence and its L one-item variants.
    """
    L = x.shape[1]
    batch = torch.cat([x] + [changed_at(x, t) for t in range(L)])
    with torch.no_grad():
        h = model.hidden_states(batch)
    return (h[1:] - h[:1]).abs().amax(dim=-1)


pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in tests/conftest.py


# --- attention_mask truth tables ------------------------------------------------------------------


def test_attention_mask_truth_tables():
    real = torch.tensor([[True, True, True, False], [True, False, False, False]])
    ae = attention_mask(real, "AE").allowed
    ar = attention_mask(real, "AR").allowed
    assert ae.shape == ar.shape == (2, 1, 4, 4) and ae.dtype == torch.bool
    # AE: every query sees exactly the real keys.
    assert ae[0, 0].int().tolist() == [[1, 1, 1, 0]] * 4
    assert ae[1, 0].int().tolist() == [[1, 0, 0, 0]] * 4
    # AR: real keys at or before the query.
    assert ar[0, 0].int().tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 0]]
    assert ar[1, 0].int().tolist() == [[1, 0, 0, 0]] * 4


def test_attention_mask_local_heads():
    real = torch.ones(1, 5, dtype=torch.bool)
    band = [[int(abs(i - j) <= 1) for j in range(5)] for i in range(5)]
    causal_band = [[int(0 <= i - j <= 1) for j in range(5)] for i in range(5)]
    # two heads, the last one local with window 1; the first stays global
    m = attention_mask(real, "AE", heads=2, window=1, local_heads=1).allowed
    assert m.shape == (1, 2, 5, 5)
    assert m[0, 0].all()
    assert m[0, 1].int().tolist() == band
    m = attention_mask(real, "AR", heads=2, window=1, local_heads=1).allowed
    assert m[0, 0].int().tolist() == [[int(j <= i) for j in range(5)] for i in range(5)]
    assert m[0, 1].int().tolist() == causal_band
    # local_heads >= heads: every head is local
    m = attention_mask(real, "AE", heads=2, window=1, local_heads=5).allowed
    assert m[0, 0].int().tolist() == band and m[0, 1].int().tolist() == band
    # a window without local heads (or local heads without a window) changes nothing
    assert torch.equal(attention_mask(real, "AE", heads=2, window=1, local_heads=0).allowed.expand(1, 2, 5, 5),
                       attention_mask(real, "AE", heads=2).allowed.expand(1, 2, 5, 5))
    # padding keys stay forbidden inside the window
    real = torch.tensor([[True, True, False, False, False]])
    m = attention_mask(real, "AE", heads=1, window=1, local_heads=1).allowed
    assert m[0, 0].int().tolist() == [[int(abs(i - j) <= 1 and j < 2) for j in range(5)] for i in range(5)]


# --- AR never looks ahead, AE does ------------------------------------------------------------


@pytest.mark.parametrize("norm_first,layers,heads", [(False, 2, 2), (True, 2, 1), (False, 1, 1)])
def test_ar_output_never_depends_on_later_items(norm_first, layers, heads):
    model = make_model(attention="AR", norm_first=norm_first, layers=layers, heads=heads)
    deltas = position_deltas(model, seq(10))
    for t, delta in enumerate(deltas):
        torch.testing.assert_close(delta[:t], torch.zeros(t, dtype=delta.dtype), **SAME)
        assert (delta[t:] > CHANGED).all(), f"changing position {t} left a later position unchanged: {delta}"


@pytest.mark.parametrize("norm_first,layers", [(False, 2), (True, 1)])
def test_ae_output_depends_on_every_item(norm_first, layers):
    model = make_model(attention="AE", norm_first=norm_first, layers=layers)
    for t, delta in enumerate(position_deltas(model, seq(10))):
        assert (delta > CHANGED).all(), f"changing position {t} left some position unchanged: {delta}"


def test_attention_maps_are_causal_for_ar_and_full_for_ae():
    hist = seq(6, width=8)
    lengths = torch.tensor([6])
    for attention in ("AR", "AE"):
        model = make_model(attention=attention, layers=2)
        maps, inputs = model.attention_maps(hist, lengths)
        n = int((inputs != 0).sum())  # AE appends [MASK]: 7 real positions
        assert maps.shape == (2, 1, 2, inputs.shape[1], inputs.shape[1])
        real_rows = maps[..., :n, :]
        torch.testing.assert_close(real_rows.sum(-1), torch.ones_like(real_rows.sum(-1)))
        assert (real_rows[..., n:] == 0).all(), "a real query attends to padding"
        upper = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
        if attention == "AR":
            assert (real_rows[..., :n][..., upper] == 0).all()
        else:
            assert (real_rows[..., :n] > 0).all()


# --- local windows --------------------------------------------------------------------------------


@pytest.mark.parametrize("attention", ["AE", "AR"])
@pytest.mark.parametrize("layers,window", [(1, 1), (1, 2), (2, 1), (3, 2)])
def test_local_window_receptive_field(attention, layers, window):
    """All heads local: position i depends on item j only if |i - j| <= layers * window (and j <= i for AR)."""
    model = make_model(attention=attention, layers=layers, heads=2, local_window=window, local_heads=2)
    L = 12
    reach = layers * window
    for j, delta in enumerate(position_deltas(model, seq(L))):
        for i in range(L):
            sees = abs(i - j) <= reach and (attention == "AE" or j <= i)
            if sees:
                assert delta[i] > CHANGED, f"position {i} ignores item {j} within reach {reach}"
            else:
                assert delta[i] <= SAME["atol"], f"position {i} depends on item {j} beyond reach {reach}"


def test_global_head_escapes_the_window():
    """With one local and one global head, a far item does reach the query."""
    model = make_model(attention="AE", layers=1, heads=2, local_window=1, local_heads=1)
    assert (position_deltas(model, seq(10))[9] > CHANGED).all()


# --- padding ----------------------------------------------------------------------------------


@pytest.mark.parametrize("attention", ["AE", "AR"])
@pytest.mark.parametrize("local", [False, True])
def test_padding_never_reaches_real_positions(attention, local):
    kw = dict(local_window=2, local_heads=1) if local else {}
    model = make_model(attention=attention, layers=2, **kw)
    n = 5
    with torch.no_grad():
        ref = model.hidden_states(seq(n, width=n))[0]
        for width in (6, 9, 12):
            out = model.hidden_states(seq(n, width=width))[0, :n]
            torch.testing.assert_close(out, ref, **SAME)
        # another padding embedding: real positions unchanged
        x = seq(n, width=10)
        before = model.hidden_states(x)[0, :n]
        model.item_emb.weight[0] += 3.0
        after = model.hidden_states(x)[0, :n]
    torch.testing.assert_close(after, before, **SAME)


def test_fused_and_explicit_attention_agree_on_real_positions():
    """The fused AR path (is_causal, no padding mask) equals the explicit masked softmax at real positions."""
    for attention, kw in itertools.product(("AR", "AE"), ({}, {"local_window": 1, "local_heads": 1})):
        model = make_model(attention=attention, layers=2, **kw)
        x = torch.cat([seq(7, width=10, seed=3), seq(4, width=10, seed=4), seq(10, seed=5)])
        real = x != 0
        with torch.no_grad():
            fused = model.hidden_states(x)
            explicit = model.hidden_states(x, capture=[])
        torch.testing.assert_close(fused[real], explicit[real], rtol=0, atol=1e-10)


# --- evaluation inputs and scores ---------------------------------------------------------------


def test_eval_inputs_ar_reads_last_position():
    model = make_model(attention="AR", max_len=4)
    hist = torch.tensor([[1, 2, 0, 0], [1, 2, 3, 4], [5, 0, 0, 0]])
    lengths = torch.tensor([2, 4, 1])
    inputs, pos = model.eval_inputs(hist, lengths)
    assert torch.equal(inputs, hist)
    assert pos.tolist() == [1, 3, 0]


def test_eval_inputs_ae_appends_mask_after_last_max_len_minus_1_items():
    model = make_model(attention="AE", max_len=4)
    M = model.cfg.mask_token
    hist = torch.tensor([[1, 2, 0, 0], [1, 2, 3, 4], [5, 0, 0, 0], [6, 7, 8, 0]])
    lengths = torch.tensor([2, 4, 1, 3])
    inputs, pos = model.eval_inputs(hist, lengths)
    assert inputs.tolist() == [[1, 2, M, 0], [2, 3, 4, M], [5, M, 0, 0], [6, 7, 8, M]]
    assert pos.tolist() == [2, 3, 1, 3]
    # a history matrix narrower than max_len still gets its [MASK] slot
    inputs, pos = model.eval_inputs(torch.tensor([[1, 2, 3], [4, 0, 0]]), torch.tensor([3, 1]))
    assert inputs.tolist() == [[1, 2, 3, M], [4, M, 0, 0]]
    assert pos.tolist() == [3, 1]


@pytest.mark.parametrize("attention", ["AE", "AR"])
@pytest.mark.parametrize("bias,transform", [(True, True), (False, False)])
def test_score_is_tied_output_layer_at_prediction_slot(attention, bias, transform):
    model = make_model(attention=attention, item_bias=bias, output_transform=transform)
    if bias:
        with torch.no_grad():
            model.item_bias.normal_()
    hist = torch.cat([seq(5, width=12, seed=7), seq(12, seed=8)])
    lengths = torch.tensor([5, 12])
    scores = model.score(hist, lengths)
    assert scores.shape == (2, N_ITEMS + 1)
    assert torch.isneginf(scores[:, 0]).all()
    inputs, pos = model.eval_inputs(hist, lengths)
    with torch.no_grad():
        h = model.hidden_states(inputs)[torch.arange(2), pos]
        if transform:
            h = model.transform(h)
        expected = h @ model.item_emb.weight[1 : N_ITEMS + 1].T
        if bias:
            expected = expected + model.item_bias
    torch.testing.assert_close(scores[:, 1:], expected, rtol=0, atol=1e-10)


def test_score_ignores_dropout_and_is_repeatable():
    model = make_model(attention="AE", dropout=0.5, attn_dropout=0.5).train()
    hist, lengths = seq(6, width=12), torch.tensor([6])
    model.eval()
    a = model.score(hist, lengths)
    b = model.score(hist, lengths)
    assert torch.equal(a, b)
    model.train()
    with torch.no_grad():
        noisy = model.hidden_states(hist)
        assert not torch.equal(noisy, model.hidden_states(hist)), "training mode should apply dropout"


def test_user_embeddings_need_users():
    torch.manual_seed(0)
    model = SelfAttentiveRecommender(SARConfig(num_items=N_ITEMS, hidden=16, num_users=3)).eval()
    x = seq(5, width=8)
    with pytest.raises(ValueError, match="pass users"):
        model.hidden_states(x)
    a = model.hidden_states(x, torch.tensor([0]))
    b = model.hidden_states(x, torch.tensor([2]))
    assert a.shape == (1, 8, 16) and not torch.allclose(a, b)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(attention="causal"), "attention must be"),
        (dict(hidden=30, heads=4), "divisible by heads"),
        (dict(activation="tanh"), "activation must be"),
        (dict(hidden=15, heads=1, num_users=3), "hidden must be even"),
    ],
)
def test_config_rejects_bad_values(kw, match):
    with pytest.raises(ValueError, match=match):
        SARConfig(num_items=5, **kw)


# --- the hand-written dropout paths -------------------------------------------------------------


def test_keep_mask_decides_by_the_7_bit_number_and_refines_only_its_edge():
    """_keep_mask drops every unit whose 7-bit number u is below floor(128 p), keeps every unit above
    it, and draws again only for u == floor(128 p); at a multiple of 1/128 it is exactly u >= 128 p."""
    from sarbench.models.kernels import _keep_mask

    n = 4096  # 4,096 random bytes: every 7-bit value occurs (checked at the end)
    for p in (1 / 128, 26 / 128, 0.5, 127 / 128, 0.2, 0.1, 0.33):
        torch.manual_seed(7)
        keep = _keep_mask((n,), p, "cpu")
        torch.manual_seed(7)  # the same draw, read as plain bytes
        u = torch.empty((n + 7) // 8, dtype=torch.int64).random_().view(torch.uint8)[:n] & 127
        t = int(p * 128)
        assert keep.dtype == torch.uint8 and keep.shape == (n,)
        assert torch.equal(keep.bool()[u != t], (u > t)[u != t]), p
        if p * 128 == t:
            assert torch.equal(keep.bool(), u >= t), p
    assert len(torch.unique(u)) == 128


@pytest.mark.parametrize("p", [0.2, 0.1, 0.05, 0.5])
def test_byte_dropout_drops_with_the_configured_probability(p):
    """The dropped fraction is p itself, not p rounded to 1/128 (0.2 used to train as 26/128 = 0.203)."""
    from sarbench.models.kernels import dropout

    torch.manual_seed(0)
    n = 4_000_000
    x = torch.ones(n, requires_grad=True)
    y = dropout(x, p, training=True)
    dropped = (y == 0).double().mean().item()
    sigma = (p * (1 - p) / n) ** 0.5  # 2e-4 at p = 0.2
    assert abs(dropped - p) < 5 * sigma
    rounded = round(p * 128) / 128
    if rounded != p:  # and far from the old rounding's share
        assert abs(dropped - rounded) > 5 * sigma
    assert abs(y.double().mean().item() - 1.0) < 10 * sigma / (1 - p)
    y.sum().backward()
    assert torch.equal(x.grad == 0, y == 0)


def test_attention_dropout_drops_with_the_configured_probability():
    """dropout_attention drops each attention probability with probability p (not p rounded to 1/128)."""
    from sarbench.models.kernels import dropout_attention

    torch.manual_seed(0)
    B, L = 64, 250  # 4M probabilities: sigma of the dropped share 2e-4 at p = 0.2
    q = torch.zeros(B, 1, L, 1, requires_grad=True)  # equal scores: every probability is 1/L
    v = torch.ones(B, 1, L, 1)  # y sums each query's kept probabilities, times 1 / (1 - p)
    y = dropout_attention(q, q, v, torch.zeros(1, 1, 1, L), 0.2)
    dropped = 1 - (y * (1 - 0.2)).mean().item()
    assert abs(dropped - 0.2) < 1e-3  # 26/128 = 0.2031 would fail


@pytest.mark.parametrize("attention,heads,local", [("AR", 1, 0), ("AE", 1, 0), ("AE", 2, 0), ("AR", 2, 1), ("AE", 2, 2)])
def test_dropout_attention_equals_composed_ops(attention, heads, local):
    """The hand-written attention (bias add, softmax, dropout, @ v) equals the composed torch ops
    with the same random draws, in value and gradient, wherever a query has an allowed key."""
    import math

    from sarbench.models.kernels import additive_bias, dropout, dropout_attention

    B, L, hs = 3, 7, 4
    real = torch.ones(B, L, dtype=torch.bool)
    real[1, 5:] = False
    real[2, 2:] = False
    allowed = attention_mask(real, attention, heads, 2 if local else 0, local).allowed
    live = allowed.expand(B, heads, L, L).any(-1, keepdim=True)  # queries with at least one key
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(B, heads, L, hs, dtype=torch.float64, generator=gen, requires_grad=True) for _ in range(3))
    weights = torch.randn(B, heads, L, hs, dtype=torch.float64, generator=gen) * live

    torch.manual_seed(1)
    fast = dropout_attention(q, k, v, additive_bias(allowed, torch.float64), 0.3)
    g_fast = torch.autograd.grad((fast * weights).sum(), (q, k, v))
    torch.manual_seed(1)
    att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
    att = att.masked_fill(~allowed, torch.finfo(att.dtype).min).softmax(-1)
    slow = dropout(att, 0.3, training=True) @ v
    g_slow = torch.autograd.grad((slow * weights).sum(), (q, k, v))

    torch.testing.assert_close(fast * live, slow * live, rtol=0, atol=1e-12)
    for a, b in zip(g_fast, g_slow):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_ar_is_causal_in_training_mode_with_dropout():
    """With dropout on (the hand-written attention path), a later item still never reaches an earlier output."""
    model = make_model(attention="AR", layers=2, dropout=0.3, attn_dropout=0.3).train()
    x = seq(10)
    y = x.clone()
    y[0, 6] = y[0, 6] % N_ITEMS + 1  # change the item at position 6
    torch.manual_seed(5)
    a = model.hidden_states(x)
    torch.manual_seed(5)
    b = model.hidden_states(y)
    torch.testing.assert_close(a[0, :6], b[0, :6], rtol=0, atol=0)
    assert not torch.equal(a[0, 6:], b[0, 6:])
