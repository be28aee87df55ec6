"""regkit.evaluation: one protocol for every table; the one NaN rule; the papers' numbers as data."""

import math

import pytest
import torch

import regkit
from regkit import metrics, papers, registry, spatial
from regkit.evaluation import (
    METRICS,
    MethodSpec,
    evaluate,
    format_table,
    iter_batches,
    method_specs,
    resize_batch,
    summarise,
    summary_rows,
)


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
    res = evaluate(items, ["identity"], metrics=("ncc", "ssim", "psnr", "mse", "epe", "folding"), batch_size=2)
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
    a = evaluate(items, ["identity"], batch_size=1)["methods"]["identity"]["per_pair"]
    b = evaluate(items, ["identity"], batch_size=3)["methods"]["identity"]["per_pair"]
    for k in a:
        assert a[k] == pytest.approx(b[k], abs=1e-6)


def test_every_method_goes_through_register_and_field_metrics_do_not_apply_without_a_field(deformation_free):
    items = _pairs(n=3)
    res = evaluate(items, [("Unregistered", "identity"), ("free", deformation_free), ("SyN", "syn",
                   {"iterations": (10, 5), "shrink_factors": (2, 1), "smoothing_sigmas": (1.0, 0.0)})],
                   metrics=("ncc", "epe"))
    assert list(res["methods"]) == ["Unregistered", "free", "SyN"]
    free = res["methods"]["free"]
    assert free["mean"]["ncc"] == pytest.approx(1.0)          # it returns the fixed image itself
    assert free["per_pair"]["epe"] is None and free["mean"]["epe"] is None and free["deformation_free"]
    # SyN's field is closer to the ground truth than no registration
    assert res["methods"]["SyN"]["mean"]["epe"] < res["methods"]["Unregistered"]["mean"]["epe"]


def test_mask_restricts_the_image_metrics():
    items = _pairs(n=2)
    for it in items:
        it["fov"] = torch.zeros(1, 32, 32, dtype=torch.bool)
        it["fov"][:, 8:24, 8:24] = True
    res = evaluate(items, ["identity"], metrics=("mse",), mask="fov")
    moving = torch.stack([it["moving"] for it in items])
    fixed = torch.stack([it["fixed"] for it in items])
    mask = torch.stack([it["fov"] for it in items])
    assert res["methods"]["identity"]["per_pair"]["mse"] == pytest.approx(metrics.mse(moving, fixed, mask).tolist())


def test_table_shows_the_papers_numbers_beside_ours():
    items = _pairs(n=2)
    res = evaluate(items, [("Unregistered", "identity")])
    table = papers.get_table("gpereg-table1")
    rows = summary_rows(res, table)
    assert rows[0]["ncc_paper"] == 0.762 and rows[0]["psnr_paper"] == 22.36
    text = format_table(res, table, digits={"psnr": 2})
    assert text.splitlines()[0].split("  ")[0] == "method" and "0.762" in text and "22.36" in text
    # a method the paper did not report gets a dash
    hp = papers.get_table("gpereg-table3")
    res2 = evaluate(items, [("SyN", "syn", {"iterations": (2,), "shrink_factors": (1,), "smoothing_sigmas": (0.0,)})],
                    metrics=("ncc",))
    assert summary_rows(res2, hp)[0]["ncc_paper"] is None and format_table(res2, hp).splitlines()[1].endswith("-")


def test_one_nan_rule_failed_pairs_are_counted_not_hidden():
    assert summarise([1.0, 3.0]) == {"mean": 2.0, "std": pytest.approx(2**0.5), "n": 2, "failed": 0}
    s = summarise([1.0, float("nan"), 3.0])
    assert s["mean"] == 2.0 and s["n"] == 2 and s["failed"] == 1
    assert math.isnan(summarise([float("nan")])["mean"]) and summarise([float("nan")])["failed"] == 1
    assert summarise([float("inf"), float("inf")])["mean"] == float("inf")  # PSNR of identical images
    assert summarise(None) == {"mean": None, "std": None, "n": 0, "failed": 0}
    res = {"metrics": ["ncc"], "methods": {"m": {"method": "m", "mean": {"ncc": 0.5}, "std": {"ncc": 0.1},
           "failed": {"ncc": 2}, "seconds_per_pair": 0.0}}}
    assert "[2 failed]" in format_table(res)


def test_custom_metrics_and_a_fixed_input_that_differs_from_the_scored_fixed():
    items = _pairs(n=3)
    batch = next(iter_batches(items, 3))
    other = torch.flip(batch["fixed"], (0,))
    fixed_oracle_on_other = evaluate(None, ["fixed_oracle"], metrics=("mse",), batches=[{**batch, "fixed_input": other}])
    # the method gets the other image, the score compares with the true fixed image
    expected = metrics.mse(other, batch["fixed"]).tolist()
    assert fixed_oracle_on_other["methods"]["fixed_oracle"]["per_pair"]["mse"] == pytest.approx(expected, abs=1e-7)
    seen = []
    res = evaluate(items, ["identity"], metrics={"n_pixels": lambda r, b, m: (seen.append(1) or
                   torch.full((r.warped.shape[0],), float(r.warped[0].numel())))})
    assert res["methods"]["identity"]["mean"]["n_pixels"] == 32 * 32 and seen


def test_image_metrics_score_the_output_as_an_image_in_0_1():
    items = _pairs(n=2)

    @registry.method("_test_overshoot", kind="test", summary="returns fixed + 0.5 (outside [0, 1])")
    def _fn(moving, fixed):
        return regkit.RegResult(warped=fixed + 0.5)

    try:
        res = evaluate(items, ["_test_overshoot"], metrics=("psnr", "mse"))
    finally:
        registry._METHODS.pop("_test_overshoot", None)
    fixed = torch.stack([it["fixed"] for it in items])
    clamped = (fixed + 0.5).clamp(0, 1)
    r = res["methods"]["_test_overshoot"]["per_pair"]
    assert r["mse"] == pytest.approx(metrics.mse(clamped, fixed).tolist(), abs=1e-7)
    assert r["psnr"] == pytest.approx(metrics.psnr(clamped, fixed).tolist(), abs=1e-4)


def test_batches_never_mix_image_pairs_and_resize_rescales_fields():
    items = [{**it, "pair": p} for it, p in zip(_pairs(n=5), ["a", "a", "b", "b", "b"])]
    sizes = [b["moving"].shape[0] for b in iter_batches(items, batch_size=4)]
    assert sizes == [2, 3]
    b = next(iter_batches(items[:1], 1))
    b["disp"] = torch.zeros(1, 2, 32, 32)
    b["disp"][:, 0] = 3.1
    b["landmarks_fixed"] = torch.tensor([[[31.0, 0.0]]])
    small = resize_batch(b, (16, 8))
    assert small["moving"].shape[-2:] == (16, 8)
    assert torch.allclose(small["disp"][:, 0], torch.full((1, 16, 8), 3.1 * 7 / 31), atol=1e-5)
    assert small["landmarks_fixed"].tolist() == [[[7.0, 0.0]]]


def test_paper_tables_are_consistent():
    t1 = papers.get_table("gpereg-table1")
    assert [r.name for r in t1.rows_in("traditional")] == ["Unregistered", "SIFT", "Demons", "Optical Flow", "SyN"]
    assert t1.value("Demons", "SSIM") == 0.528 and t1.value("GPEReg-Net (Ours)", "PSNR") == 33.47
    t3 = papers.get_table("gpereg-table3")
    assert t3.row_for_method("syn") is None and t3.value("Unregistered", "NCC") == 0.312
    air = papers.get_table("air-table1")
    assert air.row("AiR-Parallel Attention").std == (0.015, 2.522, 0.034)
    # every classical method named by a paper row is registered (the learned ones register with regkit.models)
    known = set(regkit.methods())
    named = {r.method for t in papers.TABLES.values() for r in t.rows if r.method and r.group != "deep"}
    assert named <= known, named - known
    with pytest.raises(ValueError, match="key must be one of"):
        papers.get_table("table-9")
    with pytest.raises(KeyError, match="no row"):
        t1.row("Elastix")


def test_bad_arguments_raise_clear_errors():
    items = _pairs(n=1)
    with pytest.raises(ValueError, match="metrics must be"):
        evaluate(items, ["identity"], metrics=("dice_score",))
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(items, ["identity"], batch_size=0)
    with pytest.raises(ValueError, match="at least one pair"):
        evaluate([], ["identity"])
    with pytest.raises(ValueError, match="unique labels"):
        method_specs([("a", "identity"), ("a", "syn")])
    with pytest.raises(TypeError, match="methods entries"):
        method_specs([3])
    with pytest.raises(ValueError, match="method must be one of"):
        evaluate(items, ["no_such_method"])
    with pytest.raises(ValueError, match="mask must name"):
        evaluate(items, ["identity"], mask="fov")
    assert set(METRICS) >= {"ncc", "ssim", "psnr", "epe", "tre", "folding"}
    assert method_specs({"SyN": ("syn", {"radius": 3})}) == [MethodSpec("SyN", "syn", {"radius": 3})]
