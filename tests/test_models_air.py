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
