#!/usr/bin/env bash
# Every GPU run of the book in one prepared command, sized for about 10 minutes on one H100/H200:
#
#   bash scripts/gpu_full_runs.sh                 # full profile on the GPU -> results/full/*.json
#   bash scripts/gpu_full_runs.sh --dry-run DIR   # the same steps in the quick profile on the CPU
#
# Tables run cheapest first; each writes its results file as soon as it finishes, so a run stopped
# early keeps what finished. Models trained by one table (Table 1) are reused by the next ones
# (controls, ablation) through REGKIT_MODEL_CACHE. Each table gets at most TABLE_TIMEOUT seconds.
# On a GPU machine without network, install what it lacks first (wheels carried in .whl/:
# `pip install --no-index --target /tmp/site .whl/*.whl` and PYTHONPATH=/tmp/site), then run this.
set -uo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && python=.venv/bin/python
profile=full
out=results/full
device=${DEVICE:-cuda}
tables="gpereg-table2 air-table1 gpereg-table1 gpereg-does-it-register gpereg-ablation gpereg-table3"
if [ "${1:-}" = "--dry-run" ]; then
    profile=quick
    out=${2:?usage: gpu_full_runs.sh --dry-run OUT_DIR}
    device=cpu
    tables=${DRY_RUN_TABLES:-$tables}
fi
timeout_s=${TABLE_TIMEOUT:-300}
export REGKIT_MODEL_CACHE=${REGKIT_MODEL_CACHE:-checkpoints/model-cache-$profile}
export PYTHONUNBUFFERED=1
mkdir -p "$out" "$REGKIT_MODEL_CACHE"

start=$(date +%s)
failed=0
for t in $tables; do
    t0=$(date +%s)
    if timeout "$timeout_s" "$python" -m regkit reproduce "$t" --profile "$profile" --device "$device" --out "$out"; then
        echo "$t: $(( $(date +%s) - t0 )) s"
    else
        echo "$t: FAILED or timed out after $(( $(date +%s) - t0 )) s" >&2
        failed=$((failed + 1))
    fi
done
echo "all tables: $(( $(date +%s) - start )) s, $failed failed, results in $out"
exit $failed
