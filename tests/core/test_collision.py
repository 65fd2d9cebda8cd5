"""Time-to-impact core against analytic answers on synthetic scenes (no ROS).

Scene mode runs on the seeded scenarios of edge_perception.harness.scenarios (range noise
sigma = 0.0025 z^2 and 5 % holes unless stated); object mode and the level filter on
hand-made stamped inputs whose answers follow from the definitions.
"""
import functools
import math
import pathlib
import re

from edge_perception.core.collision import (AlertLevel, AlertLevelConfig, AlertLevelFilter,
                                            DepthTTIEstimator, lidar_scene_config, ObjectTTIConfig,
                                            ObjectTTITracker, range_image_from_laserscan,
                                            range_image_from_points, SceneTTIConfig, should_alert,
                                            time_to_impact, TrackObservation)
from edge_perception.harness.scenarios import Box, PinholeCamera, render_depth, scenario_by_name
import numpy as np
import pytest

MSG_DIR = pathlib.Path(__file__).resolve().parents[2] / 'msg'


# -- helpers ----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def run_scenario(name, config_items=(), **scenario_kwargs):
    """(scenario, [estimate per frame]) for a named scenario, cached across tests."""
    scenario = scenario_by_name(name, **scenario_kwargs)
    estimator = DepthTTIEstimator(SceneTTIConfig(**dict(config_items)),
                                  scenario.camera.column_bearings_rad())
    estimates = [estimator.update(f.depth_m, f.stamp_s) for f in scenario.frames]
    return scenario, estimates


def tti_errors(scenario, estimates):
    """Relative TTI error of every valid estimate of a frame that truly approaches."""
    return np.array([abs(e.tti_s - f.true_tti_s) / f.true_tti_s
                     for f, e in zip(scenario.frames, estimates)
                     if e.valid and math.isfinite(f.true_tti_s)])


def false_alerts(scenario, estimates):
    return sum(e.alert and not f.expect_alert for f, e in zip(scenario.frames, estimates))


def plane(depth_m, shape=(48, 64)):
    return np.full(shape, depth_m, dtype=np.float32)


# -- should_alert and TTI -----------------------------------------------------------------------

@pytest.mark.parametrize('speed, tti, expected', [
    (-3.0, 2.0, True),
    (-2.2, 2.0, False),            # speed threshold is strict
    (-3.0, 3.0, False),            # TTI threshold is strict
    (-2.2000001, 2.9999999, True),
    (-1.0, 0.5, False),            # slow: no alert however close
    (3.0, math.inf, False),        # receding
    (math.nan, 1.0, False),
    (-3.0, math.nan, False),
    (-math.inf, 0.0, True),
])
def test_should_alert_edges(speed, tti, expected):
    assert should_alert(speed, tti) is expected


def test_should_alert_custom_thresholds():
    assert should_alert(-1.5, 4.0, speed_threshold_mps=-1.0, tti_threshold_s=5.0)
    assert not should_alert(-1.5, 4.0)


def test_time_to_impact_definition():
    assert time_to_impact(6.0, -3.0) == pytest.approx(2.0)
    assert time_to_impact(6.0, 0.0) == math.inf
    assert time_to_impact(6.0, 2.0) == math.inf
    assert math.isnan(time_to_impact(math.nan, -1.0))


# -- scene mode on the synthetic scenarios ------------------------------------------------------

def test_approach_tti_within_ten_percent_and_alerts():
    scenario, estimates = run_scenario('approach')
    errors = tti_errors(scenario, estimates)
    assert errors.size >= 0.85 * len(scenario.frames)    # all but the first baseline_s
    assert np.median(errors) < 0.10
    assert np.percentile(errors, 90) < 0.10
    speeds = [e.speed_mps for e in estimates if e.valid]
    assert np.median(speeds) == pytest.approx(-3.0, rel=0.05)
    # The scene is an alert from the start (TTI 2.67 s at 3 m/s): every judged frame alerts,
    # from the second on (confirm_frames = 2: the first one is held back, and says so).
    judged = [e for e in estimates if e.valid]
    assert not judged[0].alert and not judged[0].confirmed and 'to confirm' in judged[0].reason
    assert all(e.alert and e.confirmed for e in judged[1:])
    assert false_alerts(scenario, estimates) == 0


def test_approach_reports_distance_and_bearing_of_the_object():
    scenario, estimates = run_scenario('approach', center_x_m=1.0, stop_m=3.0)
    checked = 0
    for frame, estimate in zip(scenario.frames, estimates):
        if not estimate.valid:
            continue
        assert estimate.distance_m == pytest.approx(frame.true_distance_m, rel=0.03)
        # Box centre at x = 1 m (right of the axis): bearing atan2(-x, z) is negative.
        expected = math.atan2(-1.0, frame.true_distance_m)
        assert estimate.bearing_rad == pytest.approx(expected, abs=0.05)
        checked += 1
    assert checked > 40


def test_no_estimate_before_baseline_then_valid():
    scenario, estimates = run_scenario('approach')
    first_valid = next(i for i, e in enumerate(estimates) if e.valid)
    assert scenario.frames[first_valid].stamp_s >= SceneTTIConfig().baseline_s
    assert not estimates[0].valid and 'no reference' in estimates[0].reason
    assert math.isnan(estimates[0].speed_mps) and not estimates[0].alert


def test_receding_object_no_alert_positive_speed():
    scenario, estimates = run_scenario('recede')
    judged = [e for e in estimates if e.valid]
    assert judged and not any(e.alert for e in estimates)
    assert all(e.tti_s == math.inf for e in judged)
    assert np.median([e.speed_mps for e in judged]) == pytest.approx(3.0, rel=0.05)


@pytest.mark.parametrize('name', ['cross', 'enter', 'static'])
def test_no_approach_reported_for_crossing_entering_or_static(name):
    scenario, estimates = run_scenario(name)
    assert sum(e.valid for e in estimates) > 0.85 * len(estimates)
    assert false_alerts(scenario, estimates) == 0
    # Not even a slow false approach: every edge jump is recognised as a step.
    assert all(not (e.speed_mps < 0) for e in estimates)


def test_crossing_edges_are_reported_as_steps():
    scenario, estimates = run_scenario('cross')
    assert any('jumped' in e.reason for e in estimates)


def test_walking_to_static_wall_right_tti_and_no_warning():
    scenario, estimates = run_scenario('walk_to_wall')
    errors = tti_errors(scenario, estimates)
    assert np.median(errors) < 0.10
    assert false_alerts(scenario, estimates) == 0
    level_filter = AlertLevelFilter()
    levels = [level_filter.update(e.speed_mps, e.tti_s, e.valid, f.stamp_s)
              for f, e in zip(scenario.frames, estimates)]
    assert max(levels) == AlertLevel.CAUTION      # 1.4 m/s < 2.2 m/s but TTI < 5 s
    assert AlertLevel.WARNING not in levels and AlertLevel.CRITICAL not in levels


def test_far_approach_uses_a_longer_baseline_against_noise():
    # From 10 m the wall's noise (sigma 0.25 m) exceeds its motion over 0.25 s (0.35 m):
    # samples selected by |change| > min_motion_m would overstate the speed.
    def far_errors(snr):
        scenario, estimates = run_scenario('walk_to_wall', config_items=(('min_motion_snr', snr),),
                                           start_m=10.0)
        return np.array([abs(e.tti_s - f.true_tti_s) / f.true_tti_s
                         for f, e in zip(scenario.frames, estimates)
                         if e.valid and f.true_distance_m > 7.0]), estimates

    errors, estimates = far_errors(3.0)
    assert errors.size > 50 and np.median(errors) < 0.10
    assert max(e.baseline_s for e in estimates if e.valid) > 0.4      # it did look further back
    fixed_errors, _ = far_errors(0.0)
    assert np.median(fixed_errors) > np.median(errors)


def test_irregular_and_dropped_frames_give_right_speed():
    scenario, estimates = run_scenario('approach_irregular')
    stamps = np.array([f.stamp_s for f in scenario.frames])
    assert np.diff(stamps).max() > 0.15           # the scenario does have a gap
    judged = [e for e in estimates if e.valid]
    assert len(judged) > 0.8 * len(estimates)
    speeds = np.array([e.speed_mps for e in judged])
    assert np.median(np.abs(speeds + 3.0)) < 0.1
    assert np.median(tti_errors(scenario, estimates)) < 0.10


def test_speed_from_stamps_not_frame_count():
    # A noiseless plane at 2 m/s sampled at uneven instants: the speed is exact only if the
    # elapsed time comes from the stamps.
    estimator = DepthTTIEstimator(SceneTTIConfig(noise_k=0.0, noise_floor_m=0.001))
    stamps = [0.0, 0.05, 0.21, 0.24, 0.4, 0.47, 0.7, 0.75, 0.99]
    for stamp in stamps:
        estimate = estimator.update(plane(6.0 - 2.0 * stamp), stamp)
    assert estimate.valid
    assert estimate.speed_mps == pytest.approx(-2.0, rel=1e-3)
    assert estimate.distance_m == pytest.approx(6.0 - 2.0 * 0.99, rel=1e-4)
    assert estimate.tti_s == pytest.approx((6.0 - 2.0 * 0.99) / 2.0, rel=1e-3)


def test_approach_behind_a_nearer_crossing_object():
    scenario, estimates = run_scenario('approach_and_cross')
    assert false_alerts(scenario, estimates) == 0
    reported = [(f, e) for f, e in zip(scenario.frames, estimates) if e.valid and e.support]
    assert len(reported) > 0.6 * len(scenario.frames)
    for frame, estimate in reported:   # whenever something is reported, it is the approach
        assert estimate.tti_s == pytest.approx(frame.true_tti_s, rel=0.10)


def test_holes_are_ignored_not_averaged():
    # Plane approaching at 3 m/s, 40 % of the ROI invalid in every frame (0, NaN, inf,
    # negative, beyond range), at changing places.
    rng = np.random.default_rng(11)
    estimator = DepthTTIEstimator(SceneTTIConfig(noise_k=0.0, noise_floor_m=0.001))
    bad_values = np.array([0.0, np.nan, np.inf, -1.0, 50.0], dtype=np.float32)
    for i in range(12):
        stamp = i / 30.0
        depth = plane(5.0 - 3.0 * stamp)
        holes = rng.random(depth.shape) < 0.4
        depth[holes] = rng.choice(bad_values, size=int(holes.sum()))
        estimate = estimator.update(depth, stamp)
    assert estimate.valid
    assert estimate.distance_m == pytest.approx(5.0 - 3.0 * 11 / 30.0, rel=1e-4)
    assert estimate.speed_mps == pytest.approx(-3.0, rel=1e-3)


def test_mostly_invalid_depth_is_an_invalid_estimate():
    estimator = DepthTTIEstimator()
    depth = plane(4.0)
    depth[:, : int(depth.shape[1] * 0.9)] = 0.0
    estimate = estimator.update(depth, 0.0)
    assert not estimate.valid and not estimate.alert
    assert re.search(r'\d+% invalid depth', estimate.reason)


def test_step_is_not_motion_but_ramp_is():
    # Same start and end depth; only the mid frame tells a step (object appears) from a ramp.
    config = SceneTTIConfig(noise_k=0.0, noise_floor_m=0.001)
    stamps = np.arange(10) / 30.0
    ramp = DepthTTIEstimator(config)
    step = DepthTTIEstimator(config)
    for stamp in stamps:
        ramp_estimate = ramp.update(plane(6.0 - 9.0 * stamp), stamp)  # 3 m in 1/3 s
        step_estimate = step.update(plane(6.0 if stamp < 0.15 else 3.0), stamp)
    assert ramp_estimate.speed_mps == pytest.approx(-9.0, rel=1e-3) and ramp_estimate.alert
    assert step_estimate.valid and step_estimate.speed_mps == 0.0 and not step_estimate.alert
    assert 'jumped' in step_estimate.reason


def test_noise_beyond_the_model_does_not_become_an_approach():
    # The sensor is twice as noisy as configured: noise moves both ways; nothing approaches.
    scenario, estimates = run_scenario('static', noise_k=0.005, background_m=12.0)
    assert not any(e.alert for e in estimates)
    assert all(not (e.speed_mps < 0) for e in estimates)


def test_roi_subsampling_keeps_accuracy():
    scenario, estimates = run_scenario('approach', config_items=(('roi_stride', 2),))
    assert np.median(tti_errors(scenario, estimates)) < 0.10
    assert false_alerts(scenario, estimates) == 0


def test_gap_longer_than_max_baseline_is_reported():
    estimator = DepthTTIEstimator()
    estimator.update(plane(5.0), 0.0)
    estimate = estimator.update(plane(5.0), 2.0)
    assert not estimate.valid and 'gap' in estimate.reason


def test_frames_too_far_apart_for_the_step_check():
    estimator = DepthTTIEstimator(SceneTTIConfig(max_baseline_s=0.6))
    estimator.update(plane(5.0), 0.0)
    estimate = estimator.update(plane(4.0), 0.5)
    assert not estimate.valid and 'step check' in estimate.reason
    unchecked = DepthTTIEstimator(SceneTTIConfig(require_step_check=False, noise_k=0.0))
    unchecked.update(plane(5.0), 0.0)
    estimate = unchecked.update(plane(4.0), 0.5)
    assert estimate.valid and not estimate.step_check
    assert estimate.speed_mps == pytest.approx(-2.0, rel=1e-3)


# -- bad input ----------------------------------------------------------------------------------

def test_wrong_dimensions_raise():
    estimator = DepthTTIEstimator()
    with pytest.raises(ValueError, match='2-D'):
        estimator.update(np.zeros((4, 4, 1), np.float32), 0.0)
    with pytest.raises(ValueError, match='numpy array'):
        estimator.update([[1.0, 2.0]], 0.0)
    with pytest.raises(ValueError, match='floating-point metres'):
        estimator.update(np.zeros((4, 4), np.uint16), 0.0)
    with pytest.raises(ValueError, match='finite'):
        estimator.update(plane(1.0), math.nan)


def test_shape_change_needs_reset():
    estimator = DepthTTIEstimator()
    estimator.update(plane(3.0, (48, 64)), 0.0)
    with pytest.raises(ValueError, match='call reset'):
        estimator.update(plane(3.0, (24, 32)), 0.1)
    estimator.reset()
    assert not estimator.update(plane(3.0, (24, 32)), 0.1).valid   # accepted, no reference yet


def test_stamp_going_backwards_raises_and_clears_history():
    estimator = DepthTTIEstimator()
    for i in range(10):
        estimator.update(plane(5.0), i / 30.0)
    with pytest.raises(ValueError, match='backwards'):
        estimator.update(plane(5.0), 0.1)
    estimate = estimator.update(plane(5.0), 0.1)
    assert not estimate.valid and 'no reference' in estimate.reason


def test_duplicate_stamp_is_ignored():
    estimator = DepthTTIEstimator(SceneTTIConfig(noise_k=0.0))
    for i in range(10):
        estimator.update(plane(6.0 - 0.1 * i), i / 30.0)
    duplicate = estimator.update(plane(1.0), 9 / 30.0)
    assert not duplicate.valid and 'duplicate' in duplicate.reason
    estimate = estimator.update(plane(6.0 - 1.0), 10 / 30.0)
    assert estimate.speed_mps == pytest.approx(-3.0, rel=1e-3)


def test_bad_config_and_bearings_raise():
    with pytest.raises(ValueError, match='roi_col_min'):
        SceneTTIConfig(roi_col_min=0.8, roi_col_max=0.2)
    with pytest.raises(ValueError, match='baseline'):
        SceneTTIConfig(baseline_s=2.0, max_baseline_s=1.0)
    estimator = DepthTTIEstimator(column_bearings_rad=np.zeros(10))
    with pytest.raises(ValueError, match='columns wide'):
        estimator.update(plane(3.0, (48, 64)), 0.0)


# -- LiDAR helpers ------------------------------------------------------------------------------

def test_laserscan_forward_sector_order_and_invalid():
    angles = np.radians(np.arange(-180, 180, 10.0))
    ranges = np.arange(angles.size, dtype=np.float32) + 1.0
    ranges[18] = np.inf        # straight ahead
    ranges[19] = 0.0
    image, bearings = range_image_from_laserscan(angles, ranges, fov_rad=math.radians(90))
    assert image.shape == (1, 9) and image.dtype == np.float32
    np.testing.assert_allclose(np.degrees(bearings), [40, 30, 20, 10, 0, -10, -20, -30, -40],
                               atol=1e-9)                      # left to right
    assert np.isnan(image[0, 4]) and np.isnan(image[0, 3])      # inf and 0 are invalid
    assert image[0, 0] == pytest.approx(ranges[22])             # +40 deg
    with pytest.raises(ValueError, match='one angle per range'):
        range_image_from_laserscan(angles, ranges[:-1])


def test_laserscan_wraps_angles():
    angles = np.array([2 * math.pi - 0.1, 0.0, 0.1])            # -0.1 written as 2 pi - 0.1
    _, bearings = range_image_from_laserscan(angles, [1.0, 2.0, 3.0])
    np.testing.assert_allclose(bearings, [0.1, 0.0, -0.1], atol=1e-12)


def test_points_projection_nearest_forward_only():
    points = np.array([
        [5.0, 0.0, 0.0],      # ahead
        [4.0, 0.0, 0.0],      # same cell, nearer: wins
        [3.0, 3.0, 0.0],      # 45 deg left: the left-most column edge
        [-2.0, 0.0, 0.0],     # behind: dropped
        [1.0, 5.0, 0.0],      # 79 deg left: outside the 90 deg sector
        [np.nan, 0.0, 0.0],
    ])
    image, bearings = range_image_from_points(points, h_fov_rad=math.radians(90),
                                              v_fov_rad=math.radians(20), width=9, height=3)
    assert image.shape == (3, 9) and bearings.shape == (9,)
    assert image[1, 4] == pytest.approx(4.0)
    assert image[1, 0] == pytest.approx(math.hypot(3.0, 3.0))
    assert np.count_nonzero(np.isfinite(image)) == 2
    assert bearings[0] == pytest.approx(math.radians(40)) and bearings[4] == pytest.approx(0.0)
    with pytest.raises(ValueError, match='Nx3'):
        range_image_from_points(np.zeros((4, 2)))


def test_laserscan_wall_approach_through_the_estimator():
    # A wall 6 m ahead approaching at 3 m/s, seen by a 1-degree scan with 2 cm noise.
    rng = np.random.default_rng(3)
    angles = np.radians(np.arange(-180.0, 180.0, 1.0))
    estimator = None
    for i in range(12):
        stamp = i / 20.0
        wall = 6.0 - 3.0 * stamp
        with np.errstate(divide='ignore'):
            ranges = wall / np.cos(angles)
        ranges[np.cos(angles) <= 0] = np.inf
        ranges = ranges + rng.normal(0.0, 0.02, ranges.size)
        image, bearings = range_image_from_laserscan(angles, ranges, math.radians(60))
        if estimator is None:
            estimator = DepthTTIEstimator(lidar_scene_config(), bearings)
        estimate = estimator.update(image, stamp)
    assert estimate.valid and estimate.alert
    assert estimate.speed_mps == pytest.approx(-3.0, rel=0.05)
    assert estimate.tti_s == pytest.approx((6.0 - 3.0 * 11 / 20.0) / 3.0, rel=0.10)
    assert abs(estimate.bearing_rad) < 0.1


def test_point_cloud_wall_approach_through_the_estimator():
    # A wall (x = d, 6 m wide, 2 m tall) approaching at 2.5 m/s, as a point cloud.
    y, z = np.meshgrid(np.arange(-3.0, 3.0, 0.02), np.arange(-1.0, 1.0, 0.02))
    estimator = None
    for i in range(12):
        stamp = i / 15.0
        wall = 5.0 - 2.5 * stamp
        points = np.column_stack([np.full(y.size, wall), y.ravel(), z.ravel()])
        image, bearings = range_image_from_points(points, width=120, height=8)
        if estimator is None:
            estimator = DepthTTIEstimator(lidar_scene_config(), bearings)
        estimate = estimator.update(image, stamp)
    wall = 5.0 - 2.5 * 11 / 15.0
    assert estimate.valid and estimate.alert
    # Off-axis cells see range wall / cos(a) shrinking at 2.5 / cos(a): the ratio is the same.
    assert estimate.tti_s == pytest.approx(wall / 2.5, rel=0.05)
    assert estimate.speed_mps == pytest.approx(-2.5, rel=0.10)


# -- object mode --------------------------------------------------------------------------------

def track_sequence(tracker, positions_at, duration_s=0.6, rate_hz=30.0):
    results = []
    for i in range(int(duration_s * rate_hz) + 1):
        stamp = i / rate_hz
        results = tracker.update([TrackObservation(tid, pos(stamp))
                                  for tid, pos in positions_at.items()], stamp)
    return results


def test_object_head_on_alerts_crossing_and_receding_do_not():
    tracker = ObjectTTITracker()
    results = track_sequence(tracker, {
        1: lambda t: (0.1, 0.0, 6.0 - 3.0 * t),              # head-on, 10 cm off the axis
        2: lambda t: (-4.9 + 4.0 * t, 0.0, 3.6 - 1.0 * t),   # crosses in front, far off
        3: lambda t: (0.0, 0.2, 2.0 + 3.0 * t),              # receding
    })
    by_id = {r.track_id: r for r in results}
    head_on, crossing, receding = by_id[1], by_id[2], by_id[3]
    t = 0.6
    assert head_on.valid and head_on.alert
    assert head_on.distance_m == pytest.approx(math.hypot(0.1, 6.0 - 3.0 * t), rel=0.01)
    assert head_on.speed_mps == pytest.approx(-3.0, rel=0.01)
    assert head_on.cpa_distance_m == pytest.approx(0.1, abs=0.01)
    assert head_on.cpa_time_s == pytest.approx((6.0 - 3.0 * t) / 3.0, rel=0.01)
    # The crossing track closes fast (range rate < -2.2 m/s, TTI < 3 s) but its straight path
    # passes metres from the sensor: no alert.
    assert crossing.valid and crossing.speed_mps < -2.2 and crossing.tti_s < 3.0
    assert crossing.cpa_distance_m > 1.0 and not crossing.alert
    assert receding.valid and not receding.alert and receding.tti_s == math.inf
    assert results[0].track_id == 1                              # most urgent first


def test_object_bearing_and_cpa_definition():
    tracker = ObjectTTITracker()
    results = track_sequence(tracker, {7: lambda t: (-1.0, 0.0, 4.0 - 2.0 * t)})
    (result,) = results
    p = np.array([-1.0, 0.0, 4.0 - 2.0 * 0.6])
    v = np.array([0.0, 0.0, -2.0])
    t_cpa = -p @ v / (v @ v)
    assert result.cpa_time_s == pytest.approx(t_cpa, rel=1e-6)
    assert result.cpa_distance_m == pytest.approx(np.linalg.norm(p + v * t_cpa), rel=1e-6)
    assert result.bearing_rad == pytest.approx(math.atan2(1.0, p[2]), rel=1e-6)  # left: +


def test_object_window_uses_stamps_and_forgets_old_tracks():
    tracker = ObjectTTITracker(ObjectTTIConfig(window_s=0.3, track_timeout_s=0.5))
    # Stationary for 1 s, then approaching at 3 m/s: after 0.4 s the 0.3 s window sees only
    # the approach.
    for i in range(15):
        tracker.update([TrackObservation(1, (0.0, 0.0, 5.0))], i / 10.0)
    for i in range(1, 5):
        stamp = 1.4 + i / 10.0
        results = tracker.update([TrackObservation(1, (0.0, 0.0, 5.0 - 3.0 * i / 10.0))],
                                 stamp)
    assert results[0].speed_mps == pytest.approx(-3.0, rel=1e-6)
    # Unseen for 0.49 s: kept, and the fit is extrapolated to the current stamp.
    (unseen,) = tracker.update([], 1.8 + 0.49)
    assert unseen.track_id == 1 and unseen.valid
    assert unseen.distance_m == pytest.approx(5.0 - 1.2 - 3.0 * 0.49, rel=1e-6)
    assert tracker.update([], 1.8 + 0.51) == []          # past track_timeout_s: forgotten


def test_object_too_few_samples_is_invalid():
    tracker = ObjectTTITracker()
    (result,) = tracker.update([TrackObservation(4, (0.0, 0.0, 2.0))], 0.0)
    assert not result.valid and not result.alert and result.distance_m == pytest.approx(2.0)


def test_object_bad_input_raises():
    tracker = ObjectTTITracker()
    with pytest.raises(ValueError, match='3 finite numbers'):
        tracker.update([TrackObservation(1, (0.0, math.nan, 1.0))], 0.0)
    with pytest.raises(ValueError, match='twice'):
        tracker.update([TrackObservation(1, (0, 0, 1)), TrackObservation(1, (0, 0, 2))], 0.0)
    tracker.update([TrackObservation(1, (0, 0, 1))], 1.0)
    with pytest.raises(ValueError, match='backwards'):
        tracker.update([TrackObservation(1, (0, 0, 1))], 0.5)


# -- alert levels -------------------------------------------------------------------------------

def test_alert_level_values_match_the_message():
    text = (MSG_DIR / 'CollisionAlert.msg').read_text()
    constants = dict(re.findall(r'uint8 LEVEL_(\w+) = (\d+)', text))
    assert constants and {k: int(v) for k, v in constants.items()} == {
        level.name: level.value for level in AlertLevel}


def test_escalation_is_immediate():
    level_filter = AlertLevelFilter()
    assert level_filter.update(0.0, math.inf, True, 0.0) == AlertLevel.NONE
    assert level_filter.update(-3.0, 0.5, True, 0.033) == AlertLevel.CRITICAL
    level_filter = AlertLevelFilter()
    assert level_filter.update(-1.5, 4.0, True, 0.0) == AlertLevel.CAUTION
    assert level_filter.update(-2.5, 2.5, True, 0.033) == AlertLevel.WARNING


def test_min_on_time_holds_a_blip():
    level_filter = AlertLevelFilter(AlertLevelConfig(min_on_time_s=0.5))
    assert level_filter.update(-3.0, 2.0, True, 0.0) == AlertLevel.WARNING
    assert level_filter.update(0.0, math.inf, True, 0.1) == AlertLevel.WARNING
    assert level_filter.update(0.0, math.inf, True, 0.49) == AlertLevel.WARNING
    assert level_filter.update(0.0, math.inf, True, 0.5) == AlertLevel.NONE


def test_hysteresis_on_tti():
    level_filter = AlertLevelFilter(AlertLevelConfig(min_on_time_s=0.0, exit_tti_ratio=1.25))
    assert level_filter.update(-3.0, 2.9, True, 0.0) == AlertLevel.WARNING
    assert level_filter.update(-3.0, 3.5, True, 0.1) == AlertLevel.WARNING     # < 3.75
    assert level_filter.update(-3.0, 3.8, True, 0.2) == AlertLevel.CAUTION     # > 3.75
    assert level_filter.update(-3.0, 6.0, True, 0.3) == AlertLevel.CAUTION     # < 6.25
    assert level_filter.update(-3.0, 6.3, True, 0.4) == AlertLevel.NONE
    # Critical drops to the highest level whose hysteresis still holds.
    assert level_filter.update(-3.0, 0.9, True, 0.5) == AlertLevel.CRITICAL
    assert level_filter.update(-3.0, 1.2, True, 0.6) == AlertLevel.CRITICAL    # < 1.25
    assert level_filter.update(-3.0, 3.6, True, 0.7) == AlertLevel.WARNING     # < 3.75
    assert level_filter.update(-0.5, 1.0, True, 0.8) == AlertLevel.NONE        # speed clears


def test_sensor_lost_after_timeout_and_recovery():
    level_filter = AlertLevelFilter(AlertLevelConfig(sensor_timeout_s=0.5))
    assert level_filter.update(-3.0, 2.0, True, 0.0) == AlertLevel.WARNING
    assert level_filter.update(math.nan, math.nan, False, 0.3) == AlertLevel.WARNING   # held
    assert level_filter.update(math.nan, math.nan, False, 0.5) == AlertLevel.WARNING
    assert level_filter.update(math.nan, math.nan, False, 0.51) == AlertLevel.SENSOR_LOST
    assert level_filter.update(0.0, math.inf, True, 0.6) == AlertLevel.NONE   # recovers


def test_check_timeout_watchdog():
    level_filter = AlertLevelFilter(AlertLevelConfig(sensor_timeout_s=0.5))
    assert level_filter.check_timeout(10.0) is None        # starts the clock
    assert level_filter.check_timeout(10.4) is None
    assert level_filter.check_timeout(10.6) == AlertLevel.SENSOR_LOST
    assert level_filter.update(-1.5, 4.0, True, 10.7) == AlertLevel.CAUTION
    assert level_filter.check_timeout(11.1) is None
    assert level_filter.check_timeout(11.3) == AlertLevel.SENSOR_LOST


def test_level_filter_stamp_backwards_raises():
    level_filter = AlertLevelFilter()
    level_filter.update(0.0, math.inf, True, 1.0)
    with pytest.raises(ValueError, match='backwards'):
        level_filter.update(0.0, math.inf, True, 0.5)


def test_render_helper_feeds_the_estimator_box_list():
    # Two boxes, the nearer one approaching: the estimate follows the nearer one.
    camera = PinholeCamera(width=160, height=120, fx=131.25, fy=131.25, cx=79.5, cy=59.5)
    estimator = DepthTTIEstimator(SceneTTIConfig(noise_k=0.0, noise_floor_m=0.001),
                                  camera.column_bearings_rad())
    for i in range(12):
        stamp = i / 30.0
        boxes = [Box(-0.6, 0.0, 4.0 - 2.5 * stamp, 0.8, 1.0), Box(0.8, 0.0, 6.0, 1.0, 1.0)]
        estimate = estimator.update(render_depth(boxes, camera, 9.0), stamp)
    assert estimate.speed_mps == pytest.approx(-2.5, rel=1e-3)
    assert estimate.distance_m == pytest.approx(4.0 - 2.5 * 11 / 30.0, rel=1e-4)
    assert estimate.bearing_rad > 0.05                     # box is left of the axis


def test_warm_up_is_flagged_as_usable_input_not_a_fault():
    from edge_perception.harness.scenarios import scenario_by_name
    estimator = DepthTTIEstimator()
    first = [estimator.update(f.depth_m, f.stamp_s)
             for f in scenario_by_name('static').frames[:12]]
    assert not first[0].valid and first[0].warming_up
    assert any(e.valid for e in first) and all(e.warming_up for e in first if not e.valid)
    holes = np.full((480, 640), np.nan, np.float32)
    bad = estimator.update(holes, 10.0)
    assert not bad.valid and not bad.warming_up


def cut(before_name, after_name, gap_s, frames=30, **config):
    """Estimates of the first frames after a scene cut: one scenario, gap_s, then another."""
    estimator = DepthTTIEstimator(SceneTTIConfig(**config))
    before, after = scenario_by_name(before_name), scenario_by_name(after_name)
    end = before.frames[-1].stamp_s
    for frame in before.frames:
        estimator.update(frame.depth_m, frame.stamp_s)
    return [estimator.update(f.depth_m, end + gap_s + f.stamp_s) for f in after.frames[:frames]]


@pytest.mark.parametrize('gap_s', [1 / 30, 0.1, 0.2, 0.4, 0.6])
@pytest.mark.parametrize('before_name, after_name', [
    ('recede', 'static'), ('recede', 'enter'), ('static', 'cross'), ('walk_to_wall', 'recede'),
    ('cross', 'walk_to_wall')])
def test_scene_cut_is_not_an_approach(before_name, after_name, gap_s):
    """The sensor suddenly sees another scene (a cut, a turn, a dropout), right after or later.

    recede -> static at 0.2 s was an 8 m/s approach (the 10 m background became the 8 m wall:
    at that range the per-sample step check cannot tell the jump from motion): the group-level
    step check rejects it. recede -> static at 0.4 s and recede -> enter at 0.2 s were one-frame
    blips at 2.5-3 m (three surfaces passing one sample): confirm_frames rejects them.
    """
    assert not any(e.alert for e in cut(before_name, after_name, gap_s))


@pytest.mark.parametrize('gap_s', [1 / 30, 0.2, 0.6])
@pytest.mark.parametrize('before_name', ['recede', 'static', 'cross'])
def test_approach_after_a_scene_cut_still_alerts_in_time(before_name, gap_s):
    """An approach that starts right after a cut: alerted once a baseline plus one frame passed."""
    estimates = cut(before_name, 'approach', gap_s)
    first = next(i for i, e in enumerate(estimates) if e.alert)
    assert first <= 9, [e.reason for e in estimates[:first + 1]]   # 0.30 s at 30 Hz


def test_group_step_check_alone_rejects_the_far_range_cut():
    """Without confirmation, the far-range cut is rejected by the group-level step check."""
    assert not any(e.alert for e in cut('recede', 'static', 0.2, confirm_frames=1))


def test_confirmation_needs_consistent_consecutive_approaches():
    estimator = DepthTTIEstimator()
    scenario = scenario_by_name('approach')
    estimates = [estimator.update(f.depth_m, f.stamp_s) for f in scenario.frames[:12]]
    judged = [e for e in estimates if e.valid]
    assert [e.confirmed for e in judged[:3]] == [False, True, True]
    # A frame without the approach (the object hidden) breaks the run: held back again.
    empty = plane(8.0, scenario.frames[0].depth_m.shape)
    later = scenario.frames[12]
    assert estimator.update(empty, later.stamp_s).confirmed       # no approach: nothing held
    following = scenario.frames[13]
    back = estimator.update(following.depth_m, following.stamp_s)
    assert back.speed_mps < 0 and not back.confirmed and not back.alert
    # Off with confirm_frames = 1: the first judged frame alerts.
    _, estimates = run_scenario('approach', (('confirm_frames', 1),))
    assert next(e for e in estimates if e.valid).alert
    with pytest.raises(ValueError, match='confirm_frames'):
        SceneTTIConfig(confirm_frames=0)
