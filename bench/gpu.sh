#!/usr/bin/env bash
# The performance suite on a CUDA machine, in one go: both engines in bfloat16, the abstractive one
# again in float16, GPU-sized batching knobs. Needs the repo's .venv (make test) and, for real
# abstractive figures, a checkpoint folder (e.g. facebook/bart-large-cnn downloaded elsewhere).
#
#   bench/gpu.sh [ABSTRACTIVE_MODEL_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
model=()
if [[ $# -ge 1 ]]; then model=(--abstractive-model "$1"); fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee bench/results/gpu.txt
# On a GPU the encoder and generator want far larger passes than the CPU defaults.
knobs=(--set encoder_batch_tokens=16384 --set max_batch_size=64 --set max_batch_tokens=65536)
$PY -m bench.perf --device cuda --dtype bfloat16 "${knobs[@]}" "${model[@]}" --concurrency 1,4,16,32,64,128 \
  --out bench/results/perf-gpu-bf16.json
$PY -m bench.perf --device cuda --dtype float16 --engines abstractive "${knobs[@]}" "${model[@]}" --no-profile \
  --out bench/results/perf-gpu-fp16.json
