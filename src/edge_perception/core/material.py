"""Material classification of item crops (cardboard, glass, metal, paper, plastic, trash).

Runtime for the ONNX classifier trained by `training/material/train_material_v2.py` (an
ImageNet-pretrained EfficientNet-Lite0 fine-tuned on TrashNet and belt crops; see its model card).
Pure numpy + OpenCV + onnxruntime: no rclpy and no torch, so it runs on the robot as-is.

Model contract (written by the training script, checked here):
  * input: float32 NCHW RGB in [0, 1], H = W = input size; the batch axis is dynamic.
    Mean/std normalisation is inside the graph, so callers only scale by 1/255.
  * input size: the graph's fixed H = W, or metadata `input_size` when H and W are dynamic;
    when both exist they must agree.
  * output: logits, shape (N, number of classes).
  * class names: ONNX metadata `class_names` (JSON list) and/or the sidecar file
    `<model>.classes.txt` (one name a line); when both exist they must agree.
Preprocessing squashes the whole crop to the square input (no centre crop), because a detector's
box already frames the item and cutting its edges off would hide the cues that tell materials
apart. Training used the same resize for validation (see the model card).
"""
from dataclasses import dataclass
import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import cv2
from edge_perception.core.onnx_session import cpu_session
import numpy as np

DEFAULT_MODEL_PATH = (Path(__file__).resolve().parent.parent
                      / 'models' / 'material' / 'material_effnet_lite0.onnx')
CLASSES_SUFFIX = '.classes.txt'
METADATA_CLASS_NAMES = 'class_names'
METADATA_INPUT_SIZE = 'input_size'


class MaterialModelError(ValueError):
    """The material model file is missing, unreadable or inconsistent with its class list."""


class MaterialInputError(ValueError):
    """An image or box passed to the material classifier cannot be used."""


@dataclass(frozen=True)
class MaterialResult:
    """Material of one crop: the top class, its probability and every class's probability."""

    material: str
    confidence: float
    probabilities: Dict[str, float]


def classes_path_for(model_path) -> Path:
    """Return the sidecar class-list path that belongs to `model_path`."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name + CLASSES_SUFFIX)


def read_class_names(path) -> List[str]:
    """Read a class-list file: one name a line, blank lines and `#` comments ignored."""
    names = []
    for line in Path(path).read_text(encoding='utf-8').splitlines():
        line = line.strip()
        if line and not line.startswith('#'):
            names.append(line)
    return names


def as_rgb_uint8(image) -> np.ndarray:
    """Return `image` as an HxWx3 uint8 array: grayscale is repeated, an alpha channel dropped."""
    if not isinstance(image, np.ndarray):
        raise MaterialInputError(f'expected a numpy array, got {type(image).__name__}')
    if image.dtype != np.uint8:
        raise MaterialInputError(f'expected a uint8 image, got dtype {image.dtype}')
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim != 3 or image.shape[2] != 3:
        raise MaterialInputError(
            f'expected an HxW, HxWx1, HxWx3 or HxWx4 image, got shape {image.shape}')
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise MaterialInputError(f'image is empty (shape {image.shape})')
    return image


def preprocess(image, input_size: int) -> np.ndarray:
    """Turn one RGB uint8 image of any size into the model's 3 x S x S float32 input in [0, 1]."""
    rgb = np.ascontiguousarray(as_rgb_uint8(image))
    # INTER_AREA averages when shrinking (no aliasing on large crops); upscaling is bilinear.
    resized = cv2.resize(rgb, (input_size, input_size), interpolation=cv2.INTER_AREA)
    return (resized.astype(np.float32) / 255.0).transpose(2, 0, 1)


def padded_box_bounds(image_shape, box_xyxy, pad_fraction: float = 0.1):
    """Return (top, bottom, left, right), whole pixels, of the padded box clamped to the image.

    Each side grows by `pad_fraction` of the box's width (left/right) or height (top/bottom).
    A box with x2 <= x1 or y2 <= y1, non-finite numbers, or no overlap with the image raises
    MaterialInputError.
    """
    height, width = image_shape[:2]
    if height == 0 or width == 0:
        raise MaterialInputError(f'image is empty (shape {tuple(image_shape)})')
    try:
        x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    except (TypeError, ValueError):
        raise MaterialInputError(
            f'box must be four numbers (x1, y1, x2, y2), got {box_xyxy!r}') from None
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise MaterialInputError(f'box has non-finite coordinates: {box_xyxy!r}')
    if x2 <= x1 or y2 <= y1:
        raise MaterialInputError(
            f'degenerate box {box_xyxy!r}: need x2 > x1 and y2 > y1')
    if not math.isfinite(pad_fraction) or pad_fraction < 0:
        raise MaterialInputError(f'pad_fraction must be >= 0, got {pad_fraction}')
    pad_x = (x2 - x1) * pad_fraction
    pad_y = (y2 - y1) * pad_fraction
    # Whole pixels covering the padded box, then clamped to the image.
    left = max(0, math.floor(x1 - pad_x))
    top = max(0, math.floor(y1 - pad_y))
    right = min(width, math.ceil(x2 + pad_x))
    bottom = min(height, math.ceil(y2 + pad_y))
    if right <= left or bottom <= top:
        raise MaterialInputError(
            f'box {box_xyxy!r} lies outside the {width}x{height} image')
    return top, bottom, left, right


def crop_for_box(rgb, box_xyxy, pad_fraction: float = 0.1) -> np.ndarray:
    """Cut the region of box (x1, y1, x2, y2), in pixels, padded on each side, from `rgb`.

    Each side grows by `pad_fraction` of the box's width (left/right) or height (top/bottom), so
    the classifier sees the item's outline. The region is clamped to the image; a box with
    x2 <= x1 or y2 <= y1, non-finite numbers, or no overlap with the image raises
    MaterialInputError. Returns a view into `rgb` (copy it before writing to it).
    """
    top, bottom, left, right = _crop_bounds(rgb, box_xyxy, pad_fraction)
    return rgb[top:bottom, left:right]


def _crop_bounds(rgb, box_xyxy, pad_fraction):
    """padded_box_bounds of an image array, which must be HxW or HxWxC."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim not in (2, 3):
        raise MaterialInputError('expected an image array of shape HxW or HxWxC')
    return padded_box_bounds(rgb.shape, box_xyxy, pad_fraction)


# TrashNet's mean border colour (its photos' poster board), RGB: what the classifier saw around
# every training object, so a masked crop looks like a TrashNet photo, not like an unknown belt.
MASK_FILL_RGB = (186, 176, 167)


def masked_crop_for_region(rgb, box_xyxy, mask, dilate_px: int,
                           fill_rgb: Sequence[int] = MASK_FILL_RGB,
                           pad_fraction: float = 0.1) -> np.ndarray:
    """Cut `crop_for_box(rgb, box_xyxy, pad_fraction)` and paint what is not the region.

    Pixels of the padded box farther than `dilate_px` from `mask` (HxW bool, the region's
    pixels in the whole image) are set to `fill_rgb`: the classifier then sees the item and a
    thin rim of its surroundings, not the surface or neighbouring items. Returns a new array.
    """
    top, bottom, left, right = _crop_bounds(rgb, box_xyxy, pad_fraction)
    mask = np.asarray(mask)
    if mask.shape != rgb.shape[:2]:
        raise MaterialInputError(f'mask {mask.shape} and image {rgb.shape[:2]} differ in size')
    if dilate_px < 0:
        raise MaterialInputError(f'dilate_px must be >= 0, got {dilate_px}')
    keep = mask[top:bottom, left:right].astype(np.uint8)
    if dilate_px:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate_px + 1,) * 2)
        keep = cv2.dilate(keep, kernel)
    out = rgb[top:bottom, left:right].copy()
    out[keep == 0] = fill_rgb if out.ndim == 3 else fill_rgb[0]
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, computed in float64 for stability."""
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


class MaterialClassifier:
    """ONNX material classifier for RGB crops.

    Args:
        model_path: the .onnx file; defaults to the model shipped with the package.
        class_names: expected class names in output order; if given they must equal the model's.
        input_size: expected square input side; must match the model's when the model fixes it.
        intra_op_num_threads: onnxruntime threads (1 keeps the robot's other nodes responsive).

    """

    def __init__(self, model_path=None, class_names: Optional[Sequence[str]] = None,
                 input_size: Optional[int] = None, intra_op_num_threads: int = 1):
        self.model_path = Path(model_path) if model_path is not None else DEFAULT_MODEL_PATH
        self._session = cpu_session(self.model_path, MaterialModelError, 'material model',
                                    int(intra_op_num_threads))

        model_input = self._session.get_inputs()[0]
        self._input_name = model_input.name
        metadata = self._session.get_modelmeta().custom_metadata_map
        self.class_names = self._resolve_class_names(metadata, class_names)
        self.input_size = self._resolve_input_size(model_input.shape, metadata, input_size)

    def _resolve_class_names(self, metadata, configured) -> List[str]:
        embedded = None
        if METADATA_CLASS_NAMES in metadata:
            try:
                embedded = [str(n) for n in json.loads(metadata[METADATA_CLASS_NAMES])]
            except (ValueError, TypeError) as error:
                raise MaterialModelError(
                    f'{self.model_path}: metadata {METADATA_CLASS_NAMES!r} is not a JSON list'
                ) from error
        sidecar_path = classes_path_for(self.model_path)
        sidecar = read_class_names(sidecar_path) if sidecar_path.is_file() else None
        if embedded is not None and sidecar is not None and embedded != sidecar:
            raise MaterialModelError(
                f'class list {sidecar_path} {sidecar} disagrees with the names embedded in '
                f'{self.model_path} {embedded}')
        names = embedded if embedded is not None else sidecar
        if configured is not None:
            configured = [str(n) for n in configured]
            if names is not None and configured != names:
                raise MaterialModelError(
                    f'configured class names {configured} do not match the model '
                    f'{self.model_path} classes {names}')
            names = configured
        if not names:
            raise MaterialModelError(
                f'no class names for {self.model_path}: embed {METADATA_CLASS_NAMES!r} '
                f'metadata, add {sidecar_path.name}, or pass class_names')
        if len(set(names)) != len(names):
            raise MaterialModelError(f'class names are not unique: {names}')
        outputs = self._session.get_outputs()[0].shape
        if len(outputs) != 2:
            raise MaterialModelError(
                f'{self.model_path}: expected a (batch, classes) output, got shape {outputs}')
        if isinstance(outputs[1], int) and outputs[1] != len(names):
            raise MaterialModelError(
                f'{self.model_path} outputs {outputs[1]} classes but the class list has '
                f'{len(names)}: {names}')
        return names

    def _resolve_input_size(self, shape, metadata, configured) -> int:
        if len(shape) != 4 or shape[1] not in (3, 'channels'):
            raise MaterialModelError(
                f'{self.model_path}: expected an NCHW RGB input, got shape {shape}')
        height, width = shape[2], shape[3]
        declared = None
        if METADATA_INPUT_SIZE in metadata:
            try:
                declared = int(metadata[METADATA_INPUT_SIZE])
            except ValueError:
                raise MaterialModelError(
                    f'{self.model_path}: metadata {METADATA_INPUT_SIZE!r} is not an integer: '
                    f'{metadata[METADATA_INPUT_SIZE]!r}') from None
        fixed = None
        if isinstance(height, int) and isinstance(width, int):
            if height != width:
                raise MaterialModelError(
                    f'{self.model_path}: expected a square input, got {height}x{width}')
            fixed = height
            if declared is not None and declared != fixed:
                raise MaterialModelError(
                    f'{self.model_path}: metadata {METADATA_INPUT_SIZE!r} {declared} disagrees '
                    f'with the graph input {height}x{width}')
        elif declared is not None:
            fixed = declared
        if configured is not None:
            configured = int(configured)
            if configured < 1:
                raise MaterialModelError(f'input_size must be >= 1, got {configured}')
            if fixed is not None and configured != fixed:
                raise MaterialModelError(
                    f'configured input_size {configured} does not match the model '
                    f'{self.model_path} input {fixed}')
            return configured
        if fixed is None:
            raise MaterialModelError(
                f'{self.model_path} has a dynamic input size: pass input_size')
        return fixed

    def classify(self, rgb_uint8_images: Sequence[np.ndarray]) -> List[MaterialResult]:
        """Classify RGB uint8 crops (any size; grayscale/RGBA accepted) in one batch."""
        if isinstance(rgb_uint8_images, np.ndarray):
            raise MaterialInputError(
                'classify takes a list of images; wrap a single image as [image]')
        images = list(rgb_uint8_images)
        if not images:
            return []
        batch = np.stack([preprocess(image, self.input_size) for image in images])
        logits = self._session.run(None, {self._input_name: batch})[0]
        probabilities = softmax(logits)
        results = []
        for row in probabilities:
            best = int(np.argmax(row))
            results.append(MaterialResult(
                material=self.class_names[best],
                confidence=float(row[best]),
                probabilities={n: float(p) for n, p in zip(self.class_names, row)}))
        return results
