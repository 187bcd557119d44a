#!/usr/bin/env bash
# The GPU figures of docs/RESULTS.md in one go, for whoever has a CUDA GPU: about 5 minutes
# on one data-centre GPU, under 8 by design. Needs petal installed with a CUDA build of torch
# (onnxruntime-gpu is used when installed, and is not needed) and the flowers photos.
#
#   benchmarks/gpu.sh [DATA] [OUT]      # defaults: ../shared/data/flowers runs/gpu
#   DEVICE=cpu benchmarks/gpu.sh /tmp/slice /tmp/dry   # a dry run of the script itself:
#       the CPU only, one epoch a training, 5 s of serving (minutes on a small folder)
#
# Prints one line per figure and leaves each step's log and JSON in OUT:
#   1. fast-transfer from JPEGs, cold caches (decode + trunk features on the GPU + head)
#   2. original-transfer (whole EfficientNet-Lite0 fine-tuned), decoded photos cached
#   3. fast-resnet9 from scratch
#   4. batch inference (torch on the GPU; ONNX Runtime too with its CUDA provider)
#   5. petal serve on the GPU, 8 clients, 20 s
#   6. petal run, the main job, with both LR finders
# Targets (docs/RESULTS.md): 1 <= 20 s, 2 <= 60 s.
set -euo pipefail

DATA=${1:-../shared/data/flowers}
OUT=${2:-runs/gpu}
PETAL=${PETAL:-$(command -v petal || echo .venv/bin/petal)}
PYTHON=${PYTHON:-$(dirname "$PETAL")/python}
DEVICE=${DEVICE:-cuda}
export PETAL_CACHE="$OUT/cache"  # a cold cache of its own: nothing measured is pre-computed
# --folds 0: what petal does by default on the flowers set (431 validation photos), also on
# a small folder, where it would cross-validate
TRAIN=(--folds 0 --no-progress)
RUN=(--no-progress)
SERVE_SECONDS=20
if [ "$DEVICE" = cpu ]; then  # the dry run
    export CUDA_VISIBLE_DEVICES=""
    TRAIN+=(--set epochs=1)
    RUN+=(--set-scratch epochs=1 --set-transfer epochs=1 --no-lr-find)
    SERVE_SECONDS=5
fi

if [ -e "$OUT" ]; then
    echo "$OUT exists: give a new folder (its runs are not overwritten)" >&2
    exit 1
fi
mkdir -p "$OUT"
if [ "$DEVICE" != cpu ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
        | tee "$OUT/gpu.txt"
fi
"$PYTHON" - <<'PY' | tee -a "$OUT/gpu.txt"
import onnxruntime, torch
print(f"torch {torch.__version__}, CUDA {torch.cuda.is_available()}; onnxruntime "
      f"{onnxruntime.__version__}, providers {onnxruntime.get_available_providers()}")
PY

# timed NAME COMMAND...: runs it with its output in OUT/NAME.log; prints the wall time and
# the line petal ends a training with.
timed() {
    local name=$1 start end
    shift
    start=$EPOCHREALTIME
    "$@" >"$OUT/$name.log" 2>&1 || { echo "$name FAILED (see $OUT/$name.log)"; tail -5 "$OUT/$name.log"; return 1; }
    end=$EPOCHREALTIME
    printf '%-22s %6.1f s  %s\n' "$name" "$(echo "$end - $start" | awk '{print $1 - $3}')" \
        "$(grep -E '^(Training on|Done)' "$OUT/$name.log" | tr '\n' ' ')"
}

timed fast-transfer "$PETAL" train --data "$DATA" --recipe fast-transfer --out "$OUT/ft" "${TRAIN[@]}"
timed original-transfer "$PETAL" train --data "$DATA" --recipe original-transfer --out "$OUT/ot" "${TRAIN[@]}"
timed fast-resnet9 "$PETAL" train --data "$DATA" --recipe fast-resnet9 --out "$OUT/r9" "${TRAIN[@]}"
timed inference "$PYTHON" benchmarks/inference_throughput.py --device "$DEVICE" \
    --json "$OUT/inference_throughput.json"
grep -E '^(torch|onnx) ' "$OUT/inference.log" || true
timed serve "$PYTHON" benchmarks/serve_load.py "$OUT/ft" --device "$DEVICE" \
    --seconds "$SERVE_SECONDS" --photos "$DATA" --json "$OUT/serve_load.json"
tail -2 "$OUT/serve.log"
timed main-job "$PETAL" run --data "$DATA" --out "$OUT/main" "${RUN[@]}"
grep -E 'accuracy|Done in' "$OUT/main-job.log" | tail -3 || true
