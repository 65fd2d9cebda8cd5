"""Crack metrics, geometry (px and mm) and severity on drawn cracks with known answers."""
import math

from edge_perception.core.crack import (
    crack_geometry, CrackInputError, metric_widths, segmentation_metrics, severity,
    SEVERITY_MONITOR, SEVERITY_NONE, SEVERITY_REPAIR, SEVERITY_UNKNOWN, skeleton_length)
import numpy as np
import pytest


def capsule(shape, p0, p1, width):
    """Pixels whose centre lies within width / 2 of the segment p0-p1 (row, col): a drawn crack."""
    rr, cc = np.mgrid[:shape[0], :shape[1]].astype(float)
    d = np.subtract(p1, p0, dtype=float)
    t = np.clip(((rr - p0[0]) * d[0] + (cc - p0[1]) * d[1]) / (d @ d), 0.0, 1.0)
    return np.hypot(rr - (p0[0] + t * d[0]), cc - (p0[1] + t * d[1])) <= width / 2.0


def centred_segment(angle_deg, length, centre=(150.0, 150.0)):
    a = math.radians(angle_deg)
    half = np.array([math.sin(a), math.cos(a)]) * length / 2.0
    return tuple(np.array(centre) - half), tuple(np.array(centre) + half)


# --- segmentation_metrics ---------------------------------------------------------------------

def test_metrics_hand_checked_counts():
    gt = np.zeros((4, 4), bool)
    gt[1, :] = True                       # 4 crack pixels
    pred = np.zeros((4, 4), bool)
    pred[1, :3] = True                    # 3 correct
    pred[3, 3] = True                     # 1 wrong
    m = segmentation_metrics(pred, gt)
    assert (m['tp'], m['fp'], m['fn']) == (3, 1, 1)
    assert m['precision'] == pytest.approx(3 / 4)
    assert m['recall'] == pytest.approx(3 / 4)
    assert m['f1'] == pytest.approx(3 / 4)
    assert m['iou'] == pytest.approx(3 / 5)


def test_metrics_accept_0_255_like_bool():
    rng = np.random.default_rng(1)
    pred = rng.random((20, 30)) > 0.7
    gt = rng.random((20, 30)) > 0.7
    assert segmentation_metrics(pred.astype(np.uint8) * 255, gt.astype(np.uint8) * 255) == \
        segmentation_metrics(pred, gt)


def test_metrics_tolerance_forgives_one_pixel_shift():
    gt = np.zeros((20, 20), bool)
    gt[10, 2:18] = True
    pred = np.roll(gt, 1, axis=0)          # the same line, one row lower
    strict = segmentation_metrics(pred, gt)
    assert strict['tp'] == 0 and strict['iou'] == 0.0
    tolerant = segmentation_metrics(pred, gt, tolerance_px=1)
    assert tolerant['tp'] == 16 and tolerant['fn'] == 0 and tolerant['iou'] == 1.0
    # Two rows away is outside a 1 px tolerance but inside 2 px.
    far = np.roll(gt, 2, axis=0)
    assert segmentation_metrics(far, gt, tolerance_px=1)['tp'] == 0
    assert segmentation_metrics(far, gt, tolerance_px=2)['f1'] == 1.0


def test_metrics_tolerance_precision_and_recall_counted_separately():
    gt = np.zeros((10, 10), bool)
    gt[5, 5] = True
    pred = np.zeros((10, 10), bool)
    pred[5, 4:7] = True                   # 3 predicted pixels, all within 1 px of the gt pixel
    m = segmentation_metrics(pred, gt, tolerance_px=1)
    assert (m['tp'], m['fp'], m['tp_gt'], m['fn']) == (3, 0, 1, 0)
    assert m['precision'] == 1.0 and m['recall'] == 1.0


def test_metrics_empty_conventions():
    empty = np.zeros((5, 5), bool)
    some = empty.copy()
    some[2, 2] = True
    assert segmentation_metrics(empty, empty)['iou'] == 1.0
    missed = segmentation_metrics(empty, some)
    assert missed['recall'] == 0.0 and missed['iou'] == 0.0 and missed['fn'] == 1
    false_alarm = segmentation_metrics(some, empty, tolerance_px=2)
    assert false_alarm['precision'] == 0.0 and false_alarm['iou'] == 0.0


@pytest.mark.parametrize('pred, gt', [
    (np.zeros((4, 4), bool), np.zeros((4, 5), bool)),
    (np.zeros((4, 4, 3), bool), np.zeros((4, 4, 3), bool)),
    (np.full((4, 4), 0.7), np.zeros((4, 4), bool)),   # probabilities, not a mask
])
def test_metrics_reject_bad_input(pred, gt):
    with pytest.raises(CrackInputError):
        segmentation_metrics(pred, gt)


# --- crack_geometry ---------------------------------------------------------------------------

@pytest.mark.parametrize('width', [1, 3, 5, 9])
def test_horizontal_crack_length_and_width(width):
    mask = np.zeros((100, 300), bool)
    mask[50 - width // 2:50 + width // 2 + 1, 50:250] = True   # 200 px long
    g = crack_geometry(mask)
    # Thinning eats about half the width at each end of a square-ended crack.
    assert 200 - width - 1 <= g.length_px <= 200
    assert g.max_width_px == pytest.approx(width)
    assert g.mean_width_px == pytest.approx(width, abs=0.1)
    assert g.component_count == 1
    assert g.pixel_fraction == pytest.approx(width * 200 / mask.size)


@pytest.mark.parametrize('angle', [0.0, 10.0, 22.5, 37.0, 45.0, 71.0, 90.0, 135.0, 160.0])
@pytest.mark.parametrize('width', [1, 3, 5, 7])
def test_oblique_crack_within_stated_tolerance(angle, width):
    """Widths within 1 px (mean -1.3 px); length within -3 %/+10 % at any angle.

    8-connected length with sqrt(2) diagonals overestimates lines between the axes and the
    diagonals (Freeman chain-code bias, 8 % at 22.5 degrees), which is the documented definition.
    """
    p0, p1 = centred_segment(angle, 200.0)
    g = crack_geometry(capsule((300, 300), p0, p1, width))
    assert 0.97 * 200 <= g.length_px <= 1.10 * 200
    assert abs(g.max_width_px - width) <= 1.0
    assert -1.3 <= g.mean_width_px - width <= 1.0


def test_exact_diagonal_length():
    mask = np.eye(50, dtype=bool)          # 50 pixels, 49 diagonal steps
    assert crack_geometry(mask).length_px == pytest.approx(49 * math.sqrt(2))


def test_skeleton_length_does_not_double_count_staircases():
    staircase = np.array([[1, 1, 0],
                          [0, 1, 1]], bool)  # 4-connected: 3 unit steps, no diagonal shortcut
    assert skeleton_length(staircase) == pytest.approx(3.0)
    assert skeleton_length(np.array([[1, 0], [0, 1]], bool)) == pytest.approx(math.sqrt(2))
    assert skeleton_length(np.array([[0, 1], [1, 0]], bool)) == pytest.approx(math.sqrt(2))


def test_specks_removed_and_components_counted():
    mask = np.zeros((200, 300), bool)
    mask[50:53, 20:120] = True             # crack 1, 100 px
    mask[150:153, 150:280] = True          # crack 2, 130 px
    reference = crack_geometry(mask)
    noisy = mask.copy()
    noisy[10:13, 200:203] = True           # 9 px speck
    noisy[100, 100] = True                 # 1 px speck
    g = crack_geometry(noisy, min_area_px=20)
    assert g.component_count == 2
    assert g == reference
    assert 100 + 130 - 8 <= g.length_px <= 230
    assert crack_geometry(noisy, min_area_px=1).component_count == 4


def test_empty_and_all_specks_give_zero_geometry():
    for mask in (np.zeros((30, 30), bool), np.eye(30, dtype=np.uint8)[:, ::-1][:5]):
        g = crack_geometry(mask, min_area_px=20)
        assert (g.length_px, g.max_width_px, g.pixel_fraction, g.component_count) == (0, 0, 0, 0)


def test_geometry_rejects_non_mask():
    with pytest.raises(ValueError):
        crack_geometry(np.full((10, 10), 128, np.uint8))
    with pytest.raises(ValueError):
        crack_geometry(np.zeros((10, 10, 3), np.uint8))


# --- metric_widths ----------------------------------------------------------------------------

def horizontal_crack(width=5, shape=(120, 320)):
    mask = np.zeros(shape, bool)
    mask[60 - width // 2:60 + width // 2 + 1, 60:260] = True
    return mask


def test_metric_widths_known_depth_and_focal_length():
    mask = horizontal_crack(width=5)
    g = crack_geometry(mask)
    depth = np.full(mask.shape, 0.4, np.float32)
    m = metric_widths(g, mask, depth, fx=800.0, fy=800.0)
    assert m.metric_valid
    assert m.depth_m == pytest.approx(0.4)
    assert m.max_width_mm == pytest.approx(5 * 0.4 / 800 * 1000)        # 2.5 mm
    assert m.length_mm == pytest.approx(g.length_px * 0.5)              # 0.5 mm per px
    assert 195 * 0.5 <= m.length_mm <= 200 * 0.5


def test_metric_widths_use_depth_around_the_crack_when_missing_on_it():
    mask = horizontal_crack(width=3)
    depth = np.full(mask.shape, 1.2, np.float32)
    depth[mask] = np.nan                   # stereo/ToF often has no depth in the crack itself
    depth[:10] = 5.0                       # far background, outside the dilated crack region
    m = metric_widths(crack_geometry(mask), mask, depth, fx=600.0, fy=600.0)
    assert m.metric_valid and m.depth_m == pytest.approx(1.2)
    assert m.max_width_mm == pytest.approx(3 * 1.2 / 600 * 1000)        # 6 mm


@pytest.mark.parametrize('depth, fx, fy', [
    (None, 600.0, 600.0),                  # no depth
    ('nan', 600.0, 600.0),                 # no valid depth near the crack
    ('zero', 600.0, 600.0),
    ('ok', None, 600.0),                   # depth without intrinsics
    ('ok', 600.0, float('nan')),
    ('ok', 0.0, 600.0),
])
def test_metric_widths_invalid_gives_nan_never_a_guess(depth, fx, fy):
    mask = horizontal_crack()
    values = {'nan': np.nan, 'zero': 0.0, 'ok': 0.5}
    depth_img = None if depth is None else np.full(mask.shape, values[depth], np.float32)
    m = metric_widths(crack_geometry(mask), mask, depth_img, fx, fy)
    assert not m.metric_valid
    assert all(math.isnan(v) for v in (m.depth_m, m.length_mm, m.max_width_mm, m.mean_width_mm))


def test_metric_widths_bad_depth_raises():
    mask = horizontal_crack()
    g = crack_geometry(mask)
    with pytest.raises(ValueError, match='shape'):
        metric_widths(g, mask, np.ones((60, 160), np.float32), 600.0, 600.0)
    with pytest.raises(ValueError, match='float metres'):
        metric_widths(g, mask, np.full(mask.shape, 500, np.uint16), 600.0, 600.0)


def test_metric_widths_no_crack():
    mask = np.zeros((50, 50), bool)
    m = metric_widths(crack_geometry(mask), mask, np.ones((50, 50)), 600.0, 600.0)
    assert not m.metric_valid and m.max_width_mm == 0.0
    assert severity(m.max_width_mm, m.metric_valid) == (SEVERITY_NONE, 'none')


# --- severity ---------------------------------------------------------------------------------

def test_severity_default_gb50204_bins():
    assert severity(0.05, True) == (SEVERITY_MONITOR, 'monitor')
    assert severity(0.0999, True) == (SEVERITY_MONITOR, 'monitor')
    assert severity(0.1, True) == (SEVERITY_REPAIR, 'repair')
    assert severity(2.5, True) == (SEVERITY_REPAIR, 'repair')
    assert severity(float('nan'), False) == (SEVERITY_UNKNOWN, 'unknown')
    assert severity(0.3, False) == (SEVERITY_UNKNOWN, 'unknown')
    assert severity(0.3, True, crack_found=False) == (SEVERITY_NONE, 'none')


def test_severity_custom_bins():
    bins, labels = (0.2, 1.0), ('fine', 'medium', 'wide')
    assert severity(0.1, True, bins, labels) == (1, 'fine')
    assert severity(0.5, True, bins, labels) == (2, 'medium')
    assert severity(1.0, True, bins, labels) == (3, 'wide')


@pytest.mark.parametrize('bins, labels', [
    ((0.1,), ('only-one',)),
    ((0.3, 0.1), ('a', 'b', 'c')),
    ((-0.1,), ('a', 'b')),
    ((), ('a',)),
])
def test_severity_bad_bins_raise(bins, labels):
    with pytest.raises(ValueError):
        severity(0.2, True, bins, labels)


def test_end_to_end_mm_severity_from_drawn_crack():
    """At 0.2 m with fx = 5000 px a 3 px crack is 0.12 mm wide (repair), 1 px 0.04 mm (monitor)."""
    depth = np.full((120, 320), 0.2)
    for width, expected in ((3, SEVERITY_REPAIR), (1, SEVERITY_MONITOR)):
        mask = horizontal_crack(width)
        m = metric_widths(crack_geometry(mask), mask, depth, 5000.0, 5000.0)
        assert m.max_width_mm == pytest.approx(width * 0.2 / 5000 * 1000)
        assert severity(m.max_width_mm, m.metric_valid)[0] == expected
