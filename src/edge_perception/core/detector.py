"""YOLO detector runtime over Ultralytics: PyTorch (.pt), ONNX Runtime (.onnx), TensorRT (.engine).

No rclpy. One class, `YoloDetector`, loads a model once and turns RGB frames into detections in
the input image's pixels (boxes and, for segment models, full-size masks).

TensorRT: an `.engine` file is a serialized GPU program, not a PyTorch module. We hand it to
`ultralytics.YOLO`, whose AutoBackend deserialises it with TensorRT on a CUDA device, and never
call `.to(device)` on the model (that is what makes yolo_ros fail on engines: `.to()` is only
defined for PyTorch models). An engine is tied to the GPU model and TensorRT version that built
it: build it on the target (e.g. the Jetson) with `edge-perception export --format engine`.

Every runtime dependency is checked before Ultralytics sees the model (TensorRT and CUDA for an
engine), so Ultralytics' own auto-install (pip at run time) is never reached for them; robots
should still run with YOLO_AUTOINSTALL=false in the environment.
"""
from dataclasses import dataclass, field
from pathlib import Path
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

SUPPORTED_SUFFIXES = ('.pt', '.onnx', '.engine')
_PACKAGE_DIR = Path(__file__).resolve().parent.parent
# The shipped waste detector (waste_detector.pt / .onnx) and its sample frames.
DEFAULT_MODEL_DIR = _PACKAGE_DIR / 'models' / 'detector'
SAMPLES_DIR = _PACKAGE_DIR / 'data' / 'samples' / 'waste'


class DetectorError(ValueError):
    """Base class of detector configuration and input errors."""


class ModelFileNotFoundError(DetectorError, FileNotFoundError):
    """The model file does not exist."""


class UnsupportedModelError(DetectorError):
    """The model file's suffix is not one this runtime loads."""


class ModelLoadError(DetectorError):
    """The model file exists but could not be loaded or run (corrupt, wrong format, ...)."""


class ClassNamesMismatchError(DetectorError):
    """Configured class names disagree with the names stored in the model."""


class TensorRTUnavailableError(DetectorError):
    """A TensorRT engine was requested where TensorRT cannot run."""


@dataclass(frozen=True)
class Detection2D:
    """One detection in input-image pixels."""

    class_id: int
    class_name: str
    score: float
    box_xyxy: tuple                        # (x0, y0, x1, y1), input-image pixels
    mask: Optional[np.ndarray] = None      # bool HxW of the input image (segment models)


@dataclass
class DetectionResult:
    """All detections of one frame and the time it took."""

    detections: List[Detection2D]
    inference_ms: float                    # wall time of detect(): pre-process + model + NMS
    stage_ms: Dict[str, float] = field(default_factory=dict)  # Ultralytics' per-stage times


def _backend_of(path: Path) -> str:
    return {'.pt': 'pt', '.onnx': 'onnx', '.engine': 'engine'}[path.suffix.lower()]


def check_tensorrt_available():
    """Raise TensorRTUnavailableError unless CUDA and the tensorrt package are present."""
    import torch
    if not torch.cuda.is_available():
        raise TensorRTUnavailableError(
            'TensorRT engines need an NVIDIA GPU with CUDA (e.g. Jetson Orin); torch sees no '
            'CUDA device here. Use the .onnx model (ONNX Runtime on CPU) or the .pt model.')
    try:
        import tensorrt  # noqa: F401
    except ImportError as exc:
        raise TensorRTUnavailableError(
            'TensorRT engines need the tensorrt Python package (JetPack ships it on Jetson; '
            f'pip install tensorrt on x86 with CUDA): {exc}') from exc


class YoloDetector:
    """An Ultralytics YOLO model (detect or segment) loaded once, run per frame."""

    def __init__(self, model_path, conf=0.25, iou=0.45, imgsz=None, device='cpu',
                 class_names: Optional[Sequence[str]] = None, max_det=100, cpu_threads=None):
        """Load and warm up the model; raise a DetectorError subclass on any problem.

        Args:
            model_path: .pt, .onnx or .engine file.
            conf: minimum detection score; iou: NMS IoU threshold; max_det: detections per frame.
            imgsz: network input size; None = the size the model was trained/exported at.
                Exported .onnx/.engine models have a fixed size and refuse another one.
            device: 'cpu' or 'cuda:N'. An .engine always runs on CUDA ('cpu' means cuda:0).
            class_names: expected class names in id order; must equal the model's names.
            cpu_threads: CPU threads for inference (None = library default). For .onnx on CPU
                it sets ONNX Runtime's intra-op threads of this model's session (its default,
                one per core, spins and slows down badly on a CPU shared with other work); for
                .pt it calls torch.set_num_threads, which is process-wide.
        """
        path = Path(model_path)
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            raise UnsupportedModelError(
                f'unsupported model file {path}: suffix {path.suffix!r} is not one of '
                f'{SUPPORTED_SUFFIXES}')
        if not path.is_file():
            raise ModelFileNotFoundError(f'model file not found: {path}')
        if not 0.0 <= conf <= 1.0 or not 0.0 <= iou <= 1.0:
            raise DetectorError(f'conf and iou must be in [0, 1], got conf={conf}, iou={iou}')
        if int(max_det) < 1:
            raise DetectorError(f'max_det must be >= 1, got {max_det}')
        if cpu_threads is not None and int(cpu_threads) < 1:
            raise DetectorError(f'cpu_threads must be >= 1, got {cpu_threads}')
        self.model_path = path
        self.backend = _backend_of(path)
        self.conf, self.iou, self.max_det = float(conf), float(iou), int(max_det)
        self.device = str(device)
        if self.backend == 'engine':
            check_tensorrt_available()
            if self.device == 'cpu':
                self.device = 'cuda:0'
        try:
            from ultralytics import YOLO
            self._model = YOLO(str(path))
            # Warm-up: builds the backend (ONNX Runtime session / TensorRT context) now, so a
            # corrupt file fails here with its path, not at the first frame.
            if self.backend == 'pt':
                if cpu_threads is not None:
                    import torch
                    torch.set_num_threads(int(cpu_threads))
                self.imgsz = int(imgsz) if imgsz is not None else self._trained_imgsz()
                self._predict(np.zeros((self.imgsz, self.imgsz, 3), np.uint8))
            else:
                self.imgsz = None
                self._predict(np.zeros((64, 64, 3), np.uint8))
                backend = self._model.predictor.model
                fixed = backend.imgsz
                fixed = max(fixed) if isinstance(fixed, (list, tuple)) else int(fixed)
                if (imgsz is not None and int(imgsz) != fixed
                        and not getattr(backend, 'dynamic', False)):
                    raise DetectorError(
                        f'{path} was exported for imgsz={fixed}; imgsz={imgsz} needs a '
                        're-export (edge-perception export --imgsz N)')
                self.imgsz = int(imgsz) if imgsz is not None else fixed
                if cpu_threads is not None and self.backend == 'onnx':
                    self._set_onnx_threads(int(cpu_threads))
        except DetectorError:
            raise
        except Exception as exc:  # Ultralytics/torch/onnxruntime raise many types
            raise ModelLoadError(
                f'could not load model {path} ({self.backend}): {type(exc).__name__}: {exc}'
            ) from exc
        names = self._model.names
        self.class_names = [str(names[i]) for i in sorted(names)]
        self.task = getattr(self._model, 'task', 'detect')
        if class_names is not None and list(class_names) != self.class_names:
            raise ClassNamesMismatchError(
                f'configured class_names {list(class_names)} disagree with the names in '
                f'{path}: {self.class_names}')

    def _set_onnx_threads(self, threads):
        """Rebuild this model's ONNX Runtime CPU session with `threads` intra-op threads.

        Ultralytics builds the session with default options and does not expose them, so the
        session of its ONNX backend is replaced by an equivalent one (same file, providers).
        """
        backend = getattr(self._model.predictor.model, 'backend', None)
        session = getattr(backend, 'session', None)
        if session is None or getattr(backend, 'use_io_binding', False):
            raise DetectorError('cpu_threads applies to ONNX Runtime on CPU only')
        import onnxruntime
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        backend.session = onnxruntime.InferenceSession(
            str(self.model_path), options, providers=session.get_providers())

    def _trained_imgsz(self):
        """Return the input size a .pt model was trained at (checkpoint train args), else 640."""
        ckpt = getattr(self._model, 'ckpt', None) or {}
        size = (ckpt.get('train_args') or {}).get('imgsz') or 640
        if isinstance(size, (list, tuple)):
            size = max(size)
        return int(size)

    def _predict(self, bgr):
        kwargs = {'conf': self.conf, 'iou': self.iou, 'device': self.device,
                  'max_det': self.max_det, 'verbose': False, 'retina_masks': True}
        if self.imgsz:
            kwargs['imgsz'] = self.imgsz
        return self._model.predict(bgr, **kwargs)[0]

    def detect(self, rgb_uint8) -> DetectionResult:
        """Detect objects in an RGB uint8 HxWx3 image; boxes and masks in its pixels."""
        image = np.asarray(rgb_uint8)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise DetectorError(
                f'detect() needs an RGB uint8 HxWx3 image, got dtype {image.dtype} shape '
                f'{image.shape}')
        if image.shape[0] < 8 or image.shape[1] < 8:
            raise DetectorError(f'image too small: {image.shape[1]}x{image.shape[0]}')
        import cv2
        # Ultralytics reads numpy arrays as BGR; cvtColor is ~10x faster than a numpy flip copy.
        bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
        start = time.perf_counter()
        result = self._predict(bgr)
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        boxes = result.boxes
        detections = []
        if boxes is not None and len(boxes):
            xyxy = boxes.xyxy.cpu().numpy().astype(np.float64)
            scores = boxes.conf.cpu().numpy()
            classes = boxes.cls.cpu().numpy().astype(int)
            masks = None
            if result.masks is not None:
                masks = result.masks.data.cpu().numpy() > 0.5
                if masks.shape[1:] != image.shape[:2]:
                    raise ModelLoadError(
                        f'mask size {masks.shape[1:]} differs from the image {image.shape[:2]}')
            h, w = image.shape[:2]
            xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, w)
            xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, h)
            for i in range(len(scores)):
                cid = int(classes[i])
                detections.append(Detection2D(
                    class_id=cid,
                    class_name=self.class_names[cid] if cid < len(self.class_names) else str(cid),
                    score=float(scores[i]), box_xyxy=tuple(float(v) for v in xyxy[i]),
                    mask=None if masks is None else masks[i]))
        return DetectionResult(detections, elapsed_ms,
                               {k: float(v) for k, v in (result.speed or {}).items()})
