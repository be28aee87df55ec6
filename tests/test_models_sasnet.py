"""SAS-Net: shapes, parameter count, the four loss terms, the registered method, a smoke training."""

import pytest
import torch

import regkit
from regkit import spatial
from regkit.models import sasnet
from regkit.models.blocks import count_parameters
from regkit.models.sasnet import SASNet, SASNetObjective

PARAM_TOL = 0.05




def small_net():
    return SASNet(scene_widths=(8, 8, 16, 16), appearance_widths=(8, 8, 8, 8), scene_channels=16, res_blocks=1)


def toy_pairs(n=8, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    moving = spatial.resize_image(torch.rand(n, 1, 6, 6, generator=g), (size, size), mode="bicubic").clamp(0, 1)
    u = torch.zeros(n, 2, size, size)
    u[:, 1] = -2.0
    fixed = (0.3 + 0.6 * spatial.warp(moving, u)) ** 1.5
    return {"moving": moving, "fixed": fixed}


def test_shapes_range_and_frame_ignored():
    torch.manual_seed(0)
    net = SASNet()
    m, f = torch.rand(2, 1, 40, 48), torch.rand(2, 1, 40, 48)
    parts = net.parts(m, f)
    assert parts["output"].shape == (2, 1, 40, 48) and parts["scene"].shape == (2, 64, 40, 48)
    assert parts["code"].shape == (2, 32)
    res = net(m, f, frame=torch.tensor([3, 4]))
    assert res.disp is None
    torch.testing.assert_close(res.warped, parts["output"])
    assert 0 <= float(res.warped.detach().min()) and float(res.warped.detach().max()) <= 1


def test_parameter_count_near_paper():
    n = count_parameters(SASNet())
    assert abs(n / 1e6 - sasnet.PAPER_PARAMS_M) / sasnet.PAPER_PARAMS_M < PARAM_TOL


def test_objective_terms():
    torch.manual_seed(0)
    net, obj = small_net(), SASNetObjective()
    loss, logs, res = obj(net, toy_pairs(4, 16))
    assert set(logs) == {"loss", "rec", "scene", "domain", "cycle"}
    expected = logs["rec"] + 0.5 * logs["scene"] + 0.1 * logs["domain"] + 0.5 * logs["cycle"]
    assert abs(float(loss.detach()) - expected) < 1e-5 and res.disp is None
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())
    with pytest.raises(ValueError, match="cycle_weight"):
        SASNetObjective(cycle_weight=-1.0)


def test_registered_method():
    net = small_net()
    x, y = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    res = regkit.register(x, y, method="sasnet", model=net, frame=torch.tensor([0, 1]))
    assert res.disp is None and res.warped.shape == x.shape and not res.warped.requires_grad
    assert regkit.describe()["sasnet"]["kind"] == "learned"
    with pytest.raises(ValueError, match="trained SASNet"):
        regkit.register(x, y, method="sasnet")
    with pytest.raises(TypeError, match="SASNet"):
        regkit.register(x, y, method="sasnet", model=torch.nn.Linear(2, 2))


def test_smoke_training_lowers_loss():
    from regkit.train import TensorPairs, TrainConfig, Trainer

    regkit.seed_everything(0)
    net, obj = small_net(), SASNetObjective()
    data = TensorPairs(**toy_pairs(8, 32))
    cfg = TrainConfig(epochs=5, batch_size=4, lr=3e-3, weight_decay=1e-5, progress=False, log=False, seed=0,
                      metrics=("mse",))
    start = Trainer(net, obj, cfg, device="cpu").evaluate(data)
    history = Trainer(net, obj, cfg, device="cpu").fit(data, data)
    assert history[-1]["val_loss"] < start["val_loss"]
    assert history[-1]["val_mse"] < 0.5 * start["val_mse"]
