"""Trainer steps, checked by value: train mode during steps, one optimiser update against a
hand-computed Adam/AdamW update, validation through the one metric table."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import regkit
from regkit import metrics, spatial
from regkit.train import RegistrationObjective, TensorPairs, TrainConfig, Trainer


def pairs(n=8, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    fixed = torch.rand(n, 1, size, size, generator=g)
    disp = spatial.random_smooth_disp(n, (size, size), max_disp=1.0, generator=g)
    return {"moving": spatial.warp(fixed, disp), "fixed": fixed, "disp": disp}


# ----------------------------------------------------------------------------------------------
# Train mode
# ----------------------------------------------------------------------------------------------


class Recorder(nn.Module):
    """Batch norm and dropout; records (grad enabled, module modes) at every call."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Dropout(0.5),
                                 nn.Conv2d(4, 2, 3, padding=1))
        self.seen = []

    def forward(self, moving, fixed):
        self.seen.append((torch.is_grad_enabled(), self.training, self.net[1].training, self.net[2].training))
        disp = self.net(torch.cat((moving, fixed), 1))
        return regkit.RegResult(warped=spatial.warp(moving, disp), disp=disp)


def test_steps_run_in_train_mode_and_validation_in_eval_mode_even_for_a_model_passed_in_eval_mode():
    regkit.seed_everything(0)
    model = Recorder().eval()  # e.g. loaded for inspection, then handed to the Trainer
    cfg = TrainConfig(epochs=2, batch_size=4, seed=0, progress=False, log=False, metrics=("mse",))
    Trainer(model, RegistrationObjective("mse", weight=0.0), cfg, device="cpu").fit(pairs(8), pairs(3, seed=1))
    steps = [s for s in model.seen if s[0]]
    val = [s for s in model.seen if not s[0]]
    assert steps == [(True, True, True, True)] * 4  # 2 epochs x 2 batches, every module in train mode
    assert val == [(False, False, False, False)] * 2  # one validation batch per epoch, in eval mode
    bn = model.net[1]
    assert int(bn.num_batches_tracked) == 4  # batch statistics were updated by the 4 steps only
    assert float(bn.running_mean.abs().sum()) > 1e-4
    assert model.training  # fit leaves the model in train mode


def test_evaluate_restores_the_models_mode():
    regkit.seed_everything(0)
    model = Recorder()
    t = Trainer(model, RegistrationObjective("mse", weight=0.0), TrainConfig(metrics=("mse",)), device="cpu")
    for mode in (False, True):
        model.train(mode)
        t.evaluate(pairs(2))
        assert model.training is mode and model.net[2].training is mode
    assert [s[1] for s in model.seen] == [False, False]


# ----------------------------------------------------------------------------------------------
# One optimiser update, by hand
# ----------------------------------------------------------------------------------------------

START = torch.tensor([1.0, -2.0, 0.5])
TARGET = torch.tensor([0.3, 0.1, -0.4])


class Point(nn.Module):
    """A model that is one learnable point (the objective below does not run it)."""

    def __init__(self):
        super().__init__()
        self.t = nn.Parameter(START.clone())


def quadratic(model, batch):
    """``0.5 |t - c|^2``, gradient ``t - c``: the same for every batch, so each step is known."""
    return 0.5 * ((model.t - TARGET) ** 2).sum(), {}


def reference_adam(steps, lr, betas, eps, weight_decay, decoupled, clip, cosine, min_lr=0.0):
    """Adam (Kingma & Ba 2015, bias-corrected) / AdamW (decoupled decay) in float64, with the
    global-norm clipping and per-step cosine schedule the Trainer documents."""
    t, c = START.double(), TARGET.double()
    m, v = torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    b1, b2 = betas
    losses = []
    for k in range(1, steps + 1):
        losses.append(float(0.5 * ((t - c) ** 2).sum()))
        g = t - c
        if clip is not None:
            g = g * min(1.0, clip / (float(g.norm()) + 1e-6))
        rate = min_lr + (lr - min_lr) * (1 + math.cos(math.pi * (k - 1) / steps)) / 2 if cosine else lr
        if decoupled:
            t = t * (1 - rate * weight_decay)
        else:
            g = g + weight_decay * t
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        t = t - rate * (m / (1 - b1**k)) / ((v / (1 - b2**k)).sqrt() + eps)
    return t, losses


@pytest.mark.parametrize("optimizer, weight_decay, grad_clip, scheduler", [
    ("adam", 0.0, None, "none"),
    ("adam", 0.1, 0.5, "cosine"),
    ("adamw", 0.1, 0.5, "cosine"),
])
def test_four_steps_match_a_hand_computed_update(optimizer, weight_decay, grad_clip, scheduler):
    data = TensorPairs(moving=torch.zeros(8, 1, 4, 4), fixed=torch.zeros(8, 1, 4, 4))
    cfg = TrainConfig(epochs=2, batch_size=4, lr=0.1, betas=(0.8, 0.95), optimizer=optimizer, weight_decay=weight_decay,
                      grad_clip=grad_clip, scheduler=scheduler, seed=0, progress=False, log=False)
    t = Trainer(Point(), quadratic, cfg, device="cpu")
    hist = t.fit(data)
    expected, losses = reference_adam(4, 0.1, (0.8, 0.95), 1e-8, weight_decay, optimizer == "adamw", grad_clip,
                                      scheduler == "cosine")
    # float32 parameters against a float64 reference: agreement to 1e-6 (the steps are 0.1 in size)
    torch.testing.assert_close(t.model.t.detach().double(), expected, atol=1e-6, rtol=0)
    assert hist[0]["loss"] == pytest.approx((losses[0] + losses[1]) / 2, rel=1e-6)
    assert hist[1]["loss"] == pytest.approx((losses[2] + losses[3]) / 2, rel=1e-6)


def test_gradients_do_not_leak_between_steps():
    # The second step's gradient is t1 - c, not (t0 - c) + (t1 - c): with lr small and the
    # moments reset, step 2's update is what a fresh optimiser started at t1 would do.
    data = TensorPairs(moving=torch.zeros(4, 1, 4, 4), fixed=torch.zeros(4, 1, 4, 4))
    cfg = TrainConfig(epochs=1, batch_size=2, lr=0.1, betas=(0.0, 0.0), grad_clip=None, scheduler="none",
                      progress=False, log=False)
    t = Trainer(Point(), quadratic, cfg, device="cpu")
    t.fit(data)
    # betas = 0: each update is lr * g / (|g| + eps) elementwise = lr * sign(g) for |g| >> eps.
    t1 = START - 0.1 * torch.sign(START - TARGET)
    t2 = t1 - 0.1 * torch.sign(t1 - TARGET)
    torch.testing.assert_close(t.model.t.detach(), t2, atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------------------------
# Validation through regkit.evaluation.METRICS
# ----------------------------------------------------------------------------------------------


class Brighten(nn.Module):
    """A deformation-free "model": scales the moving image (its output can leave [0, 1])."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.5))

    def forward(self, moving, fixed):
        return regkit.RegResult(warped=moving * self.scale, disp=None)


def test_validation_means_use_the_metric_table_and_skip_metrics_that_do_not_apply():
    val = pairs(5, seed=3)
    cfg = TrainConfig(epochs=1, batch_size=2, lr=1e-3, progress=False, log=False,
                      metrics=("mse", "psnr", "ncc", "folding", "epe"))
    t = Trainer(Brighten(), RegistrationObjective("mse", weight=0.5), cfg, device="cpu")
    out = t.evaluate(val)  # 5 pairs in batches of 2, 2, 1
    assert sorted(out) == ["val_loss", "val_mse", "val_ncc", "val_psnr"]  # no field: no folding, no epe
    warped = (val["moving"] * 1.5).clamp(0, 1)  # image metrics score the output clamped to [0, 1]
    assert out["val_mse"] == pytest.approx(float(metrics.mse(warped, val["fixed"]).mean()), rel=1e-6)
    assert out["val_psnr"] == pytest.approx(float(metrics.psnr(warped, val["fixed"]).mean()), rel=1e-6)
    assert out["val_ncc"] == pytest.approx(float(metrics.ncc(warped, val["fixed"]).mean()), rel=1e-6)
    unclamped = [float(regkit.losses.mse_loss(val["moving"][i:i + 1] * 1.5, val["fixed"][i:i + 1])) for i in range(5)]
    assert out["val_loss"] == pytest.approx(sum(unclamped) / 5, rel=1e-5)  # the objective, per pair
    hist = t.fit(pairs(4), val)
    assert "val_folding" not in hist[0] and "val_epe" not in hist[0]


def test_field_metrics_are_reported_for_a_deformable_model():
    val = pairs(4, seed=3)
    cfg = TrainConfig(metrics=("epe", "folding"), progress=False, log=False)
    regkit.seed_everything(0)
    model = Recorder()
    out = Trainer(model, RegistrationObjective(), cfg, device="cpu").evaluate(val)
    with torch.no_grad():
        disp = model.eval()(val["moving"], val["fixed"]).disp
    assert out["val_epe"] == pytest.approx(float(metrics.epe(disp, val["disp"]).mean()), rel=1e-6)
    assert out["val_folding"] == pytest.approx(float(metrics.folding_fraction(disp).mean()), rel=1e-6, abs=1e-12)


def test_metric_names_are_checked_against_the_table():
    with pytest.raises(ValueError, match="metrics must be names in"):
        TrainConfig(metrics=("mse", "dice_of_nothing"))
    t = Trainer(Brighten(), config=TrainConfig(metrics=("mse",)), device="cpu")
    with pytest.raises(ValueError, match="metric_names"):
        t.evaluate(pairs(2), metric_names=("nope",))


@pytest.mark.parametrize("field, value", [
    ("lr", float("inf")), ("lr", float("nan")), ("lr", 0), ("weight_decay", -1.0), ("min_lr", float("nan")),
    ("grad_clip", float("inf")), ("betas", (0.9, 1.0)), ("betas", (0.9,)), ("epochs", 0), ("batch_size", 2.0),
    ("seed", -1), ("num_workers", True), ("steps_per_epoch", 0), ("scheduler", "step"), ("optimizer", "sgd"),
])
def test_bad_settings_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_tensor_pairs_checks_its_tensors():
    with pytest.raises(ValueError, match="'fixed'"):
        TensorPairs(moving=torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match="3 entries, expected 2"):
        TensorPairs(moving=torch.zeros(2, 1, 4, 4), fixed=torch.zeros(3, 1, 4, 4))
    with pytest.raises(ValueError, match="'moving'.*N,C,H,W"):
        TensorPairs(moving=torch.zeros(2, 4, 4), fixed=torch.zeros(2, 4, 4))
    with pytest.raises(TypeError, match="'label'"):
        TensorPairs(moving=torch.zeros(2, 1, 4, 4), fixed=torch.zeros(2, 1, 4, 4), label=5)
    named = TensorPairs(moving=torch.zeros(2, 1, 4, 4), fixed=torch.zeros(2, 1, 4, 4), pair=["a", "b"])
    assert named[1]["pair"] == "b"  # lists of ids are kept as they are
    items = [{"moving": torch.full((1, 4, 4), float(i)), "fixed": torch.zeros(1, 4, 4), "k": i} for i in range(3)]
    ds = TensorPairs.from_dataset(items, limit=2)
    assert len(ds) == 2 and float(ds[1]["moving"][0, 0, 0]) == 1.0


def test_a_second_fit_continues_the_schedule_where_the_first_stopped():
    data = TensorPairs(moving=torch.zeros(8, 1, 4, 4), fixed=torch.zeros(8, 1, 4, 4))
    cfg = dict(epochs=4, batch_size=4, lr=0.1, grad_clip=None, seed=0, progress=False, log=False)
    whole = Trainer(Point(), quadratic, TrainConfig(**cfg), device="cpu")
    whole.fit(data)
    split = Trainer(Point(), quadratic, TrainConfig(**cfg), device="cpu")
    split.fit(data, stop_after=1)
    split.fit(data)  # in memory, no checkpoint
    assert [h["lr"] for h in split.history] == pytest.approx([h["lr"] for h in whole.history], rel=1e-9, abs=1e-15)
    torch.testing.assert_close(split.model.t.detach(), whole.model.t.detach(), atol=1e-6, rtol=0)
