"""Train the waste detector from scratch on CPU, export ONNX, evaluate both on held-out data.

Usage (about 45 min on 1 CPU thread with the defaults; see MODEL_CARD.md for the run we ship):
    OMP_NUM_THREADS=1 python training/detector/train.py --data out/detector_data/data.yaml \
        --project out/detector_runs --name waste --hours 0.68 \
        --ship src/edge_perception/models/detector

Steps: Ultralytics training of training/detector/yolov8_waste.yaml (no pre-trained weights: the
model hubs are unreachable), ONNX export at the fixed training image size, `model.val()` of the .pt
and of the .onnx (ONNX Runtime, CPU) on the held-out split; the figures go to
<run>/metrics.json; with --ship the weights are copied to the package's models folder.
"""
import argparse
import json
import os
from pathlib import Path
import shutil
import time

HERE = Path(__file__).resolve().parent


def evaluate(weights, data, imgsz, batch):
    """mAP50 and mAP50-95 of a .pt or .onnx model on the data set's val split."""
    from ultralytics import YOLO
    metrics = YOLO(str(weights), task='detect').val(
        data=str(data), imgsz=imgsz, batch=batch, device='cpu', workers=0, plots=False,
        verbose=False)
    return {'mAP50': round(float(metrics.box.map50), 4),
            'mAP50-95': round(float(metrics.box.map), 4),
            'precision': round(float(metrics.box.mp), 4),
            'recall': round(float(metrics.box.mr), 4)}


def main(argv=None):
    """Train, export, evaluate."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data', type=Path, required=True, help='data.yaml from make_dataset.py')
    parser.add_argument('--model', type=Path, default=HERE / 'yolov8_waste.yaml')
    parser.add_argument('--project', type=Path, default=Path('out/detector_runs'))
    parser.add_argument('--name', default='waste')
    parser.add_argument('--epochs', type=int, default=12)
    parser.add_argument('--imgsz', type=int, default=320)
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--hours', type=float, default=None,
                        help='wall-clock training budget; Ultralytics re-sizes the epoch count '
                             'after the first epoch to fit it (overrides --epochs)')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--fraction', type=float, default=1.0,
                        help='fraction of the train split to use (for timing runs)')
    parser.add_argument('--ship', type=Path, default=None,
                        help='copy best weights as waste_detector.{pt,onnx} into this folder')
    args = parser.parse_args(argv)

    os.environ.setdefault('OMP_NUM_THREADS', str(args.threads))
    import torch
    torch.set_num_threads(args.threads)
    from ultralytics import YOLO

    model = YOLO(str(args.model), task='detect')
    start = time.time()
    model.train(
        data=str(args.data.resolve()), epochs=args.epochs, imgsz=args.imgsz, batch=args.batch,
        device='cpu', workers=0, project=str(args.project.resolve()), name=args.name,
        exist_ok=True, pretrained=False, amp=False, plots=False, seed=0, deterministic=False,
        fraction=args.fraction, patience=100, cos_lr=True, close_mosaic=2,
        **({'time': args.hours} if args.hours else {}),
        # Top-down camera over a belt: up/down flips are as natural as left/right ones.
        flipud=0.5, degrees=10.0)
    train_s = time.time() - start
    run_dir = Path(model.trainer.save_dir)
    best = run_dir / 'weights' / 'best.pt'
    onnx_path = Path(YOLO(str(best)).export(format='onnx', imgsz=args.imgsz, dynamic=False,
                                            simplify=False, device='cpu'))
    report = {
        'train_seconds': round(train_s, 1), 'epochs': int(model.trainer.epochs),
        'imgsz': args.imgsz,
        'batch': args.batch, 'threads': args.threads,
        'pt_bytes': best.stat().st_size, 'onnx_bytes': onnx_path.stat().st_size,
        'val_pt': evaluate(best, args.data, args.imgsz, args.batch),
        'val_onnx': evaluate(onnx_path, args.data, args.imgsz, 1),
    }
    (run_dir / 'metrics.json').write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    if args.ship:
        args.ship.mkdir(parents=True, exist_ok=True)
        shutil.copy(best, args.ship / 'waste_detector.pt')
        shutil.copy(onnx_path, args.ship / 'waste_detector.onnx')


if __name__ == '__main__':
    main()
