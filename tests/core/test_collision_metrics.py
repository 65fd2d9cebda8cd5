"""collision_figures, which scores every collision chain test, on hand-made records.

Each case has figures worked out by hand from the records (no rclpy, no scenario generator).
"""
from collections import namedtuple
import math

from edge_perception.core.collision_metrics import (AlertRecord, collision_figures,
                                                    CommandRecord, SENSOR_LOST, WARNING)
import pytest

Frame = namedtuple('Frame', 'stamp_s true_tti_s expect_alert')
NONE, CAUTION, CRITICAL = 0, 1, 3


def approach_frames():
    """Ten frames 0.1 s apart, true TTI 3.0 s at t=0 falling; an alert is due from t=0.2 s."""
    return [Frame(round(0.1 * i, 6), 3.0 - 0.1 * i, i >= 2) for i in range(10)]


def alert(stamp, level, tti=math.inf, latency_s=0.01):
    """Return an alert of a frame stamped stamp (scenario time), received latency_s after."""
    return AlertRecord(stamp, level, tti, 1000.0 + stamp + latency_s, 1000.0 + stamp)


def test_an_approach_is_scored_frame_by_frame():
    frames = approach_frames()
    # Level NONE (TTI unknown) for the first three frames, then WARNING with TTI 10% long.
    alerts = [alert(f.stamp_s, NONE if i < 3 else WARNING,
                    math.inf if i < 3 else f.true_tti_s * 1.1, latency_s=0.001 * (i + 1))
              for i, f in enumerate(frames)]
    figures = collision_figures('approach', frames, alerts)
    assert figures.frames == 10 and figures.alerts_received == 10
    assert figures.frames_judged == 10 and figures.unmatched_alerts == 0
    assert figures.expected_alert and figures.raised_warning and not figures.missed
    assert figures.first_warning_stamp_s == pytest.approx(0.3)
    assert figures.detection_delay_s == pytest.approx(0.1)     # due at 0.2, raised at 0.3
    assert figures.lead_time_s == pytest.approx(2.7)           # true TTI at 0.3 s
    assert figures.false_alert_frames == 0 and figures.false_alert_rate == 0.0
    assert len(figures.tti_rel_errors) == 7                    # the frames with a finite TTI
    assert figures.median_tti_rel_error == pytest.approx(0.1)
    assert figures.alert_latency_ms == pytest.approx([1.0 * (i + 1) for i in range(10)])


def test_warnings_without_ground_truth_alert_are_false_alerts():
    frames = [Frame(0.1 * i, math.inf, False) for i in range(10)]
    alerts = [alert(f.stamp_s, WARNING if i in (4, 5) else CAUTION) for i, f in enumerate(frames)]
    figures = collision_figures('cross', frames, alerts)
    assert not figures.expected_alert and figures.raised_warning and not figures.missed
    assert figures.false_alert_frames == 2 and figures.false_alert_rate == pytest.approx(0.2)
    assert math.isnan(figures.detection_delay_s)
    assert figures.tti_rel_errors == []                        # true TTI infinite: not judged
    assert math.isnan(figures.median_tti_rel_error)


def test_no_warning_when_one_is_due_is_a_miss():
    frames = approach_frames()
    figures = collision_figures('approach', frames,
                                [alert(f.stamp_s, CAUTION, f.true_tti_s) for f in frames])
    assert figures.missed and not figures.raised_warning
    assert math.isnan(figures.lead_time_s) and figures.first_warning_stamp_s is None
    assert figures.median_tti_rel_error == pytest.approx(0.0)


def test_alerts_whose_stamps_match_no_frame_are_counted_not_dropped():
    frames = approach_frames()
    alerts = [alert(f.stamp_s, NONE) for f in frames[:5]]
    alerts += [alert(0.35, CRITICAL, 1.0),       # between two frames (tolerance 1 ms)
               alert(0.1 + 0.002, WARNING),      # 2 ms off its frame
               alert(57.0, NONE),                # far outside the scenario
               alert(math.nan, NONE)]            # no usable stamp at all
    figures = collision_figures('approach', frames, alerts)
    assert figures.alerts_received == 9
    assert figures.frames_judged == 5
    assert figures.unmatched_alerts == 4
    assert figures.unmatched_stamps_s[:3] == pytest.approx([0.35, 0.102, 57.0])
    assert math.isnan(figures.unmatched_stamps_s[3])
    # An unmatched CRITICAL is not a raised warning: the stamp says it answers no frame.
    assert not figures.raised_warning and figures.missed
    assert figures.summary()['unmatched_alerts'] == 4
    # Within the tolerance an alert is matched to its frame.
    loose = collision_figures('approach', frames, alerts[5:7], stamp_tolerance_s=0.003)
    assert loose.unmatched_alerts == 1 and loose.frames_judged == 1


def test_with_no_frames_every_alert_is_unmatched():
    figures = collision_figures('empty', [], [alert(0.0, NONE), alert(0.1, WARNING)])
    assert figures.unmatched_alerts == 2 and figures.frames_judged == 0
    assert math.isnan(figures.false_alert_rate)


def test_sensor_lost_alerts_are_counted_but_not_judged():
    frames = approach_frames()
    alerts = [alert(f.stamp_s, SENSOR_LOST) for f in frames[:3]]
    alerts += [alert(f.stamp_s, WARNING, f.true_tti_s) for f in frames[3:]]
    alerts.append(alert(99.0, SENSOR_LOST))      # a watchdog alert: stamped when it fired
    figures = collision_figures('approach', frames, alerts)
    assert figures.sensor_lost_alerts == 4 and figures.unmatched_alerts == 0
    assert figures.frames_judged == 7
    assert figures.detection_delay_s == pytest.approx(0.1)


def command(level, stamp, latency_s, pattern=0):
    """Return a haptic command of level for the frame stamped stamp, received latency_s after."""
    return CommandRecord(stamp, level, pattern, 1000.0 + stamp + latency_s, 1000.0 + stamp)


def test_haptic_latency_is_taken_at_each_escalation():
    commands = [command(NONE, 0.0, 0.5), command(WARNING, 0.1, 0.020),
                command(WARNING, 0.2, 0.5),          # refresh: no escalation
                command(CRITICAL, 0.3, 0.030),
                command(SENSOR_LOST, 0.4, 0.5),      # not a level: skipped
                command(CRITICAL, 0.5, 0.5),         # back to CRITICAL: not an escalation
                command(CAUTION, 0.6, 0.5),          # de-escalation
                command(WARNING, 0.7, 0.040)]        # escalation again
    figures = collision_figures('approach', approach_frames(), [], commands)
    assert figures.haptic_latency_ms == pytest.approx([20.0, 30.0, 40.0])
    summary = figures.summary()
    assert summary['haptic_samples'] == 3
    assert summary['haptic_latency_ms_p50'] == pytest.approx(30.0)
    assert math.isnan(summary['alert_latency_ms_p50'])
