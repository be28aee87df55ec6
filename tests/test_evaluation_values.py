"""regkit.evaluation by value: method lists, metric tables, batching and resizing, the NaN rule,
JSON-able parameters and the exact text of tables."""

import math

import pytest
import torch

import regkit
from regkit import evaluation as E
from regkit import registry

ENTRY = "methods entries must be a method name, (label, method), (label, method, params) or a MethodSpec, got "
ITEMS = [{"moving": torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(i)),
          "fixed": torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(10 + i))} for i in range(2)]

ERRORS = {
    "entry int": (lambda: E.method_specs([3]), TypeError, ENTRY + "3"),
    "entry 1-tuple": (lambda: E.method_specs([("a",)]), TypeError, ENTRY + "('a',)"),
    "entry 4-tuple": (lambda: E.method_specs([("a", "b", {}, 1)]), TypeError, ENTRY + "('a', 'b', {}, 1)"),
    "entry method not str": (lambda: E.method_specs([("a", 2)]), TypeError, ENTRY + "('a', 2)"),
    "entry label not str": (lambda: E.method_specs([(1, "a")]), TypeError, ENTRY + "(1, 'a')"),
    "no methods": (lambda: E.method_specs([]), ValueError, "methods must name at least one method"),
    "duplicate labels": (lambda: E.method_specs(["identity", ("identity", "syn")]), ValueError,
                         "methods must have unique labels, got ['identity', 'identity']"),
    "metric name": (lambda: E._metric_table(["dice"]), ValueError,
                    "metrics must be names from ['epe', 'folding', 'mse', 'ncc', 'psnr', 'smooth_dice', 'ssim', 'tre'] "
                    "(or a {name: fn} mapping), got 'dice'"),
    "metric fn": (lambda: E._metric_table({"x": 3}), TypeError, "metric 'x' must be callable fn(result, batch, mask), got int"),
    "no metrics": (lambda: E._metric_table([]), ValueError, "metrics must name at least one metric"),
    "batch_size": (lambda: list(E.iter_batches(ITEMS, 0)), ValueError, "batch_size must be positive, got 0"),
    "data": (lambda: list(E.iter_batches(5, 2)), TypeError, "data must be a sequence of item dicts or a batch dict, got int"),
    "no pairs": (lambda: E.evaluate([], ["identity"]), ValueError, "data must hold at least one pair"),
    "mask": (lambda: E.evaluate(ITEMS, ["identity"], mask="fov"), ValueError,
             "mask must name a tensor entry of the items, got 'fov' (keys: ['fixed', 'moving'])"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_input_message(case):
    call, error, message = ERRORS[case]
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message


def test_method_specs_forms():
    spec = E.MethodSpec("X", "syn", {"radius": 2}, frame=True)
    assert E.method_specs(spec) == [spec] and E.method_specs("identity") == [E.MethodSpec("identity", "identity")]
    got = E.method_specs({"A": "identity", "B": ("syn", {"radius": 1})})
    assert [(s.label, s.method, s.params) for s in got] == [("A", "identity", {}), ("B", "syn", {"radius": 1})]
    got = E.method_specs([("L", "demons"), ("M", "syn", {"radius": 3}), spec])
    assert [(s.label, s.method, s.params, s.frame) for s in got] == [
        ("L", "demons", {}, False), ("M", "syn", {"radius": 3}, False), ("X", "syn", {"radius": 2}, True)]


def test_metric_table_forms():
    assert list(E._metric_table("mse")) == ["mse"]
    fn = lambda r, b, m: None  # noqa: E731
    table = E._metric_table({"mine": fn, "ncc": None})
    assert table["mine"] is fn and table["ncc"] is E.METRICS["ncc"]


def test_resize_batch_by_value():
    """9 x 5 -> 17 x 3: x scales by (3 - 1)/(5 - 1) = 0.5, y by (17 - 1)/(9 - 1) = 2; landmarks
    (pixels, x then y) scale with the grid, bool masks stay bool (nearest), images are clamped,
    fields are rescaled, other entries are kept as they are."""
    g = torch.Generator().manual_seed(0)
    batch = {
        "moving": torch.rand(2, 1, 9, 5, generator=g), "fixed": torch.rand(2, 1, 9, 5, generator=g) * 1.5,
        "disp": torch.ones(2, 2, 9, 5), "fov": torch.zeros(2, 1, 9, 5, dtype=torch.bool),
        "landmarks_fixed": torch.tensor([[[4.0, 8.0]], [[2.0, 1.0]]]), "landmarks_valid": torch.ones(2, 1, dtype=torch.bool),
        "frame": torch.tensor([0, 1]), "pair": ["a", "a"], "other": torch.zeros(2, 1, 4, 4),
    }
    batch["fov"][..., :4, :] = True
    out = E.resize_batch(batch, (17, 3))
    assert out is not batch and batch["moving"].shape == (2, 1, 9, 5)
    assert out["landmarks_fixed"].tolist() == [[[2.0, 16.0]], [[1.0, 2.0]]]
    assert out["landmarks_valid"] is batch["landmarks_valid"] and out["frame"] is batch["frame"]
    assert out["pair"] == ["a", "a"] and out["other"] is batch["other"]
    assert out["fov"].dtype == torch.bool and out["fov"].shape == (2, 1, 17, 3)
    assert out["fov"][0, 0, :, 0].tolist() == [True] * 8 + [False] * 9     # nearest: row floor(i * 9 / 17)
    assert float(out["fixed"].max()) <= 1.0 and out["moving"].shape == (2, 1, 17, 3)
    assert torch.allclose(out["disp"][:, 0], torch.full((2, 17, 3), 0.5)) and torch.allclose(out["disp"][:, 1],
                                                                                             torch.full((2, 17, 3), 2.0))
    same = E.resize_batch(batch, (9, 5))
    assert same is not batch and same == batch


def test_iter_batches_splits_by_size_and_pair_and_moves_to_a_device():
    items = [{"moving": torch.zeros(1, 4, 4), "fixed": torch.zeros(1, 4, 4), "pair": p} for p in "aaabbc"]
    assert [len(b["pair"]) for b in E.iter_batches(items, batch_size=2)] == [2, 1, 2, 1]
    nopair = [{"moving": torch.zeros(1, 4, 4), "fixed": torch.zeros(1, 4, 4)} for _ in range(5)]
    assert [b["moving"].shape[0] for b in E.iter_batches(nopair, batch_size=2)] == [2, 2, 1]
    assert [b["moving"].shape[0] for b in E.iter_batches(nopair)] == [5]                  # default 8
    batch = {"moving": torch.zeros(3, 1, 4, 4), "fixed": torch.zeros(3, 1, 4, 4), "pair": ["x"] * 3}
    (only,) = list(E.iter_batches(batch, 1, device="meta"))
    assert only["moving"].device.type == "meta" and only["pair"] == ["x"] * 3
    (resized,) = list(E.iter_batches(batch, size=(7, 7)))
    assert resized["moving"].shape == (3, 1, 7, 7)


def test_run_method_targets_and_temporal_arguments():
    seen = []
    name = "_test_records_its_arguments"

    @registry.method(name, kind="test", summary="records what it was called with")
    def _fn(moving, fixed, frame=None, sequence=None):
        seen.append((fixed, frame, sequence))
        return regkit.RegResult(warped=moving)

    try:
        m, f, fi, other = (torch.full((1, 1, 4, 4), v) for v in (0.1, 0.2, 0.3, 0.4))
        batch = {"moving": m, "fixed": f, "frame": torch.tensor([3]), "pair": ["p"]}
        E.run_method(E.MethodSpec("a", name), batch)
        E.run_method(E.MethodSpec("a", name, frame=True), {**batch, "fixed_input": fi})
        E.run_method(E.MethodSpec("a", name, frame=True), {**batch, "fixed_input": fi}, fixed=other)
        E.run_method(E.MethodSpec("a", name, frame=True), {"moving": m, "fixed": f, "frame": torch.tensor([4])})
        assert [float(s[0].max()) for s in seen] == pytest.approx([0.2, 0.3, 0.4, 0.2])
        assert [s[1] for s in seen[:1]] == [None] and seen[1][1].tolist() == [3] and seen[1][2] == ["p"]
        assert seen[3][1].tolist() == [4] and seen[3][2] is None
    finally:
        registry._METHODS.pop(name, None)


def test_summarise_edge_cases():
    assert E.summarise([2.5]) == {"mean": 2.5, "std": 0.0, "n": 1, "failed": 0}
    s = E.summarise([1.0, math.inf, math.nan])
    assert s["mean"] == math.inf and math.isnan(s["std"]) and s["n"] == 2 and s["failed"] == 1
    s = E.summarise([math.nan, math.nan])
    assert math.isnan(s["mean"]) and math.isnan(s["std"]) and s["n"] == 0 and s["failed"] == 2
    assert E.summarise((1.0, 2.0, 6.0)) == {"mean": 3.0, "std": pytest.approx(math.sqrt(7.0)), "n": 3, "failed": 0}


def test_json_params():
    got = E._json_params({"model": torch.nn.Linear(1, 1), "s": "x", "i": 2, "f": 0.5, "b": True, "n": None,
                          "t": (1, 2)})
    assert got == {"model": "Linear", "s": "x", "i": 2, "f": 0.5, "b": True, "n": None, "t": "(1, 2)"}


def _results():
    return {"metrics": ["psnr", "ncc"], "methods": {
        "A": {"method": "identity", "mean": {"psnr": math.inf, "ncc": 0.51234}, "std": {"psnr": math.nan, "ncc": 0.1},
              "failed": {"psnr": 0, "ncc": 2}, "seconds_per_pair": 0.123},
        "Bee": {"method": "syn", "mean": {"psnr": -math.inf, "ncc": None}, "std": {"psnr": 1.0, "ncc": None},
                "seconds_per_pair": 1.5},
    }}


class _Paper:
    def values_by_method(self):
        return {"identity": {"ncc": 0.7}, "syn": {"psnr": 12.345}}


def test_rows_table_data_and_text_by_value():
    res = _results()
    rows = E.summary_rows(res, _Paper())
    assert rows[0] == {"label": "A", "method": "identity", "psnr": math.inf, "psnr_std": rows[0]["psnr_std"],
                       "psnr_failed": 0, "psnr_paper": None, "ncc": 0.51234, "ncc_std": 0.1, "ncc_failed": 2,
                       "ncc_paper": 0.7, "seconds_per_pair": 0.123}
    assert rows[1]["ncc_failed"] == 0 and rows[1]["psnr_paper"] == 12.345
    assert E.summary_rows(res, metrics=["ncc"])[0].keys() == {"label", "method", "ncc", "ncc_std", "ncc_failed",
                                                              "seconds_per_pair"}
    assert E.table_data(res) == {"A": {"psnr": {"mean": math.inf, "std": res["methods"]["A"]["std"]["psnr"], "failed": 0},
                                       "ncc": {"mean": 0.51234, "std": 0.1, "failed": 2}},
                                 "Bee": {"psnr": {"mean": -math.inf, "std": 1.0, "failed": 0}}}
    assert E.table_data(res, ["ncc"]) == {"A": {"ncc": {"mean": 0.51234, "std": 0.1, "failed": 2}}, "Bee": {}}
    assert E.format_table(res) == (
        "method  psnr  ncc\n"
        "A       inf   0.512 ± 0.100 [2 failed]\n"
        "Bee     -inf  -"
    )
    assert E.format_table(res, _Paper(), digits={"ncc": 2}, std=False, seconds=True) == (
        "method  psnr  psnr (paper)  ncc              ncc (paper)  s/pair\n"
        "A       inf   -             0.51 [2 failed]  0.70         0.12\n"
        "Bee     -inf  12.345        -                -            1.50"
    )
    assert E.format_table(res, metrics=["ncc"], digits=1) == "method  ncc\nA       0.5 ± 0.1 [2 failed]\nBee     -"


def test_evaluate_records_the_run():
    res = E.evaluate(ITEMS, [("Unregistered", "identity"), ("Oracle", "fixed_oracle")], metrics=("mse", "epe"),
                     batch_size=1, size=(6, 6), progress=True)
    assert res["n_pairs"] == 2 and res["metrics"] == ["mse", "epe"] and res["batch_size"] == 1
    assert res["size"] == [6, 6] and res["mask"] is None and list(res["methods"]) == ["Unregistered", "Oracle"]
    oracle = res["methods"]["Oracle"]
    assert oracle["method"] == "fixed_oracle" and oracle["params"] == {} and oracle["per_pair"]["mse"] == [0.0, 0.0]
    assert oracle["per_pair"]["epe"] is None and oracle["mean"]["epe"] is None and oracle["failed"] == {"mse": 0, "epe": 0}
    assert oracle["deformation_free"] is True and res["methods"]["Unregistered"]["deformation_free"] is False
    assert all(r["seconds_per_pair"] >= 0 for r in res["methods"].values())
    plain = E.evaluate(ITEMS, ["identity"], metrics=("mse",))
    assert plain["size"] is None and plain["batch_size"] == 8
    assert plain["methods"]["identity"]["per_pair"]["mse"] == pytest.approx(
        [float(((it["moving"] - it["fixed"]) ** 2).mean()) for it in ITEMS], abs=1e-7)
