"""Fixtures shared by the library's unit tests."""

import pytest
import torch


@pytest.fixture()
def one_thread():
    """Tiny tensors: on a busy machine, waking extra threads costs far more (up to 50x) than the work."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
