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
