"""Scene mode's object path: approaching surfaces followed as blobs across frames, not pixels.

No rclpy here. Comparing each pixel with the same pixel earlier (scene.DepthTTIEstimator's
per-pixel path) sees an approach only where the same surface stays under the same pixel: walls,
large objects, the whole scene. A small fast object (a thrown ball, a drone crossing) moves
further across the image between the frames compared than it is wide, so per pixel it is a
pair of edges, not an approach. Here each frame is segmented once into blobs (connected
surfaces cut at depth jumps), and blobs are matched between the reference and the current
frame by their 3D centroids (`scipy.optimize.linear_sum_assignment`), so a blob is followed
wherever it moves in the image; its range rate is the change of its mean depth over the
elapsed stamp time.

What keeps it from alerting on what is not an approach:

- a blob must lie inside the object ROI in both frames (one that touches its border may be
  entering, leaving or clipped: its depth and size are not the object's);
- a match must keep the blob's physical size (sqrt(area) * depth / focal) within
  `object_size_ratio`: an object entering the view matched to another surface is not;
- the blob must be found again in the mid frame (between reference and now) near the
  interpolated 3D position, at a depth on the line from reference to now (the per-pixel
  path's step check, on the whole blob);
- the depth change must exceed min_motion_m and the noise of the blob's mean, and be slower
  than max_speed_mps.

Blobs larger than `object_max_fraction` of the ROI are left to the per-pixel path.
"""
from dataclasses import dataclass
import math
from typing import Optional

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

_KERNEL = np.ones((3, 3), dtype=np.uint8)
_NO_MATCH = 1e9


@dataclass
class Blobs:
    """The blobs of one frame (arrays with one entry per blob)."""

    depth_m: np.ndarray      # mean depth
    u_px: np.ndarray         # centroid column, full-resolution pixels
    v_px: np.ndarray         # centroid row, full-resolution pixels
    xyz_m: np.ndarray        # Nx3 centroid in the optical frame (x right, y down, z ahead)
    samples: np.ndarray      # number of samples (at the object stride)
    size_m: np.ndarray       # sqrt(area) in metres at the blob's depth

    def __len__(self):
        """Return the number of blobs."""
        return int(self.depth_m.size)


@dataclass
class BlobApproach:
    """The most urgent approaching blob of a frame."""

    distance_m: float
    speed_mps: float
    samples: int
    u_px: float
    v_px: float
    mid_checked: bool


@dataclass(frozen=True)
class Pinhole:
    """Focal length and principal point, in pixels."""

    fx: float
    fy: float
    cx: float
    cy: float

    @staticmethod
    def from_bearings(bearings_rad: Optional[np.ndarray], width: int, height: int):
        """Recover fx, cx from column bearings (atan2(-(u - cx), fx)); else assume 60 deg HFOV."""
        if bearings_rad is not None and bearings_rad.size >= 2:
            slope, intercept = np.polyfit(np.arange(bearings_rad.size),
                                          np.tan(bearings_rad), 1)
            if slope < 0:
                fx = -1.0 / slope
                return Pinhole(fx, fx, intercept * fx, 0.5 * (height - 1))
        fx = 0.5 * width / math.tan(math.radians(30.0))
        return Pinhole(fx, fx, 0.5 * (width - 1), 0.5 * (height - 1))


def segment_blobs(depth_m, valid, stride, row0, col0, camera: Pinhole, config) -> Blobs:
    """Segment a (sub-sampled) depth ROI into blobs: connected surfaces cut at depth jumps.

    depth_m: float32 ROI at `stride` (NaN invalid), whose [0, 0] is full-resolution pixel
    (row0, col0). A sample farther than a neighbour (8-neighbourhood) by more than the jump
    threshold (max(min_motion_m, object_edge_fraction * z, detect_sigmas * sqrt(2) *
    sigma(z)) at the neighbour's depth) is the background side of an edge and is dropped, so
    the nearer surface keeps its full extent. Blobs touching the ROI border, smaller than
    object_min_samples or larger than object_max_fraction of the ROI are dropped.
    """
    cfg = config
    filled = np.where(valid, depth_m, np.float32(np.inf))
    nearest = cv2.erode(filled, _KERNEL, borderType=cv2.BORDER_REPLICATE)
    # A sample with no valid neighbour has nearest = inf (and NaN arithmetic): not kept.
    with np.errstate(invalid='ignore', over='ignore'):
        jump = nearest * nearest
        jump *= np.float32(cfg.detect_sigmas * math.sqrt(2.0) * cfg.noise_k)
        jump += np.float32(cfg.detect_sigmas * math.sqrt(2.0) * cfg.noise_floor_m)
        np.maximum(jump, np.float32(cfg.object_edge_fraction) * nearest, out=jump)
        np.maximum(jump, np.float32(cfg.min_motion_m), out=jump)
        jump += nearest
        keep = valid & (filled <= jump)
    count, labels = cv2.connectedComponents(keep.view(np.uint8), connectivity=8,
                                            ltype=cv2.CV_32S)
    if count <= 1:
        return _empty()
    flat = labels.ravel()
    samples = np.bincount(flat, minlength=count)
    samples[0] = 0
    usable = ((samples >= cfg.object_min_samples) &
              (samples <= cfg.object_max_fraction * depth_m.size))
    if not usable.any():
        return _empty()
    # Gather the samples of the usable blobs only (few), then per-blob sums over those.
    remap = np.zeros(count, dtype=np.int64)
    picked = np.flatnonzero(usable)
    remap[picked] = np.arange(1, picked.size + 1)
    index_all = remap[flat]
    where = np.flatnonzero(index_all)
    index = index_all[where]
    height, width = depth_m.shape
    rows, cols = np.divmod(where, width)
    bins = picked.size + 1
    border = (rows == 0) | (cols == 0) | (rows == height - 1) | (cols == width - 1)
    inside = np.bincount(index, weights=border, minlength=bins)[1:] == 0
    n = samples[picked].astype(np.float64)
    mean_z = np.bincount(index, weights=filled.ravel()[where], minlength=bins)[1:] / n
    u = col0 + stride * (np.bincount(index, weights=cols, minlength=bins)[1:] / n)
    v = row0 + stride * (np.bincount(index, weights=rows, minlength=bins)[1:] / n)
    mean_z, u, v, n = mean_z[inside], u[inside], v[inside], n[inside]
    xyz = np.stack([(u - camera.cx) / camera.fx * mean_z, (v - camera.cy) / camera.fy * mean_z,
                    mean_z], axis=1)
    size = np.sqrt(n) * stride * mean_z / math.sqrt(camera.fx * camera.fy)
    return Blobs(mean_z, u, v, xyz, n.astype(np.int64), size)


def _empty():
    nothing = np.zeros(0)
    return Blobs(nothing, nothing, nothing, np.zeros((0, 3)), np.zeros(0, dtype=np.int64),
                 nothing)


def match_blobs(before: Blobs, after: Blobs, dt_s, config):
    """Match blobs of two frames by 3D centroid distance (optimal assignment, gated).

    A pair is allowed when the centroid moved no more than max_speed_mps * dt_s and the
    physical size changed by at most object_size_ratio. Returns [(i_before, j_after), ...].
    """
    if len(before) == 0 or len(after) == 0:
        return []
    cfg = config
    cost = np.linalg.norm(before.xyz_m[:, None, :] - after.xyz_m[None, :, :], axis=2)
    ratio = after.size_m[None, :] / before.size_m[:, None]
    allowed = ((cost <= cfg.max_speed_mps * dt_s) & (ratio <= cfg.object_size_ratio) &
               (ratio >= 1.0 / cfg.object_size_ratio))
    if not allowed.any():
        return []
    rows, cols = linear_sum_assignment(np.where(allowed, cost, _NO_MATCH))
    return [(int(i), int(j)) for i, j in zip(rows, cols) if allowed[i, j]]


def nearest_blob_approach(ref: Blobs, mid: Optional[Blobs], now: Blobs, dt_s,
                          mid_fraction, config) -> Optional[BlobApproach]:
    """Return the approaching matched blob with the smallest TTI, or None.

    mid: the blobs of a frame mid_fraction of the way from ref to now (None: no step check).
    """
    with np.errstate(over='ignore', invalid='ignore'):   # absurd intrinsics: no match
        return _nearest_blob_approach(ref, mid, now, dt_s, mid_fraction, config)


def _nearest_blob_approach(ref, mid, now, dt_s, mid_fraction, config):
    cfg = config
    best = None
    for i, j in match_blobs(ref, now, dt_s, cfg):
        change = float(now.depth_m[j] - ref.depth_m[i])
        z = float(now.depth_m[j])
        n = float(min(now.samples[j], ref.samples[i]))
        noise = math.sqrt(2.0) * cfg.range_sigma(z) / math.sqrt(n)
        if not (change < -max(cfg.min_motion_m, cfg.detect_sigmas * noise) and
                -change <= cfg.max_speed_mps * dt_s):
            continue
        if mid is not None and not _on_line_in_mid(ref, now, i, j, mid, mid_fraction, change,
                                                   noise, cfg):
            continue
        speed = change / dt_s
        tti = z / -speed
        if best is None or tti < best[0]:
            best = (tti, BlobApproach(z, speed, int(now.samples[j]), float(now.u_px[j]),
                                      float(now.v_px[j]), mid is not None))
    return None if best is None else best[1]


def _on_line_in_mid(ref, now, i, j, mid, fraction, change, noise, cfg):
    """Return whether the blob is in the mid frame where a steady motion puts it.

    Position: the interpolated 3D centroid, within a quarter of the distance moved (at least
    object_edge_fraction of the depth); depth: on the line from ref to now within
    step_tolerance of the change plus the noise of the means.
    """
    if len(mid) == 0:
        return False
    expected = ref.xyz_m[i] + fraction * (now.xyz_m[j] - ref.xyz_m[i])
    moved = float(np.linalg.norm(now.xyz_m[j] - ref.xyz_m[i]))
    reach = max(0.25 * moved, cfg.object_edge_fraction * float(expected[2]))
    distance = np.linalg.norm(mid.xyz_m - expected, axis=1)
    k = int(np.argmin(distance))
    if distance[k] > reach:
        return False
    line = ref.depth_m[i] + fraction * change
    allowed = cfg.step_tolerance * abs(change) + cfg.band_sigmas * noise
    return abs(float(mid.depth_m[k]) - line) <= allowed
