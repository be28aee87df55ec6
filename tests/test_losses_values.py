"""regkit.losses: exact values on fields and images small enough to compute by hand.

Each expected number is derived in the test's docstring; tolerances are float32 rounding
(``1e-6`` relative unless stated).
"""

import pytest
import torch

from regkit import losses


def _field(h, w, fx, fy):
    """A ``1,2,h,w`` displacement with ``u_x = fx(x, y)`` and ``u_y = fy(x, y)`` (x = column,
    y = row, both in pixels from 0)."""
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    return torch.stack((fx(x, y), fy(x, y)))[None].float()


def test_diffusion_of_a_linear_field():
    r"""``u_x = x / 2``, ``u_y = y / 4`` on 6 x 9 px. Forward differences: ``d_x u_x = 1/2`` and
    ``d_y u_y = 1/4`` everywhere, the cross terms are 0. Each mean runs over both channels, so
    ``mean(dx^2) = (1/4 + 0) / 2 = 1/8`` and ``mean(dy^2) = (0 + 1/16) / 2 = 1/32``:
    the loss is ``1/8 + 1/32 = 0.15625`` (an ``abs`` in place of the square gives 0.375)."""
    u = _field(6, 9, lambda x, y: x / 2, lambda x, y: y / 4)
    assert float(losses.diffusion_loss(u)) == pytest.approx(0.15625, rel=1e-6)
    # the transposed field (rows and columns swapped) has the transposed derivatives
    v = _field(9, 6, lambda x, y: 0 * x, lambda x, y: x / 2)
    assert float(losses.diffusion_loss(v)) == pytest.approx((0 + 0.25) / 2, rel=1e-6)


def test_bending_energy_of_a_twist():
    r"""The twist ``u_x = x y / 16``, ``u_y = 0`` on 6 x 9 px: ``u_xx = u_yy = 0`` and the
    mixed difference ``u(x+1, y+1) - u(x, y+1) - u(x+1, y) + u(x, y) = 1/16`` everywhere. Over
    both channels ``mean(u_xy^2) = (1/256) / 2 = 1/512``, so the energy is
    ``2 / 512 = 1/256 = 0.00390625`` (``- 2 u_xy^2`` would give ``-1/256``)."""
    u = _field(6, 9, lambda x, y: x * y / 16, lambda x, y: 0 * x)
    assert float(losses.bending_loss(u)) == pytest.approx(1 / 256, rel=1e-6)


def test_bending_energy_of_quadratics():
    r"""``u_x = x^2 / 2 + x y / 16`` and ``u_y = y^2 / 4`` on 6 x 9 px: channel x has
    ``u_xx = 1``, ``u_yy = 0``, ``u_xy = 1/16``; channel y has ``u_xx = 0``, ``u_yy = 1/2``,
    ``u_xy = 0``. Averaged over the channels: ``1/2 + (1/4)/2 + 2 (1/256)/2 = 0.62890625``."""
    u = _field(6, 9, lambda x, y: x**2 / 2 + x * y / 16, lambda x, y: y**2 / 4)
    assert float(losses.bending_loss(u)) == pytest.approx(0.62890625, rel=1e-6)


@pytest.mark.parametrize("name", ["diffusion_loss", "bending_loss"])
def test_regularisers_are_quadratic(name):
    """A quadratic form: twice the field costs four times as much (an ``abs`` would double it)."""
    fn = getattr(losses, name)
    u = torch.randn(2, 2, 7, 10, generator=torch.Generator().manual_seed(0))
    assert float(fn(2 * u)) == pytest.approx(4 * float(fn(u)), rel=1e-5)
    assert float(fn(u)) > 0.1


def test_mse_value():
    """``(0.75 - 0.25)^2 = 0.25`` on every pixel of one image and 0 on the other: mean 0.125."""
    a = torch.cat((torch.full((1, 1, 3, 4), 0.75), torch.full((1, 1, 3, 4), 0.5)))
    b = torch.cat((torch.full((1, 1, 3, 4), 0.25), torch.full((1, 1, 3, 4), 0.5)))
    assert float(losses.mse_loss(a, b)) == pytest.approx(0.125, rel=1e-6)


def test_ncc_value_per_image():
    """Image 1: ``w = (0, 1, 2, 3)/3`` against ``f = (0, 1, 3, 2)/3``: centred, ``w.f = 4/9``,
    ``|w|^2 = |f|^2 = 5/9``, NCC 0.8. Image 2: ``(0, 1, 0, 1)`` against ``(0, 0, 1, 1)``:
    orthogonal after centring, NCC 0. Loss ``mean(1 - 0.8, 1 - 0) = 0.6``."""
    w = torch.tensor([[0, 1, 2, 3], [0, 1, 0, 1]], dtype=torch.float32).view(2, 1, 2, 2)
    f = torch.tensor([[0, 1, 3, 2], [0, 0, 1, 1]], dtype=torch.float32).view(2, 1, 2, 2)
    w[0], f[0] = w[0] / 3, f[0] / 3
    assert float(losses.ncc_loss(w, f)) == pytest.approx(0.6, abs=1e-6)
    assert float(losses.ncc_loss(w[:1], f[:1])) == pytest.approx(0.2, abs=1e-6)
    # NCC does not care for brightness and contrast
    assert float(losses.ncc_loss(0.5 * w[:1] + 0.25, f[:1])) == pytest.approx(0.2, abs=1e-6)


def _lncc_by_loops(w, f, window):
    """``1 - mean cc`` with box moments over a zero-padded ``window x window`` neighbourhood,
    written pixel by pixel in float64."""
    w, f = w.double(), f.double()
    n, c, h, wd = w.shape
    r = window // 2
    eps = losses.LNCC_EPS
    total, count = 0.0, 0
    for b in range(n):
        for ch in range(c):
            for i in range(h):
                for j in range(wd):
                    sw = sf = sww = sff = swf = 0.0
                    for di in range(-r, r + 1):
                        for dj in range(-r, r + 1):
                            if 0 <= i + di < h and 0 <= j + dj < wd:
                                a, z = float(w[b, ch, i + di, j + dj]), float(f[b, ch, i + di, j + dj])
                                sw, sf, sww, sff, swf = sw + a, sf + z, sww + a * a, sff + z * z, swf + a * z
                    k = window * window
                    mw, mf = sw / k, sf / k
                    var_w = max(sww / k - mw * mw, eps)
                    var_f = max(sff / k - mf * mf, eps)
                    cov = swf / k - mw * mf
                    total += cov * cov / (var_w * var_f)
                    count += 1
    return 1 - total / count


@pytest.mark.parametrize("window", [3, 5])
def test_local_ncc_matches_a_pixel_by_pixel_computation(window):
    """Two channels, two images, 6 x 7 px (the zero padding reaches every border pixel)."""
    g = torch.Generator().manual_seed(3)
    w = torch.rand(2, 2, 6, 7, generator=g)
    f = (0.6 * w + 0.4 * torch.rand(2, 2, 6, 7, generator=g)).clamp(0, 1)
    f[1, 1, :3, :3] = 0.5   # a flat corner: the variance floor applies there
    expected = _lncc_by_loops(w, f, window)
    assert float(losses.local_ncc_loss(w, f, window)) == pytest.approx(expected, abs=2e-5)
    assert float(losses.LocalNCCLoss(window)(w, f)) == pytest.approx(expected, abs=2e-5)


def test_local_ncc_default_window_is_nine():
    g = torch.Generator().manual_seed(4)
    w, f = torch.rand(1, 1, 12, 11, generator=g), torch.rand(1, 1, 12, 11, generator=g)
    expected = _lncc_by_loops(w, f, 9)
    assert float(losses.local_ncc_loss(w, f)) == pytest.approx(expected, abs=2e-5)
    assert float(losses.LocalNCCLoss()(w, f)) == pytest.approx(expected, abs=2e-5)


def test_local_ncc_refuses_an_even_window():
    x = torch.rand(1, 1, 8, 8)
    with pytest.raises(ValueError, match="window must be odd, got 4"):
        losses.local_ncc_loss(x, x, 4)


def test_similarity_loss_by_name_and_unknown_names():
    assert losses.similarity_loss("mse") is losses.mse_loss
    assert losses.similarity_loss("ncc") is losses.ncc_loss
    assert losses.similarity_loss("lncc") is losses.local_ncc_loss
    with pytest.raises(ValueError, match=r"similarity must be one of \['lncc', 'mse', 'ncc'\], got 'l2'"):
        losses.similarity_loss("l2")


def test_losses_run_in_float32_under_autocast():
    """bfloat16 inputs under CPU autocast: the loss is float32 and equals the float32 value of the
    same (bfloat16-rounded) inputs."""
    u = torch.randn(1, 2, 6, 9, generator=torch.Generator().manual_seed(5)).bfloat16()
    a = torch.rand(1, 1, 6, 9, generator=torch.Generator().manual_seed(6)).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        vals = {
            "diffusion_loss": losses.diffusion_loss(u),
            "bending_loss": losses.bending_loss(u),
            "mse_loss": losses.mse_loss(a, a.flip(-1)),
            "ncc_loss": losses.ncc_loss(a, a.flip(-1)),
            "local_ncc_loss": losses.local_ncc_loss(a, a.flip(-1), 3),
        }
    ref = {
        "diffusion_loss": losses.diffusion_loss(u.float()),
        "bending_loss": losses.bending_loss(u.float()),
        "mse_loss": losses.mse_loss(a.float(), a.flip(-1).float()),
        "ncc_loss": losses.ncc_loss(a.float(), a.flip(-1).float()),
        "local_ncc_loss": losses.local_ncc_loss(a.float(), a.flip(-1).float(), 3),
    }
    for name, v in vals.items():
        assert v.dtype == torch.float32, name
        assert float(v) == pytest.approx(float(ref[name]), rel=1e-6), name


def test_ncc_of_a_flat_image_is_one_not_nan():
    """A constant image has no variance: ``eps`` under the root keeps NCC at 0, the loss at 1."""
    flat, x = torch.full((1, 1, 4, 4), 0.5), torch.rand(1, 1, 4, 4, generator=torch.Generator().manual_seed(7))
    assert float(losses.ncc_loss(flat, x)) == pytest.approx(1.0, abs=1e-6)
    assert float(losses.ncc_loss(flat, flat)) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("channels", [6, 7])
def test_local_ncc_with_many_channels(channels):
    """The five moments are split back per channel for any channel count."""
    g = torch.Generator().manual_seed(channels)
    w, f = torch.rand(1, channels, 5, 4, generator=g), torch.rand(1, channels, 5, 4, generator=g)
    assert float(losses.local_ncc_loss(w, f, 3)) == pytest.approx(_lncc_by_loops(w, f, 3), abs=2e-5)


_GOOD = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(8))
_BAD_SHAPE = torch.rand(1, 8, 8)


@pytest.mark.parametrize("name", ["mse_loss", "ncc_loss", "local_ncc_loss"])
def test_similarity_errors_name_the_argument(name):
    """Each argument is named in its message, as the caller wrote it (lower case)."""
    fn = getattr(losses, name)
    with pytest.raises(ValueError, match=r"^warped must have 4 dimensions, got shape \(1, 8, 8\)$"):
        fn(_BAD_SHAPE, _GOOD)
    with pytest.raises(ValueError, match=r"^fixed must have 4 dimensions, got shape \(1, 8, 8\)$"):
        fn(_GOOD, _BAD_SHAPE)
    with pytest.raises(ValueError, match=r"^warped and fixed must have the same shape"):
        fn(_GOOD, _GOOD[..., :4])


@pytest.mark.parametrize("name", ["diffusion_loss", "bending_loss"])
def test_regulariser_errors_name_the_argument(name):
    fn = getattr(losses, name)
    with pytest.raises(ValueError, match=r"^disp must have 2 channels"):
        fn(torch.zeros(1, 3, 8, 8))


@pytest.mark.parametrize("window, error, message", [
    (0, ValueError, "window must be positive, got 0"),
    (3.0, TypeError, "window must be an integer, got 3.0"),
    (True, TypeError, "window must be an integer, got True"),
])
def test_local_ncc_window_must_be_a_positive_integer(window, error, message):
    with pytest.raises(error, match=f"^{message}$"):
        losses.local_ncc_loss(_GOOD, _GOOD, window)


def test_the_device_follows_the_inputs_not_the_default_device():
    """With another default device (meta), every loss of CPU inputs still runs on the CPU: no
    tensor is made on the default device."""
    g = torch.Generator().manual_seed(9)
    w, f, u = torch.rand(1, 2, 8, 9, generator=g), torch.rand(1, 2, 8, 9, generator=g), torch.randn(1, 2, 8, 9, generator=g)
    calls = {
        "mse": lambda: losses.mse_loss(w, f), "ncc": lambda: losses.ncc_loss(w, f),
        "lncc": lambda: losses.local_ncc_loss(w, f, 3), "diffusion": lambda: losses.diffusion_loss(u),
        "bending": lambda: losses.bending_loss(u),
    }
    for name, call in calls.items():
        ref = call()
        with torch.device("meta"):
            out = call()
        assert out.device.type == "cpu" and torch.equal(out, ref), name
