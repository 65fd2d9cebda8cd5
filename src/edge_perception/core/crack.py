"""Crack masks -> metrics, geometry in pixels and millimetres, and a severity class (no rclpy).

Definitions (also in docs/crack_moe.md):

- Masks are 2-D arrays, boolean or numeric with values in {0, 1, 255}; non-zero means crack.
  Anything else (e.g. probabilities) raises `CrackInputError`: threshold first.
- `segmentation_metrics`: crack-class precision, recall, F1 and IoU. With `tolerance_px` = t > 0 a
  predicted crack pixel is a true positive if a ground-truth crack pixel lies within Euclidean
  distance t of it; a ground-truth pixel is recalled if a predicted pixel lies within t of it
  (as in the CrackForest/DeepCrack evaluations). Then precision = tp / (tp + fp),
  recall = tp_gt / (tp_gt + fn) and IoU = F1 / (2 - F1), which is exactly tp / (tp + fp + fn) when
  t = 0. Empty denominators: precision is 1 with no prediction, recall is 1 with no ground truth.
- `crack_geometry`: components (8-connected) smaller than `min_area_px` are dropped; the
  skeleton is `skimage.morphology.skeletonize`; its length sums 1 per horizontal/vertical
  neighbour pair and sqrt(2) per diagonal pair, a diagonal pair being skipped when the two pixels
  are already joined through a common 4-neighbour (so a staircase is not counted twice). The width
  at a skeleton pixel is twice its distance to the crack's edge, i.e. 2 * (EDT - 0.5) with EDT the
  Euclidean distance to the nearest background pixel centre (scipy.ndimage): a straight crack of
  odd width w measures w, of even width w - 1 (pixel quantisation), a 1 px crack 1 px.
- `metric_widths`: mm = px * Z / f (pinhole, crack plane facing the camera) with Z the median valid
  depth over the crack pixels dilated by `dilate_px` (depth on the crack itself is often missing).
- `severity`: bins on the maximum width in mm; default GB 50204-2015: < 0.1 mm monitor, >= 0.1 mm
  repair. Codes match edge_perception/CrackSegmentation.
"""
from dataclasses import dataclass
import math

import numpy as np
from scipy import ndimage

SEVERITY_NONE = 0
SEVERITY_MONITOR = 1
SEVERITY_REPAIR = 2
SEVERITY_UNKNOWN = 255
SEVERITY_NONE_LABEL = 'none'
SEVERITY_UNKNOWN_LABEL = 'unknown'

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


class CrackInputError(ValueError):
    """An input (mask, depth, intrinsics, bins) that cannot be interpreted as documented."""


@dataclass(frozen=True)
class CrackGeometry:
    """Crack geometry in pixels, after removal of components smaller than the minimum area."""

    length_px: float
    max_width_px: float
    mean_width_px: float
    pixel_fraction: float
    component_count: int


@dataclass(frozen=True)
class MetricGeometry:
    """Crack geometry in millimetres; NaN fields and metric_valid False when not measurable."""

    metric_valid: bool
    depth_m: float
    length_mm: float
    max_width_mm: float
    mean_width_mm: float


def as_mask(mask, name='mask'):
    """Return a 2-D boolean array from a boolean or {0, 1, 255}-valued array; else raise."""
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise CrackInputError(f'{name} must be 2-D (H, W), got shape {arr.shape}')
    if arr.dtype == bool:
        return arr
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise CrackInputError(f'{name} has unsupported dtype {arr.dtype}')
    values = np.unique(arr)
    if not np.all(np.isin(values, (0, 1, 255))):
        odd = values[~np.isin(values, (0, 1, 255))][:3].tolist()
        raise CrackInputError(f'{name} must be boolean or hold only 0/1/255 (found values such as '
                              f'{odd}); threshold probabilities first')
    return arr != 0


def metrics_from_counts(tp, fp, fn, tp_gt=None):
    """Precision, recall, F1 and IoU from pixel counts (pool a data set by summing counts).

    tp: predicted crack pixels that are correct; fp: the other predicted crack pixels;
    fn: ground-truth crack pixels not recalled; tp_gt: ground-truth pixels recalled (defaults to
    tp, which it equals without tolerance).
    """
    tp_gt = tp if tp_gt is None else tp_gt
    precision = tp / (tp + fp) if tp + fp > 0 else 1.0
    recall = tp_gt / (tp_gt + fn) if tp_gt + fn > 0 else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    iou = f1 / (2.0 - f1)
    return {'iou': float(iou), 'f1': float(f1), 'precision': float(precision),
            'recall': float(recall)}


def segmentation_metrics(pred, gt, tolerance_px=0):
    """Crack-class metrics of a predicted mask against ground truth (see module docstring).

    Returns a dict with iou, f1, precision, recall and the counts tp, fp, fn, tp_gt.
    """
    pred = as_mask(pred, 'pred')
    gt = as_mask(gt, 'gt')
    if pred.shape != gt.shape:
        raise CrackInputError(f'pred shape {pred.shape} differs from gt shape {gt.shape}')
    if not np.isfinite(tolerance_px) or tolerance_px < 0:
        raise CrackInputError(f'tolerance_px must be >= 0, got {tolerance_px}')
    n_pred = int(pred.sum())
    n_gt = int(gt.sum())
    if tolerance_px == 0:
        tp = int(np.logical_and(pred, gt).sum())
        tp_gt = tp
    else:
        # Distance from every pixel to the nearest crack pixel of the other mask.
        tp = int((_distance_to(gt)[pred] <= tolerance_px).sum()) if n_gt else 0
        tp_gt = int((_distance_to(pred)[gt] <= tolerance_px).sum()) if n_pred else 0
    result = metrics_from_counts(tp, n_pred - tp, n_gt - tp_gt, tp_gt)
    result.update(tp=tp, fp=n_pred - tp, fn=n_gt - tp_gt, tp_gt=tp_gt)
    return result


def _distance_to(mask):
    """Euclidean distance from each pixel to the nearest True pixel of a non-empty mask."""
    return ndimage.distance_transform_edt(~mask)


def remove_small_components(mask, min_area_px):
    """Drop 8-connected components under min_area_px pixels; return (mask, components kept)."""
    mask = as_mask(mask)
    labels, n = ndimage.label(mask, structure=_EIGHT_CONNECTED)
    if n == 0:
        return mask.copy(), 0
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    keep = areas >= max(min_area_px, 1)
    keep[0] = False
    return keep[labels], int(keep.sum())


def skeleton_length(skeleton, step_x=1.0, step_y=1.0):
    """Length of an 8-connected skeleton (see module docstring); steps scale x and y (e.g. mm)."""
    sk = np.pad(np.asarray(skeleton, dtype=bool), 1)
    centre = sk[1:-1, 1:-1]
    right = sk[1:-1, 2:]
    down = sk[2:, 1:-1]
    length = step_x * np.count_nonzero(centre & right)
    length += step_y * np.count_nonzero(centre & down)
    diagonal = math.hypot(step_x, step_y)
    # Down-right pair (r, c)-(r+1, c+1): common 4-neighbours are (r, c+1) and (r+1, c).
    down_right = centre & sk[2:, 2:] & ~right & ~down
    # Down-left pair (r, c)-(r+1, c-1): common 4-neighbours are (r, c-1) and (r+1, c).
    down_left = centre & sk[2:, :-2] & ~sk[1:-1, :-2] & ~down
    length += diagonal * (np.count_nonzero(down_right) + np.count_nonzero(down_left))
    return float(length)


def crack_geometry(mask, min_area_px=20):
    """Skeleton length, max/mean width (px), crack pixel fraction and component count.

    Components smaller than min_area_px (8-connected) are removed first; all figures describe
    what remains. An empty result has zero length, widths and fraction.
    """
    from skimage.morphology import skeletonize  # skimage is slow to import; only needed here

    mask = as_mask(mask)
    if mask.size == 0:
        raise CrackInputError('mask is empty (zero pixels)')
    kept, count = remove_small_components(mask, min_area_px)
    if count == 0:
        return CrackGeometry(0.0, 0.0, 0.0, 0.0, 0)
    skeleton = skeletonize(kept)
    # EDT to the nearest background pixel centre; the crack's edge lies half a pixel closer.
    # Pad so that image borders count as background (a crack cut by the frame is measured there).
    distance = ndimage.distance_transform_edt(np.pad(kept, 1))[1:-1, 1:-1]
    widths = 2.0 * (distance[skeleton] - 0.5)
    return CrackGeometry(
        length_px=skeleton_length(skeleton),
        max_width_px=float(widths.max()),
        mean_width_px=float(widths.mean()),
        pixel_fraction=float(kept.mean()),
        component_count=count)


def _positive_finite(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def metric_widths(geometry, mask, depth_m, fx, fy, dilate_px=3):
    """Convert pixel geometry to millimetres with the crack's depth and the focal lengths.

    geometry: CrackGeometry of `mask`; mask: the crack mask (H, W); depth_m: float depth image in
    metres of the same size (NaN, inf or <= 0 mean invalid) or None; fx, fy: focal lengths in
    pixels, or None. Missing or invalid depth/intrinsics give metric_valid False and NaN fields;
    with no crack the lengths and widths are 0 (nothing to measure) and metric_valid is False.
    A depth image of another size than the mask, or an integer depth image, raises.
    """
    mask = as_mask(mask)
    nan = float('nan')
    if depth_m is not None:
        depth = np.asarray(depth_m)
        if depth.shape != mask.shape:
            raise CrackInputError(
                f'depth shape {depth.shape} differs from mask shape {mask.shape}; register '
                'depth to the colour image first')
        if not np.issubdtype(depth.dtype, np.floating):
            raise CrackInputError(
                f'depth must be float metres, got dtype {depth.dtype} (convert 16UC1 '
                'millimetres: depth_m = depth_mm / 1000.0)')
    if dilate_px < 0:
        raise CrackInputError(f'dilate_px must be >= 0, got {dilate_px}')
    if geometry.component_count == 0 or not mask.any():
        return MetricGeometry(False, nan, 0.0, 0.0, 0.0)
    invalid = MetricGeometry(False, nan, nan, nan, nan)
    fx = _positive_finite(fx)
    fy = _positive_finite(fy)
    if depth_m is None or fx is None or fy is None:
        return invalid
    region = ndimage.binary_dilation(mask, _EIGHT_CONNECTED, iterations=dilate_px) \
        if dilate_px else mask
    values = depth[region]
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0:
        return invalid
    z = float(np.median(values))
    mm_per_px_x = 1000.0 * z / fx
    # Length runs in any direction: the geometric mean focal length (fx == fy for square pixels).
    mm_per_px = 1000.0 * z / math.sqrt(fx * fy)
    return MetricGeometry(
        metric_valid=True,
        depth_m=z,
        length_mm=geometry.length_px * mm_per_px,
        max_width_mm=geometry.max_width_px * mm_per_px_x,
        mean_width_mm=geometry.mean_width_px * mm_per_px_x)


def severity(max_width_mm, metric_valid, bins_mm=(0.1,), labels=('monitor', 'repair'),
             crack_found=None):
    """Severity (code, label) from the maximum crack width in millimetres.

    Codes: SEVERITY_NONE (0, 'none') when no crack was found; SEVERITY_UNKNOWN (255, 'unknown')
    when a crack was found but its width in mm is unknown; else 1 + the index of the bin, so the
    default bins give MONITOR (1) below 0.1 mm and REPAIR (2) at 0.1 mm and above. crack_found
    defaults to `max_width_mm != 0` (metric_widths reports 0 mm when there is no crack).
    """
    bins = [float(b) for b in bins_mm]
    if len(labels) != len(bins) + 1:
        raise CrackInputError(
            f'need len(bins_mm) + 1 = {len(bins) + 1} labels, got {len(labels)}')
    if not bins or any(not math.isfinite(b) or b <= 0 for b in bins) or \
            any(b2 <= b1 for b1, b2 in zip(bins, bins[1:])):
        raise CrackInputError(f'bins_mm must be positive and increasing, got {bins_mm}')
    if len(labels) >= SEVERITY_UNKNOWN:
        raise CrackInputError(f'too many severity classes ({len(labels)})')
    if crack_found is None:
        crack_found = not (max_width_mm is not None and max_width_mm == 0)
    if not crack_found:
        return SEVERITY_NONE, SEVERITY_NONE_LABEL
    if not metric_valid or max_width_mm is None or not math.isfinite(max_width_mm):
        return SEVERITY_UNKNOWN, SEVERITY_UNKNOWN_LABEL
    index = int(np.searchsorted(bins, max_width_mm, side='right'))
    return SEVERITY_MONITOR + index, labels[index]
