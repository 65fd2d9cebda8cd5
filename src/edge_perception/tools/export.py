"""`edge-perception export`: export a YOLO .pt model to ONNX or a TensorRT engine.

    edge-perception export --model PATH --format onnx|engine [--half] [--int8 --data calib.yaml]
                           [--imgsz N] [--device cuda:0]

ONNX is exported at a fixed input size (the model's training size unless --imgsz) and checked by
loading it through the detector runtime (ONNX Runtime). A TensorRT engine must be built on the
machine that runs it (same GPU and TensorRT version: build it on the Jetson); without CUDA the
command stops with a message and builds nothing. INT8 needs calibration images (--data: an
Ultralytics data YAML, e.g. the synthetic set's data.yaml; its val split is used).
"""
from pathlib import Path
import sys


def register(subparsers):
    """Add the `export` sub-command."""
    parser = subparsers.add_parser(
        'export', help='export a YOLO .pt model to ONNX or TensorRT',
        description=__doc__.split('\n')[0])
    parser.add_argument('--model', type=Path, required=True, help='trained .pt model')
    parser.add_argument('--format', choices=('onnx', 'engine'), required=True)
    parser.add_argument('--half', action='store_true', help='FP16 (engine; ONNX needs CUDA)')
    parser.add_argument('--int8', action='store_true',
                        help='INT8 engine with calibration on --data')
    parser.add_argument('--data', type=Path, default=None,
                        help='data YAML with calibration images (required by --int8)')
    parser.add_argument('--imgsz', type=int, default=None,
                        help='fixed input size (default: the size the model was trained at)')
    parser.add_argument('--device', default=None,
                        help='device for the export (default: cpu for onnx, cuda:0 for engine)')
    parser.add_argument('--workspace', type=float, default=None,
                        help='TensorRT builder workspace, GiB (default: Ultralytics auto)')
    parser.set_defaults(func=run)


def _fail(message):
    print(f'edge-perception export: {message}', file=sys.stderr)
    return 2


def run(args):
    """Validate the request, export, verify the result loads; return the exit code."""
    model_path = Path(args.model)
    if model_path.suffix != '.pt':
        return _fail(f'--model must be a .pt file (got {model_path})')
    if not model_path.is_file():
        return _fail(f'model file not found: {model_path}')
    if args.int8 and args.format != 'engine':
        return _fail('--int8 is supported for --format engine only')
    if args.int8 and args.data is None:
        return _fail('--int8 needs --data calib.yaml (images to calibrate the INT8 ranges)')
    if args.data is not None and not Path(args.data).is_file():
        return _fail(f'calibration data file not found: {args.data}')
    if args.imgsz is not None and (args.imgsz < 32 or args.imgsz % 32):
        return _fail(f'--imgsz must be a positive multiple of 32, got {args.imgsz}')

    import torch
    from edge_perception.core.detector import (
        DetectorError, YoloDetector, check_tensorrt_available)

    if args.format == 'engine':
        try:
            check_tensorrt_available()
        except DetectorError as exc:
            return _fail(f'cannot build a TensorRT engine here: {exc}')
        device = args.device or 'cuda:0'
    else:
        device = args.device or 'cpu'
        if args.half and not (torch.cuda.is_available() and device != 'cpu'):
            return _fail('--half ONNX export needs a CUDA device (use --device cuda:0); '
                         'FP16 is normally applied when building the TensorRT engine')

    from ultralytics import YOLO
    try:
        model = YOLO(str(model_path))
    except Exception as exc:  # corrupt or foreign checkpoint
        return _fail(f'could not load {model_path}: {type(exc).__name__}: {exc}')
    imgsz = args.imgsz or int((model.ckpt or {}).get('train_args', {}).get('imgsz', 640))
    kwargs = {'format': args.format, 'imgsz': imgsz, 'device': device, 'dynamic': False,
              'half': args.half, 'int8': args.int8}
    if args.format == 'onnx':
        # onnxslim is optional; Ultralytics would pip-install it for simplify=True.
        try:
            import onnxslim  # noqa: F401
            kwargs['simplify'] = True
        except ImportError:
            kwargs['simplify'] = False
    if args.data is not None:
        kwargs['data'] = str(args.data)
    if args.workspace is not None:
        kwargs['workspace'] = args.workspace
    try:
        out = Path(model.export(**kwargs))
    except Exception as exc:
        return _fail(f'export to {args.format} failed: {type(exc).__name__}: {exc}')
    try:
        detector = YoloDetector(out, device=device)
    except DetectorError as exc:
        return _fail(f'exported {out} but it does not load: {exc}')
    print(f'exported {out} ({out.stat().st_size / 1e6:.2f} MB, imgsz {imgsz}, '
          f'classes {detector.class_names}, '
          f'{"INT8" if args.int8 else "FP16" if args.half else "FP32"})')
    return 0
