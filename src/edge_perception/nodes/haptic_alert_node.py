"""Haptic-alert node: CollisionAlert in, HapticCommand out (topic, serial device, optional sound).

A safety alert is never dropped silently: when alerts stop arriving, the node itself switches to
the SENSOR_LOST pattern; when the serial device stops answering its heartbeat, diagnostics go to
ERROR and the node keeps reopening the port.
"""
import math
import time

from edge_perception.core.haptics import HapticConfig, HapticPatternMapper, HapticRateLimiter
from edge_perception.drivers.haptic_serial import HapticSerialLink
from edge_perception.msg import CollisionAlert, HapticCommand
from edge_perception.nodes.common import (ALERT_QOS, copy_header, declare_parameters, Diagnostics,
                                          InputMonitor, Param, with_live)
from edge_perception.nodes.spinning import run_node
import rclpy  # noqa: F401  (entry point below)
from rclpy.node import Node
from rclpy.parameter import Parameter

PARAMS = [
    Param('alert_topic', 'collision_alert', 'CollisionAlert input'),
    Param('command_topic', 'haptic_command', 'HapticCommand output (reliable QoS)'),
    Param('alert_timeout_s', 0.5,
          'No CollisionAlert for this long -> SENSOR_LOST pattern (upstream silent), s',
          0.01, 60.0),
    Param('update_period_s', 0.05, 'Period of the refresh/heartbeat/watchdog loop, s',
          0.005, 1.0),
    Param('serial_port', '', "Serial device of the haptic controller ('' = none), "
          'e.g. /dev/ttyACM0'),
    Param('baudrate', 115200, 'Serial baud rate', 1200, 4000000),
    Param('heartbeat_period_s', 0.5, 'Heartbeat ($PING) period to the device, s', 0.05, 10.0),
    Param('device_timeout_s', 1.5, 'Device silent this long -> reported dead, s', 0.1, 60.0),
    Param('sound_enabled', False, 'Also play the pattern as sound when a player exists'),
    Param('caution_intensity', 0.35, 'CAUTION motor drive, 0..1', 0.0, 1.0),
    Param('caution_pulse_hz', 1.0, 'CAUTION pulses per second', 0.0, 50.0),
    Param('warning_intensity', 0.7, 'WARNING motor drive, 0..1', 0.0, 1.0),
    Param('warning_pulse_hz', 4.0, 'WARNING pulses per second', 0.0, 50.0),
    Param('critical_intensity', 1.0, 'CRITICAL motor drive, 0..1', 0.0, 1.0),
    Param('critical_pulse_hz', 0.0, 'CRITICAL pulses per second (0 = continuous)', 0.0, 50.0),
    Param('sensor_lost_intensity', 0.5, 'SENSOR_LOST motor drive, 0..1', 0.0, 1.0),
    Param('sensor_lost_pulse_hz', 0.5, 'SENSOR_LOST rhythm rate', 0.0, 50.0),
    Param('motor_count', 1, 'Motors on the device, evenly spaced around the handle', 1, 8),
    Param('motor_bearings_rad', Parameter.Type.DOUBLE_ARRAY,
          'Bearing each motor points to (0 ahead, + left), rad; overrides even spacing, '
          'e.g. [0.6, 0.0, -0.6] for a front-left/front/front-right cane handle'),
    Param('direction_change_rad', 0.2,
          'A bearing change smaller than this (same motors) is not a new command, rad',
          0.0, math.pi),
    Param('direction_spread_rad', 0.8, 'Motors within this of the bearing vibrate, rad',
          0.0, math.pi),
    Param('command_duration_s', 1.0,
          'Device keeps a pattern this long without refresh, then shows SENSOR_LOST, s',
          0.05, 60.0),
    Param('min_interval_s', 0.05, 'Rate limit for non-escalating changes, s', 0.0, 10.0),
    Param('refresh_interval_s', 0.3, 'Keep-alive re-send of an unchanged command, s',
          0.01, 60.0),
]
# Applied at run time: the patterns, directions, timing and the upstream watchdog. Topics, the
# serial link, sound and the update loop period are wiring: read-only.
PARAMS = with_live(PARAMS, [
    p.name for p in PARAMS if p.name not in (
        'alert_topic', 'command_topic', 'update_period_s', 'serial_port', 'baudrate',
        'heartbeat_period_s', 'device_timeout_s', 'sound_enabled')])


class HapticAlertNode(Node):
    """Renders collision alerts as haptic commands, rate-limited, with watchdogs both ways."""

    def __init__(self, **kwargs):
        super().__init__('haptic_alert', **kwargs)
        p = self.params = declare_parameters(self, PARAMS, self.on_parameters_changed,
                                             self._haptic_config)
        self.config = self._haptic_config(p)
        self.mapper = HapticPatternMapper(self.config)
        self.limiter = HapticRateLimiter(self.config)
        self.command_pub = self.create_publisher(HapticCommand, p['command_topic'], ALERT_QOS)
        self.alerts = InputMonitor('collision_alert', p['alert_timeout_s'])
        self.create_subscription(CollisionAlert, p['alert_topic'], self.on_alert, ALERT_QOS)

        self.link = None
        if p['serial_port']:
            self.link = HapticSerialLink(p['serial_port'], p['baudrate'],
                                         p['heartbeat_period_s'], p['device_timeout_s'])
            try:
                self.link.open()
            except Exception as error:  # keep running: poll() keeps retrying the port
                self.get_logger().error(f'haptic device {p["serial_port"]}: {error}')
        self.sound = None
        if p['sound_enabled']:
            from edge_perception.drivers.sound import SoundOutput
            self.sound = SoundOutput()
            if not self.sound.available:
                self.get_logger().warning(f'sound disabled: {self.sound.reason}')

        self._last_alert = None          # latest CollisionAlert
        self._last_alert_rx = None       # monotonic receive time
        self._last_output = None
        self._upstream_lost_logged = False
        self.diagnostics = Diagnostics(self, [self.alerts], extra=[self._device_status])
        self.create_timer(p['update_period_s'], self.on_update)
        self.get_logger().info(
            f'haptic_alert: {self.alerts.name} -> {self.command_pub.topic_name}'
            + (f' and serial {p["serial_port"]}' if self.link else ''))

    def on_parameters_changed(self, names):
        """Apply a run-time parameter set: new patterns and timing from the next command on."""
        self.config = self._haptic_config(self.params)
        self.mapper = HapticPatternMapper(self.config)   # it keeps a snapshot of its config
        self.limiter.config = self.config
        self.alerts.stale_after_s = self.params['alert_timeout_s']

    @staticmethod
    def _haptic_config(p):
        """Return the validated HapticConfig (e.g. refresh_interval_s < command_duration_s)."""
        config = HapticConfig(
            caution_intensity=p['caution_intensity'], caution_pulse_hz=p['caution_pulse_hz'],
            warning_intensity=p['warning_intensity'], warning_pulse_hz=p['warning_pulse_hz'],
            critical_intensity=p['critical_intensity'], critical_pulse_hz=p['critical_pulse_hz'],
            sensor_lost_intensity=p['sensor_lost_intensity'],
            sensor_lost_pulse_hz=p['sensor_lost_pulse_hz'], motor_count=p['motor_count'],
            motor_bearings_rad=tuple(p['motor_bearings_rad'] or ()),
            direction_change_rad=p['direction_change_rad'],
            direction_spread_rad=p['direction_spread_rad'],
            command_duration_s=p['command_duration_s'], min_interval_s=p['min_interval_s'],
            refresh_interval_s=p['refresh_interval_s'])
        config.validate()
        return config

    def on_alert(self, msg):
        """Render one alert at once (escalations are never delayed)."""
        started = time.perf_counter()
        self.alerts.arrived()
        msg = self._checked(msg)
        self._last_alert = msg
        self._last_alert_rx = time.monotonic()
        self._upstream_lost_logged = False
        self._render(msg.level, msg.bearing_rad, msg.header, time.monotonic())
        self.diagnostics.latency.add((time.perf_counter() - started) * 1e3)

    def _checked(self, msg):
        """Return the alert, a malformed one (unknown level) rendered as SENSOR_LOST and reported.

        SENSOR_LOST is the device's "I cannot tell you" pattern; an infinite bearing means
        'direction unknown'.
        """
        error = ''
        if msg.level > CollisionAlert.LEVEL_SENSOR_LOST:
            error = f'unknown alert level {msg.level}: rendered as SENSOR_LOST'
            msg.level = CollisionAlert.LEVEL_SENSOR_LOST
        if not math.isfinite(msg.bearing_rad):
            msg.bearing_rad = math.nan
        if error:
            self.alerts.reject(error)
            self.get_logger().error(error, throttle_duration_sec=5.0)
        else:
            self.alerts.accepted()
        return msg

    def on_update(self):
        """Watch upstream silence, re-send keep-alives, service the serial link."""
        now = time.monotonic()
        silent = (self._last_alert_rx is None
                  or now - self._last_alert_rx > self.params['alert_timeout_s'])
        if silent:
            if not self._upstream_lost_logged:
                self.get_logger().warning(
                    'no collision alerts for %.2f s: SENSOR_LOST pattern'
                    % (math.inf if self._last_alert_rx is None else now - self._last_alert_rx))
                self._upstream_lost_logged = True
            header = copy_header(self._last_alert.header) if self._last_alert else None
            if header is None:
                from std_msgs.msg import Header
                header = Header()
            header.stamp = self.get_clock().now().to_msg()
            self._render(CollisionAlert.LEVEL_SENSOR_LOST, math.nan, header, now)
        elif self._last_alert is not None:
            self._render(self._last_alert.level, self._last_alert.bearing_rad,
                         self._last_alert.header, now)
        if self.link is not None:
            self.link.poll(now)

    def _render(self, level, bearing_rad, header, now):
        output = self.mapper.command_for(int(level), float(bearing_rad))
        if not self.limiter.should_send(output, now):
            return
        msg = HapticCommand()
        msg.header = copy_header(header)
        msg.pattern = output.pattern
        msg.level = output.level
        msg.intensity = float(output.intensity)
        msg.pulse_hz = float(output.pulse_hz)
        msg.duration_s = float(output.duration_s)
        msg.direction_rad = float(output.direction_rad)
        msg.motor_mask = int(output.motor_mask)
        self.command_pub.publish(msg)
        if self.link is not None:
            try:
                self.link.send(output, now)
            except Exception as error:  # device unplugged: reported, retried by poll()
                self.get_logger().error(f'haptic device: {error}', throttle_duration_sec=2.0)
        if self.sound is not None and self.sound.available and (
                self._last_output is None or output.pattern != self._last_output.pattern):
            self.sound.play_pattern(output)
        self._last_output = output

    def _device_status(self):
        from diagnostic_msgs.msg import DiagnosticStatus
        values = {}
        if self._last_output is not None:
            values['pattern'] = str(self._last_output.pattern)
        if self.link is None:
            return DiagnosticStatus.OK, '', dict(values, device='none (topic only)')
        values.update({f'device.{k}': str(v) for k, v in self.link.stats.items()})
        values['device.alive'] = str(self.link.device_alive)
        if not self.link.device_alive:
            reason = self.link.last_error or 'no reply to heartbeat'
            return DiagnosticStatus.ERROR, f'haptic device not answering: {reason}', values
        return DiagnosticStatus.OK, '', values


def main(args=None):
    """Entry point: `haptic_alert_node`."""
    run_node(HapticAlertNode, args)


if __name__ == '__main__':
    main()
