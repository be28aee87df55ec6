"""The benchmarks run: the prepared GPU command's dry run executes every benchmark it names in its
quick mode on the CPU (so that none of them rots), and ``--cuda-only`` without a GPU says so."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def test_gpu_benchmarks_dry_run_runs_each_benchmark_quickly_and_writes_nothing():
    def files():   # every results file with its size and modification time
        return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in (ROOT / "results").rglob("*"))

    before = files()
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_benchmarks.sh"), "--dry-run"], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("warp", "classical_batch", "training_throughput"):
        assert f"\n{name}: " in proc.stdout and f"{name}: FAILED" not in proc.stdout + proc.stderr, name
    assert "all benchmarks:" in proc.stdout and ", 0 failed" in proc.stdout
    assert "target case 64 x 1 x 256 float32 on the CPU" in proc.stdout
    assert files() == before   # quick modes print only: no file added, none rewritten


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_only_without_a_gpu_stops_with_a_clear_message():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import _bench
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert _bench.devices() == ["cpu"]
    with pytest.raises(SystemExit, match="^--cuda-only needs a CUDA device, and torch finds none$"):
        _bench.devices(cuda_only=True)
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "warp.py"), "--cuda-only"], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and proc.stderr.strip().endswith("--cuda-only needs a CUDA device, and torch finds none")
