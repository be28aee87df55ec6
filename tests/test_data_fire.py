"""FIRE-Reg-256: the offline proxy (ground truth, determinism) and the real-FIRE layout, builder and download."""

import hashlib
import zipfile

import numpy as np
import pytest
import torch

from regkit import metrics, spatial
from regkit.data import DataNotFoundError, collate_pairs, download_fire, fire_pairs, fire_reg256
from regkit.data import appearance, fire
from regkit.data.fundus import synth_fundus

SMALL = {"scene": 192, "patch": 96}


def test_proxy_item_contract():
    ds = fire_reg256("val", source="proxy", limit=9, params=SMALL)
    assert ds.full_length == 978 and len(ds) == 9
    b = collate_pairs([ds[i] for i in range(9)])
    for k in ("moving", "fixed"):
        assert b[k].shape == (9, 1, 96, 96) and b[k].dtype == torch.float32
        assert 0 <= float(b[k].min()) and float(b[k].max()) <= 1
    assert b["disp"].shape == (9, 2, 96, 96) and b["landmarks_fixed"].shape == (9, 10, 2)
    assert b["frame"].tolist() == list(range(9)) and b["mask_fixed"].dtype == torch.bool
    assert set(b["source"]) == {"skimage_retina"}        # pair 0 is the real photograph
    assert fire_reg256("train", source="proxy").full_length == 8018
    assert fire_reg256("test", source="proxy")[0]["moving"].shape == (1, 256, 256)


def test_proxy_is_deterministic_and_order_free():
    fire._SCENES.clear()
    a = fire_reg256("test", source="proxy", seed=1, params=SMALL)
    late = a[10]["moving"].clone()
    fire._SCENES.clear()
    b = fire_reg256("test", source="proxy", seed=1, params=SMALL)
    first = b[10]
    assert torch.equal(first["moving"], late) and torch.equal(first["disp"], a[10]["disp"])
    c = fire_reg256("test", source="proxy", seed=2, params=SMALL)
    assert not torch.equal(c[10]["moving"], late)


def test_ground_truth_field_and_landmarks():
    ds = fire_reg256("test", source="proxy", params=dict(SMALL, noise=0.0))
    b = collate_pairs([ds[i] for i in (9, 13)])          # procedural pair, centre and side frame
    warped = spatial.warp(b["moving"], b["disp"])
    ok = spatial.inside_mask(b["disp"]) & b["fov_fixed"]
    ok[..., :4, :] = False; ok[..., -4:, :] = False; ok[..., :4] = False; ok[..., -4:] = False
    undone = torch.stack([appearance.invert(warped[i], b["appearance"][i]) for i in range(2)])
    err = (undone - b["fixed"]).abs()[ok]
    assert float(err.mean()) < 0.01                        # up to interpolation, the field is exact
    assert float(metrics.ncc(warped, b["fixed"], ok).min()) > 0.99
    assert float(metrics.ncc(b["moving"], b["fixed"], ok).max()) < 0.97
    assert float(metrics.tre(b["landmarks_moving"], b["landmarks_fixed"], b["disp"]).max()) < 1e-4
    assert float(metrics.tre(b["landmarks_moving"], b["landmarks_fixed"]).min()) > 1.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        fire_reg256("valid", source="proxy")
    with pytest.raises(ValueError, match="source"):
        fire_reg256("test", source="real")
    with pytest.raises(ValueError, match="unknown keys"):
        fire_reg256("test", source="proxy", params={"rotaton": 3})
    with pytest.raises(DataNotFoundError, match="download_fire"):
        fire_reg256("test", source="fire")
    with pytest.raises(DataNotFoundError, match="no FIRE layout"):
        fire_reg256("test", source="fire", root="does-not-exist")


# --- a tiny copy of FIRE's layout -------------------------------------------------------------


def _fake_fire(folder, n_pairs=3, size=320):
    from skimage import io

    (folder / "Images").mkdir(parents=True)
    (folder / "Ground Truth").mkdir()
    (folder / "Masks").mkdir()
    yy, xx = np.mgrid[:size, :size]
    io.imsave(folder / "Masks" / "mask.png", (((xx - size / 2) ** 2 + (yy - size / 2) ** 2) < (0.49 * size) ** 2).astype(np.uint8) * 255,
              check_contrast=False)
    for k, cat in zip(range(n_pairs), "SPA"):
        name = f"{cat}{k + 1:02d}"
        g = torch.Generator().manual_seed(k)
        img = synth_fundus(size, g)["image"]
        theta = spatial.affine_matrix((size, size), rotation=3.0 * (k + 1), tx=4.0, ty=-3.0)
        moving = spatial.warp(img[None], spatial.affine_to_disp(spatial.invert_affine(theta), (size, size)))[0]
        for j, im in ((1, img), (2, moving)):
            rgb = np.repeat((im[0].numpy() * 255).astype(np.uint8)[..., None], 3, -1)
            io.imsave(folder / "Images" / f"{name}_{j}.jpg", rgb, check_contrast=False)
        q = np.random.default_rng(k).uniform(40, size - 40, (10, 2))
        m = q @ theta[0, :, :2].double().numpy().T + theta[0, :, 2].double().numpy()
        np.savetxt(folder / "Ground Truth" / f"control_points_{name}_1_2.txt", np.concatenate([q, m], 1))
    return folder


@pytest.fixture(scope="module")
def fake_fire(tmp_path_factory):
    return _fake_fire(tmp_path_factory.mktemp("fire") / "FIRE")


def test_real_fire_layout_and_builder(fake_fire):
    recs = fire_pairs(fake_fire.parent)
    assert sorted(r["category"] for r in recs) == ["A", "P", "S"] and recs[0]["points"].shape == (10, 4)
    sizes = {"train": 6, "val": 3, "test": 3}
    kw = dict(source="fire", root=fake_fire.parent, scale=1.0, stride=32, sizes=sizes)
    splits = {s: fire_reg256(s, **kw) for s in ("train", "val", "test")}
    assert {s: len(d) for s, d in splits.items()} == sizes
    pairs = {s: {d[i]["pair"] for i in range(len(d))} for s, d in splits.items()}
    assert not (pairs["train"] & pairs["test"]) and not (pairs["val"] & pairs["test"])   # split by pair
    it = splits["train"][0]
    assert it["moving"].shape == (1, 256, 256) and it["moving"].dtype == torch.float32
    assert it["landmarks_valid"].any() and isinstance(it["frame"], int)
    # after the affine pre-alignment the (exactly affine) fake pairs have no residual
    b = collate_pairs([splits["train"][i] for i in range(len(splits["train"]))])
    tre = metrics.tre(b["landmarks_moving"], b["landmarks_fixed"], valid=b["landmarks_valid"])
    assert float(tre.max()) < 1e-3
    raw = fire_reg256("train", prealign=None, **kw)[0]
    assert float(metrics.tre(raw["landmarks_moving"][None], raw["landmarks_fixed"][None],
                             valid=raw["landmarks_valid"][None])) > 1.0
    with pytest.warns(UserWarning, match="fewer than the paper"):
        assert len(fire_reg256("test", source="fire", root=fake_fire.parent, scale=1.0, stride=32)) > 0


def test_download_fire_from_local_archive(fake_fire, tmp_path):
    archive = tmp_path / "FIRE.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in fake_fire.rglob("*"):
            zf.write(p, p.relative_to(fake_fire.parent))
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match="sha256 is unknown"):
        download_fire(tmp_path / "a", url=archive.as_uri())
    with pytest.raises(ValueError, match="checksum mismatch"):
        download_fire(tmp_path / "b", url=archive.as_uri(), sha256="1" * 64)
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())
    d = download_fire(tmp_path / "c", url=archive.as_uri(), sha256=digest)
    assert len(fire_pairs(d)) == 3
