"""regkit.classical: exact messages for bad input and exact values of the shared helpers (pyramids,
schedules) and of the methods' settings on small cases. Tolerances are stated per test."""

import pytest
import torch

from regkit import spatial
from regkit.classical import _common as C

ERRORS = {
    "top": (lambda: C.auto_levels((64, 64), top=0), ValueError, "top must be positive, got 0"),
    "top float": (lambda: C.auto_levels((64, 64), top=16.0), TypeError, "top must be an integer, got 16.0"),
    "levels": (lambda: C.pyramid_sizes((64, 64), 0), ValueError, "levels must be positive, got 0"),
    "levels float": (lambda: C.pyramid_sizes((64, 64), 2.0), TypeError, "levels must be an integer, got 2.0"),
    "schedule levels": (lambda: C.check_levels_iterations(0, 5), ValueError, "levels must be positive, got 0"),
    "schedule levels float": (lambda: C.check_levels_iterations(1.0, 5), TypeError, "levels must be an integer, got 1.0"),
    "iterations 0": (lambda: C.check_levels_iterations(2, 0), ValueError, "iterations must be positive, got 0"),
    "iterations str": (lambda: C.check_levels_iterations(2, "5"), TypeError,
                       "iterations must be an int or a sequence of ints, got '5'"),
    "iterations bytes": (lambda: C.check_levels_iterations(2, b"5"), TypeError,
                         "iterations must be an int or a sequence of ints, got b'5'"),
    "iterations float": (lambda: C.check_levels_iterations(2, 5.0), TypeError,
                         "iterations must be an int or a sequence of ints, got 5.0"),
    "iterations bool": (lambda: C.check_levels_iterations(2, True), TypeError,
                        "iterations must be an int or a sequence of ints, got True"),
    "iterations empty": (lambda: C.check_levels_iterations(None, ()), ValueError,
                         "iterations must give at least one level, got ()"),
    "iterations count": (lambda: C.check_levels_iterations(3, (1, 2)), ValueError,
                         "iterations must give one count per level (3), got [1, 2]"),
    "iterations negative": (lambda: C.check_levels_iterations(2, (1, -2)), ValueError,
                            "iterations must be non-negative, got -2"),
    "iterations float entry": (lambda: C.check_levels_iterations(2, (1, 2.0)), TypeError,
                               "iterations must be an integer, got 2.0"),
    "iterations all zero": (lambda: C.check_levels_iterations(2, (0, 0)), ValueError,
                            "iterations must not all be zero, got [0, 0]"),
    "min size": (lambda: C.check_min_size("demons", torch.zeros(1, 1, 3, 9)), ValueError,
                 "demons needs images of at least 4 x 4 pixels, got 3 x 9"),
    "min size wide": (lambda: C.check_min_size("syn", torch.zeros(1, 1, 9, 5), 6), ValueError,
                      "syn needs images of at least 6 x 6 pixels, got 9 x 5"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_input_message(case):
    call, error, message = ERRORS[case]
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message


def test_grey_is_the_float32_channel_mean():
    x = torch.tensor([[0.0, 0.25], [1.0, 0.5]], dtype=torch.float64).view(1, 2, 1, 2)
    g = C.grey(x)
    assert g.dtype == torch.float32 and g.shape == (1, 1, 1, 2)
    assert g.flatten().tolist() == [0.5, 0.375]


def test_auto_levels_boundaries():
    """The shorter side is halved, rounding up, while it is at least ``2 top``: 31 px -> 1 level,
    32 -> 2, 62 -> 31 = 2 levels, 63 -> 32 -> 16 = 3 levels (rounding down would stop at 31 and
    give 2; adding 2 before halving would take 62 to 32 and give 3)."""
    assert [C.auto_levels((s, 1000)) for s in (16, 31, 32, 62, 63, 64, 65)] == [1, 1, 2, 2, 3, 3, 3]
    assert C.auto_levels((1000, 40)) == 2
    assert C.auto_levels((64, 64), top=8) == 4          # 64 -> 32 -> 16 -> 8
    assert C.auto_levels((64, 64), top=32) == 2
    assert C.auto_levels((40, 40)) == 2 and C.auto_levels((40, 40), 16) == 2


def test_pyramid_sizes_round_up_and_stop_at_the_minimum():
    assert C.pyramid_sizes((33, 65), 3) == [(17, 33), (33, 65)]             # (9, 17) is below 16
    assert C.pyramid_sizes((33, 65), 3, min_size=8) == [(9, 17), (17, 33), (33, 65)]
    assert C.pyramid_sizes((65, 33), 4, min_size=9) == [(17, 9), (33, 17), (65, 33)]
    assert C.pyramid_sizes((64, 64), 1) == [(64, 64)]
    assert C.pyramid_sizes((32, 32), 2) == [(16, 16), (32, 32)]            # 16 itself is kept


def test_image_pyramid_resizes_with_antialiasing_and_keeps_the_full_image():
    x = torch.rand(1, 1, 32, 24, generator=torch.Generator().manual_seed(0))
    levels = C.image_pyramid(x, [(8, 6), (16, 12), (32, 24)])
    assert levels[2] is x
    for lvl, size in zip(levels[:2], [(8, 6), (16, 12)]):
        assert torch.equal(lvl, spatial.resize_image(x, size, antialias=True))
        assert not torch.allclose(lvl, spatial.resize_image(x, size), atol=1e-3)


def test_check_levels_iterations_returns_levels_and_counts():
    assert C.check_levels_iterations(3, 20) == (3, [20, 20, 20])
    assert C.check_levels_iterations(None, 20) == (None, [20])
    assert C.check_levels_iterations(None, (10, 5)) == (2, [10, 5])
    assert C.check_levels_iterations(2, [0, 5]) == (2, [0, 5])
    assert C.check_levels_iterations(2, iter((3, 4))) == (2, [3, 4])


def test_level_schedule_moves_the_iterations_of_dropped_levels():
    """A 32 px image asked for 4 levels keeps 16 and 32 px: the iterations of the 4 and 8 px levels
    (5 and 7) go to 16 px, which then does 5 + 7 + 11."""
    assert C.level_schedule((32, 32), 4, [5, 7, 11, 13]) == ([(16, 16), (32, 32)], [23, 13])
    sizes, per = C.level_schedule((64, 48), None, [9])
    assert sizes == [(32, 24), (64, 48)] and per == [9, 9]                  # auto_levels((64, 48)) = 2
    assert C.level_schedule((128, 128), 3, [4, 3, 2]) == ([(32, 32), (64, 64), (128, 128)], [4, 3, 2])
    assert C.level_schedule((128, 128), 2, [6, 1]) == ([(64, 64), (128, 128)], [6, 1])


def test_check_min_size_accepts_the_minimum():
    C.check_min_size("demons", torch.zeros(1, 1, 4, 4))
    C.check_min_size("syn", torch.zeros(1, 1, 6, 6), 6)
    assert C.MIN_SIZE == 4 and C.TOP_SIZE == 16
