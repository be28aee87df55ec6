"""The learned models' forward passes, pinned by value.

Each model is built small (a forward pass takes milliseconds), run on seeded inputs, and a
fingerprint of every output (sum, sum of absolute values and five evenly spaced entries, in
float64) is compared with the one recorded in :data:`GOLDEN` (relative tolerance 1e-4: float32
convolutions on other CPUs differ by far less). Two fingerprints per model:

- ``init``: the default initialisation after ``torch.manual_seed(0)`` (pins the initialisers,
  e.g. the near-zero last layers, and the forward pass at the start of training);
- ``eval`` / ``train``: every parameter set to seeded values of a size that keeps activations
  around 1 (:func:`set_parameters`), so that no layer's output is hidden behind a zero-initialised
  one, in eval mode and then in train mode (batch statistics, the GPE's batch-only attention).

A deliberate change of a model moves these numbers: regenerate them with
``.venv/bin/python tests/test_models_values.py`` and say why in the commit. The models' errors
are checked with their exact messages below.
"""

from __future__ import annotations

import math

import pytest
import torch

from regkit.models.blocks import ConvBlock, as_model, count_parameters, crop_to, pad_to_multiple, run_model
from regkit.models.dirnet import DIRNet
from regkit.models.gpereg import GPERegNet, GPERegObjective, UncertaintyWeighting
from regkit.models.sasnet import SASNet, SASNetObjective
from regkit.models.transmorph import TransMorph
from regkit.models.voxelmorph import UNet, VoxelMorph

SMALL_GPE = dict(scene_widths=(4, 8, 8, 8), appearance_widths=(4, 4, 8, 8), decoder_widths=(8, 4), scene_channels=8,
                 code_dim=4, bottleneck=2, num_frames=4, window=2, heads=2)
SMALL_SAS = dict(scene_widths=(4, 8, 8, 8), appearance_widths=(4, 4, 8, 8), scene_channels=8, code_dim=4,
                 bottleneck=1, res_blocks=2, decoder_widths=(8, 4))
FACTORIES = {
    "dirnet": lambda: DIRNet(channels=8, pools=1),
    "voxelmorph": lambda: VoxelMorph(enc=(4, 8), dec=(8, 8, 4)),
    "voxelmorph_diff": lambda: VoxelMorph(enc=(4, 8), dec=(8, 8, 4), diffeomorphic=True, int_steps=2),
    "transmorph": lambda: TransMorph(patch=4, dim=8, depths=(2, 2), heads=(2, 4), window=2, head_channels=4),
    "gpereg": lambda: GPERegNet(**SMALL_GPE),
    "gpereg_no_gpe": lambda: GPERegNet(**{**SMALL_GPE, "gpe": False}),
    "sasnet": lambda: SASNet(**SMALL_SAS),
}
SIZES = {"dirnet": (12, 16), "voxelmorph": (10, 13), "voxelmorph_diff": (10, 13), "transmorph": (20, 13),
         "gpereg": (12, 16), "gpereg_no_gpe": (12, 16), "sasnet": (12, 16)}


def set_parameters(model: torch.nn.Module, seed: int = 1) -> None:
    """Every parameter, in name order, uniform in ``±1.5 / sqrt(fan_in)`` (1-D ones ``±1.5``)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            fan = p[0].numel() if p.ndim > 1 else 1
            p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) * (1.5 / math.sqrt(fan)))


def _inputs(name, n=3):
    g = torch.Generator().manual_seed(2)
    h, w = SIZES[name]
    return torch.rand(n, 1, h, w, generator=g), torch.rand(n, 1, h, w, generator=g)


def fingerprint(t: torch.Tensor) -> list[float]:
    t = t.detach().double().flatten()
    idx = torch.linspace(0, t.numel() - 1, 5).round().long()
    return [float(t.sum()), float(t.abs().sum()), *t[idx].tolist()]


def _outputs(name, model, moving, fixed):
    """Every output of one forward pass (and, for GPEReg-Net, of a second, streaming call)."""
    if name.startswith("gpereg"):
        parts = model.parts(moving, fixed, frame=torch.tensor([0, 1, 1]), sequence=[0, 0, "b"])
        out = {"output": parts["output"], "scene": parts["scene"], "code": parts["code"]}
        if not model.training:   # the next frames of the same sequences see the cached ones
            out["next"] = model.parts(moving, fixed, frame=torch.tensor([2, 3, 2]), sequence=[0, 0, "b"])["output"]
        return out
    if name == "sasnet":
        parts = model.parts(moving, fixed)
        return {"output": parts["output"], "scene": parts["scene"], "code": parts["code"]}
    res = model(moving, fixed)
    out = {"disp": res.disp, "warped": res.warped}
    out.update({k: v for k, v in res.extras.items() if torch.is_tensor(v)})
    return out


def run_case(name: str) -> dict[str, dict[str, list[float]]]:
    moving, fixed = _inputs(name)
    torch.manual_seed(0)
    model = FACTORIES[name]()
    model.eval()
    with torch.no_grad():
        result = {"init": {k: fingerprint(v) for k, v in _outputs(name, model, moving, fixed).items()}}
        set_parameters(model)
        if hasattr(model, "reset_cache"):
            model.reset_cache()
        result["eval"] = {k: fingerprint(v) for k, v in _outputs(name, model, moving, fixed).items()}
        model.train()
        result["train"] = {k: fingerprint(v) for k, v in _outputs(name, model, moving, fixed).items()}
    return result


def objectives() -> dict[str, list[float]]:
    """The two training objectives' losses and logs on a set-parameter small model."""
    out = {}
    for name, objective in (("gpereg", GPERegObjective()), ("sasnet", SASNetObjective(0.3, 0.2, 0.4))):
        moving, fixed = _inputs(name)
        model = FACTORIES[name]()
        set_parameters(model)
        set_parameters(objective, seed=3)
        batch = {"moving": moving, "fixed": fixed, "frame": torch.tensor([0, 1, 2]), "pair": [5, 5, 6]}
        loss, logs, res = objective(model, batch)
        out[name] = [float(loss.detach()), *[float(v) for _, v in sorted(logs.items())], *fingerprint(res.warped)]
    return out


def _close(got, want):
    return all(math.isclose(g, w, rel_tol=1e-4, abs_tol=1e-6) for g, w in zip(got, want)) and len(got) == len(want)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_forward_pass_by_value(name):
    got = run_case(name)
    want = GOLDEN[name]
    assert sorted(got) == sorted(want)
    for mode in want:
        assert sorted(got[mode]) == sorted(want[mode]), (mode, sorted(got[mode]))
        for key in want[mode]:
            assert _close(got[mode][key], want[mode][key]), (mode, key, got[mode][key], want[mode][key])


def test_objectives_by_value():
    got = objectives()
    for name, want in GOLDEN_OBJECTIVES.items():
        assert _close(got[name], want), (name, got[name], want)


class _NotRegResult(torch.nn.Module):
    def forward(self, moving, fixed):
        return moving


def _checkpoints(tmp_path):
    from regkit.checkpoint import save_checkpoint

    small = DIRNet(channels=4)
    save_checkpoint({"model": {}}, tmp_path / "noconf.pt")
    save_checkpoint({"model": small.state_dict(), "model_config": {"channels": 4},
                     "model_class": "regkit.models.voxelmorph.VoxelMorph"}, tmp_path / "other.pt")
    save_checkpoint({"model": small.state_dict(), "model_config": {"channels": 8},
                     "model_class": "regkit.models.dirnet.DIRNet"}, tmp_path / "nofit.pt")
    save_checkpoint({"model": small.state_dict(), "model_config": {"width": 8}}, tmp_path / "badkw.pt")
    save_checkpoint({"model": small.state_dict(), "model_config": {"channels": 4},
                     "model_class": "regkit.models.dirnet.DIRNet"}, tmp_path / "good.pt")
    return small


X16 = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(4))


def _errors():
    from regkit.models.factorised import AppearanceEncoder, SceneEncoder
    from regkit.models.gpe import GPE, FrameCache, frame_indices, sequence_ids, sinusoidal_encoding
    from regkit.models.transmorph import WindowAttention

    two = torch.rand(1, 2, 16, 16)
    tiny_tm = dict(patch=2, dim=8, depths=(2,), heads=(2,), window=2)
    return {
        "ConvBlock norm": (lambda: ConvBlock(1, 2, norm="group"), ValueError,
                           "norm must be None, 'batch' or 'instance', got 'group'"),
        "ConvBlock act": (lambda: ConvBlock(1, 2, act="tanh"), ValueError,
                          "act must be one of ['elu', 'gelu', 'leaky', 'relu'], got 'tanh'"),
        "DIRNet channels": (lambda: DIRNet(channels=0), ValueError, "channels must be positive, got 0"),
        "DIRNet convs_per_scale": (lambda: DIRNet(convs_per_scale=0), ValueError, "convs_per_scale must be positive, got 0"),
        "DIRNet in_channels": (lambda: DIRNet(in_channels=1.0), TypeError, "in_channels must be an integer, got 1.0"),
        "DIRNet pools": (lambda: DIRNet(pools=-1), ValueError, "pools must be non-negative, got -1"),
        "DIRNet pools float": (lambda: DIRNet(pools=1.0), TypeError, "pools must be an integer, got 1.0"),
        "DIRNet small": (lambda: DIRNet(channels=4)(torch.rand(1, 1, 15, 20), torch.rand(1, 1, 15, 20)), ValueError,
                         "moving and fixed must be at least 16x16 px for DIRNet with pools=2 (a control grid of at least "
                         "4x4), got 15x20"),
        "DIRNet narrow": (lambda: DIRNet(channels=4, pools=1)(torch.rand(1, 1, 9, 7), torch.rand(1, 1, 9, 7)), ValueError,
                          "moving and fixed must be at least 8x8 px for DIRNet with pools=1 (a control grid of at least "
                          "4x4), got 9x7"),
        # 4 * 2^pools, not 4 * 2 * pools (the two agree for pools 1 and 2)
        "DIRNet small, 3 pools": (lambda: DIRNet(channels=4, pools=3)(torch.rand(1, 1, 24, 32), torch.rand(1, 1, 24, 32)),
                                  ValueError, "moving and fixed must be at least 32x32 px for DIRNet with pools=3 (a "
                                  "control grid of at least 4x4), got 24x32"),
        "DIRNet small, no pool": (lambda: DIRNet(channels=4, pools=0)(torch.rand(1, 1, 3, 5), torch.rand(1, 1, 3, 5)),
                                  ValueError, "moving and fixed must be at least 4x4 px for DIRNet with pools=0 (a "
                                  "control grid of at least 4x4), got 3x5"),
        "DIRNet channels in": (lambda: DIRNet(channels=4)(two, two), ValueError,
                               "moving must have 1 channel(s), got shape (1, 2, 16, 16)"),
        "DIRNet moving": (lambda: DIRNet(channels=4)(torch.rand(16, 16), X16), ValueError,
                          "moving must have 4 dimensions, got shape (16, 16)"),
        "DIRNet fixed": (lambda: DIRNet(channels=4)(X16, torch.rand(16, 16)), ValueError,
                         "fixed must have 4 dimensions, got shape (16, 16)"),
        "VoxelMorph in_channels": (lambda: VoxelMorph(in_channels=0), ValueError, "in_channels must be positive, got 0"),
        "VoxelMorph int_steps": (lambda: VoxelMorph(int_steps=0), ValueError, "int_steps must be positive, got 0"),
        "UNet dec": (lambda: UNet(2, (4, 8, 8), (8, 8)), ValueError, "dec must have at least len(enc)=3 entries, got (8, 8)"),
        "VoxelMorph channels in": (lambda: VoxelMorph(enc=(4, 8), dec=(8, 8))(two, two), ValueError,
                                   "moving must have 1 channel(s), got shape (1, 2, 16, 16)"),
        "VoxelMorph small": (lambda: VoxelMorph(enc=(4, 8), dec=(8, 8))(torch.rand(1, 1, 3, 16), torch.rand(1, 1, 3, 16)),
                             ValueError, "moving and fixed must be at least 4 px per side, got (3, 16)"),
        "VoxelMorph moving": (lambda: VoxelMorph(enc=(4, 8), dec=(8, 8))(torch.rand(16, 16), X16), ValueError,
                              "moving must have 4 dimensions, got shape (16, 16)"),
        "VoxelMorph fixed": (lambda: VoxelMorph(enc=(4, 8), dec=(8, 8))(X16, torch.rand(16, 16)), ValueError,
                             "fixed must have 4 dimensions, got shape (16, 16)"),
        "VoxelMorph in_channels float": (lambda: VoxelMorph(in_channels=1.0), TypeError,
                                         "in_channels must be an integer, got 1.0"),
        "VoxelMorph int_steps float": (lambda: VoxelMorph(int_steps=7.0), TypeError, "int_steps must be an integer, got 7.0"),
        **{f"TransMorph {n}": ((lambda n=n: TransMorph(**{n: 0})), ValueError, f"{n} must be positive, got 0")
           for n in ("patch", "dim", "window", "head_channels", "in_channels")},
        "TransMorph patch power": (lambda: TransMorph(patch=3), ValueError, "patch must be a power of two, got 3"),
        "TransMorph depths": (lambda: TransMorph(depths=(2, 2), heads=(2,)), ValueError,
                              "depths and heads must have the same non-zero length, got (2, 2) and (2,)"),
        "TransMorph empty": (lambda: TransMorph(depths=(), heads=()), ValueError,
                             "depths and heads must have the same non-zero length, got () and ()"),
        "WindowAttention": (lambda: WindowAttention(6, 4, 2), ValueError, "dim (6) must be divisible by heads (4)"),
        "TransMorph channels in": (lambda: TransMorph(**tiny_tm)(torch.rand(1, 2, 8, 8), torch.rand(1, 2, 8, 8)),
                                   ValueError, "moving must have 1 channel(s), got shape (1, 2, 8, 8)"),
        "TransMorph moving": (lambda: TransMorph(**tiny_tm)(torch.rand(8, 8), torch.rand(1, 1, 8, 8)), ValueError,
                              "moving must have 4 dimensions, got shape (8, 8)"),
        "GPE num_frames": (lambda: GPE(8, num_frames=0), ValueError, "num_frames must be positive, got 0"),
        "GPE window": (lambda: GPE(8, window=-1), ValueError, "window must be non-negative, got -1"),
        "GPE heads": (lambda: GPE(8, heads=0), ValueError, "heads must be positive, got 0"),
        "GPE alpha": (lambda: GPE(8, alpha=-0.1), ValueError, "alpha must be non-negative, got -0.1"),
        "GPE divisible": (lambda: GPE(6, heads=4), ValueError, "channels (6) must be divisible by heads (4)"),
        "FrameCache window": (lambda: FrameCache(-1), ValueError, "window must be non-negative, got -1"),
        "sinusoidal dim": (lambda: sinusoidal_encoding(torch.tensor([0]), 3), ValueError, "dim must be even, got 3"),
        "frame bool": (lambda: frame_indices(True, 2, "cpu"), TypeError,
                       "frame must be an int or an integer tensor of shape (N,), got True"),
        "frame float": (lambda: frame_indices(torch.tensor([0.0, 1.0]), 2, "cpu"), TypeError,
                        "frame must be an int or an integer tensor of shape (N,), got tensor([0., 1.])"),
        "frame bool tensor": (lambda: frame_indices(torch.tensor([True, False]), 2, "cpu"), TypeError,
                              "frame must be an int or an integer tensor of shape (N,), got tensor([ True, False])"),
        "frame list": (lambda: frame_indices([0, 1], 2, "cpu"), TypeError,
                       "frame must be an int or an integer tensor of shape (N,), got [0, 1]"),
        "frame shape": (lambda: frame_indices(torch.tensor([0, 1, 2]), 2, "cpu"), ValueError,
                        "frame must have shape (2,), one index per pair, got (3,)"),
        "frame negative": (lambda: frame_indices(torch.tensor([0, -1]), 2, "cpu"), ValueError,
                           "frame indices must be non-negative, got [0, -1]"),
        "frame negative int": (lambda: frame_indices(-2, 2, "cpu"), ValueError,
                               "frame indices must be non-negative, got [-2, -2]"),
        "sequence float": (lambda: sequence_ids(torch.tensor([0.0, 1.0]), 2, "cpu"), ValueError,
                           "sequence must be an integer tensor of shape (2,), got torch.float32 (2,)"),
        "sequence bool": (lambda: sequence_ids(torch.tensor([True, False]), 2, "cpu"), ValueError,
                          "sequence must be an integer tensor of shape (2,), got torch.bool (2,)"),
        "sequence shape": (lambda: sequence_ids(torch.tensor([1, 2, 3]), 2, "cpu"), ValueError,
                           "sequence must be an integer tensor of shape (2,), got torch.int64 (3,)"),
        "sequence list": (lambda: sequence_ids([1], 2, "cpu"), ValueError,
                          "sequence must be None, an integer tensor of shape (2,) or a list of 2 ids, got [1]"),
        "sequence str": (lambda: sequence_ids("ab", 2, "cpu"), ValueError,
                         "sequence must be None, an integer tensor of shape (2,) or a list of 2 ids, got 'ab'"),
        "GPERegNet channels in": (lambda: GPERegNet(**SMALL_GPE)(two, two), ValueError,
                                  "moving must have 1 channel(s), got shape (1, 2, 16, 16)"),
        "GPERegNet small": (lambda: GPERegNet(**SMALL_GPE)(torch.rand(1, 1, 7, 16), torch.rand(1, 1, 7, 16)), ValueError,
                            "moving must be at least 9x9 pixels, got (7, 16)"),
        "GPERegNet fixed": (lambda: GPERegNet(**SMALL_GPE)(X16, torch.rand(16, 16)), ValueError,
                            "fixed must have 4 dimensions, got shape (16, 16)"),
        "GPERegNet moving": (lambda: GPERegNet(**SMALL_GPE)(torch.rand(7, 16), torch.rand(1, 1, 7, 16)), ValueError,
                             "moving must have 4 dimensions, got shape (7, 16)"),
        "SASNet channels in": (lambda: SASNet(**SMALL_SAS)(two, two), ValueError,
                               "moving must have 1 channel(s), got shape (1, 2, 16, 16)"),
        "SASNet small": (lambda: SASNet(**SMALL_SAS)(torch.rand(1, 1, 16, 7), torch.rand(1, 1, 16, 7)), ValueError,
                         "moving must be at least 9x9 pixels, got (16, 7)"),
        "SASNet moving": (lambda: SASNet(**SMALL_SAS)(torch.rand(16, 16), X16), ValueError,
                          "moving must have 4 dimensions, got shape (16, 16)"),
        "SASNet fixed": (lambda: SASNet(**SMALL_SAS)(X16, torch.rand(16, 16)), ValueError,
                         "fixed must have 4 dimensions, got shape (16, 16)"),
        **{f"SASNetObjective {n}": ((lambda n=n: SASNetObjective(**{n: -1.0})), ValueError,
                                    f"{n} must be non-negative, got -1.0")
           for n in ("scene_weight", "domain_weight", "cycle_weight")},
        "SceneEncoder widths": (lambda: SceneEncoder(1, (4, 8, 8)), ValueError,
                                "widths must give four encoding levels, got (4, 8, 8)"),
        "AppearanceEncoder widths": (lambda: AppearanceEncoder(1, (4, 8, 8)), ValueError,
                                     "widths must give four stride-2 convolutions, got (4, 8, 8)"),
        "as_model None": (lambda: as_model(None, DIRNet, "cpu"), ValueError,
                          "model must be a trained DIRNet, the name of a shipped model or the path of a checkpoint: "
                          "train one with regkit.train.Trainer(regkit.models.dirnet.DIRNet(...)).fit(...), then call "
                          "register(moving, fixed, method=..., model=trainer.model) or model='checkpoints/last.pt'"),
        "as_model type": (lambda: as_model(VoxelMorph(), DIRNet, "cpu"), TypeError,
                          "model must be a DIRNet (or a checkpoint path), got VoxelMorph"),
        "run_model device": (lambda: run_model(DIRNet(channels=4).to("meta"), DIRNet, X16, X16), ValueError,
                             "model is on meta but moving and fixed are on cpu; move one of them"),
        "run_model result": (lambda: run_model(_NotRegResult(), _NotRegResult, X16, X16), TypeError,
                             "_NotRegResult.forward returned Tensor, expected RegResult"),
    }


ERROR_CASES = list(_errors())


@pytest.mark.parametrize("case", ERROR_CASES)
def test_bad_input_message(case):
    call, error, message = _errors()[case]
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message


def test_checkpoint_paths_given_as_model(tmp_path):
    small = _checkpoints(tmp_path)
    cases = {
        "missing.pt": (FileNotFoundError, "is neither a checkpoint file nor a shipped model ("),
        "noconf.pt": (ValueError, "has no model_config; build the model and use regkit.checkpoint.load_model"),
        "other.pt": (ValueError, "holds a VoxelMorph, but this method needs a DIRNet"),
        "nofit.pt": (ValueError, "does not fit a DIRNet: Error(s) in loading state_dict for DIRNet:"),
        # (the constructor's own name in Python's message is left out: a mutation tool renames it)
        "badkw.pt": (ValueError, "does not fit a DIRNet: DIRNet.", "got an unexpected keyword argument 'width'"),
    }
    for name, (error, *words) in cases.items():
        with pytest.raises(error) as info:
            as_model(str(tmp_path / name), DIRNet, torch.device("cpu"))
        prefix = "checkpoint" if name == "noconf.pt" else "model"
        assert str(info.value).startswith(f"{prefix} {str(tmp_path / name)!r} "), name
        assert all(w in str(info.value) for w in words), name
    net = as_model(tmp_path / "good.pt", DIRNet, torch.device("cpu"))
    assert isinstance(net, DIRNet) and net.config["channels"] == 4
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), small.state_dict().values()))
    assert as_model(small, DIRNet, "cpu") is small


def test_run_model_evaluates_without_gradients_restores_the_mode_and_casts_inputs():
    net = DIRNet(channels=4)
    set_parameters(net)
    net.train()
    m = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    f = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    res = run_model(net, DIRNet, m, f)
    assert net.training                                   # mode restored
    assert res.warped.dtype == torch.float32 and res.disp.dtype == torch.float32
    assert not res.warped.requires_grad and not res.disp.requires_grad
    net.eval()
    with torch.no_grad():
        ref = net(m.float(), f.float())
    assert torch.allclose(res.disp, ref.disp) and torch.allclose(res.warped, ref.warped)
    assert torch.equal(res.extras["control"], ref.extras["control"])
    # keyword arguments that are None are not passed on (DIRNet takes none)
    assert torch.equal(run_model(net, DIRNet, m, f, frame=None).disp, res.disp)
    g = GPERegNet(**SMALL_GPE)
    out = run_model(g, GPERegNet, m[..., :12, :12], f[..., :12, :12], frame=torch.tensor([0, 1]), sequence=None)
    assert out.disp is None and out.warped.shape == (2, 1, 12, 12)


def test_blocks_helpers_by_value():
    x = torch.arange(6.0).view(1, 1, 2, 3)
    y, hw = pad_to_multiple(x, 4)
    assert hw == (2, 3) and y.shape == (1, 1, 4, 4)
    assert y[0, 0].tolist() == [[0, 1, 2, 2], [3, 4, 5, 5], [3, 4, 5, 5], [3, 4, 5, 5]]   # border replicated
    same, hw = pad_to_multiple(x, 1)
    assert same is x and hw == (2, 3)
    assert torch.equal(crop_to(y, hw), x)
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    net[0].weight.requires_grad_(False)
    assert count_parameters(net) == 2 + 2 + 1 and count_parameters(net, trainable_only=False) == 6 + 2 + 2 + 1
    block = ConvBlock(2, 3, kernel=5, stride=2, norm="batch", act="elu")
    assert block.conv.kernel_size == (5, 5) and block.conv.stride == (2, 2) and block.conv.padding == (2, 2)
    assert isinstance(block.norm, torch.nn.BatchNorm2d) and isinstance(block.act, torch.nn.ELU)
    default = ConvBlock(2, 3)
    assert isinstance(default.norm, torch.nn.Identity) and default.act.negative_slope == 0.2
    assert isinstance(ConvBlock(2, 3, norm="instance").norm, torch.nn.InstanceNorm2d)
    assert isinstance(ConvBlock(2, 3, act="relu").act, torch.nn.ReLU)
    assert isinstance(ConvBlock(2, 3, act="gelu").act, torch.nn.GELU)


def test_parameter_counts_of_the_default_models():
    """The sizes the book and the tables state (VoxelMorph-1 in 2D, the two TransMorphs, DIRNet)."""
    from regkit.models.transmorph import transmorph_256, transmorph_mnist

    assert count_parameters(VoxelMorph()) == 109170
    assert count_parameters(transmorph_mnist()) == 46870
    assert count_parameters(transmorph_256()) == 178058
    assert count_parameters(DIRNet()) == count_parameters(DIRNet(channels=32, pools=2, convs_per_scale=2))


def test_gpe_helpers_by_value():
    """``PE(t, 2i) = sin(t / 10000^(2i/d))``, ``PE(t, 2i+1) = cos(...)``: at t = 1, d = 4 the
    frequencies are 1 and 1/100. Frames and sequence ids become long tensors; names hash by CRC-32."""
    import zlib

    from regkit.models.gpe import frame_indices, sequence_ids, sinusoidal_encoding

    pe = sinusoidal_encoding(torch.tensor([0, 1, 3]), 4)
    want = torch.tensor([[0.0, 1.0, 0.0, 1.0],
                         [math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)],
                         [math.sin(3), math.cos(3), math.sin(0.03), math.cos(0.03)]])
    assert pe.dtype == torch.float32 and torch.allclose(pe, want, atol=1e-6)
    assert frame_indices(None, 3, "cpu").tolist() == [0, 0, 0]
    assert frame_indices(2, 3, "cpu").tolist() == [2, 2, 2]
    got = frame_indices(torch.tensor([1, 2], dtype=torch.int32), 2, "cpu")
    assert got.dtype == torch.long and got.tolist() == [1, 2]
    assert sequence_ids(None, 2, "cpu") is None
    ids = sequence_ids(["a", 7], 2, "cpu")
    assert ids.dtype == torch.long and ids.tolist() == [zlib.crc32(b"a"), 7]
    assert sequence_ids((True, "b"), 2, "cpu").tolist() == [zlib.crc32(b"True"), zlib.crc32(b"b")]
    seq = sequence_ids(torch.tensor([3, 4], dtype=torch.int16), 2, "cpu")
    assert seq.dtype == torch.long and seq.tolist() == [3, 4]


def test_uncertainty_weighting_by_hand():
    """``L = sum 1/2 e^(-s_i) L_i + 1/2 s_i``; with ``s = (0, ln 2)``: ``0.5 * 1 + 0.25 * 3 + 0.5 ln 2``;
    relative weights ``e^(s_0 - s_i) = (1, 1/2)``."""
    w = UncertaintyWeighting(2)
    with torch.no_grad():
        w.log_vars.copy_(torch.tensor([0.0, math.log(2)]))
    assert float(w(torch.tensor([1.0, 3.0])).detach()) == pytest.approx(0.5 + 0.75 + 0.5 * math.log(2), rel=1e-6)
    assert w.relative_weights().tolist() == pytest.approx([1.0, 0.5])


GOLDEN: dict = {
    'dirnet': {
        'eval': {
            'control': [-523.9526274, 523.9526274, -3.00757432, -0.8452036381, -0.6245438457, -2.556302547, -0.7227476835],
            'disp': [-2116.788331, 2116.788331, -2.854150534, -0.8407478929, -0.8055903912, -2.790221691, -0.8320248723],
            'warped': [281.2341815, 281.2341815, 0.6146950722, 0.08510008454, 0.4327550232, 0.4140083492, 0.7050904036],
        },
        'init': {
            'control': [0, 0, 0, 0, 0, 0, 0],
            'disp': [0, 0, 0, 0, 0, 0, 0],
            'warped': [279.758367, 279.758367, 0.6146950722, 0.494656384, 0.8892913461, 0.9318168163, 0.8154455423],
        },
        'train': {
            'control': [-415.4388804, 417.1458752, -2.944225788, -0.1812488139, 0.1023248434, -2.090683937, -0.5922427177],
            'disp': [-1593.129765, 1593.129765, -2.603609085, -0.3199542463, -0.4291465878, -2.062036037, -0.6169726253],
            'warped': [279.8969611, 279.8969611, 0.6146950722, 0.2564433217, 0.5686871409, 0.59217453, 0.5601968765],
        },
    },
    'voxelmorph': {
        'eval': {
            'disp': [186.8044749, 585.0462565, 1.169449568, -0.4227376878, -0.2545281351, 0.8703186512, -0.4097656012],
            'warped': [186.2301063, 186.2301063, 0.4244091511, 0.2417985946, 0.3673990667, 0.5226821303, 0.2675125599],
        },
        'init': {
            'disp': [0.000802635726, 0.001331305684, 1.1907415e-06, -3.342934463e-07, 1.314968699e-06, 1.225812071e-06, -4.510751239e-07],
            'warped': [187.5814124, 187.5814124, 0.6146956682, 0.1883557439, 0.3392194211, 0.5146930218, 0.3402212858],
        },
        'train': {
            'disp': [186.8044749, 585.0462565, 1.169449568, -0.4227376878, -0.2545281351, 0.8703186512, -0.4097656012],
            'warped': [186.2301063, 186.2301063, 0.4244091511, 0.2417985946, 0.3673990667, 0.5226821303, 0.2675125599],
        },
    },
    'voxelmorph_diff': {
        'eval': {
            'disp': [183.4920925, 585.1431874, 1.151212931, -0.467666626, -0.3747635186, 0.8755035996, -0.414390564],
            'velocity': [186.8044749, 585.0462565, 1.169449568, -0.4227376878, -0.2545281351, 0.8703186512, -0.4097656012],
            'warped': [185.9752198, 185.9752198, 0.4197387397, 0.2400192469, 0.3671004176, 0.5208172798, 0.2666918337],
        },
        'init': {
            'disp': [0.0008026353228, 0.001331303921, 1.190739454e-06, -3.342902914e-07, 1.314968245e-06, 1.225812412e-06, -4.510751239e-07],
            'velocity': [0.000802635726, 0.001331305684, 1.1907415e-06, -3.342934463e-07, 1.314968699e-06, 1.225812071e-06, -4.510751239e-07],
            'warped': [187.5814124, 187.5814124, 0.6146956682, 0.1883557439, 0.3392194211, 0.5146930218, 0.3402212858],
        },
        'train': {
            'disp': [183.4920925, 585.1431874, 1.151212931, -0.467666626, -0.3747635186, 0.8755035996, -0.414390564],
            'velocity': [186.8044749, 585.0462565, 1.169449568, -0.4227376878, -0.2545281351, 0.8703186512, -0.4097656012],
            'warped': [185.9752198, 185.9752198, 0.4197387397, 0.2400192469, 0.3671004176, 0.5208172798, 0.2666918337],
        },
    },
    'transmorph': {
        'eval': {
            'disp': [-156.3830645, 292.0377122, -0.08043269813, 0.05898591876, 0.2586312294, -0.09017586708, 0.2770069242],
            'warped': [377.9634761, 377.9634761, 0.6918050647, 0.2666775882, 0.4222978354, 0.743488133, 0.2348910421],
        },
        'init': {
            'disp': [-0.005013145119, 0.005040271792, 2.10746316e-06, -5.071685337e-06, -4.781977168e-06, -3.535604492e-06, -3.914652552e-06],
            'warped': [381.3974824, 381.3974824, 0.6146945953, 0.2600978911, 0.4135483503, 0.8194355369, 0.1496620327],
        },
        'train': {
            'disp': [-156.3830645, 292.0377122, -0.08043269813, 0.05898591876, 0.2586312294, -0.09017586708, 0.2770069242],
            'warped': [377.9634761, 377.9634761, 0.6918050647, 0.2666775882, 0.4222978354, 0.743488133, 0.2348910421],
        },
    },
    'gpereg': {
        'eval': {
            'code': [4.564375907, 10.12636301, -0.4922265112, 2.128774166, 0.3368882537, -0.5145949125, 2.118748188],
            'next': [235.0080478, 235.0080478, 0.2692551315, 0.2666793466, 0.3475482464, 0.4174964726, 0.5310313702],
            'output': [235.0278939, 235.0278939, 0.2707012892, 0.269795984, 0.3474099338, 0.4169563055, 0.5296654701],
            'scene': [892.1658898, 5070.528564, 1.360520363, -0.3882652223, 1.035646915, -1.734271526, -0.4161413312],
        },
        'init': {
            'code': [-0.2666954137, 0.8804012276, -0.03690322116, -0.1174084097, -0.03474671766, -0.03836581856, -0.117480278],
            'next': [284.5054251, 284.5054251, 0.5630705357, 0.4280214906, 0.4337644577, 0.4168497324, 0.4629663825],
            'output': [284.4923424, 284.4923424, 0.5620650053, 0.4269037247, 0.4339640737, 0.4186639488, 0.4628635645],
            'scene': [-820.8926465, 1802.645059, 0.05314812809, -0.05435590073, -0.7271479368, 0.575928688, -0.1157186776],
        },
        'train': {
            'code': [4.564375907, 10.12636301, -0.4922265112, 2.128774166, 0.3368882537, -0.5145949125, 2.118748188],
            'output': [235.0278939, 235.0278939, 0.2707012892, 0.269795984, 0.3474099338, 0.4169563055, 0.5296654701],
            'scene': [892.1658898, 5070.528564, 1.360520363, -0.3882652223, 1.035646915, -1.734271526, -0.4161413312],
        },
    },
    'gpereg_no_gpe': {
        'eval': {
            'code': [4.564375907, 10.12636301, -0.4922265112, 2.128774166, 0.3368882537, -0.5145949125, 2.118748188],
            'next': [233.8155544, 233.8155544, 0.4668625593, 0.4419020116, 0.3856988847, 0.4211597741, 0.4656630456],
            'output': [233.8155544, 233.8155544, 0.4668625593, 0.4419020116, 0.3856988847, 0.4211597741, 0.4656630456],
            'scene': [-1130.8078, 5796.937673, -3.196678638, -0.9983840585, 2.308403015, -2.151478291, 0.7463421822],
        },
        'init': {
            'code': [-0.2666954137, 0.8804012276, -0.03690322116, -0.1174084097, -0.03474671766, -0.03836581856, -0.117480278],
            'next': [254.9712724, 254.9712724, 0.3738167584, 0.4511891603, 0.4414480627, 0.45123896, 0.4184907675],
            'output': [254.9712724, 254.9712724, 0.3738167584, 0.4511891603, 0.4414480627, 0.45123896, 0.4184907675],
            'scene': [-820.8926465, 1802.645059, 0.05314812809, -0.05435590073, -0.7271479368, 0.575928688, -0.1157186776],
        },
        'train': {
            'code': [4.564375907, 10.12636301, -0.4922265112, 2.128774166, 0.3368882537, -0.5145949125, 2.118748188],
            'output': [233.8155544, 233.8155544, 0.4668625593, 0.4419020116, 0.3856988847, 0.4211597741, 0.4656630456],
            'scene': [-1130.8078, 5796.937673, -3.196678638, -0.9983840585, 2.308403015, -2.151478291, 0.7463421822],
        },
    },
    'sasnet': {
        'eval': {
            'code': [4.564375907, 10.12636301, -0.4922265112, 2.128774166, 0.3368882537, -0.5145949125, 2.118748188],
            'output': [234.8870014, 234.8870014, 0.3579632342, 0.3735227287, 0.3498281538, 0.2836615443, 0.3210796416],
            'scene': [1996.962229, 4443.446958, 0.1406222582, -0.9785164595, -1.102501154, 2.049097061, 0.7480804324],
        },
        'init': {
            'code': [-0.3569471054, 1.334981244, -0.05056680739, 0.1632470042, -0.2128500491, -0.05090612546, 0.1631613821],
            'output': [205.2472152, 205.2472152, 0.3833813369, 0.3581231534, 0.2737073004, 0.3620464802, 0.3719647229],
            'scene': [-634.3660623, 2023.749682, -0.3881562948, -0.6419539452, 0.2699339986, -0.1912994981, -1.086067796],
        },
        'train': {
            'code': [4.564375907, 10.12636301, -0.4922265112, 2.128774166, 0.3368882537, -0.5145949125, 2.118748188],
            'output': [234.8870014, 234.8870014, 0.3579632342, 0.3735227287, 0.3498281538, 0.2836615443, 0.3210796416],
            'scene': [1996.962229, 4443.446958, 0.1406222582, -0.9785164595, -1.102501154, 2.049097061, 0.7480804324],
        },
    },
}
GOLDEN_OBJECTIVES: dict = {
    'gpereg': [1.883216858, 1.613701701, 0.7379217148, 1.883216858, 0.2639774978, 235.0205664, 235.0205664, 0.2707012892, 0.269795984, 0.3474099338, 0.4174964726, 0.5310313702],
    'sasnet': [0.8137754202, 0.2639036179, 0.008983966894, 0.8137754202, 0.2675136328, 1.463011742, 234.8870014, 234.8870014, 0.3579632342, 0.3735227287, 0.3498281538, 0.2836615443, 0.3210796416],
}


if __name__ == "__main__":   # regenerate the recorded fingerprints
    import pprint

    torch.set_num_threads(1)
    pprint.pprint({name: run_case(name) for name in FACTORIES}, width=120)
    pprint.pprint(objectives(), width=120)


@pytest.mark.parametrize("name", [n for n in FACTORIES if n != "gpereg_no_gpe"])
def test_config_rebuilds_the_same_model(name):
    """``model.config`` holds the constructor arguments (checkpoints rebuild models from it): the
    rebuilt model has the same parameter names and shapes, and the same config."""
    model = FACTORIES[name]()
    clone = type(model)(**model.config)
    assert clone.config == model.config
    assert {k: v.shape for k, v in clone.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    defaults = type(model)()
    assert set(defaults.config) == set(model.config)


def test_voxelmorph_defaults_and_smallest_input():
    """VoxelMorph integrates in 7 steps by default, its U-Net takes the two images (2 channels), and
    an input of exactly 2^levels px per side is accepted (the bound is inclusive)."""
    assert VoxelMorph().int_steps == 7 and VoxelMorph().config["int_steps"] == 7
    assert UNet().down[0].conv.in_channels == 2
    net = VoxelMorph(enc=(4, 8), dec=(8, 8))
    assert net.multiple == 4 and net(torch.rand(1, 1, 4, 5), torch.rand(1, 1, 4, 5)).disp.shape == (1, 2, 4, 5)


def test_configs_by_value():
    assert DIRNet(channels=8, pools=1, convs_per_scale=3, in_channels=2).config == {
        "channels": 8, "pools": 1, "convs_per_scale": 3, "in_channels": 2}
    assert VoxelMorph(enc=(4, 8), dec=(8, 8, 4), diffeomorphic=True, int_steps=3, in_channels=2).config == {
        "enc": [4, 8], "dec": [8, 8, 4], "diffeomorphic": True, "int_steps": 3, "in_channels": 2}
    assert TransMorph(patch=2, dim=8, depths=(2,), heads=(2,), window=2, head_channels=5, in_channels=3).config == {
        "patch": 2, "dim": 8, "depths": [2], "heads": [2], "window": 2, "head_channels": 5, "in_channels": 3}
    assert GPERegNet(**SMALL_GPE).config == {"in_channels": 1, **{k: list(v) if isinstance(v, tuple) else v
                                                                     for k, v in SMALL_GPE.items()}, "gpe": True,
                                             "alpha": 0.1}
    assert SASNet(**SMALL_SAS).config == {"in_channels": 1, **{k: list(v) if isinstance(v, tuple) else v
                                                                for k, v in SMALL_SAS.items()}}


@pytest.mark.parametrize("method, name", [("dirnet", "dirnet"), ("voxelmorph", "voxelmorph"),
                                          ("transmorph", "transmorph"), ("gpereg", "gpereg"), ("sasnet", "sasnet")])
def test_registered_methods_run_the_given_model(method, name):
    """``regkit.register(..., method=..., model=net)`` is the model's no-grad eval forward, with
    float32 outputs; the deformation-free ones say so and return no field."""
    from regkit.registry import register

    net = FACTORIES[name]()
    set_parameters(net)
    moving, fixed = (x.clamp(0, 1) for x in _inputs(name, n=2))
    res = register(moving, fixed, method=method, model=net)
    net.eval()
    if hasattr(net, "reset_cache"):
        net.reset_cache()
    with torch.no_grad():
        ref = net(moving, fixed)
    assert torch.allclose(res.warped, ref.warped, atol=1e-6) and res.warped.dtype == torch.float32
    if ref.disp is None:
        assert res.disp is None and res.extras["deformation_free"] is True
    else:
        assert torch.allclose(res.disp, ref.disp, atol=1e-6) and "deformation_free" not in res.extras
    with pytest.raises(ValueError, match=f"^model must be a trained {type(net).__name__}, the name of a shipped model"):
        register(moving, fixed, method=method)
    with pytest.raises(TypeError) as info:
        register(moving, fixed, method=method, model=torch.nn.Linear(1, 1))
    assert str(info.value) == f"model must be a {type(net).__name__} (or a checkpoint path), got Linear"


def test_gpereg_method_passes_frames_and_sequences():
    from regkit.registry import register

    net = FACTORIES["gpereg"]()
    set_parameters(net)
    moving, fixed = _inputs("gpereg", n=3)
    frame, seq = torch.tensor([0, 1, 2]), [0, 0, 1]
    res = register(moving, fixed, method="gpereg", model=net, frame=frame, sequence=seq)
    net.eval()
    net.reset_cache()
    with torch.no_grad():
        ref = net(moving, fixed, frame=frame, sequence=seq)
        other = net(moving, fixed)
    assert torch.allclose(res.warped, ref.warped, atol=1e-6) and not torch.allclose(res.warped, other.warped, atol=1e-4)


def test_frame_cache_by_value():
    """Window 2. Frames 0-3 of sequence 7 keep 2 and 3 (within 2 of the newest); then frames 0
    and 1 of sequence 5 arrive: only the latest batch's sequences stay. Frame 1 of sequence 5
    again restarts it (1 <= the largest cached, 1). Entries come on the requested device and dtype."""
    from regkit.models.gpe import FrameCache

    c = FrameCache(2)
    assert len(c) == 0 and c.feats is None
    empty = c.entries(torch.zeros(3, 4, dtype=torch.float64))
    assert [t.shape for t in empty] == [(0,), (0,), (0, 4)] and empty[2].dtype == torch.float64
    feats = torch.arange(16.0).view(4, 4)
    c.update(torch.tensor([0, 1, 2, 3]), feats, torch.tensor([7, 7, 7, 7]))
    assert c.frames.tolist() == [2, 3] and c.sequences.tolist() == [7, 7] and torch.equal(c.feats, feats[2:])
    c.update(torch.tensor([0, 1]), -feats[:2], torch.tensor([5, 5]))
    assert c.frames.tolist() == [0, 1] and c.sequences.tolist() == [5, 5] and len(c) == 2
    c.update(torch.tensor([2]), feats[:1])                      # no sequences: sequence 0, a new one
    assert c.frames.tolist() == [2] and c.sequences.tolist() == [0]
    c.update(torch.tensor([3, 4]), feats[1:3], torch.tensor([0, 0]))
    assert c.frames.tolist() == [3, 4]                          # 2 dropped: more than 2 before 4
    c.update(torch.tensor([1]), feats[3:], torch.tensor([0]))   # 1 <= 4: sequence 0 restarts
    assert c.frames.tolist() == [1] and torch.equal(c.feats, feats[3:])
    f, s, x = c.entries(torch.zeros(1, 4, dtype=torch.float16))
    assert f.tolist() == [1] and s.tolist() == [0] and x.dtype == torch.float16
    c.restart(torch.tensor([5]), torch.tensor([9]))               # another sequence: nothing dropped
    assert len(c) == 1
    c.restart(torch.tensor([0]))
    assert len(c) == 0 and c.feats is not None and c.feats.shape == (0, 4)
    c.reset()
    assert len(c) == 0 and c.feats is None
    zero = FrameCache(0)
    zero.update(torch.tensor([0, 1]), feats[:2])
    assert zero.frames.tolist() == []                           # no window: nothing to keep


def test_gpe_learned_embedding_is_clamped_past_the_table_and_alpha_scales_the_context():
    from regkit.models.gpe import GPE

    gpe = GPE(channels=8, num_frames=4, window=1, heads=2, hidden=16, alpha=0.5)
    set_parameters(gpe)
    frames = torch.tensor([2, 3, 4, 9])
    emb = gpe.learned_embedding(frames)
    assert torch.equal(emb[1], emb[2]) and torch.equal(emb[1], emb[3]) and not torch.equal(emb[0], emb[1])
    scene = torch.rand(4, 8, 3, 3, generator=torch.Generator().manual_seed(1))
    gpe.eval()
    ctx = gpe.context(scene, frames)
    gpe.reset_cache()
    out = gpe(scene, frames)
    assert torch.allclose(out, scene + 0.5 * ctx[..., None, None], atol=1e-6)
    gpe.reset_cache()
    gpe.train()
    assert len(gpe.cache) == 0
    gpe(scene, frames)
    assert len(gpe.cache) == 0                                  # training never fills the cache
    gpe.eval()
    gpe(scene, frames)
    assert len(gpe.cache) > 0
    gpe.reset_cache()
    assert len(gpe.cache) == 0


def test_instance_norm_block_normalises_its_own_channels_without_warning():
    """Catches ``InstanceNorm2d`` built without the channel count (``num_features=None``), which
    warns on every forward that the input's channels do not match."""
    import warnings

    block = ConvBlock(2, 3, norm="instance")
    assert block.norm.num_features == 3 and not block.norm.affine
    x = torch.rand(2, 2, 6, 5, generator=torch.Generator().manual_seed(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = block(x)
    conv = block.conv(x)
    ref = (conv - conv.mean((2, 3), keepdim=True)) / torch.sqrt(conv.var((2, 3), unbiased=False, keepdim=True) + 1e-5)
    assert torch.allclose(y, torch.nn.functional.leaky_relu(ref, 0.2), atol=1e-5)


def test_upsample2_and_pad_to_multiple_take_the_last_two_dimensions():
    """Catches ``dim=2`` / ``shape[2:]`` for the last two axes (the same on ``N,C,H,W`` only) and
    padding skipped unless both H and W need it: on ``C,H,W`` and with one side already a multiple."""
    from regkit.models.blocks import upsample2

    x = torch.arange(6.0).view(1, 2, 3)
    assert upsample2(x).tolist() == [[[0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2], [3, 3, 4, 4, 5, 5], [3, 3, 4, 4, 5, 5]]]
    y, hw = pad_to_multiple(x, 4)                                # C,H,W: H and W padded
    assert hw == (2, 3) and y.tolist() == [[[0, 1, 2, 2], [3, 4, 5, 5], [3, 4, 5, 5], [3, 4, 5, 5]]]
    x4 = torch.arange(12.0).view(1, 1, 4, 3)
    y, hw = pad_to_multiple(x4, 2)                               # only W needs padding
    assert hw == (4, 3) and y[0, 0].tolist() == [[0, 1, 2, 2], [3, 4, 5, 5], [6, 7, 8, 8], [9, 10, 11, 11]]
    y, hw = pad_to_multiple(x4.transpose(-1, -2), 2)             # only H needs padding
    assert hw == (3, 4) and y.shape == (1, 1, 4, 4) and y[0, 0, 3].tolist() == [2, 5, 8, 11]


def test_run_model_names_moving_and_fixed_and_passes_params_through():
    """Catches the pair check naming the wrong arguments, and ``params`` of the model's result
    dropped by :func:`run_model`."""
    from regkit.registry import RegResult

    net = DIRNet(channels=4)
    cases = [((torch.rand(16, 16), X16), "moving must have 4 dimensions, got shape (16, 16)"),
             ((X16, torch.rand(16, 16)), "fixed must have 4 dimensions, got shape (16, 16)"),
             ((X16, X16[..., :8]), "moving and fixed must have the same shape, got (1, 1, 16, 16) and (1, 1, 16, 8)")]
    for (moving, fixed), message in cases:
        with pytest.raises(ValueError) as info:
            run_model(net, DIRNet, moving, fixed)
        assert str(info.value) == message

    class Affine(torch.nn.Module):
        def forward(self, moving, fixed):
            return RegResult(warped=moving.double(), disp=None, params=torch.eye(2, 3).expand(len(moving), 2, 3),
                             extras={"note": 1})

    res = run_model(Affine(), Affine, X16, X16)
    assert torch.equal(res.params, torch.eye(2, 3).expand(1, 2, 3)) and res.extras == {"note": 1}
    assert res.warped.dtype == torch.float32 and res.disp is None


def test_as_model_loads_a_shipped_name_with_its_weights_on_the_device():
    """Catches a shipped model's name not loaded (or loaded ignoring ``device``) by :func:`as_model`:
    the weights are those of ``pretrained(name)``, on the CPU or (shapes only) the meta device."""
    from regkit.models import pretrained

    ref = pretrained("dirnet-mnist")
    net = as_model("dirnet-mnist", DIRNet, torch.device("cpu"))
    assert isinstance(net, DIRNet) and net.state_dict().keys() == ref.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), ref.state_dict().values()))
    meta = as_model("dirnet-mnist", DIRNet, torch.device("meta"))
    assert {p.device.type for p in meta.parameters()} == {"meta"}
    with pytest.raises(TypeError) as info:
        as_model("dirnet-mnist", VoxelMorph, "cpu")
    assert str(info.value) == "model must be a VoxelMorph (or a checkpoint path), got DIRNet"


def test_checkpoint_class_names_without_a_dot_and_files_that_are_not_dicts(tmp_path):
    """Catches ``rsplit(...)[1]`` for the last dotted part (an IndexError for a class name or a
    module without a dot) and a checkpoint that is not a dict read with ``.get``."""
    from regkit.checkpoint import save_checkpoint

    small = DIRNet(channels=4)
    for stored in ("DIRNet", "VoxelMorph", "a.b.c.VoxelMorph"):
        save_checkpoint({"model": small.state_dict(), "model_config": {"channels": 4}, "model_class": stored},
                        tmp_path / f"{stored}.pt")
    assert isinstance(as_model(tmp_path / "DIRNet.pt", DIRNet, "cpu"), DIRNet)
    for stored in ("VoxelMorph", "a.b.c.VoxelMorph"):
        path = str(tmp_path / f"{stored}.pt")
        with pytest.raises(ValueError) as info:
            as_model(path, DIRNet, "cpu")
        assert str(info.value) == f"model {path!r} holds a VoxelMorph, but this method needs a DIRNet"
    for name, obj in (("tensor.pt", torch.ones(2)), ("list.pt", [1, 2])):
        torch.save(obj, tmp_path / name)
        with pytest.raises(ValueError) as info:
            as_model(tmp_path / name, DIRNet, "cpu")
        assert str(info.value) == (f"checkpoint {str(tmp_path / name)!r} has no model_config; build the model "
                                   "and use regkit.checkpoint.load_model")
    loose = type("Net", (torch.nn.Module,), {"__module__": "mynets"})    # a module name without a dot
    with pytest.raises(ValueError) as info:
        as_model(None, loose, "cpu")
    assert "train one with regkit.train.Trainer(regkit.models.mynets.Net(...)).fit(...)" in str(info.value)


def test_a_checkpoint_saved_on_a_gpu_loads_onto_the_requested_device(tmp_path, monkeypatch):
    """Catches the checkpoint loaded without ``map_location=device`` (in :func:`as_model` or
    :func:`run_model`): tensors recorded as on ``cuda:0`` load on the CPU on a machine without a GPU."""
    import torch.serialization
    from regkit.checkpoint import save_checkpoint

    small = DIRNet(channels=4)
    set_parameters(small)
    with monkeypatch.context() as m:
        m.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        save_checkpoint({"model": small.state_dict(), "model_config": {"channels": 4},
                         "model_class": "regkit.models.dirnet.DIRNet"}, tmp_path / "gpu.pt")
    net = as_model(tmp_path / "gpu.pt", DIRNet, torch.device("cpu"))
    assert {t.device.type for t in net.state_dict().values()} == {"cpu"}
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), small.state_dict().values()))
    res = run_model(str(tmp_path / "gpu.pt"), DIRNet, X16, X16)
    small.eval()
    with torch.no_grad():
        ref = small(X16, X16)
    assert torch.equal(res.disp, ref.disp) and res.disp.device.type == "cpu"


def test_factorised_parts_have_the_documented_defaults():
    """Catches a changed default of the scene encoder, appearance encoder or decoder (channels in and
    out, code length, bottleneck depth), or the stored sizes set to something else."""
    from regkit.models.factorised import AppearanceEncoder, ImageDecoder, SceneEncoder

    scene = SceneEncoder()
    assert scene.stem.conv.in_channels == 1 and scene.out_channels == 64 and scene.head.out_channels == 64
    assert len(scene.enc4) == 2  # the stride-2 block and one more bottleneck block
    assert SceneEncoder(widths=(4, 8, 8, 8), out_channels=6).out_channels == 6
    appearance = AppearanceEncoder()
    assert appearance.code_dim == 32 and appearance.fc[-1].out_features == 32
    assert AppearanceEncoder(widths=(4, 4, 4, 4), code_dim=5).code_dim == 5
    decoder = ImageDecoder()
    assert decoder.blocks[0].conv.in_channels == 64 and decoder.blocks[0].adain.affine.in_features == 32
    assert decoder.out.out_channels == 1


def test_instance_norms_of_the_factorised_parts_know_their_width():
    """Catches an instance norm built without its channel count (torch then warns on every call):
    a residual block and an AdaIN layer run without any warning and normalise per channel."""
    import warnings

    from regkit.models.factorised import AdaIN, ResBlock

    block, adain = ResBlock(3, 5), AdaIN(5, 4)
    assert block.norm2.num_features == 5 and adain.norm.num_features == 5 and not adain.norm.affine
    x = torch.rand(2, 3, 6, 7, generator=torch.Generator().manual_seed(0))
    code = torch.zeros(2, 4)
    torch.nn.init.zeros_(adain.affine.weight)
    torch.nn.init.zeros_(adain.affine.bias)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        block(x)
        y = adain(block.conv1(x), code)
    # with a zero code AdaIN is a plain instance norm: every channel has mean 0 and variance 1
    assert torch.allclose(y.mean(dim=(2, 3)), torch.zeros(2, 5), atol=1e-6)
    assert torch.allclose(y.var(dim=(2, 3), unbiased=False), torch.ones(2, 5), atol=1e-3)


def test_sasnet_defaults_channels_and_smallest_input():
    """Catches a changed default of SAS-Net's decoder (scene width 64, code 32, two AdaIN residual
    blocks, one output channel), an output channel count not following the input's, and a wrong
    size bound: 9 x 9 is the smallest input (its 1/8 scene level is 2 x 2), 8 x 8 is refused (1 x 1
    there, which instance normalisation cannot normalise)."""
    from regkit.models.sasnet import SASDecoder

    dec = SASDecoder()
    assert len(dec.res) == 2 and dec.res[0].conv1.in_channels == 64 and dec.blocks[0].adain.affine.in_features == 32
    assert dec.out.out_channels == 1 and len(SASNet().decoder.res) == 2
    two_channel = SASNet(**{**SMALL_SAS, "in_channels": 2})
    x = torch.rand(1, 2, 9, 9, generator=torch.Generator().manual_seed(0))
    assert two_channel.decoder.out.out_channels == 2 and two_channel(x, x).warped.shape == (1, 2, 9, 9)
    for net in (SASNet(**SMALL_SAS), GPERegNet(**SMALL_GPE)):
        assert net(x[:, :1], x[:, 1:]).warped.shape == (1, 1, 9, 9)
        with pytest.raises(ValueError, match=r"^moving must be at least 9x9 pixels, got \(8, 8\)$"):
            net(x[:, :1, :8, :8], x[:, 1:, :8, :8])


def test_gpereg_passes_its_settings_to_its_parts():
    """Catches GPEReg-Net dropping a constructor argument on the way to its parts (GPE window, heads
    and alpha; bottleneck depth; output channels) or a changed default window of 4 frames."""
    # (2 heads, not GPE's own default of 4, so that a dropped argument shows)
    net = GPERegNet(**{**SMALL_GPE, "window": 3, "heads": 2, "bottleneck": 3, "in_channels": 2}, alpha=0.3)
    assert net.gpe.window == 3 and net.gpe.attn.num_heads == 2 and net.gpe.alpha == 0.3
    assert len(net.scene.enc4) == 3 and net.decoder.out.out_channels == 2
    default = GPERegNet()
    assert default.gpe.window == 4 and default.gpe.cache.window == 4 and default.gpe.alpha == 0.1


def test_gpereg_uses_the_sequences_in_parts_and_in_its_objective():
    """Catches the sequence ids dropped by parts or by the objective (which reads 'sequence', else
    'pair'): in a training batch the context attends only within a sequence, so the ids change the
    output, and 'pair' stands in for a missing 'sequence'."""
    torch.manual_seed(0)
    net = GPERegNet(**SMALL_GPE, alpha=5.0).train()
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(4, 1, 16, 16, generator=g), torch.rand(4, 1, 16, 16, generator=g)
    frame = torch.tensor([0, 1, 2, 3])
    same, split = torch.zeros(4, dtype=torch.long), torch.tensor([0, 0, 1, 1])
    a, b = net.parts(x, y, frame, same)["output"], net.parts(x, y, frame, split)["output"]
    assert not torch.allclose(a, b, atol=1e-6)
    assert torch.equal(net.parts(x, y, frame, None)["output"], a)  # no ids: one sequence
    objective = GPERegObjective()
    base = {"moving": x, "fixed": y, "frame": frame}
    loss_seq = objective(net, {**base, "sequence": split})[0]
    loss_pair = objective(net, {**base, "pair": split})[0]
    loss_one = objective(net, base)[0]
    assert torch.equal(loss_seq, loss_pair) and not torch.equal(loss_seq, loss_one)
    assert torch.equal(objective(net, {**base, "sequence": split, "pair": same})[0], loss_seq)
