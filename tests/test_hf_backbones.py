"""Table 6's backbones (sarbench/models/hf.py, trxl.py): masks, padding, tied output, settings, training.

For every backbone and attention: an AR output at position t does not change when a later item
changes, an AE output does; padding never changes a real position's output; a tiny model trains on
a small synthetic dataset and beats most-popular. The transformers kernels are checked under both
attention implementations the adapter offers (sdpa and eager), since their masks differ in format.
"""

from __future__ import annotations

import socket
from dataclasses import replace

import pytest
import torch

from sarbench.baselines import MostPopular
from sarbench.data import SyntheticConfig, make_synthetic
from sarbench.evaluate import evaluate
from sarbench.metrics import ndcg_at_k
from sarbench.models import build_model, get_spec, registered
from sarbench.models.hf import AlbertRecConfig, LlamaRecConfig, base_settings, prepared_mask, table6_defaults
from sarbench.models.trxl import TransfoXLConfig, allowed_keys, sinusoid
from sarbench.significance import AR_BETTER, compare_paired
from sarbench.train import Trainer

N, L = 30, 10
BACKBONES = ("albert", "llama", "transfo_xl")
# (model, attention, variant): the transformers backbones under both kernels, ours with and without memory
KINDS = [(m, a, v) for m in ("albert", "llama") for a in ("AE", "AR") for v in ("sdpa", "eager")] + [
    ("transfo_xl", a, v) for a in ("AE", "AR") for v in ("one segment", "segments of 4")]


def tiny(model: str, attention: str, variant: str = "sdpa", **over):
    """A small model in eval mode (no dropout) with 2 heads and 2 layers."""
    cls = {"albert": AlbertRecConfig, "llama": LlamaRecConfig, "transfo_xl": TransfoXLConfig}[model]
    extra = ({"attn_implementation": variant} if model != "transfo_xl"
             else {"segment_len": 4 if variant == "segments of 4" else 0})
    fields = dict(num_items=N, attention=attention, max_len=L + 2, hidden=16, layers=2, heads=2, dropout=0.1)
    cfg = cls(**{**fields, **extra, **over})
    torch.manual_seed(0)
    return build_model(cfg).eval()


def batch(lengths=(L, 6, 3), seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(1, N + 1, (len(lengths), max(lengths)), generator=g)
    for row, n in enumerate(lengths):
        x[row, n:] = 0
    return x


def change_item(x, row, pos):
    y = x.clone()
    y[row, pos] = y[row, pos] % N + 1
    return y


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Small tensors: one thread is fastest on a busy machine."""


# --- AE vs AR ------------------------------------------------------------------------------------
@pytest.mark.parametrize("model, attention, variant", KINDS)
def test_ar_ignores_later_items_and_ae_sees_them(model, attention, variant):
    m = tiny(model, attention, variant)
    x = batch()  # row 0 has no padding at all: the mask builders' "no padding" shortcuts are exercised
    with torch.no_grad():
        base = m.hidden_states(x)
        for row, n in ((0, L), (1, 6)):
            for t in range(n - 1):
                later = t + 1 + (t * 7) % (n - 1 - t)  # some position after t
                moved = (m.hidden_states(change_item(x, row, later))[row, t] - base[row, t]).abs().max().item()
                if attention == "AR":
                    assert moved == 0.0, f"{model} AR ({variant}): output at {t} moved by {moved} when item {later} changed"
                elif model != "transfo_xl" or variant == "one segment" or later // 4 == t // 4:
                    assert moved > 1e-4, f"{model} AE ({variant}): output at {t} ignores item {later}"


def test_transfo_xl_segments_see_the_previous_segment_only():
    """AE with segment memory: a query attends its own segment and the previous one, never a later one."""
    m = tiny("transfo_xl", "AE", "segments of 4")
    x = batch((L,))
    with torch.no_grad():
        base = m.hidden_states(x)
        assert (m.hidden_states(change_item(x, 0, 1))[0, 5] - base[0, 5]).abs().max() > 1e-4  # memory
        assert (m.hidden_states(change_item(x, 0, 9))[0, 5] - base[0, 5]).abs().max() == 0  # a later segment
        # the first segment has no memory: it equals the model run on those 4 items alone
        torch.testing.assert_close(m.hidden_states(x[:, :4]), base[:, :4], rtol=0, atol=1e-6)


# --- padding -------------------------------------------------------------------------------------
@pytest.mark.parametrize("model, attention, variant", KINDS)
def test_padding_never_changes_real_positions(model, attention, variant):
    m = tiny(model, attention, variant)
    x = batch((7, 3, 9))
    with torch.no_grad():
        together = m.hidden_states(x)
        for row, n in enumerate((7, 3, 9)):
            alone = m.hidden_states(x[row : row + 1, :n])  # no padding at all
            padded = m.hidden_states(torch.nn.functional.pad(x[row : row + 1, :n], (0, L + 2 - n)))  # more padding
            torch.testing.assert_close(together[row, :n], alone[0], rtol=0, atol=2e-5)
            torch.testing.assert_close(padded[0, :n], alone[0], rtol=0, atol=2e-5)
        # the padding embedding itself never reaches a real position either
        emb = m.backbone.get_input_embeddings() if model != "transfo_xl" else m.item_emb
        emb.weight[0] = torch.randn(emb.weight.shape[1]) * 5
        torch.testing.assert_close(m.hidden_states(x)[0, :7], together[0, :7], rtol=0, atol=2e-5)


def test_prepared_mask_formats():
    x = torch.tensor([[3, 4, 0]])
    allowed = prepared_mask(x, causal=True, implementation="sdpa", dtype=torch.float32)
    assert allowed.dtype == torch.bool and allowed.shape == (1, 1, 3, 3)
    assert allowed[0, 0].tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    additive = prepared_mask(x, causal=False, implementation="eager", dtype=torch.float32)
    low = torch.finfo(torch.float32).min
    assert additive[0, 0].tolist() == [[0, 0, low], [0, 0, low], [0, 0, 0]]  # padding key; padding sees itself


def test_transfo_xl_mask_and_relative_positions_against_a_direct_computation():
    real = torch.tensor([[True, True, True, True, False]])
    # two memory slots then a segment of three: query i sits at key 2 + i
    assert allowed_keys(real, 3, causal=True)[0, 0].tolist() == [
        [True, True, True, False, False], [True, True, True, True, False], [True, True, True, True, True]]
    m = tiny("transfo_xl", "AE", "one segment", layers=1)
    attn = m.layers[0].attn
    x = torch.randn(1, 5, 16)
    q = 5
    distances = torch.arange(q - 1, -q, -1)
    pos_emb = sinusoid(distances, 16)
    captured = {}
    attn.drop_attn.register_forward_hook(lambda mod, inp, out: captured.setdefault("probs", inp[0]))
    with torch.no_grad():
        attn(x, pos_emb, torch.ones(1, 1, q, q, dtype=torch.bool))
        qs, ks, _ = attn.qkv(x).split(16, dim=-1)
        qs, ks = qs.view(q, 2, 8), ks.view(q, 2, 8)
        r = attn.r_net(pos_emb).view(-1, 2, 8)
        scores = torch.empty(2, q, q)
        for i in range(q):
            for j in range(q):
                p = (q - 1) - (i - j)  # the row of distance i - j
                scores[:, i, j] = ((qs[i] + attn.r_w_bias) * ks[j]).sum(-1) + ((qs[i] + attn.r_r_bias) * r[p]).sum(-1)
        expected = (scores / 8 ** 0.5).softmax(-1)
    torch.testing.assert_close(captured["probs"][0], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("attention, lowest", [("AE", -(L - 1)), ("AR", 0)])
def test_transfo_xl_ae_scores_signed_distances(attention, lowest):
    """AE gives keys after the query their own (negative) distance; AR needs distances >= 0 only."""
    m = tiny("transfo_xl", attention, "one segment")
    seen = []
    m.layers[0].attn.register_forward_pre_hook(lambda mod, args: seen.append(args[1]))
    with torch.no_grad():
        m.hidden_states(batch((L,)))
    torch.testing.assert_close(seen[0], sinusoid(torch.arange(L - 1, lowest - 1, -1), 16))


# --- tied output, settings, registration ---------------------------------------------------------------
@pytest.mark.parametrize("model", BACKBONES)
def test_output_is_the_input_embedding_matrix_without_bias(model):
    m = tiny(model, "AR")
    w, bias = m.output_weights()
    emb = m.backbone.get_input_embeddings() if model != "transfo_xl" else m.item_emb
    assert bias is None and emb.weight.shape == (N + 2, 16) and w.shape == (N, 16)
    assert w.data_ptr() == emb.weight[1].data_ptr()  # a view of rows 1..N: tied, not a copy
    heads = [n for n, _ in m.named_modules() if "head" in n.split(".")[-1] or "pooler" in n]
    assert heads == []


def test_albert_and_llama_backbone_settings():
    albert = tiny("albert", "AE").backbone.config
    assert (albert.embedding_size, albert.hidden_size, albert.intermediate_size) == (16, 16, 64)
    assert (albert.num_hidden_layers, albert.num_hidden_groups, albert.type_vocab_size) == (2, 1, 1)
    assert albert.max_position_embeddings == L + 2 and albert.hidden_act == "gelu"
    assert albert.hidden_dropout_prob == albert.attention_probs_dropout_prob == 0.1
    one = sum(p.numel() for p in tiny("albert", "AE", layers=1).parameters())
    assert sum(p.numel() for p in tiny("albert", "AE", layers=4).parameters()) == one  # layers are shared
    llama = tiny("llama", "AE").backbone
    assert llama.config.is_causal is False and tiny("llama", "AR").backbone.config.is_causal is True
    assert llama.config.intermediate_size == 64 and llama.config.hidden_act == "gelu"
    assert llama.config.attention_dropout == 0.1 and llama.config.use_cache is False
    assert type(llama.norm).__name__ == "LlamaRMSNorm" and hasattr(llama, "rotary_emb")
    assert hasattr(llama.layers[0].mlp, "gate_proj")  # gated MLP


def test_models_are_built_and_run_without_the_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    for model in BACKBONES:
        for attention in ("AE", "AR"):
            m = tiny(model, attention).train()
            h = m.hidden_states(batch())
            (h.sum() + m.output_weights()[0].sum()).backward()


def test_registered_through_the_entry_points():
    from importlib.metadata import entry_points

    values = {ep.name: ep.value for ep in entry_points(group="sarbench.models")}
    assert values["albert"] == "sarbench.models.hf:ALBERT" and values["llama"] == "sarbench.models.hf:LLAMA"
    assert values["transfo_xl"] == "sarbench.models.trxl:SPEC"
    assert all(registered()[m].attentions == ("AE", "AR") for m in BACKBONES)


@pytest.mark.parametrize("dataset, dropout, mask_prob, max_len", [
    ("beauty", 0.5, 0.8, 50), ("ml-1m", 0.2, 0.5, 200), ("yelp", 0.2, 0.2, 50), ("synthetic", 0.2, 0.2, 50)])
def test_table6_defaults(dataset, dropout, mask_prob, max_len):
    assert base_settings(dataset) == {"heads": 1, "dropout": dropout, "mask_prob": mask_prob}
    for model in BACKBONES:
        mc, tc = get_spec(model).defaults("AE", dataset, 100, 10)
        assert (mc.hidden, mc.layers, mc.heads, mc.mask_prob, mc.max_len) == (64, 2, 1, mask_prob, max_len)
        assert mc.dropout == (0.0 if model == "llama" else dropout)  # the authors' LLaMA had no dropout
        assert (tc.loss, tc.optimizer, tc.lr, tc.weight_decay, tc.betas, tc.grad_clip, tc.batch_size, tc.precision) == (
            "ce", "adam", 1e-3, 0.0, (0.9, 0.98), 0.0, 128, "fp32")


def test_overrides_reach_both_configs_and_bad_keys_are_named():
    mc, tc = table6_defaults(LlamaRecConfig, "AE", "beauty", 100, overrides={"dropout": 0.3, "heads": 2, "lr": 5e-4})
    assert (mc.dropout, mc.heads, tc.lr) == (0.3, 2, 5e-4)
    with pytest.raises(KeyError, match="unknown or fixed key.*colour"):
        table6_defaults(AlbertRecConfig, "AE", "beauty", 100, overrides={"colour": 1})
    with pytest.raises(KeyError, match="attention"):
        table6_defaults(AlbertRecConfig, "AE", "beauty", 100, overrides={"attention": "AR"})
    with pytest.raises(ValueError, match="attn_implementation must be one of sdpa, eager"):
        AlbertRecConfig(num_items=5, attn_implementation="flash_attention_2")
    with pytest.raises(ValueError, match="hidden=10 must be a positive multiple of heads=3"):
        TransfoXLConfig(num_items=5, hidden=10, heads=3)


# --- training ------------------------------------------------------------------------------------
# A small synthetic dataset (500 users, 80 items); most-popular's test N@10 is 0.18. Measured with the
# settings below: AR 3.2-3.5x most-popular after 8 epochs, AE 2.2-3.2x after 20 (ALBERT-AE lowest),
# each 2-6 s on one thread.
EPOCHS = {"AR": 8, "AE": 20}


@pytest.fixture(scope="module")
def small_split():
    return make_synthetic(SyntheticConfig(num_users=500, num_items=80, min_length=8, max_length=20)).split()


@pytest.mark.parametrize("model", BACKBONES)
@pytest.mark.parametrize("attention", ["AR", "AE"])
def test_tiny_model_trains_and_beats_most_popular(model, attention, small_split):
    sp = small_split
    mc, tc = get_spec(model).defaults(attention, "synthetic", sp.train.num_items, sp.train.num_users)
    mc = replace(mc, hidden=32, heads=2, max_len=20, mask_prob=0.3, dropout=0.0 if model == "llama" else 0.1)
    tc = replace(tc, max_epochs=EPOCHS[attention], eval_every=EPOCHS[attention], batch_size=64, lr=3e-3,
                 progress=False)
    test = Trainer(mc, tc, sp).fit().test
    popular = evaluate(MostPopular(sp.train), sp, stage="test")
    assert list(test.users) == list(popular.users)
    ours, pop = (ndcg_at_k(torch.as_tensor(r), 10).numpy() for r in (test.ranks, popular.ranks))
    cmp = compare_paired(ours, pop, metric="N@10")
    assert cmp.verdict == AR_BETTER, (  # "AR" is the first argument: the model
        f"{model}-{attention}: N@10 {cmp.mean_ar:.4f} vs most-popular {cmp.mean_ae:.4f}, p={cmp.p_value:.3g}")


def test_sarbench_run_takes_a_table6_model(tmp_path, capsys, monkeypatch):
    import signal

    from sarbench import cli

    monkeypatch.setattr(signal, "signal", lambda *args: None)  # cmd_run's SIGTERM handler stays out of pytest
    monkeypatch.delenv("SARBENCH_DATA", raising=False)
    assert cli.main(["run", "--dataset", "synthetic", "--attention", "AR", "--model", "llama", "--scale", "smoke",
                     "--max-minutes", "0.001", "--threads", "1", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "synthetic llama-AR seed 0: epoch    1" in out
    assert "hf[synthetic-llama-AR-ce] seed 0: stopped (time) after 1 epochs" in out
    assert cli.main(["run", "--dataset", "synthetic", "--attention", "AR", "--model", "nope"]) == 1
    assert "unknown model 'nope'" in capsys.readouterr().err


def test_older_transformers_are_refused():
    """5.1 ignores LLaMA's is_causal=False without an error (AE would stay causal): refused by name."""
    from sarbench.models.hf import check_transformers

    check_transformers("5.2.0")
    with pytest.raises(RuntimeError, match="need transformers >= 5.2.*found 5.1.0"):
        check_transformers("5.1.0")
