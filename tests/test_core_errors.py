"""Bad inputs raise clear errors that name the argument; the registry and profile switch behave."""

import pytest
import torch

import regkit
from regkit import losses, metrics, spatial

IMG = torch.rand(1, 1, 16, 16)
DISP = torch.zeros(1, 2, 16, 16)


def _nan_image():
    x = IMG.clone()
    x[0, 0, 3, 3] = float("nan")
    return x


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: spatial.warp(IMG[0], DISP), ValueError, "image must have 4 dimensions"),
        (lambda: spatial.warp(IMG, DISP[:, :1]), ValueError, "disp must have 2 channels"),
        (lambda: spatial.warp(IMG, torch.zeros(1, 2, 8, 8)), ValueError, "disp must match the image"),
        (lambda: spatial.warp(IMG, torch.zeros(2, 2, 16, 16)), ValueError, "disp must match the image"),
        (lambda: spatial.warp(_nan_image(), DISP), ValueError, "image contains NaN"),
        (lambda: spatial.warp(IMG, torch.full_like(DISP, float("inf"))), ValueError, "disp contains NaN or infinite"),
        (lambda: spatial.warp(IMG.double(), -torch.full_like(DISP, float("inf"))), ValueError, "disp contains NaN"),
        (lambda: spatial.warp((IMG * 255).to(torch.uint8), DISP), TypeError, "image must be a floating-point"),
        (lambda: spatial.warp(IMG.numpy(), DISP), TypeError, "image must be a torch.Tensor"),
        (lambda: spatial.warp(IMG, DISP, mode="cubic"), ValueError, "mode must be one of"),
        (lambda: spatial.warp(IMG, DISP, padding="wrap"), ValueError, "padding must be one of"),
        (lambda: spatial.affine_to_disp(torch.zeros(1, 3, 3), (8, 8)), ValueError, "theta must have shape"),
        (lambda: spatial.affine_to_disp(torch.zeros(1, 2, 3), (1, 8)), ValueError, "size must be at least"),
        (lambda: spatial.affine_matrix((8, 8), scale=0.0), ValueError, "scale must be positive"),
        (lambda: spatial.integrate_velocity(DISP, steps=-1), ValueError, "steps must be non-negative"),
        (lambda: spatial.random_smooth_disp(0, (8, 8)), ValueError, "n must be positive"),
        (lambda: metrics.ssim(IMG, torch.rand(1, 1, 16, 17)), ValueError, "a and b must have the same shape"),
        (lambda: metrics.ssim(IMG[..., :8, :8], IMG[..., :8, :8]), ValueError, "larger than the 11-pixel"),
        (lambda: metrics.mse(IMG, IMG, torch.ones(1, 1, 8, 8)), ValueError, "mask must have shape"),
        (lambda: metrics.tre(torch.zeros(1, 3, 2), torch.zeros(1, 4, 2)), ValueError, "landmarks_moving and landmarks_fixed"),
        (lambda: losses.local_ncc_loss(IMG, IMG, window=4), ValueError, "window must be odd"),
        (lambda: losses.similarity_loss("mi"), ValueError, "similarity must be one of"),
        (lambda: regkit.register(IMG, IMG, method="no-such-method"), ValueError, "method must be one of"),
        (lambda: regkit.register(IMG, torch.rand(1, 1, 8, 8)), ValueError, "moving and fixed must have the same shape"),
        (lambda: regkit.seed_everything(-1), ValueError, "seed must be a non-negative integer"),
        (lambda: regkit.register((IMG * 255).to(torch.uint8), IMG), TypeError, r"moving must be a floating-point .* x.float\(\) / 255"),
        (lambda: regkit.register(IMG, IMG * 255), ValueError, r"fixed must have intensities in \[0, 1\], got values in \["),
        (lambda: regkit.register(IMG - 1, IMG), ValueError, r"moving must have intensities in \[0, 1\]"),
        (lambda: regkit.register(IMG, IMG, method="demons", sigma=1.0), TypeError, "method 'demons' has no setting 'sigma'"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, error, words):
    with pytest.raises(error, match=words):
        call()


def test_register_range_check_allows_rounding_and_any_float_dtype():
    x = IMG.clone()
    x[0, 0, 0, 0], x[0, 0, 0, 1] = 1.0005, -0.0005  # within RANGE_TOL of [0, 1]
    assert torch.equal(regkit.register(x, x, method="identity").warped, x)
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        x = IMG.to(dtype)
        assert torch.equal(regkit.register(x, x, method="identity").warped, x.float())


def test_identity_method_and_registry():
    assert "identity" in regkit.methods()
    res = regkit.register(IMG, IMG, method="identity")
    assert isinstance(res, regkit.RegResult)
    assert torch.equal(res.warped, IMG) and torch.equal(res.disp, torch.zeros(1, 2, 16, 16))
    info = regkit.describe()["identity"]
    assert info["kind"] == "baseline" and info["summary"]


def test_every_registered_method_has_a_kind_and_a_summary():
    for name, info in regkit.describe().items():
        assert info["kind"] and info["summary"], name


def test_profile_switch(monkeypatch):
    monkeypatch.setenv("REGKIT_PROFILE", "full")
    assert regkit.profile() == "full" and regkit.by_profile(quick=1, full=2) == 2
    monkeypatch.setenv("REGKIT_PROFILE", "Quick ")
    assert regkit.profile() == "quick" and regkit.by_profile(quick=1, full=2) == 1
    monkeypatch.setenv("REGKIT_PROFILE", "huge")
    with pytest.raises(ValueError, match="REGKIT_PROFILE must be one of"):
        regkit.profile()
    monkeypatch.delenv("REGKIT_PROFILE")
    assert regkit.profile() == ("full" if torch.cuda.is_available() else "quick")


def test_seed_everything_makes_torch_repeatable():
    g = regkit.seed_everything(3)
    a = torch.rand(3), torch.rand(2, generator=g)
    g = regkit.seed_everything(3)
    b = torch.rand(3), torch.rand(2, generator=g)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
