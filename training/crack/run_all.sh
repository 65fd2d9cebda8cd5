#!/usr/bin/env bash
# Crack MoE v3 pipeline (issue 8), from the three crack sets to the shipped files.
#   bash training/crack/run_all.sh [DATA_ROOT (default ../shared/data)] [RUN_DIR]
# DATA_ROOT holds deepcrack_train, crack_uav and crack_crackmap (see its MANIFEST.md).
# Budget: about 80 core-minutes of training (one thread per process, JOBS processes side by side,
# default 2), then gates, exports and figures (about 15 min).
# 1. experts (lite0_unet, lite0_s8, lite0_half), leave-one-dataset-out (LODO) folds: train on the
#    two other sets' train splits, predict the left-out set (out-of-fold, OOF) and the training
#    sets' val splits; final experts: train on all three sets' train splits (bundled samples never
#    trained on)
# 2. gates on OOF IoU labels (per LODO fold and final) + thresholds calibrated per configuration on
#    OOF predictions of the sets each fold did not leave out
# 3. ONNX export (opset 17, checked against torch, < 10 MB) of every fold; final -> the package
# 4. figures: LODO table, in-domain test splits, bundled samples, speed (MODEL_CARD.md)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
DATA="${1:-../shared/data}"
RUN="${2:-training/crack/runs/v3}"
export OMP_NUM_THREADS=1
PY=.venv/bin/python
T=training/crack
MODELS=src/edge_perception/models/crack
EXPERTS=lite0_unet,lite0_s8,lite0_half
# One line per training job: fold expert steps crop (longest first, so the queue ends together).
JOB_LIST="final lite0_unet 1200 192
deepcrack lite0_unet 800 192
uav lite0_unet 800 192
crackmap lite0_unet 800 192
final lite0_half 900 256
deepcrack lite0_half 700 256
uav lite0_half 700 256
crackmap lite0_half 700 256
final lite0_s8 600 192
deepcrack lite0_s8 500 192
uav lite0_s8 500 192
crackmap lite0_s8 500 192"
echo "$JOB_LIST" | xargs -P "${JOBS:-2}" -L 1 bash -c \
  "$PY $T/train_experts.py '$DATA' --out '$RUN' --fold \$0 --experts \$1 --steps \$2 --crop \$3 \
   > /dev/null"
$PY $T/train_gate.py "$DATA" --run "$RUN" --experts $EXPERTS
for fold in deepcrack uav crackmap; do
  $PY $T/export_onnx.py --run "$RUN" --fold $fold --experts $EXPERTS
done
$PY $T/export_onnx.py --run "$RUN" --fold final --out $MODELS --experts $EXPERTS
SETS="deepcrack=$DATA/deepcrack_train uav=$DATA/crack_uav crackmap=$DATA/crack_crackmap"
.venv/bin/edge-perception eval-crack --sets $SETS --lodo-run "$RUN" --json $T/lodo_results.json
.venv/bin/edge-perception eval-crack --sets $SETS --stems-json "$RUN/splits.json" --split test \
  --json $T/test_results.json
.venv/bin/edge-perception eval-crack --compare --images src/edge_perception/data/samples/crack/images \
  --masks src/edge_perception/data/samples/crack/masks --json $T/samples_results.json
.venv/bin/edge-perception bench-crack --size 512 --threads 2 --json $T/bench_512_t2.json
