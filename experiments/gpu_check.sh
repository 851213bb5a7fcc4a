#!/usr/bin/env bash
# The GPU check (issue 6): run on a CUDA machine from the repository root.
#   bash experiments/gpu_check.sh [OUT_DIR]
# 1. the benchmark on CUDA (matmul reference, naive vs framework training with bf16 autocast and
#    channels_last, inference); 2. the default classifier run, both losses, on the GPU;
# 3. a full paper-size run: 100 epochs on 10,000 synthetic pairs at difficulty 0.5 (the harder setting).
# Prints pairs/s and wall times.
set -euo pipefail
OUT=${1:-outputs/gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 WANDB_MODE=offline
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
$PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"

# Generate the data sets first, in parallel on the CPU cores (cached under data/).
$PY - <<'PY'
from irisgan.data.synthetic_pairs import ensure_synthetic_pairs
import os, time
t = time.time()
# (pairs, split, difficulty): the default run's sets (0.0), the paper-size run's (0.5), the benchmark's.
for n, split, difficulty in ((4000, "train", 0.0), (1000, "test", 0.0), (10000, "train", 0.5), (1000, "test", 0.5),
                             (4096, "bench", 0.5)):
    ensure_synthetic_pairs("data/synthetic_pairs", n_pairs=n, seed=0, split=split, difficulty=difficulty,
                           workers=os.cpu_count())
print(f"synthetic data ready in {time.time() - t:.0f} s")
PY

start=$(date +%s)
$PY -m irisgan.bench --device cuda --steps 40 --warmup 5 --n-pairs 4096 --workers 2 --seconds 3 \
    --skip extract,predict --data-dir data/synthetic_pairs --out "$OUT/bench_cuda.json" | tail -n 60
echo "bench: $(( $(date +%s) - start )) s"

for loss in bce bce_auc; do
  start=$(date +%s)
  $PY -m irisgan.train stage=ran loss=$loss trainer=gpu logger=csv hydra.run.dir="$OUT/default_$loss" \
      callbacks.progress_bar.refresh_rate=50 > "$OUT/default_$loss.log" 2>&1 || tail -n 30 "$OUT/default_$loss.log"
  echo "default $loss: $(( $(date +%s) - start )) s"
  $PY -c "import json; m=json.load(open('$OUT/default_$loss/metrics.json')); print({k: round(m[k], 4) for k in ('val/auroc','test/auroc','test/acc_at_thr','train_pairs_per_s_last_epoch','wall_time_s')})"
done

start=$(date +%s)
$PY -m irisgan.train stage=ran loss=bce_auc trainer=gpu logger=csv hydra.run.dir="$OUT/paper_size_10k" \
    data.synthetic.n_pairs=10000 data.synthetic.difficulty=0.5 trainer.max_epochs=100 callbacks.progress_bar.refresh_rate=200 \
    > "$OUT/paper_size_10k.log" 2>&1 || tail -n 30 "$OUT/paper_size_10k.log"
echo "paper-size 100 epochs x 10k pairs: $(( $(date +%s) - start )) s"
$PY -c "import json; m=json.load(open('$OUT/paper_size_10k/metrics.json')); print({k: round(m[k], 4) for k in ('val/auroc','test/auroc','test/acc_at_thr','train_pairs_per_s_last_epoch','wall_time_s')})"
