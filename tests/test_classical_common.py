"""Shared helpers of the classical methods: pyramids and iteration schedules."""

import pytest

from regkit.classical import _common as C


def test_pyramid_and_iterations():
    assert C.pyramid_sizes((256, 200), 3) == [(64, 50), (128, 100), (256, 200)]
    assert C.pyramid_sizes((40, 40), 4) == [(20, 20), (40, 40)]  # stops at 16 px
    assert C.check_levels_iterations(2, (3, 4)) == (2, [3, 4])
    with pytest.raises(ValueError, match="one count per level"):
        C.check_levels_iterations(3, (3, 4))
    with pytest.raises(ValueError, match="all be zero"):
        C.check_levels_iterations(2, (0, 0))
    with pytest.raises(ValueError, match="iterations"):
        C.check_levels_iterations(2, 0)


def test_auto_levels_bring_the_top_level_to_16_to_31_px():
    for side in (16, 20, 31, 32, 63, 64, 100, 256, 370, 741, 1024):
        sizes = C.pyramid_sizes((side, side + 7), C.auto_levels((side, side + 7)))
        assert 16 <= min(sizes[0]) < 32 or (side < 32 and sizes == [(side, side + 7)]), (side, sizes)
    assert C.auto_levels((250, 370)) == 5 and C.auto_levels((8, 8)) == 1


def test_level_schedule_moves_the_iterations_of_dropped_levels():
    assert C.level_schedule((32, 32), 3, [10, 0, 0]) == ([(16, 16), (32, 32)], [10, 0])
    assert C.level_schedule((32, 40), 4, [1, 2, 3, 4]) == ([(16, 20), (32, 40)], [6, 4])
    assert C.level_schedule((8, 8), 3, [5, 6, 7]) == ([(8, 8)], [18])
    sizes, per = C.level_schedule((64, 64), None, [7])
    assert sizes == [(16, 16), (32, 32), (64, 64)] and per == [7, 7, 7]
    assert C.check_levels_iterations(None, (3, 4, 5)) == (3, [3, 4, 5])
    with pytest.raises(TypeError, match="iterations"):
        C.check_levels_iterations(None, "10")


def test_check_min_size():
    import torch

    C.check_min_size("demons", torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="demons needs images of at least 4 x 4 pixels, got 3 x 9"):
        C.check_min_size("demons", torch.zeros(1, 1, 3, 9))
