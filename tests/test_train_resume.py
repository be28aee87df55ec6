"""Trainer resume: a changed setting is refused by name unless accepted; weights that do not fit
give a clear error; accepted changes apply from the resumed epoch."""

from __future__ import annotations

import math
import shutil
import warnings

import pytest
import torch
from torch import nn

import regkit
from regkit import spatial
from regkit.checkpoint import load_checkpoint
from regkit.train import RegistrationObjective, TrainConfig, Trainer
from regkit.train.resume import RESUMABLE_CHANGES


class Net(nn.Module):
    """A one-conv displacement predictor; ``config`` holds its constructor arguments."""

    def __init__(self, width: int = 4):
        super().__init__()
        self.config = {"width": width}
        self.net = nn.Sequential(nn.Conv2d(2, width, 3, padding=1), nn.Tanh(), nn.Conv2d(width, 2, 3, padding=1))

    def forward(self, moving, fixed):
        disp = self.net(torch.cat((moving, fixed), 1))
        return regkit.RegResult(warped=spatial.warp(moving, disp), disp=disp)


class OtherNet(Net):
    """Same weights, another class."""


class Bare(nn.Module):
    """Like ``Net`` but with no ``config``: only the weights' shapes tell a width change."""

    def __init__(self, width: int = 4):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(2, width, 3, padding=1), nn.Tanh(), nn.Conv2d(width, 2, 3, padding=1))

    def forward(self, moving, fixed):
        disp = self.net(torch.cat((moving, fixed), 1))
        return regkit.RegResult(warped=spatial.warp(moving, disp), disp=disp)


class Weighted(nn.Module):
    """An objective with a learnable parameter."""

    def __init__(self):
        super().__init__()
        self.log_var = nn.Parameter(torch.zeros(()))

    def forward(self, model, batch):
        res = model(batch["moving"], batch["fixed"])
        sim = regkit.losses.mse_loss(res.warped, batch["fixed"])
        return sim * torch.exp(-self.log_var) + self.log_var, {"sim": float(sim.detach())}


def pairs(n=8, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    fixed = torch.rand(n, 1, size, size, generator=g)
    disp = spatial.random_smooth_disp(n, (size, size), max_disp=1.0, generator=g)
    return {"moving": spatial.warp(fixed, disp), "fixed": fixed}


BASE = dict(epochs=2, batch_size=4, lr=1e-2, seed=1, progress=False, log=False, metrics=("mse",))


def trainer(folder, model=None, objective=None, **changes):
    regkit.seed_everything(0)
    cfg = TrainConfig(**{**BASE, "checkpoint_dir": str(folder), **changes})
    return Trainer(model or Net(), objective or RegistrationObjective("mse", weight=0.01), cfg, device="cpu")


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A run stopped after its first epoch (``last.pt``), copied fresh for each test."""
    folder = tmp_path_factory.mktemp("run")
    trainer(folder).fit(pairs(), stop_after=1)
    return folder


@pytest.fixture
def run_dir(stored, tmp_path):
    shutil.copytree(stored, tmp_path / "run")
    return tmp_path / "run"


CHANGES = [
    ("lr", dict(lr=2e-2), "lr 0.01 -> 0.02"),
    ("batch_size", dict(batch_size=2), "batch_size 4 -> 2"),
    ("seed", dict(seed=2), "seed 1 -> 2"),
    ("optimizer", dict(optimizer="adamw"), "optimizer 'adam' -> 'adamw'"),
    ("scheduler", dict(scheduler="none"), "scheduler 'cosine' -> 'none'"),
    ("epochs", dict(epochs=3), "epochs 2 -> 3"),
    ("weight_decay", dict(weight_decay=1e-3), "weight_decay 0.0 -> 0.001"),
    ("grad_clip", dict(grad_clip=None), "grad_clip 1.0 -> None"),
    ("betas", dict(betas=(0.5, 0.9)), "betas (0.9, 0.999) -> (0.5, 0.9)"),
    ("objective", dict(objective=RegistrationObjective("mse", weight=0.5)), "'weight': 0.5"),
    ("objective", dict(objective=RegistrationObjective("ncc", weight=0.01)), "'similarity': 'ncc'"),
    ("objective", dict(objective=Weighted()), "Weighted"),
    ("model_class", dict(model=OtherNet()), "OtherNet"),
    ("model_config", dict(model=Net(width=8)), "model_config.width 4 -> 8"),
]


@pytest.mark.parametrize("field, change, text", CHANGES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CHANGES)])
def test_a_changed_setting_is_refused_by_name(run_dir, field, change, text):
    t = trainer(run_dir, **change)
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    with pytest.raises(ValueError, match="cannot resume") as err:
        t.fit(pairs(), resume=True)
    message = str(err.value)
    assert text in message and f"allow_config_change=('{field}',)" in message
    assert t.epoch == 0 and t.step == 0 and t.history == []  # refused before anything was loaded
    assert all(torch.equal(before[k], v) for k, v in t.model.state_dict().items())
    assert load_checkpoint(run_dir / "last.pt")["epoch"] == 1  # the checkpoint is untouched


def test_several_changes_are_all_named(run_dir):
    with pytest.raises(ValueError) as err:
        trainer(run_dir, lr=2e-2, epochs=3, seed=5).fit(pairs(), resume=True)
    assert "(epochs 2 -> 3, lr 0.01 -> 0.02, seed 1 -> 5)" in str(err.value)
    assert "allow_config_change=('epochs', 'lr', 'seed'))" in str(err.value)


def test_settings_that_do_not_change_the_run_resume_silently(run_dir):
    t = trainer(run_dir, metrics=("mse", "ncc"), log=True, val_batch_size=3, keep_every=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t.fit(pairs(), resume=True)
    assert t.epoch == 2 and len(t.history) == 2


def test_a_wider_model_without_config_gives_a_clear_error_even_when_changes_are_allowed(tmp_path):
    trainer(tmp_path, model=Bare(width=4)).fit(pairs(), stop_after=1)
    for allow in (False, True):
        t = trainer(tmp_path, model=Bare(width=8))
        with pytest.raises(ValueError, match=r"do not fit this Bare \(was it trained with another width") as err:
            t.fit(pairs(), resume=True, allow_config_change=allow)
        assert "net.0.weight: (4, 2, 3, 3) in the checkpoint, (8, 2, 3, 3) here" in str(err.value)


def test_a_wider_model_with_config_is_refused_first_by_its_config_then_by_its_weights(run_dir):
    with pytest.raises(ValueError, match="model_config.width 4 -> 8"):
        trainer(run_dir, model=Net(width=8)).fit(pairs(), resume=True)
    with pytest.raises(ValueError, match="do not fit this Net"):
        trainer(run_dir, model=Net(width=8)).fit(pairs(), resume=True, allow_config_change=["model_config"])


def test_allow_config_change_names_are_checked(run_dir):
    with pytest.raises(ValueError, match="allow_config_change must be a bool or names"):
        trainer(run_dir).fit(pairs(), resume=True, allow_config_change=["learning_rate"])
    with pytest.raises(ValueError, match="allow_config_change"):
        trainer(run_dir).fit(pairs(), resume=True, allow_config_change=["log"])  # free anyway: not a name
    assert "epochs" in RESUMABLE_CHANGES and "log" not in RESUMABLE_CHANGES


def test_a_longer_run_continues_on_the_rebuilt_schedule(run_dir):
    t = trainer(run_dir, epochs=4)
    with pytest.warns(UserWarning, match=r"changed settings \(epochs 2 -> 4\); the current ones apply from epoch 2"):
        hist = t.fit(pairs(), resume=True, allow_config_change=("epochs",))
    assert t.epoch == 4 and t.step == 8 and len(hist) == 4
    # Cosine from lr = 1e-2 to 0 over 4 epochs x 2 steps, positioned at the stored step 2.
    for entry in hist[1:]:
        expected = 1e-2 * (1 + math.cos(math.pi * entry["step"] / 8)) / 2
        assert entry["lr"] == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert hist[0]["lr"] == pytest.approx(1e-2 * (1 + math.cos(math.pi * 2 / 4)) / 2, rel=1e-9)  # old schedule


def test_an_accepted_lr_change_applies_and_keeps_the_moments(run_dir):
    stored = load_checkpoint(run_dir / "last.pt")
    t = trainer(run_dir, lr=3e-2, scheduler="none")
    with pytest.warns(UserWarning, match="lr 0.01 -> 0.03, scheduler 'cosine' -> 'none'"):
        assert t.resume(allow_config_change=["lr", "scheduler"])
    assert [g["lr"] for g in t.optimizer.param_groups] == [3e-2]
    assert t.epoch == 1 and t.step == 2
    for i, p in enumerate(t.model.parameters()):
        assert torch.equal(t.optimizer.state[p]["exp_avg"], stored["optimizer"]["state"][i]["exp_avg"])
    hist = t.fit(pairs(), resume=False)  # continues in memory on the new settings
    assert t.epoch == 2 and hist[-1]["lr"] == 3e-2


def test_an_accepted_objective_change_starts_its_parameters_fresh(tmp_path):
    trainer(tmp_path, objective=Weighted()).fit(pairs(), stop_after=1)
    t = trainer(tmp_path)  # RegistrationObjective: no parameters
    with pytest.warns(UserWarning, match="the objective's parameters start fresh, the optimiser's moments start fresh"):
        t.fit(pairs(), resume=True, allow_config_change=True)
    assert t.epoch == 2


def test_an_objective_state_that_does_not_fit_is_refused_clearly(tmp_path):
    trainer(tmp_path, objective=Weighted()).fit(pairs(), stop_after=1)
    state = load_checkpoint(tmp_path / "last.pt")
    state["objective"]["log_var"] = torch.zeros(3)
    t = trainer(tmp_path, objective=Weighted())
    with pytest.raises(ValueError, match=r"objective state does not fit this Weighted: log_var: \(3,\)"):
        t.load_state_dict(state)
