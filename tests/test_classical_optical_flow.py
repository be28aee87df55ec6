"""Horn-Schunck: recovers a smooth synthetic field, agrees with scikit-image TV-L1 and OpenCV
Farneback, is batched, checks input."""

import pytest
import torch

import regkit
from regkit import metrics, spatial
from regkit.classical.optical_flow import neighbour_average

#: mean end-point error bound (pixels), fields of at most 4 px (measured: 0.34-0.51 px; the
#: unregistered error is 0.9-1.5 px)
EPE_BOUND = 0.65


def epe(disp, true):
    return metrics.epe(disp, true, spatial.inside_mask(true))


def test_recovers_smooth_field(smooth_pair):
    moving, fixed, true = smooth_pair
    res = regkit.register(moving, fixed, method="horn_schunck")
    assert (epe(res.disp, true) < EPE_BOUND).all(), epe(res.disp, true)
    assert (epe(res.disp, true) < 0.5 * epe(torch.zeros_like(true), true)).all()
    assert (metrics.folding_fraction(res.disp) < 1e-3).all()


@pytest.mark.parametrize("reference", ["skimage_tvl1", "cv2_farneback"])
def test_agrees_with_reference(smooth_pair, reference):
    """At least as accurate as the reference within 10% (mean over the pairs), fields close."""
    moving, fixed, true = smooth_pair
    ours = regkit.register(moving, fixed, method="horn_schunck")
    ref = regkit.register(moving, fixed, method=reference)
    assert epe(ours.disp, true).mean() <= 1.1 * epe(ref.disp, true).mean()
    assert (epe(ours.disp, ref.disp) < 1.0).all()


def test_known_translation_sign():
    from skimage import data

    img = spatial.resize_image(torch.from_numpy(data.camera()).float()[None, None] / 255, (96, 96), antialias=True)
    moving = torch.roll(img, 3, dims=3)  # content 3 px to the right: u_x = +3
    res = regkit.register(moving, img, method="horn_schunck")
    centre = res.disp[0, :, 24:72, 24:72].mean((1, 2))
    assert abs(float(centre[0]) - 3) < 0.3 and abs(float(centre[1])) < 0.2


def test_batched_equals_one_by_one(smooth_pair):
    moving, fixed, _ = smooth_pair
    both = regkit.register(moving, fixed, method="horn_schunck", iterations=10)
    one = regkit.register(moving[1:], fixed[1:], method="horn_schunck", iterations=10)
    assert torch.allclose(both.disp[1:], one.disp, atol=1e-4)


def test_neighbour_average_keeps_linear_fields():
    g = spatial.identity_grid((7, 9)).clone()
    avg = neighbour_average(g)
    assert torch.allclose(avg[..., 1:-1, 1:-1], g[..., 1:-1, 1:-1], atol=1e-6)


def test_history(smooth_pair):
    moving, fixed, _ = smooth_pair
    res = regkit.register(moving[:1], fixed[:1], method="horn_schunck", iterations=5, levels=2, warps=2, history=1)
    assert [i for i, _ in res.extras["history"]] == [1, 2, 3, 4]
    assert torch.equal(res.extras["history"][-1][1], res.disp)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": -1.0}, "alpha"),
        ({"sigma": -1.0}, "sigma"),
        ({"iterations": 0}, "iterations"),
        ({"warps": 0}, "warps"),
        ({"levels": 1.5}, "levels"),
    ],
)
def test_bad_parameters(smooth_pair, kwargs, match):
    moving, fixed, _ = smooth_pair
    with pytest.raises((ValueError, TypeError), match=match):
        regkit.register(moving, fixed, method="horn_schunck", **kwargs)


def test_non_finite_input(smooth_pair):
    moving, fixed, _ = smooth_pair
    bad = moving.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        regkit.register(bad, fixed, method="horn_schunck")
