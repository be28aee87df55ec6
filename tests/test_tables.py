"""The reproduced tables and ``python -m regkit``: one registry, parallel modules, one evaluation
path, results files with provenance, arguments checked before anything runs."""

import json
import math
import subprocess
import sys

import pytest
import torch

from regkit import papers
from regkit.evaluation import MethodSpec, evaluate
from regkit.experiments import cli, controls, provenance, tables
from regkit.experiments.tables import (
    air_table1,
    gpereg_ablation,
    gpereg_controls,
    gpereg_setup,
    gpereg_table1,
    gpereg_table2,
    gpereg_table3,
)

GPEREG_MODULES = (gpereg_setup, gpereg_table1, gpereg_table2, gpereg_table3, gpereg_ablation, gpereg_controls)
PROVENANCE_KEYS = {"table", "profile", "seed", "device", "device_type", "threads", "load_average", "git_revision",
                   "versions", "wall_time_s", "created_utc", "command"}




@pytest.fixture
def tiny(monkeypatch):
    base = gpereg_setup.settings

    def tiny_settings(profile):
        s = base(profile)
        s.update(size=32, fire_train=9, fire_val=9, fire_test=18, hpatches_train=8, hpatches_val=4, hpatches_test=4,
                 epochs={m: 1 for m in gpereg_setup.LEARNED}, steps_per_epoch=1, eval_batch=9)
        s["latency"] = {"size": 32, "warmup": 0, "repeats": 1}
        return s

    for mod in GPEREG_MODULES:
        monkeypatch.setattr(mod, "settings", tiny_settings)
    base_air = air_table1.settings

    def tiny_air(profile):
        s = base_air(profile)
        s.update(batch_size=4, steps_per_epoch=2, val_pairs=8, test_pairs=8, shift_fit_pairs=16)
        return s

    monkeypatch.setattr(air_table1, "settings", tiny_air)


def _load(path):
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text  # strict JSON
    data = json.loads(text)
    assert PROVENANCE_KEYS <= set(data["provenance"])
    return data


def test_registry_and_parallel_names():
    assert tables.names() == sorted(tables.TABLES)
    for name in tables.names():
        mod = tables.get(name)
        assert mod.NAME == name and mod.SUMMARY
        for attr in ("settings", "run", "reproduce", "build_model"):
            assert callable(getattr(mod, attr)), (name, attr)
        for profile in ("quick", "cpu", "full"):
            assert mod.settings(profile)["profile"] == profile
    with pytest.raises(ValueError, match="table must be one of"):
        tables.get("table-9")


def test_list_and_module_entry_point(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in tables.names())
    proc = subprocess.run([sys.executable, "-m", "regkit", "list"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "air-table1" in proc.stdout


def test_a_table_is_written_atomically_with_provenance(tmp_path, monkeypatch):
    calls = []

    def toy(profile, seed, device, data_root=None):
        calls.append(profile)
        return {"rows": {"identity": {"mse": {"mean": 0.5, "std": float("nan")}}}, "t": torch.tensor([1.0])}

    monkeypatch.setattr(tables.get("gpereg-table2"), "reproduce", toy)
    assert cli.main(["reproduce", "gpereg-table2", "--profile", "cpu", "--seed", "3", "--out", str(tmp_path)]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["gpereg-table2.json"]  # no temp file left behind
    data = _load(tmp_path / "gpereg-table2.json")
    assert data["profile"] == "cpu" and calls == ["cpu"] and data["t"] == [1.0]
    assert data["rows"]["identity"]["mse"]["std"] is None  # NaN becomes null: strict JSON
    prov = data["provenance"]
    assert prov["seed"] == 3 and prov["wall_time_s"] >= 0 and prov["command"].startswith("python -m regkit")
    assert {"python", "torch", "numpy", "regkit"} <= set(prov["versions"])


def test_arguments_are_checked_before_anything_runs(tmp_path, monkeypatch, capsys):
    ran = []
    monkeypatch.setattr(tables.get("gpereg-table2"), "reproduce", lambda **kw: ran.append(1) or {})
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for argv in (["reproduce", "no-such-table"], ["reproduce", "gpereg-table2", "--seed", "-1"],
                 ["reproduce", "gpereg-table2", "--out", str(a_file)],
                 ["reproduce", "gpereg-table2", "--device", "bogus"],
                 ["reproduce", "gpereg-table2", "--data-root", str(tmp_path / "missing")],
                 ["reproduce"], ["reproduce", "gpereg-table2", "--all"], ["reproduce", "gpereg-table2", "--profile", "huge"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv + (["--out", str(tmp_path)] if "--out" not in argv else []))
        assert exc.value.code == 2, argv
    err = capsys.readouterr().err
    assert "is a file" in err and "device" in err and "data_root" in err
    assert ran == []
    with pytest.raises(ValueError, match="profile"):
        cli.reproduce("gpereg-table2", profile="huge", out=tmp_path)
    with pytest.raises(TypeError, match="cannot hold"):
        provenance.write_json({"x": object()}, tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()


def test_air_table1_writes_every_row_with_the_papers_ratios(tiny, tmp_path):
    data = _load(cli.reproduce("air-table1", profile="quick", out=tmp_path, command="test"))
    labels = [air_table1.LABELS[m] for m in air_table1.METHODS]
    assert list(data["rows"]) == labels
    for row in data["rows"].values():
        assert {"mse", "psnr", "smooth_dice", "mse_std", "mse_failed", "mse_paper"} <= set(row)
        assert row["mse_failed"] == 0 and math.isfinite(row["mse"])
    assert data["rows"]["MAPT-AiR"]["psnr_paper"] == 17.311
    assert data["paper_mse_ratio"]["dirnet"] == pytest.approx(0.033 / 0.0647)
    assert data["mse_ratio"]["Unregistered"] == 1.0
    assert data["data"]["test_pairs"] == 8 and data["data"]["val_pairs"] == 8
    assert data["training"]["air"]["steps"] == 2 and data["training"]["air"]["parameters"] > 0
    assert len(data["constant_shift"]) == 2 and abs(sum(data["mapt_weights"]) - 1) < 1e-3


@pytest.mark.filterwarnings("ignore:sift_ransac")  # 32 px patches give SIFT too few keypoints
def test_gpereg_tables_write_their_rows(tiny, tmp_path):
    t1 = _load(cli.reproduce("gpereg-table1", profile="quick", out=tmp_path))
    labels = [gpereg_setup.LABELS[m] for m in gpereg_table1.ROWS]
    assert list(t1["rows"]) == labels and t1["n_pairs"] == 18
    assert t1["rows"]["GPEReg-Net"]["ncc_paper"] == 0.851 and t1["paper"]["gpereg"]["psnr"] == 33.47
    assert set(t1["training"]) == set(gpereg_setup.LEARNED) and t1["data"]["source"]
    t3 = _load(cli.reproduce("gpereg-table3", profile="quick", out=tmp_path))
    assert list(t3["rows"]) == [gpereg_setup.LABELS[m] for m in gpereg_table3.ROWS]
    abl = _load(cli.reproduce("gpereg-ablation", profile="quick", out=tmp_path))
    assert list(abl["rows"]) == list(gpereg_ablation.VARIANTS)
    params = abl["parameters"]
    assert params["without GPE"] < params["GPEReg-Net (window 4)"] == params["window 8"]
    t2 = _load(cli.reproduce("gpereg-table2", profile="quick", out=tmp_path))
    for name in ("gpereg", "sasnet"):
        paper_m = t2["paper"][name]["params_m"]
        assert abs(t2["rows"][name]["params_m"] - paper_m) / paper_m < 0.05  # paper-size models
        assert t2["rows"][name]["latency_ms"] > 0 and t2["rows"][name]["flops"] > 0


@pytest.mark.filterwarnings("ignore:sift_ransac")  # 32 px patches give SIFT too few keypoints
def test_one_evaluation_path_the_same_method_scores_the_same_in_two_tables(tiny):
    """Demons and the unregistered pair through Table 1 and through the controls: same numbers."""
    models = {}  # no learned rows needed
    t1 = gpereg_table1.run("quick", models=models)
    ctl = gpereg_controls.run("quick", models=models)
    by = {r["label"]: r for r in ctl.results["rows"]}
    for label in ("Unregistered", "Demons"):
        key = "Unregistered" if label == "Unregistered" else label
        for metric in ("ncc", "ssim", "psnr"):
            assert t1.results["methods"][label]["mean"][metric] == pytest.approx(by[key][metric], rel=1e-12), (label, metric)


def test_controls_table_rows(tiny):
    run = gpereg_controls.run("quick", models={})
    labels = [r["label"] for r in run.results["rows"]]
    assert labels[:3] == [s.label for s in controls.CONTROLS] and labels[-1] == "Moving vs fixed"
    by = {r["label"]: r for r in run.results["rows"]}
    assert by["Fixed image (upper bound)"]["tre"] is None and by["Demons"]["tre"] is not None


def test_papers_numbers_are_data():
    t1 = papers.get_table("gpereg-table1")
    assert [r.name for r in t1.rows_in("traditional")] == ["Unregistered", "SIFT", "Demons", "Optical Flow", "SyN"]
    assert t1.values_by_method()["syn"] == {"ncc": 0.549, "ssim": 0.521, "psnr": 15.76}
    assert papers.AIR_TABLE1.values_by_method(std=True)["mapt_air"]["psnr"] == (17.311, 2.522)


def test_data_root_comes_from_the_argument_or_the_environment(tmp_path, monkeypatch):
    base = tables.base
    monkeypatch.delenv(base.DATA_ENV, raising=False)
    assert base.data_root() is None
    monkeypatch.setenv(base.DATA_ENV, str(tmp_path))
    assert base.data_root() == tmp_path
    with pytest.raises(ValueError, match="data_root"):
        base.data_root(tmp_path / "missing")


def test_converged_reads_the_validation_curve():
    conv = tables.base.converged
    assert conv([{"val_loss": v} for v in (1.0, 0.5, 0.45, 0.449, 0.4485, 0.448)]) is True
    assert conv([{"val_loss": v} for v in (1.0, 0.8, 0.6, 0.4, 0.3)]) is False
    assert conv([{"loss": 1.0}]) is None


def test_model_cache_reuses_a_model_trained_under_the_same_key(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv(tables.base.MODEL_CACHE_ENV, str(tmp_path))
    first = gpereg_setup.train_all(("voxelmorph",), "fire", "quick", 0, "cpu")
    again = gpereg_setup.train_all(("voxelmorph",), "fire", "quick", 0, "cpu")
    other = gpereg_setup.train_all(("voxelmorph",), "fire", "quick", 1, "cpu")  # another seed: trained anew
    assert first[3]["cached"] == [] and again[3]["cached"] == ["voxelmorph"] and other[3]["cached"] == []
    a, b = first[0]["voxelmorph"].state_dict(), again[0]["voxelmorph"].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert again[1]["voxelmorph"] == first[1]["voxelmorph"] and len(list(tmp_path.glob("*.pt"))) == 2


def test_a_data_set_training_change_applies_to_its_model_only(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv(tables.base.MODEL_CACHE_ENV, str(tmp_path))
    plain = gpereg_setup.settings
    before = gpereg_setup.train_all(("voxelmorph", "transmorph"), "hpatches", "quick", 0, "cpu")

    def with_change(profile):
        s = plain(profile)
        s["dataset_training"] = {"hpatches": {"voxelmorph": {"epochs": 2, "lr": 1e-4}}}
        return s

    monkeypatch.setattr(gpereg_setup, "settings", with_change)
    assert gpereg_setup.training_overrides("voxelmorph", "hpatches", "quick") == {"epochs": 2, "lr": 1e-4}
    assert gpereg_setup.training_overrides("voxelmorph", "fire", "quick") == {}
    assert gpereg_setup.training_overrides("transmorph", "hpatches", "quick") == {}
    after = gpereg_setup.train_all(("voxelmorph", "transmorph"), "hpatches", "quick", 0, "cpu")
    # TransMorph's key is unchanged (loaded); VoxelMorph is trained anew for 2 epochs at its own rate.
    assert before[3]["cached"] == [] and after[3]["cached"] == ["transmorph"]
    assert len(before[1]["voxelmorph"]) == 1 and len(after[1]["voxelmorph"]) == 2
    # Cosine annealing from the changed rate: half of it after the first of two epochs.
    assert after[1]["voxelmorph"][0]["lr"] == pytest.approx(1e-4 / 2)
    fire = gpereg_setup.train_all(("voxelmorph",), "fire", "quick", 0, "cpu")
    assert len(fire[1]["voxelmorph"]) == 1  # the change is for HPatches only


def test_cpu_profile_trains_sasnet_on_hpatches_slower_and_longer():
    s = gpereg_setup.settings("cpu")
    assert gpereg_setup.training_overrides("sasnet", "hpatches", "cpu") == {"lr": 3e-4, "epochs": 20}
    assert s["epochs"]["sasnet"] == 15 and s["lr"] == 1e-3  # Table 1 (FIRE) keeps the shared settings
    assert gpereg_setup.training_overrides("sasnet", "hpatches", "quick") == {}


def test_status_page_verdicts_come_from_the_tables():
    from regkit.experiments import status

    record = {"table": "air-table1", "profile": "full",
              "rows": {"DIRNet": {"mse": 0.04}, "AiR-single": {"mse": 0.05}, "MAPT-AiR": {"mse": 0.035}},
              "mse_ratio": {"DIRNet": 0.5, "AiR-single": 0.62, "MAPT-AiR": 0.45},
              "paper_mse_ratio": {"dirnet": 0.51, "air": 0.59, "mapt_air": 0.42},
              "training": {"air": {"converged": True}}}
    verdict = air_table1.assess(record)
    assert verdict["status"] == "reproduced", verdict
    record["rows"]["MAPT-AiR"]["mse"] = 0.045  # MAPT-AiR no longer beats DIRNet
    assert air_table1.assess(record)["status"] == "partly"
    record["training"]["air"]["converged"] = False
    assert air_table1.assess(record)["status"] == "not converged"
    entries = status.collect(results_dir="no-such-folder")
    assert [e["table"] for e in entries] == tables.names() and {e["status"] for e in entries} == {"pending"}


def test_controls_verdict_is_measured_and_names_the_geometry_drop():
    from regkit.experiments import status

    record = {"rows": [{"label": "Fixed image (upper bound)", "method": "fixed_oracle", "geometry_drop_ssim": 0.649},
                       {"label": "GPEReg-Net", "method": "gpereg", "deformation_free": True,
                        "geometry_drop_ssim": -0.0001}],
              "training": {"gpereg": {"converged": True}}}
    verdict = gpereg_controls.assess(record)
    assert verdict["status"] == "measured" and verdict["status"] in status.STATUSES
    assert "GPEReg-Net loses 0.000 SSIM" in verdict["reason"] and "-0.000" not in verdict["reason"]
    assert "itself loses 0.649" in verdict["reason"]
    record["training"]["gpereg"]["converged"] = False
    assert gpereg_controls.assess(record)["status"] == "not converged"


def test_ablation_verdict_counts_only_differences_above_the_noise():
    """Two standard errors of the difference of two means over 900 pairs with per-pair std 0.07:
    2 sqrt(2 * 0.07^2 / 900) = 0.0066 SSIM; a gap of 0.001 is noise, one of 0.02 is an effect."""
    def record(with_gpe, without, converged=True):
        rows = {"GPEReg-Net (window 4)": {"ssim": with_gpe, "ssim_std": 0.07, "psnr": 28.0, "psnr_std": 2.4},
                "without GPE": {"ssim": without, "ssim_std": 0.07, "psnr": 28.0, "psnr_std": 2.4}}
        return {"rows": rows, "data": {"test_pairs": 900}, "training": {"without GPE": {"converged": converged}}}

    d = gpereg_ablation.difference(record(0.669, 0.668), "ssim")
    assert abs(d["noise"] - 2 * (2 * 0.07**2 / 900) ** 0.5) < 1e-12 and not d["measurable"]
    verdict = gpereg_ablation.assess(record(0.669, 0.668))
    assert verdict["status"] == "measured" and "GPE makes no measurable difference here" in verdict["reason"]
    assert "0.007 SSIM" in verdict["reason"]
    assert "GPE helps here" in gpereg_ablation.assess(record(0.690, 0.668))["reason"]
    assert "GPE hurts here" in gpereg_ablation.assess(record(0.650, 0.668))["reason"]
    worse_psnr = record(0.669, 0.668)       # SSIM gap within the noise, PSNR 1 dB lower: hurts
    worse_psnr["rows"]["GPEReg-Net (window 4)"]["psnr"] = 27.0
    assert "GPE hurts here" in gpereg_ablation.assess(worse_psnr)["reason"]
    assert gpereg_ablation.assess(record(0.69, 0.668, converged=False))["status"] == "not converged"


def test_status_columns_name_the_device_of_a_full_run():
    from regkit.experiments.status import run_label

    assert run_label("full", {"provenance": {"device_type": "cpu"}}) == "full run (CPU)"
    assert run_label("full", {"provenance": {"device_type": "cuda"}}) == "full run (CUDA)"
    assert run_label("cpu", {"provenance": {"device_type": "cpu"}}) == "CPU profile"
    assert run_label("full", {}) == "full run"


def test_git_revision_is_dirty_for_changed_code_but_not_for_changed_results(tmp_path):
    import shutil
    import subprocess

    if shutil.which("git") is None:
        pytest.skip("git is not installed")

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=tmp_path,
                       check=True, capture_output=True)

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "a_benchmark.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "first")
    rev = provenance.git_revision(tmp_path)
    assert len(rev["commit"]) == 40 and rev["dirty"] is False
    (tmp_path / "results" / "a_benchmark.json").write_text('{"new": 1}')   # a run's own output
    (tmp_path / "untracked.py").write_text("")
    assert provenance.git_revision(tmp_path)["dirty"] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert provenance.git_revision(tmp_path)["dirty"] is True
    assert provenance.git_revision(tmp_path / "code.py") == {"commit": None, "dirty": None}   # not a directory
