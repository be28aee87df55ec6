"""Shared test settings."""

import pytest
import torch

from regkit import spatial


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


@pytest.fixture(scope="module")
def smooth_pair():
    """Two real pictures (scikit-image's retina and camera, grey, 128 px) and a seeded smooth
    diffeomorphic field of at most 4 px: ``(moving, fixed, true_disp)`` with
    ``fixed = warp(moving, true_disp)``."""
    from regkit.classical.crosscheck import scikit_images

    moving = scikit_images((128, 128))[:2]
    true = spatial.random_smooth_disp(2, (128, 128), max_disp=4.0, generator=torch.Generator().manual_seed(0))
    return moving, spatial.warp(moving, true), true
