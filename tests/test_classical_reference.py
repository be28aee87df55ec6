"""Reference wrappers: the conversion at the edge (argument order, axis order, sign) and cleanup.

A moving image whose content sits ``s`` pixels to the right of the fixed image's (moving(x) =
fixed(x - s)) is registered by the pull field u = (+s, 0): warped(x) = moving(x + s) = fixed(x).
"""

import os
import re
import tempfile

import pytest
import torch

import regkit
from regkit import spatial
from regkit.classical import reference

REFERENCES = ["sitk_demons", "ants_syn", "skimage_tvl1", "cv2_farneback", "cv2_affine"]
#: how close the recovered shift must be (pixels, mean over the centre); ANTs' Mattes MI
#: SyN with its default smoothing recovers about 80% of a 3 px shift at this size.
TOL = {"sitk_demons": 0.35, "ants_syn": 0.7, "skimage_tvl1": 0.1, "cv2_farneback": 0.1, "cv2_affine": 0.1}


@pytest.fixture(scope="module")
def picture():
    from skimage import data

    img = torch.from_numpy(data.camera()).float()[None, None] / 255
    return spatial.resize_image(img, (96, 96), antialias=True)


@pytest.mark.parametrize("name", REFERENCES)
@pytest.mark.parametrize("axis,shift", [(0, 3), (1, -2)])
def test_known_shift_sign_and_axis(picture, name, axis, shift):
    moving = torch.roll(picture, shift, dims=3 if axis == 0 else 2)
    res = regkit.register(moving, picture, method=name)
    centre = res.disp[0, :, 24:72, 24:72].mean((1, 2))
    assert res.disp.shape == (1, 2, 96, 96)
    assert abs(float(centre[axis]) - shift) < TOL[name], centre
    assert abs(float(centre[1 - axis])) < 0.15, centre
    assert res.warped.shape == picture.shape


def test_ants_syn_leaves_no_temporary_files(picture):
    tmp = tempfile.gettempdir()
    before = set(os.listdir(tmp))
    moving = torch.roll(picture, 2, dims=3)
    res = regkit.register(moving, picture, method="ants_syn", return_inverse=True)
    new = {p for p in set(os.listdir(tmp)) - before if "regkit_ants" in p or p.endswith((".nii.gz", ".mat"))}
    assert not new
    assert res.extras["inverse_disp"].shape == res.disp.shape
    # the inverse pulls the other way
    assert float(res.extras["inverse_disp"][0, 0, 24:72, 24:72].mean()) < -1.0


def test_cv2_affine_recovers_known_affine(picture):
    big = spatial.resize_image(picture, (192, 192))
    theta_big = spatial.affine_matrix((192, 192), rotation=8.0, scale=1.05, tx=6.0, ty=-4.0)
    fixed = spatial.warp(big, spatial.affine_to_disp(theta_big, (192, 192)))
    res = regkit.register(big, fixed, method="cv2_affine")
    assert res.extras["ok"] == [True]
    assert torch.allclose(res.params, theta_big, atol=0.3)


@pytest.mark.parametrize(
    "name,kwargs,error,words",
    [
        ("sitk_demons", {"iterations": 0}, ValueError, "iterations must be positive"),
        ("sitk_demons", {"sigma": -1.0}, ValueError, "sigma must be non-negative"),
        ("sitk_demons", {"threads": 0}, ValueError, "threads must be positive"),
        ("ants_syn", {"iterations": (0, 0)}, ValueError, "iterations must not all be zero"),
        ("ants_syn", {"iterations": "10"}, TypeError, "iterations must be an int or a sequence"),
        ("ants_syn", {"flow_sigma": -1.0}, ValueError, "flow_sigma must be non-negative"),
        ("ants_syn", {"metric": "bogus"}, ValueError, "metric must be one of"),
        ("skimage_tvl1", {"num_warp": 0}, ValueError, "num_warp must be positive"),
        ("skimage_tvl1", {"tol": float("nan")}, ValueError, "tol must be a finite non-negative number"),
        ("cv2_farneback", {"pyr_scale": 1.5}, ValueError, r"pyr_scale must be in \(0, 1\)"),
        ("cv2_farneback", {"poly_n": 4}, ValueError, "poly_n must be 5 or 7"),
        ("cv2_affine", {"ratio": 0.0}, ValueError, r"ratio must be in \(0, 1\]"),
        ("cv2_affine", {"threshold": float("inf")}, ValueError, "threshold must be a finite positive number"),
    ],
)
def test_bad_parameters_raise(picture, name, kwargs, error, words):
    with pytest.raises(error, match=words) as info:
        regkit.register(picture, picture, method=name, **kwargs)
    assert info.type is error


@pytest.mark.parametrize("name", REFERENCES)
def test_images_outside_unit_range_are_refused_not_clipped(picture, name):
    with pytest.raises(ValueError, match=r"moving must have intensities in \[0, 1\], got values in \[[0-9.]+, 2[0-9.]+\]"):
        regkit.register(picture * 255, picture, method=name)


@pytest.mark.parametrize("name", REFERENCES)
def test_minimum_size_is_stated_and_enforced(name):
    small = torch.rand(1, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    least = {"ants_syn": 8, "cv2_farneback": 15}.get(name, reference.MIN_SIZE[name])
    with pytest.raises(ValueError, match=f"{name} needs moving and fixed images of at least {least} x {least}"):
        regkit.register(small, small, method=name)
    assert re.search(rf"\b{least}\b", getattr(reference, name).__doc__), "the docstring states the minimum"


def test_the_8_bit_wrappers_refuse_out_of_range_images_when_called_directly(picture):
    for fn in (reference.cv2_farneback, reference.cv2_affine):
        with pytest.raises(ValueError, match=r"fixed must have intensities in \[0, 1\]"):
            fn(picture, picture - 1)


def test_cv2_affine_warns_when_it_falls_back_to_the_identity():
    flat = torch.full((1, 1, 32, 32), 0.5)
    with pytest.warns(RuntimeWarning, match="cv2_affine: no affine found"):
        res = regkit.register(flat, flat, method="cv2_affine")
    assert res.extras["ok"] == [False] and torch.equal(res.params, torch.eye(2, 3)[None])


def test_ants_refuses_constant_images(picture):
    with pytest.raises(ValueError, match="fixed is constant"):
        regkit.register(picture, torch.full_like(picture, 0.25), method="ants_syn")


def test_mismatched_shapes_raise(picture):
    with pytest.raises(ValueError, match="same shape"):
        regkit.register(picture, picture[..., :64, :64].contiguous(), method="sitk_demons")
