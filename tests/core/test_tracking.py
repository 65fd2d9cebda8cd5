"""ByteTrack wrapper: stable IDs across frames, stamp-based expiry, 3D velocity from stamps."""
import math

from edge_perception.core.tracking import (
    ObjectTracker, TrackerConfig, TrackingError, velocity_least_squares)
import numpy as np
import pytest

# Irregular frame intervals (jitter, a dropped frame): time must come from these, not a rate.
STAMPS = [100.0, 100.03, 100.10, 100.12, 100.20, 100.26, 100.40]


def boxes_at(t):
    """Two 40x40 items: A moves right at 200 px/s on row 100, B moves left at 150 px/s."""
    dt = t - STAMPS[0]
    ax = 50 + 200 * dt
    bx = 400 - 150 * dt
    return np.array([[ax, 80, ax + 40, 120], [bx, 200, bx + 40, 240]])


def positions_at(t):
    """3D positions moving at known constant velocities (m/s)."""
    dt = t - STAMPS[0]
    return [(0.1 + 0.20 * dt, -0.05, 0.9 - 0.01 * dt), (0.4 - 0.15 * dt, 0.10, 0.95)]


def test_two_moving_objects_keep_ids_and_get_velocity_from_stamps():
    tracker = ObjectTracker(TrackerConfig(velocity_window_s=1.0))
    ids_seen = []
    for k, t in enumerate(STAMPS):
        # Input order swaps every frame: IDs must follow the objects, not the list order.
        order = [0, 1] if k % 2 == 0 else [1, 0]
        boxes = boxes_at(t)[order]
        pos = [positions_at(t)[i] for i in order]
        tracks = tracker.update(t, boxes, [0.9, 0.8], [0, 0], positions=pos)
        assert len(tracks) == 2
        by_object = {order[tr.detection_index]: tr for tr in tracks}
        ids_seen.append((by_object[0].track_id, by_object[1].track_id))
        if k == 0:
            assert not any(tr.velocity_valid for tr in tracks)
    assert len(set(ids_seen)) == 1, ids_seen
    assert ids_seen[0][0] != ids_seen[0][1]
    np.testing.assert_allclose(by_object[0].velocity, (0.20, 0.0, -0.01), atol=1e-9)
    np.testing.assert_allclose(by_object[1].velocity, (-0.15, 0.0, 0.0), atol=1e-9)
    assert by_object[0].velocity_observations == len(STAMPS)


def test_velocity_needs_two_valid_positions():
    tracker = ObjectTracker()
    box = [[10, 10, 50, 50]]
    first = tracker.update(1.0, box, [0.9], [0], positions=[(0.0, 0.0, 1.0)])
    second = tracker.update(1.1, box, [0.9], [0], positions=[None])
    assert not first[0].velocity_valid and not second[0].velocity_valid
    assert not second[0].position_valid and math.isnan(second[0].position[0])
    third = tracker.update(1.3, box, [0.9], [0], positions=[(0.03, 0.0, 1.0)])
    assert third[0].velocity_valid
    assert third[0].velocity[0] == pytest.approx(0.1)


def test_lost_track_expires_by_stamp_time_not_frames():
    config = TrackerConfig(lost_track_s=0.5, max_frame_rate_hz=100.0)
    box = [[100, 100, 160, 160]]
    # Gap shorter than lost_track_s: same ID.
    tracker = ObjectTracker(config)
    first = tracker.update(0.0, box, [0.9], [0])[0].track_id
    tracker.update(0.1, np.zeros((0, 4)), [], [])
    assert tracker.update(0.4, box, [0.9], [0])[0].track_id == first
    # Same number of empty frames, but the gap is longer than lost_track_s: a new ID.
    tracker = ObjectTracker(config)
    first = tracker.update(0.0, box, [0.9], [0])[0].track_id
    tracker.update(0.7, np.zeros((0, 4)), [], [])
    # ByteTrack confirms a new (not first-frame) track on its second match.
    assert tracker.update(0.8, box, [0.9], [0]) == []
    assert tracker.update(0.85, box, [0.9], [0])[0].track_id != first


def test_stamps_must_increase_and_sizes_must_agree():
    tracker = ObjectTracker()
    tracker.update(5.0, [[0, 0, 10, 10]], [0.9], [0])
    with pytest.raises(TrackingError, match='not after'):
        tracker.update(5.0, [[0, 0, 10, 10]], [0.9], [0])
    with pytest.raises(ValueError, match='2 boxes but 1 scores'):
        tracker.update(6.0, [[0, 0, 10, 10], [20, 20, 30, 30]], [0.9], [0, 0])
    with pytest.raises(ValueError, match='track_low_thresh'):
        TrackerConfig(track_low_thresh=0.5, track_high_thresh=0.3)


def test_buffer_is_sized_from_seconds_and_rate():
    assert TrackerConfig(lost_track_s=1.5, max_frame_rate_hz=30.0).track_buffer == 45
    assert TrackerConfig().ultralytics_args().track_buffer == 30


def test_velocity_least_squares_on_noisy_irregular_samples():
    rng = np.random.default_rng(3)
    t = np.sort(rng.uniform(0, 1, 20))
    p = np.column_stack([0.5 + 0.3 * t, -0.2 * t, np.full_like(t, 1.0)])
    v = velocity_least_squares(t, p + rng.normal(0, 1e-4, p.shape))
    np.testing.assert_allclose(v, (0.3, -0.2, 0.0), atol=2e-3)
    assert velocity_least_squares([1.0, 1.0], [[0, 0, 0], [1, 1, 1]]) is None


def test_a_track_lost_too_long_is_not_revived_by_the_next_frame_after_a_gap():
    # Regression: expiry by stamp ran after ByteTrack's association, so the first frame after
    # a long gap could re-activate a stale track on a different object at the same place.
    tracker = ObjectTracker(TrackerConfig(lost_track_s=1.0))
    box = [[100, 100, 160, 160]]
    first = tracker.update(0.0, box, [0.9], [0])[0].track_id
    tracker.update(0.1, box, [0.9], [0])
    tracker.update(0.2, np.zeros((0, 4)), [], [])      # the object leaves: track lost
    after_gap = tracker.update(2.5, box, [0.9], [0])   # another object, 2.3 s later
    assert all(t.track_id != first for t in after_gap)
    assert all(t.track_id != first for t in tracker.update(2.6, box, [0.9], [0]))


def test_a_track_matched_just_before_a_long_gap_expires_too():
    # ByteTrack counts frames: right after a 2 s gap a track matched in the previous frame is
    # still "tracked"; by stamp time it is long gone and must not take a new object.
    tracker = ObjectTracker(TrackerConfig(lost_track_s=1.0))
    box = [[100, 100, 160, 160]]
    tracker.update(0.0, box, [0.9], [0])
    first = tracker.update(0.1, box, [0.9], [0])[0].track_id
    assert all(t.track_id != first for t in tracker.update(2.1, box, [0.9], [0]))
    assert all(t.track_id != first for t in tracker.update(2.2, box, [0.9], [0]))
