"""Shared test settings."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Run the tests on one intra-op thread.

    The tensors here are small: one thread is as fast, and the timings stay steady when the cores
    are shared (with two threads on two busy cores, some tests ran ten times slower).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
