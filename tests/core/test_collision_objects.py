"""Scene mode's object path (core/collision/objects.py) and the MuJoCo-rendered scenes (no ROS).

Unit tests draw boxes with harness.scenarios.render_depth, so every answer (image motion,
range rate, TTI) follows from the pinhole projection; the scene tests score the estimator on
the rendered scenes of harness.rendered_scenes (seeded noise sigma = 0.0025 z^2, 5 % holes)
against their ground truth, with the issue's bars: an alert no more than 0.35 s after it is
due, no false-alert frames, median relative TTI error <= 0.15.
"""
import functools
import math

from edge_perception.core.collision import DepthTTIEstimator, SceneTTIConfig
from edge_perception.core.collision.objects import match_blobs, Pinhole, segment_blobs
from edge_perception.harness.rendered_scenes import (load_rendered_scene, RENDERED_SCENES,
                                                     run_estimator, score_scene)
from edge_perception.harness.scenarios import add_depth_noise, Box, PinholeCamera, render_depth
import numpy as np
import pytest

CAMERA = PinholeCamera()
CONFIG = SceneTTIConfig()


def blobs_of(depth, config=CONFIG, stride=4):
    """Blobs of a whole image at `stride` (the estimator's default at 480 rows)."""
    sub = depth[::stride, ::stride].astype(np.float32)
    valid = (sub >= config.min_range_m) & (sub <= config.max_range_m)
    pinhole = Pinhole(CAMERA.fx, CAMERA.fy, CAMERA.cx, CAMERA.cy)
    return segment_blobs(sub, valid, stride, 0, 0, pinhole, config)


def moving_box(t, x0=-1.5, z0=8.0, vx=5.0, vz=-5.0, size=0.4):
    """Return a small box moving sideways at vx and towards the camera at vz (m/s)."""
    return Box(x0 + vx * t, 0.3, z0 + vz * t, size, size)


# -- blob association: known answers ------------------------------------------------------------

def test_blob_moving_across_the_image_is_followed_with_its_range_rate():
    dt = 0.25
    before = blobs_of(render_depth([moving_box(0.0)], CAMERA, background_m=15.0))
    after = blobs_of(render_depth([moving_box(dt)], CAMERA, background_m=15.0))
    # One blob each (the wall is larger than object_max_fraction, and touches the border).
    assert len(before) == 1 and len(after) == 1
    assert match_blobs(before, after, dt, CONFIG) == [(0, 0)]
    # Image motion: centre column cx + fx * x / z, from (-1.5, 8) to (-0.25, 6.75).
    u0 = CAMERA.cx + CAMERA.fx * -1.5 / 8.0
    u1 = CAMERA.cx + CAMERA.fx * -0.25 / 6.75
    assert u1 - u0 > 2 * 0.4 * CAMERA.fx / 8.0       # it moved more than twice its width
    assert before.u_px[0] == pytest.approx(u0, abs=2.0)
    assert after.u_px[0] == pytest.approx(u1, abs=2.0)
    # Range rate and the 3D centroid.
    assert (after.depth_m[0] - before.depth_m[0]) / dt == pytest.approx(-5.0, rel=1e-3)
    assert after.xyz_m[0] == pytest.approx([-0.25, 0.3, 6.75], abs=0.02)
    assert after.size_m[0] == pytest.approx(0.4, rel=0.1)


def test_estimator_follows_the_blob_where_the_per_pixel_path_sees_edges():
    objects = DepthTTIEstimator(SceneTTIConfig(), CAMERA.column_bearings_rad())
    pixels = DepthTTIEstimator(SceneTTIConfig(object_association=False),
                               CAMERA.column_bearings_rad())
    rng = np.random.default_rng(0)
    found = []
    for i in range(16):
        t = i / 30.0
        depth = add_depth_noise(render_depth([moving_box(t)], CAMERA, 15.0), rng)
        estimate = objects.update(depth, t)
        pixel_only = pixels.update(depth, t)
        if estimate.valid and estimate.support > 0:
            found.append((t, estimate))
    t, last = found[-1]
    z = 8.0 - 5.0 * t
    assert last.reason.startswith('object approach'), last.reason
    assert last.speed_mps == pytest.approx(-5.0, rel=0.05)
    assert last.distance_m == pytest.approx(z, rel=0.02)
    assert last.tti_s == pytest.approx(z / 5.0, rel=0.05)
    assert last.alert and last.confirmed and last.step_check
    # Bearing of the blob's centre column: atan2(-(u - cx), fx) = atan2(-x, z).
    assert last.bearing_rad == pytest.approx(math.atan2(1.5 - 5.0 * t, z), abs=0.01)
    # The same frames per pixel: no alert (the blob is a pair of edges there).
    assert not pixel_only.alert


def test_optimal_assignment_keeps_identities_of_two_crossing_blobs():
    # Near blob (4 m) moving right, far blob (6 m) moving left, neither approaching. They swap
    # sides in the image: matching by nearest image centroid would swap them; in 3D it does not.
    def boxes(t):
        return [Box(-0.5 + 2.0 * t, 0.0, 4.0, 0.3, 0.3), Box(0.6 - 2.0 * t, 0.0, 6.0, 0.4, 0.4)]
    before = blobs_of(render_depth(boxes(0.0), CAMERA, 15.0))
    after = blobs_of(render_depth(boxes(0.5), CAMERA, 15.0))
    near_before, near_after = np.argmin(before.depth_m), np.argmin(after.depth_m)
    image_nearest = np.argmin(np.abs(after.u_px - before.u_px[near_before]))
    assert image_nearest != near_after                        # the image alone would swap
    pairs = match_blobs(before, after, 0.5, CONFIG)
    assert len(pairs) == 2
    for i, j in pairs:
        assert after.depth_m[j] == pytest.approx(before.depth_m[i], abs=1e-3)


def test_match_refuses_a_different_size_and_an_impossible_jump():
    dt = 0.25
    small = blobs_of(render_depth([Box(0.0, 0.0, 5.0, 0.3, 0.3)], CAMERA, 15.0))
    big = blobs_of(render_depth([Box(0.0, 0.0, 4.0, 0.9, 0.9)], CAMERA, 15.0))
    assert match_blobs(small, big, dt, CONFIG) == []          # 3x the physical size
    far = blobs_of(render_depth([Box(0.0, 0.0, 12.0, 0.3, 0.3)], CAMERA, 15.0))
    near = blobs_of(render_depth([Box(0.0, 0.0, 5.0, 0.3, 0.3)], CAMERA, 15.0))
    assert match_blobs(far, near, dt, CONFIG) == []           # 7 m in 0.25 s > 20 m/s


@pytest.mark.parametrize('how', ['enters_from_the_side', 'appears_in_the_middle'])
def test_a_blob_that_only_appears_does_not_alert(how):
    estimator = DepthTTIEstimator(SceneTTIConfig(), CAMERA.column_bearings_rad())
    rng = np.random.default_rng(1)
    for i in range(45):
        t = i / 30.0
        if how == 'enters_from_the_side':
            boxes = [Box(-2.4 + 3.0 * t, 0.0, 3.0, 0.4, 0.4)]   # enters at the left edge
        else:
            boxes = [Box(0.2, -0.2, 3.0, 0.4, 0.4)] if i >= 20 else []
        depth = add_depth_noise(render_depth(boxes, CAMERA, 10.0), rng)
        estimate = estimator.update(depth, t)
        assert not estimate.alert, (t, estimate.reason)
        assert not estimate.reason.startswith('object approach'), (t, estimate.reason)


def test_object_path_off_in_the_lidar_config():
    from edge_perception.core.collision import lidar_scene_config
    assert not lidar_scene_config().object_association


# -- rendered scenes ----------------------------------------------------------------------------

ALERTING = {'thrown_ball', 'drone_cross_turn', 'wall_fly', 'cart_stops', 'near_pass',
            'two_drones'}


@functools.lru_cache(maxsize=None)
def scored(name, seed=0, object_association=True):
    scenario = load_rendered_scene(name, seed=seed)
    config = SceneTTIConfig(object_association=object_association)
    return scenario, score_scene(scenario, *run_estimator(scenario, config))


def test_rendered_scenes_are_all_there_with_ground_truth():
    for name in RENDERED_SCENES:
        scenario = load_rendered_scene(name, noise_k=0.0, hole_fraction=0.0)
        assert len(scenario.frames) >= 40
        steps = np.diff([f.stamp_s for f in scenario.frames])
        assert steps == pytest.approx(1 / 30.0, abs=1e-5)     # 30 Hz
        assert (name in ALERTING) == any(f.expect_alert for f in scenario.frames)
        depth = scenario.frames[0].depth_m
        assert depth.shape == (480, 640) and depth.dtype == np.float32


@pytest.mark.parametrize('name', RENDERED_SCENES)
def test_rendered_scene_alerts_in_time_without_false_alerts(name):
    _, score = scored(name)
    assert score.false_alert_frames == 0, score.row()
    if name in ALERTING:
        assert score.late_s <= 0.35, score.row()
        assert score.median_tti_error <= 0.15, score.row()
    else:
        assert score.first_alert_s is None, score.row()


@pytest.mark.parametrize('seed', [1, 2])
def test_thrown_ball_with_other_noise_draws(seed):
    _, score = scored('thrown_ball', seed)
    assert score.false_alert_frames == 0 and score.late_s <= 0.35, score.row()
    assert score.median_tti_error <= 0.15, score.row()


def test_thrown_ball_lead_time_and_what_the_per_pixel_path_alone_gives():
    scenario, score = scored('thrown_ball')
    # Due from 0.1 s (TTI < 3 s at > 2.2 m/s); the first alert needs one object baseline
    # (0.1 s) plus one confirming frame: measured 0.13-0.23 s, 1.22-1.32 s before contact.
    assert score.lead_s >= 1.15, score.row()
    _, pixels = scored('thrown_ball', object_association=False)
    assert pixels.first_alert_s is None or pixels.late_s > 0.35, pixels.row()
