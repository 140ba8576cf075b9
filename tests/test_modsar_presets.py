"""The design space of Table 5 does what the paper (and the authors' code) says, group by group.

local_attn: a +-2 window on the last head only (AR: j in [i-2, i]); ssept: stochastic shared
embeddings replace training inputs only, never labels or evaluation inputs; loss_bpr / loss_bce:
values by hand, negatives as the authors drew them (AR: outside every target of the sequence; AE:
any item but the position's own); the modular network's xavier init and sqrt(d) scaling.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sarbench.data import SequenceDataset, SyntheticConfig, make_synthetic
from sarbench.models.losses import sample_negatives, sampled_loss
from sarbench.models.sar import SARConfig, SelfAttentiveRecommender, attention_mask
from sarbench.presets import preset
from sarbench.train import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def split():
    return make_synthetic(SyntheticConfig(num_users=40, num_items=30, min_length=5, max_length=16, seed=8)).split()


def small(name, split, **model):
    mc, tc = preset(name, "synthetic", split.dataset.num_items, split.dataset.num_users)
    return replace(mc, hidden=16, max_len=12, **model), replace(tc, progress=False, batch_size=8)


# --- local_attn --------------------------------------------------------------------------------------
@pytest.mark.parametrize("attention", ["AE", "AR"])
def test_local_attn_window_is_plus_minus_two_on_the_last_head_only(split, attention):
    untuned, _ = small(f"local-{attention}", split)
    assert untuned.heads == 1 and untuned.local_heads == 1  # the authors' base run file: one head, local
    mc, _ = small(f"local-{attention}", split, heads=2)  # their grid's heads=2: a global head beside it
    L = 8
    allowed = attention_mask(torch.ones(1, L, dtype=torch.bool), mc.attention, mc.heads, mc.local_window,
                             mc.local_heads).allowed[0]
    for i in range(L):
        for j in range(L):
            seen = j <= i if attention == "AR" else True
            assert bool(allowed[0, i, j]) == seen  # the global head
            local = (i - 2 <= j <= i) if attention == "AR" else abs(i - j) <= 2
            assert bool(allowed[1, i, j]) == local, (i, j)


def test_local_attn_output_ignores_items_outside_the_window():
    """One local head only (heads=1, all local): position 6 of an AE model in one layer sees 4..8 and nothing else."""
    torch.manual_seed(0)
    cfg = SARConfig(num_items=20, attention="AE", max_len=12, hidden=8, layers=1, heads=1, local_window=2,
                    local_heads=1, dropout=0.0, attn_dropout=0.0, norm_first=True, norm_residual=True)
    model = SelfAttentiveRecommender(cfg).double().eval()
    x = torch.randint(1, 21, (1, 12))
    base = model.hidden_states(x)[0, 6]
    for t in range(12):
        y = x.clone()
        y[0, t] = y[0, t] % 20 + 1
        changed = not torch.allclose(model.hidden_states(y)[0, 6], base, rtol=0, atol=1e-12)
        assert changed == (abs(t - 6) <= 2), t


# --- ssept ---------------------------------------------------------------------------------------------
def test_sse_replaces_training_inputs_only_never_labels(split):
    mc, tc = small("ssept-AR", split, sse_item_prob=0.9, sse_user_prob=0.9)
    plain = replace(mc, sse_item_prob=0.0, sse_user_prob=0.0)
    idx = torch.arange(16)
    noisy_tr, plain_tr = Trainer(mc, tc, split), Trainer(plain, tc, split)
    x, users, y = noisy_tr._batch(idx)
    x0, users0, y0 = plain_tr._batch(idx)
    assert torch.equal(y, y0), "labels must never be replaced"
    assert (x != x0).float().mean() > 0.5 and (users != users0).any(), "with p=0.9 most inputs are replaced"
    assert torch.equal(x == 0, x0 == 0), "padding stays padding"
    noisy_tr.model.eval()
    xe, ue, ye = noisy_tr._batch(idx)
    assert torch.equal(xe, x0) and torch.equal(ue, users0), "no replacement outside training"


def test_sse_never_touches_evaluation(split):
    """Evaluation of the same weights is identical whatever the SSE probabilities (the authors' code applied them)."""
    from sarbench.evaluate import evaluate

    mc, tc = small("ssept-AE", split)
    a = Trainer(mc, tc, split).model
    b = Trainer(replace(mc, sse_item_prob=0.9, sse_user_prob=0.9), tc, split).model
    b.load_state_dict(a.state_dict())
    ra, rb = evaluate(a.eval(), split), evaluate(b.eval(), split)
    assert np.array_equal(ra.ranks, rb.ranks)


# --- losses and negatives ----------------------------------------------------------------------------
def test_bpr_and_bce_by_hand():
    h = torch.tensor([[1.0, 0.0], [0.5, 2.0]])
    w = torch.tensor([[1.0, 1.0], [0.0, 2.0], [-1.0, 0.5]])  # items 1, 2, 3
    pos, neg = torch.tensor([1, 2]), torch.tensor([[3], [1]])
    s_pos = [1.0 * 1 + 0 * 1, 0.5 * 0 + 2 * 2]  # 1.0, 4.0
    s_neg = [1.0 * -1 + 0 * 0.5, 0.5 * 1 + 2 * 1]  # -1.0, 2.5
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731 - softplus
    bpr = (sp(s_neg[0] - s_pos[0]) + sp(s_neg[1] - s_pos[1])) / 2
    bce = (sp(-s_pos[0]) + sp(-s_pos[1])) / 2 + (sp(s_neg[0]) + sp(s_neg[1])) / 2
    assert sampled_loss("bpr", h, w, None, pos, neg).item() == pytest.approx(bpr, rel=1e-6)
    assert sampled_loss("bce", h, w, None, pos, neg).item() == pytest.approx(bce, rel=1e-6)


def test_ar_negatives_avoid_every_target_of_their_sequence():
    g = torch.Generator().manual_seed(0)
    targets = torch.tensor([[1, 2, 3, 4, 0], [5, 6, 0, 0, 0]])  # two sequences' targets over items 1..8
    rows = torch.tensor([0, 0, 0, 0, 1, 1])
    pos = targets[targets != 0]
    draws = torch.cat([sample_negatives(pos, 8, 3, generator=g, exclude=(targets, rows)) for _ in range(300)], 1)
    for r, row in enumerate(rows.tolist()):
        got = set(draws[r].tolist())
        allowed = set(range(1, 9)) - set(targets[row].tolist())
        assert got == allowed, (r, got)  # never a target of the sequence, every other item drawn
    # uniform over what is allowed: sequence 0 may draw 5..8, each about a quarter of the time
    counts = torch.bincount(draws[:4].flatten(), minlength=9)[5:].double()
    assert (counts / counts.sum() - 0.25).abs().max() < 0.03


def test_ae_negatives_avoid_only_their_own_target():
    pos = torch.full((20_000,), 3)
    neg = sample_negatives(pos, 5, 1, generator=torch.Generator().manual_seed(1)).flatten()
    assert 3 not in neg.tolist() and set(neg.tolist()) == {1, 2, 4, 5}


def _spy_on_negatives(monkeypatch) -> dict:
    """Record the ``exclude`` argument of the trainer's negative sampling in the returned dict."""
    import sarbench.train as train

    seen = {}
    real = train.sample_negatives

    def spy(positives, num_items, count, generator=None, exclude=None):
        seen["exclude"] = exclude
        return real(positives, num_items, count, generator=generator, exclude=exclude)

    monkeypatch.setattr(train, "sample_negatives", spy)
    return seen


def test_the_trainer_draws_sequence_negatives_for_ar_bce(split, monkeypatch):
    seen = _spy_on_negatives(monkeypatch)
    for attention, expected in (("AR", True), ("AE", False)):
        mc, tc = small(f"bce-{attention}", split)
        tr = Trainer(mc, tc, split)
        x, users, y = tr._batch(torch.arange(8))
        tr._loss(x, users, y, torch.arange(8))
        assert (seen["exclude"] is not None) == expected, attention


def test_ar_negatives_avoid_every_target_of_the_users_whole_training_sequence(monkeypatch):
    """As the authors' ARDataset: the excluded set is s[1:] of the whole training sequence, not the window's."""
    ds = make_synthetic(SyntheticConfig(num_users=12, num_items=60, min_length=20, max_length=30, seed=3))
    split = ds.split()
    mc, tc = preset("bce-AR", "synthetic", ds.num_items)
    mc, tc = replace(mc, hidden=8, max_len=6), replace(tc, progress=False, batch_size=12)
    assert tc.negatives == "user"
    seen = _spy_on_negatives(monkeypatch)
    tr = Trainer(mc, tc, split)
    idx = torch.arange(len(tr.users))
    x, users, y = tr._batch(idx)
    tr._loss(x, users, y, idx)
    excluded, rows = seen["exclude"]
    for r, u in enumerate(tr.users.tolist()):
        sequence = split.train.items[split.train.offsets[u] : split.train.offsets[u + 1]]
        assert set(excluded[r].tolist()) - {0} == set(sequence[1:].tolist())
        assert len(sequence) - 1 > mc.max_len  # more than the window's targets


# --- the modular network ---------------------------------------------------------------------------
def test_xavier_init_and_sqrt_d_scaling_are_in_effect():
    torch.manual_seed(0)
    mc, _ = preset("ce-AR", "synthetic", num_items=500)
    model = SelfAttentiveRecommender(mc)
    w = model.item_emb.weight
    bound = math.sqrt(6 / (w.shape[0] + w.shape[1]))  # xavier-uniform over (N + 2, d)
    assert w.abs().max() <= bound and w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    qkv = model.blocks[0].attn.qkv.weight  # (3d, d): Q, K and V each xavier over (d, d), as three Linear(d, d)
    for part in qkv.view(3, 64, 64):
        assert part.std().item() == pytest.approx(math.sqrt(6 / 128) / math.sqrt(3), rel=0.05)  # 0.125 at d = 64
    vanilla_qkv = SelfAttentiveRecommender(preset("vanilla-AR", "synthetic", num_items=500)[0]).blocks[0].attn.qkv
    assert vanilla_qkv.weight.abs().max() <= 0.04  # the vanilla network keeps its truncated normal
    assert model.emb_scale == pytest.approx(8.0)  # sqrt(64)
    # the scale reaches the hidden states: equal weights without it give other states
    plain = SelfAttentiveRecommender(replace(mc, embedding_scale=False))
    plain.load_state_dict(model.state_dict())
    x = torch.randint(1, 501, (2, 10))
    assert not torch.allclose(model.eval().hidden_states(x), plain.eval().hidden_states(x))
    vanilla, _ = preset("vanilla-AR", "synthetic", num_items=500)
    assert SelfAttentiveRecommender(vanilla).item_emb.weight.abs().max() <= 0.04  # truncated normal there


def test_modsar_dropout_sits_inside_the_ffn_and_not_on_the_attention_output():
    mc, _ = preset("ce-AE", "synthetic", num_items=50)
    block = SelfAttentiveRecommender(mc).blocks[0]
    assert isinstance(block.attn_drop, torch.nn.Identity)
    assert not isinstance(block.ffn.inner_drop, torch.nn.Identity)
    vanilla, _ = preset("vanilla-AE", "synthetic", num_items=50)
    vblock = SelfAttentiveRecommender(vanilla).blocks[0]
    assert not isinstance(vblock.attn_drop, torch.nn.Identity) and isinstance(vblock.ffn.inner_drop,
                                                                                torch.nn.Identity)


def test_sasrec_block_adds_the_residual_to_the_normalised_input():
    torch.manual_seed(0)
    cfg = SARConfig(num_items=10, hidden=8, layers=1, heads=1, dropout=0.0, attn_dropout=0.0, norm_first=True,
                    norm_residual=True, activation="relu")
    block = SelfAttentiveRecommender(cfg).blocks[0].eval()
    x = torch.randn(2, 5, 8) * 3 + 1
    mask = attention_mask(torch.ones(2, 5, dtype=torch.bool), "AR")
    xt = block.norm1(x)
    xt = xt + block.attn(xt, mask)
    xt2 = block.norm2(xt)
    expected = xt2 + block.ffn(xt2)
    torch.testing.assert_close(block(x, mask), expected)
