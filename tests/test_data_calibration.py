"""The proxies' unregistered rows match the paper's (Table 1, Table 3) within 10% each."""

import pytest

from regkit.data import fire_reg256, hpatches_reg256
from regkit.data.calibration import PAPER_UNREGISTERED, TOLERANCE, relative_error, unregistered_row


@pytest.mark.parametrize(
    "key, make, n",
    [
        ("fire_reg256", lambda: fire_reg256("test", source="proxy"), 18),   # two image pairs: real photo + procedural
        ("hpatches_reg256", lambda: hpatches_reg256("test"), 32),    # per-pair NCC varies with the affine
    ],
)
def test_unregistered_row_matches_paper(key, make, n):
    row = unregistered_row(make(), n=n)
    errors = relative_error(row, PAPER_UNREGISTERED[key])
    assert all(abs(e) <= TOLERANCE for e in errors.values()), (row, errors)
