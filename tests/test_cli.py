"""``python -m regkit reproduce <table>``: table registry, provenance and the results file."""

import json
import math
import subprocess
import sys

import pytest

from regkit.experiments import air_table1, cli, provenance

PROVENANCE_KEYS = {"table", "profile", "seed", "device", "device_type", "git_revision", "versions",
                   "wall_time_s", "created_utc", "command"}


def _finite_numbers(obj):
    if isinstance(obj, float):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _finite_numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _finite_numbers(v)


def test_list_names_the_air_table(capsys):
    assert cli.main(["list"]) == 0
    assert "air-table1" in capsys.readouterr().out
    assert "air-table1" in cli.tables()


def test_a_registered_table_is_written_atomically_with_provenance(tmp_path, monkeypatch):
    def toy(profile, seed, device):
        return {"rows": {"identity": {"mse": {"mean": 0.5, "std": float("nan")}}}, "seen_profile": profile}

    monkeypatch.setitem(cli._TABLES, "toy", cli._Table("toy", toy, "a toy table", __name__))
    assert cli.main(["reproduce", "toy", "--profile", "full", "--seed", "3", "--out", str(tmp_path)]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["toy.json"]  # no temp file left behind
    data = json.loads((tmp_path / "toy.json").read_text())
    assert data["table"] == "toy" and data["profile"] == "full" and data["seen_profile"] == "full"
    assert data["rows"]["identity"]["mse"]["std"] is None  # NaN becomes null: strict JSON
    prov = data["provenance"]
    assert PROVENANCE_KEYS <= set(prov)
    assert prov["seed"] == 3 and prov["profile"] == "full" and prov["wall_time_s"] >= 0
    assert {"python", "torch", "numpy", "regkit"} <= set(prov["versions"])
    assert prov["command"].startswith("python -m regkit reproduce toy")


def test_bad_table_and_seed_are_refused(tmp_path, capsys):
    assert cli.main(["reproduce", "no-such-table", "--out", str(tmp_path)]) == 2
    assert "table must be one of" in capsys.readouterr().err
    assert cli.main(["reproduce", "air-table1", "--seed", "-1", "--out", str(tmp_path)]) == 2
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "air-table1", "--profile", "huge"])
    with pytest.raises(ValueError, match="profile"):
        cli.reproduce("air-table1", profile="huge", out=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_air_table1_quick_profile_writes_a_valid_results_file(tmp_path, monkeypatch):
    # The quick profile, shrunk further so that the test takes seconds: same code paths.
    monkeypatch.setattr(air_table1, "QUICK_STEPS", 2)
    monkeypatch.setattr(air_table1, "QUICK_BATCH", 4)
    monkeypatch.setattr(air_table1, "QUICK_TEST_PAIRS", 8)
    path = cli.reproduce("air-table1", profile="quick", seed=0, out=tmp_path, command="test")
    data = provenance.read_json(path)
    assert data["table"] == "air-table1" and data["profile"] == "quick"
    assert set(data["rows"]) == {"identity", "dirnet", "air", "mapt_air"}
    for row in data["rows"].values():
        assert set(row) == {"mse", "psnr", "smooth_dice"}
        assert all(set(v) == {"mean", "std"} for v in row.values())
    assert all(math.isfinite(x) for x in _finite_numbers(data["rows"]))
    assert data["paper"]["mapt_air"]["psnr"] == {"mean": 17.311, "std": 2.522}
    assert data["data"]["test_pairs"] == 8 and data["settings"]["steps_per_epoch"] == 2
    assert data["parameters"]["air"] > 0 and abs(sum(data["mapt_weights"]) - 1) < 1e-3
    assert data["provenance"]["profile"] == "quick" and data["provenance"]["seed"] == 0
    # An unregistered pair is what it is: the identity row does not depend on training.
    ident = air_table1.evaluate({"identity": None}, air_table1.datasets("quick")[1])["identity"]
    assert data["rows"]["identity"]["mse"]["mean"] == pytest.approx(ident["mse"]["mean"])


def test_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "regkit", "list"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "air-table1" in out.stdout


def test_provenance_helpers(tmp_path):
    rev = provenance.git_revision(tmp_path)  # not a git checkout
    assert rev == {"commit": None, "dirty": None}
    assert provenance.read_json(tmp_path / "missing.json") is None
    provenance.write_json({"x": [1.0, float("inf")]}, tmp_path / "sub" / "a.json")
    assert json.loads((tmp_path / "sub" / "a.json").read_text()) == {"x": [1.0, None]}
