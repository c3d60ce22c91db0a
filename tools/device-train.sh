#!/usr/bin/env bash
# GRPO-GR on CUDA in one go, for a machine with an NVIDIA GPU: a short laptop-demo run and a
# tiny InternVL3 run with `--backend cuda`, each timed, then the same demo on that machine's CPU
# for comparison.
#
# Usage (from the repo root): tools/device-train.sh BIN_DIR [OUT_DIR]
#   BIN_DIR holds `grit-train` built with --features cuda (elsewhere, carried over).
set -uo pipefail
bin=$1
out=${2:-.}
work=$(mktemp -d)
. "$(dirname "$0")/nvrtc.sh"
nvidia-smi -L

# The demo with a shorter warm start and 10 GRPO-GR steps.
demo() {
  sed -e "s|^out = .*|out = \"$work/$1\"|" -e "s|^backend = .*|backend = \"$1\"|" \
    -e 's|^steps = 750|steps = 100|' -e 's|^steps = 60|steps = 10|' \
    -e 's|^heldout_samples = 500|heldout_samples = 100|' configs/shapes-tiny.toml >"$work/$1.toml"
}
run_demo() {
  demo $1
  echo "== demo on $1"
  local start=$SECONDS
  "$bin/grit-train" --config "$work/$1.toml" 2>&1 | tee "$out/demo-$1.log" |
    grep -E "^(step|held-out|\||Error|error)" | tail -40
  echo "demo on $1: wall $((SECONDS - start)) s"
  cp "$work/$1/metrics.jsonl" "$out/metrics-$1.jsonl" 2>/dev/null
}
run_demo cuda

echo "== tiny InternVL3 on cuda"
cat >"$work/internvl.toml" <<EOF
out = "$work/internvl"
backend = "cuda"
[demo]
family = "internvl3"
train_samples = 64
heldout_samples = 16
[sft]
steps = 50
[grpo]
steps = 5
prompts_per_step = 8
group_size = 4
micro_batch = 16
rollout_batch = 32
max_new_tokens = 60
beta = 0.04
learning_rate = 5e-5
[rewards]
counting_datasets = ["shapes_count"]
[eval]
batch = 16
max_new_tokens = 60
EOF
start=$SECONDS
"$bin/grit-train" --config "$work/internvl.toml" 2>&1 | tee "$out/internvl-cuda.log" |
  grep -E "^(step|held-out|\||Error|error|demo)" | tail -30
echo "InternVL3 on cuda: wall $((SECONDS - start)) s"

run_demo cpu
