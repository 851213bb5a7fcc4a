#!/usr/bin/env bash
# The GPU check (issue 12): one script for a 15-minute lease of one CUDA GPU that finishes in under 8 minutes.
#   bash experiments/gpu_check.sh [--budget-s 450] [--tiny]      (from anywhere; it runs in the repo root)
# It renders the synthetic data on the machine's cores, then times naive versus framework training at batch
# 128 and at the best batch (pairs/s, MFU, speed-up), inference, a torch.profiler summary, and the
# paper-size run (100 epochs, 10,000 pairs, batch 128, trainer=gpu: wall time and test AUROC). The table is
# printed and written to experiments/results/gpu_check.md and gpu_check.json (device name included); logs,
# data and the run folder go under outputs/gpu_check/. See experiments/gpu_check.py.
#
# Machines without network and without hydra-core/omegaconf/antlr4: carry them as wheels in .whl/ (ignored
# by git), built on a machine with network by `make gpu-wheels`, i.e.
#   pip download --no-deps --only-binary=:all: -d .whl hydra-core==1.3.8 omegaconf==2.3.1
#   pip wheel --no-deps antlr4-python3-runtime==4.9.3 -w .whl
# This script installs them into /tmp/irisgan-site when `import hydra` fails.
# On this workplace's device tool: run(command="bash experiments/gpu_check.sh; cp experiments/results/gpu_check.* $OUT/",
#   carry=[".whl"], timeout_s=540).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! $PY -c "import hydra, omegaconf" 2>/dev/null; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "hydra-core/omegaconf are not installed and .whl/ holds no wheels: run 'make gpu-wheels' first" >&2
    exit 1
  fi
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/irisgan-site .whl/*.whl
  export PYTHONPATH=/tmp/irisgan-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 WANDB_MODE=offline
if [[ " $* " != *" --tiny "* ]]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
exec $PY experiments/gpu_check.py "$@"
