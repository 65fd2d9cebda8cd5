"""Object mode: per-track time to impact and closest point of approach from 3-D tracks."""
from collections import deque
from dataclasses import dataclass
import math
from typing import List, Optional, Sequence, Tuple

from edge_perception.core.collision.rule import CollisionInputError, should_alert, time_to_impact
import numpy as np


@dataclass
class TrackObservation:
    """One tracked object's position in the camera optical frame (x right, y down, z forward)."""

    track_id: int
    position: Tuple[float, float, float]


@dataclass
class ObjectTTI:
    """Time to impact and closest point of approach (CPA) of one track."""

    track_id: int
    distance_m: float      # range |p| (least-squares fit at the current stamp)
    speed_mps: float       # signed range rate, negative = approaching
    tti_s: float           # distance / -speed when approaching, else inf
    cpa_distance_m: float  # |p + v t_cpa|: how close the straight-line path comes to the sensor
    cpa_time_s: float      # t_cpa = -p.v / |v|^2, >= 0 (0 when moving away)
    bearing_rad: float     # 0 ahead, positive to the left (REP 103), from atan2(-x, z)
    alert: bool            # valid, d_cpa < corridor and should_alert(speed, tti)
    valid: bool            # enough samples over enough time for the fit
    samples: int = 0


@dataclass
class ObjectTTIConfig:
    """Tunables of ObjectTTITracker."""

    corridor_radius_m: float = 0.5   # an object must pass this close to the sensor to alert
    window_s: float = 0.5            # least-squares window (by stamps)
    track_timeout_s: float = 1.0     # forget tracks unseen for this long
    speed_threshold_mps: float = -2.2
    tti_threshold_s: float = 3.0
    min_samples: int = 3             # observations in the window for a valid fit
    min_span_s: float = 0.1          # and the window must span at least this long

    def __post_init__(self):
        """Reject inconsistent values with a message naming the field."""
        if self.corridor_radius_m < 0 or self.window_s <= 0 or self.track_timeout_s <= 0:
            raise ValueError('ObjectTTIConfig: corridor_radius_m must be >= 0, window_s and '
                             'track_timeout_s > 0')
        if self.min_samples < 2 or not 0.0 <= self.min_span_s <= self.window_s:
            raise ValueError('ObjectTTIConfig: need min_samples >= 2 and '
                             '0 <= min_span_s <= window_s')


class ObjectTTITracker:
    """Per-track range, range rate and CPA from tracked 3-D positions (object mode)."""

    def __init__(self, config: Optional[ObjectTTIConfig] = None):
        """Create a tracker with the given (or default) configuration."""
        self.config = config if config is not None else ObjectTTIConfig()
        self.reset()

    def reset(self) -> None:
        """Forget all tracks."""
        self._tracks = {}
        self._last_stamp = None

    def update(self, observations: Sequence[TrackObservation],
               stamp_s: float) -> List[ObjectTTI]:
        """Add this cycle's observations; return every live track's estimate, most urgent first.

        Range and range rate come from a least-squares line over the window_s of stamps that
        ends at the track's latest observation, evaluated at stamp_s; the velocity likewise
        (for the CPA). Tracks unseen for longer than track_timeout_s are forgotten. Alerting
        tracks come first, then by TTI, then by distance; invalid fits last. Raises
        CollisionInputError on a stamp going backwards (tracks are cleared), a non-finite
        position or a track id given twice.
        """
        cfg = self.config
        stamp = float(stamp_s)
        if not math.isfinite(stamp):
            raise CollisionInputError(f'stamp must be finite, got {stamp_s}')
        if self._last_stamp is not None and stamp < self._last_stamp:
            last = self._last_stamp
            self.reset()
            raise CollisionInputError(
                f'stamp went backwards ({stamp:.6f} s < {last:.6f} s): tracks cleared')
        seen = set()
        parsed = []
        for obs in observations:
            position = np.asarray(obs.position, dtype=np.float64).ravel()
            if position.size != 3 or not np.all(np.isfinite(position)):
                raise CollisionInputError(
                    f'track {obs.track_id}: position must be 3 finite numbers, got '
                    f'{obs.position!r}')
            if obs.track_id in seen:
                raise CollisionInputError(f'track id {obs.track_id} given twice in one update')
            seen.add(obs.track_id)
            parsed.append((int(obs.track_id), position))
        self._last_stamp = stamp
        for track_id, position in parsed:
            history = self._tracks.setdefault(track_id, deque())
            if history and history[-1][0] == stamp:
                history.pop()       # a repeated stamp replaces the earlier sample
            history.append((stamp, position))
        results = []
        for track_id in list(self._tracks):
            history = self._tracks[track_id]
            if stamp - history[-1][0] > cfg.track_timeout_s:
                del self._tracks[track_id]
                continue
            # The window ends at the track's latest observation, so a missed detection does
            # not empty it; the fit is then extrapolated to this stamp.
            while history[-1][0] - history[0][0] > cfg.window_s + 1e-9:
                history.popleft()
            results.append(self._estimate(track_id, history, stamp))
        results.sort(key=lambda r: (not r.valid, not r.alert,
                                    r.tti_s if not math.isnan(r.tti_s) else math.inf,
                                    r.distance_m if not math.isnan(r.distance_m) else math.inf))
        return results

    def _estimate(self, track_id, history, stamp):
        cfg = self.config
        times = np.array([t for t, _ in history]) - stamp
        positions = np.array([p for _, p in history])
        last = positions[-1]
        bearing = math.atan2(-last[0], last[2])
        span = float(times[-1] - times[0])
        if len(history) < cfg.min_samples or span < cfg.min_span_s or span <= 0.0:
            distance = float(np.linalg.norm(last))
            return ObjectTTI(track_id, distance, math.nan, math.nan, math.nan, math.nan,
                             bearing, False, False, len(history))
        # Least squares of value = a + b * (t - now): a is the fit now, b the rate.
        design = np.stack([np.ones_like(times), times], axis=1)
        ranges = np.linalg.norm(positions, axis=1)
        targets = np.column_stack([positions, ranges])
        coeffs, *_ = np.linalg.lstsq(design, targets, rcond=None)
        position_now, velocity = coeffs[0, :3], coeffs[1, :3]
        distance = float(coeffs[0, 3])
        speed = float(coeffs[1, 3])
        tti = time_to_impact(distance, speed)
        speed_sq = float(velocity @ velocity)
        if speed_sq > 0.0:
            cpa_time = max(0.0, -float(position_now @ velocity) / speed_sq)
        else:
            cpa_time = 0.0
        cpa_distance = float(np.linalg.norm(position_now + velocity * cpa_time))
        alert = (cpa_distance < cfg.corridor_radius_m and
                 should_alert(speed, tti, cfg.speed_threshold_mps, cfg.tti_threshold_s))
        bearing = math.atan2(-position_now[0], position_now[2])
        return ObjectTTI(track_id, distance, speed, tti, cpa_distance, cpa_time, bearing,
                         bool(alert), True, len(history))
