"""Shipped weights: export, SHA-256-checked loading, registration by name, clear refusals."""

import pytest
import torch

import regkit
from regkit.experiments.tables.base import export_weights
from regkit.models import zoo as P
from regkit.models.dirnet import DIRNet


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "WEIGHTS_DIR", tmp_path)
    P.reload_manifest()
    yield tmp_path
    P.reload_manifest()


def test_export_then_load_and_register_by_name(weights_dir):
    torch.manual_seed(0)
    net = DIRNet(channels=8, pools=1)
    entry = export_weights(net, "dirnet-toy", made_by={"command": "test", "steps": 0}, folder=weights_dir)
    assert entry["model_class"] == "regkit.models.dirnet.DIRNet" and entry["bytes"] < 200_000
    assert P.pretrained_names() == ["dirnet-toy"] and P.pretrained_info("dirnet-toy")["made_by"]["command"] == "test"
    loaded = P.pretrained("dirnet-toy")
    assert not loaded.training
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), net.state_dict().values()))
    m, f = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    by_name = regkit.register(m, f, method="dirnet", model="dirnet-toy")
    by_module = regkit.register(m, f, method="dirnet", model=net)
    assert torch.allclose(by_name.disp, by_module.disp, atol=1e-6)


def test_corrupted_or_unknown_weights_are_refused(weights_dir):
    export_weights(DIRNet(channels=8, pools=1), "dirnet-toy", made_by={}, folder=weights_dir)
    path = weights_dir / "dirnet-toy.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupted"):
        P.pretrained("dirnet-toy")
    with pytest.raises(ValueError, match="name must be one of"):
        P.pretrained("no-such-model")
    with pytest.raises(FileNotFoundError, match="neither a checkpoint"):
        regkit.register(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16), method="dirnet", model="no-such-model")


def test_large_weights_are_not_shipped(weights_dir):
    with pytest.raises(ValueError, match="max_bytes"):
        export_weights(DIRNet(channels=8, pools=1), "big", made_by={}, folder=weights_dir, max_bytes=1000)
    assert not (weights_dir / "big.pt").exists()


def test_learned_methods_cast_other_float_dtypes_to_the_models():
    torch.manual_seed(0)
    net = DIRNet(channels=8, pools=1)
    m, f = torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32)
    ref = regkit.register(m, f, method="dirnet", model=net)
    for dtype in (torch.float64, torch.bfloat16, torch.float16):
        res = regkit.register(m.to(dtype), f.to(dtype), method="dirnet", model=net)
        assert res.warped.dtype == torch.float32 and res.disp.dtype == torch.float32
        assert torch.allclose(res.disp, ref.disp, atol=0.05), dtype


def test_a_checkpoint_of_another_model_is_refused_by_name(tmp_path):
    from regkit.train import RegistrationObjective, TensorPairs, TrainConfig, Trainer

    torch.manual_seed(0)
    x = torch.rand(4, 1, 32, 32)
    cfg = TrainConfig(epochs=1, batch_size=4, progress=False, log=False, checkpoint_dir=str(tmp_path))
    Trainer(DIRNet(channels=8, pools=1), RegistrationObjective("mse"), cfg, device="cpu").fit(TensorPairs(moving=x, fixed=x))
    with pytest.raises(ValueError, match="holds a DIRNet, but this method needs a VoxelMorph"):
        regkit.register(x, x, method="voxelmorph", model=str(tmp_path / "last.pt"))


def test_shipped_models_and_checkpoints_load_under_another_default_device(weights_dir, tmp_path):
    """The model is built on the CPU and moved to the device asked for, not on the default device
    (a meta default device left parameters without data, and loading failed)."""
    from regkit.checkpoint import save_checkpoint
    from regkit.models.blocks import as_model

    torch.manual_seed(0)
    net = DIRNet(channels=8, pools=1)
    export_weights(net, "dirnet-toy", made_by={}, folder=weights_dir)
    save_checkpoint({"model": net.state_dict(), "model_config": net.config,
                     "model_class": "regkit.models.dirnet.DIRNet"}, tmp_path / "toy.pt")
    with torch.device("meta"):
        by_name = P.pretrained("dirnet-toy", device="cpu")
        by_path = as_model(str(tmp_path / "toy.pt"), DIRNet, torch.device("cpu"))
    for loaded in (by_name, by_path):
        assert all(p.device.type == "cpu" for p in loaded.parameters())
        assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), net.state_dict().values()))
