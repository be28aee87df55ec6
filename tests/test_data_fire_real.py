"""Real FIRE: the layout, the builder (SIFT or control-point pre-alignment), archives end to end."""

import hashlib
import zipfile

import numpy as np
import pytest
import torch

from regkit import metrics, spatial
from regkit.data import DataNotFoundError, collate_pairs, download_fire, fire_pairs, fire_reg256
from regkit.data import fire
from regkit.data.fundus import synth_fundus

SIZES = {"train": 6, "val": 3, "test": 3}


def _fake_fire(folder, n_pairs=3, size=320):
    """A tiny FIRE: procedural fundus images, image 2 an exact affine of image 1, FIRE's file layout."""
    from skimage import io

    (folder / "Images").mkdir(parents=True)
    (folder / "Ground Truth").mkdir()
    (folder / "Masks").mkdir()
    yy, xx = np.mgrid[:size, :size]
    io.imsave(folder / "Masks" / "mask.png",
              (((xx - size / 2) ** 2 + (yy - size / 2) ** 2) < (0.49 * size) ** 2).astype(np.uint8) * 255,
              check_contrast=False)
    for k, cat in zip(range(n_pairs), "SPA"):
        name = f"{cat}{k + 1:02d}"
        img = synth_fundus(size, torch.Generator().manual_seed(k))["image"]
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


def _tre(ds):
    b = collate_pairs([ds[i] for i in range(len(ds))])
    return metrics.tre(b["landmarks_moving"], b["landmarks_fixed"], valid=b["landmarks_valid"])


def test_layout_and_control_point_builder(fake_fire):
    recs = fire_pairs(fake_fire.parent)
    assert sorted(r["category"] for r in recs) == ["A", "P", "S"] and recs[0]["points"].shape == (10, 4)
    kw = dict(source="fire", root=fake_fire.parent, scale=1.0, stride=32, sizes=SIZES, min_coverage=0.6)
    splits = {s: fire_reg256(s, prealign="control_points", **kw) for s in ("train", "val", "test")}
    assert {s: len(d) for s, d in splits.items()} == SIZES
    ds = splits["train"]
    assert ds.source == "fire" and ds.info["landmarks_aligned_the_pair"] is True
    pairs = {s: {d[i]["pair"] for i in range(len(d))} for s, d in splits.items()}
    assert not (pairs["train"] & pairs["test"]) and not (pairs["val"] & pairs["test"])   # split by pair
    it = ds[0]
    assert it["moving"].shape == (1, 256, 256) and it["moving"].dtype == torch.float32
    assert it["landmarks_valid"].any() and isinstance(it["frame"], int) and it["source"] == "FIRE"
    assert float(_tre(ds).max()) < 1e-3          # exact affine pairs: nothing left after the fit
    raw = fire_reg256("train", prealign=None, **kw)
    assert float(_tre(raw).mean()) > 1.0
    with pytest.warns(UserWarning, match="fewer than the paper"):
        assert len(fire_reg256("test", source="fire", root=fake_fire.parent, scale=1.0, stride=32,
                               prealign="control_points", min_coverage=0.6)) > 0


def test_sift_prealignment_does_not_use_the_landmarks(fake_fire):
    pytest.importorskip("cv2")
    kw = dict(source="fire", root=fake_fire.parent, scale=1.0, stride=32, sizes=SIZES, min_coverage=0.6)
    ds = fire_reg256("train", **kw)                                   # prealign="sift" is the default
    assert ds.info["prealign"] == "sift" and ds.info["landmarks_aligned_the_pair"] is False
    assert ds.info["prealign_failed"] == []
    assert float(_tre(ds).mean()) < 1.0                               # SIFT + RANSAC finds the affine
    cached = (fake_fire / "regkit_fire_prealign.json")
    assert cached.is_file() and "sift@1.0" in cached.read_text()
    small = fire_reg256("train", size=64, **kw)                       # patches resized, landmarks too
    it, big = small[0], ds[0]
    assert it["moving"].shape == (1, 64, 64)
    v = big["landmarks_valid"]
    assert torch.allclose(it["landmarks_fixed"][v], big["landmarks_fixed"][v] * 63 / 255, atol=1e-4)


def test_control_point_residuals(fake_fire):
    res = fire.control_point_residuals(fake_fire.parent, scale=0.5)
    assert len(res) == 3 and max(r["rms"] for r in res) < 1e-3 and max(r["loo"] for r in res) < 1e-3


def test_data_root_from_the_environment(fake_fire, monkeypatch):
    monkeypatch.setenv(fire.DATA_ROOT_ENV, str(fake_fire.parent))
    ds = fire_reg256("test", scale=1.0, stride=32, sizes=SIZES, prealign="control_points", min_coverage=0.6)
    assert ds.source == "fire" and len(ds) == 3
    monkeypatch.delenv(fire.DATA_ROOT_ENV)
    assert fire_reg256("test", size=64).source == "proxy"


def test_real_7z_archive_end_to_end(fake_fire, tmp_path):
    py7zr = pytest.importorskip("py7zr")
    archive = tmp_path / "src" / "FIRE.7z"
    archive.parent.mkdir()
    with py7zr.SevenZipFile(archive, "w") as z:
        z.writeall(fake_fire, arcname="FIRE")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    # an archive in the data folder: refused without a recorded hash, used with allow_unverified
    root = tmp_path / "data"
    root.mkdir()
    (root / "FIRE.7z").write_bytes(archive.read_bytes())
    kw = dict(scale=1.0, stride=32, sizes=SIZES, prealign="control_points", min_coverage=0.6)
    with pytest.raises(ValueError, match="allow_unverified"):
        fire_reg256("test", root=root, **kw)
    assert not (root / "FIRE").exists()
    with pytest.warns(UserWarning, match=digest):
        ds = fire_reg256("test", root=root, allow_unverified=True, **kw)
    assert ds.source == "fire" and len(ds) == 3 and ds[0]["moving"].shape == (1, 256, 256)
    # download_fire: from a URL, checked against a hash
    with pytest.raises(ValueError, match="sha256 is unknown"):
        download_fire(tmp_path / "a", url=archive.as_uri())
    with pytest.raises(ValueError, match="checksum mismatch"):
        download_fire(tmp_path / "b", url=archive.as_uri(), sha256="1" * 64)
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())
    d = download_fire(tmp_path / "c", url=archive.as_uri(), sha256=digest)
    assert len(fire_pairs(d)) == 3
    assert download_fire(tmp_path / "c", url="file:///nowhere/FIRE.7z", sha256=digest) == d   # already there
    with pytest.warns(UserWarning, match="SHA-256 is"):
        download_fire(tmp_path / "e", url=archive.as_uri(), allow_unverified=True)


def test_download_fire_from_a_zip(fake_fire, tmp_path):
    archive = tmp_path / "FIRE.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in fake_fire.rglob("*"):
            zf.write(p, p.relative_to(fake_fire.parent))
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    d = download_fire(tmp_path / "z", url=archive.as_uri(), sha256=digest)
    assert len(fire_pairs(d)) == 3


def test_missing_and_bad_layouts(tmp_path):
    with pytest.raises(DataNotFoundError, match="no FIRE layout"):
        fire_pairs(tmp_path)
    (tmp_path / "FIRE" / "Images").mkdir(parents=True)
    (tmp_path / "FIRE" / "Ground Truth").mkdir()
    with pytest.raises(DataNotFoundError, match="control_points"):
        fire_pairs(tmp_path)
    (tmp_path / "FIRE" / "Ground Truth" / "control_points_S01_1_2.txt").write_text("1 2 3 4\n")
    with pytest.raises(ValueError, match="missing S01_1.jpg"):
        fire_pairs(tmp_path)
    with pytest.raises(ValueError, match="params applies to the proxy only"):
        fire_reg256("test", source="fire", root=tmp_path, params={"noise": 0.0})
