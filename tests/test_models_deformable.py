"""DIRNet, VoxelMorph and TransMorph: shapes, sizes, parameter counts, registry, smoke training."""

from __future__ import annotations

import pytest
import torch

import regkit
from regkit import spatial
from regkit.models.blocks import count_parameters, pad_to_multiple, upsample2
from regkit.models.dirnet import DIRNet
from regkit.models.transmorph import CONFIGS, TransMorph, transmorph_256, transmorph_mnist
from regkit.models.voxelmorph import VoxelMorph
from regkit.train import RegistrationObjective, TrainConfig, Trainer

FACTORIES = {
    "dirnet": lambda: DIRNet(channels=16),
    "voxelmorph": lambda: VoxelMorph(),
    "voxelmorph_diff": lambda: VoxelMorph(diffeomorphic=True),
    "transmorph": lambda: transmorph_mnist(),
}


def pairs(n=16, size=32, seed=0, max_disp=2.5):
    g = torch.Generator().manual_seed(seed)
    smooth = spatial.resize_image(torch.rand(n, 1, 5, 5, generator=g), (size, size), mode="bicubic")
    fixed = torch.sigmoid(12 * (smooth - 0.5))  # high-contrast blobs
    disp = spatial.random_smooth_disp(n, (size, size), max_disp=max_disp, generator=g)
    return {"moving": spatial.warp(fixed, disp), "fixed": fixed, "disp": disp}


# --- blocks ------------------------------------------------------------------------------------


def test_bspline_reproduces_constants_and_linear_fields():
    n = 7
    pos = (torch.arange(n, dtype=torch.float32) - 1) * (27 / (n - 3))  # control positions at 28 px
    c = torch.zeros(1, 2, n, n)
    c[:, 0] = 0.1 * pos.view(1, n) + 1.0  # u_x linear in x: cubic B-splines reproduce it exactly
    c[:, 1] = -2.0
    u = spatial.bspline_upsample(c, (28, 28))
    x = torch.arange(28, dtype=torch.float32)
    assert torch.allclose(u[0, 0], (0.1 * x + 1.0).expand(28, 28), atol=1e-5)
    assert torch.allclose(u[0, 1], torch.full((28, 28), -2.0), atol=1e-6)
    assert torch.allclose(spatial.bspline_basis(28, 7).sum(1), torch.ones(28))
    with pytest.raises(ValueError, match="n_ctrl"):
        spatial.bspline_basis(28, 3)


def test_upsample_and_padding_helpers():
    x = torch.rand(2, 3, 5, 6)
    assert torch.equal(upsample2(x)[..., ::2, ::2], x)
    y, hw = pad_to_multiple(x, 4)
    assert y.shape[-2:] == (8, 8) and hw == (5, 6) and torch.equal(y[..., :5, :6], x)


# --- models ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FACTORIES))
@pytest.mark.parametrize("size", [(28, 28), (32, 48)])
def test_forward_shapes_and_identity_at_init(name, size):
    torch.manual_seed(0)
    net = FACTORIES[name]().eval()
    x = torch.rand(2, 1, *size)
    res = net(x, torch.rand(2, 1, *size))
    assert isinstance(res, regkit.RegResult)
    assert res.disp.shape == (2, 2, *size) and res.warped.shape == x.shape
    assert res.disp.dtype == torch.float32 and res.disp.abs().max() < 1e-2  # starts near the identity
    res.disp.sum().backward()


def test_parameter_counts():
    # Table 2 of the GPEReg-Net paper lists VoxelMorph 0.10 M and TransMorph 0.17 M parameters.
    assert count_parameters(VoxelMorph()) == 109_170
    assert count_parameters(transmorph_256()) == 178_058
    assert count_parameters(transmorph_mnist()) == 46_870
    assert count_parameters(DIRNet()) == 48_354
    assert round(count_parameters(transmorph_256()) / 1e6, 2) == 0.18


def test_transmorph_256_runs_on_a_256_patch():
    net = transmorph_256().eval()
    assert net.multiple == 128
    with torch.no_grad():
        res = net(torch.rand(1, 1, 256, 256), torch.rand(1, 1, 256, 256))
    assert res.disp.shape == (1, 2, 256, 256)


def test_shifted_window_attention_is_used():
    net = TransMorph(**CONFIGS["transmorph_mnist"])
    shifts = [blk.shift for stage in net.stages for blk in stage]
    assert shifts == [0, 2, 0, 2]


def test_too_small_or_wrong_inputs_raise():
    with pytest.raises(ValueError, match="at least 16x16"):
        DIRNet()(torch.rand(1, 1, 12, 12), torch.rand(1, 1, 12, 12))
    with pytest.raises(ValueError, match="at least 16 px"):
        VoxelMorph()(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="channel"):
        transmorph_mnist()(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="same shape"):
        VoxelMorph()(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="divisible"):
        TransMorph(dim=10, heads=(3,), depths=(1,))


def test_registered_methods_need_a_model_and_accept_checkpoints(tmp_path):
    x = torch.rand(1, 1, 32, 32)
    assert {"dirnet", "voxelmorph", "transmorph"} <= set(regkit.methods("learned"))
    with pytest.raises(ValueError, match="Trainer"):
        regkit.register(x, x, method="voxelmorph")
    with pytest.raises(TypeError, match="VoxelMorph"):
        regkit.register(x, x, method="voxelmorph", model=DIRNet())
    torch.manual_seed(0)
    cfg = TrainConfig(epochs=1, batch_size=4, progress=False, log=False, checkpoint_dir=str(tmp_path), metrics=("mse",))
    trainer = Trainer(transmorph_mnist(), RegistrationObjective("mse"), cfg, device="cpu")
    trainer.fit(pairs(4))
    direct = regkit.register(x, x, method="transmorph", model=trainer.model)
    from_file = regkit.register(x, x, method="transmorph", model=tmp_path / "last.pt")
    assert torch.equal(direct.disp, from_file.disp)
    assert trainer.model.training  # run_model restores the mode


@pytest.mark.parametrize("name", list(FACTORIES))
def test_seeded_smoke_training_lowers_the_loss(name):
    # Overfit one fixed batch of four pairs (20 steps): the loss must fall clearly, folds stay rare.
    data = pairs(4, max_disp=3.0)
    regkit.seed_everything(0)
    net = FACTORIES[name]()
    cfg = TrainConfig(epochs=20, batch_size=4, lr=5e-3, seed=0, progress=False, log=False, metrics=("mse", "folding"))
    objective = RegistrationObjective("mse", "diffusion", weight=0.01, on="velocity" if "diff" in name else "disp")
    hist = Trainer(net, objective, cfg, device="cpu").fit(data, data)
    first, last = hist[0], hist[-1]
    assert last["loss"] < 0.8 * first["loss"], (first["loss"], last["loss"])
    assert last["val_mse"] < 0.85 * first["val_mse"], (first["val_mse"], last["val_mse"])
    assert last["val_folding"] < 0.01


@pytest.mark.parametrize("name", list(FACTORIES))
def test_one_bf16_autocast_step(name):
    # What runs on CUDA under amp="auto"; on the CPU, bf16 autocast exercises the same casts.
    regkit.seed_everything(0)
    cfg = TrainConfig(epochs=1, batch_size=2, amp="bf16", progress=False, log=False, metrics=("mse", "folding"))
    trainer = Trainer(FACTORIES[name](), RegistrationObjective("lncc", "bending", 0.1), cfg, device="cpu")
    hist = trainer.fit(pairs(2), pairs(2, seed=1))
    assert trainer.amp_dtype is torch.bfloat16
    assert all(v == v for v in hist[0].values())  # no NaNs


# ---- TransMorph value tests (exact shift mask, shift pattern, sizes, messages) ----


def _expected_shift_mask(h, w, window, shift):
    # Independent construction: 3x3 region labels, windows row-major, tokens row-major in a window.
    def region(i, n):
        return 0 if i < n - window else (1 if i < n - shift else 2)

    out = []
    for wy in range(h // window):
        for wx in range(w // window):
            toks = [(wy * window + ty, wx * window + tx) for ty in range(window) for tx in range(window)]
            labels = [region(y, h) * 3 + region(x, w) for y, x in toks]
            out.append([[0.0 if a == b else -100.0 for b in labels] for a in labels])
    return torch.tensor(out, dtype=torch.float32)


@pytest.mark.parametrize("h, w, window, shift", [
    (4, 4, 2, 1), (6, 6, 3, 1), (6, 6, 2, 1), (6, 8, 2, 1), (8, 6, 2, 1), (9, 9, 3, 1), (8, 8, 4, 2), (12, 8, 4, 2),
])
def test_transmorph_shift_mask_exact_values(h, w, window, shift):
    """_shift_mask: wrong region slices (rows or columns) or a mask value other than -100 change the mask."""
    from regkit.models.transmorph import _shift_mask

    got = _shift_mask(h, w, window, shift, torch.device("cpu"))
    expected = _expected_shift_mask(h, w, window, shift)
    assert got.shape == ((h // window) * (w // window), window * window, window * window)
    assert got.dtype == torch.float32
    assert torch.equal(got, expected)


def test_transmorph_shift_mask_hand_case_4x4():
    """_shift_mask(4, 4, 2, 1) by hand: the last window mixes four regions, the first has one."""
    from regkit.models.transmorph import _shift_mask

    m = _shift_mask(4, 4, 2, 1, "cpu")
    assert torch.equal(m[0], torch.zeros(4, 4))  # rows/cols 0-1: region (0, 0) only
    # window 1 (rows 0-1, cols 2-3): tokens labelled (0,1) (0,2) (0,1) (0,2)
    assert torch.equal(m[1], torch.tensor([[0.0, -100, 0, -100], [-100, 0, -100, 0]] * 2))
    # window 3 (rows 2-3, cols 2-3): four different regions -> only the diagonal is 0
    assert torch.equal(m[3], torch.full((4, 4), -100.0).fill_diagonal_(0.0))
    assert set(m.unique().tolist()) == {0.0, -100.0}


def test_transmorph_shift_mask_follows_the_device():
    """_shift_mask must build on the given device (and SwinBlock pass x.device), not the default CPU."""
    from regkit.models.transmorph import SwinBlock, _shift_mask

    assert _shift_mask(4, 4, 2, 1, torch.device("meta")).device.type == "meta"
    block = SwinBlock(4, 2, 2, shift=1).to("meta")
    assert block(torch.zeros(1, 4, 4, 4, device="meta")).device.type == "meta"


def test_transmorph_multiple_is_patch_times_power_of_two_times_window():
    """multiple = patch * 2**(stages-1) * window (not patch * 2*(stages-1) * window)."""
    net = TransMorph(patch=2, dim=4, depths=(2, 2, 2), heads=(2, 2, 2), window=2, head_channels=2)
    assert net.multiple == 16
    net4 = TransMorph(patch=2, dim=4, depths=(1, 1, 1, 1), heads=(1, 1, 1, 1), window=2, head_channels=2)
    assert net4.multiple == 32


@pytest.mark.parametrize("depth", [3, 4])
def test_transmorph_blocks_alternate_shift(depth):
    """Block j of every stage shifts by (window // 2) * (j % 2): alternate 0, w/2, 0, w/2 (not j % 3)."""
    net = TransMorph(patch=2, dim=4, depths=(depth, depth), heads=(2, 2), window=4, head_channels=2)
    for stage in net.stages:
        assert [blk.shift for blk in stage] == [2 * (j % 2) for j in range(depth)]
        assert all(blk.window == 4 for blk in stage)


def test_transmorph_default_config_and_patch_merging_has_no_bias():
    """Default window is 8; PatchMerging's reduce has no bias; rel_index is a non-persistent buffer."""
    net = TransMorph()
    assert net.window == 8 and net.config["window"] == 8 and net.multiple == 4 * 4 * 8
    assert all(m.reduce.bias is None for m in net.merges)
    assert net.merges[0].reduce.weight.shape == (24, 48)
    keys = list(net.state_dict())
    assert not any("rel_index" in k for k in keys)
    assert any(k.endswith("attn.bias_table") for k in keys)
    assert net.stages[0][0].attn.rel_index.shape == (64, 64)


def test_transmorph_patch_one_is_a_power_of_two():
    """patch=1 (2**0) is valid: a `patch & (patch - 2)` check would wrongly reject it."""
    net = TransMorph(patch=1, dim=4, depths=(1,), heads=(1,), window=2, head_channels=2)
    assert net.multiple == 2
    assert tuple(net(torch.rand(1, 1, 5, 5), torch.rand(1, 1, 5, 5)).disp.shape) == (1, 2, 5, 5)
    for bad in (3, 6, 12):
        with pytest.raises(ValueError, match=rf"^patch must be a power of two, got {bad}$"):
            TransMorph(patch=bad)


@pytest.mark.parametrize("name", ["patch", "dim", "window", "head_channels", "in_channels"])
def test_transmorph_integer_arguments_reject_floats(name):
    """Integer arguments must be ints: check_positive(..., integer=True), so 2.0 is refused with a TypeError."""
    with pytest.raises(TypeError, match=rf"^{name} must be an integer, got 2\.0$"):
        TransMorph(**{name: 2.0})


def test_transmorph_bad_fixed_message_names_fixed():
    """A 2-D `fixed` is reported as 'fixed must have 4 dimensions, got shape (...)' (the name is passed)."""
    net = transmorph_mnist()
    with pytest.raises(ValueError, match=r"^fixed must have 4 dimensions, got shape \(32, 32\)$"):
        net(torch.rand(1, 1, 32, 32), torch.rand(32, 32))
    with pytest.raises(ValueError, match=r"^moving and fixed must have the same shape"):
        net(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 16, 16))


def test_transmorph_fine_skip_channels():
    """Fine skip features are max(head_channels, dim // 2**k), the finest one head_channels."""
    net = TransMorph(patch=8, dim=32, depths=(1,), heads=(1,), window=2, head_channels=2)
    assert [s.conv.out_channels for s in net.skips] == [16, 8, 2]
    odd = TransMorph(patch=4, dim=13, depths=(1,), heads=(1,), window=2, head_channels=2)
    assert [s.conv.out_channels for s in odd.skips] == [6, 2]
    assert all(isinstance(s.conv.out_channels, int) for s in odd.skips)
