"""AiR and MAPT-AiR: shapes, attention over the right axis, MAPT weights, a seeded smoke training."""

import pytest
import torch

import regkit
from regkit import spatial
from regkit.models.air import AiR, MAPTAiR, attention_image, build, patchify
from regkit.metrics import SMOOTH_DICE_SIGMA, smooth_dice


def _pair(n=2, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size, generator=g), torch.rand(n, 1, size, size, generator=g)


def _randomise_head(model):
    """The head starts near zero (near-identity field); give it weights of order one."""
    heads = [b.head for b in model.branches] if isinstance(model, MAPTAiR) else [model.head]
    g = torch.Generator().manual_seed(1)
    for head in heads:
        with torch.no_grad():
            head.weight.copy_(torch.randn(head.weight.shape, generator=g))
    return model.eval()


@pytest.mark.parametrize("size,patch", [(32, 2), (32, 4), (32, 8), (28, 7), (16, 4)])
def test_shapes_for_several_patch_sizes(size, patch):
    model = AiR(size=(size, size), patch_size=patch).eval()
    moving, fixed = _pair(3, size)
    res = model(moving, fixed, return_attention=True)
    g = size // patch
    assert res.warped.shape == (3, 1, size, size) and res.disp.shape == (3, 2, size, size)
    assert res.extras["coarse"].shape == (3, 2, g, g)
    for key in ("encoder", "decoder", "cross"):
        (w,) = res.extras["attention"][key]
        assert w.shape == (3, g * g, g * g)
        torch.testing.assert_close(w.sum(-1), torch.ones(3, g * g))


def test_training_starts_near_the_identity():
    """The head starts with small weights and a zero bias: fields of a few hundredths of a pixel."""
    moving, fixed = _pair(8)
    for name in ("air", "mapt_air"):
        regkit.seed_everything(0)
        with torch.no_grad():
            res = build(name).eval()(moving, fixed)
        assert 0 < float(res.disp.abs().max()) < 0.05                 # pixels
        torch.testing.assert_close(res.warped, moving, atol=0.05, rtol=0)   # noise images: |grad| <= 1


def test_dropout_acts_inside_the_blocks_not_on_the_embeddings():
    model = build("air")
    assert model.config["dropout"] == 0.5 and model.config["embed_dropout"] == 0.0
    assert model.drop.p == 0.0
    assert {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout) and m is not model.drop} == {0.5}
    assert AiR(size=(16, 16), patch_size=4, embed_dropout=0.1).drop.p == 0.1


def test_coarse_field_is_upsampled_in_pixels():
    model = _randomise_head(AiR(size=(32, 32), patch_size=8))
    res = model(*_pair())
    torch.testing.assert_close(res.disp, spatial.resize_disp(res.extras["coarse"], (32, 32)))
    torch.testing.assert_close(res.warped, spatial.warp(_pair()[0], res.disp))


def test_patchify_is_row_major():
    x = torch.arange(2 * 16.0).reshape(1, 2, 4, 4)
    p = patchify(x, 2)
    assert p.shape == (1, 4, 8)
    assert p[0, 1].tolist() == [2.0, 3.0, 6.0, 7.0, 18.0, 19.0, 22.0, 23.0]


def test_attention_image_paints_one_query_row():
    model = _randomise_head(AiR(size=(16, 16), patch_size=4))
    res = model(*_pair(1, 16), return_attention=True)
    cross = res.extras["attention"]["cross"][0]
    img = attention_image(cross, (1, 2), 4, (16, 16))
    assert img.shape == (1, 1, 16, 16)
    torch.testing.assert_close(img[0, 0, ::4, ::4].flatten(), cross[0, 6])
    with pytest.raises(ValueError, match="query"):
        attention_image(cross, 16, 4, (16, 16))


# -- attention over the right axis ----------------------------------------------------------------


def _token_depends_on_other_patches(model, patch=8, size=32):
    """Does the field at pixel (0, 0) (the vector of patch (0, 0)) depend on the pixels of other patches?"""
    moving, fixed = _pair(2, size)
    moving.requires_grad_(True)
    fixed.requires_grad_(True)
    model(moving, fixed).disp[0, :, 0, 0].sum().backward()
    outside = torch.ones(size, size, dtype=torch.bool)
    outside[:patch, :patch] = False
    return bool(moving.grad[0, 0][outside].abs().max() > 0), bool(fixed.grad[0, 0][outside].abs().max() > 0)


def _pairs_are_independent(model, size=32):
    """Is pair 0's output unchanged when pair 1 of the batch changes?"""
    moving, fixed = _pair(2, size)
    other = moving.clone()
    other[1] = torch.rand(1, size, size, generator=torch.Generator().manual_seed(7))
    a = model(moving, fixed).disp[0]
    b = model(other, fixed).disp[0]
    return torch.allclose(a, b, atol=1e-6)


def test_every_token_attends_across_patches_not_across_the_batch():
    model = _randomise_head(AiR(size=(32, 32), patch_size=8, dropout=0.0))
    assert _token_depends_on_other_patches(model) == (True, True)  # decoder self- and cross-attention
    assert _pairs_are_independent(model)


def test_the_same_checks_catch_attention_over_the_batch_axis():
    """The pitfall trains and gives plausible numbers; these two checks tell it apart."""
    model = _randomise_head(AiR(size=(32, 32), patch_size=8, dropout=0.0, attention_axis="batch"))
    assert _token_depends_on_other_patches(model) == (False, False)
    assert not _pairs_are_independent(model)


def test_mapt_branches_attend_across_patches():
    model = _randomise_head(MAPTAiR(size=(32, 32), patch_sizes=(4, 8), dropout=0.0))
    assert _token_depends_on_other_patches(model, patch=8) == (True, True)
    assert _pairs_are_independent(model)


# -- MAPT -----------------------------------------------------------------------------------------


def test_mapt_weights_are_normalised_and_combine_the_branches():
    model = _randomise_head(MAPTAiR(size=(32, 32), patch_sizes=(2, 4, 8)))
    with torch.no_grad():
        model.weight_logits.copy_(torch.tensor([3.0, -1.0, 0.5]))
    w = model.weights
    assert bool((w > 0).all())
    torch.testing.assert_close(w.sum(), torch.tensor(1.0))
    res = model(*_pair())
    torch.testing.assert_close(res.extras["weights"], w.detach())
    assert [c.shape[-1] for c in res.extras["coarse"]] == [16, 8, 4]
    combined = sum(wk * uk for wk, uk in zip(w, res.extras["branch_disp"]))
    torch.testing.assert_close(res.disp, combined)


def test_mapt_weights_get_gradients():
    model = _randomise_head(MAPTAiR(size=(16, 16), patch_sizes=(2, 4), dropout=0.0)).train()
    moving, fixed = _pair(2, 16)
    res = model(moving, fixed)
    ((res.warped - fixed) ** 2).mean().backward()
    assert model.weight_logits.grad is not None and bool(model.weight_logits.grad.abs().sum() > 0)


# -- protocol and errors --------------------------------------------------------------------------


def test_registered_methods_run_a_given_model_in_eval_mode():
    assert {"air", "mapt_air"} <= set(regkit.methods("learned"))
    model = _randomise_head(AiR(size=(32, 32), patch_size=8)).train()
    moving, fixed = _pair()
    res = regkit.register(moving, fixed, method="air", model=model)
    assert model.training  # restored
    with torch.no_grad():  # the same attention kernels as register() (no-grad fast path)
        expected = model.eval()(moving, fixed).disp
    torch.testing.assert_close(res.disp, expected, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="trained MAPTAiR"):
        regkit.register(moving, fixed, method="mapt_air")
    with pytest.raises(TypeError, match="MAPTAiR"):
        regkit.register(moving, fixed, method="mapt_air", model=model)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="patch_size"):
        AiR(size=(32, 32), patch_size=5)
    with pytest.raises(ValueError, match="at least 2 x 2"):
        AiR(size=(32, 32), patch_size=32)
    with pytest.raises(ValueError, match="heads"):
        AiR(dim=10, heads=4)
    with pytest.raises(ValueError, match="attention_axis"):
        AiR(attention_axis="channels")
    with pytest.raises(ValueError, match="embed_dropout"):
        AiR(embed_dropout=1.0)
    with pytest.raises(ValueError, match="patch_sizes"):
        MAPTAiR(patch_sizes=(4, 4))
    with pytest.raises(ValueError, match=r"\(N, 1, 32, 32\)"):
        AiR(size=(32, 32), patch_size=8)(*_pair(1, 28))
    with pytest.raises(ValueError, match="name"):
        build("vit")


# -- Smooth Dice ----------------------------------------------------------------------------------


def test_smooth_dice_properties():
    x = torch.zeros(2, 1, 24, 24)
    x[:, :, 8:16, 10:12] = 1.0  # a vertical stroke
    torch.testing.assert_close(smooth_dice(x, x), torch.ones(2))
    shifted = [smooth_dice(x, x.roll(s, -1))[0].item() for s in (1, 2, 4)]
    assert shifted[0] > shifted[1] > shifted[2] > 0
    assert smooth_dice(x, x.roll(2, -1), sigma=0.0)[0].item() == 0.0  # no blur: disjoint strokes
    torch.testing.assert_close(smooth_dice(x, 0.5 * x), smooth_dice(0.5 * x, x))
    torch.testing.assert_close(smooth_dice(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8)), torch.ones(1))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    torch.testing.assert_close(smooth_dice(x, x.roll(2, -1)), smooth_dice(padded, padded.roll(2, -1)))
    assert SMOOTH_DICE_SIGMA == 1.5
    with pytest.raises(ValueError, match="sigma"):
        smooth_dice(x, x, sigma=-1.0)


# -- training -------------------------------------------------------------------------------------


def test_seeded_smoke_training_lowers_the_loss():
    from regkit.train import RegistrationObjective, TrainConfig, Trainer

    g = regkit.seed_everything(0)
    fixed = torch.zeros(32, 1, 16, 16)
    for i in range(32):  # bright squares at random places, all moved by the same sub-pixel shift
        r, c = torch.randint(3, 8, (2,), generator=g).tolist()
        fixed[i, 0, r : r + 6, c : c + 6] = 1.0
    shift = torch.tensor([1.5, -1.0]).view(1, 2, 1, 1).expand(32, 2, 16, 16)
    moving = spatial.warp(fixed, -shift)
    data = {"moving": moving, "fixed": fixed}
    regkit.seed_everything(0)
    model = MAPTAiR(size=(16, 16), patch_sizes=(4, 8), dropout=0.0)
    cfg = TrainConfig(epochs=5, batch_size=16, lr=3e-3, scheduler="none", progress=False, log=False,
                      metrics=("mse",), seed=0)
    trainer = Trainer(model, RegistrationObjective("mse", "diffusion", weight=0.01), cfg, device="cpu")
    before = trainer.evaluate(data)["val_mse"]
    history = trainer.fit(data, data)
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["val_mse"] < 0.3 * before


# -- exact argument checks, defaults and small hand computations -----------------------------------


def _raises(exc, msg, fn, *args, **kwargs):
    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    assert type(info.value) is exc
    assert str(info.value) == msg


@pytest.mark.parametrize("name", ["patch_size", "dim", "heads", "depth", "channels", "mlp_ratio"])
def test_integer_arguments_reject_floats_and_zero_with_exact_messages(name):
    """Catches a check that drops integer=True or names the wrong argument."""
    base = dict(size=(8, 8), patch_size=2, dim=8, heads=2)
    _raises(TypeError, f"{name} must be an integer, got 2.0", AiR, **{**base, name: 2.0})
    _raises(ValueError, f"{name} must be positive, got 0", AiR, **{**base, name: 0})


def test_dropout_and_size_messages_are_exact():
    """Catches a dropout/embed_dropout/size check naming the wrong argument."""
    _raises(ValueError, "dropout must be non-negative, got -0.1", AiR, size=(8, 8), dropout=-0.1)
    _raises(ValueError, "embed_dropout must be non-negative, got -0.1", AiR, size=(8, 8), embed_dropout=-0.1)
    _raises(TypeError, "size must be a pair of integers (H, W), got (8,)", AiR, size=(8,))


def test_divisibility_and_grid_checks_test_each_side():
    """Catches 'or' turned into 'and' in the divisibility and two-patches-per-side checks."""
    _raises(ValueError, "size (8, 6) must be divisible by patch_size=4", AiR, size=(8, 6), patch_size=4)
    _raises(ValueError, "size (6, 8) must be divisible by patch_size=4", AiR, size=(6, 8), patch_size=4)
    _raises(ValueError, "patch_size=4 must leave at least 2 x 2 patches of size (4, 8)", AiR, size=(4, 8), patch_size=4)
    _raises(ValueError, "patch_size=4 must leave at least 2 x 2 patches of size (8, 4)", AiR, size=(8, 4), patch_size=4)
    m = AiR(size=(6, 4), patch_size=2, dim=4, heads=1)  # smallest valid grid side (2) and odd grid (3)
    assert m.grid == (3, 2)


def test_default_config_and_shapes_are_pinned():
    """Catches changed defaults (mlp_ratio 4, ...), wrong config keys and mis-sized position embeddings."""
    torch.manual_seed(0)
    a = AiR()
    torch.manual_seed(0)
    b = AiR(size=(32, 32), patch_size=2, channels=1, dim=16, heads=4, depth=1, dropout=0.5, mlp_ratio=4,
            attention_axis="patches", embed_dropout=0.0)
    assert a.config == b.config == dict(size=[32, 32], patch_size=2, channels=1, dim=16, heads=4, depth=1,
                                        dropout=0.5, mlp_ratio=4, attention_axis="patches", embed_dropout=0.0)
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb and torch.equal(pa, pb)
    assert a.encoder[0].ffn[0].out_features == 64
    assert a.attention_axis == "patches" and a.encoder[0].attn.axis == "patches"
    m = AiR(size=(4, 8), patch_size=2, dim=4, heads=1, mlp_ratio=3, channels=2)
    assert m.config["mlp_ratio"] == 3 and m.config["channels"] == 2 and m.config["size"] == [4, 8]
    assert m.pos_fixed.shape == (1, 8, 4) and m.pos_moving.shape == (1, 8, 4)
    assert m.embed_fixed.in_features == 8
    assert float(a.pos_fixed.detach().abs().max()) < 0.2 and float(a.pos_moving.detach().abs().max()) < 0.2


def test_feed_forward_layers_are_linear_relu_dropout_linear():
    """Catches a feed-forward layer missing its ReLU or its Dropout."""
    ffn = AiR(size=(8, 8), dim=8, heads=2, dropout=0.25).encoder[0].ffn
    assert [type(m) for m in ffn] == [torch.nn.Linear, torch.nn.ReLU, torch.nn.Dropout, torch.nn.Linear]
    assert ffn[2].p == 0.25


def test_input_check_messages_name_moving_and_fixed():
    """Catches check_pair called with the wrong names and the shape message using size[1] twice."""
    m = AiR(size=(4, 6), patch_size=2, dim=4, heads=1)
    x = torch.rand(1, 1, 4, 6)
    _raises(TypeError, "moving must be a torch.Tensor, got str", m, "x", x)
    _raises(TypeError, "fixed must be a torch.Tensor, got str", m, x, "x")
    _raises(ValueError, "moving and fixed must have shape (N, 1, 4, 6) for this model, got (1, 1, 4, 4)",
            m, torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 4))


def test_residual_blocks_add_their_branches():
    """Catches a residual connection that subtracts the attention or feed-forward output."""
    from regkit.models.air import _DecoderBlock, _EncoderBlock

    torch.manual_seed(0)
    x, mem = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
    enc = _EncoderBlock(4, 1, 8, 0.0, "patches").eval()
    dec = _DecoderBlock(4, 1, 8, 0.0, "patches").eval()
    with torch.no_grad():
        for attn, c in ((enc.attn, 1.0), (dec.self_attn, 1.0), (dec.cross_attn, 10.0)):
            attn.mha.out_proj.weight.zero_()
            attn.mha.out_proj.bias.fill_(c)
        for ffn in (enc.ffn, dec.ffn):
            ffn[3].weight.zero_()
            ffn[3].bias.fill_(100.0)
        y, _ = enc(x, False)
        torch.testing.assert_close(y, x + 101.0)
        y, _, _ = dec(x, mem, False)
        torch.testing.assert_close(y, x + 111.0)


def test_position_embeddings_are_added_to_patch_embeddings():
    """Catches position embeddings subtracted from the patch embeddings."""
    torch.manual_seed(0)
    m = AiR(size=(4, 4), patch_size=2, dim=4, heads=1, dropout=0.0).eval()
    with torch.no_grad():
        m.head.weight.normal_()
    mov, fix = torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 4)
    c = torch.randn(4)
    for pos, emb in (("pos_fixed", m.embed_fixed), ("pos_moving", m.embed_moving)):
        with torch.no_grad():
            getattr(m, pos).add_(c)
            a = m.coarse_field(mov, fix)[0]
            getattr(m, pos).sub_(c)
            emb.bias.add_(c)
            b = m.coarse_field(mov, fix)[0]
            emb.bias.sub_(c)
        torch.testing.assert_close(a, b)


def test_attention_is_returned_only_when_asked():
    """Catches return_attention defaulting to True or ignored in coarse_field/forward/MAPTAiR."""
    torch.manual_seed(0)
    m = AiR(size=(4, 4), patch_size=2, dim=4, heads=1).eval()
    x = torch.rand(2, 1, 4, 4)
    assert m.coarse_field(x, x)[1] == {}
    assert "attention" not in m(x, x).extras
    assert m(x, x, return_attention=True).extras["attention"]["cross"][0].shape == (2, 4, 4)
    mp = MAPTAiR(size=(8, 8), patch_sizes=(2, 4), dim=4, heads=1).eval()
    y = torch.rand(2, 1, 8, 8)
    assert "attention" not in mp(y, y).extras
    att = mp(y, y, return_attention=True).extras["attention"]
    assert [a["cross"][0].shape for a in att] == [(2, 16, 16), (2, 4, 4)]


def test_mapt_with_one_branch_and_kwargs():
    """Catches rejecting a single patch size, dropping **kwargs, or indexing branch 1."""
    torch.manual_seed(0)
    m = MAPTAiR(size=(8, 8), patch_sizes=[4], dim=8, heads=2, channels=2).eval()
    assert m.patch_sizes == (4,) and m.size == (8, 8) and m.channels == 2
    assert m.config == dict(size=[8, 8], channels=2, dim=8, heads=2, depth=1, dropout=0.5, mlp_ratio=4,
                            attention_axis="patches", embed_dropout=0.0, patch_sizes=[4])
    x = torch.rand(1, 2, 8, 8)
    res = m(x, x, return_attention=True)
    assert res.extras["coarse"][0].shape == (1, 2, 2, 2)
    assert res.extras["attention"][0]["encoder"][0].shape == (1, 4, 4)
    _raises(ValueError, "patch_sizes must be distinct and non-empty, got ()", MAPTAiR, size=(8, 8), patch_sizes=())


def test_registered_methods_pass_fixed_and_kwargs():
    """Catches the registered air/mapt_air wrappers dropping fixed or keyword arguments."""
    torch.manual_seed(0)
    x, y = torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8)
    m = AiR(size=(8, 8), patch_size=4, dim=4, heads=1)
    res = regkit.register(x, y, method="air", model=m, return_attention=True)
    assert res.extras["attention"]["cross"][0].shape == (1, 4, 4)
    mp = MAPTAiR(size=(8, 8), patch_sizes=(2, 4), dim=4, heads=1)
    res = regkit.register(x, y, method="mapt_air", model=mp, return_attention=True)
    assert len(res.extras["attention"]) == 2
    with torch.no_grad():
        torch.testing.assert_close(res.disp, mp.eval()(x, y).disp)


def test_attention_image_matches_hand_computation_and_checks_exactly():
    """Catches wrong token indexing, wrong grid/shape checks and wrong error messages in attention_image."""
    w = torch.arange(2 * 3 * 8, dtype=torch.float64).reshape(2, 3, 8)  # N=2, 3 queries, 2 x 4 key grid
    img = attention_image(w, 0, 2, (4, 8))
    assert img.dtype == torch.float32 and img.shape == (2, 1, 4, 8)
    expected = w[:, 0].reshape(2, 1, 2, 4).repeat_interleave(2, -2).repeat_interleave(2, -1).float()
    assert torch.equal(img, expected)
    assert torch.equal(attention_image(w, (0, 2), 2, (4, 8)), w[:, 2].reshape(2, 1, 2, 4)
                       .repeat_interleave(2, -2).repeat_interleave(2, -1).float())
    _raises(ValueError, "query must name one of the 3 query patches, got 3", attention_image, w, 3, 2, (4, 8))
    _raises(ValueError, "query must name one of the 3 query patches, got -1", attention_image, w, -1, 2, (4, 8))
    _raises(ValueError, "weights must be N,L,8 for size (4, 8) and patch_size 2, got (3, 8)",
            attention_image, w[0], 0, 2, (4, 8))
    _raises(ValueError, "weights must be N,L,8 for size (4, 8) and patch_size 2, got (2, 3, 16)",
            attention_image, torch.rand(2, 3, 16), 0, 2, (4, 8))
    _raises(TypeError, "size must be a pair of integers (H, W), got (4,)", attention_image, w, 0, 2, (4,))


def test_patchify_checks_each_side():
    """Catches patchify's divisibility check turned from 'or' into 'and', or its message lost."""
    _raises(ValueError, "image size (4, 6) must be divisible by patch_size=4", patchify, torch.rand(1, 1, 4, 6), 4)
    _raises(ValueError, "image size (6, 4) must be divisible by patch_size=4", patchify, torch.rand(1, 1, 6, 4), 4)
