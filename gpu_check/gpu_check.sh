#!/usr/bin/env bash
# The GPU check: a one-minute preflight, then vanilla Table 4 at paper scale (five datasets, AE and AR)
# and Table 5's loss_ce group on ml-1m (AE and AR): all twelve cases at once on the one GPU, each under
# a time cap, packed into one archive, with a short summary printed last. The whole script keeps to GPU_CHECK_SECONDS (default 420 s = 7 minutes).
#
# Built for a bare machine without network that receives only this working tree (no .git, nothing
# beside it). Before sending the checkout, prepare the data folder that travels inside it:
#     SARBENCH_DATA=/path/to/data python gpu_check/prepare_gpu_data.py  # -> .gpu-data/ (ignored by git)
# Then, on the GPU machine:
#     OUT=/folder/for/results bash gpu_check/gpu_check.sh
# It writes three files into $OUT (default: gpu-check-out/ in the checkout):
#     gpu-check.tar.gz         records, report, per-epoch logs, step logs, preflight results, summary
#     gpu-check-models.tar.gz  best weights of the finished cases, ml-1m first, up to 15 MiB
#     summary.txt              the summary (also printed last)
# The archive is rewritten every minute and when the script is stopped (SIGTERM, SIGINT, SIGHUP: a
# trap stops the running step, builds the report from the records there are, and packs), so a run
# killed from outside still returns its logs and finished records.
#
# Nothing is installed and nothing is fetched: the plugin is loaded from this source tree
# (PYTHONPATH and -p sarbench.plugin, with plugin autoloading off so that every machine runs the same
# plugins) and pip is pointed at no index. Python needs torch (with CUDA), pytest, pytest-xdist,
# hypothesis, numpy, scipy, pandas, tabulate, matplotlib and tqdm. The records name the commit from
# .gpu-data/COMMIT (SARBENCH_COMMIT) and the GPU.
#
# Environment:
#   GPU_CHECK_SECONDS       budget of the whole script (default 420); every step's timeout is cut to fit
#   GPU_CHECK_CASE_MINUTES  per-case training cap (default: what the budget leaves after the preflight,
#                           at most 4); a capped case is tested on its best state and stored stopped="time"
#   GPU_CHECK_WORKERS       cases at once (default 12: all of them)
#   GPU_CHECK_DESIGN=0      leave out the Table 5 cases
#   GPU_CHECK_PREFLIGHT=0   skip the preflight
#   GPU_CHECK_WORK          working folder (default: a new temporary folder)
#   GPU_CHECK_REHEARSAL=1   CPU rehearsal (tests/test_gpu_check.py runs it in CI): the same steps on the
#                           CPU with tiny cases (video at smoke scale, one epoch each, two at once)
#   PYTHON                  the interpreter (default: python3)
#
# Plan for the 7 minutes: preflight ~60 s (CUDA unit tests, two epochs of the synthetic AE and AR
# cases with --gpu, a kill-and-resume of one case, the ml-1m epoch benchmark); the ten cases at once,
# each capped at ~4 min, plus ~50 s for start-up, the last epoch and the tests; the report and the
# archives ~20 s; the rest is slack. Estimated work per epoch (matrix products, forward and backward,
# counted as tools/epoch_speed.py counts them; batches of 256):
#       case       batches  TFLOP  logits (G)       case       batches  TFLOP  logits (G)
#       ml-1m AR       24    1.48     2.2           ml-1m AE       24    0.78     0.4
#       beauty AR     191    5.56    13.5           beauty AE     204    3.70     8.6
#       video AR      120    1.89     4.3           video AE      122    1.24     2.6
#       sports AR     140    1.58     3.5           sports AE     140    1.08     2.1
#       yelp AR       119    1.92     4.4           yelp AE       119    1.22     2.5
# One epoch of all ten: 20.5 TFLOP, 48 G logits, 1,203 batches. Estimate on the H200 in fp32 (no
# tensor cores; ~67 TFLOP/s peak, 25 assumed for these thin products of inner size 65): 0.8 s of
# products, 0.3 s of passes over the logits (~24 bytes each at ~4.3 TB/s), ~1.2 s of small kernels
# (1,203 batches x ~1 ms), ~0.1 s of validation scoring: ~2.5 s of device time per round of ten
# epochs, 2.5-5 s of wall time with ten processes sharing the device. Within a 4-minute cap that is
# roughly 50-100 epochs per case (ml-1m more, beauty fewer); an ml-1m AR epoch alone ~0.3-0.5 s (the
# preflight measures it; on 2 CPU threads it takes 20-30 s). The CPU runs of ml-1m took more than
# 103 (AR) and 136 (AE) epochs without reaching the early stop (reports/baseline/paper/README.md);
# no other dataset has a paper-scale run yet. So expect most cases, AE above all, to stop on the
# cap: their records say stopped="time" and their numbers are lower bounds. The cap is the safety
# net: the plan holds whatever the epoch time turns out to be.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT" || exit 1
START=$(date +%s)
REHEARSAL=${GPU_CHECK_REHEARSAL:-0}
# Step windows are stretched by SLOW in the rehearsal: a loaded CI machine is slower than the plan, and
# a rehearsal that times out tests nothing (GPU_CHECK_SLOW; 3 by default in the rehearsal, 1 on the GPU).
if [ "$REHEARSAL" = 1 ]; then SLOW=${GPU_CHECK_SLOW:-3}; else SLOW=${GPU_CHECK_SLOW:-1}; fi
BUDGET=${GPU_CHECK_SECONDS:-$((420 * SLOW))}
DEADLINE=$((START + BUDGET))
OUT="${OUT:-$ROOT/gpu-check-out}"
WORK="${GPU_CHECK_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")}"
DATA="$ROOT/.gpu-data"
PY="${PYTHON:-python3}"
mkdir -p "$OUT" "$WORK/logs" "$WORK/preflight" "$WORK/results" "$WORK/report" || exit 1

export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 MPLBACKEND=Agg COLUMNS=240  # wide: whole failure lines in the logs
export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1
export PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"  # ten processes on 16 cores: the CPU only feeds the device
export SARBENCH_DATA="$DATA"
if [ -f "$DATA/COMMIT" ]; then
  SARBENCH_COMMIT="$(tr -dc '0-9a-f' < "$DATA/COMMIT" | head -c 40)"
  export SARBENCH_COMMIT
fi
PYTEST=("$PY" -m pytest -p sarbench.plugin -p xdist.plugin -p no:cacheprovider)

if [ "$REHEARSAL" = 1 ]; then
  DEVICE=cpu; DEVICE_FLAG=(); SCALE=smoke; CASES=(video-AE video-AR); DATASETS=(video); UNIT_TESTS=(tests/test_gpu.py)
  DESIGN_CASES=(video-loss_ce-AE-ce video-loss_ce-AR-ce)
  PREFLIGHT_DATASET=video; SPEED_DATASETS=synthetic; SPEED_EPOCHS=1
  DEFAULT_CAP_S=0.6; WORKERS=${GPU_CHECK_WORKERS:-2}; PACK_EVERY=10; PREFLIGHT_S=$((300 * SLOW))
else
  DEVICE=cuda; DEVICE_FLAG=(--gpu); SCALE=paper; DATASETS=(ml-1m beauty video sports yelp); UNIT_TESTS=(tests)
  CASES=(ml-1m-AE ml-1m-AR beauty-AE beauty-AR video-AE video-AR sports-AE sports-AR yelp-AE yelp-AR)
  # Table 5 beside Table 4: the paper's loss_ce group on ml-1m (GPU_CHECK_DESIGN=0 leaves it out)
  DESIGN_CASES=(ml-1m-loss_ce-AE-ce ml-1m-loss_ce-AR-ce)
  PREFLIGHT_DATASET=synthetic; SPEED_DATASETS=ml-1m; SPEED_EPOCHS=3
  DEFAULT_CAP_S=240; WORKERS=${GPU_CHECK_WORKERS:-12}; PACK_EVERY=60; PREFLIGHT_S=120
fi
export GPU_CHECK_PREFLIGHT_DATASET="$PREFLIGHT_DATASET"
REPORT_S=60      # the report after the cases
FINISH_S=15      # packing and the summary
MAIN_EXTRA_S=60  # a case beyond its cap: start-up, the epoch under way, the tests, the record

stamp() { echo "$(( $(date +%s) - START ))s"; }
left() { echo $(( DEADLINE - $(date +%s) )); }
say() { echo "[gpu_check $(stamp)] $*"; }

# --- steps: each runs in the background under `timeout` (its own process group), logs to logs/NAME.log
# and adds a line to steps.tsv: name, status, seconds, limit, note.
STEP_PID=""; STEP_NAME=""; STEP_T0=0; STEP_LIMIT=0
note_step() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5:-}" >> "$WORK/steps.tsv"; }

# fit WANT RESERVE: WANT seconds, or fewer so that RESERVE seconds of the budget stay after the step
fit() { local room=$(( $(left) - $2 )); echo $(( $1 < room ? $1 : room )); }
# fit_preflight WANT: WANT seconds, or fewer so that the preflight ends PREFLIGHT_S after the start
fit_preflight() {
  local room=$(( START + PREFLIGHT_S - $(date +%s) )) want
  want=$(fit "$1" "$FINISH_S")
  echo $(( want < room ? want : room ))
}

run_step() {  # run_step NAME LIMIT CMD...; returns the command's exit status (124: timed out, 125: skipped)
  local name=$1 limit=$2 rc status secs; shift 2
  if [ "$limit" -lt 5 ]; then
    note_step "$name" skipped 0 "$limit" "no time left in the budget"
    say "$name: skipped, no time left"
    return 125
  fi
  say "$name (up to ${limit}s)"
  STEP_NAME=$name; STEP_T0=$(date +%s); STEP_LIMIT=$limit
  timeout -k 10 "$limit" "$@" > "$WORK/logs/$name.log" 2>&1 &
  STEP_PID=$!
  wait "$STEP_PID"; rc=$?
  STEP_PID=""; STEP_NAME=""
  secs=$(( $(date +%s) - STEP_T0 ))
  case $rc in
    0) status=ok ;;
    124|137) status=timeout ;;
    *) status="exit-$rc" ;;
  esac
  note_step "$name" "$status" "$secs" "$limit" "${NOTE:-}"
  say "$name: $status after ${secs}s"
  NOTE=""
  return "$rc"
}

stop_step() {  # the step under way, with everything it started
  [ -n "$STEP_PID" ] || return 0
  kill -TERM -- "-$STEP_PID" 2>/dev/null || kill -TERM "$STEP_PID" 2>/dev/null
  for _ in 1 2 3 4 5; do kill -0 "$STEP_PID" 2>/dev/null || break; sleep 1; done
  kill -KILL -- "-$STEP_PID" 2>/dev/null
  note_step "$STEP_NAME" stopped "$(( $(date +%s) - STEP_T0 ))" "$STEP_LIMIT" "stopped by $1"
  STEP_PID=""; STEP_NAME=""
}

# --- packing: everything but weights and checkpoints, written atomically into $OUT
pack() {
  local part="$OUT/gpu-check.tar.gz.part"
  tar -C "$WORK" -czf "$part" --exclude='*.pt' --exclude='*.pt.tmp' --exclude='./results/checkpoints' \
      --exclude='./results/models' . 2>/dev/null
  [ -s "$part" ] && mv -f "$part" "$OUT/gpu-check.tar.gz"
  rm -f "$part"
}

PACKER=""
start_packer() {
  ( trap - TERM INT HUP; while sleep "$PACK_EVERY"; do pack; done ) >/dev/null 2>&1 &
  PACKER=$!
}
stop_packer() { [ -n "$PACKER" ] && kill "$PACKER" 2>/dev/null; wait "$PACKER" 2>/dev/null; PACKER=""; }

write_summary() {  # and the weights archive
  if ! timeout 60 "$PY" gpu_check/gpu_check_steps.py summary --work "$WORK" --limit-mib 15 \
       --models-archive "$OUT/gpu-check-models.tar.gz" > "$WORK/logs/summary.log" 2>&1; then
    { echo "GPU check summary (the summary step failed: see logs/summary.log)"; echo "steps:"
      sed 's/^/  /' "$WORK/steps.tsv" 2>/dev/null; } > "$WORK/summary.txt"
  fi
}

FINISHED=""
finish() {  # finish REASON: report (if missing), summary, archives, summary printed last
  [ -n "$FINISHED" ] && return 0
  FINISHED=1
  stop_packer
  pack
  if [ ! -s "$WORK/report/report.md" ] && ls "$WORK"/results/*.json > /dev/null 2>&1; then
    local limit=$REPORT_S
    [ "$1" = normal ] || limit=30
    run_step report "$limit" "$PY" -m sarbench.cli report "$WORK/results" --out "$WORK/report"
  fi
  write_summary
  pack
  {
    cat "$WORK/summary.txt"
    echo "returned files in $OUT (at most 8 files of 16 MiB come back):"
    for f in "$OUT"/*; do
      [ -f "$f" ] && [[ "$f" != "$OUT/summary.txt"* ]] && echo "  $(basename "$f") $(du -k "$f" | cut -f1) KiB"
    done
    echo "  summary.txt"
  } > "$OUT/summary.txt.part"
  mv -f "$OUT/summary.txt.part" "$OUT/summary.txt"
  echo
  cat "$OUT/summary.txt"
}

on_signal() {  # on_signal NAME STATUS
  trap - TERM INT HUP
  say "caught SIG$1 during ${STEP_NAME:-no step}: stopping it and packing what there is"
  echo "SIG$1 after $(stamp) of the ${BUDGET}s budget, during ${STEP_NAME:-no step}" > "$WORK/stopped_by.txt"
  stop_step "SIG$1"
  finish "SIG$1"
  exit "$2"
}
trap 'on_signal TERM 143' TERM
trap 'on_signal INT 130' INT
trap 'on_signal HUP 129' HUP

{
  echo "mode: $([ "$REHEARSAL" = 1 ] && echo "CPU rehearsal" || echo GPU); scale $SCALE; cases: ${CASES[*]}"
  echo "budget ${BUDGET}s; workers $WORKERS; commit ${SARBENCH_COMMIT:-unknown (no .gpu-data/COMMIT)}"
} > "$WORK/settings.txt"
say "work folder $WORK; results to $OUT"
start_packer

# --- the environment and the data: a loud failure, never an all-skip
REQUIRE=(); [ "$REHEARSAL" = 1 ] || REQUIRE=(--require-cuda)
{ command -v nvidia-smi > /dev/null && timeout 20 nvidia-smi; } > "$WORK/logs/nvidia-smi.log" 2>&1
if ! run_step env "$(fit 60 "$FINISH_S")" "$PY" gpu_check/gpu_check_steps.py env --datasets "${DATASETS[@]}" "${REQUIRE[@]}"; then
  sed -n '/FAILED/,$p' "$WORK/logs/env.log" >&2
  echo "environment check failed: see logs/env.log" > "$WORK/stopped_by.txt"
  finish failed
  exit 1
fi

# --- preflight (~1 minute): a CUDA bug costs this, not the whole window
FAILED=(); BROKEN=""
if [ "${GPU_CHECK_PREFLIGHT:-1}" != 0 ]; then
  # the preflight as a whole ends PREFLIGHT_S (GPU: 120 s) after the start, whatever each step takes
  run_step preflight-unit "$(fit_preflight $((60 * SLOW)))" "${PYTEST[@]}" "${UNIT_TESTS[@]}" -m gpu "${DEVICE_FLAG[@]}" \
    --continue-on-collection-errors -q -rA \
    || FAILED+=(preflight-unit)
  run_step preflight-two-epochs "$(fit_preflight $((60 * SLOW)))" "${PYTEST[@]}" gpu_check/gpu_two_epochs.py "${DEVICE_FLAG[@]}" \
    --results "$WORK/preflight/results" --report-dir "$WORK/preflight/report" -q -rA
  rc=$?
  # a crash or a failed check here would break every case alike: skip them and return in a minute
  # (a step that only ran out of time says nothing of the kind)
  if [ "$rc" -ne 0 ]; then FAILED+=(preflight-two-epochs); case $rc in 124|125|137) ;; *) BROKEN=1 ;; esac; fi
  run_step preflight-resume "$(fit_preflight $((90 * SLOW)))" "$PY" gpu_check/gpu_check_steps.py resume --device "$DEVICE" \
    --dataset "$PREFLIGHT_DATASET" --results "$WORK/preflight/resume" --timeout $((85 * SLOW)) \
    || FAILED+=(preflight-resume)
  run_step preflight-speed "$(fit_preflight $((60 * SLOW)))" "$PY" tools/epoch_speed.py --device "$DEVICE" \
    --datasets $SPEED_DATASETS --epochs "$SPEED_EPOCHS" --out "$WORK/preflight/speed_epoch.md" \
    || FAILED+=(preflight-speed)
  pack
fi

# --- the ten cases at once, each under the cap
if [ -n "${BROKEN:-}" ]; then
  note_step main skipped 0 0 "two epochs on the device failed in the preflight: see logs/preflight-two-epochs.log"
  say "main: skipped, the two-epoch preflight failed"
else
  room=$(( $(left) - REPORT_S - FINISH_S ))
  cap_s=$(awk -v want="${GPU_CHECK_CASE_MINUTES:-0}" -v dflt="$DEFAULT_CAP_S" -v room="$room" -v extra="$MAIN_EXTRA_S" \
    'BEGIN { s = want > 0 ? want * 60 : dflt; if (want <= 0 && s > room - extra) s = room - extra; printf "%.1f", s }')
  if awk -v s="$cap_s" 'BEGIN { exit !(s < 0.5) }'; then
    note_step main skipped 0 "$room" "no time left for the cases"
    say "main: skipped, no time left"
  else
    cap_min=$(awk -v s="$cap_s" 'BEGIN { printf "%.3f", s / 60 }')
    echo "per-case cap ${cap_min} min; cases: ${CASES[*]}" >> "$WORK/settings.txt"
    ids=(); for c in "${CASES[@]}"; do ids+=("bench/test_vanilla.py::vanilla[$c-ce]"); done
    if [ "${GPU_CHECK_DESIGN:-1}" != 0 ]; then
      for c in "${DESIGN_CASES[@]}"; do ids+=("bench/test_design.py::design[$c]"); done
    fi
    NOTE="cap ${cap_min} min per case, $WORKERS at once"
    run_step main "$room" "${PYTEST[@]}" "${ids[@]}" "${DEVICE_FLAG[@]}" --scale "$SCALE" \
      --case-minutes "$cap_min" -n "$WORKERS" --dist load --datasets "$(IFS=,; echo "${DATASETS[*]}")" \
      --results "$WORK/results" \
      --report-dir "$WORK/report" -q -rA --tb=short
    main_rc=$?
    # 0: every case passed; 1: some failed their checks (results all the same); else the run broke
    [ "$main_rc" -le 1 ] || FAILED+=(main)
  fi
fi

finish normal
[ ${#FAILED[@]} -eq 0 ] || { echo "gpu_check: failed steps: ${FAILED[*]}" >&2; exit 1; }
exit 0
