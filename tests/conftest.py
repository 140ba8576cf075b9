"""Fixtures shared by the library's unit tests."""

import pytest
import torch
# torch imports torch._dynamo lazily, at the first optimiser step. When that first step happens inside a
# pytester test (tests/test_extending.py), pytester's sys.modules snapshot drops the module afterwards, and
# the next import re-registers torch's operator libraries and fails ("Only a single TORCH_LIBRARY ...") in
# whatever test trains next. Importing it here, before any snapshot, keeps it loaded.
import torch._dynamo  # noqa: F401,E402


@pytest.fixture()
def one_thread():
    """Tiny tensors: on a busy machine, waking extra threads costs far more (up to 50x) than the work."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
