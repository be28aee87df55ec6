"""Controls and structural tests of "does it really register": vessel segmentation, shuffled
pairings, structural scores, the whole table, the metric probe and the moved-fixed test."""

import math

import pytest
import torch

import regkit
from regkit import spatial
from regkit.evaluation import MethodSpec, evaluate, iter_batches
from regkit.experiments import controls as C
from regkit.models.gpereg import GPERegNet




def line_scene(g, size=48):
    """A bright background with three dark 'vessels' (lines of width 2) at random places."""
    img = 0.7 + 0.1 * torch.rand(1, size, size, generator=g)
    mask = torch.zeros(1, size, size, dtype=torch.bool)
    for _ in range(2):
        r = int(torch.randint(6, size - 8, (1,), generator=g))
        mask[0, r : r + 2, 4:-4] = True
    c = int(torch.randint(6, size - 8, (1,), generator=g))
    mask[0, 4:-4, c : c + 2] = True
    return torch.where(mask, torch.full_like(img, 0.25), img), mask


def toy_items(n_pairs=4, frames=2, size=48, shift=3.0):
    """Items like FIRE-Reg-256's: moving = fixed scene shifted by ``shift`` px (pull field) with a
    gamma change; exact disp, vessel masks, landmarks, frame and pair."""
    items = []
    for p in range(n_pairs):
        g = torch.Generator().manual_seed(p)
        fixed, mask = line_scene(g, size)
        for f in range(frames):
            u = torch.zeros(1, 2, size, size)
            u[:, 0] = shift
            # warp(moving, u) = fixed  =>  moving(p) = fixed(p - u): read fixed with -u
            moving = spatial.warp(fixed[None], -u)[0] ** 1.3
            mmask = spatial.warp_labels(mask[None].to(torch.uint8), -u)[0].bool()
            lf = torch.tensor([[10.0, 12.0], [30.0, 20.0], [20.0, 35.0]])
            items.append({
                "moving": moving, "fixed": fixed.clone(), "disp": u[0].clone(),
                "mask_fixed": mask.clone(), "mask_moving": mmask,
                "fov_fixed": torch.ones(1, size, size, dtype=torch.bool),
                "landmarks_fixed": lf, "landmarks_moving": lf + torch.tensor([shift, 0.0]),
                "landmarks_valid": torch.ones(3, dtype=torch.bool),
                "frame": f, "pair": p,
            })
    return items


# ----------------------------------------------------------------------------- vessel masks


def test_vessel_mask_finds_dark_lines_whatever_the_contrast():
    img, mask = line_scene(torch.Generator().manual_seed(3), 48)
    img = img[None]
    frac = float(mask.float().mean())
    seg = C.vessel_mask(img, fraction=frac)
    assert float(regkit.metrics.dice(seg, mask[None])) > 0.9
    # a monotone appearance change leaves the segmentation (nearly) unchanged
    seg2 = C.vessel_mask((0.5 * img + 0.2) ** 1.5, fraction=frac)
    assert float(regkit.metrics.dice(seg, seg2)) > 0.9
    # a flat image has no vessels; the field of view bounds the mask
    assert not C.vessel_mask(torch.full((1, 1, 32, 32), 0.5)).any()
    fov = torch.zeros(1, 1, 48, 48, dtype=torch.bool)
    fov[..., :24, :] = True
    assert not C.vessel_mask(img, fov)[..., 24:, :].any()


def test_vessel_mask_bad_input():
    with pytest.raises(ValueError, match="fraction"):
        C.vessel_mask(torch.rand(1, 1, 16, 16), fraction=1.5)
    with pytest.raises(ValueError, match="one channel"):
        C.vessel_mask(torch.rand(1, 3, 16, 16))


# --------------------------------------------------------------------------- shuffled pairing


def test_shuffled_pairing():
    g = torch.Generator().manual_seed(0)
    perm = C.shuffled_pairing(10, generator=g)
    assert sorted(perm.tolist()) == list(range(10)) and all(int(p) != i for i, p in enumerate(perm))
    groups = [0, 0, 0, 1, 1, 1, 2, 2, 3, 3]
    perm = C.shuffled_pairing(10, groups, generator=torch.Generator().manual_seed(1))
    assert sorted(perm.tolist()) == list(range(10))
    assert all(groups[int(p)] != groups[i] for i, p in enumerate(perm))
    again = C.shuffled_pairing(10, groups, generator=torch.Generator().manual_seed(1))
    assert torch.equal(perm, again)
    with pytest.raises(ValueError, match="group"):
        C.shuffled_pairing(4, [0, 0, 0, 1])
    with pytest.raises(ValueError, match="at least 2"):
        C.shuffled_pairing(1)


# ------------------------------------------------------------------------- batches and scores


def test_iter_batches_never_mix_pairs_and_resize():
    items = toy_items(n_pairs=3, frames=3)
    batches = list(iter_batches(items, batch_size=2))
    assert [b["pair"].tolist() for b in batches] == [[0, 0], [0], [1, 1], [1], [2, 2], [2]]
    small = next(iter_batches(items, batch_size=3, size=(24, 24)))
    assert small["moving"].shape == (3, 1, 24, 24) and small["mask_fixed"].dtype == torch.bool
    scale = 23 / 47
    torch.testing.assert_close(small["landmarks_fixed"], items[0]["landmarks_fixed"].expand(3, 3, 2) * scale)
    torch.testing.assert_close(small["disp"][:, 0].mean(), torch.tensor(3.0 * scale))


def test_vessel_metrics_with_and_without_displacement():
    batch = next(iter_batches(toy_items(2, 2), batch_size=2))
    scores = {"psnr": None, "tre": None, **C.vessel_metrics()}

    @regkit.registry.method("_test_truth", kind="test", summary="the true field")
    def _truth(moving, fixed):
        return regkit.RegResult(warped=spatial.warp(moving, batch["disp"]), disp=batch["disp"])

    try:
        res = evaluate(None, ["_test_truth", "fixed_oracle"], metrics=scores, batches=[batch])["methods"]
    finally:
        regkit.registry._METHODS.pop("_test_truth", None)
    truth, free = res["_test_truth"]["mean"], res["fixed_oracle"]["mean"]
    assert truth["tre"] < 1e-4 and truth["dice_warped_gt"] > 0.95 and truth["dice_vessels_gt"] > 0.5
    assert free["dice_vessels"] == 1.0 and free["psnr"] == float("inf")
    assert free["tre"] is None and free["dice_warped_gt"] is None  # no field: does not apply


def test_does_it_register_controls_and_a_deformation_free_model():
    torch.manual_seed(0)
    net = GPERegNet(scene_widths=(8, 8, 8, 8), appearance_widths=(8, 8, 8, 8), scene_channels=8, num_frames=4)
    specs = list(C.CONTROLS) + [MethodSpec("GPEReg-Net (untrained)", "gpereg", {"model": net}, frame=True)]
    rows = C.does_it_register(specs, toy_items(4, 2), batch_size=4, seed=0)
    by = {r["label"]: r for r in rows}
    assert list(by) == [s.label for s in specs] + ["Moving vs fixed"]
    unreg, transfer, oracle = (by[s.label] for s in C.CONTROLS)
    # the identity and appearance transfer ignore the fixed geometry entirely
    assert unreg["drop_ssim"] == 0.0 and abs(transfer["geometry_drop_ssim"]) < 1e-3
    assert unreg["tre"] == pytest.approx(3.0, abs=1e-4) and transfer["tre"] == unreg["tre"]
    # the oracle is the upper bound and loses everything when the fixed image is another pair's
    assert oracle["ssim"] == 1.0 and oracle["dice_vessels"] == 1.0 and oracle["geometry_drop_ssim"] > 0.2
    assert oracle["deformation_free"] and oracle["tre"] is None
    model_row = by["GPEReg-Net (untrained)"]
    assert model_row["deformation_free"] and model_row["tre"] is None and model_row["dice_warped_gt"] is None
    assert all(math.isfinite(model_row[k]) for k in ("ssim", "psnr", "ncc", "shuffled_ssim", "geometry_drop_ssim"))
    assert by["Moving vs fixed"]["dice_vessels"] == pytest.approx(unreg["dice_vessels"])


def test_metric_probe_rows():
    batch = next(iter_batches(toy_items(2, 1), batch_size=2))
    rows = C.metric_probe(batch["moving"], batch["fixed"], shifts=(2.0,))
    names = [r["output"] for r in rows]
    assert names[0] == "fixed shifted 2 px" and "flat image at the fixed mean" in names
    flat = rows[names.index("flat image at the fixed mean")]
    assert flat["dice_vessels"] == 0.0 and abs(flat["ncc"]) < 1e-6


def test_estimate_shift_and_shift_test():
    g = torch.Generator().manual_seed(0)
    a = spatial.resize_image(torch.rand(2, 1, 8, 8, generator=g), (40, 40), mode="bicubic")
    assert C.estimate_shift(a, torch.roll(a, (1, 3), (2, 3)), 4).tolist() == [[3, 1], [3, 1]]
    batch = next(iter_batches(toy_items(2, 1), batch_size=2))
    torch.manual_seed(0)
    net = GPERegNet(scene_widths=(8, 8, 8, 8), appearance_widths=(8, 8, 8, 8), scene_channels=8, num_frames=4)
    specs = list(C.CONTROLS) + [MethodSpec("GPEReg-Net", "gpereg", {"model": net}, frame=True)]
    rows = {r["label"]: r for r in C.shift_test(specs, batch, shift=(3, 2))}
    assert rows["Fixed image (upper bound)"]["followed"] == [3.0, 2.0]
    assert rows["Fixed image (upper bound)"]["followed_fraction"] == 1.0
    for label in ("Unregistered", "Appearance transfer (histogram)", "GPEReg-Net"):
        assert rows[label]["followed"] == [0.0, 0.0], label
    with pytest.raises(ValueError, match="shift"):
        C.shift_test(specs, batch, shift=(0, 0))
