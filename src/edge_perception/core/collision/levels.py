"""Alert levels with hysteresis: per-frame estimates in, NONE..CRITICAL or SENSOR_LOST out."""
from dataclasses import dataclass
import enum
import math
from typing import Optional

from edge_perception.core.collision.rule import CollisionInputError


class AlertLevel(enum.IntEnum):
    """Alert levels; values equal the CollisionAlert.msg LEVEL_* constants."""

    NONE = 0
    CAUTION = 1
    WARNING = 2
    CRITICAL = 3
    SENSOR_LOST = 4


@dataclass
class AlertLevelConfig:
    """Thresholds of AlertLevelFilter (speeds signed: negative = approaching)."""

    caution_speed_mps: float = -1.0   # early warning, below the paper's threshold
    caution_tti_s: float = 5.0
    warning_speed_mps: float = -2.2   # the paper's alert
    warning_tti_s: float = 3.0
    critical_tti_s: float = 1.0       # an alert with TTI under this
    exit_tti_ratio: float = 1.25      # leave a level when TTI > enter * ratio (or speed clears)
    min_on_time_s: float = 0.5        # a raised level is held at least this long (stamp time)
    sensor_timeout_s: float = 0.5     # no valid estimate for longer -> SENSOR_LOST

    def __post_init__(self):
        """Reject inconsistent values with a message naming the field."""
        if not self.critical_tti_s <= self.warning_tti_s <= self.caution_tti_s:
            raise ValueError('AlertLevelConfig: need critical_tti_s <= warning_tti_s <= '
                             'caution_tti_s')
        if self.exit_tti_ratio < 1.0:
            raise ValueError(f'AlertLevelConfig: exit_tti_ratio must be >= 1, got '
                             f'{self.exit_tti_ratio}')
        if self.min_on_time_s < 0 or self.sensor_timeout_s <= 0:
            raise ValueError('AlertLevelConfig: min_on_time_s must be >= 0 and '
                             'sensor_timeout_s > 0')


class AlertLevelFilter:
    """Turns per-frame (speed, TTI, valid) into a stable alert level.

    Escalation is immediate. De-escalation waits until the level has been held min_on_time_s
    and its hysteresis condition (TTI below enter * exit_tti_ratio and speed below the level's
    speed threshold) no longer holds; it then drops to the highest level whose hysteresis
    condition still holds. Invalid estimates keep the current level until sensor_timeout_s has
    passed since the last valid one (by stamps), then SENSOR_LOST; valid input recovers at once.
    """

    def __init__(self, config: Optional[AlertLevelConfig] = None):
        """Create a filter at level NONE."""
        self.config = config if config is not None else AlertLevelConfig()
        self.reset()

    def reset(self) -> None:
        """Back to NONE with no history."""
        self.level = AlertLevel.NONE
        self._level_since = None
        self._last_valid_s = None     # also the start of the clock before any valid input
        self._last_stamp = None

    def _thresholds(self, level):
        cfg = self.config
        if level == AlertLevel.CRITICAL:
            return cfg.warning_speed_mps, cfg.critical_tti_s
        if level == AlertLevel.WARNING:
            return cfg.warning_speed_mps, cfg.warning_tti_s
        return cfg.caution_speed_mps, cfg.caution_tti_s

    def _holds(self, level, speed, tti, ratio):
        speed_limit, tti_limit = self._thresholds(level)
        return bool(speed < speed_limit and tti < tti_limit * ratio)   # NaN -> False

    def raw_level(self, speed_mps, tti_s):
        """Return the level of one estimate, without memory."""
        for level in (AlertLevel.CRITICAL, AlertLevel.WARNING, AlertLevel.CAUTION):
            if self._holds(level, speed_mps, tti_s, 1.0):
                return level
        return AlertLevel.NONE

    def _set(self, level, stamp):
        if level != self.level:
            self.level = AlertLevel(level)
            self._level_since = stamp

    def update(self, speed_mps: float, tti_s: float, valid: bool, stamp_s: float) -> AlertLevel:
        """Feed one estimate; return the level to publish.

        Raises CollisionInputError on a non-finite stamp or one going backwards.
        """
        cfg = self.config
        stamp = float(stamp_s)
        if not math.isfinite(stamp):
            raise CollisionInputError(f'stamp must be finite, got {stamp_s}')
        if self._last_stamp is not None and stamp < self._last_stamp:
            raise CollisionInputError(
                f'stamp went backwards ({stamp:.6f} s < {self._last_stamp:.6f} s); call reset()')
        self._last_stamp = stamp
        if self._last_valid_s is None:
            self._last_valid_s = stamp
        if self._level_since is None:
            self._level_since = stamp
        if not valid:
            if stamp - self._last_valid_s > cfg.sensor_timeout_s:
                self._set(AlertLevel.SENSOR_LOST, stamp)
            return self.level
        self._last_valid_s = stamp
        speed = float(speed_mps)
        tti = float(tti_s)
        raw = self.raw_level(speed, tti)
        if self.level == AlertLevel.SENSOR_LOST or raw >= self.level:
            self._set(raw, stamp)
            return self.level
        if stamp - self._level_since < cfg.min_on_time_s:
            return self.level
        for level in range(int(self.level), int(raw), -1):
            if self._holds(AlertLevel(level), speed, tti, cfg.exit_tti_ratio):
                self._set(level, stamp)
                return self.level
        self._set(raw, stamp)
        return self.level

    def check_timeout(self, now_s: float) -> Optional[AlertLevel]:
        """SENSOR_LOST when now_s - the last valid input stamp > sensor_timeout_s, else None.

        For the node's watchdog when messages stop altogether. Before any input, the first call
        starts the clock.
        """
        now = float(now_s)
        if self._last_valid_s is None:
            self._last_valid_s = now
            self._level_since = now
            return None
        if now - self._last_valid_s > self.config.sensor_timeout_s:
            self._set(AlertLevel.SENSOR_LOST, now)
            return self.level
        return None
