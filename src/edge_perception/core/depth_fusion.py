"""Where a detected object is in 3D, and where to pick it, from registered depth.

numpy/scipy only (no rclpy). Conventions:
- depth is a float array of metres registered to the colour image (same size); NaN, inf, 0 and
  negative values mean "no return" and are ignored (`conversions.depth_to_metres` produces this
  from 16UC1/32FC1 messages);
- boxes are (x0, y0, x1, y1) in continuous image coordinates where pixel column i covers
  [i, i + 1) (Ultralytics/COCO); masks are bool arrays of the image size;
- intrinsics follow OpenCV/ROS camera_info: integer pixel indices are pixel centres, so a box's
  centre in pixel-index coordinates is ((x0 + x1) / 2 - 0.5, (y0 + y1) / 2 - 0.5);
- 3D points are in the camera's optical frame (x right, y down, z forward), metres.
Nothing is guessed: without intrinsics or enough valid depth the result is invalid with a reason.
"""
from dataclasses import dataclass
import math
from typing import Tuple

import numpy as np
from scipy import ndimage

# Median absolute deviation -> standard deviation for normally distributed samples.
_MAD_TO_STD = 1.4826


class DepthFusionError(ValueError):
    """Inputs to depth fusion are inconsistent (sizes, types, values)."""


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of the (depth-registered) colour camera, pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self):
        """Refuse intrinsics that cannot back-project (uncalibrated camera_info has K = 0)."""
        for name in ('fx', 'fy'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise DepthFusionError(f'CameraIntrinsics.{name} must be > 0, got {value!r} '
                                       '(an all-zero K means the camera is not calibrated)')
        for name in ('cx', 'cy'):
            if not math.isfinite(getattr(self, name)):
                raise DepthFusionError(f'CameraIntrinsics.{name} must be finite')
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise DepthFusionError(
                f'CameraIntrinsics size must be positive, got {self.width}x{self.height}')

    @classmethod
    def from_k(cls, k, width, height):
        """Build from a row-major 3x3 K (camera_info.k: 9 numbers or a 3x3 array)."""
        k = np.asarray(k, dtype=np.float64).reshape(-1)
        if k.size != 9:
            raise DepthFusionError(f'K must have 9 elements, got {k.size}')
        return cls(fx=float(k[0]), fy=float(k[4]), cx=float(k[2]), cy=float(k[5]),
                   width=int(width), height=int(height))

    def back_project(self, u, v, z):
        """3D point (x, y, z) in metres of pixel (u, v) (pixel-index coordinates) at depth z."""
        return ((u - self.cx) * z / self.fx, (v - self.cy) * z / self.fy, z)


_NAN3 = (math.nan, math.nan, math.nan)


@dataclass(frozen=True)
class Position3D:
    """Robust 3D position of an object's visible surface."""

    valid: bool
    xyz: Tuple[float, float, float]     # metres, camera optical frame; NaN when invalid
    depth_std_m: float                  # robust spread (1.4826 x MAD) of the depth samples
    n_samples: int                      # valid depth samples used
    reason: str                         # why invalid, or how it was measured


@dataclass(frozen=True)
class PickPoint:
    """The most graspable pixel of an object and its 3D point."""

    valid: bool                         # the 3D point is valid (u, v are set whenever possible)
    u: float                            # pixel-index coordinates
    v: float
    xyz: Tuple[float, float, float]     # metres; NaN when invalid
    reason: str = ''


def _size_text(shape):
    return f'{shape[1]}x{shape[0]}'


def check_depth(depth_m, image_shape=None, intrinsics=None):
    """Validate a depth image (float metres, 2-D) against the colour image and intrinsics sizes."""
    depth_m = np.asarray(depth_m)
    if depth_m.ndim != 2:
        raise DepthFusionError(f'depth must be a 2-D array (HxW), got shape {depth_m.shape}')
    if not np.issubdtype(depth_m.dtype, np.floating):
        raise DepthFusionError(
            f'depth must be float metres, got dtype {depth_m.dtype} (16UC1 millimetres must be '
            'converted first, e.g. with conversions.depth_to_metres)')
    if image_shape is not None and tuple(image_shape[:2]) != depth_m.shape:
        raise DepthFusionError(
            f'depth image is {_size_text(depth_m.shape)} but the colour image is '
            f'{_size_text(image_shape)}: depth must be registered to the colour image')
    if intrinsics is not None and (intrinsics.height, intrinsics.width) != depth_m.shape:
        raise DepthFusionError(
            f'depth image is {_size_text(depth_m.shape)} but the camera intrinsics are for '
            f'{intrinsics.width}x{intrinsics.height}')
    return depth_m


def _check_box(box_xyxy):
    box = np.asarray(box_xyxy, dtype=np.float64).reshape(-1)
    if box.size != 4 or not np.all(np.isfinite(box)):
        raise DepthFusionError(f'box must be 4 finite numbers (x0, y0, x1, y1), got {box_xyxy!r}')
    if box[2] <= box[0] or box[3] <= box[1]:
        raise DepthFusionError(f'box must have x1 > x0 and y1 > y0, got {box.tolist()}')
    return box


def _check_mask(mask, shape):
    mask = np.asarray(mask)
    if mask.dtype != bool:
        raise DepthFusionError(f'mask must be a bool array, got dtype {mask.dtype}')
    if mask.shape != shape:
        raise DepthFusionError(
            f'mask is {_size_text(mask.shape)} but the depth image is {_size_text(shape)}')
    return mask


def box_core_slices(box_xyxy, shape, core_fraction=0.5):
    """Row and column slices of the pixels whose centres lie in the box's central core.

    The core keeps `core_fraction` of the box's width and height about its centre (the middle
    50 % by default), so belt pixels at the box corners rarely enter the depth median.
    """
    if not 0.0 < core_fraction <= 1.0:
        raise DepthFusionError(f'core_fraction must be in (0, 1], got {core_fraction}')
    x0, y0, x1, y1 = _check_box(box_xyxy)
    half_w = (x1 - x0) * core_fraction / 2
    half_h = (y1 - y0) * core_fraction / 2
    cu, cv = (x0 + x1) / 2, (y0 + y1) / 2
    h, w = shape

    def span(lo, hi, size):
        # Pixel i has its centre at i + 0.5 in continuous coordinates.
        first = max(int(math.ceil(lo - 0.5)), 0)
        last = min(int(math.floor(hi - 0.5)), size - 1)
        if last < first:  # core thinner than a pixel: take the pixel under the centre
            first = last = min(max(int(math.floor((lo + hi) / 2)), 0), size - 1)
        return slice(first, last + 1)

    return span(cv - half_h, cv + half_h, h), span(cu - half_w, cu + half_w, w)


def mask_extent(mask):
    """(row0, row1, col0, col1): the smallest window holding every True pixel; None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask[rows[0]:rows[-1] + 1].any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _median(values):
    """Median of a non-empty 1-D array, in float64 (np.median's answer, by one partition)."""
    n = values.size
    half = n // 2
    if n % 2:
        return float(np.partition(values, half)[half])
    low_high = np.partition(values, (half - 1, half))
    return (float(low_high[half - 1]) + float(low_high[half])) / 2


def _valid_depth(values, min_depth_m, max_depth_m):
    return np.isfinite(values) & (values > max(min_depth_m, 0.0)) & (values <= max_depth_m)


def object_position(depth_m, box_xyxy, mask=None, intrinsics=None, *, core_fraction=0.5,
                    min_samples=10, min_depth_m=0.0, max_depth_m=math.inf,
                    image_shape=None):
    """Robust 3D position of an object from registered depth.

    Samples: the mask's pixels when a mask is given, else the box's central core. Invalid depth
    (NaN, inf, <= 0, outside [min_depth_m, max_depth_m]) is ignored. Z is the median of the valid
    samples, depth_std_m their 1.4826 x MAD; x and y back-project the object's pixel centroid
    (the mask's centroid, else the box centre) at Z.

    Raises DepthFusionError (a ValueError) for inconsistent inputs: depth of another size than
    the colour image (`image_shape`, or the mask) or the intrinsics, non-float depth, bad box.
    Returns an invalid Position3D, with the reason, without intrinsics or with fewer than
    `min_samples` valid samples.
    """
    depth_m = check_depth(depth_m, image_shape, intrinsics)
    box = _check_box(box_xyxy)
    if mask is not None:
        mask = _check_mask(mask, depth_m.shape)
        extent = mask_extent(mask)
        if extent is None:
            raise DepthFusionError('mask is empty: no object pixels to measure')
        r0, r1, c0, c1 = extent
        rows, cols = np.nonzero(mask[r0:r1, c0:c1])
        samples = depth_m[r0:r1, c0:c1][rows, cols]
        u, v = float(cols.mean()) + c0, float(rows.mean()) + r0
        where = 'mask'
    else:
        row_sl, col_sl = box_core_slices(box, depth_m.shape, core_fraction)
        samples = depth_m[row_sl, col_sl].ravel()
        u = float((box[0] + box[2]) / 2 - 0.5)
        v = float((box[1] + box[3]) / 2 - 0.5)
        where = f'box core {core_fraction:.0%}'
    good = samples[_valid_depth(samples, min_depth_m, max_depth_m)]
    n = int(good.size)
    if intrinsics is None:
        return Position3D(False, _NAN3, math.nan, n, 'no camera intrinsics')
    if n < min_samples:
        return Position3D(False, _NAN3, math.nan, n,
                          f'too few valid depth samples in the {where}: {n} of {samples.size} '
                          f'(need {min_samples})')
    z = _median(good)
    spread = _MAD_TO_STD * _median(np.abs(good - z))
    xyz = tuple(float(c) for c in intrinsics.back_project(u, v, z))
    return Position3D(True, xyz, spread, n,
                      f'median of {n} of {samples.size} depth samples in the {where}')


def pick_point(mask_or_box, depth_m=None, intrinsics=None, *, window=2, min_depth_m=0.0,
               max_depth_m=math.inf, image_shape=None):
    """Return the most graspable point of an object: the deepest interior pixel of its mask.

    With a mask (bool HxW): the pixel farthest from the mask's boundary (maximum of the Euclidean
    distance transform; the image border counts as boundary). With a box (4 numbers): the box
    centre. The 3D point is the median valid depth in a (2 * window + 1)^2 neighbourhood (mask
    pixels only) back-projected at (u, v); invalid, with u and v still set, without depth,
    intrinsics or valid depth there.
    """
    shape = None
    if depth_m is not None:
        depth_m = check_depth(depth_m, image_shape, intrinsics)
        shape = depth_m.shape
    arr = np.asarray(mask_or_box)
    mask = None
    if arr.ndim == 2:
        mask = _check_mask(arr, shape if shape is not None else arr.shape)
        if not mask.any():
            raise DepthFusionError('mask is empty: no object pixels to pick')
        # On the mask's extent only (the transform costs per pixel; outside it is background),
        # padded with background so the image border is boundary too (we cannot reach past it).
        r0, r1, c0, c1 = mask_extent(mask)
        dist = ndimage.distance_transform_edt(np.pad(mask[r0:r1, c0:c1], 1))[1:-1, 1:-1]
        v_idx, u_idx = np.unravel_index(int(np.argmax(dist)), dist.shape)
        u, v = float(u_idx + c0), float(v_idx + r0)
    else:
        box = _check_box(arr)
        u = float((box[0] + box[2]) / 2 - 0.5)
        v = float((box[1] + box[3]) / 2 - 0.5)
    if depth_m is None:
        return PickPoint(False, u, v, _NAN3, 'no depth image')
    if intrinsics is None:
        return PickPoint(False, u, v, _NAN3, 'no camera intrinsics')
    h, w = depth_m.shape
    ui, vi = int(round(u)), int(round(v))
    if not (0 <= ui < w and 0 <= vi < h):
        return PickPoint(False, u, v, _NAN3, f'pick pixel ({ui}, {vi}) is outside the image')
    r0, r1 = max(vi - window, 0), min(vi + window + 1, h)
    c0, c1 = max(ui - window, 0), min(ui + window + 1, w)
    patch = depth_m[r0:r1, c0:c1]
    good = _valid_depth(patch, min_depth_m, max_depth_m)
    if mask is not None:
        good &= mask[r0:r1, c0:c1]
    if not good.any():
        return PickPoint(False, u, v, _NAN3, 'no valid depth at the pick pixel')
    z = float(np.median(patch[good]))
    return PickPoint(True, u, v, tuple(float(c) for c in intrinsics.back_project(u, v, z)),
                     f'depth median of {int(good.sum())} pixels')
