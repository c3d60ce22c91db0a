#!/usr/bin/env bash
# GPU check in one go, for a machine with an NVIDIA GPU, torch and transformers: the CUDA
# parity test and the benchmark against transformers on the same GPU (and on its CPU).
#
# Usage (from the repo root): tools/device-check.sh BIN_DIR [OUT_DIR]
#   BIN_DIR holds `parity` (the parity test binary built with --features cuda) and `grit-bench`
#   (built with --features cuda); both are built elsewhere and carried over.
set -uo pipefail
bin=$1
out=${2:-.}
export GRIT_PARITY_DIR=$PWD/tests/fixtures/qwen2_5_vl
. "$(dirname "$0")/nvrtc.sh"
nvidia-smi -L
echo "== parity on cuda"
"$bin/parity" --ignored --nocapture --test-threads 1 2>&1 | tee "$out/parity-cuda.log"
echo "== benchmark, cuda vs transformers on cuda"
"$bin/grit-bench" --backend cuda --python python3 --hf-device cuda 2>&1 | tee "$out/bench-cuda.log"
echo "== benchmark, cpu vs transformers on cpu"
"$bin/grit-bench" --backend cpu --python python3 --hf-device cpu 2>&1 | tee "$out/bench-cpu.log"
