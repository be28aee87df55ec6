"""Trainer: smoke training, exact resume, checkpoint safety, torchrun/DDP on the CPU."""

from __future__ import annotations

import inspect
import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

import regkit
from regkit import spatial
from regkit.checkpoint import load_checkpoint, load_model
from regkit.train import RegistrationObjective, TensorPairs, TrainConfig, Trainer


class TinyNet(nn.Module):
    """Two conv layers predicting a displacement; small enough for a 2-core CPU."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(2, width, 3, padding=1), nn.LeakyReLU(0.2), nn.Dropout(0.1), nn.Conv2d(width, 2, 3, padding=1)
        )

    def forward(self, moving, fixed):
        disp = self.net(torch.cat((moving, fixed), 1))
        return regkit.RegResult(warped=spatial.warp(moving, disp), disp=disp)


class Weighted(nn.Module):
    """An objective with a learnable parameter (uncertainty-style weighting)."""

    def __init__(self):
        super().__init__()
        self.log_var = nn.Parameter(torch.zeros(()))

    def forward(self, model, batch):
        res = model(batch["moving"], batch["fixed"])
        sim = regkit.losses.mse_loss(res.warped, batch["fixed"])
        return sim * torch.exp(-self.log_var) + self.log_var, {"sim": float(sim.detach())}


def pairs(n=24, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    fixed = spatial.resize_image(torch.rand(n, 1, 6, 6, generator=g), (size, size), mode="bicubic").clamp(0, 1)
    disp = spatial.random_smooth_disp(n, (size, size), max_disp=2.0, generator=g)
    return {"moving": spatial.warp(fixed, disp), "fixed": fixed, "disp": disp}


def config(tmp_path=None, **kw):
    base = dict(epochs=4, batch_size=6, lr=3e-3, seed=1, progress=False, log=False, metrics=("mse", "ncc", "folding", "epe"))
    base.update(kw)
    if tmp_path is not None:
        base["checkpoint_dir"] = str(tmp_path)
    return TrainConfig(**base)


def test_smoke_training_lowers_loss_and_records_history():
    data = pairs()
    regkit.seed_everything(0)
    trainer = Trainer(TinyNet(), RegistrationObjective("mse", "diffusion", 0.01), config(epochs=5), device="cpu")
    hist = trainer.fit(data, pairs(8, seed=1))
    assert len(hist) == 5 and trainer.epoch == 5 and trainer.step == 5 * 4
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert hist[-1]["val_mse"] < hist[0]["val_mse"]
    for key in ("val_ncc", "val_folding", "val_epe", "val_loss", "sim", "smooth", "lr"):
        assert key in hist[-1]
    assert hist[-1]["lr"] < hist[0]["lr"]  # cosine annealing
    curves = trainer.curves()
    assert curves["epoch"] == [1, 2, 3, 4, 5]


def test_resume_is_bit_exact(tmp_path):
    data, val = pairs(), pairs(6, seed=1)

    def run(folder, stop_after=None, resume=False, seed=0):
        regkit.seed_everything(seed)  # model init; a resumed run starts from a different init on purpose
        t = Trainer(TinyNet(), Weighted(), config(folder, optimizer="adamw", weight_decay=1e-2), device="cpu")
        t.fit(data, val, resume=resume, stop_after=stop_after)
        return t

    full = run(tmp_path / "a")
    run(tmp_path / "b", stop_after=2)
    resumed = run(tmp_path / "b", resume=True, seed=123)
    assert resumed.epoch == full.epoch == 4 and resumed.step == full.step
    for (k, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k
    assert torch.equal(full.objective.log_var, resumed.objective.log_var)
    assert [h["loss"] for h in full.history] == [h["loss"] for h in resumed.history]
    assert full.optimizer.param_groups[0]["lr"] == resumed.optimizer.param_groups[0]["lr"]


def test_checkpoint_is_atomic_and_loads_into_a_model(tmp_path):
    regkit.seed_everything(0)
    t = Trainer(TinyNet(), config=config(tmp_path, epochs=1), device="cpu")
    t.fit(pairs(6))
    assert sorted(os.listdir(tmp_path)) == ["last.pt"]  # no temp files left behind
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["epoch"] == 1 and state["config"]["epochs"] == 1
    m = load_model(TinyNet(), tmp_path / "last.pt")
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), t.model.state_dict().values()))


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the crafted file is a plain pickle
def test_malicious_pickle_checkpoint_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "last.pt"
    with open(path, "wb") as f:
        pickle.dump({"model": _Evil()}, f)
    torch.save({"model": {}, "payload": _Evil()}, tmp_path / "evil2.pt")
    for p in (path, tmp_path / "evil2.pt"):
        with pytest.raises(ValueError, match="refusing to load"):
            load_checkpoint(p)
    t = Trainer(TinyNet(), config=config(tmp_path, epochs=1), device="cpu")
    with pytest.raises(ValueError, match="refusing"):
        t.fit(pairs(6), resume=True)
    assert not (tmp_path / "pwned.txt").exists()


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="amp"):
        TrainConfig(amp="fp8")
    with pytest.raises(ValueError, match="metrics"):
        TrainConfig(metrics=("nope",))
    with pytest.raises(TypeError, match="model"):
        Trainer("not a model")
    with pytest.raises(ValueError, match="similarity"):
        RegistrationObjective("cosine")
    with pytest.raises(ValueError, match="fixed"):
        TensorPairs(moving=torch.zeros(2, 1, 4, 4))
    t = Trainer(TinyNet(), config=config(epochs=1), device="cpu")
    with pytest.raises(ValueError, match="'fixed'"):
        t.fit([{"moving": torch.zeros(1, 8, 8)}])


def test_amp_auto_is_off_on_cpu_and_bf16_runs():
    assert Trainer(TinyNet(), config=config(), device="cpu").amp_dtype is None
    regkit.seed_everything(0)
    t = Trainer(TinyNet(), config=config(epochs=1, amp="bf16"), device="cpu")
    hist = t.fit(pairs(6), pairs(6, seed=2))
    assert t.amp_dtype is torch.bfloat16 and all(torch.isfinite(torch.tensor(list(hist[0].values()))))


DDP_SCRIPT = textwrap.dedent(
    """
    import os, sys, torch
    torch.set_num_threads(1)
    from torch import nn
    import regkit
    from regkit import spatial
    from regkit.train import Trainer, TrainConfig, RegistrationObjective
    {helpers}
    regkit.seed_everything(int(os.environ["RANK"]) + 5)  # different inits: DDP must broadcast rank 0's
    cfg = TrainConfig(epochs=2, batch_size=4, lr=3e-3, seed=3, progress=False, log=True,
                      checkpoint_dir=sys.argv[1], metrics=("mse", "ncc"))
    t = Trainer(TinyNet(), RegistrationObjective("ncc", "bending", 0.1), cfg, device="cpu")
    hist = t.fit(pairs(16), pairs(6, seed=1))
    torch.save({k: v for k, v in t.model.state_dict().items()},
               os.path.join(sys.argv[2], f"rank{t.rank}.pt"))
    assert t.world_size == 2, t.world_size
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in hist)
    """
)


def test_torchrun_two_processes_agree(tmp_path):
    helpers = inspect.getsource(TinyNet) + "\n\n" + inspect.getsource(pairs)
    (tmp_path / "worker.py").write_text(DDP_SCRIPT.replace("{helpers}", textwrap.indent(helpers, "")))
    ckpt, out = tmp_path / "ckpt", tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
           str(tmp_path / "worker.py"), str(ckpt), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    a, b = torch.load(out / "rank0.pt", weights_only=True), torch.load(out / "rank1.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert os.listdir(ckpt) == ["last.pt"]  # rank 0 wrote it, once
    state = load_checkpoint(ckpt / "last.pt")
    assert state["epoch"] == 2 and state["step"] == 2 * 2  # 16 samples / 2 ranks / batch 4
    assert len([line for line in proc.stdout.splitlines() if line.startswith("epoch ")]) == 2  # rank 0 logs only
