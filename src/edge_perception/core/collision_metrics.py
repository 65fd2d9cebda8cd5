"""Figures of a collision-alert run against scenario ground truth (nav2 bag-test style).

Pure functions over plain records, so the integration tests, the demo and the benchmarks compute
the same figures the same way.
"""
from dataclasses import dataclass, field
import math
from typing import List, Optional, Sequence

import numpy as np

WARNING = 2          # CollisionAlert.LEVEL_WARNING
SENSOR_LOST = 4      # CollisionAlert.LEVEL_SENSOR_LOST


@dataclass
class AlertRecord:
    """One received CollisionAlert, with its stamp mapped back to scenario time."""

    scenario_stamp_s: float
    level: int
    tti_s: float
    received_wall_s: float
    stamp_wall_s: float        # header stamp as published (wall clock in restamp mode)


@dataclass
class CommandRecord:
    """One received HapticCommand."""

    scenario_stamp_s: float
    level: int
    pattern: int
    received_wall_s: float
    stamp_wall_s: float


@dataclass
class CollisionFigures:
    """What a scenario run measured."""

    scenario: str
    frames: int
    alerts_received: int
    expected_alert: bool
    raised_warning: bool
    missed: bool                     # an alert was expected and no WARNING+ came
    false_alert_frames: int          # WARNING+ frames where ground truth says no alert anywhere
    frames_judged: int               # frames not SENSOR_LOST, matched to ground truth
    false_alert_rate: float
    lead_time_s: float               # true TTI at the first WARNING+ (time left to react)
    detection_delay_s: float         # first WARNING+ minus first frame where ground truth alerts
    tti_rel_errors: List[float] = field(default_factory=list)
    median_tti_rel_error: float = math.nan
    alert_latency_ms: List[float] = field(default_factory=list)    # sensor stamp -> alert rx
    haptic_latency_ms: List[float] = field(default_factory=list)   # sensor stamp -> command rx
    first_warning_stamp_s: Optional[float] = None
    sensor_lost_alerts: int = 0      # SENSOR_LOST alerts (not judged against ground truth)
    # Alerts whose stamp matches no scenario frame (a corrupted or invented header stamp):
    # counted and listed, never judged, so a test can assert there are none.
    unmatched_alerts: int = 0
    unmatched_stamps_s: List[float] = field(default_factory=list)

    def summary(self) -> dict:
        """Return a JSON-friendly dict with percentiles instead of raw lists."""
        def pct(values, q):
            return float(np.percentile(values, q)) if values else math.nan
        return {
            'scenario': self.scenario, 'frames': self.frames,
            'alerts_received': self.alerts_received, 'expected_alert': self.expected_alert,
            'raised_warning': self.raised_warning, 'missed': self.missed,
            'false_alert_frames': self.false_alert_frames,
            'false_alert_rate': self.false_alert_rate, 'lead_time_s': self.lead_time_s,
            'detection_delay_s': self.detection_delay_s,
            'median_tti_rel_error': self.median_tti_rel_error,
            'tti_samples': len(self.tti_rel_errors),
            'alert_latency_ms_p50': pct(self.alert_latency_ms, 50),
            'alert_latency_ms_p99': pct(self.alert_latency_ms, 99),
            'haptic_latency_ms_p50': pct(self.haptic_latency_ms, 50),
            'haptic_latency_ms_p99': pct(self.haptic_latency_ms, 99),
            'haptic_samples': len(self.haptic_latency_ms),
            'sensor_lost_alerts': self.sensor_lost_alerts,
            'unmatched_alerts': self.unmatched_alerts,
        }


def collision_figures(name, frames, alerts: Sequence[AlertRecord],
                      commands: Sequence[CommandRecord] = (), tti_window_s=5.0,
                      stamp_tolerance_s=1e-3) -> CollisionFigures:
    """Compare received alerts with the scenario's per-frame ground truth.

    frames: ScenarioFrame-like objects (stamp_s, true_tti_s, expect_alert). Alerts are matched to
    frames by stamp (the node copies the sensor header). TTI error is judged where the truth is
    below tti_window_s (where it matters) and both are finite. SENSOR_LOST alerts are counted,
    not judged; an alert of any other level whose stamp is further than stamp_tolerance_s from
    every frame is counted in unmatched_alerts (with its stamp), never silently dropped.
    """
    stamps = np.array([f.stamp_s for f in frames])
    expected_any = any(f.expect_alert for f in frames)
    first_expected = next((f.stamp_s for f in frames if f.expect_alert), None)
    judged = false_frames = 0
    errors, latencies = [], []
    first_warning = None
    sensor_lost = 0
    unmatched = []
    for alert in alerts:
        if alert.level == SENSOR_LOST:
            sensor_lost += 1
            continue
        index = (int(np.argmin(np.abs(stamps - alert.scenario_stamp_s))) if len(stamps)
                 else None)
        if (index is None or not math.isfinite(alert.scenario_stamp_s)
                or abs(stamps[index] - alert.scenario_stamp_s) > stamp_tolerance_s):
            unmatched.append(alert.scenario_stamp_s)
            continue
        frame = frames[index]
        judged += 1
        latencies.append((alert.received_wall_s - alert.stamp_wall_s) * 1e3)
        if alert.level >= WARNING:
            if first_warning is None:
                first_warning = frame
            if not expected_any:
                false_frames += 1
        if (math.isfinite(frame.true_tti_s) and frame.true_tti_s < tti_window_s
                and math.isfinite(alert.tti_s)):
            errors.append(abs(alert.tti_s - frame.true_tti_s) / frame.true_tti_s)
    # Haptic latency: the first command rendering each escalation, sensor stamp -> receipt.
    haptic = []
    last_level = 0
    for command in commands:
        if command.level != SENSOR_LOST and command.level > last_level:
            haptic.append((command.received_wall_s - command.stamp_wall_s) * 1e3)
        if command.level != SENSOR_LOST:
            last_level = command.level
    raised = first_warning is not None
    return CollisionFigures(
        scenario=name, frames=len(frames), alerts_received=len(alerts),
        expected_alert=expected_any, raised_warning=raised, missed=expected_any and not raised,
        false_alert_frames=false_frames, frames_judged=judged,
        false_alert_rate=false_frames / judged if judged else math.nan,
        lead_time_s=first_warning.true_tti_s if raised else math.nan,
        detection_delay_s=(first_warning.stamp_s - first_expected
                           if raised and first_expected is not None else math.nan),
        tti_rel_errors=errors,
        median_tti_rel_error=float(np.median(errors)) if errors else math.nan,
        alert_latency_ms=latencies, haptic_latency_ms=haptic,
        first_warning_stamp_s=first_warning.stamp_s if raised else None,
        sensor_lost_alerts=sensor_lost, unmatched_alerts=len(unmatched),
        unmatched_stamps_s=unmatched)
