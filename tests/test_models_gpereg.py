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


# ---------------------------------------------------------------------- GPE parts, by value


def _closed_form_pe(frames, dim):
    """``PE(t, 2i) = sin(t / 10000^(2i/d))``, ``PE(t, 2i+1) = cos(...)``, in float64 by hand."""
    import math

    return torch.tensor([[(math.sin if c % 2 == 0 else math.cos)(t / 10000 ** ((c - c % 2) / dim)) for c in range(dim)]
                         for t in frames], dtype=torch.float64)


def test_sinusoidal_encoding_closed_form_whatever_the_defaults():
    """Catches the frequencies, the sin/cos channels or the output made in the default dtype or on the
    default device: float32 closed form values, the same bits under a float64 default dtype, and
    CPU values under a meta default device."""
    frames = torch.tensor([0, 1, 2, 5, 37, 1000])
    for dim in (2, 6, 8):
        pe = sinusoidal_encoding(frames, dim)
        assert pe.dtype == torch.float32 and pe.shape == (6, dim)
        torch.testing.assert_close(pe.double(), _closed_form_pe(frames.tolist(), dim), atol=2e-4, rtol=0)
        torch.testing.assert_close(pe[:5].double(), _closed_form_pe(frames[:5].tolist(), dim), atol=2e-6, rtol=0)
        old = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            wide = sinusoidal_encoding(frames, dim)
        finally:
            torch.set_default_dtype(old)
        assert wide.dtype == torch.float32 and torch.equal(wide, pe), dim
        with torch.device("meta"):
            cpu = sinusoidal_encoding(frames, dim)
        assert cpu.device.type == "cpu" and torch.equal(cpu, pe), dim


def test_frame_and_sequence_ids_by_hand_on_the_asked_device():
    """Catches ids left on their device or made on the default one, or an empty id list made float:
    the values, long dtype and device asked for, repeated and non-contiguous ids kept as given."""
    import zlib

    from regkit.models.gpe import frame_indices, sequence_ids

    for device in ("cpu", "meta"):
        for got in (frame_indices(None, 3, device), frame_indices(4, 3, device),
                    frame_indices(torch.tensor([5, 0, 5], dtype=torch.int32), 3, device),
                    sequence_ids(torch.tensor([9, 3, 9], dtype=torch.int16), 3, device),
                    sequence_ids(["b", 3, "b"], 3, device), sequence_ids([], 0, device)):
            assert got.dtype == torch.long and got.device.type == device
    assert frame_indices(None, 1, "cpu").tolist() == [0]
    assert frame_indices(7, 2, "cpu").tolist() == [7, 7]
    assert frame_indices(torch.tensor([5, 0, 5], dtype=torch.int32), 3, "cpu").tolist() == [5, 0, 5]
    assert sequence_ids(torch.tensor([9, 3, 9], dtype=torch.int16), 3, "cpu").tolist() == [9, 3, 9]
    assert sequence_ids(["b", 3, "b"], 3, "cpu").tolist() == [zlib.crc32(b"b"), 3, zlib.crc32(b"b")]
    assert sequence_ids([], 0, "cpu").shape == (0,)
    with torch.device("meta"):  # the device asked for, not the default one
        on_cpu = (frame_indices(None, 2, "cpu"), frame_indices(4, 2, "cpu"), sequence_ids(["a", "b"], 2, "cpu"))
        assert all(t.device.type == "cpu" for t in on_cpu)


def test_frame_cache_empty_state_and_bad_window():
    """Catches a fresh or reset cache with float or missing tensors, or a non-integer window let in:
    empty long frames and sequences, no features, and an exact TypeError for window=2.0."""
    c = FrameCache(2)
    for _ in range(2):
        assert c.frames.dtype == c.sequences.dtype == torch.long
        assert c.frames.shape == c.sequences.shape == (0,) and c.feats is None and len(c) == 0
        c.update(torch.tensor([0, 1]), torch.ones(2, 3))
        c.reset()
    with pytest.raises(TypeError, match=r"^window must be an integer, got 2\.0$"):
        FrameCache(2.0)


def test_frame_cache_entries_by_value():
    """Catches entries left on the CPU or in float32, empty entries of the wrong dtype, device or
    width, and an emptied cache (window 0) answering with its stale width."""
    like = torch.zeros(2, 5, dtype=torch.float64)
    c = FrameCache(2)
    for target in (like, torch.zeros(2, 5, dtype=torch.float64, device="meta")):
        f, s, x = c.entries(target)
        assert f.dtype == s.dtype == torch.long and f.shape == s.shape == (0,)
        assert x.dtype == torch.float64 and x.shape == (0, 5)
        assert f.device == s.device == x.device == target.device
    assert c.entries(torch.zeros(5))[2].shape == (0, 5)  # one feature vector as `like`
    feats = torch.arange(15.0).view(3, 5)
    c.update(torch.tensor([4, 5, 6]), feats, torch.tensor([1, 1, 1]))
    f, s, x = c.entries(like)
    assert f.tolist() == [5, 6] and s.tolist() == [1, 1] and x.dtype == torch.float64
    assert torch.equal(x, feats[1:].double())
    f, s, x = c.entries(like.to("meta"))
    assert f.device.type == s.device.type == x.device.type == "meta" and x.dtype == torch.float64
    empty = FrameCache(0)  # keeps nothing, but holds a (0, 4) feature tensor
    empty.update(torch.tensor([0, 1]), torch.zeros(2, 4))
    assert len(empty) == 0 and empty.entries(torch.zeros(1, 3))[2].shape == (0, 3)


def test_frame_cache_update_stores_detached_long_float32_cpu():
    """Catches an update that keeps the caller's integer dtypes, float64 features or the graph."""
    c = FrameCache(3)
    feats = torch.rand(2, 4, dtype=torch.float64, requires_grad=True)
    c.update(torch.tensor([2, 3], dtype=torch.int32), feats, torch.tensor([8, 8], dtype=torch.int16))
    assert c.frames.dtype == c.sequences.dtype == torch.long and c.feats.dtype == torch.float32
    assert c.frames.tolist() == [2, 3] and c.sequences.tolist() == [8, 8]
    assert not c.feats.requires_grad and torch.equal(c.feats, feats.detach().float())


def test_frame_cache_restarts_by_sequence():
    """Catches a restart that ignores the sequence ids, needs a strictly smaller frame (a repeated
    index restarts too), or forgets all but the last sequence restarting in one batch."""
    c = FrameCache(2)
    c.update(torch.tensor([0, 1, 2]), torch.zeros(3, 4), torch.tensor([7, 7, 7]))
    c.update(torch.tensor([0]), torch.ones(1, 4), torch.tensor([7]))  # sequence 7 starts again
    assert c.frames.tolist() == [0] and c.sequences.tolist() == [7] and c.feats.tolist() == [[1.0] * 4]
    c.update(torch.tensor([1, 2]), torch.zeros(2, 4), torch.tensor([7, 7]))
    c.update(torch.tensor([2]), torch.ones(1, 4), torch.tensor([7]))  # frame 2 again: a restart
    assert c.frames.tolist() == [2] and c.feats.tolist() == [[1.0] * 4]
    c = FrameCache(2)
    c.update(torch.tensor([0, 1, 0, 1]), torch.zeros(4, 4), torch.tensor([7, 7, 9, 9]))
    c.update(torch.tensor([0, 0]), torch.ones(2, 4), torch.tensor([7, 9]))  # both start again
    assert c.frames.tolist() == [0, 0] and c.sequences.tolist() == [7, 9]
    c = FrameCache(2)
    c.update(torch.tensor([3, 4, 1]), torch.zeros(3, 4), torch.tensor([7, 7, 9]))
    c.restart(torch.tensor([5, 0]), torch.tensor([9, 7]))  # 7 restarts (0 <= 4); 9 goes on (5 > 1)
    assert c.frames.tolist() == [1] and c.sequences.tolist() == [9]
    c.restart(torch.tensor([1]))  # no sequences: sequence 0, not cached here
    assert c.frames.tolist() == [1]
    c.restart(torch.tensor([1]), torch.tensor([9]))
    assert len(c) == 0 and c.feats.shape == (0, 4)


def test_gpe_defaults_are_the_documented_ones():
    """Catches a changed default (T = 128, window 4, 4 heads, hidden 128, alpha 0.1): a default GPE
    and one built with those values from the same seed give the same bits, streaming past frame T."""
    built = []
    for kw in ({}, dict(channels=64, num_frames=128, window=4, heads=4, hidden=128, alpha=0.1)):
        torch.manual_seed(3)
        built.append(GPE(**kw).eval())
    a, b = built
    assert (a.num_frames, a.window, a.alpha, a.attn.num_heads, a.cache.window) == (128, 4, 0.1, 4, 4)
    scene = torch.randn(8, 64, 2, 2, generator=torch.Generator().manual_seed(0))
    frames = torch.tensor([0, 1, 2, 3, 4, 5, 6, 130])
    with torch.no_grad():
        for gpe in (a, b):
            gpe.out = torch.cat([gpe(scene[:7], frames[:7]), gpe(scene[7:], frames[7:])])
    assert torch.equal(a.out, b.out) and a.cache.frames.tolist() == b.cache.frames.tolist() == [3, 4, 5, 6, 130][-1:]
    for name, value in (("num_frames", 8.0), ("window", 2.0), ("heads", 2.0)):
        with pytest.raises(TypeError, match=rf"^{name} must be an integer, got {value}$"):
            GPE(16, **{name: value})


def _hand_context(gpe, pooled, frames, seqs, keys, key_frames, key_seqs):
    """``g`` by hand in float64: per head softmax(q.k / sqrt(d_h)) over the allowed keys (the frame
    itself, the same sequence's frames 1..window before it), then the MLP."""
    import math

    d, h = gpe.channels, gpe.attn.num_heads
    dh = d // h
    w = gpe.attn.in_proj_weight.detach().double()
    bias = gpe.attn.in_proj_bias.detach().double()
    q = pooled.double() @ w[:d].T + bias[:d]
    k = keys.double() @ w[d:2 * d].T + bias[d:2 * d]
    v = keys.double() @ w[2 * d:].T + bias[2 * d:]
    rows = []
    for i in range(len(frames)):
        ok = [j == i or (key_seqs[j] == seqs[i] and 0 < frames[i] - key_frames[j] <= gpe.window)
              for j in range(len(key_frames))]
        heads = []
        for hd in range(h):
            sl = slice(hd * dh, (hd + 1) * dh)
            s = (k[:, sl] @ q[i, sl]) / math.sqrt(dh)
            s[~torch.tensor(ok)] = -math.inf
            heads.append(torch.softmax(s, 0) @ v[:, sl])
        rows.append(torch.cat(heads))
    att = torch.stack(rows) @ gpe.attn.out_proj.weight.detach().double().T + gpe.attn.out_proj.bias.detach().double()
    learned = gpe.embedding.weight.detach().double()[[min(f, gpe.num_frames - 1) for f in frames]]
    x = torch.cat((learned, _closed_form_pe(frames, d), att), 1)
    l1, l2 = gpe.mlp[0], gpe.mlp[2]
    x = torch.nn.functional.gelu(x @ l1.weight.detach().double().T + l1.bias.detach().double())
    return x @ l2.weight.detach().double().T + l2.bias.detach().double()


def test_gpe_context_is_the_hand_computed_attention():
    """Catches a wrong window mask (a repeated frame index attending to its twin, another sequence,
    a later frame), cached keys left out or stale, or a learned row not clamped past T: ``context``
    in a batch and then with cache entries matches the attention computed by hand."""
    torch.manual_seed(0)
    gpe = GPE(channels=8, num_frames=4, window=2, heads=2, hidden=16).train()
    gen = torch.Generator().manual_seed(1)
    scene = torch.randn(6, 8, 2, 3, generator=gen)
    frames, seqs = [0, 0, 1, 3, 2, 5], [1, 1, 1, 1, 2, 1]
    pooled = scene.mean(dim=(2, 3))
    got = gpe.context(scene, torch.tensor(frames), torch.tensor(seqs))
    want = _hand_context(gpe, pooled, frames, seqs, pooled, frames, seqs)
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)
    gpe.eval()
    first, second = torch.randn(3, 8, 2, 3, generator=gen), torch.randn(3, 8, 2, 3, generator=gen)
    with torch.no_grad():
        gpe.context(first, torch.tensor([0, 1, 2]), torch.tensor([5, 5, 5]))
        got = gpe.context(second, torch.tensor([3, 4, 1]), torch.tensor([5, 5, 6]))
    p1, p2 = first.mean(dim=(2, 3)), second.mean(dim=(2, 3))
    want = _hand_context(gpe, p2, [3, 4, 1], [5, 5, 6], torch.cat((p2, p1[1:])), [3, 4, 1, 1, 2], [5, 5, 6, 5, 5])
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)
    assert gpe.cache.frames.tolist() == [3, 4, 1] and gpe.cache.sequences.tolist() == [5, 5, 6]


def test_gpe_restart_of_a_named_sequence_drops_its_cache():
    """Catches the cache restart made without the sequence ids: a sequence fed again from frame 0
    gives what it gives on an empty cache, not attention to its stale frames."""
    gpe = _gpe(window=2).eval()
    seqs = torch.tensor([7, 7, 7, 7, 7])
    with torch.no_grad():
        gpe.context(torch.randn(5, 16, 4, 4), torch.arange(5), seqs)
        scene = torch.randn(5, 16, 4, 4)
        again = gpe.context(scene, torch.arange(5), seqs)
        gpe.reset_cache()
        fresh = gpe.context(scene, torch.arange(5), seqs)
    torch.testing.assert_close(again, fresh)


def test_gpe_forward_adds_alpha_times_context_with_the_sequences():
    """Catches forward dropping the sequence ids or the scale: ``scene + alpha * g`` with g broadcast
    over the pixels, g computed with the sequences given."""
    torch.manual_seed(0)
    gpe = GPE(channels=16, num_frames=8, window=2, heads=2, hidden=32, alpha=0.25).train()
    scene = torch.randn(2, 16, 3, 4)
    frames, seqs = torch.tensor([0, 1]), torch.tensor([7, 9])
    g = gpe.context(scene, frames, seqs)
    out = gpe(scene, frames, seqs)
    assert torch.equal(out, scene + 0.25 * g[:, :, None, None])
    assert not torch.allclose(out, gpe(scene, frames))  # frame 1 of sequence 9 does not see frame 0 of 7


def test_gpe_window_zero_never_fills_the_cache():
    """Catches the running cache used with window 0 (no neighbours to keep)."""
    gpe = GPE(channels=16, num_frames=8, window=0, heads=2, hidden=32).eval()
    with torch.no_grad():
        gpe.context(torch.randn(3, 16, 2, 2), torch.arange(3))
    assert gpe.cache.feats is None and len(gpe.cache) == 0


def test_gpe_in_bfloat16_stays_in_bfloat16():
    """Catches the sinusoidal code left in float32: a bfloat16 GPE on a bfloat16 scene (no autocast)
    runs and returns bfloat16."""
    gpe = _gpe(window=2).to(torch.bfloat16).eval()
    scene = torch.randn(3, 16, 2, 2).bfloat16()
    with torch.no_grad():
        for frames in (torch.tensor([0, 1, 2]), torch.tensor([3, 4, 9])):
            assert gpe.context(scene, frames).dtype == gpe(scene, frames).dtype == torch.bfloat16


def test_gpe_of_cpu_tensors_under_a_meta_default_device():
    """Catches a mask, drop list or encoding made on the default device: under a meta default device,
    CPU scenes stream through a GPE (train, then eval with its cache) to the same CPU values."""
    gpe = _gpe(window=2)
    scene, frames, seqs = torch.randn(4, 16, 2, 2), torch.tensor([0, 1, 2, 0]), torch.tensor([3, 3, 3, 4])
    later = torch.tensor([3, 4, 1, 0])  # sequence 4 restarts
    outs = []
    for meta in (False, True):
        gpe.train()
        gpe.reset_cache()
        with torch.no_grad(), (torch.device("meta") if meta else torch.device("cpu")):
            run = [gpe(scene, frames, seqs)]
            gpe.eval()
            run += [gpe(scene, frames, seqs), gpe(scene, later, seqs)]
        outs.append(run)
    for ref, got in zip(*outs):
        assert got.device.type == "cpu" and torch.equal(got, ref)
