"""Held-out mAP of detector files (.pt, .onnx, .engine) with Ultralytics' `model.val()`.

Usage:
    OMP_NUM_THREADS=1 python training/detector/evaluate.py --data out/detector_data/data.yaml \
        src/edge_perception/models/detector/waste_detector.pt \
        src/edge_perception/models/detector/waste_detector.onnx

The data YAML's `val` split is the held-out set (built from TrashNet val objects only).
Fixed-shape exports are evaluated at batch 1 and their export size.
"""
import argparse
import json
from pathlib import Path
import sys

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train import evaluate  # noqa: E402


def main(argv=None):
    """Print {file: {mAP50, mAP50-95, precision, recall}} as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data', type=Path, required=True)
    parser.add_argument('--imgsz', type=int, default=320)
    parser.add_argument('models', type=Path, nargs='+')
    args = parser.parse_args(argv)
    report = {str(m): evaluate(m, args.data, args.imgsz, 16 if m.suffix == '.pt' else 1)
              for m in args.models}
    print(json.dumps(report, indent=1))


if __name__ == '__main__':
    main()
