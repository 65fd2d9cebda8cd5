"""Semantic segmentation of belt frames into waste materials (7 labels), and its metrics.

Runtime for the ONNX model trained by `training/waste_seg/train_waste_seg.py` (ImageNet-pretrained
EfficientNet-Lite0 encoder + LR-ASPP decoder; see models/waste_seg/MODEL_CARD.md). Pure numpy +
OpenCV + onnxruntime: no rclpy and no torch.

Model contract (written by the training script, checked here):
  * input `image`: float32 N x 3 x H x W, RGB in [0, 1]; the frame is resized to W x H with
    INTER_AREA (normalisation is inside the graph). H and W are the graph's fixed sizes and/or
    metadata `input_height` / `input_width`; when both exist they must agree.
  * output `logits`: N x 7 x h x w at any stride; the runtime upsamples to the frame.
  * metadata `class_names`: JSON list, equal to `LABELS`.
Upsampling (`upsample_argmax`): softmax at the model's resolution (cheap), then each of the 7
probability planes is resized to the frame (cv2.resize, INTER_LINEAR); labels are their argmax
and confidence their maximum (interpolated probabilities still sum to 1 per pixel).
Edge refinement (`edge_refinement`, on by default): before that, the planes are resized to the
model's input size and passed through a fast guided filter (core.guided_filter) steered by the
input image, so item outlines follow the frame's edges instead of the stride-8 grid (+0.022
mIoU on `eval_infamily`, about 9 ms a frame; see the model card).

Metrics: `confusion_matrix` and `pooled_iou` (intersection and union summed over all images,
then IoU per label; `miou` = mean over the labels whose union is not empty).
"""
from dataclasses import dataclass
import json
from pathlib import Path
import time
from typing import Dict, Optional

import cv2
from edge_perception.core.guided_filter import fast_guided_filter
from edge_perception.core.onnx_session import cpu_session
import numpy as np

LABELS = ('background', 'cardboard', 'glass', 'metal', 'paper', 'plastic', 'trash')
DEFAULT_MODEL_PATH = (Path(__file__).resolve().parent.parent
                      / 'models' / 'waste_seg' / 'waste_seg_lite0.onnx')
METADATA_CLASS_NAMES = 'class_names'
METADATA_INPUT_WIDTH = 'input_width'
METADATA_INPUT_HEIGHT = 'input_height'
DEFAULT_COMPONENT_VOTE = False
# Chosen on `eval_infamily` among guide (grey, RGB) x radius (4, 8) x eps (1e-3, 1e-2) at the
# model's input size; the fast filter fits the coefficients at half that size (model card).
DEFAULT_EDGE_REFINEMENT = True
EDGE_RADIUS = 8
EDGE_EPS = 1e-3
EDGE_SUBSAMPLE = 2


class WasteSegmentationModelError(ValueError):
    """The segmentation model file is missing, unreadable or inconsistent with its contract."""


class WasteSegmentationInputError(ValueError):
    """An image or label map passed to the segmenter or the metrics cannot be used."""


@dataclass(frozen=True)
class SegmentationResult:
    """Per-pixel labels (uint8, indices into LABELS) and max softmax probability at frame size.

    probabilities: the model's softmax at its own resolution (C x h x w float32; 7 x 30 x 40
    for the shipped model), for consumers that need every label's probability
    (core.region_materials) without 7 full-size planes.
    """

    labels: np.ndarray
    confidence: np.ndarray
    inference_ms: float
    probabilities: Optional[np.ndarray] = None


def as_rgb_frame(image) -> np.ndarray:
    """Check an RGB uint8 HxWx3 frame (HxW grey is repeated, HxWx4 drops alpha); return it."""
    if not isinstance(image, np.ndarray):
        raise WasteSegmentationInputError(f'expected a numpy array, got {type(image).__name__}')
    if image.dtype != np.uint8:
        raise WasteSegmentationInputError(f'expected a uint8 image, got dtype {image.dtype}')
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim != 3 or image.shape[2] != 3:
        raise WasteSegmentationInputError(
            f'expected an HxWx3 RGB image (HxW and HxWx4 accepted), got shape {image.shape}')
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise WasteSegmentationInputError(f'image too small: shape {image.shape}')
    return image


class WasteSegmenter:
    """ONNX waste segmenter for RGB frames.

    Args:
        model_path: the .onnx file; defaults to the model shipped with the package.
        intra_op_num_threads: onnxruntime threads (None: onnxruntime's default).
        component_vote: give every connected non-background region one material, the
            confidence-weighted majority of its pixels (`vote_components`).
        edge_refinement: guided-filter the probability planes with the input image before
            the upsampling (`refine_edges`), so outlines follow the frame's edges.

    """

    def __init__(self, model_path=None, intra_op_num_threads: Optional[int] = None,
                 component_vote: bool = DEFAULT_COMPONENT_VOTE,
                 edge_refinement: bool = DEFAULT_EDGE_REFINEMENT):
        self.component_vote = bool(component_vote)
        self.edge_refinement = bool(edge_refinement)
        self.model_path = Path(model_path) if model_path is not None else DEFAULT_MODEL_PATH
        self._session = cpu_session(self.model_path, WasteSegmentationModelError,
                                    'waste segmentation model', intra_op_num_threads)
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise WasteSegmentationModelError(
                f'{self.model_path}: expected one input and a logits output')
        self._input_name = inputs[0].name
        metadata = self._session.get_modelmeta().custom_metadata_map
        self.class_names = self._class_names(metadata, outputs[0].shape)
        self.input_height, self.input_width = self._input_size(inputs[0].shape, metadata)

    def _class_names(self, metadata, output_shape):
        if METADATA_CLASS_NAMES not in metadata:
            raise WasteSegmentationModelError(
                f'{self.model_path}: no {METADATA_CLASS_NAMES!r} metadata')
        try:
            names = json.loads(metadata[METADATA_CLASS_NAMES])
        except ValueError as error:
            raise WasteSegmentationModelError(
                f'{self.model_path}: metadata {METADATA_CLASS_NAMES!r} is not JSON') from error
        if not isinstance(names, list) or tuple(str(n) for n in names) != LABELS:
            raise WasteSegmentationModelError(
                f'{self.model_path}: class_names {names!r} are not the labels {list(LABELS)}')
        if len(output_shape) != 4:
            raise WasteSegmentationModelError(
                f'{self.model_path}: expected an N x C x h x w output, got {output_shape}')
        if isinstance(output_shape[1], int) and output_shape[1] != len(LABELS):
            raise WasteSegmentationModelError(
                f'{self.model_path}: outputs {output_shape[1]} channels, expected {len(LABELS)}')
        return list(LABELS)

    def _input_size(self, shape, metadata):
        if len(shape) != 4 or shape[1] != 3:
            raise WasteSegmentationModelError(
                f'{self.model_path}: expected an N x 3 x H x W input, got shape {shape}')
        sizes = []
        for axis, key in ((2, METADATA_INPUT_HEIGHT), (3, METADATA_INPUT_WIDTH)):
            declared = None
            if key in metadata:
                try:
                    declared = int(metadata[key])
                except ValueError:
                    raise WasteSegmentationModelError(
                        f'{self.model_path}: metadata {key!r} is not an integer: '
                        f'{metadata[key]!r}') from None
            fixed = shape[axis] if isinstance(shape[axis], int) else None
            if fixed is not None and declared is not None and fixed != declared:
                raise WasteSegmentationModelError(
                    f'{self.model_path}: metadata {key!r} {declared} disagrees with the graph '
                    f'input {shape}')
            size = fixed if fixed is not None else declared
            if size is None or size < 8:
                raise WasteSegmentationModelError(
                    f'{self.model_path}: input size unknown (graph {shape}, no {key!r} metadata)')
            sizes.append(size)
        return tuple(sizes)

    def preprocess(self, rgb) -> np.ndarray:
        """Frame -> 1 x 3 x H x W float32 in [0, 1] (INTER_AREA resize to the input size)."""
        frame = np.ascontiguousarray(as_rgb_frame(rgb))
        resized = cv2.resize(frame, (self.input_width, self.input_height),
                             interpolation=cv2.INTER_AREA)
        return (resized.astype(np.float32) * (1.0 / 255.0)).transpose(2, 0, 1)[None].copy()

    def segment(self, rgb_uint8) -> SegmentationResult:
        """Labels and confidence for one RGB uint8 frame, at the frame's size."""
        started = time.perf_counter()
        frame = as_rgb_frame(rgb_uint8)
        height, width = frame.shape[:2]
        image = self.preprocess(frame)
        logits = self._session.run(None, {self._input_name: image})[0][0]
        if logits.ndim != 3 or logits.shape[0] != len(LABELS):
            raise WasteSegmentationModelError(
                f'{self.model_path}: logits of shape {logits.shape}, expected 7 x h x w')
        probabilities = softmax_planes(logits)
        planes = (refine_edges(probabilities, image[0].transpose(1, 2, 0))
                  if self.edge_refinement else probabilities)
        labels, confidence = upsample_argmax_probabilities(planes, height, width)
        if self.edge_refinement:    # the filter may leave [0, 1] by a little at strong edges
            np.clip(confidence, 0.0, 1.0, out=confidence)
        if self.component_vote:
            labels = vote_components(labels, confidence)
        return SegmentationResult(labels=labels, confidence=confidence,
                                  inference_ms=(time.perf_counter() - started) * 1000.0,
                                  probabilities=probabilities)


def upsample_argmax(logits, height, width):
    """Return (labels uint8, max probability float32) at height x width from C x h x w logits.

    Softmax at the model's resolution (cheap), then each probability plane is resized with
    cv2.resize INTER_LINEAR and a running maximum keeps the best label: about 4 ms for 7 planes
    to 640 x 480 on one core, where numpy's argmax/max over the channel axis of an
    H x W x 7 array take 6 and 30 ms (training/waste_seg/bench_variants.py measures both).
    Ties go to the lower label, as with argmax.
    """
    return upsample_argmax_probabilities(softmax_planes(logits), height, width)


def refine_edges(probabilities, guide_rgb):
    """C x h x w probabilities -> C x H x W at the guide's size, edges following the guide.

    guide_rgb: H x W x 3 float32 RGB in [0, 1] (the model's input image). Bilinear resize to
    H x W, then core.guided_filter.fast_guided_filter with EDGE_RADIUS, EDGE_EPS and
    EDGE_SUBSAMPLE; the planes still sum to 1 per pixel.
    """
    guide = np.ascontiguousarray(guide_rgb, dtype=np.float32)
    size = (guide.shape[1], guide.shape[0])
    planes = np.stack([cv2.resize(np.ascontiguousarray(p), size, interpolation=cv2.INTER_LINEAR)
                       for p in np.asarray(probabilities, np.float32)])
    return fast_guided_filter(planes, guide, EDGE_RADIUS, EDGE_EPS, EDGE_SUBSAMPLE)


def softmax_planes(logits):
    """Softmax over the first axis of C x h x w logits (float32)."""
    logits = np.asarray(logits, dtype=np.float32)
    probs = np.exp(logits - logits.max(axis=0, keepdims=True))
    probs /= probs.sum(axis=0, keepdims=True)
    return probs


def upsample_argmax_probabilities(probs, height, width):
    """upsample_argmax on C x h x w probabilities that are already a softmax."""
    size = (int(width), int(height))
    best = cv2.resize(np.ascontiguousarray(probs[0]), size, interpolation=cv2.INTER_LINEAR)
    labels = np.zeros((int(height), int(width)), np.uint8)
    for label in range(1, probs.shape[0]):
        plane = cv2.resize(np.ascontiguousarray(probs[label]), size,
                           interpolation=cv2.INTER_LINEAR)
        labels[plane > best] = label
        np.maximum(best, plane, out=best)
    return labels, best.astype(np.float32, copy=False)


def vote_components(labels, confidence, num_labels: int = len(LABELS)):
    """Relabel each 8-connected non-background region with its confidence-weighted majority.

    Background pixels (label 0) stay; within a region the material with the largest sum of
    confidence wins (ties to the lower label). Items touching each other form one region and
    get one material: the price of removing the speckle of mixed materials inside an item.
    """
    labels = np.asarray(labels, dtype=np.uint8)
    foreground = (labels > 0).astype(np.uint8)
    count, regions = cv2.connectedComponents(foreground, connectivity=8)
    if count <= 1:
        return labels
    votes = np.bincount(regions.ravel().astype(np.int64) * num_labels + labels.ravel(),
                        weights=np.asarray(confidence, np.float64).ravel(),
                        minlength=count * num_labels).reshape(count, num_labels)
    votes[:, 0] = -1.0  # a region is foreground: pick among the materials
    lut = votes.argmax(axis=1).astype(np.uint8)
    lut[0] = 0  # region 0 is the background
    return lut[regions]


# ---------------------------------------------------------------------------- metrics
def confusion_matrix(truth, predicted, num_labels: int = len(LABELS)) -> np.ndarray:
    """num_labels x num_labels int64 counts, rows = true label, columns = predicted label."""
    truth = np.asarray(truth)
    predicted = np.asarray(predicted)
    if truth.shape != predicted.shape:
        raise WasteSegmentationInputError(
            f'label maps differ in shape: truth {truth.shape}, predicted {predicted.shape}')
    for name, array in (('truth', truth), ('predicted', predicted)):
        if not np.issubdtype(array.dtype, np.integer):
            raise WasteSegmentationInputError(f'{name} labels must be integers, got {array.dtype}')
        if array.size and (array.min() < 0 or array.max() >= num_labels):
            raise WasteSegmentationInputError(
                f'{name} labels must be in 0..{num_labels - 1}, found {int(array.min())}..'
                f'{int(array.max())}')
    flat = truth.astype(np.int64).ravel() * num_labels + predicted.astype(np.int64).ravel()
    return np.bincount(flat, minlength=num_labels * num_labels).reshape(num_labels, num_labels)


def pooled_iou(confusion, labels=LABELS) -> Dict[str, object]:
    """Return the IoU of each label of a pooled confusion matrix, and their mean (miou).

    The mean is over the labels with a non-empty union.

    Returns {'iou': {label: float or None (union empty)}, 'miou': float or None}.
    """
    confusion = np.asarray(confusion, dtype=np.int64)
    if confusion.shape != (len(labels), len(labels)):
        raise WasteSegmentationInputError(
            f'confusion matrix of shape {confusion.shape} for {len(labels)} labels')
    tp = np.diag(confusion).astype(np.float64)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - tp
    iou = {name: (float(tp[i] / union[i]) if union[i] > 0 else None)
           for i, name in enumerate(labels)}
    defined = [v for v in iou.values() if v is not None]
    return {'iou': iou, 'miou': float(np.mean(defined)) if defined else None}


def paired_bootstrap_miou(confusions_a, confusions_b, resamples: int = 1000, seed: int = 0,
                          labels=LABELS) -> Dict[str, object]:
    """How far apart two configurations' pooled mIoU are, given per-image confusion matrices.

    confusions_a and confusions_b are N x L x L: the same N images scored by configuration A
    and by B. Images are resampled with replacement (the same draw for both, so what the
    images have in common cancels), the pooled mIoU of each configuration is taken on every
    resample, and the spread of the difference A - B is returned:
    {'difference': on all images, 'sd': of the resampled differences, 'interval_90':
    [5th, 95th percentile], 'resamples', 'images'}.
    """
    a = np.asarray(confusions_a, dtype=np.int64)
    b = np.asarray(confusions_b, dtype=np.int64)
    shape = (len(labels), len(labels))
    if a.ndim != 3 or a.shape[1:] != shape or a.shape != b.shape or len(a) == 0:
        raise WasteSegmentationInputError(
            f'need two N x {shape[0]} x {shape[1]} stacks of the same N >= 1 images, got '
            f'{a.shape} and {b.shape}')
    if resamples < 1:
        raise WasteSegmentationInputError(f'resamples must be >= 1, got {resamples}')
    rng = np.random.default_rng(seed)
    differences = np.empty(resamples)
    for k in range(resamples):
        pick = rng.integers(0, len(a), len(a))
        differences[k] = (pooled_iou(a[pick].sum(axis=0), labels)['miou']
                          - pooled_iou(b[pick].sum(axis=0), labels)['miou'])
    return {'difference': (pooled_iou(a.sum(axis=0), labels)['miou']
                           - pooled_iou(b.sum(axis=0), labels)['miou']),
            'sd': float(differences.std()),
            'interval_90': [float(v) for v in np.percentile(differences, [5, 95])],
            'resamples': int(resamples), 'images': int(len(a))}
