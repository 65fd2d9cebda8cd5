"""Pattern table, motor selection and rate limiting of edge_perception.core.haptics."""
import math

from edge_perception.core.haptics import (
    ALL_MOTORS, HapticConfig, HapticConfigError, HapticOutput, HapticPatternMapper,
    HapticRateLimiter, LEVEL_CAUTION, LEVEL_CRITICAL, LEVEL_NONE, LEVEL_SENSOR_LOST,
    LEVEL_WARNING, PATTERN_CAUTION, PATTERN_CRITICAL, PATTERN_OFF, PATTERN_SENSOR_LOST,
    PATTERN_WARNING)
from hypothesis import given, settings
from hypothesis import strategies as st
import pytest


@pytest.fixture
def mapper():
    return HapticPatternMapper(HapticConfig())


def test_levels_map_to_patterns_of_the_same_meaning(mapper):
    expected = {LEVEL_NONE: PATTERN_OFF, LEVEL_CAUTION: PATTERN_CAUTION,
                LEVEL_WARNING: PATTERN_WARNING, LEVEL_CRITICAL: PATTERN_CRITICAL,
                LEVEL_SENSOR_LOST: PATTERN_SENSOR_LOST}
    for level, pattern in expected.items():
        out = mapper.command_for(level, 0.0)
        assert (out.pattern, out.level) == (pattern, level)
        assert out.duration_s == HapticConfig().command_duration_s


def test_intensity_and_pulse_rate_rise_with_urgency(mapper):
    caution, warning, critical = (mapper.command_for(level, 0.0)
                                  for level in (LEVEL_CAUTION, LEVEL_WARNING, LEVEL_CRITICAL))
    assert 0.0 < caution.intensity < warning.intensity < critical.intensity <= 1.0
    assert 0.0 < caution.pulse_hz < warning.pulse_hz
    assert critical.pulse_hz == 0.0   # continuous: the strongest rhythm there is


def test_none_is_off_and_sensor_lost_is_distinct(mapper):
    off = mapper.command_for(LEVEL_NONE, 0.3)
    assert off.pattern == PATTERN_OFF and off.intensity == 0.0 and off.motor_mask == ALL_MOTORS
    lost = mapper.command_for(LEVEL_SENSOR_LOST, 0.3)
    others = [mapper.command_for(level, 0.3) for level in (1, 2, 3)]
    assert lost.intensity > 0.0
    assert all((lost.intensity, lost.pulse_hz) != (o.intensity, o.pulse_hz) for o in others)
    assert lost.motor_mask == ALL_MOTORS   # "I cannot see" concerns every direction


@pytest.mark.parametrize('level', [-1, 5, 255, True, 2.5])
def test_unknown_level_is_rejected(mapper, level):
    with pytest.raises(ValueError, match='unknown collision alert level'):
        mapper.command_for(level, 0.0)


def test_infinite_bearing_is_rejected(mapper):
    with pytest.raises(ValueError, match='bearing'):
        mapper.command_for(LEVEL_WARNING, math.inf)


def test_single_motor_or_unknown_bearing_drives_all_motors():
    single = HapticPatternMapper(HapticConfig(motor_count=1))
    assert single.command_for(LEVEL_WARNING, 1.2).motor_mask == ALL_MOTORS
    four = HapticPatternMapper(HapticConfig(motor_count=4))
    assert four.command_for(LEVEL_WARNING, math.nan).motor_mask == ALL_MOTORS


@pytest.mark.parametrize('bearing, mask', [
    (0.0, 0b0001),               # ahead: motor 0 only (neighbours are pi/2 > 0.8 away)
    (math.pi / 4, 0b0011),       # half-way between motor 0 and motor 1 (left): both, 0.785 rad
    (math.pi / 2, 0b0010),       # left
    (math.pi, 0b0100),           # behind
    (-math.pi, 0b0100),          # behind, other side of the wrap
    (-math.pi / 2, 0b1000),      # right
    (-2.0, 0b1000),              # 0.43 rad from motor 3, 1.14 from motor 2
])
def test_four_evenly_spaced_motors_follow_the_bearing(bearing, mask):
    # Motors at 0, pi/2, pi, -pi/2 (counting to the left from straight ahead).
    mapper = HapticPatternMapper(HapticConfig(motor_count=4, direction_spread_rad=0.8))
    assert mapper.command_for(LEVEL_CAUTION, bearing).motor_mask == mask


def test_explicit_motor_bearings_and_nearest_fallback():
    config = HapticConfig(motor_bearings_rad=(0.5, 0.0, -0.5), direction_spread_rad=0.3)
    mapper = HapticPatternMapper(config)
    assert mapper.command_for(LEVEL_WARNING, 0.6).motor_mask == 0b001
    assert mapper.command_for(LEVEL_WARNING, -0.25).motor_mask == 0b110
    # Behind the user no motor is within 0.3 rad: the nearest (motor 0, 0.5 rad) still vibrates.
    assert mapper.command_for(LEVEL_WARNING, 2.5).motor_mask == 0b001
    wide = HapticPatternMapper(HapticConfig(motor_bearings_rad=(0.5, 0.0, -0.5),
                                            direction_spread_rad=1.0))
    assert wide.command_for(LEVEL_WARNING, 0.0).motor_mask == ALL_MOTORS


@pytest.mark.parametrize('kwargs, message', [
    ({'warning_intensity': 1.5}, 'warning_intensity'),
    ({'caution_pulse_hz': -1.0}, 'caution_pulse_hz'),
    ({'critical_intensity': math.nan}, 'critical_intensity'),
    ({'refresh_interval_s': 1.0, 'command_duration_s': 1.0}, 'refresh_interval_s'),
    ({'min_interval_s': 0.5}, 'min_interval_s'),
    ({'motor_count': 9}, 'motor_count'),
    ({'motor_count': 0}, 'motor_count'),
    ({'motor_count': 2, 'motor_bearings_rad': (0.1, 0.2, 0.3)}, 'disagrees'),
    ({'motor_bearings_rad': (0.0, math.inf)}, r'motor_bearings_rad\[1\]'),
])
def test_bad_config_is_rejected_with_the_field_name(kwargs, message):
    with pytest.raises(HapticConfigError, match=message):
        HapticConfig(**kwargs)
    assert issubclass(HapticConfigError, ValueError)


def test_config_changed_after_construction_is_checked_by_the_mapper():
    config = HapticConfig()
    config.caution_intensity = 2.0
    with pytest.raises(HapticConfigError, match='caution_intensity'):
        HapticPatternMapper(config)


# ---- rate limiter -------------------------------------------------------------------------

def make(level, bearing=0.0, config=None):
    return HapticPatternMapper(config or HapticConfig(motor_count=4)).command_for(level, bearing)


def test_escalations_are_sent_at_once():
    limiter = HapticRateLimiter(HapticConfig(motor_count=4))
    t = 10.0
    assert limiter.should_send(make(LEVEL_NONE), t)
    for level in (LEVEL_CAUTION, LEVEL_WARNING, LEVEL_CRITICAL):
        t += 0.001   # far below min_interval_s
        assert limiter.should_send(make(level), t)
    # SENSOR_LOST counts as urgent: switching between it and CRITICAL is never delayed.
    t += 0.001
    assert limiter.should_send(make(LEVEL_SENSOR_LOST), t)
    t += 0.001
    assert limiter.should_send(make(LEVEL_CRITICAL), t)
    assert limiter.last_sent.pattern == PATTERN_CRITICAL and limiter.last_sent_s == t


def test_lower_urgency_waits_min_interval():
    config = HapticConfig(min_interval_s=0.05)
    limiter = HapticRateLimiter(config)
    assert limiter.should_send(make(LEVEL_WARNING, config=config), 1.0)
    caution = make(LEVEL_CAUTION, config=config)
    assert not limiter.should_send(caution, 1.01)
    assert not limiter.should_send(caution, 1.049)
    assert limiter.last_sent.pattern == PATTERN_WARNING
    assert limiter.should_send(caution, 1.05)
    assert limiter.last_sent.pattern == PATTERN_CAUTION
    off = make(LEVEL_NONE, config=config)
    assert not limiter.should_send(off, 1.06)
    assert limiter.should_send(off, 1.11)


def test_direction_change_at_same_level_waits_min_interval():
    config = HapticConfig(motor_count=4, min_interval_s=0.05)
    limiter = HapticRateLimiter(config)
    assert limiter.should_send(make(LEVEL_WARNING, 0.0, config), 0.0)
    left = make(LEVEL_WARNING, math.pi / 2, config)
    assert not limiter.should_send(left, 0.02)
    assert limiter.should_send(left, 0.05)
    # Same motors, bearing moved by more than direction_change_rad: a change too.
    turned = make(LEVEL_WARNING, math.pi / 2 + 0.3, config)
    assert turned.motor_mask == left.motor_mask
    assert not limiter.should_send(turned, 0.06)
    assert limiter.should_send(turned, 0.10)


def test_bearing_jitter_is_not_a_change():
    config = HapticConfig(motor_count=4)
    limiter = HapticRateLimiter(config)
    assert limiter.should_send(make(LEVEL_WARNING, 0.10, config), 0.0)
    # 0.05 rad of jitter at 10 Hz for less than refresh_interval_s: nothing new to send.
    assert not limiter.should_send(make(LEVEL_WARNING, 0.15, config), 0.1)
    assert not limiter.should_send(make(LEVEL_WARNING, 0.05, config), 0.2)
    assert limiter.should_send(make(LEVEL_WARNING, 0.12, config), 0.3)   # keep-alive


def test_unchanged_command_is_refreshed_before_the_device_times_out():
    config = HapticConfig(refresh_interval_s=0.3, command_duration_s=1.0)
    limiter = HapticRateLimiter(config)
    out = make(LEVEL_CAUTION, config=config)
    tick = 0.01
    sent = [i * tick for i in range(300) if limiter.should_send(out, i * tick)]
    gaps = [b - a for a, b in zip(sent, sent[1:])]
    assert sent[0] == 0.0 and len(sent) >= 9
    assert all(config.refresh_interval_s - 1e-9 <= g <= config.refresh_interval_s + tick + 1e-9
               for g in gaps)
    assert max(gaps) < config.command_duration_s


def test_reset_and_clock_checks():
    limiter = HapticRateLimiter(HapticConfig())
    out = make(LEVEL_WARNING)
    assert limiter.should_send(out, 5.0)
    assert not limiter.should_send(out, 5.01)
    limiter.reset()
    assert limiter.last_sent is None
    assert limiter.should_send(out, 5.02)
    with pytest.raises(ValueError, match='backwards'):
        limiter.should_send(out, 4.0)
    with pytest.raises(ValueError, match='finite'):
        limiter.should_send(out, math.nan)


def test_unknown_pattern_in_output_is_rejected():
    limiter = HapticRateLimiter(HapticConfig())
    bad = HapticOutput(pattern=9, level=0, intensity=0.0, pulse_hz=0.0, duration_s=1.0,
                       direction_rad=0.0, motor_mask=ALL_MOTORS)
    with pytest.raises(ValueError, match='unknown haptic pattern'):
        limiter.should_send(bad, 0.0)


URGENCY = {LEVEL_NONE: 0, LEVEL_CAUTION: 1, LEVEL_WARNING: 2, LEVEL_CRITICAL: 3,
           LEVEL_SENSOR_LOST: 3}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 40),                 # ms since previous call
                          st.sampled_from(sorted(URGENCY)),
                          st.floats(-math.pi, math.pi)),
                min_size=1, max_size=200))
def test_limiter_invariants_on_random_alert_streams(stream):
    config = HapticConfig(motor_count=3)
    mapper = HapticPatternMapper(config)
    limiter = HapticRateLimiter(config)
    t_ms = 0
    last_sent = None   # (t_ms, output)
    for dt_ms, level, bearing in stream:
        t_ms += dt_ms
        out = mapper.command_for(level, bearing)
        previous = limiter.last_sent
        sent = limiter.should_send(out, t_ms / 1000.0)
        if previous is None:
            assert sent
        elif (URGENCY[level] > URGENCY[previous.level]
              or (URGENCY[level] == 3 and out.pattern != previous.pattern)):
            assert sent, 'an escalation was delayed'
        elif sent and last_sent is not None:
            assert t_ms - last_sent[0] >= config.min_interval_s * 1000 - 1e-6
        if not sent and last_sent is not None:
            # Whatever was held back, the device hears something at least every refresh.
            assert t_ms - last_sent[0] < config.refresh_interval_s * 1000
        if sent:
            last_sent = (t_ms, out)
