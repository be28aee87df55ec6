"""GPEReg-Net tables: the CLI writes valid results files in a shrunken quick profile; the paper's
numbers agree with regkit.experiments.paper_numbers; Figures 2 and 3 draw."""

import json
import math

import pytest
import torch

from regkit.experiments import cli, controls
from regkit.experiments import gpereg_tables as G

_SETTINGS = G.settings


def tiny_settings(profile):
    """The quick profile, smaller still: 32 px, one FIRE scene to train on, two to test (the shuffled
    pairing needs two), one training step."""
    s = _SETTINGS(profile)
    s.update(size=32, fire_train=9, fire_test=18, hpatches_train=8, hpatches_test=4, epochs=1, steps_per_epoch=1)
    s["latency"] = {"size": 32, "warmup": 0, "repeats": 1}
    return s




@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(G, "settings", tiny_settings)


def _finite_or_none(obj):
    if isinstance(obj, float):
        return math.isfinite(obj)
    if isinstance(obj, dict):
        return all(_finite_or_none(v) for v in obj.values())
    if isinstance(obj, list):
        return all(_finite_or_none(v) for v in obj)
    return True


def _load(path):
    with open(path) as fh:
        text = fh.read()
    assert "NaN" not in text and "Infinity" not in text  # strict JSON
    data = json.loads(text)
    assert data["profile"] == "quick" and "provenance" in data and _finite_or_none(data)
    return data


def test_tables_are_registered():
    names = cli.tables()
    for key in G.TABLES.values():
        assert key in names


@pytest.mark.filterwarnings("ignore:sift_ransac")  # 32 px patches give SIFT too few keypoints
def test_cli_table1_and_ablation(tiny, tmp_path):
    data = _load(cli.reproduce("gpereg-table1", profile="quick", out=tmp_path))
    assert list(data["rows"]) == [G.LABELS[m] for m in (*G.CLASSICAL, *G.LEARNED)]
    assert data["n_pairs"] == 18 and set(data["rows"]["GPEReg-Net"]["mean"]) == {"ncc", "ssim", "psnr"}
    assert data["paper"]["gpereg"] == {"ncc": 0.851, "ssim": 0.928, "psnr": 33.47}
    abl = _load(cli.reproduce("gpereg-ablation", profile="quick", out=tmp_path))
    assert list(abl["rows"]) == list(G.ABLATION_VARIANTS)
    params = abl["parameters"]
    assert params["without GPE"] < params["GPEReg-Net (window 4)"] == params["window 8"]


def test_cli_table2_table3_and_register_test(tiny, tmp_path):
    t2 = _load(cli.reproduce("gpereg-table2", profile="quick", out=tmp_path))
    assert t2["device"] and set(t2["rows"]) == set(G.LEARNED)
    for name in ("gpereg", "sasnet"):
        paper_m = t2["paper"][name]["params_m"]
        assert abs(t2["rows"][name]["params_m"] - paper_m) / paper_m < 0.05  # paper-size models
        assert t2["rows"][name]["latency_ms"] > 0 and t2["rows"][name]["fps"] > 0
    t3 = _load(cli.reproduce("gpereg-table3", profile="quick", out=tmp_path))
    assert list(t3["rows"]) == [G.LABELS[m] for m in ("identity", *G.LEARNED)] and t3["n_pairs"] == 4
    reg = _load(cli.reproduce("gpereg-does-it-register", profile="quick", out=tmp_path))
    labels = [r["label"] for r in reg["rows"]]
    assert labels[:3] == [s.label for s in controls.CONTROLS] and labels[-1] == "Moving vs fixed"
    by = {r["label"]: r for r in reg["rows"]}
    assert by["GPEReg-Net"]["deformation_free"] and "tre" not in by["GPEReg-Net"]
    assert by["VoxelMorph"]["tre"] is not None


def test_paper_numbers_agree():
    from regkit.experiments.paper_numbers import TABLES

    for key, ours in G.PAPER.items():
        theirs = {r.method: tuple(r.values) for r in TABLES[key].rows if r.method is not None}
        assert theirs == ours, key


def test_figures_draw():
    from regkit.models.gpereg import GPERegNet

    torch.manual_seed(0)
    net = G.build_model("gpereg", "quick")
    assert isinstance(net, GPERegNet)
    batch = {"moving": torch.rand(2, 1, 32, 32), "fixed": torch.rand(2, 1, 32, 32), "frame": torch.tensor([0, 1])}
    specs = [controls.MethodSpec("Unregistered", "identity"), controls.MethodSpec("GPEReg-Net", "gpereg", {"model": net}, True)]
    assert len(G.figure_outputs(specs, batch).axes) == 4
    assert len(G.figure_overlays(specs, batch).axes) == 3
