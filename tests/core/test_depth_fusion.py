"""Depth fusion on synthetic depth images with known answers."""
import math

from edge_perception.core.depth_fusion import (
    CameraIntrinsics, DepthFusionError, object_position, pick_point)
import numpy as np
import pytest

W, H = 160, 120
K = CameraIntrinsics(fx=200.0, fy=210.0, cx=79.5, cy=59.5, width=W, height=H)
BELT_Z = 1.2


def belt_with_box(z_obj, box):
    """Belt plane at BELT_Z with a flat-topped object at z_obj over the box's pixels."""
    depth = np.full((H, W), BELT_Z, np.float32)
    x0, y0, x1, y1 = box
    depth[y0:y1, x0:x1] = z_obj
    return depth


def test_box_at_known_depth_back_projects_to_known_xyz():
    box = (100, 20, 140, 60)  # pixels 100..139 x 20..59, centre index (119.5, 39.5)
    depth = belt_with_box(0.8, box)
    pos = object_position(depth, box, intrinsics=K)
    assert pos.valid, pos.reason
    expected = ((119.5 - 79.5) * 0.8 / 200.0, (39.5 - 59.5) * 0.8 / 210.0, 0.8)
    np.testing.assert_allclose(pos.xyz, expected, atol=1e-9)
    assert pos.depth_std_m == pytest.approx(0.0, abs=1e-9)
    # The middle 50 % of a 40x40 box: 20x20 samples.
    assert pos.n_samples == 400


def test_mask_centroid_and_median_ignore_nan_and_zero_holes():
    box = (20, 30, 80, 90)
    depth = belt_with_box(0.9, box)
    mask = np.zeros((H, W), bool)
    mask[30:90, 20:80] = True
    rng = np.random.default_rng(1)
    rows, cols = np.nonzero(mask)
    holes = rng.choice(rows.size, size=rows.size // 3, replace=False)
    depth[rows[holes[::2]], cols[holes[::2]]] = np.nan
    depth[rows[holes[1::2]], cols[holes[1::2]]] = 0.0
    pos = object_position(depth, box, mask=mask, intrinsics=K)
    assert pos.valid
    assert pos.xyz[2] == pytest.approx(0.9, abs=1e-6)
    assert pos.n_samples == rows.size - holes.size
    assert pos.xyz[0] == pytest.approx((49.5 - 79.5) * 0.9 / 200.0, abs=1e-6)
    assert pos.xyz[1] == pytest.approx((59.5 - 59.5) * 0.9 / 210.0, abs=1e-6)


def test_median_resists_belt_pixels_and_spread_is_mad_based():
    # Noisy object surface (sigma 1 cm) plus a few belt pixels inside the mask.
    box = (40, 40, 100, 100)
    rng = np.random.default_rng(0)
    depth = np.full((H, W), BELT_Z, np.float64)
    depth[40:100, 40:100] = 0.7 + rng.normal(0, 0.01, (60, 60))
    mask = np.zeros((H, W), bool)
    mask[38:100, 40:100] = True  # two belt rows leak into the mask
    pos = object_position(depth, box, mask=mask, intrinsics=K)
    assert pos.xyz[2] == pytest.approx(0.7, abs=0.002)
    assert pos.depth_std_m == pytest.approx(0.01, rel=0.15)


def test_missing_intrinsics_is_invalid_not_guessed():
    depth = belt_with_box(0.8, (10, 10, 50, 50))
    pos = object_position(depth, (10, 10, 50, 50), intrinsics=None)
    assert not pos.valid
    assert 'intrinsics' in pos.reason
    assert all(math.isnan(c) for c in pos.xyz)


def test_too_few_valid_samples_is_invalid_with_reason():
    box = (10, 10, 50, 50)
    depth = belt_with_box(0.8, box)
    depth[10:50, 10:50] = np.nan
    depth[30, 30] = 0.8
    pos = object_position(depth, box, intrinsics=K, min_samples=10)
    assert not pos.valid
    assert pos.n_samples == 1
    assert 'too few valid depth samples' in pos.reason


def test_depth_size_mismatch_raises_with_both_sizes():
    depth = np.full((H // 2, W // 2), 1.0, np.float32)
    with pytest.raises(ValueError, match='80x60.*160x120'):
        object_position(depth, (0, 0, 10, 10), intrinsics=K)
    with pytest.raises(ValueError, match='80x60.*640x480'):
        object_position(depth, (0, 0, 10, 10), image_shape=(480, 640, 3))


def test_integer_depth_is_refused_not_read_as_metres():
    depth_mm = np.full((H, W), 800, np.uint16)
    with pytest.raises(DepthFusionError, match='float metres'):
        object_position(depth_mm, (0, 0, 10, 10), intrinsics=K)


def test_intrinsics_from_k_and_uncalibrated_k():
    k = [200.0, 0.0, 79.5, 0.0, 210.0, 59.5, 0.0, 0.0, 1.0]
    assert CameraIntrinsics.from_k(k, W, H) == K
    with pytest.raises(ValueError, match='not calibrated'):
        CameraIntrinsics.from_k([0.0] * 9, W, H)


def test_pick_point_l_shape_lands_in_thick_part():
    # L shape: a thick 40x40 block (rows 60..99, cols 20..59) plus a thin 6-px arm to the right.
    mask = np.zeros((H, W), bool)
    mask[60:100, 20:60] = True
    mask[94:100, 60:150] = True
    depth = np.where(mask, 0.75, BELT_Z).astype(np.float32)
    pick = pick_point(mask, depth, K)
    assert pick.valid
    assert 60 + 15 <= pick.v <= 99 - 15 and 20 + 15 <= pick.u <= 59 - 15
    assert pick.xyz[2] == pytest.approx(0.75)
    assert pick.xyz[0] == pytest.approx((pick.u - 79.5) * 0.75 / 200.0)


def test_pick_point_box_is_centre_and_invalid_without_depth():
    pick = pick_point((10, 20, 30, 60), None, K)
    assert (pick.u, pick.v) == (19.5, 39.5)
    assert not pick.valid and 'depth' in pick.reason


def test_empty_mask_is_an_error():
    with pytest.raises(ValueError, match='empty'):
        pick_point(np.zeros((H, W), bool), None, K)


def test_median_is_numpys_for_odd_and_even_counts():
    from edge_perception.core.depth_fusion import _median
    rng = np.random.default_rng(3)
    for n in (1, 2, 7, 10, 7701):
        values = rng.uniform(0.3, 3.0, n).astype(np.float32)
        assert _median(values) == pytest.approx(float(np.median(values.astype(np.float64))),
                                                abs=1e-12)


def test_mask_extent_and_pick_point_at_the_image_border():
    from edge_perception.core.depth_fusion import mask_extent
    mask = np.zeros((40, 60), bool)
    assert mask_extent(mask) is None
    mask[0:10, 50:60] = True            # a 10x10 square in the top-right corner
    assert mask_extent(mask) == (0, 10, 50, 60)
    # The image border is boundary: the deepest pixel is the square's centre, not its corner.
    pick = pick_point(mask)
    assert (pick.u, pick.v) in {(54.0, 4.0), (55.0, 4.0), (54.0, 5.0), (55.0, 5.0)}
