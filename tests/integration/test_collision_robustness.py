"""Bad input, stale sensors, a silent device: the chain says what is wrong, stays up, recovers.

Real nodes over DDS; the haptic device is a microcontroller simulator on a real pseudo-terminal
(os.openpty()).
"""
import math
import pathlib
import time

from diagnostic_msgs.msg import DiagnosticArray
from edge_perception.conversions import numpy_to_image, stamp_to_seconds
from edge_perception.harness.replay import Probe, wait_until
from edge_perception.harness.runner import NodeGraph
from edge_perception.harness.scenarios import PinholeCamera, render_depth
from edge_perception.msg import CollisionAlert, HapticCommand
from edge_perception.nodes.common import ALERT_QOS
import numpy as np
from pty_device import Pty
import pytest
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image

CONFIG = pathlib.Path(__file__).resolve().parents[2] / 'config' / 'collision.yaml'
SENSOR_TIMEOUT_S = 0.5      # config/collision.yaml
WATCHDOG_PERIOD_S = 0.1
LOST = CollisionAlert.LEVEL_SENSOR_LOST
CAMERA = PinholeCamera(width=160, height=120, fx=131.25, fy=131.25, cx=79.5, cy=59.5)
WALL = render_depth([], CAMERA, background_m=3.0)


class FakeCamera(Node):
    """Publishes depth images stamped now, at a given rate, like a live driver."""

    def __init__(self, context, namespace):
        super().__init__('fake_camera', context=context, namespace=namespace)
        self.pub = self.create_publisher(Image, 'depth/image_raw', QoSProfile(depth=5))
        self.last_publish_wall = None

    def stream(self, make_msg, seconds, rate_hz=30.0):
        """Publish make_msg() every 1/rate_hz for `seconds` (paced like a sensor)."""
        start = time.monotonic()
        count = 0
        while time.monotonic() - start < seconds:
            msg = make_msg()
            msg.header.stamp = self.get_clock().now().to_msg()
            msg.header.frame_id = 'camera_depth_optical_frame'
            self.pub.publish(msg)
            self.last_publish_wall = time.time()
            count += 1
            next_due = start + count / rate_hz
            time.sleep(max(0.0, next_due - time.monotonic()))


def depth_msg(depth_m=WALL, encoding='32FC1'):
    return lambda: numpy_to_image(depth_m, encoding)


@pytest.fixture
def rig(tmp_path):
    pty = Pty()
    params = tmp_path / 'device.yaml'
    params.write_text(f"/**/haptic_alert:\n  ros__parameters:\n    serial_port: '{pty.path}'\n")
    graph = NodeGraph(['time_to_impact', 'haptic_alert'], [CONFIG, params],
                      namespace='robust').spin_in_background()
    probe = graph.add_node(Probe(graph.context, {
        'collision_alert': (CollisionAlert, ALERT_QOS),
        'haptic_command': (HapticCommand, ALERT_QOS),
        '/diagnostics': (DiagnosticArray, QoSProfile(depth=50))}, namespace='robust'))
    camera = graph.add_node(FakeCamera(graph.context, 'robust'))
    assert wait_until(lambda: camera.pub.get_subscription_count() > 0, 15.0)
    yield graph, probe, camera, pty
    graph.shutdown()
    pty.device.stop()


def alerts_after(probe, wall_s):
    return [(m, rx) for m, rx in probe.snapshot('collision_alert') if rx >= wall_s]


def diagnostic(probe, node_name, since_wall):
    """Latest DiagnosticStatus of node_name received after since_wall, or None."""
    latest = None
    for array, rx in probe.snapshot('/diagnostics'):
        if rx < since_wall:
            continue
        for status in array.status:
            if status.name.endswith('/' + node_name):
                latest = status
    return latest


def level_of(status):
    return status.level[0] if isinstance(status.level, bytes) else status.level


def test_sensor_dropout_raises_sensor_lost_then_recovers(rig):
    graph, probe, camera, pty = rig
    camera.stream(depth_msg(), 1.0)
    assert probe.wait_for(lambda r: any(m.level == CollisionAlert.LEVEL_NONE
                                        for m, _ in r['collision_alert']), 3.0)
    stopped = camera.last_publish_wall
    # Silence: SENSOR_LOST within the timeout plus two watchdog periods.
    assert probe.wait_for(lambda r: any(m.level == LOST and rx > stopped
                                        for m, rx in r['collision_alert']), 3.0)
    first_lost = min(rx for m, rx in alerts_after(probe, stopped) if m.level == LOST)
    assert first_lost - stopped <= SENSOR_TIMEOUT_S + 2 * WATCHDOG_PERIOD_S + 0.05
    lost_msg = next(m for m, rx in alerts_after(probe, stopped) if m.level == LOST)
    assert 'no valid depth' in lost_msg.reason
    assert lost_msg.header.frame_id == 'camera_depth_optical_frame'
    # ... the haptic device is told, on the topic and over the serial line.
    assert probe.wait_for(lambda r: any(
        m.pattern == HapticCommand.PATTERN_SENSOR_LOST for m, rx in r['haptic_command']
        if rx > stopped), 2.0)
    assert wait_until(lambda: any(f[1] == '4' for f in pty.device.received('HAP')), 2.0)
    # Sensor back: normal state again (NONE for a static wall) on the alert and haptic topics.
    resumed = time.time()
    camera.stream(depth_msg(), 1.0)
    back = [m for m, rx in alerts_after(probe, resumed) if m.level == CollisionAlert.LEVEL_NONE]
    assert back, 'no recovery after the sensor came back'
    assert probe.wait_for(lambda r: any(
        m.pattern == HapticCommand.PATTERN_OFF for m, rx in r['haptic_command']
        if rx > resumed), 2.0)


@pytest.mark.parametrize('bad_encoding,array', [
    ('rgb8', np.zeros((120, 160, 3), np.uint8)),
    ('mono8', np.zeros((120, 160), np.uint8)),
])
def test_wrong_encoding_is_reported_and_node_recovers(rig, bad_encoding, array):
    graph, probe, camera, _ = rig
    started = time.time()
    camera.stream(lambda: numpy_to_image(array, bad_encoding), 1.0)
    # The node is up, reports the error in diagnostics and falls to SENSOR_LOST with the reason.
    assert probe.wait_for(lambda r: (diagnostic(probe, 'time_to_impact', started) is not None
                                     and level_of(diagnostic(probe, 'time_to_impact',
                                                             started)) == 2), 3.0)
    status = diagnostic(probe, 'time_to_impact', started)
    assert 'not a depth encoding' in status.message and bad_encoding in status.message
    lost = [m for m, _ in alerts_after(probe, started) if m.level == LOST]
    assert lost and 'not a depth encoding' in lost[-1].reason
    # Good input again: estimates resume and diagnostics clear.
    resumed = time.time()
    camera.stream(depth_msg(), 1.5)
    assert any(m.level == CollisionAlert.LEVEL_NONE for m, _ in alerts_after(probe, resumed))
    assert probe.wait_for(lambda r: level_of(diagnostic(probe, 'time_to_impact',
                                                        time.time() - 1.5) or b'\x02') == 0,
                          3.0)


def test_all_nan_and_zero_depth_is_not_averaged_but_reported(rig):
    graph, probe, camera, _ = rig
    holes = np.full((120, 160), np.nan, np.float32)
    holes[:, :40] = 0.0
    started = time.time()
    camera.stream(depth_msg(holes), 1.2)
    alerts = [m for m, _ in alerts_after(probe, started)]
    assert alerts and all(m.level in (CollisionAlert.LEVEL_NONE, LOST) for m in alerts)
    assert not any(m.alert for m in alerts)
    assert any(m.level == LOST and 'invalid depth' in m.reason for m in alerts)
    # 16UC1 zeros (no return) behave the same.
    started = time.time()
    camera.stream(depth_msg(np.zeros((120, 160), np.uint16), '16UC1'), 1.0)
    assert any(m.level == LOST and 'invalid depth' in m.reason
               for m, _ in alerts_after(probe, started))


def test_silent_device_is_reported_and_recovers(rig):
    graph, probe, camera, pty = rig
    started = time.time()
    camera.stream(depth_msg(), 0.5)
    assert wait_until(lambda: pty.device.received('ACK') or pty.device.received('HAP'), 3.0)
    pty.device.mode = 'silent'
    silent_since = time.time()
    assert probe.wait_for(lambda r: (lambda s: s is not None and level_of(s) == 2)(
        diagnostic(probe, 'haptic_alert', silent_since + 1.0)), 6.0)
    status = diagnostic(probe, 'haptic_alert', silent_since + 1.0)
    assert 'haptic device not answering' in status.message
    pty.device.mode = 'answer'
    answered = time.time()
    assert probe.wait_for(lambda r: (lambda s: s is not None and level_of(s) == 0)(
        diagnostic(probe, 'haptic_alert', answered + 0.5)), 6.0)
    assert started < answered


def test_haptic_node_alone_says_sensor_lost_when_alerts_stop():
    graph = NodeGraph(['haptic_alert'], [CONFIG], namespace='alone').spin_in_background()
    try:
        probe = graph.add_node(Probe(graph.context, {
            'haptic_command': (HapticCommand, ALERT_QOS)}, namespace='alone'))
        assert probe.wait_for(lambda r: any(
            m.pattern == HapticCommand.PATTERN_SENSOR_LOST for m, _ in r['haptic_command']),
            5.0)
        command = next(m for m, _ in probe.snapshot('haptic_command'))
        assert command.level == LOST and command.intensity > 0 and command.motor_mask == 0xFF
        assert math.isfinite(stamp_to_seconds(command.header.stamp))
    finally:
        graph.shutdown()


@pytest.mark.parametrize('name,value,match', [
    ('sensor_timeout_s', -1.0, 'sensor_timeout_s'),
    ('source', 'sonar', 'source'),
    ('confirm_frames', 0, 'confirm_frames'),
])
def test_out_of_range_parameters_are_refused_with_their_name(tmp_path, name, value, match):
    params = tmp_path / 'bad.yaml'
    params.write_text(f'/**/time_to_impact:\n  ros__parameters:\n    {name}: {value!r}\n'
                      .replace("'", ''))
    with pytest.raises(Exception, match=match):
        graph = NodeGraph(['time_to_impact'], [params], namespace='bad')
        graph.shutdown()


def test_parameter_changes_at_run_time_are_checked(rig):
    graph, _, _, _ = rig
    node = graph.nodes['time_to_impact']
    result = node.set_parameters([Parameter('source', value='sonar')])[0]
    assert not result.successful and 'source' in result.reason
    result = node.set_parameters([Parameter('min_motion_m', value=-3.0)])[0]
    assert not result.successful
