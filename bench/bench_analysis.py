"""Throughput of the attention analysis: sparsity plus hard-threshold rank for one model over 1,000 users.

Each case is the attention of one model (2 layers x 2 heads) for 1,000 users. The users come in
batches of 100, tail-padded to the dataset's max_len, as a model's attention hook returns them.
Every batch is analysed with :func:`attention_sparsity` and :func:`attention_rank`
(``aggregate="none"``, so the per-matrix values can be pooled), and the values are pooled at the
end. That is 4,000 cropped matrices and 4,000 SVDs per case.

The inputs are seeded random post-softmax matrices: logits ~ N(0, 2^2) over the real keys,
bidirectional (AE). Padded key columns are 0, and padded query rows are softmaxes over the real
keys too (garbage the analysis must skip). They are made once, and the time to make them is not
counted. The lengths imitate the evaluation histories
of the real data:

- ML-1M: max_len 200, length ~ lognormal(median 95) clipped to [17, 200], so 18% of users are at
  200 (26% in ml-1m.txt).
- Beauty: max_len 50, length ~ lognormal(median 5) clipped to [2, 50].

Goal: under 10 s per case on a 2-core CPU; a benchmark records it, no test asserts a time. The
analysis runs on one thread (``threads=1``, the default), so its CPU time equals its wall time on an
idle machine; the CPU time (``time.process_time``), which other load on a shared machine does not
inflate the way it inflates the wall time, and the wall time are both recorded in ``extra_info``.
The assertions are on what is computed (shapes and bounds of the measures). Run with
``pytest bench/bench_analysis.py --benchmark-only --dist no``.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from sarbench.analysis import attention_rank, attention_sparsity

USERS, BATCH, LAYERS, HEADS, SIGMA = 1000, 100, 2, 2, 1e-4
TARGET_S = 10.0

PROFILES = {
    # name: (max_len, median length, lognormal spread, min length)
    "ml-1m": (200, 95.0, 0.9, 17),
    "beauty": (50, 5.0, 0.6, 2),
}


def make_batches(profile: str, seed: int = 0):
    max_len, median, spread, min_len = PROFILES[profile]
    rng = np.random.default_rng(seed)
    lengths = np.clip(np.round(np.exp(rng.normal(np.log(median), spread, USERS))), min_len, max_len).astype(np.int64)
    g = torch.Generator().manual_seed(seed)
    batches = []
    for start in range(0, USERS, BATCH):
        lens = lengths[start:start + BATCH]
        logits = 2.0 * torch.randn(len(lens), LAYERS, HEADS, max_len, max_len, generator=g)
        real_key = torch.arange(max_len)[None, :] < torch.as_tensor(lens)[:, None]  # (B, L)
        logits.masked_fill_(~real_key[:, None, None, None, :], float("-inf"))
        batches.append((logits.softmax(-1), lens))  # float32, as a model returns it
    return batches


@pytest.fixture(scope="module", params=list(PROFILES))
def attention_batches(request):
    return request.param, make_batches(request.param)


@pytest.mark.perf
def test_attention_analysis_1000_users(benchmark, attention_batches):
    profile, batches = attention_batches
    wall, cpu = [], []

    def run():
        t0, c0 = time.perf_counter(), time.process_time()
        gen = np.random.default_rng(0)
        s = torch.cat([attention_sparsity(a, lens, aggregate="none").flatten() for a, lens in batches])
        k = torch.cat([attention_rank(a, lens, SIGMA, gen, aggregate="none").flatten() for a, lens in batches])
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        return s, k

    s, k = benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    lengths = torch.as_tensor(np.concatenate([lens for _, lens in batches])).repeat_interleave(LAYERS * HEADS)
    assert s.shape == k.shape == (USERS * LAYERS * HEADS,)
    # row-stochastic length x length blocks: length^-1.5 <= S <= 1/length, and 0 <= k <= length
    n = lengths.double()
    assert bool((s >= n**-1.5 * (1 - 1e-9)).all()) and bool((s <= 1 / n * (1 + 1e-9)).all())
    assert int(k.min()) >= 0 and bool((k <= lengths).all())
    assert 0 < float(k.double().mean()) < float(lengths.double().mean())
    benchmark.extra_info.update(profile=profile, matrices=len(s), mean_sparsity=float(s.mean()),
                                mean_k=float(k.double().mean()), wall_s=wall[0], cpu_s=cpu[0],
                                target_s=TARGET_S, within_target=cpu[0] < TARGET_S)
    # The 10 s target is a benchmark figure (extra_info, README), not a pass/fail timing: shared
    # machines are too noisy for a timed test.
