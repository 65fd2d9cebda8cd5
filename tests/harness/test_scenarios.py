"""Synthetic depth scenarios: geometry, noise model, ground truth and determinism."""
import math

from edge_perception.core.collision import should_alert
from edge_perception.harness.scenarios import (add_depth_noise, Box, PinholeCamera, render_depth,
                                               Scenario, scenario_by_name, SCENARIO_NAMES)
import numpy as np
import pytest

CAMERA = PinholeCamera()


def test_camera_defaults_and_bearings():
    assert (CAMERA.width, CAMERA.height, CAMERA.fx, CAMERA.fy, CAMERA.cx, CAMERA.cy) == (
        640, 480, 525.0, 525.0, 319.5, 239.5)
    bearings = CAMERA.column_bearings_rad()
    assert bearings.shape == (640,)
    assert bearings[0] == pytest.approx(math.atan2(319.5, 525.0))     # left edge: positive
    assert bearings[-1] == pytest.approx(-math.atan2(319.5, 525.0))     # symmetric
    assert np.all(np.diff(bearings) < 0)


def test_render_box_projects_to_the_pinhole_rectangle():
    # 1.05 m x 0.42 m at 5.25 m: 105 x 42 px around the principal point.
    depth = render_depth([Box(0.0, 0.0, 5.25, 1.05, 0.42)], CAMERA, background_m=9.0)
    assert depth.dtype == np.float32 and depth.shape == (480, 640)
    rows, cols = np.nonzero(depth < 9.0)
    assert cols.min() == math.ceil(319.5 - 52.5) and cols.max() == math.floor(319.5 + 52.5)
    assert rows.min() == math.ceil(239.5 - 21.0) and rows.max() == math.floor(239.5 + 21.0)
    assert np.all(depth[depth < 9.0] == np.float32(5.25))


def test_render_nearest_surface_wins_and_offscreen_is_clipped():
    boxes = [Box(0.0, 0.0, 4.0, 2.0, 2.0), Box(0.0, 0.0, 2.0, 0.2, 0.2),
             Box(50.0, 0.0, 3.0, 1.0, 1.0)]
    depth = render_depth(boxes, CAMERA, background_m=8.0)
    assert depth[240, 320] == pytest.approx(2.0)
    assert depth[240, 320 + 100] == pytest.approx(4.0)
    assert depth[0, 0] == pytest.approx(8.0)
    assert np.isnan(render_depth([], CAMERA, background_m=math.nan)).all()


def test_noise_model_sigma_grows_with_z_squared_and_holes():
    rng = np.random.default_rng(0)
    for z in (2.0, 6.0):
        clean = np.full((480, 640), z, dtype=np.float32)
        noisy = add_depth_noise(clean, rng, noise_k=0.0025, hole_fraction=0.1)
        holes = ~np.isfinite(noisy) | (noisy == 0)
        assert holes.mean() == pytest.approx(0.1, abs=0.005)
        assert np.isnan(noisy).mean() == pytest.approx(0.05, abs=0.005)   # half NaN, half 0
        residual = noisy[~holes] - z
        sigma = 0.0025 * z * z
        assert residual.std() == pytest.approx(sigma, rel=0.03)
        assert abs(residual.mean()) < 0.02 * sigma       # unbiased (mean of ~280k samples)
    with pytest.raises(ValueError):
        add_depth_noise(clean, rng, noise_k=-1.0)


@pytest.mark.parametrize('name', SCENARIO_NAMES)
def test_every_scenario_is_well_formed(name):
    scenario = scenario_by_name(name)
    assert isinstance(scenario, Scenario) and scenario.name == name and scenario.description
    stamps = np.array([f.stamp_s for f in scenario.frames])
    assert len(stamps) > 20 and np.all(np.diff(stamps) > 0)
    for frame in scenario.frames:
        assert frame.depth_m.dtype == np.float32
        assert frame.depth_m.shape == (scenario.camera.height, scenario.camera.width)
        assert frame.expect_alert == should_alert(frame.true_speed_mps, frame.true_tti_s)
        if frame.true_speed_mps < 0:
            assert frame.true_tti_s == pytest.approx(
                frame.true_distance_m / -frame.true_speed_mps)
        else:
            assert frame.true_tti_s == math.inf and not frame.expect_alert


def test_scenarios_are_deterministic_by_seed():
    first = scenario_by_name('approach', seed=3)
    again = scenario_by_name('approach', seed=3)
    other = scenario_by_name('approach', seed=4)
    for a, b in zip(first.frames[:5], again.frames[:5]):
        np.testing.assert_array_equal(a.depth_m, b.depth_m)
    assert not np.array_equal(first.frames[0].depth_m, other.frames[0].depth_m, equal_nan=True)


def test_approach_ground_truth_matches_the_rendered_depth():
    scenario = scenario_by_name('approach', noise_k=0.0, hole_fraction=0.0)
    for frame in scenario.frames:
        z = 8.0 - 3.0 * frame.stamp_s
        assert frame.true_distance_m == pytest.approx(z)
        assert frame.true_speed_mps == -3.0
        assert frame.depth_m[240, 320] == pytest.approx(z, rel=1e-6)
        assert frame.depth_m[5, 5] == pytest.approx(10.0)          # the wall
    assert scenario.frames[0].true_tti_s == pytest.approx(8.0 / 3.0)
    assert all(f.expect_alert for f in scenario.frames)           # TTI < 3 s from the start


def test_walk_to_wall_is_a_slow_true_approach():
    scenario = scenario_by_name('walk_to_wall', noise_k=0.0, hole_fraction=0.0)
    assert not any(f.expect_alert for f in scenario.frames)
    frame = scenario.frames[10]
    assert np.all(frame.depth_m == np.float32(frame.true_distance_m))
    assert frame.true_speed_mps == -1.4
    assert frame.true_tti_s == pytest.approx(frame.true_distance_m / 1.4)


def test_crossing_and_entering_keep_constant_depth():
    for name, depth in (('cross', 3.0), ('enter', 2.5)):
        scenario = scenario_by_name(name, noise_k=0.0, hole_fraction=0.0)
        seen = [f.depth_m.min() for f in scenario.frames if f.depth_m.min() < 8.0]
        assert len(seen) > 10 and np.allclose(seen, depth)
        assert all(f.true_speed_mps == 0.0 and not f.expect_alert for f in scenario.frames)
    enter = scenario_by_name('enter', noise_k=0.0, hole_fraction=0.0)
    assert enter.frames[0].depth_m.min() == pytest.approx(8.0)     # starts outside the view


def test_irregular_stamps_have_jitter_drops_and_a_gap():
    scenario = scenario_by_name('approach_irregular')
    steps = np.diff([f.stamp_s for f in scenario.frames])
    period = 1.0 / 30.0
    assert steps.min() < 0.8 * period                 # jitter shortens some intervals
    assert np.any((steps > 1.5 * period) & (steps < 3.5 * period))   # dropped frames
    assert steps.max() > 0.2                          # the gap
    for frame in scenario.frames:                     # truth follows the real stamps
        assert frame.true_distance_m == pytest.approx(8.0 - 3.0 * frame.stamp_s)


def test_custom_stamps_and_parameters_pass_through():
    scenario = scenario_by_name('approach', stamps=[0.0, 0.1, 0.35], speed_mps=2.0,
                                start_m=5.0, noise_k=0.0, hole_fraction=0.0)
    assert [f.stamp_s for f in scenario.frames] == [0.0, 0.1, 0.35]
    assert scenario.frames[-1].true_distance_m == pytest.approx(5.0 - 0.7)


def test_unknown_scenario_lists_the_known_ones():
    with pytest.raises(ValueError, match='approach.*walk_to_wall'):
        scenario_by_name('nope')
    with pytest.raises(ValueError):
        scenario_by_name('approach', speed_mps=-1.0)
