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


# ----------------------------------------------------------------------------------------------
# Mutation-test triage of regkit/evaluation.py: exact values of every path of evaluate
# ----------------------------------------------------------------------------------------------


class _registered:
    """Register a throw-away method for a test, removed afterwards."""

    def __init__(self, name, fn):
        self.name, self.fn = name, fn

    def __enter__(self):
        registry.method(self.name, kind="test", summary="test method")(self.fn)
        return self.name

    def __exit__(self, *exc):
        registry._METHODS.pop(self.name, None)
        return False


def _const_disp_method(u):
    """A method returning the moving image and the field ``u`` (2, H, W) for every pair."""
    def _fn(moving, fixed):
        return regkit.RegResult(warped=moving, disp=u.to(moving.dtype).expand(moving.shape[0], -1, -1, -1).clone())
    return _fn


# Landmarks of two pairs (K = 2, pixels, x then y) on 8 x 8 images; with the field u = (1, 0):
# pair 0: (2,3)+u = (3,3) hits (3,3): 0;  (5,1)+u = (6,1) vs (6,5): 4   -> 2.0, valid [T, F] -> 0.0
# pair 1: (1,1)+u = (2,1) vs (5,5): 5;    (4,4)+u = (5,4) hits (5,4): 0 -> 2.5, valid [T, T] -> 2.5
LM_FIXED = torch.tensor([[[2.0, 3.0], [5.0, 1.0]], [[1.0, 1.0], [4.0, 4.0]]])
LM_MOVING = torch.tensor([[[3.0, 3.0], [6.0, 5.0]], [[5.0, 5.0], [5.0, 4.0]]])
LM_VALID = torch.tensor([[True, False], [True, True]])
SHIFT = torch.zeros(2, 8, 8)
SHIFT[0] = 1.0


def _landmark_items(valid=True):
    items = []
    for i, it in enumerate(ITEMS):
        item = {**it, "landmarks_moving": LM_MOVING[i], "landmarks_fixed": LM_FIXED[i]}
        if valid:
            item["landmarks_valid"] = LM_VALID[i]
        items.append(item)
    return items


def test_evaluate_tre_by_hand():
    """tre through evaluate: the fixed landmarks moved by the method's field, valid landmarks only."""
    with _registered("_test_shift", _const_disp_method(SHIFT)) as name:
        with_valid = E.evaluate(_landmark_items(), [name], metrics=("tre",), batch_size=2)["methods"][name]
        without = E.evaluate(_landmark_items(valid=False), [name], metrics=("tre",), batch_size=1)["methods"][name]
    assert with_valid["per_pair"]["tre"] == [0.0, 2.5] and with_valid["mean"]["tre"] == 1.25
    assert without["per_pair"]["tre"] == [2.0, 2.5] and without["failed"]["tre"] == 0
    # the unregistered error of the same landmarks (identity: zero field) as regkit.metrics.tre computes it
    ident = E.evaluate(_landmark_items(), ["identity"], metrics=("tre",))["methods"]["identity"]["per_pair"]["tre"]
    assert ident == pytest.approx(regkit.metrics.tre(LM_MOVING, LM_FIXED, None, LM_VALID).tolist(), abs=0)
    assert ident[0] == 1.0 and ident[1] == pytest.approx((math.sqrt(32) + 1) / 2, abs=1e-6)


def test_tre_does_not_apply_without_a_field_or_both_landmark_sets():
    """_tre must give None (not an error, not a value) without a field or without either landmark set."""
    batch = {"moving": torch.zeros(2, 1, 8, 8), "landmarks_moving": LM_MOVING, "landmarks_fixed": LM_FIXED}
    field = regkit.RegResult(warped=batch["moving"], disp=SHIFT.expand(2, -1, -1, -1).clone())
    free = regkit.RegResult(warped=batch["moving"])
    assert E._tre(free, batch, None) is None
    assert E._tre(field, {k: v for k, v in batch.items() if k != "landmarks_fixed"}, None) is None
    assert E._tre(field, {k: v for k, v in batch.items() if k != "landmarks_moving"}, None) is None
    assert E._tre(field, {**batch, "landmarks_fixed": LM_FIXED.tolist()}, None) is None
    assert E._tre(field, batch, None).tolist() == [2.0, 2.5]
    # a landmarks_valid that is not a tensor is ignored (every landmark counts), a tensor one is used
    assert E._tre(field, {**batch, "landmarks_valid": LM_VALID.tolist()}, None).tolist() == [2.0, 2.5]
    assert E._tre(field, {**batch, "landmarks_valid": LM_VALID}, None).tolist() == [0.0, 2.5]


# A 4 x 4 field folding in rows 0-1 (u_x = -2x: d(x + u_x)/dx = -1), not in rows 2-3: 8 of 16 pixels.
FOLD = torch.zeros(2, 4, 4)
FOLD[0, :2] = -2.0 * torch.arange(4.0)


def test_epe_and_folding_use_the_mask():
    """epe and folding must be restricted to mask= (rows 0-2: 8 of 12 pixels fold, |u| sums to 24 over 12)."""
    fov = torch.zeros(1, 4, 4, dtype=torch.bool)
    fov[:, :3] = True
    items = [{"moving": torch.full((1, 4, 4), 0.5), "fixed": torch.full((1, 4, 4), 0.5), "disp": torch.zeros(2, 4, 4),
              "fov": fov}]
    with _registered("_test_fold", _const_disp_method(FOLD)) as name:
        masked = E.evaluate(items, [name], metrics=("epe", "folding"), mask="fov")["methods"][name]["per_pair"]
        whole = E.evaluate(items, [name], metrics=("epe", "folding"))["methods"][name]["per_pair"]
    assert masked == {"epe": [2.0], "folding": [pytest.approx(2 / 3, abs=1e-7)]}
    assert whole == {"epe": [1.5], "folding": [0.5]}


def test_folding_does_not_apply_to_a_deformation_free_method():
    """folding of a method without a field must be None (not applicable), not an error."""
    res = E.evaluate(ITEMS, ["fixed_oracle"], metrics=("folding",))["methods"]["fixed_oracle"]
    assert res["per_pair"]["folding"] is None and res["mean"]["folding"] is None and res["failed"]["folding"] == 0


def test_image_metrics_clamp_the_output_below_zero():
    """An output below 0 must be clamped to 0 before scoring (not only above 1)."""
    def _fn(moving, fixed):
        return regkit.RegResult(warped=fixed - 0.5)

    with _registered("_test_undershoot", _fn) as name:
        got = E.evaluate(ITEMS, [name], metrics=("mse",))["methods"][name]["per_pair"]["mse"]
    fixed = torch.stack([it["fixed"] for it in ITEMS])
    assert got == pytest.approx(regkit.metrics.mse((fixed - 0.5).clamp(0, 1), fixed).tolist(), abs=1e-7)
    assert got != pytest.approx(regkit.metrics.mse((fixed - 0.5).clamp(max=1), fixed).tolist(), abs=1e-4)


class _CachedNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.resets, self.seen_training = 0, []

    def reset_cache(self):
        self.resets += 1


def test_evaluate_resets_the_models_cache_and_runs_it_in_eval_mode():
    """evaluate must call the model's reset_cache once per run and run the model in eval mode (restored after)."""
    def _fn(moving, fixed, model=None):
        model.seen_training.append(model.training)
        return regkit.RegResult(warped=moving)

    net = _CachedNet()
    with _registered("_test_model", _fn) as name:
        res = E.evaluate(ITEMS, [("M", name, {"model": net})], metrics=("mse",), batch_size=1)
    assert net.resets == 1 and net.seen_training == [False, False] and net.training is True
    assert res["methods"]["M"]["params"] == {"model": "_CachedNet"}
    E._reset(E.MethodSpec("M", name, {"model": net}))
    E._reset(E.MethodSpec("N", "identity"))          # no model: nothing to reset
    assert net.resets == 2


def test_seconds_per_pair_sums_the_register_calls_over_pairs(monkeypatch):
    """seconds_per_pair must be the sum over batches of (end - start) of register, divided by the pairs."""
    ticks = iter([10.0, 11.0, 20.0, 22.0])
    monkeypatch.setattr(E, "time", type("clock", (), {"perf_counter": staticmethod(lambda: next(ticks))}))
    items = ITEMS + ITEMS[:1]
    res = E.evaluate(items, ["identity"], metrics=("mse",), batch_size=2)
    assert res["n_pairs"] == 3 and res["methods"]["identity"]["seconds_per_pair"] == 1.0


def test_evaluate_passes_size_and_device_to_the_batches(monkeypatch):
    """evaluate must build its batches with its size and device."""
    calls, original = [], E.iter_batches

    def _record(*args, **kwargs):
        calls.append((args[1:], kwargs))
        return original(*args, **kwargs)

    monkeypatch.setattr(E, "iter_batches", _record)
    res = E.evaluate(ITEMS, ["identity"], metrics=("mse",), batch_size=1, size=(6, 5), device="cpu")
    assert calls == [((1,), {"size": (6, 5), "device": "cpu"})]
    small = [E.resize_batch({k: v[None] for k, v in it.items()}, (6, 5)) for it in ITEMS]
    assert res["methods"]["identity"]["per_pair"]["mse"] == pytest.approx(
        [float(regkit.metrics.mse(b["moving"], b["fixed"])) for b in small], abs=1e-7)


def test_progress_bar_only_when_asked(capsys):
    """No bar by default; progress=True shows a bar labelled 'methods'."""
    E.evaluate(ITEMS, ["identity"], metrics=("mse",))
    assert capsys.readouterr().err == ""
    E.evaluate(ITEMS, ["identity"], metrics=("mse",), progress=True)
    err = capsys.readouterr().err
    assert "methods: 100%" in err and "1/1" in err


def test_metrics_get_no_mask_without_mask_argument():
    """Without mask= every metric gets mask None, whatever keys the batches hold."""
    seen = []
    batch = {"moving": ITEMS[0]["moving"][None], "fixed": ITEMS[0]["fixed"][None], None: torch.ones(1, 1, 8, 8, dtype=torch.bool)}
    E.evaluate(None, ["identity"], metrics={"m": lambda r, b, m: seen.append(m) or torch.zeros(1)}, batches=[batch])
    assert seen == [None]


class _FakeCuda(torch.Tensor):
    """A CPU tensor that says it is on a GPU (to see the synchronisation calls without one)."""

    @property
    def is_cuda(self):
        return True


def test_timing_synchronises_the_inputs_device_on_gpus(monkeypatch):
    """With GPU inputs, evaluate must synchronise the input's device before and after each register call."""
    synced = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: synced.append(device))
    batch = {"moving": ITEMS[0]["moving"][None].as_subclass(_FakeCuda), "fixed": ITEMS[0]["fixed"][None]}
    assert batch["moving"].is_cuda
    E.evaluate(None, ["identity"], metrics={"m": lambda r, b, m: torch.zeros(1)}, batches=[batch, batch])
    assert synced == [torch.device("cpu")] * 4


def test_epe_direct_with_mask():
    """_epe must pass the mask on to regkit.metrics.epe."""
    u = torch.zeros(1, 2, 4, 4)
    u[:, 0, :, 2:] = 3.0
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    mask[..., 2:] = True
    res = regkit.RegResult(warped=torch.zeros(1, 1, 4, 4), disp=u)
    assert E._epe(res, {"disp": torch.zeros(1, 2, 4, 4)}, mask).tolist() == [3.0]
    assert E._epe(res, {"disp": torch.zeros(1, 2, 4, 4)}, None).tolist() == [1.5]


def test_summarise_in_float64():
    """summarise must average in float64 (1/3 exactly, not its float32 rounding)."""
    assert E.summarise([1 / 3]) == {"mean": 1 / 3, "std": 0.0, "n": 1, "failed": 0}
    s = E.summarise([0.1, 0.2, 0.4, math.nan])
    assert s["mean"] == float(torch.tensor([0.1, 0.2, 0.4], dtype=torch.float64).mean())
    assert s["std"] == float(torch.tensor([0.1, 0.2, 0.4], dtype=torch.float64).std()) and s["failed"] == 1


def test_format_table_std_digits_and_chosen_metrics():
    """The std takes the metric's own digits; metrics= reads only the chosen metrics of the rows."""
    res = {"metrics": ["ncc", "x"], "methods": {"A": {"method": "identity", "mean": {"ncc": 0.51234},
           "std": {"ncc": 0.12345}, "failed": {"ncc": 1}, "seconds_per_pair": 0.5}}}
    assert E.format_table(res, metrics=["ncc"], digits={"ncc": 1}) == "method  ncc\nA       0.5 ± 0.1 [1 failed]"
    assert E.format_table(res, metrics=["ncc"], digits={"ncc": 4}, seconds=True) == (
        "method  ncc                         s/pair\n"
        "A       0.5123 ± 0.1235 [1 failed]  0.50")


def test_iter_batches_default_size_and_integer_batch_size():
    """Default batch_size is 8 (9 items: 8 + 1); batch_size must be an integer; sizes larger than the data give one batch."""
    items = [{"moving": torch.full((1, 2, 2), i / 10), "fixed": torch.zeros(1, 2, 2)} for i in range(9)]
    got = list(E.iter_batches(items))
    assert [b["moving"].shape[0] for b in got] == [8, 1] and float(got[1]["moving"].max()) == pytest.approx(0.8)
    assert [b["moving"].shape[0] for b in E.iter_batches(items, 4)] == [4, 4, 1]
    assert [b["moving"].shape[0] for b in E.iter_batches(items, 100)] == [9]
    with pytest.raises(TypeError, match=r"^batch_size must be an integer, got 2.0$"):
        list(E.iter_batches(items, 2.0))


def test_resize_batch_images_and_landmarks_exactly():
    """Images are resized like resize_image and clamped to [0, 1] at both ends; landmarks keep their dtype and exact scale."""
    g = torch.Generator().manual_seed(3)
    img = torch.rand(1, 1, 5, 4, generator=g) * 1.6 - 0.3
    lm = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]], dtype=torch.float64)
    out = E.resize_batch({"moving": img, "fixed": img, "landmarks_fixed": lm, "landmarks_moving": lm.half()}, (8, 6))
    assert torch.equal(out["moving"], regkit.spatial.resize_image(img, (8, 6)).clamp(0, 1))
    assert float(out["moving"].min()) == 0.0 and float(out["moving"].max()) == 1.0
    assert out["landmarks_fixed"].dtype == torch.float64 and out["landmarks_moving"].dtype == torch.float16
    assert out["landmarks_fixed"].tolist() == [[[1.0 * 5 / 3, 2.0 * 7 / 4], [3.0 * 5 / 3, 4.0 * 7 / 4]]]


def test_resize_batch_landmarks_stay_on_their_device():
    """The landmark scale must be made on the landmarks' device, not the default one."""
    batch = {"moving": torch.rand(1, 1, 5, 5), "landmarks_fixed": torch.tensor([[[2.0, 4.0]]])}
    with torch.device("meta"):
        out = E.resize_batch(batch, (9, 9))
    assert out["landmarks_fixed"].device.type == "cpu" and out["landmarks_fixed"].tolist() == [[[4.0, 8.0]]]
