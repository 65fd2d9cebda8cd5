"""Multi-object tracking of detections (ByteTrack) with 3D velocity from header stamps.

No rclpy. Association is Ultralytics' BYTETracker (ultralytics.trackers.byte_tracker); this
module feeds it per-frame detection lists and adds what it lacks for a robot: time from message
stamps and a 3D velocity per track.

Where Ultralytics' tracker assumes a frame rate, and what we do about it:
- Its lost-track buffer counts frames (`update()` calls), not seconds: a lost track is dropped
  after `track_buffer` frames (in Ultralytics <= 8.3 `BYTETracker(args, frame_rate)` scaled it as
  `frame_rate / 30 * track_buffer`; the pinned 8.4 has no frame_rate argument). We size
  `track_buffer = ceil(lost_track_s * max_frame_rate_hz)` so it never drops a track sooner than
  `lost_track_s` at any rate up to `max_frame_rate_hz`, and we drop lost tracks ourselves once
  their last match is more than `lost_track_s` older than the current stamp. A lost track's life
  is therefore set in seconds of stamp time, whatever the actual (possibly irregular) rate.
- Its Kalman filter predicts one constant-velocity step per frame, in pixels per frame. With
  irregular frame intervals the image-plane prediction is off by the interval's ratio; IoU
  matching at conveyor speeds tolerates this, and nothing metric is derived from it: velocities
  in m/s come from the stamped 3D positions below, never from the Kalman state.
"""
from collections import deque
from dataclasses import dataclass
import math
from types import SimpleNamespace
from typing import Optional, Sequence, Tuple

import numpy as np


class TrackingError(ValueError):
    """Bad tracker configuration or input (sizes, stamps)."""


@dataclass(frozen=True)
class TrackerConfig:
    """ByteTrack thresholds plus the time-based settings this module adds."""

    track_high_thresh: float = 0.25   # first association: detections at or above this score
    track_low_thresh: float = 0.1     # second association: scores between low and high
    new_track_thresh: float = 0.25    # an unmatched detection starts a track at or above this
    match_thresh: float = 0.8         # max association cost (1 - IoU, score-fused)
    fuse_score: bool = True           # fuse detection score into the IoU cost
    lost_track_s: float = 1.0         # a track unmatched for longer than this is dropped
    max_frame_rate_hz: float = 30.0   # highest expected input rate (sizes the frame buffer)
    velocity_window_s: float = 0.5    # least-squares window for 3D velocity
    min_velocity_observations: int = 2

    def __post_init__(self):
        """Check ranges; raise TrackingError naming the field."""
        for name in ('track_high_thresh', 'track_low_thresh', 'new_track_thresh',
                     'match_thresh'):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise TrackingError(f'TrackerConfig.{name} must be in [0, 1], got {value}')
        if self.track_low_thresh > self.track_high_thresh:
            raise TrackingError('TrackerConfig.track_low_thresh must not exceed track_high_thresh')
        for name in ('lost_track_s', 'max_frame_rate_hz', 'velocity_window_s'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise TrackingError(f'TrackerConfig.{name} must be > 0, got {value}')
        if self.min_velocity_observations < 2:
            raise TrackingError('TrackerConfig.min_velocity_observations must be >= 2 '
                                '(a velocity needs two positions)')

    @property
    def track_buffer(self) -> int:
        """Ultralytics' lost-track buffer in frames for lost_track_s at max_frame_rate_hz."""
        return max(1, math.ceil(self.lost_track_s * self.max_frame_rate_hz))

    def ultralytics_args(self):
        """Return the args namespace BYTETracker reads.

        Its fields are those of ultralytics/cfg/trackers/bytetrack.yaml.
        """
        return SimpleNamespace(
            tracker_type='bytetrack', track_high_thresh=self.track_high_thresh,
            track_low_thresh=self.track_low_thresh, new_track_thresh=self.new_track_thresh,
            track_buffer=self.track_buffer, match_thresh=self.match_thresh,
            fuse_score=self.fuse_score)


_NAN3 = (math.nan, math.nan, math.nan)


@dataclass(frozen=True)
class Track:
    """One tracked object in the current frame."""

    track_id: int                       # stable across frames, from 1
    detection_index: int                # index of the matched detection in this frame's input
    box_xyxy: Tuple[float, float, float, float]   # tracker-smoothed box, input-image pixels
    score: float
    class_id: int
    position_valid: bool                # a 3D position was given for this frame's detection
    position: Tuple[float, float, float]
    velocity_valid: bool                # >= min_velocity_observations 3D positions in window
    velocity: Tuple[float, float, float]  # m/s (units of position per second of stamp time)
    velocity_observations: int


class _DetectionBatch:
    """The Results-like view BYTETracker consumes: conf, cls, xywh, boolean indexing."""

    def __init__(self, xywh, conf, cls):
        self.xywh, self.conf, self.cls = xywh, conf, cls

    def __len__(self):
        return len(self.conf)

    def __getitem__(self, index):
        return _DetectionBatch(self.xywh[index], self.conf[index], self.cls[index])


def velocity_least_squares(times, points):
    """Least-squares constant velocity of points (N x 3) at times (N,); None if undetermined."""
    t = np.asarray(times, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64).reshape(len(t), -1)
    if len(t) < 2:
        return None
    dt = t - t.mean()
    denom = float(dt @ dt)
    if denom <= 0.0:
        return None
    return (dt @ (p - p.mean(axis=0))) / denom


class ObjectTracker:
    """ByteTrack over per-frame detections, with stamp-based expiry and 3D velocity."""

    def __init__(self, config: Optional[TrackerConfig] = None):
        """Create a tracker; IDs start at 1 and are unique within this instance."""
        self.config = config or TrackerConfig()
        self.reset()

    def reset(self):
        """Forget every track (e.g. after a jump back in time when a bag loops)."""
        from ultralytics.trackers.byte_tracker import BYTETracker
        self._tracker = BYTETracker(self.config.ultralytics_args())
        self._last_stamp = None
        self._last_seen = {}
        self._history = {}

    def set_config(self, config: TrackerConfig):
        """Take new thresholds and velocity window without losing the tracks.

        The lost-track buffer (lost_track_s, max_frame_rate_hz) is sized when ByteTrack is
        created: a change of those needs a new tracker (reset), so it is refused here.
        """
        for name in ('lost_track_s', 'max_frame_rate_hz'):
            if getattr(config, name) != getattr(self.config, name):
                raise TrackingError(f'{name} can only change with a new tracker (reset)')
        self.config = config
        self._tracker.args = config.ultralytics_args()

    def update(self, stamp_s: float, boxes_xyxy, scores, class_ids,
               positions: Optional[Sequence[Optional[Sequence[float]]]] = None):
        """Track one frame's detections; return the confirmed tracks matched in this frame.

        As in ByteTrack, a track born after the first frame is confirmed (and returned) from its
        second consecutive match on; an unmatched detection alone yields no track.

        Args:
            stamp_s: the frame's header stamp in seconds; must increase from call to call.
            boxes_xyxy: N x 4 boxes in image pixels.
            scores: N detection scores.
            class_ids: N class indices.
            positions: optional N 3D positions (metres), None (or NaN) where not valid.
        """
        stamp_s = float(stamp_s)
        if not math.isfinite(stamp_s):
            raise TrackingError(f'stamp must be finite, got {stamp_s}')
        if self._last_stamp is not None and stamp_s <= self._last_stamp:
            raise TrackingError(
                f'stamp {stamp_s:.6f} s is not after the previous stamp '
                f'{self._last_stamp:.6f} s (call reset() when time jumps back)')
        boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
        conf = np.asarray(scores, dtype=np.float64).reshape(-1)
        cls = np.asarray(class_ids, dtype=np.float64).reshape(-1)
        n = len(boxes)
        if len(conf) != n or len(cls) != n:
            raise TrackingError(f'{n} boxes but {len(conf)} scores and {len(cls)} class ids')
        if positions is not None and len(positions) != n:
            raise TrackingError(f'{n} boxes but {len(positions)} positions')
        if not np.all(np.isfinite(boxes)):
            raise TrackingError('boxes must be finite')
        self._last_stamp = stamp_s

        xywh = np.column_stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2,
                                boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]])
        # Expire by stamp time first: after a gap, a stale lost track must not take the frame's
        # detections in the association below (ByteTrack counts frames, not seconds).
        self._expire_lost(stamp_s)
        rows = self._tracker.update(_DetectionBatch(xywh, conf, cls))
        tracks = []
        for row in np.asarray(rows).reshape(-1, 8):
            track_id, det = int(row[4]), int(row[7])
            self._last_seen[track_id] = stamp_s
            pos = None if positions is None else positions[det]
            pos_valid = pos is not None and bool(np.all(np.isfinite(np.asarray(pos, float))))
            history = self._history.setdefault(track_id, deque())
            if pos_valid:
                history.append((stamp_s, tuple(float(c) for c in pos)))
            while history and history[0][0] < stamp_s - self.config.velocity_window_s:
                history.popleft()
            velocity = None
            if len(history) >= self.config.min_velocity_observations:
                velocity = velocity_least_squares([h[0] for h in history],
                                                  [h[1] for h in history])
            tracks.append(Track(
                track_id=track_id, detection_index=det,
                box_xyxy=tuple(float(c) for c in row[:4]), score=float(row[5]),
                class_id=int(row[6]), position_valid=pos_valid,
                position=tuple(float(c) for c in pos) if pos_valid else _NAN3,
                velocity_valid=velocity is not None,
                velocity=tuple(float(c) for c in velocity) if velocity is not None else _NAN3,
                velocity_observations=len(history)))
        self._expire_lost(stamp_s)
        return tracks

    def _expire_lost(self, stamp_s):
        """Drop tracks whose last match is older than lost_track_s (stamp time).

        Tracked ones too: after a gap in the stream ByteTrack still counts a track matched in
        the previous frame as tracked, however long ago that frame was.
        """
        tracker = self._tracker
        for pool in (tracker.tracked_stracks, tracker.lost_stracks):
            for strack in list(pool):
                seen = self._last_seen.get(strack.track_id)
                if seen is not None and stamp_s - seen > self.config.lost_track_s:
                    strack.mark_removed()
                    pool.remove(strack)
                    tracker.removed_stracks.append(strack)
        live = {t.track_id for t in tracker.tracked_stracks} | {
            t.track_id for t in tracker.lost_stracks}
        for track_id in list(self._history):
            if track_id not in live:
                del self._history[track_id]
                self._last_seen.pop(track_id, None)
