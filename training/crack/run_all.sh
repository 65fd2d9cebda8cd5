#!/usr/bin/env bash
# Full crack MoE training pipeline (developer machine; one process at a time, one CPU thread).
#   bash training/crack/run_all.sh /work/shared/data/deepcrack_train [RUN_DIR]
# 1. experts: 5-fold out-of-fold predictions + final models (all images but the bundled samples)
# 2. gate: per-fold gates (OOF weights) + final gate, KL to softmax(OOF IoU / T)
# 3. OOF evaluation of each expert and each strategy -> training/crack/oof_results.json
# 4. ONNX export (opset 17, checked against torch) + moe.yaml -> src/edge_perception/models/crack
set -euo pipefail
DATA="${1:?usage: run_all.sh DATA_DIR [RUN_DIR]}"
RUN="${2:-training/crack/runs/v1}"
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export OMP_NUM_THREADS=1
PY=.venv/bin/python
$PY training/crack/train_experts.py "$DATA" --out "$RUN"
$PY training/crack/train_gate.py "$DATA" --run "$RUN"
$PY training/crack/evaluate_oof.py "$DATA" --run "$RUN" --json training/crack/oof_results.json
$PY training/crack/export_onnx.py --run "$RUN" --out src/edge_perception/models/crack \
  --oof-json training/crack/oof_results.json
