"""SSE-PT: a user embedding beside the item's, and stochastic shared embeddings in training.

What makes SSE-PT differ from the vanilla model: the user's embedding changes the scores (two users
with the same history are scored differently), evaluation hands each user its own id, and SSE's
random replacement (an input item by a random item with ``sse_item_prob`` per position, the user by
a random user with ``sse_user_prob``) happens in training mode only, at those probabilities, never
on labels, padding or [MASK]; evaluation is deterministic.
"""
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from sarbench.data import SyntheticConfig, make_synthetic
from sarbench.models.sar import SARConfig, SelfAttentiveRecommender
from sarbench.presets import preset
from sarbench.train import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in tests/conftest.py


@pytest.fixture(scope="module")
def split():
    return make_synthetic(SyntheticConfig(num_users=200, num_items=50, min_length=8, max_length=30, seed=3)).split()


def sse_trainer(split, attention="AR", item_prob=0.0, user_prob=0.0, **model):
    mc = SARConfig(num_items=split.dataset.num_items, num_users=split.dataset.num_users, attention=attention,
                   hidden=16, layers=1, heads=2, max_len=32, mask_prob=0.3, sse_item_prob=item_prob,
                   sse_user_prob=user_prob, **model)
    return Trainer(mc, TrainConfig(max_epochs=1, batch_size=64, progress=False, loss="ce"), split)


@pytest.mark.parametrize("output_transform", [False, True])
def test_the_user_embedding_changes_the_scores_of_the_same_history(output_transform):
    m = SelfAttentiveRecommender(SARConfig(num_items=10, hidden=16, layers=1, heads=2, max_len=8, num_users=3,
                                           output_transform=output_transform)).eval()
    torch.nn.init.normal_(m.user_emb.weight)  # users clearly apart (the default init is N(0, 0.02))
    hist, lengths = torch.tensor([[1, 2, 3, 0]] * 4), torch.tensor([3] * 4)
    scores = m.score(hist, lengths, users=torch.tensor([0, 1, 2, 0]))
    assert scores.shape == (4, 11) and bool(torch.isinf(scores[:, 0]).all())
    assert torch.equal(scores[0], scores[3]), "the same user and history must score the same"
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert (scores[a, 1:] - scores[b, 1:]).abs().max() > 1e-3, f"users {a} and {b} score alike"
    assert m.uses_users
    with pytest.raises(ValueError, match="pass users"):
        m.score(hist, lengths)


def test_a_model_without_users_takes_no_user_ids():
    m = SelfAttentiveRecommender(SARConfig(num_items=10, hidden=16, layers=1, heads=2, max_len=8)).eval()
    assert not m.uses_users and m.user_emb is None


def _replacement_rates(trainer, draws):
    """Over ``draws`` batches of every user: the share of eligible input items (real, not [MASK]) and of
    users that SSE changed, and whether labels, padding and [MASK] stayed as they were."""
    idx = torch.arange(len(trainer.lengths_cpu))
    L = int(trainer.lengths_cpu.max())
    inputs, targets, users = trainer.inputs[idx, :L], trainer.targets[idx, :L], trainer.users[idx]
    mask_token = trainer.fields.mask_token
    items_changed = items_seen = users_changed = users_seen = 0
    for _ in range(draws):
        x, u, y = trainer._batch(idx)
        masked = x == mask_token
        if trainer.fields.attention == "AE":
            assert torch.equal(y, targets * masked), "labels only where masked, and never replaced"
        else:
            assert not bool(masked.any()) and torch.equal(y, targets), "AR labels must stay as they are"
        assert torch.equal(x == 0, inputs == 0), "padding must stay padding"
        assert int(x.max()) <= mask_token and int(u.min()) >= 0 and int(u.max()) < trainer.fields.num_users
        eligible = (inputs != 0) & ~masked
        items_changed += int((x != inputs)[eligible].sum())
        items_seen += int(eligible.sum())
        users_changed += int((u != users).sum())
        users_seen += len(u)
    return items_changed / items_seen, items_seen, users_changed / users_seen, users_seen


def _assert_rate(observed, prob, pool, n, what):
    # a replacement draws uniformly from the pool, so 1 in `pool` redraws the same id
    expected = prob * (1 - 1 / pool)
    sigma = math.sqrt(max(expected * (1 - expected), 1e-12) / n)
    assert abs(observed - expected) <= 5 * sigma + 1e-12, f"{what}: {observed:.4f} changed, expected {expected:.4f}"


@pytest.mark.parametrize("attention", ["AR", "AE"])
@pytest.mark.parametrize("item_prob,user_prob", [(0.3, 0.1), (0.0, 0.5), (0.2, 0.0)])
def test_sse_replaces_items_and_users_at_the_configured_probabilities(split, attention, item_prob, user_prob):
    trainer = sse_trainer(split, attention, item_prob, user_prob)
    trainer.model.train()
    item_rate, n_items, user_rate, n_users = _replacement_rates(trainer, draws=20)
    _assert_rate(item_rate, item_prob, split.dataset.num_items, n_items, "input items")
    _assert_rate(user_rate, user_prob, split.dataset.num_users, n_users, "users")


@pytest.mark.parametrize("attention", ["AR", "AE"])
def test_sse_replaces_nothing_outside_training_mode(split, attention):
    trainer = sse_trainer(split, attention, item_prob=0.5, user_prob=0.5)
    trainer.model.eval()
    item_rate, _, user_rate, _ = _replacement_rates(trainer, draws=3)
    assert item_rate == 0.0 and user_rate == 0.0


def test_the_ssept_preset_sets_the_papers_probabilities_and_trains(split):
    mc, tc = preset("ssept-AR", "synthetic", split.dataset.num_items, split.dataset.num_users)
    assert (mc.num_users, mc.sse_item_prob, mc.sse_user_prob) == (split.dataset.num_users, 0.2, 0.2)
    mc = replace(mc, hidden=16, layers=1, max_len=32)
    trainer = Trainer(mc, replace(tc, progress=False, batch_size=64), split)
    trainer.model.train()
    item_rate, n_items, user_rate, n_users = _replacement_rates(trainer, draws=20)
    _assert_rate(item_rate, 0.2, split.dataset.num_items, n_items, "input items")
    _assert_rate(user_rate, 0.2, split.dataset.num_users, n_users, "users")
    assert math.isfinite(trainer.train_epoch())


def test_evaluation_gets_each_users_own_id_and_is_deterministic(split):
    trainer = sse_trainer(split, "AR", item_prob=0.2, user_prob=0.2, dropout=0.3)
    trainer.train_epoch()  # leaves the model in training mode: dropout and SSE on
    model, seen = trainer.model, []
    with torch.no_grad():
        torch.nn.init.normal_(model.user_emb.weight)  # users clearly apart
    score = model.score

    def recording_score(histories, lengths, users=None):
        seen.append(users)
        return score(histories, lengths, users=users)

    model.score = recording_score
    first = trainer.evaluate("test")
    assert seen and all(u is not None for u in seen)
    assert sorted(torch.cat(seen).tolist()) == sorted(split.eval_users.tolist())
    np.testing.assert_array_equal(first.users, split.eval_users)
    assert all(0.0 <= v <= 1.0 for v in first.metrics.values())
    model.train()
    second = trainer.evaluate("test")
    np.testing.assert_array_equal(first.ranks, second.ranks)
    assert first.metrics == second.metrics
    # the ids matter: scored as if every user were user 0, the same histories rank differently
    model.score = lambda histories, lengths, users=None: score(histories, lengths, users=torch.zeros_like(users))
    assert not np.array_equal(first.ranks, trainer.evaluate("test").ranks)


def test_two_trainers_built_before_fitting_reproduce():
    """Trainer seeds the global torch RNG in __init__, but dropout draws from it during fit()."""
    sp = make_synthetic(SyntheticConfig(num_users=60, num_items=30, min_length=3, max_length=16, seed=5)).split()
    mc = SARConfig(num_items=sp.dataset.num_items, hidden=16, layers=1, max_len=10, dropout=0.2)
    tc = TrainConfig(max_epochs=2, batch_size=16, progress=False)
    a, b = Trainer(mc, tc, sp), Trainer(mc, tc, sp)
    ra, rb = a.fit(), b.fit()
    assert [h["loss"] for h in ra.history] == [h["loss"] for h in rb.history]


def test_the_bce_training_logit_includes_the_user_term_and_the_scores_do_not(split):
    """The authors' SSE-PT logit: (item half of h) . E_item(i) + (user half of h) . E_user(u). The user term
    enters the BCE of training (same number for the positive and the negatives); scores (rankings) need none."""
    import torch.nn.functional as F

    mc, tc = preset("ssept-AR", "synthetic", split.dataset.num_items, split.dataset.num_users)
    mc = replace(mc, hidden=16, layers=1, max_len=32, sse_item_prob=0.0, sse_user_prob=0.0, dropout=0.0,
                 attn_dropout=0.0)
    trainer = Trainer(mc, replace(tc, progress=False, batch_size=64, length_buckets=1), split)
    model = trainer.model.eval()
    idx = torch.arange(16)
    x, users, y = trainer._batch(idx)
    state = trainer.generator.get_state()
    loss = trainer._loss(x, users, y, idx)
    trainer.generator.set_state(state)  # the same negatives again, to recompute the loss by hand
    import sarbench.train as train

    drawn = {}
    real = train.sample_negatives
    train.sample_negatives = lambda *a, **k: drawn.setdefault("neg", real(*a, **k))
    try:
        trainer._loss(x, users, y, idx)
    finally:
        train.sample_negatives = real
    h = model.hidden_states(x, users)
    sel = y != 0
    rows = sel.nonzero()[:, 0]
    hs, d = h[sel], model.item_emb.embedding_dim
    user_term = (hs[:, d:] * model.user_emb(users[rows])).sum(-1)
    w = model.item_emb.weight
    pos = (hs[:, :d] * w[y[sel]]).sum(-1) + user_term
    neg = (hs[:, :d] * w[drawn["neg"][:, 0]]).sum(-1) + user_term
    expected = F.softplus(-pos).mean() + F.softplus(neg).mean()
    torch.testing.assert_close(loss, expected)
    assert user_term.abs().max() > 1e-3  # the term is there, and not negligible
