"""The training objective is the authors' whether or not batches are grouped by length; their optimiser.

Random batches with the per-batch mean (the authors) weight every target by 1 / (targets in its
batch), about 1 / (mean targets per batch). Length grouping with that same per-batch mean would give
the targets of short users far more weight; the trainer instead divides each grouped batch's sum by
the epoch's mean targets per batch, so every target weighs the same.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sarbench.data import SequenceDataset
from sarbench.models.losses import chunked_cross_entropy, sampled_loss
from sarbench.models.sar import SARConfig
from sarbench.optim import BertAdamW
from sarbench.train import TrainConfig, Trainer, batches, target_weights, targets_per_user

pytestmark = pytest.mark.usefixtures("one_thread")


def ml1m_like_lengths(n=6040, seed=0):
    """Training lengths shaped like ml-1m's (many short users, a long tail capped at 200)."""
    rng = np.random.default_rng(seed)
    return np.minimum(np.maximum(rng.lognormal(4.3, 1.0, n).astype(np.int64), 18), 200)


def shortest_quarter_share(weights, targets, lengths):
    short = lengths <= np.quantile(lengths, 0.25)
    total = weights * targets
    return total[short].sum() / total.sum()


def test_weighted_grouping_gives_every_target_the_random_batch_weight():
    lengths = ml1m_like_lengths()
    targets = targets_per_user(lengths, "AR", 200, 0.2)
    g = torch.Generator().manual_seed(0)
    shares = {}
    for name, buckets, weighted in (("random", 1, False), ("grouped, mean", 8, False), ("grouped, weighted", 8, True)):
        runs = [target_weights(targets, [b.numpy() for b in batches(torch.as_tensor(lengths), 256, buckets, g)],
                               weighted) for _ in range(20)]
        shares[name] = np.mean([shortest_quarter_share(w, targets, lengths) for w in runs])
    target_share = shortest_quarter_share(np.ones(len(lengths)), targets, lengths)
    # random batches and the weighted grouping give the short users their share of the targets ...
    assert shares["random"] == pytest.approx(target_share, rel=0.05)
    assert shares["grouped, weighted"] == pytest.approx(target_share, rel=1e-9)
    # ... the per-batch mean under grouping would multiply it (the defect this weighting removes)
    assert shares["grouped, mean"] > 2.5 * target_share, shares


def test_weighted_weights_are_constant_and_sum_like_random_batches():
    lengths = ml1m_like_lengths(1000)
    targets = targets_per_user(lengths, "AR", 200, 0.2)
    grouped = [b.numpy() for b in batches(torch.as_tensor(lengths), 64, 8, torch.Generator().manual_seed(1))]
    w = target_weights(targets, grouped, weighted=True)
    assert np.ptp(w) == 0  # one weight for every target
    # the epoch's total weight equals the number of batches, as with per-batch means
    assert (w * targets).sum() == pytest.approx(len(grouped))
    assert (target_weights(targets, grouped, weighted=False) * targets).sum() == pytest.approx(len(grouped))


def test_ae_targets_follow_the_authors_mask_count():
    # k = min(int(max_len * p), max(1, round(len * p))), round half to even
    lengths = np.array([1, 2, 5, 12, 13, 300])
    assert targets_per_user(lengths, "AE", 50, 0.2).tolist() == [1, 1, 1, 2, 3, 10]
    assert targets_per_user(lengths, "AR", 50, 0.2).tolist() == lengths.tolist()


def test_trainer_loss_is_the_sum_over_targets_divided_by_the_mean_batch_targets():
    seqs = [list(range(1, 2 + n)) for n in (3, 5, 8, 12, 2, 9, 4, 7)]
    split = SequenceDataset.from_sequences("w", seqs, num_items=20).split()
    mc = SARConfig(num_items=20, attention="AR", max_len=10, hidden=8, layers=1, heads=1, dropout=0.0,
                   attn_dropout=0.0)
    for buckets in (1, 4):
        tr = Trainer(mc, TrainConfig(batch_size=2, length_buckets=buckets, progress=False), split)
        idx = torch.tensor([0, 3])
        x, users, y = tr._batch(idx)
        h = tr.model.hidden_states(x)
        sel = y != 0
        w, b = tr.model.output_weights()
        per_target = F.cross_entropy(tr.model.output_hidden(h[sel]) @ w.T + b, y[sel] - 1, reduction="none")
        if buckets == 1:
            expected = per_target.mean()
        else:
            assert tr.loss_denominator == pytest.approx(tr.lengths.sum().item() / 4)  # 8 users / batch 2
            expected = per_target.sum() / tr.loss_denominator
        assert tr._loss(x, users, y).item() == pytest.approx(expected.item(), rel=1e-5)


def test_losses_with_a_denominator_equal_the_sum_over_it():
    g = torch.Generator().manual_seed(0)
    h, wt, b = torch.randn(7, 4, generator=g), torch.randn(9, 4, generator=g), torch.randn(9, generator=g)
    t = torch.randint(0, 9, (7,), generator=g)
    ref = F.cross_entropy(h @ wt.T + b, t, reduction="sum") / 3.5
    assert chunked_cross_entropy(h, wt, b, t, chunk=3, denominator=3.5).item() == pytest.approx(ref.item(), rel=1e-6)
    pos, neg = t + 1, ((t + 3) % 9 + 1)[:, None]
    for kind in ("bpr", "bce"):
        mean = sampled_loss(kind, h, wt, b, pos, neg)
        assert sampled_loss(kind, h, wt, b, pos, neg, denominator=7.0).item() == pytest.approx(mean.item(), rel=1e-6)
        assert sampled_loss(kind, h, wt, b, pos, neg, denominator=14.0).item() == pytest.approx(mean.item() / 2, rel=1e-6)
    with pytest.raises(ValueError, match="denominator must be positive"):
        chunked_cross_entropy(h, wt, b, t, denominator=0.0)


def test_bert_adamw_is_adamw_without_bias_correction():
    """Two steps by hand: m, v without the 1 - beta^t division; decay lr * wd * p beside the step."""
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = BertAdamW([p], lr=0.1, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.5)
    x, m, v = p.detach().clone(), torch.zeros(2), torch.zeros(2)
    for g in (torch.tensor([0.5, 1.0]), torch.tensor([-1.0, 2.0])):
        p.grad = g.clone()
        opt.step()
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        x = x - 0.1 * (m / (v.sqrt() + 1e-6) + 0.5 * x)
        assert torch.allclose(p.detach(), x, rtol=1e-6, atol=1e-7)
    # so the first step is (1 - b1) / sqrt(1 - b2) = 3.16 x lr, where bias-corrected AdamW steps 1 x lr
    q = torch.nn.Parameter(torch.zeros(1))
    q.grad = torch.ones(1)
    BertAdamW([q], lr=0.01).step()
    assert q.item() == pytest.approx(-0.01 * 0.1 / (0.001 ** 0.5 + 1e-6), rel=1e-5)
