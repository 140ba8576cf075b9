"""SSE-PT models score with the item half of the state, train, and evaluate with user ids; seeds hold per trainer."""
import math
from dataclasses import replace

import torch

from sarbench.data import SyntheticConfig, make_synthetic
from sarbench.models.sar import SARConfig, SelfAttentiveRecommender
from sarbench.presets import preset
from sarbench.train import Trainer


def test_ssept_model_without_output_transform_scores():
    m = SelfAttentiveRecommender(SARConfig(num_items=10, hidden=16, num_users=3, output_transform=False)).eval()
    scores = m.score(torch.tensor([[1, 2, 3, 0]]), torch.tensor([3]), users=torch.tensor([0]))
    assert scores.shape == (1, 11)


def test_ssept_preset_trains_an_epoch():
    sp = make_synthetic(SyntheticConfig(num_users=24, num_items=30, min_length=4, max_length=20, seed=2)).split()
    mc, tc = preset("ssept-AR", "synthetic", sp.dataset.num_items, sp.dataset.num_users)
    assert math.isfinite(Trainer(mc, replace(tc, progress=False), sp).train_epoch())


def test_ssept_model_fits_and_evaluates():
    """Even with the output transform (shapes fine), evaluate() calls score() without users."""
    sp = make_synthetic(SyntheticConfig(num_users=24, num_items=30, min_length=4, max_length=20, seed=2)).split()
    mc = SARConfig(num_items=sp.dataset.num_items, hidden=16, layers=1, max_len=10, num_users=sp.dataset.num_users,
                   sse_item_prob=0.2, sse_user_prob=0.2)
    from sarbench.train import TrainConfig
    result = Trainer(mc, TrainConfig(max_epochs=1, progress=False, loss="bce"), sp).fit()
    assert result.test is not None


def test_two_trainers_built_before_fitting_reproduce():
    """Trainer seeds the global torch RNG in __init__, but dropout draws from it during fit()."""
    from sarbench.train import TrainConfig
    sp = make_synthetic(SyntheticConfig(num_users=60, num_items=30, min_length=3, max_length=16, seed=5)).split()
    mc = SARConfig(num_items=sp.dataset.num_items, hidden=16, layers=1, max_len=10, dropout=0.2)
    tc = TrainConfig(max_epochs=2, batch_size=16, progress=False)
    a, b = Trainer(mc, tc, sp), Trainer(mc, tc, sp)
    ra, rb = a.fit(), b.fit()
    assert [h["loss"] for h in ra.history] == [h["loss"] for h in rb.history]
