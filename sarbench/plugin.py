"""The sarbench pytest plugin: options, markers and fixtures for `pytest bench`.

Registered through the ``pytest11`` entry point, so any pytest run in an environment where sarbench
is installed knows the options below. Session state lives in ``config.stash``.
"""

from __future__ import annotations

import os

import pytest

MARKERS = {
    "vanilla": "Table 4: vanilla AE vs AR on each dataset",
    "design": "Table 5: the design space (local attention, SSE-PT, CE vs BPR loss)",
    "hf": "Table 6: HuggingFace backbones (ALBERT, LLaMA, Transformer-XL)",
    "analysis": "Tables 2-3 and Figures 1-3, 5: attention sparsity and hard-threshold rank",
    "math": "hypothesis properties of the paper's measures",
    "perf": "throughput and memory benchmarks",
    "gpu": "needs a CUDA device (skipped without --gpu)",
}


def _scale(value: str) -> str:
    if value not in ("smoke", "paper"):
        raise pytest.UsageError(f"--scale must be 'smoke' or 'paper', got {value!r}")
    return value


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise pytest.UsageError(f"expected a positive integer, got {value!r}") from None
    if n < 1:
        raise pytest.UsageError(f"expected a positive integer, got {value!r}")
    return n


def pytest_addoption(parser):
    group = parser.getgroup("sarbench", "sarbench: AE vs AR self-attention benchmarks")
    group.addoption("--gpu", action="store_true", default=False,
                    help="train on CUDA; stop at start-up if no CUDA device exists (default: CPU)")
    group.addoption("--scale", type=_scale, default="smoke",
                    help="smoke: a few epochs on a user subset (CI, laptops); paper: the paper's protocol "
                         "(default: smoke)")
    group.addoption("--data-dir", default=None,
                    help="folder with the real datasets (default: $SARBENCH_DATA, else only the embedded "
                         "synthetic dataset)")
    group.addoption("--seeds", type=_positive_int, default=1,
                    help="number of seeds per case (default: 1)")
    group.addoption("--results", default="results",
                    help="folder of the resumable results store (default: results)")
    group.addoption("--rerun", action="store_true", default=False,
                    help="retrain cases even when a matching stored result exists (default: reuse)")


def pytest_configure(config):
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")
    if config.getoption("--gpu", default=False):
        import torch

        if not torch.cuda.is_available():
            raise pytest.UsageError("--gpu was given but no CUDA device is available; refusing to train on CPU")


@pytest.fixture(scope="session")
def data_dir(pytestconfig):
    """The real-data folder, or None when only the synthetic dataset is configured."""
    value = pytestconfig.getoption("--data-dir") or os.environ.get("SARBENCH_DATA") or None
    return value


@pytest.fixture(scope="session")
def device(pytestconfig) -> str:
    return "cuda" if pytestconfig.getoption("--gpu") else "cpu"


@pytest.fixture(scope="session")
def scale(pytestconfig) -> str:
    return pytestconfig.getoption("--scale")
