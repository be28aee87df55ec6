"""The evaluator loops over methods through the one protocol; paper numbers are data."""

import math

import pytest
import torch

import regkit
from regkit import metrics, registry, spatial
from regkit.experiments import paper_numbers
from regkit.experiments.evaluate import METRICS, MethodSpec, evaluate, format_table, method_specs, summary_rows


def _pairs(n=5, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n):
        moving = spatial.resize_image(torch.rand(1, 1, 8, 8, generator=g), (size, size))[0]
        u = spatial.random_smooth_disp(1, (size, size), max_disp=1.5, generator=g)
        fixed = spatial.warp(moving[None], u)[0]
        items.append({"moving": moving, "fixed": fixed, "disp": u[0]})
    return items


@pytest.fixture
def deformation_free():
    """A throw-away deformation-free method (returns the fixed image, no field), removed afterwards."""
    name = "_test_deformation_free"

    @registry.method(name, kind="test", summary="returns the fixed image, no field")
    def _fn(moving, fixed):
        return regkit.RegResult(warped=fixed.clone())

    yield name
    registry._METHODS.pop(name, None)


def test_identity_matches_the_metrics_module():
    items = _pairs()
    res = evaluate(items, ["identity"], metrics=("ncc", "ssim", "psnr", "mse", "epe", "folding"), batch_size=2,
                   progress=False)
    moving = torch.stack([it["moving"] for it in items])
    fixed = torch.stack([it["fixed"] for it in items])
    gt = torch.stack([it["disp"] for it in items])
    r = res["methods"]["identity"]
    assert res["n_pairs"] == 5 and all(len(v) == 5 for v in r["per_pair"].values())
    assert r["per_pair"]["ncc"] == pytest.approx(metrics.ncc(moving, fixed).tolist(), abs=1e-6)
    assert r["per_pair"]["ssim"] == pytest.approx(metrics.ssim(moving, fixed).tolist(), abs=1e-6)
    assert r["per_pair"]["epe"] == pytest.approx(gt.norm(dim=1).flatten(1).mean(1).tolist(), abs=1e-5)
    assert r["per_pair"]["folding"] == [0.0] * 5
    vals = torch.tensor(r["per_pair"]["psnr"], dtype=torch.float64)
    assert r["mean"]["psnr"] == pytest.approx(vals.mean().item()) and r["std"]["psnr"] == pytest.approx(vals.std().item())


def test_batch_size_does_not_change_results():
    items = _pairs(n=4)
    a = evaluate(items, ["identity"], batch_size=1, progress=False)["methods"]["identity"]["per_pair"]
    b = evaluate(items, ["identity"], batch_size=3, progress=False)["methods"]["identity"]["per_pair"]
    for k in a:
        assert a[k] == pytest.approx(b[k], abs=1e-6)


def test_every_method_goes_through_register_and_field_metrics_are_nan_without_a_field(deformation_free):
    items = _pairs(n=3)
    res = evaluate(items, [("Unregistered", "identity"), ("free", deformation_free), ("SyN", "syn",
                   {"iterations": (10, 5), "shrink_factors": (2, 1), "smoothing_sigmas": (1.0, 0.0)})],
                   metrics=("ncc", "epe"), progress=False)
    assert list(res["methods"]) == ["Unregistered", "free", "SyN"]
    free = res["methods"]["free"]
    assert free["mean"]["ncc"] == pytest.approx(1.0)          # it returns the fixed image itself
    assert all(math.isnan(v) for v in free["per_pair"]["epe"]) and math.isnan(free["mean"]["epe"])
    # SyN's field is closer to the ground truth than no registration
    assert res["methods"]["SyN"]["mean"]["epe"] < res["methods"]["Unregistered"]["mean"]["epe"]


def test_mask_restricts_the_image_metrics():
    items = _pairs(n=2)
    for it in items:
        it["fov"] = torch.zeros(1, 32, 32, dtype=torch.bool)
        it["fov"][:, 8:24, 8:24] = True
    res = evaluate(items, ["identity"], metrics=("mse",), mask="fov", progress=False)
    moving = torch.stack([it["moving"] for it in items])
    fixed = torch.stack([it["fixed"] for it in items])
    mask = torch.stack([it["fov"] for it in items])
    assert res["methods"]["identity"]["per_pair"]["mse"] == pytest.approx(metrics.mse(moving, fixed, mask).tolist())


def test_table_shows_the_papers_numbers_beside_ours():
    items = _pairs(n=2)
    res = evaluate(items, [("Unregistered", "identity")], progress=False)
    table = paper_numbers.get_table("gpereg-table1")
    rows = summary_rows(res, table)
    assert rows[0]["ncc_paper"] == 0.762 and rows[0]["psnr_paper"] == 22.36
    text = format_table(res, table, digits={"psnr": 2})
    assert text.splitlines()[0].split("  ")[0] == "method" and "0.762" in text and "22.36" in text
    # a method the paper did not report gets a dash
    hp = paper_numbers.get_table("gpereg-table3")
    res2 = evaluate(items, [("SyN", "syn", {"iterations": (2,), "shrink_factors": (1,), "smoothing_sigmas": (0.0,)})],
                    metrics=("ncc",), progress=False)
    assert summary_rows(res2, hp)[0]["ncc_paper"] is None and format_table(res2, hp).splitlines()[1].endswith("-")


def test_paper_tables_are_consistent():
    t1 = paper_numbers.get_table("gpereg-table1")
    assert [r.name for r in t1.rows_in("traditional")] == ["Unregistered", "SIFT", "Demons", "Optical Flow", "SyN"]
    assert t1.value("Demons", "SSIM") == 0.528 and t1.value("GPEReg-Net (Ours)", "PSNR") == 33.47
    t3 = paper_numbers.get_table("gpereg-table3")
    assert t3.row_for_method("syn") is None and t3.value("Unregistered", "NCC") == 0.312
    air = paper_numbers.get_table("air-table1")
    assert air.row("AiR-Parallel Attention").std == (0.015, 2.522, 0.034)
    # every classical method named by a paper row is registered (the learned ones register with regkit.models)
    known = set(regkit.methods())
    named = {r.method for t in paper_numbers.TABLES.values() for r in t.rows if r.method and r.group != "deep"}
    assert named <= known, named - known
    with pytest.raises(ValueError, match="key must be one of"):
        paper_numbers.get_table("table-9")
    with pytest.raises(KeyError, match="no row"):
        t1.row("Elastix")


def test_bad_arguments_raise_clear_errors():
    items = _pairs(n=1)
    with pytest.raises(ValueError, match="metrics must be"):
        evaluate(items, ["identity"], metrics=("dice_score",), progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(items, ["identity"], batch_size=0, progress=False)
    with pytest.raises(ValueError, match="at least one pair"):
        evaluate([], ["identity"], progress=False)
    with pytest.raises(ValueError, match="unique labels"):
        method_specs([("a", "identity"), ("a", "syn")])
    with pytest.raises(TypeError, match="methods entries"):
        method_specs([3])
    with pytest.raises(ValueError, match="method must be one of"):
        evaluate(items, ["no_such_method"], progress=False)
    with pytest.raises(ValueError, match="mask must name"):
        evaluate(items, ["identity"], mask="fov", progress=False)
    assert set(METRICS) >= {"ncc", "ssim", "psnr", "epe", "tre", "folding"}
    assert method_specs({"SyN": ("syn", {"radius": 3})}) == [MethodSpec("SyN", "syn", {"radius": 3})]
