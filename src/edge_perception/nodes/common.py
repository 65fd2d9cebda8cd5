"""Plumbing shared by every node: QoS profiles, declared parameters, diagnostics, freshest frame.

Conventions (see README "Node conventions"):
- sensor inputs: SENSOR_QOS (best effort, keep last 1): slow processing never builds a queue;
  except time_to_impact's scene inputs, SENSOR_QOS_QUEUED (keep last 5, ROS's sensor-data
  depth): its step takes ~2 ms, so frames that arrive in a burst after a stall are all worked
  off within milliseconds and each feeds the estimator's history instead of being replaced;
- alerts and commands: ALERT_QOS (reliable, keep last 10);
- every output copies the input header (stamp and frame_id);
- every tunable is a parameter with a description and, for numbers, a range; rclpy rejects an
  out-of-range value, from YAML at start-up too, with an error naming the parameter;
- a parameter either takes effect when set at run time (`live=True`: the node re-reads it in
  its `on_parameters_changed`) or is declared read-only, so that `ros2 param set` is refused
  with the reason instead of succeeding while nothing changes;
- each node publishes diagnostic_msgs/DiagnosticArray on /diagnostics once a second.
"""
from dataclasses import dataclass, replace
import threading
import time
from typing import Any, Callable, Optional, Sequence

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

SENSOR_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=1,
    reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE)
# A queue of at most 5 frames: only for nodes whose step is far shorter than a frame period.
SENSOR_QOS_QUEUED = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=5,
    reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE)
ALERT_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=10,
    reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
# Detections/tracks between our own nodes: reliable so a tracker sees every frame's detections.
DATA_QOS = ALERT_QOS
# Latched (transient local, keep last 1): a late subscriber still gets the last message, e.g.
# vision_msgs/LabelInfo, as rclcpp's and vision_msgs' conventions expect.
LATCHED_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=1,
    reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


@dataclass(frozen=True)
class Param:
    """A declared parameter: name, default, description and constraints."""

    name: str
    default: Any
    description: str
    min_value: Optional[float] = None
    max_value: Optional[float] = None
    choices: Optional[Sequence[str]] = None
    # True: the node applies a new value at run time. False: read-only (set at start-up, from
    # the params file or launch; a run-time set is refused with the reason).
    live: bool = False

    def descriptor(self):
        """Return the ParameterDescriptor rclpy enforces (ranges for numbers).

        A default that is an rclpy `Parameter.Type` declares a typed parameter without a value
        (e.g. an optional double array); its value reads as None until set.
        """
        text = self.description
        if self.choices:
            text += f" (one of: {', '.join(self.choices)})"
        desc = ParameterDescriptor(description=text, read_only=not self.live)
        if self.min_value is not None or self.max_value is not None:
            if isinstance(self.default, bool):
                pass
            elif isinstance(self.default, int):
                desc.integer_range = [IntegerRange(
                    from_value=int(self.min_value if self.min_value is not None else -2**63),
                    to_value=int(self.max_value if self.max_value is not None else 2**63 - 1),
                    step=0)]
            elif isinstance(self.default, float):
                desc.floating_point_range = [FloatingPointRange(
                    from_value=float(self.min_value if self.min_value is not None else -1e308),
                    to_value=float(self.max_value if self.max_value is not None else 1e308),
                    step=0.0)]
        return desc

    def check(self, value):
        """Return an error string for a value this parameter must refuse, else ''."""
        if self.choices and value not in self.choices:
            return f'{self.name}={value!r} is not one of {list(self.choices)}'
        return ''


def with_live(params: Sequence[Param], live_names) -> list:
    """Return params with `live=True` on the named ones (each name must be declared)."""
    names = set(live_names)
    unknown = names - {p.name for p in params}
    if unknown:
        raise ValueError(f'live parameters that are not declared: {sorted(unknown)}')
    return [replace(p, live=p.name in names) for p in params]


def declare_parameters(node: Node, params: Sequence[Param],
                       on_change: Optional[Callable[[set], None]] = None,
                       check: Optional[Callable[[dict], Any]] = None) -> dict:
    """Declare params on node (checked, YAML overrides included) and return {name: value}.

    The set-parameters callback is added before declaring, as in ros2/demos, so values from a
    params file are checked at start-up as well as at run time. The returned dict is kept
    current: after a successful run-time set of live parameters it holds the new values and
    `on_change(names)` is called (a post-set callback, as ros2/demos
    set_parameters_callback.py), so the node can rebuild what it derived from them.
    `check(values)`, when given, sees the values a run-time set would leave and raises
    ValueError to refuse it (the message is the reason): for rules across parameters, usually
    the node's own config builder.
    """
    by_name = {p.name: p for p in params}

    def on_set(changes):
        for change in changes:
            spec = by_name.get(change.name)
            error = spec.check(change.value) if spec else ''
            if error:
                return SetParametersResult(successful=False, reason=error)
        if check is not None and ready:
            candidate = dict(values)
            candidate.update({c.name: c.value for c in changes if c.name in by_name})
            try:
                check(candidate)
            except ValueError as error:
                return SetParametersResult(successful=False, reason=str(error))
        return SetParametersResult(successful=True)

    ready = False    # cross-parameter checks start once every parameter is declared
    node.add_on_set_parameters_callback(on_set)
    values = {}
    for spec in params:
        value = node.declare_parameter(spec.name, spec.default, spec.descriptor()).value
        error = spec.check(value)
        if error:
            raise ValueError(f'{node.get_name()}: invalid parameter: {error}')
        values[spec.name] = value

    def after_set(changes):
        changed = set()
        for change in changes:
            if change.name in values and values[change.name] != change.value:
                values[change.name] = change.value
                changed.add(change.name)
        if changed:
            node.get_logger().info('parameters set: ' + ', '.join(
                f'{name}={values[name]!r}' for name in sorted(changed)))
            if on_change is not None:
                on_change(changed)

    # Added after declaring: declaration itself must not count as a change.
    node.add_post_set_parameters_callback(after_set)
    ready = True
    return values


def copy_header(header, msg_type=None):
    """Return a copy of a std_msgs/Header (so later edits of either do not alias)."""
    if msg_type is None:
        from std_msgs.msg import Header as msg_type
    out = msg_type()
    out.stamp.sec = header.stamp.sec
    out.stamp.nanosec = header.stamp.nanosec
    out.frame_id = header.frame_id
    return out


class InputMonitor:
    """Counts one input's messages and errors; says whether it is stale. Thread-safe."""

    def __init__(self, name: str, stale_after_s: float):
        self.name = name
        self.stale_after_s = stale_after_s
        self._lock = threading.Lock()
        self._arrivals = []          # monotonic receive times within the rate window
        self._last_arrival = None
        self.received = 0
        self.rejected = 0
        self.last_error = ''

    def arrived(self):
        """Record one message received now."""
        now = time.monotonic()
        with self._lock:
            self.received += 1
            self._last_arrival = now
            self._arrivals.append(now)
            cutoff = now - 5.0
            while self._arrivals and self._arrivals[0] < cutoff:
                self._arrivals.pop(0)

    def reject(self, error: str):
        """Record a message that could not be used, and why."""
        with self._lock:
            self.rejected += 1
            self.last_error = error

    def accepted(self):
        """Clear the error: the latest message was usable."""
        with self._lock:
            self.last_error = ''

    def rate_hz(self) -> float:
        """Mean arrival rate over the last 5 s."""
        with self._lock:
            if len(self._arrivals) < 2:
                return 0.0
            span = self._arrivals[-1] - self._arrivals[0]
            return (len(self._arrivals) - 1) / span if span > 0 else 0.0

    def age_s(self) -> float:
        """Seconds since the last message (inf if none)."""
        with self._lock:
            return float('inf') if self._last_arrival is None else (
                time.monotonic() - self._last_arrival)

    def status(self):
        """(level, message, key-values) for diagnostics."""
        age = self.age_s()
        values = {
            f'{self.name}.rate_hz': f'{self.rate_hz():.2f}',
            f'{self.name}.age_s': f'{age:.3f}',
            f'{self.name}.received': str(self.received),
            f'{self.name}.rejected': str(self.rejected),
        }
        if self.last_error:
            values[f'{self.name}.last_error'] = self.last_error
            return DiagnosticStatus.ERROR, f'{self.name}: {self.last_error}', values
        if age > self.stale_after_s:
            return DiagnosticStatus.WARN, f'{self.name}: stale ({age:.1f} s)', values
        return DiagnosticStatus.OK, f'{self.name}: ok', values


class LatencyStats:
    """Processing latency of the last N frames (ms)."""

    def __init__(self, window: int = 200):
        self._window = window
        self._values = []
        self._lock = threading.Lock()

    def add(self, ms: float):
        """Record one latency in ms."""
        with self._lock:
            self._values.append(ms)
            if len(self._values) > self._window:
                self._values.pop(0)

    def summary(self) -> dict:
        """p50/p99/max of the window, as strings for diagnostics."""
        with self._lock:
            values = sorted(self._values)
        if not values:
            return {}
        pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
        return {'latency_ms.p50': f'{pick(0.5):.2f}', 'latency_ms.p99': f'{pick(0.99):.2f}',
                'latency_ms.max': f'{values[-1]:.2f}'}


def level_int(level):
    """Return a DiagnosticStatus level as an int (rclpy's level constants are bytes)."""
    return level[0] if isinstance(level, (bytes, bytearray)) else int(level)


class Diagnostics:
    """Publishes one DiagnosticStatus for a node on /diagnostics once a second.

    The status is the worst of its inputs' states and of `extra` checks (callables returning
    (level, message, {key: value}) or None).
    """

    def __init__(self, node: Node, inputs: Sequence[InputMonitor],
                 extra: Sequence[Callable[[], Optional[tuple]]] = (), period_s: float = 1.0):
        self._node = node
        self.inputs = list(inputs)
        self.extra = list(extra)
        self.latency = LatencyStats()
        self._pub = node.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._timer = node.create_timer(period_s, self.publish)

    def build_status(self) -> DiagnosticStatus:
        """Return the node's current DiagnosticStatus."""
        level = 0
        messages, values = [], {}
        for check in [m.status for m in self.inputs] + self.extra:
            result = check()
            if result is None:
                continue
            lvl, message, kv = result
            lvl = level_int(lvl)
            values.update(kv)
            if lvl > 0 and message:
                messages.append(message)
            level = max(level, lvl)
        values.update(self.latency.summary())
        status = DiagnosticStatus()
        status.level = bytes([level])
        status.name = f'{self._node.get_namespace().rstrip("/")}/{self._node.get_name()}'
        status.hardware_id = self._node.get_name()
        status.message = '; '.join(messages) if messages else 'ok'
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        return status

    def publish(self):
        """Publish the current status (timer callback)."""
        array = DiagnosticArray()
        array.header.stamp = self._node.get_clock().now().to_msg()
        array.status = [self.build_status()]
        self._pub.publish(array)
