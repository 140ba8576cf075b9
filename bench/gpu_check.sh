#!/usr/bin/env bash
# CUDA epoch speed, then vanilla Table 4 at paper scale on one GPU; about 8 minutes of wall time.
#
# Chosen in advance (estimated from the CPU epoch times and a GPU speed-up of ~20-40x): the ml-1m
# and video cases, AE and AR (4 of the 10). beauty, sports and yelp cases are left out: their
# catalogues and user counts make a run to early stopping take longer than the budget allows.
# Records go to $OUT/results and the report to $OUT/reports (OUT defaults to the repository root),
# ready to be committed as the paper-scale baseline (reports/baseline/paper).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-.}"
export SARBENCH_DATA="${SARBENCH_DATA:-../shared/data}"
python -m pip install --quiet -e . >/dev/null 2>&1 || true
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
# The CUDA epoch benchmark first (ml-1m and beauty, 3 epochs each, peak GPU memory): about a minute.
timeout 150 python tools/epoch_speed.py --device cuda --epochs 3 --out "$out/speed_epoch_cuda.md" || true
timeout "${GPU_CHECK_SECONDS:-480}" python -m pytest bench/test_vanilla.py -m vanilla --gpu --scale paper \
  -k "ml-1m or video" -p no:cacheprovider \
  --results "$out/results" --report-dir "$out/reports" -x -q 2>&1 | tee "$out/gpu_check.log"
exit "${PIPESTATUS[0]}"
