#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md in one run: under 8 minutes on one GPU (~7 on an H200).
#
#   bash benchmarks/gpu.sh [OUT_DIR]      (default: $OUT, else docs/results/gpu)
#
# Needs python3 with torch (CUDA) and this repository's pure-torch model code (numpy,
# gymnasium); the RLlib steps also need ray[rllib] and ale-py, and are skipped, with the
# reason, where `import ray, ale_py` fails (e.g. a bare GPU machine: Ray's wheel is larger
# than what some sandboxes let travel). Every step has its own time limit, so one slow
# step cannot eat the others' time; a failed step is reported and the rest still run.
# Writes, per step, a JSON named after it into OUT_DIR, plus card.txt (nvidia-smi).
#   1. imagination.py --device cuda --device-only: pixel imagination batched vs the seed's
#      per-action loop on the card at batch 8 (the module issue's 2x target) and 256.
#   2. network_update.py --device cuda: PPO updates of the Nature CNN and of I2A (latent,
#      spatial, pixel models) in fp32 and bf16, pure torch.
#   3. learner.py --device cuda: RLlib's Learner.update(), baseline vs I2A, fp32 and bf16.
#   4. training_throughput.py --num-gpus-per-learner 1: an end-to-end iteration on Breakout
#      (PPO, spatial I2A, 512-step batches) with the learner on the GPU, fp32.
#   5. the same for spatial I2A with its EnvRunner on the GPU (learner on the CPU).
#   6. sampling.py --env-runner-device cuda: the overlap target (one EnvRunner / the raw
#      env) with the EnvRunners' modules inferring on the card (added 2026-12-05, not yet
#      run on one).
#   7. tests/test_gpu.py: the CUDA tests that the CPU suite skips (where pytest exists).
set -u
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-docs/results/gpu}}"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
# The repository's code without installing it (Ray workers, benchmark children too).
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
status=0

step() {  # step NAME LIMIT_S COMMAND...
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    echo "=== $name (limit ${limit}s)"
    if timeout "$limit" "$@"; then
        echo "=== $name: done in $((SECONDS - start))s"
    else
        echo "=== $name: FAILED or timed out (exit $?) after $((SECONDS - start))s"
        status=1
    fi
}

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu.sh: torch sees no CUDA device on this machine; nothing to measure" >&2
    exit 2
fi
mkdir -p "$OUT_DIR"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT_DIR/card.txt"

step imagination 90 "$PY" benchmarks/imagination.py --seconds 2 --device cuda --device-only \
    --json "$OUT_DIR/imagination_cuda.json"
step network_update 150 "$PY" benchmarks/network_update.py --device cuda --batch 4096 \
    --networks nature,latent,spatial,pixel --precisions fp32,bf16 --json "$OUT_DIR/network_update_cuda.json"
if "$PY" -c "import ray.rllib, ale_py" 2>/dev/null; then
    step learner 150 "$PY" benchmarks/learner.py --device cuda --precisions fp32,bf16 \
        --json "$OUT_DIR/learner_cuda.json"
    # One fp32 run of both agents (each in its own process: Ray's start, the build, a
    # warm-up iteration, one timed iteration and the parts alone): two 60 s runs of 2
    # iterations at 1024 steps would be cut short by sampling alone (spatial I2A samples
    # ~100-200 env steps/s per EnvRunner on a CPU). bf16's gain is measured by the
    # learner and network_update steps above.
    step throughput_fp32 150 "$PY" benchmarks/training_throughput.py --envs breakout \
        --agents ppo,spatial --iterations 1 --parts 1 --batch 512 --num-gpus-per-learner 1 \
        --learner-precision fp32 --json "$OUT_DIR/throughput_cuda_fp32.json"
    # Spatial I2A with its EnvRunner imagining on the card (learner on the CPU): the
    # first run found I2A bound by its EnvRunner's CPU inference.
    step throughput_env_runner_gpu 100 "$PY" benchmarks/training_throughput.py --envs breakout \
        --agents spatial --iterations 1 --parts 1 --batch 512 --num-gpus-per-env-runner 1 \
        --json "$OUT_DIR/throughput_cuda_env_runner.json"
    # The overlap target (one EnvRunner / the raw env >= 0.7) with inference on the card:
    # on two CPU cores the module's own core time caps it at ~0.56 (docs/benchmarks.md).
    step sampling_env_runner_gpu 120 "$PY" benchmarks/sampling.py --seconds 2 --num-envs 32 \
        --env-runner-device cuda --json "$OUT_DIR/sampling_cuda.json"
    # The CUDA tests the CPU suite skips (~1 minute on an H200).
    if "$PY" -c "import pytest" 2>/dev/null; then
        step gpu_tests 150 "$PY" -m pytest -q -p no:cacheprovider tests/test_gpu.py
    fi
else
    echo "=== learner, throughput, GPU tests: skipped (python3 cannot import ray.rllib and ale_py here)"
fi
echo "gpu.sh: figures in $OUT_DIR (exit $status)"
exit $status
