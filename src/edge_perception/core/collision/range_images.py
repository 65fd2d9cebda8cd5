"""LiDAR helpers: turn laser scans and point clouds into range images for DepthTTIEstimator."""
import math

from edge_perception.core.collision.rule import CollisionInputError
import numpy as np


def _wrap_angle(angles):
    return (angles + np.pi) % (2.0 * np.pi) - np.pi


def range_image_from_laserscan(angles_rad, ranges_m, fov_rad=math.radians(90.0)):
    """Return (ranges 1xN float32, bearings N) for the beams within +-fov_rad/2 of straight ahead.

    Angles follow REP 103 (0 ahead, positive to the left). Columns run from left to right like
    a camera image (bearing decreasing). Invalid ranges (NaN, inf, <= 0) become NaN. Raises
    CollisionInputError when the arrays differ in length or no beam lies in the sector.
    """
    angles = np.asarray(angles_rad, dtype=np.float64).ravel()
    ranges = np.asarray(ranges_m, dtype=np.float32).ravel()
    if angles.size != ranges.size:
        raise CollisionInputError(
            f'{angles.size} angles but {ranges.size} ranges: one angle per range is needed')
    if not 0.0 < fov_rad <= 2.0 * math.pi:
        raise CollisionInputError(f'fov_rad must be in (0, 2 pi], got {fov_rad}')
    wrapped = _wrap_angle(angles)
    keep = np.flatnonzero(np.abs(wrapped) <= 0.5 * fov_rad + 1e-9)
    if keep.size == 0:
        raise CollisionInputError(
            f'no beam within +-{math.degrees(fov_rad) / 2:.1f} deg of straight ahead')
    order = keep[np.argsort(-wrapped[keep], kind='stable')]
    out = ranges[order]
    out = np.where(np.isfinite(out) & (out > 0), out, np.float32(np.nan)).astype(np.float32)
    return out[np.newaxis, :], wrapped[order]


def range_image_from_points(xyz, h_fov_rad=math.radians(90.0), v_fov_rad=math.radians(30.0),
                            width=180, height=16, min_range_m=0.0, max_range_m=math.inf):
    """Project a point cloud (REP 103 sensor frame: x forward, y left, z up) to a range image.

    Only the forward sector (|azimuth| <= h_fov/2, |elevation| <= v_fov/2, x > 0) is kept.
    Column 0 is the left edge (bearing +h_fov/2), row 0 the top. Each cell holds the range
    (Euclidean distance) of its nearest point, NaN where empty. Returns (HxW float32, column
    bearings W in rad, the cell centres).
    """
    points = np.asarray(xyz, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise CollisionInputError(f'points must be an Nx3 array, got shape {points.shape}')
    if int(width) < 1 or int(height) < 1:
        raise CollisionInputError(f'width and height must be >= 1, got {width}x{height}')
    if not (0.0 < h_fov_rad < math.pi and 0.0 < v_fov_rad < math.pi):
        raise CollisionInputError('h_fov_rad and v_fov_rad must be in (0, pi)')
    width = int(width)
    height = int(height)
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    rng = np.sqrt(x * x + y * y + z * z)
    azimuth = np.arctan2(y, x)
    elevation = np.arctan2(z, np.hypot(x, y))
    with np.errstate(invalid='ignore'):
        keep = (np.isfinite(rng) & (x > 0) & (rng > min_range_m) & (rng <= max_range_m) &
                (np.abs(azimuth) <= 0.5 * h_fov_rad) & (np.abs(elevation) <= 0.5 * v_fov_rad))
    col = np.floor((0.5 * h_fov_rad - azimuth[keep]) / h_fov_rad * width).astype(np.int64)
    row = np.floor((0.5 * v_fov_rad - elevation[keep]) / v_fov_rad * height).astype(np.int64)
    np.clip(col, 0, width - 1, out=col)
    np.clip(row, 0, height - 1, out=row)
    image = np.full(height * width, np.inf)
    np.minimum.at(image, row * width + col, rng[keep])
    image[~np.isfinite(image)] = np.nan
    bearings = 0.5 * h_fov_rad - (np.arange(width) + 0.5) * (h_fov_rad / width)
    return image.reshape(height, width).astype(np.float32), bearings
