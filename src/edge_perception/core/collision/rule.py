"""The alert rule of the ImpactAlert app and the time-to-impact formula, shared by every mode.

No rclpy here (as everywhere in core/).
"""
import math


class CollisionInputError(ValueError):
    """Input the time-to-impact estimators cannot use (wrong shape, type or stamp order)."""


def should_alert(speed_mps, tti_s, speed_threshold_mps=-2.2, tti_threshold_s=3.0):
    """Return True when speed < speed threshold and TTI < TTI threshold (both strict).

    Speed is the signed range rate (negative = approaching). NaN in any argument gives False.
    """
    speed = float(speed_mps)
    tti = float(tti_s)
    return bool(speed < float(speed_threshold_mps) and tti < float(tti_threshold_s))


def time_to_impact(distance_m, speed_mps):
    """Return distance / -speed when approaching (speed < 0), else math.inf (NaN stays NaN)."""
    distance = float(distance_m)
    speed = float(speed_mps)
    if math.isnan(distance) or math.isnan(speed):
        return math.nan
    if speed < 0.0:
        return distance / -speed
    return math.inf
