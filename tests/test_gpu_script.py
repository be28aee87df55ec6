"""The prepared GPU command runs end to end on the CPU at toy size, so it cannot rot."""

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_script_dry_run_writes_results(tmp_path):
    env = {**os.environ, "DRY_RUN_TABLES": "gpereg-table2 air-table1", "REGKIT_MODEL_CACHE": str(tmp_path / "cache"),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_full_runs.sh"), "--dry-run", str(tmp_path / "out")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["air-table1.json", "gpereg-table2.json"]
    for name in written:
        record = json.loads((tmp_path / "out" / name).read_text())
        assert record["profile"] == "quick" and record["provenance"]["device_type"] == "cpu"
    assert "0 failed" in proc.stdout
