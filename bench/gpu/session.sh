#!/usr/bin/env bash
# One device call's benchmark cases, from a case file, each under its own time limit, one after
# another. After each case everything so far goes to $OUT/results.tgz, so a call cut off at its limit
# still returns what finished. Merge what comes back with `python bench/results_table.py merge DIR`.
#
#   source bench/gpu/env.sh && bash bench/gpu/session.sh bench/gpu/next.cases [NAME ...]
#
# With NAMEs, only those cases run, in that order, each as the last line of its name in the file: a name a
# later block uses again means the later case (twelfth session: the first line of a reused name ran instead).
#
# A case file has one case a line (# starts a comment), after any VAR=VALUE settings for that case:
#   render NAME SECONDS ARGS...   bench/render_bench.py (with --progress) on /tmp/models
#   speech NAME SECONDS ARGS...   bench/speech_bench.py on /tmp/models/kani
#   codec  NAME SECONDS ARGS...   bench/codec_bench.py on /tmp/models/codec.nemo
#   kernel NAME SECONDS ARGS...   bench/snake_conv_bench.py (the fused codec kernel alone; needs no models)
#   mix    NAME SECONDS ARGS...   bench/mix_profile.py on /tmp/models/codec.nemo (its output in NAME.log only)
#   test   NAME SECONDS ARGS...   the GPU tests (tests/test_gpu.py), ARGS given to pytest
# ARGS are read as a shell reads them (quote a --case with spaces). Each case's log is in NAME.log,
# its rows in NAME/, and the times each case started and ended in marks. The setting MPS=1 runs the
# case under CUDA's Multi-Process Service (a user-space daemon, started before the case and stopped
# after it; the card's own settings are left alone): kernels of the engines' processes then run side by
# side on the GPU instead of taking turns.
set -uo pipefail
cases="$1"
shift
if [ $# -gt 0 ]; then
  picked=$(mktemp)
  for n in "$@"; do
    line=$(grep -E "^([A-Za-z_]+=[^ ]+ )*[a-z]+ $n " "$cases" | tail -n1)
    if [ -z "$line" ]; then echo "$cases: no case named $n" >&2; exit 2; fi
    echo "$line" >> "$picked"
  done
  cases="$picked"
fi
models="${BENCH_MODELS:-/tmp/models}"  # built here first if it holds no codec.nemo
results="${BENCH_RESULTS:-/tmp/results}"
out="${OUT:-/tmp/out}"
mkdir -p "$results" "$out"
begun=$SECONDS
mark() { echo "$1 at $((SECONDS - begun)) s" | tee -a "$results/marks"; }
ship() { tar czf "$out/results.tgz" -C "$(dirname "$results")" "$(basename "$results")"; }

nvidia-smi -L > "$results/gpus.txt" 2>&1
if [ ! -f "$models/codec.nemo" ]; then
  python -m renderer models tiny "$models" --size full > "$results/models.log" 2>&1
  mark "models built"
fi
declare -A ran  # a case's name, once: two lines of one name (an old block matched too) would run it twice
while read -r line; do
  case "$line" in ''|'#'*) continue ;; esac
  eval "set -- $line"
  envs=()
  while [[ "${1:-}" == [A-Za-z_]*=* ]]; do envs+=("$1"); shift; done
  kind="${1:-}" name="${2:-}" seconds="${3:-}"
  shift 3 || true
  if [ -n "${ran[$name]:-}" ]; then mark "$name skipped: a second case of that name"; continue; fi
  ran[$name]=1
  case "$kind" in
    render) cmd=(python bench/render_bench.py --models "$models" --progress --results "$results/$name" "$@") ;;
    speech) cmd=(python bench/speech_bench.py --model "$models/kani" --results "$results/$name" "$@") ;;
    codec)  cmd=(python bench/codec_bench.py --codec "$models/codec.nemo" --results "$results/$name" "$@") ;;
    kernel) cmd=(python bench/snake_conv_bench.py --results "$results/$name" "$@") ;;
    mix)    cmd=(python bench/mix_profile.py --codec "$models/codec.nemo" "$@") ;;
    test)   cmd=(python -m pytest -o addopts="" -m gpu tests/test_gpu.py -q "$@")
            envs+=(RENDERER_FULL_MODELS="$models") ;;
    *) echo "$cases: unknown kind '$kind' (render, speech, codec, kernel, mix or test)" >&2; exit 2 ;;
  esac
  mps=""
  for e in "${envs[@]}"; do [ "$e" = MPS=1 ] && mps="$results/$name.mps"; done
  if [ -n "$mps" ]; then
    mkdir -p "$mps/pipe" "$mps/log"
    export CUDA_MPS_PIPE_DIRECTORY="$mps/pipe" CUDA_MPS_LOG_DIRECTORY="$mps/log"
    if nvidia-cuda-mps-control -d < /dev/null; then mark "$name MPS on"; else mark "$name MPS could not start"; fi
  fi
  mark "$name start"
  # stdin from /dev/null: what reads it would eat the rest of the case file
  timeout "$seconds" env "${envs[@]}" "${cmd[@]}" < /dev/null > "$results/$name.log" 2>&1
  mark "$name rc=$?"
  if [ -n "$mps" ]; then
    echo quit | nvidia-cuda-mps-control
    unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
    mark "$name MPS off"
  fi
  ship
done < "$cases"
