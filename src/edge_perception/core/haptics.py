"""Collision alert -> vibration command: pattern table, motor selection and rate limiting.

Pure Python (no rclpy): the haptic-alert node wraps these classes. The numbers mirror
edge_perception/CollisionAlert (levels) and HapticCommand (patterns).

Urgency order used everywhere here: OFF < CAUTION < WARNING < {CRITICAL, SENSOR_LOST}.
SENSOR_LOST ranks with CRITICAL: "I cannot see" is as urgent as "about to hit".
"""
from dataclasses import dataclass
import math
from typing import Optional, Tuple

# CollisionAlert.level
LEVEL_NONE = 0
LEVEL_CAUTION = 1
LEVEL_WARNING = 2
LEVEL_CRITICAL = 3
LEVEL_SENSOR_LOST = 4

# HapticCommand.pattern
PATTERN_OFF = 0
PATTERN_CAUTION = 1
PATTERN_WARNING = 2
PATTERN_CRITICAL = 3
PATTERN_SENSOR_LOST = 4

PATTERN_NAMES = {
    PATTERN_OFF: 'OFF',
    PATTERN_CAUTION: 'CAUTION',
    PATTERN_WARNING: 'WARNING',
    PATTERN_CRITICAL: 'CRITICAL',
    PATTERN_SENSOR_LOST: 'SENSOR_LOST',
}

# Each alert level renders as the pattern of the same meaning.
_PATTERN_FOR_LEVEL = {
    LEVEL_NONE: PATTERN_OFF,
    LEVEL_CAUTION: PATTERN_CAUTION,
    LEVEL_WARNING: PATTERN_WARNING,
    LEVEL_CRITICAL: PATTERN_CRITICAL,
    LEVEL_SENSOR_LOST: PATTERN_SENSOR_LOST,
}

_URGENCY = {
    PATTERN_OFF: 0,
    PATTERN_CAUTION: 1,
    PATTERN_WARNING: 2,
    PATTERN_CRITICAL: 3,
    PATTERN_SENSOR_LOST: 3,
}
_MAX_URGENCY = 3

ALL_MOTORS = 0xFF
MAX_MOTORS = 8  # motor_mask is a uint8


class HapticConfigError(ValueError):
    """A HapticConfig value is out of range or inconsistent."""


def pattern_urgency(pattern: int) -> int:
    """Urgency rank of a pattern: 0 (OFF) .. 3 (CRITICAL and SENSOR_LOST)."""
    try:
        return _URGENCY[pattern]
    except KeyError:
        raise ValueError(
            f'unknown haptic pattern {pattern!r}; expected one of {sorted(_URGENCY)}') from None


def wrap_angle(angle_rad: float) -> float:
    """Wrap an angle to [-pi, pi)."""
    return (angle_rad + math.pi) % (2.0 * math.pi) - math.pi


@dataclass
class HapticOutput:
    """One vibration command; the fields of HapticCommand.msg without the header."""

    pattern: int
    level: int
    intensity: float
    pulse_hz: float
    duration_s: float
    direction_rad: float
    motor_mask: int

    @property
    def urgency(self) -> int:
        """Urgency rank of the pattern (see pattern_urgency)."""
        return pattern_urgency(self.pattern)


@dataclass
class HapticConfig:
    """Tunables of the alert-to-vibration mapping; each becomes a ROS parameter of the node."""

    caution_intensity: float = 0.35
    caution_pulse_hz: float = 1.0
    warning_intensity: float = 0.7
    warning_pulse_hz: float = 4.0
    critical_intensity: float = 1.0
    critical_pulse_hz: float = 0.0            # continuous
    sensor_lost_intensity: float = 0.5
    sensor_lost_pulse_hz: float = 0.5         # distinct rhythm (device side renders long-short)
    motor_count: int = 1                      # motors evenly spaced; motor_bearings_rad overrides
    motor_bearings_rad: Tuple[float, ...] = ()  # bearing each motor points to (0 ahead, + left)
    direction_spread_rad: float = 0.8         # motors within this of the bearing vibrate
    command_duration_s: float = 1.0           # device keeps a pattern this long without refresh
    min_interval_s: float = 0.05              # rate limit: changes at same/lower urgency
    refresh_interval_s: float = 0.3           # keep-alive re-send of an unchanged command
    # A bearing change smaller than this (same motors) is not a new command: it spares the link
    # a re-send per sensor cycle for jitter.
    direction_change_rad: float = 0.2

    def __post_init__(self):
        """Validate every field and resolve the bearing of each motor."""
        self.validate()

    @property
    def motor_bearings(self) -> Tuple[float, ...]:
        """Bearing of each motor, rad in [-pi, pi): motor_bearings_rad, else evenly spaced."""
        bearings = tuple(self.motor_bearings_rad or ())
        if bearings:
            return tuple(wrap_angle(float(b)) for b in bearings)
        # Evenly spaced around the user, motor 0 straight ahead, counting to the left.
        return tuple(
            wrap_angle(2.0 * math.pi * i / self.motor_count) for i in range(self.motor_count))

    def validate(self) -> None:
        """Raise HapticConfigError naming the first bad field."""
        for name in ('caution_intensity', 'warning_intensity', 'critical_intensity',
                     'sensor_lost_intensity'):
            _require_range(name, getattr(self, name), 0.0, 1.0)
        for name in ('caution_pulse_hz', 'warning_pulse_hz', 'critical_pulse_hz',
                     'sensor_lost_pulse_hz'):
            _require_range(name, getattr(self, name), 0.0, 50.0)
        _require_range('direction_spread_rad', self.direction_spread_rad, 0.0, math.pi)
        _require_range('direction_change_rad', self.direction_change_rad, 0.0, math.pi)
        _require_range('command_duration_s', self.command_duration_s, 1e-3, 600.0)
        _require_range('min_interval_s', self.min_interval_s, 0.0, 600.0)
        _require_range('refresh_interval_s', self.refresh_interval_s, 1e-3, 600.0)
        if self.refresh_interval_s >= self.command_duration_s:
            raise HapticConfigError(
                f'refresh_interval_s ({self.refresh_interval_s}) must be shorter than '
                f'command_duration_s ({self.command_duration_s}), or the device falls back to '
                'SENSOR_LOST between keep-alive refreshes')
        if self.min_interval_s > self.refresh_interval_s:
            raise HapticConfigError(
                f'min_interval_s ({self.min_interval_s}) must not exceed refresh_interval_s '
                f'({self.refresh_interval_s})')
        if isinstance(self.motor_count, bool) or not isinstance(self.motor_count, int):
            raise HapticConfigError(
                f'motor_count must be an integer, got {self.motor_count!r}')
        bearings = tuple(self.motor_bearings_rad or ())
        if bearings:
            if not 1 <= len(bearings) <= MAX_MOTORS:
                raise HapticConfigError(
                    f'motor_bearings_rad has {len(bearings)} entries; 1..{MAX_MOTORS} supported '
                    '(motor_mask is 8 bits)')
            if self.motor_count not in (1, len(bearings)):
                raise HapticConfigError(
                    f'motor_count ({self.motor_count}) disagrees with motor_bearings_rad '
                    f'({len(bearings)} entries); leave motor_count at 1 or make them equal')
            for i, bearing in enumerate(bearings):
                if (isinstance(bearing, bool) or not isinstance(bearing, (int, float))
                        or not math.isfinite(bearing)):
                    raise HapticConfigError(
                        f'motor_bearings_rad[{i}] must be a finite number, got {bearing!r}')
        elif not 1 <= self.motor_count <= MAX_MOTORS:
            raise HapticConfigError(
                f'motor_count must be in 1..{MAX_MOTORS} (motor_mask is 8 bits), '
                f'got {self.motor_count}')


def _require_range(name: str, value, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise HapticConfigError(f'{name} must be a number, got {value!r}')
    if not (math.isfinite(value) and low <= value <= high):
        raise HapticConfigError(f'{name} must be in [{low}, {high}], got {value}')


class HapticPatternMapper:
    """Map a collision alert (level, bearing) to a HapticOutput.

    Intensity and pulse rate rise with urgency (CRITICAL is continuous, pulse_hz 0); SENSOR_LOST
    has its own slow rhythm on every motor; NONE gives PATTERN_OFF with intensity 0.
    The mapper keeps a snapshot of the config: build a new one when parameters change.
    """

    def __init__(self, config: HapticConfig):
        """Keep a validated copy of the config's pattern table and motor layout."""
        config.validate()
        self.config = config
        self._motor_bearings = config.motor_bearings
        self._table = {
            PATTERN_OFF: (0.0, 0.0),
            PATTERN_CAUTION: (config.caution_intensity, config.caution_pulse_hz),
            PATTERN_WARNING: (config.warning_intensity, config.warning_pulse_hz),
            PATTERN_CRITICAL: (config.critical_intensity, config.critical_pulse_hz),
            PATTERN_SENSOR_LOST: (config.sensor_lost_intensity, config.sensor_lost_pulse_hz),
        }

    def command_for(self, level: int, bearing_rad: float) -> HapticOutput:
        """Return the command for an alert level and the object's bearing (NaN = unknown).

        Raises ValueError for an unknown level or an infinite bearing.
        """
        if isinstance(level, bool) or level not in _PATTERN_FOR_LEVEL:
            raise ValueError(
                f'unknown collision alert level {level!r}; expected one of '
                f'{sorted(_PATTERN_FOR_LEVEL)} (NONE, CAUTION, WARNING, CRITICAL, SENSOR_LOST)')
        bearing_rad = float(bearing_rad)
        if math.isinf(bearing_rad):
            raise ValueError(f'bearing_rad must be finite or NaN (unknown), got {bearing_rad}')
        pattern = _PATTERN_FOR_LEVEL[level]
        intensity, pulse_hz = self._table[pattern]
        # SENSOR_LOST concerns the whole device, not a direction; OFF switches everything off.
        if pattern in (PATTERN_OFF, PATTERN_SENSOR_LOST):
            mask = ALL_MOTORS
        else:
            mask = self.motor_mask_for(bearing_rad)
        return HapticOutput(
            pattern=pattern, level=int(level), intensity=float(intensity),
            pulse_hz=float(pulse_hz), duration_s=float(self.config.command_duration_s),
            direction_rad=bearing_rad, motor_mask=mask)

    def motor_mask_for(self, bearing_rad: float) -> int:
        """Motors pointing within direction_spread_rad of the bearing (0xFF = all).

        A NaN bearing or a single-motor device gives all motors. When no motor lies within the
        spread, the nearest one vibrates: an alert is never rendered on zero motors.
        """
        bearings = self._motor_bearings
        if len(bearings) == 1 or math.isnan(bearing_rad):
            return ALL_MOTORS
        offsets = [abs(wrap_angle(bearing_rad - b)) for b in bearings]
        mask = 0
        for i, offset in enumerate(offsets):
            if offset <= self.config.direction_spread_rad:
                mask |= 1 << i
        if mask == 0:
            mask = 1 << min(range(len(offsets)), key=offsets.__getitem__)
        if mask == (1 << len(bearings)) - 1:
            mask = ALL_MOTORS
        return mask


class HapticRateLimiter:
    """Decide when a command goes to the device.

    should_send() records the command as sent when it returns True: the caller sends exactly
    the commands it was told to (there is no separate sent() to forget). Call it with the
    currently wanted command on every alert and on a timer faster than refresh_interval_s; the
    limiter keeps no queue, so a change held back by min_interval_s goes out on a later call.

    Rules, against the last sent command:
    - nothing sent yet, or an escalation (higher urgency, or a switch between CRITICAL and
      SENSOR_LOST): send at once, never delayed;
    - a change (pattern, intensity, pulse rate, duration, motors, or bearing by more than
      direction_change_rad) at the same or lower urgency: send once min_interval_s has passed;
    - unchanged: re-send every refresh_interval_s as keep-alive for the device's watchdog.
    """

    def __init__(self, config: HapticConfig):
        """Start with nothing sent."""
        config.validate()
        self.config = config
        self._last: Optional[HapticOutput] = None
        self._last_sent_s = -math.inf

    @property
    def last_sent(self) -> Optional[HapticOutput]:
        """The command most recently approved by should_send (None before the first)."""
        return self._last

    @property
    def last_sent_s(self) -> float:
        """When the last command was approved (-inf before the first)."""
        return self._last_sent_s

    def reset(self) -> None:
        """Forget the last sent command: the next one goes out at once (e.g. after reconnect)."""
        self._last = None
        self._last_sent_s = -math.inf

    def should_send(self, output: HapticOutput, now_s: float) -> bool:
        """Return True if output must be sent now, and record it as sent in that case."""
        if not math.isfinite(now_s):
            raise ValueError(f'now_s must be finite, got {now_s}')
        urgency = output.urgency
        last = self._last
        if last is not None and now_s < self._last_sent_s:
            raise ValueError(
                f'now_s went backwards ({now_s} < {self._last_sent_s}); pass a monotonic clock')
        elapsed = now_s - self._last_sent_s
        if last is None or self._is_escalation(last, output, urgency):
            send = True
        elif self._differs(last, output):
            send = elapsed >= self.config.min_interval_s
        else:
            send = elapsed >= self.config.refresh_interval_s
        if send:
            self._last = output
            self._last_sent_s = now_s
        return send

    @staticmethod
    def _is_escalation(last: HapticOutput, new: HapticOutput, urgency: int) -> bool:
        last_urgency = last.urgency
        if urgency > last_urgency:
            return True
        return urgency == _MAX_URGENCY and new.pattern != last.pattern

    def _differs(self, last: HapticOutput, new: HapticOutput) -> bool:
        if (new.pattern, new.level, new.motor_mask) != (last.pattern, last.level, last.motor_mask):
            return True
        for a, b in ((new.intensity, last.intensity), (new.pulse_hz, last.pulse_hz),
                     (new.duration_s, last.duration_s)):
            if not math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9):
                return True
        new_nan, last_nan = math.isnan(new.direction_rad), math.isnan(last.direction_rad)
        if new_nan or last_nan:
            return new_nan != last_nan
        turn = abs(wrap_angle(new.direction_rad - last.direction_rad))
        return turn > self.config.direction_change_rad
