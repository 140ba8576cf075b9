"""Presets against the authors' settings as the protocol spec records them, and every preset trains a step."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from sarbench.data import SyntheticConfig, make_synthetic
from sarbench.presets import DESIGNS, preset, preset_names
from sarbench.train import Trainer

# The authors' pre-set best values for Table 4 (search_standard_allrank.sh), transcribed from the
# protocol spec: max_len, AE heads / dropout / attention dropout / mask prob, AR heads / dropout / attention dropout.
AUTHORS_TABLE4 = {
    "beauty": (50, (2, 0.2, 0.2, 0.5), (1, 0.5, 0.5)),
    "ml-1m": (200, (2, 0.2, 0.2, 0.2), (1, 0.2, 0.2)),
    "video": (50, (2, 0.2, 0.2, 0.5), (1, 0.5, 0.5)),
    "sports": (50, (2, 0.2, 0.2, 0.5), (1, 0.5, 0.5)),
    "yelp": (50, (2, 0.2, 0.2, 0.5), (1, 0.5, 0.5)),
}
DATASETS = [*AUTHORS_TABLE4, "synthetic"]


def test_preset_names_cover_every_design_and_attention():
    names = preset_names()
    assert len(names) == len(set(names)) == 2 * len(DESIGNS) == 12
    assert {n.rsplit("-", 1)[0] for n in names} == set(DESIGNS)
    assert {"vanilla-AE", "vanilla-AR", "local-AE", "ssept-AR", "bpr-AE", "bce-AR", "ce-AE"} <= set(names)


@pytest.mark.parametrize("dataset", list(AUTHORS_TABLE4))
def test_vanilla_presets_match_the_authors_table4_script(dataset):
    max_len, (ae_h, ae_do, ae_ado, mask_p), (ar_h, ar_do, ar_ado) = AUTHORS_TABLE4[dataset]
    ae, ae_train = preset("vanilla-AE", dataset, num_items=100)
    ar, ar_train = preset("vanilla-AR", dataset, num_items=100)
    assert (ae.attention, ae.heads, ae.dropout, ae.attn_dropout, ae.mask_prob) == ("AE", ae_h, ae_do, ae_ado, mask_p)
    assert (ar.attention, ar.heads, ar.dropout, ar.attn_dropout) == ("AR", ar_h, ar_do, ar_ado)
    for model in (ae, ar):
        assert model.num_items == 100 and model.max_len == max_len
        assert (model.hidden, model.layers) == (64, 2)
        # env (A) is BERT4Rec's network for both: post-LN, GELU, embedding LN, output transform, item bias
        assert (model.norm_first, model.activation, model.embedding_norm, model.output_transform,
                model.item_bias) == (False, "gelu", True, True, True)
        assert model.num_users == 0 and model.local_window == 0
    # the same training recipe for AE and AR
    assert ae_train == ar_train
    t = ae_train
    assert (t.loss, t.optimizer, t.lr, t.weight_decay) == ("ce", "adamw", 1e-3, 0.1)
    assert (t.grad_clip, t.batch_size, t.betas) == (5.0, 256, (0.9, 0.999))
    assert (t.max_epochs, t.eval_every, t.metric, t.seed) == (1000, 1, "R@10", 0)
    assert t.patience == 20  # the paper's statement (the authors' script had 30)
    # AE and AR differ in the mask and in the per-attention values of the table, nothing else
    assert replace(ar, attention="AE", heads=ae_h, dropout=ae_do, attn_dropout=ae_ado, mask_prob=mask_p) == ae


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("design", [d for d in DESIGNS if d != "vanilla"])
def test_design_presets_use_the_modular_network(design, dataset):
    """protocol.md §2b, §3 and §5: ModSAR's network and training, the base values of its run files."""
    ae, ae_train = preset(f"{design}-AE", dataset, num_items=100, num_users=40)
    ar, ar_train = preset(f"{design}-AR", dataset, num_items=100, num_users=40)
    vanilla_ae, _ = preset("vanilla-AE", dataset, num_items=100)
    drop, mask = (0.5, 0.8) if dataset == "beauty" else (0.2, 0.2)
    for model in (ae, ar):
        # ModSAR: sqrt(d)-scaled item embeddings, SASRec blocks (residual from the normalised input), ReLU with
        # dropout inside the FFN, no embedding LN, no output transform, no item bias, xavier init
        assert (model.norm_first, model.norm_residual, model.activation, model.embedding_norm,
                model.output_transform, model.item_bias) == (True, True, "relu", False, False, False)
        assert (model.embedding_scale, model.ffn_inner_dropout, model.init) == (True, True, "xavier")
        assert (model.hidden, model.layers, model.max_len) == (64, 2, vanilla_ae.max_len)
        assert (model.dropout, model.attn_dropout, model.mask_prob) == (drop, drop, mask)
    assert replace(ae_train, negatives="own") == replace(ar_train, negatives="own")
    assert (ae_train.negatives, ar_train.negatives) == ("own", "user")  # AR: every target of the whole sequence
    t = ae_train
    assert (t.batch_size, t.grad_clip, t.lr, t.betas) == (128, 0.0, 1e-3, (0.9, 0.98))
    assert (t.max_epochs, t.eval_every, t.patience) == (2000, 5, 50)  # 10 validations without a better R@10
    expected_loss = {"local": "ce", "ssept": "bce", "ce": "ce", "bpr": "bpr", "bce": "bce"}[design]
    assert t.loss == expected_loss
    if design == "local":
        assert (t.optimizer, t.weight_decay, t.decay_all) == ("adamw", 0.0, True)
        for model in (ae, ar):
            assert (model.heads, model.local_window, model.local_heads) == (1, 2, 1)  # the base run file: one head, local
    else:
        assert (t.optimizer, t.weight_decay) == ("adam", 0.0)
        assert ae.local_window == ar.local_window == 0 and ae.heads == ar.heads == 1
    if design == "ssept":
        for model in (ae, ar):
            assert (model.num_users, model.sse_item_prob, model.sse_user_prob) == (40, 0.2, 0.2)
    else:
        assert ae.num_users == ar.num_users == 0


def test_ssept_needs_users():
    with pytest.raises(ValueError, match="needs num_users"):
        preset("ssept-AE", "beauty", num_items=100)


@pytest.mark.parametrize("name", ["vanilla", "vanilla-XX", "sasrec-AR", "local-ae", ""])
def test_unknown_preset_lists_the_known_ones(name):
    with pytest.raises(KeyError, match="unknown preset.*vanilla-AE, vanilla-AR, local-AE"):
        preset(name, "beauty", num_items=100)


def test_other_datasets_get_the_documented_defaults():
    """A dataset outside the paper (declared, synthetic) gets the settings common to Table 4 and max_len 50."""
    from sarbench.presets import DEFAULT_MAX_LEN, DEFAULT_VANILLA

    ae, _ = preset("vanilla-AE", "mydata", num_items=100)
    ar, _ = preset("vanilla-AR", "mydata", num_items=100)
    assert (ae.heads, ae.dropout, ae.attn_dropout, ae.mask_prob) == DEFAULT_VANILLA[:4]
    assert (ar.heads, ar.dropout, ar.attn_dropout) == DEFAULT_VANILLA[4:]
    assert ae.max_len == ar.max_len == DEFAULT_MAX_LEN == 50


@pytest.fixture(scope="module")
def tiny_split():
    return make_synthetic(SyntheticConfig(num_users=24, num_items=30, min_length=4, max_length=20, seed=2)).split()


@pytest.mark.parametrize("name", [n for n in preset_names() if not n.startswith("ssept")])
def test_every_preset_trains_one_epoch(name, tiny_split, one_thread):
    ds = tiny_split.dataset
    model_cfg, train_cfg = preset(name, "synthetic", ds.num_items, ds.num_users)
    trainer = Trainer(model_cfg, replace(train_cfg, progress=False), tiny_split)
    start = [p.detach().clone() for p in trainer.model.parameters()]
    loss = trainer.train_epoch()
    assert math.isfinite(loss) and loss > 0
    moved = [not torch.equal(a, p) for a, p in zip(start, trainer.model.parameters())]
    assert sum(moved) > len(moved) // 2, "an epoch should update most parameters"


@pytest.mark.parametrize("model", ["albert", "llama", "transfo_xl"])
def test_table6_defaults_train_as_the_authors_reruns(model):
    """protocol.md §3: the HF reruns go up to 2000 epochs, validate every 5 and stop after 10 validations
    (50 epochs) without a better R@10, as the design presets."""
    from sarbench.models.interface import get_spec

    mc, t = get_spec(model).defaults("AR", "video", 100, 40)
    _, design = preset("ce-AR", "video", num_items=100)
    assert (t.max_epochs, t.eval_every, t.patience) == (2000, 5, 50) == (design.max_epochs, design.eval_every,
                                                                         design.patience)
    assert (mc.hidden, mc.layers, mc.heads) == (64, 2, 1)
