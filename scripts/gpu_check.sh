#!/usr/bin/env bash
# One-GPU check (issue 13): after `pip install -e ".[cuda]"`, run from the repository root:
#     bash scripts/gpu_check.sh [OUT]        (OUT defaults to runs/gpu_check)
# It prints the device, then runs, each with its own time limit, and prints their figures:
#   1. scripts/bench_eval.py   -- F0 (design, mapping) evaluations/s, full mapping search
#   2. scripts/bench_sim.py    -- NoC simulator router-cycles/s (16x16, 32x32)
#   3. experiments/inference_vs_baselines.py --smoke  -- one study end to end
#   4. tests/test_sharding.py  -- 4 forced host devices give the one-device results
# Budget: under 5 minutes on one H100/H200 (the CPU takes longer). Figures go to OUT/*.json.
set -uo pipefail
OUT=${1:-runs/gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-python}
status=0
step() {  # step NAME LIMIT_S CMD...: run with a limit, report wall time and exit status
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@"
  local rc=$?
  printf '== %s: exit %d, %d s\n' "$name" "$rc" "$((SECONDS - t0))" >&2
  [ "$rc" -eq 0 ] || status=1
}
$PY -c "import jax; print('jax', jax.__version__, 'devices', jax.devices())" || exit 1
step bench_eval 150 $PY scripts/bench_eval.py --repeats 3 --json > "$OUT/bench_eval.json"
$PY - "$OUT/bench_eval.json" <<'PYEOF' || true
import json, sys
d = json.load(open(sys.argv[1]))
for sec, v in d.items():
    if isinstance(v, dict):
        figs = {k: f"{x:.3g}" for k, x in v.items() if isinstance(x, (int, float)) and ("per_s" in k or k.endswith("_s"))}
        print(f"   {sec}: {figs}")
PYEOF
step bench_sim 120 $PY scripts/bench_sim.py --sizes 16,32 --json > "$OUT/bench_sim.json"
cat "$OUT/bench_sim.json" | head -c 2000; echo
step experiment_smoke 120 $PY experiments/inference_vs_baselines.py --smoke --out "$OUT/inference_vs_baselines"
step sharding_test 120 $PY -m pytest -q tests/test_sharding.py -p no:cacheprovider
exit $status
