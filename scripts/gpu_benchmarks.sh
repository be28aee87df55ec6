#!/usr/bin/env bash
# The benchmarks' CUDA cases in one prepared command, for a machine with a GPU (not yet timed on one):
#
#   bash scripts/gpu_benchmarks.sh              # results/gpu/<name>_benchmark.json, the GPU named in each
#   bash scripts/gpu_benchmarks.sh --dry-run    # the same benchmarks in their --quick mode on the CPU
#
# Each benchmark times only its CUDA cases (--cuda-only): warps against a bare grid_sample,
# batched Demons / Horn-Schunck / SyN pairs per second at 256 px against SimpleITK's demons on
# one CPU thread (the target: at least 100x that rate), and the training throughput of every
# learned model at its table's full-profile size. The CPU figures stay those of
# results/*_benchmark.json. On a GPU machine without network, install what it lacks first
# (wheels carried in .whl/: `pip install --no-index --target /tmp/site .whl/*.whl` and
# PYTHONPATH=/tmp/site), then run this.
set -uo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && python=.venv/bin/python
benchmarks="warp classical_batch training_throughput"
out=results/gpu
if [ "${1:-}" = "--dry-run" ]; then
    mode=(--quick)
else
    mode=(--cuda-only)
    mkdir -p "$out"
fi
export PYTHONUNBUFFERED=1

start=$(date +%s)
failed=0
for b in $benchmarks; do
    t0=$(date +%s)
    args=("${mode[@]}")
    [ "${mode[0]}" = "--cuda-only" ] && args+=(--out "$out/${b}_benchmark.json")
    if "$python" "benchmarks/$b.py" "${args[@]}"; then
        echo "$b: $(( $(date +%s) - t0 )) s"
    else
        echo "$b: FAILED after $(( $(date +%s) - t0 )) s" >&2
        failed=$((failed + 1))
    fi
done
echo "all benchmarks: $(( $(date +%s) - start )) s, $failed failed"
exit $failed
