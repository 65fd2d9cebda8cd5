"""core.guided_filter: known answers on synthetic planes and guides."""
from edge_perception.core.guided_filter import fast_guided_filter, GuidedFilterError
import numpy as np
import pytest


def step_guide(height=40, width=64, edge=29):
    """Dark left of column `edge`, bright from it on (RGB in [0, 1])."""
    guide = np.full((height, width, 3), 0.1, np.float32)
    guide[:, edge:] = 0.9
    return guide


def test_constant_planes_are_kept():
    planes = np.stack([np.full((40, 64), v, np.float32) for v in (0.2, 0.3, 0.5)])
    rng = np.random.default_rng(0)
    guide = rng.random((40, 64, 3)).astype(np.float32)
    out = fast_guided_filter(planes, guide, radius=8, eps=1e-3)
    np.testing.assert_allclose(out, planes, atol=1e-5)


def test_planes_that_sum_to_one_still_do():
    rng = np.random.default_rng(1)
    planes = rng.random((7, 40, 64)).astype(np.float32)
    planes /= planes.sum(axis=0)
    guide = rng.random((40, 64, 3)).astype(np.float32)
    out = fast_guided_filter(planes, guide, radius=4, eps=1e-2)
    np.testing.assert_allclose(out.sum(axis=0), 1.0, atol=1e-5)


def test_a_soft_boundary_snaps_to_the_guide_edge():
    # Plane 1 ramps from 0 to 1 over columns 16..32 (a coarse network's blurred outline, 0.5
    # at column 24); the image's edge is at column 29. Filtered, the argmax changes exactly at
    # the image's edge, not at the ramp's middle, and the ramp is steeper there than before.
    width, edge = 64, 29
    ramp = np.clip((np.arange(width) - 16.0) / 16.0, 0.0, 1.0).astype(np.float32)
    p1 = np.broadcast_to(ramp, (40, width)).copy()
    planes = np.stack([1.0 - p1, p1])
    out = fast_guided_filter(planes, step_guide(40, width, edge), radius=8, eps=1e-3)
    expected = np.broadcast_to((np.arange(width) >= edge).astype(np.int64), (40, width))
    assert np.count_nonzero(planes.argmax(axis=0) != expected) == 40 * 4   # columns 25..28
    np.testing.assert_array_equal(out.argmax(axis=0), expected)
    assert out[1, 20, edge] - out[1, 20, edge - 1] > 3 * (p1[20, edge] - p1[20, edge - 1])


def test_no_edge_in_the_guide_leaves_a_smooth_plane_smooth():
    # Against a flat guide the filter is a plain (smoothing) average: nothing to snap to.
    ramp = np.broadcast_to(np.linspace(0, 1, 64, dtype=np.float32), (40, 64)).copy()
    planes = np.stack([1.0 - ramp, ramp])
    flat = np.full((40, 64, 3), 0.5, np.float32)
    out = fast_guided_filter(planes, flat, radius=8, eps=1e-3)
    assert np.all(np.diff(out[1, 20, 10:54]) > 0)            # still increasing, no step
    assert np.abs(out[1] - ramp)[:, 10:54].max() < 0.02


@pytest.mark.parametrize('planes, guide, kwargs, match', [
    (np.zeros((1, 8, 8), np.float32), np.zeros((8, 8, 3), np.float32), {}, 'C >= 2'),
    (np.zeros((2, 8, 8), np.float32), np.zeros((8, 9, 3), np.float32), {}, 'guide'),
    (np.zeros((2, 8, 8), np.float32), np.zeros((8, 8), np.float32), {}, 'guide'),
    (np.zeros((2, 8, 8), np.float32), np.zeros((8, 8, 3), np.float32), {'eps': 0.0}, 'eps'),
    (np.zeros((2, 8, 8), np.float32), np.zeros((8, 8, 3), np.float32),
     {'radius': 1, 'subsample': 2}, 'radius'),
])
def test_bad_arguments_are_refused(planes, guide, kwargs, match):
    options = {'radius': 4, 'eps': 1e-3, **kwargs}
    with pytest.raises(GuidedFilterError, match=match):
        fast_guided_filter(planes, guide, **options)
