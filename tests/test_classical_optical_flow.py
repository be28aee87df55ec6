"""Horn-Schunck: recovers a smooth synthetic field, agrees with scikit-image TV-L1 and OpenCV
Farneback, is batched, checks input."""

import pytest
import torch

import regkit
from regkit import metrics, spatial
from regkit.classical.optical_flow import horn_schunck_step, median_filter, neighbour_average

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


@pytest.mark.parametrize("shift", [3, 8])
def test_known_translation_sign(shift):
    """3 px the finest level makes up alone; 8 px needs every level's field carried up with its
    values rescaled (resizing it like an image would leave 1 px from the 12 px level)."""
    from skimage import data

    img = spatial.resize_image(torch.from_numpy(data.camera()).float()[None, None] / 255, (96, 96), antialias=True)
    moving = torch.roll(img, shift, dims=3)  # content `shift` px to the right: u_x = +shift
    res = regkit.register(moving, img, method="horn_schunck")
    centre = res.disp[0, :, 24:72, 24:72].mean((1, 2))
    assert abs(float(centre[0]) - shift) < 0.3 and abs(float(centre[1])) < 0.2, centre


def test_recovers_a_translation_of_a_tenth_of_the_width(smooth_pair):
    moving = smooth_pair[0]
    true = torch.zeros(2, 2, 128, 128)
    true[:, 0], true[:, 1] = 11.0, -6.0   # 12.5 px at 128 px
    res = regkit.register(moving, spatial.warp(moving, true), method="horn_schunck")
    assert res.extras["sizes"][0] == (16, 16)
    assert (epe(res.disp, true) < 0.5).all(), epe(res.disp, true)


def test_one_jacobi_step_matches_the_hand_computed_update():
    """u = 0 except u_x = 1 at the centre of a 5 x 5 field; g = (0.2, 0.1), c = -0.1, alpha^2 =
    0.04. At the centre the neighbour average is 0 (the centre itself does not count), so
    u_x = 0 - 0.2 (0.2 * 0 - 0.1) / (0.04 + 0.05) = 0.22222 and u_y = 0.11111; at its right
    neighbour the average is 1/6: u_x = 1/6 - 0.2 (0.2/6 - 0.1) / 0.09 = 0.31481."""
    u = torch.zeros(1, 2, 5, 5)
    u[0, 0, 2, 2] = 1.0
    g = torch.zeros(1, 2, 5, 5)
    g[:, 0], g[:, 1] = 0.2, 0.1
    scale = g / (0.04 + (g * g).sum(1, keepdim=True))
    new = horn_schunck_step(u, g, torch.full((1, 1, 5, 5), -0.1), scale)
    assert torch.allclose(new[0, :, 2, 2], torch.tensor([0.22222, 0.11111]), atol=1e-5)
    assert abs(float(new[0, 0, 2, 3]) - 0.31481) < 1e-5


def test_median_filter_is_the_row_then_column_median():
    u = torch.randn(2, 2, 9, 11, generator=torch.Generator().manual_seed(0))
    for size in (3, 5, 7):
        r = size // 2
        p = torch.nn.functional.pad(u, (r, r, 0, 0), mode="replicate")
        rows = p.unfold(3, size, 1).median(-1).values
        p = torch.nn.functional.pad(rows, (0, 0, r, r), mode="replicate")
        expected = p.unfold(2, size, 1).median(-1).values
        assert torch.equal(median_filter(u, size), expected)
    assert median_filter(u, 1) is u


def test_levels_dropped_by_a_small_image_pass_their_iterations_on():
    from skimage import data

    img = spatial.resize_image(torch.from_numpy(data.camera()).float()[None, None] / 255, (32, 32), antialias=True)
    true = torch.zeros(1, 2, 32, 32)
    true[:, 0] = 1.5
    res = regkit.register(img, spatial.warp(img, true), method="horn_schunck", iterations=(50, 0, 0), levels=3)
    assert res.extras["sizes"] == [(16, 16), (32, 32)] and res.extras["iterations"] == [50, 0]
    assert float(res.disp[0, 0, 8:-8, 8:-8].mean()) > 0.5


@pytest.mark.parametrize("size", [(1, 1), (2, 9)])
def test_images_below_the_minimum_size_are_refused(size):
    x = torch.rand(1, 1, *size)
    with pytest.raises(ValueError, match="horn_schunck needs images of at least 4 x 4 pixels"):
        regkit.register(x, x, method="horn_schunck")


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
        ({"sigma": float("inf")}, "sigma"),
        ({"alpha": float("inf")}, "alpha"),
        ({"median": 4}, "median"),
        ({"median": 0}, "median"),
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


def test_cpu_chunks_of_pairs_give_the_same_field(smooth_pair, monkeypatch):
    import regkit.classical.optical_flow as O

    moving, fixed, _ = smooth_pair
    whole = regkit.register(moving, fixed, method="horn_schunck", iterations=10).disp
    monkeypatch.setattr(O, "_CPU_CHUNK_PIXELS", 1)   # one pair per chunk
    assert torch.equal(regkit.register(moving, fixed, method="horn_schunck", iterations=10).disp, whole)


def test_neighbour_average_of_an_unbatched_field():
    """Catches H, W read from ``shape[2:]`` instead of the last two dimensions: a ``C,H,W`` field
    is averaged exactly like a batch of one."""
    u = torch.rand(2, 5, 6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(neighbour_average(u), neighbour_average(u[None])[0])


def test_horn_schunck_follows_the_inputs_device_not_the_default_device():
    """Catches the starting flow made on the default device: under a meta default device, CPU
    images give the same CPU flow and warped image."""
    g = torch.Generator().manual_seed(1)
    moving, fixed = torch.rand(2, 1, 20, 24, generator=g), torch.rand(2, 1, 20, 24, generator=g)
    ref = regkit.register(moving, fixed, method="horn_schunck", iterations=3, warps=1)
    with torch.device("meta"):
        out = regkit.register(moving, fixed, method="horn_schunck", iterations=3, warps=1)
    assert out.disp.device.type == "cpu" and torch.equal(out.disp, ref.disp)
    assert out.warped.device.type == "cpu" and torch.equal(out.warped, ref.warped)
