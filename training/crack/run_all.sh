#!/usr/bin/env bash
# Crack MoE v2 pipeline (issue 8), from the three crack sets to the shipped files.
#   bash training/crack/run_all.sh [DATA_ROOT (default ../shared/data)] [RUN_DIR]
# DATA_ROOT holds deepcrack_train, crack_uav and crack_crackmap (see its MANIFEST.md).
# Budget: about 75 min of wall clock on a shared 2-core machine (one thread per process; the
# five training processes side by side: the two final experts and the three LODO folds).
# 1. experts, leave-one-dataset-out (LODO) folds: train on the two other sets' train splits,
#    predict the left-out set (out-of-fold) and the training sets' val splits;
#    final experts: train on all three sets' train splits (bundled samples never trained on)
# 2. gates on OOF soft-IoU labels (per LODO fold and final) + thresholds calibrated per
#    configuration on each fold's val images
# 3. ONNX export (opset 17, checked against torch, < 10 MB) of every fold; final -> the package
# 4. figures: LODO table, in-domain test splits, bundled samples, speed (MODEL_CARD.md)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
DATA="${1:-../shared/data}"
RUN="${2:-training/crack/runs/v2}"
export OMP_NUM_THREADS=1
PY=.venv/bin/python
T=training/crack
MODELS=src/edge_perception/models/crack
# Five independent one-thread processes (they share nothing but the read-only data).
PIDS=()
$PY $T/train_experts.py "$DATA" --fold final --out "$RUN" --experts lite0_unet --steps 500 &
PIDS+=($!)
$PY $T/train_experts.py "$DATA" --fold final --out "$RUN" --experts lite0_s8 --steps 400 &
PIDS+=($!)
for fold in deepcrack uav crackmap; do
  $PY $T/train_experts.py "$DATA" --fold $fold --out "$RUN" --steps 160 &
  PIDS+=($!)
done
for pid in "${PIDS[@]}"; do wait "$pid"; done
$PY $T/train_gate.py "$DATA" --run "$RUN"
for fold in deepcrack uav crackmap; do
  $PY $T/export_onnx.py --run "$RUN" --fold $fold
done
$PY $T/export_onnx.py --run "$RUN" --fold final --out $MODELS
SETS="deepcrack=$DATA/deepcrack_train uav=$DATA/crack_uav crackmap=$DATA/crack_crackmap"
.venv/bin/edge-perception eval-crack --sets $SETS --lodo-run "$RUN" --json $T/lodo_results.json
.venv/bin/edge-perception eval-crack --sets $SETS --stems-json "$RUN/splits.json" --split test \
  --json $T/test_results.json
.venv/bin/edge-perception eval-crack --compare --images src/edge_perception/data/samples/crack/images \
  --masks src/edge_perception/data/samples/crack/masks --json $T/samples_results.json
.venv/bin/edge-perception bench-crack --size 512 --threads 2 --json $T/bench_512_t2.json
