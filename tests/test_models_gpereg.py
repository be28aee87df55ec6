"""GPEReg-Net: shapes, parameter count, what the appearance code can carry, the GPE window and
cache, the registered method, and a seeded smoke training that lowers the loss."""

import pytest
import torch

import regkit
from regkit import spatial
from regkit.models import gpereg
from regkit.models.blocks import count_parameters
from regkit.models.factorised import AppearanceEncoder
from regkit.models.gpe import GPE, FrameCache, sinusoidal_encoding
from regkit.models.gpereg import GPERegNet, GPERegObjective, UncertaintyWeighting

PARAM_TOL = 0.05  # parameter counts within 5% of the paper's




def small_net(**kw):
    """A narrow GPEReg-Net with the same structure, for fast tests."""
    return GPERegNet(scene_widths=(8, 8, 16, 16), appearance_widths=(8, 8, 8, 8), scene_channels=16, **kw)


def toy_pairs(n=8, size=32, seed=0):
    """Fixed = moving shifted by a few pixels and given another contrast; frames 0..n-1."""
    g = torch.Generator().manual_seed(seed)
    moving = spatial.resize_image(torch.rand(n, 1, 6, 6, generator=g), (size, size), mode="bicubic").clamp(0, 1)
    u = torch.zeros(n, 2, size, size)
    u[:, 0] = 2.0
    fixed = (0.3 + 0.6 * spatial.warp(moving, u)) ** 1.5
    return {"moving": moving, "fixed": fixed, "frame": torch.arange(n)}


# ------------------------------------------------------------------------------------- shapes


def test_shapes_and_range():
    torch.manual_seed(0)
    net = GPERegNet()
    m, f = torch.rand(2, 1, 40, 48), torch.rand(2, 1, 40, 48)
    parts = net.parts(m, f, frame=torch.tensor([0, 3]))
    assert parts["output"].shape == (2, 1, 40, 48)
    assert parts["scene"].shape == (2, 64, 40, 48)
    assert parts["code"].shape == (2, 32)
    res = net(m, f)
    assert isinstance(res, regkit.RegResult) and res.disp is None
    out = res.warped.detach()
    assert 0 <= float(out.min()) and float(out.max()) <= 1


def test_mixed_precision():
    """Under autocast the output image and the loss are float32; the GPE cache works in bf16."""
    torch.manual_seed(0)
    net, obj = small_net(), GPERegObjective()
    batch = toy_pairs(4, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _, res = obj(net, batch)
        net.eval()
        streamed = net(batch["moving"], batch["fixed"], frame=batch["frame"]).warped
    assert loss.dtype == res.warped.dtype == streamed.dtype == torch.float32
    assert net.gpe.cache.frames.tolist() == [0, 1, 2, 3][-net.gpe.window:]
    loss.backward()


def test_bad_inputs():
    net = small_net()
    x = torch.rand(2, 1, 16, 16)
    with pytest.raises(ValueError, match="frame"):
        net(x, x, frame=torch.tensor([0, -1]))
    with pytest.raises(ValueError, match="frame"):
        net(x, x, frame=torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="frame"):
        net(x, x, frame=torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="channel"):
        net(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="same shape"):
        net(x, torch.rand(2, 1, 16, 8))


# ---------------------------------------------------------------------------- parameter count


def test_parameter_count_near_paper():
    full = count_parameters(GPERegNet())
    assert abs(full / 1e6 - gpereg.PAPER_PARAMS_M) / gpereg.PAPER_PARAMS_M < PARAM_TOL
    no_gpe = count_parameters(GPERegNet(gpe=False))
    assert full - no_gpe == count_parameters(GPE())  # the ablation removes exactly the GPE module
    # the frame table grows with T; nothing else does
    assert count_parameters(GPERegNet(num_frames=160)) - full == 32 * 64


# ------------------------------------------------------------- the appearance code is global


def test_appearance_code_ignores_translation():
    """Exact (to float rounding) for content away from the borders shifted by a multiple of the
    encoder's total stride (16 px); the scene map, which is equivariant, changes completely."""
    torch.manual_seed(0)
    net = GPERegNet()
    img = torch.zeros(1, 1, 96, 96)
    img[..., 30:60, 35:55] = 0.8
    img[..., 40:50, 40:45] = 0.3
    moved = torch.roll(img, (16, 16), (2, 3))  # stays clear of the borders (31 px receptive field)
    with torch.no_grad():
        a0, a1 = net.appearance(img), net.appearance(moved)
        s0, s1 = net.scene(img), net.scene(moved)
    assert float((a0 - a1).norm() / a0.norm()) < 1e-5
    assert float((s0 - s1).norm() / s0.norm()) > 0.3


def test_appearance_code_sees_intensity():
    torch.manual_seed(0)
    enc = AppearanceEncoder()
    img = torch.rand(1, 1, 64, 64)
    assert not torch.allclose(enc(img), enc(0.5 * img + 0.3), atol=1e-6)


# ----------------------------------------------------------------------- GPE window and cache


def _gpe(window=2, num_frames=8):
    torch.manual_seed(0)
    return GPE(channels=16, num_frames=num_frames, window=window, heads=2, hidden=32)


def test_gpe_window_in_batch():
    """In training mode the frame at t attends to itself and to batch frames t-window..t-1 only."""
    gpe = _gpe(window=2).train()
    scene = torch.randn(6, 16, 4, 4)
    frames = torch.arange(6)
    base = gpe.context(scene, frames)
    for j in range(6):
        other = scene.clone()
        other[j] = torch.randn(16, 4, 4) * 3
        changed = (gpe.context(other, frames) - base).abs().amax(1) > 1e-6
        expected = torch.tensor([i == j or 0 < i - j <= 2 for i in range(6)])
        assert changed.tolist() == expected.tolist(), j
    assert len(gpe.cache) == 0  # training never touches the running cache
    gpe.eval()
    with torch.no_grad():
        gpe.context(torch.randn(3, 16, 4, 4), torch.tensor([10, 11, 12]))
    gpe.train()
    torch.testing.assert_close(gpe.context(scene, frames), base)  # nor reads it


def test_gpe_keeps_sequences_apart():
    """Frames of another sequence are never neighbours, in a batch or in the cache."""
    gpe = _gpe(window=2).train()
    scene = torch.randn(6, 16, 4, 4)
    frames = torch.tensor([0, 1, 2, 0, 1, 2])
    seqs = torch.tensor([7, 7, 7, 9, 9, 9])
    base = gpe.context(scene, frames, seqs)
    other = scene.clone()
    other[0] = torch.randn(16, 4, 4) * 3  # frame 0 of sequence 7
    changed = (gpe.context(other, frames, seqs) - base).abs().amax(1) > 1e-6
    assert changed.tolist() == [True, True, True, False, False, False]
    gpe.eval()
    with torch.no_grad():
        gpe.context(scene[:3], frames[:3], seqs[:3])  # stream sequence 7, then start sequence 9
        after = gpe.context(scene[3:5], frames[3:5], seqs[3:5])
        gpe.reset_cache()
        fresh = gpe.context(scene[3:5], frames[3:5], seqs[3:5])
    torch.testing.assert_close(after, fresh)
    assert gpe.cache.sequences.tolist() == [9, 9]


def test_sequence_ids():
    net = small_net().eval()
    x, y = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        a = net(x, y, frame=torch.tensor([0, 1]), sequence=["S01", "S01"]).warped
        net.reset_cache()
        b = net(x, y, frame=torch.tensor([0, 1]), sequence=torch.tensor([3, 3])).warped
    torch.testing.assert_close(a, b)  # the ids only group frames; their values do not matter
    with pytest.raises(ValueError, match="sequence"):
        net(x, y, frame=torch.tensor([0, 1]), sequence=torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="sequence"):
        net(x, y, sequence=["a"])


def test_gpe_sequence_start_attends_to_itself_only():
    gpe = _gpe(window=3).eval()
    alone = GPE(channels=16, num_frames=8, window=0, heads=2, hidden=32).eval()
    alone.load_state_dict(gpe.state_dict())
    scene = torch.randn(1, 16, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(gpe.context(scene, torch.tensor([0])), alone.context(scene, torch.tensor([0])))


def test_gpe_streaming_cache_matches_batch():
    """Frames fed one at a time in eval mode (neighbours from the cache) give what one batch gives."""
    gpe = _gpe(window=2).eval()
    scene = torch.randn(7, 16, 4, 4)
    frames = torch.arange(7)
    with torch.no_grad():
        batch = gpe.context(scene, frames)
        gpe.reset_cache()
        stream = torch.cat([gpe.context(scene[i : i + 1], frames[i : i + 1]) for i in range(7)])
    torch.testing.assert_close(stream, batch, atol=1e-5, rtol=1e-5)
    assert gpe.cache.frames.tolist() == [5, 6]  # bounded by the window


def test_gpe_new_sequence_resets_cache():
    gpe = _gpe(window=2).eval()
    with torch.no_grad():
        gpe.context(torch.randn(4, 16, 4, 4), torch.arange(4))
        assert gpe.cache.frames.tolist() == [2, 3]
        fresh = gpe.context(torch.ones(1, 16, 4, 4), torch.tensor([0]))
        assert gpe.cache.frames.tolist() == [0]
        gpe.reset_cache()
        torch.testing.assert_close(gpe.context(torch.ones(1, 16, 4, 4), torch.tensor([0])), fresh)


def test_gpe_past_frame_table():
    """Past T the learned row is clamped to T-1; the sinusoidal part keeps frames apart."""
    gpe = _gpe(window=2, num_frames=8).eval()
    late = torch.tensor([7, 8, 20, 1000])
    rows = gpe.learned_embedding(late)
    assert all(torch.equal(rows[i], rows[0]) for i in range(4))
    assert not torch.allclose(sinusoidal_encoding(late[:1], 16), sinusoidal_encoding(late[1:2], 16))
    scene = torch.randn(1, 16, 4, 4)
    with torch.no_grad():
        a = gpe.context(scene, torch.tensor([7]))
        b = gpe.context(scene, torch.tensor([1000]))
    assert torch.isfinite(b).all() and not torch.allclose(a, b)
    net = small_net(num_frames=4).eval()
    x = torch.rand(2, 1, 16, 16)
    assert torch.isfinite(net(x, x, frame=torch.tensor([50, 51])).warped).all()


def test_frame_cache_rules():
    c = FrameCache(3)
    c.update(torch.arange(10), torch.zeros(10, 4))
    assert c.frames.tolist() == [7, 8, 9]
    c.update(torch.tensor([15]), torch.zeros(1, 4))  # a jump: old frames fall out of the window
    assert c.frames.tolist() == [15]
    c.update(torch.tensor([2]), torch.zeros(1, 4))  # back to an earlier index: a new sequence
    assert c.frames.tolist() == [2]


def test_no_gpe_ablation_ignores_frame():
    torch.manual_seed(0)
    net = small_net(gpe=False)
    x, y = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    torch.testing.assert_close(net(x, y, frame=torch.tensor([0, 1])).warped, net(x, y, frame=torch.tensor([5, 9])).warped)


# ------------------------------------------------------------------------- registered method


def test_registered_method():
    net = small_net().train()
    x, y = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    res = regkit.register(x, y, method="gpereg", model=net, frame=torch.tensor([0, 1]))
    assert res.disp is None and res.warped.shape == x.shape and not res.warped.requires_grad
    assert net.training  # mode restored
    assert regkit.describe()["gpereg"]["kind"] == "learned"
    with pytest.raises(ValueError, match="trained GPERegNet"):
        regkit.register(x, y, method="gpereg")
    with pytest.raises(TypeError, match="GPERegNet"):
        regkit.register(x, y, method="gpereg", model=torch.nn.Linear(2, 2))


# --------------------------------------------------------------------------------- objective


def test_uncertainty_weighting():
    w = UncertaintyWeighting(2)
    with torch.no_grad():
        w.log_vars.copy_(torch.tensor([0.0, 1.0]))
    expected = 0.5 * 2.0 + 0.5 * torch.exp(torch.tensor(-1.0)) * 4.0 + 0.5
    torch.testing.assert_close(w(torch.tensor([2.0, 4.0])), expected)
    torch.testing.assert_close(w.relative_weights(), torch.tensor([1.0, float(torch.exp(torch.tensor(-1.0)))]))


def test_objective_terms():
    torch.manual_seed(0)
    net, obj = small_net(), GPERegObjective()
    loss, logs, res = obj(net, toy_pairs(4, 16))
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert set(logs) == {"loss", "rec", "fact", "lambda"} and logs["lambda"] == 1.0
    assert res.disp is None
    assert [n for n, _ in obj.named_parameters()] == ["weighting.log_vars"]
    loss.backward()
    assert obj.weighting.log_vars.grad is not None


def test_smoke_training_lowers_loss():
    from regkit.train import TensorPairs, TrainConfig, Trainer

    regkit.seed_everything(0)
    net, obj = small_net(), GPERegObjective()
    data = TensorPairs(**toy_pairs(8, 32))
    cfg = TrainConfig(epochs=6, batch_size=4, lr=3e-3, weight_decay=1e-5, grad_clip=1.0, progress=False,
                      log=False, seed=0, metrics=("mse", "ssim"))
    start = Trainer(net, obj, cfg, device="cpu").evaluate(data)
    history = Trainer(net, obj, cfg, device="cpu").fit(data, data)
    assert history[-1]["val_loss"] < start["val_loss"]
    assert history[-1]["val_mse"] < 0.5 * start["val_mse"]
    assert history[-1]["rec"] < history[0]["rec"]
    assert float(obj.weighting.log_vars.detach().abs().sum()) > 0  # the weights were learned


def test_checkpoint_path_as_model(tmp_path):
    from regkit.train import TensorPairs, TrainConfig, Trainer

    regkit.seed_everything(0)
    net = small_net(num_frames=8, window=2)
    cfg = TrainConfig(epochs=1, batch_size=4, steps_per_epoch=1, progress=False, log=False,
                      checkpoint_dir=str(tmp_path), metrics=("mse",))
    Trainer(net, GPERegObjective(), cfg, device="cpu").fit(TensorPairs(**toy_pairs(4, 16)))
    x, y = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    net.reset_cache()
    direct = regkit.register(x, y, method="gpereg", model=net, frame=torch.tensor([0, 1])).warped
    loaded = regkit.register(x, y, method="gpereg", model=str(tmp_path / "last.pt"), frame=torch.tensor([0, 1])).warped
    torch.testing.assert_close(loaded, direct)
