"""The designs and the case, declared once (sarbench/designs.py), and the Attention type (sarbench/config.py)."""

from __future__ import annotations

import json

import pytest

from sarbench.config import ATTENTIONS, Attention, SARConfig
from sarbench.designs import DESIGNS, Case, case_id, table_of, variants
from sarbench.paper import PAPER_LOSS, VARIANTS
from sarbench.presets import describe, preset


def test_attention_reads_as_its_string():
    assert ATTENTIONS == ("AE", "AR") and Attention.AR == "AR" and f"{Attention.AE}" == "AE"
    assert json.dumps({"a": Attention.AR}) == '{"a": "AR"}'
    assert SARConfig(num_items=3, attention="AE").attention is Attention.AE
    with pytest.raises(ValueError, match="attention must be 'AE' or 'AR', got 'XX'"):
        SARConfig(num_items=3, attention="XX")


@pytest.mark.parametrize(("case", "expected"), [
    (Case("vanilla", "ml-1m", "AR"), "vanilla[ml-1m-AR-ce]"),
    (Case("design", "ml-1m", "AR", design="ssept"), "design[ml-1m-ssept-AR-bce]"),
    (Case("design", "beauty", "AE", design="local"), "design[beauty-local_attn-AE-ce]"),
    (Case("vanilla", "ml-1m", "AR", model="gru4rec"), "vanilla[ml-1m-gru4rec-AR-ce]"),
    (Case("hf", "yelp", "AE", model="llama"), "hf[yelp-llama-AE-ce]"),
    (Case("analysis", "ml-1m", "AE", variant="local"), "analysis[ml-1m-local-AE-ce]"),
])
def test_case_ids(case, expected):
    assert case.id == expected
    assert case_id(case.table, case.dataset, case.attention, case.loss,
                   "" if case.table == "vanilla" and case.model == "sar" else case.group) == expected


def test_a_design_fills_its_table_with_its_loss():
    for name, d in DESIGNS.items():
        assert table_of(name) == d.table
        for attention in ATTENTIONS:
            _, train = preset(f"{name}-{attention}", "synthetic", 10, 5)
            assert train.loss == d.loss
    assert table_of("vanilla", "albert") == "hf"


def test_the_papers_column_groups_come_from_the_declaration():
    assert variants("design") == VARIANTS["design"] == ("local_attn", "ssept", "loss_ce", "loss_bpr")
    assert variants("design", paper_only=False)[-1] == "loss_bce"
    for d in DESIGNS.values():
        if d.in_paper:
            assert PAPER_LOSS[d.variant] == d.loss


def test_listings_say_what_the_preset_sets():
    """The listing's optimiser and decay are read from the preset (the local design decays by 0 untuned)."""
    assert "AdamW (decay 0)" in describe("local")
    assert "AdamW (decay 0.1)" in describe("vanilla")
    _, train = preset("local-AR", "synthetic", 10, 5)
    assert train.optimizer == "adamw" and train.weight_decay == 0.0
