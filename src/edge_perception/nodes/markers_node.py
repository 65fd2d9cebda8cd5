"""RViz markers node: detections, collision alerts and cracks in, a MarkerArray out.

Inputs: tracks (or untracked detections), CollisionAlert and optionally CrackSegmentation;
output: visualization_msgs/MarkerArray on `markers`.

What is drawn (namespaces in brackets; every marker copies its input's header, so RViz places it
in the sensor's frame at the sensor's time):
- per 3D detection (`position_valid` only): a sphere at `position` [detections] coloured by class
  (the tab10 palette by `class_id`), a text label above it [detection_labels] (class, track id,
  score, material), and its pick point [pick_points]: an arrow along the line of sight ending at
  `pick_point` (or a small sphere when `pick_arrow_length_m` is 0);
- per CollisionAlert of level CAUTION and above: a filled sector (TRIANGLE_LIST fan) from the
  sensor origin to `distance_m` around `bearing_rad` [collision_alert, id 0] and a text with the
  level and TTI at its tip [id 1]; colours yellow, orange, red; SENSOR_LOST is a purple text at
  the origin; NONE deletes both;
- per CrackSegmentation with a crack: its severity and widths as text on the optical axis at the
  crack's depth [crack] (green monitor, red repair, grey unknown).

Stale markers vanish: every marker has a lifetime (`marker_lifetime_s`), markers of tracks that
disappeared are deleted explicitly, and an array with no 3D detection sends DELETEALL for the
detection namespaces (RViz 2 limits a DELETEALL with a namespace to that namespace).

Bearings follow CollisionAlert.msg (0 ahead, positive left, about the sensor's vertical axis), so
the sector is drawn in the x-z plane of an optical frame (z forward, x right, frame names ending
in `_optical_frame`) and in the x-y plane of a REP 103 body frame (x forward, y left) otherwise.

The message -> marker conversion is pure functions (no node, no rclpy.init), tested directly.
"""
from dataclasses import dataclass
import math
from typing import List, Sequence, Tuple

from builtin_interfaces.msg import Duration
from edge_perception.msg import CollisionAlert, CrackSegmentation, DetectionArray
from edge_perception.nodes.common import (ALERT_QOS, copy_header, DATA_QOS, declare_parameters,
                                          Diagnostics, InputMonitor, Param, with_live)
from edge_perception.nodes.spinning import run_node
from geometry_msgs.msg import Point
from rclpy.node import Node
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

FRAME_CONVENTIONS = ('auto', 'optical', 'body')

PARAMS = [
    Param('detections_topic', 'tracks',
          "DetectionArray input (tracks, or detections for untracked boxes); '' disables"),
    Param('alert_topic', 'collision_alert', "CollisionAlert input; '' disables"),
    Param('crack_topic', '', "CrackSegmentation input (e.g. crack/segmentation); '' disables"),
    Param('markers_topic', 'markers', 'visualization_msgs/MarkerArray output'),
    Param('marker_lifetime_s', 0.5,
          'Markers not refreshed for this long vanish in RViz, s (0 = never)', 0.0, 3600.0),
    Param('sphere_diameter_m', 0.08, 'Diameter of the sphere drawn at each 3D detection, m',
          0.001, 10.0),
    Param('text_height_m', 0.06, 'Height of text labels, m', 0.001, 10.0),
    Param('pick_arrow_length_m', 0.1,
          'Pick point arrow length along the line of sight, m (0 = a small sphere)', 0.0, 10.0),
    Param('alert_sector_half_width_rad', 0.2,
          'Half angle of the alert sector around the alert bearing, rad', 0.01, math.pi / 2),
    Param('alert_sector_segments', 8, 'Triangles in the alert sector fan', 1, 64),
    Param('alert_frame_convention', 'auto',
          "Axes of the alert's frame: optical (z forward, x right), body (REP 103: x forward, "
          "y left), or auto (optical when the frame_id ends in '_optical_frame' or '_optical')",
          choices=FRAME_CONVENTIONS),
    Param('stale_after_s', 2.0, 'An input older than this is reported stale, s', 0.01, 60.0),
]
# The drawing style applies from the next message on; topics are read-only.
PARAMS = with_live(PARAMS, [p.name for p in PARAMS if not p.name.endswith('_topic')])

NS_DETECTIONS = 'detections'
NS_LABELS = 'detection_labels'
NS_PICK = 'pick_points'
NS_ALERT = 'collision_alert'
NS_CRACK = 'crack'
DETECTION_NAMESPACES = (NS_DETECTIONS, NS_LABELS, NS_PICK)
ALERT_SECTOR_ID = 0
ALERT_TEXT_ID = 1

# matplotlib's tab10, by class_id modulo 10: distinct, colour-blind aware.
CLASS_PALETTE = (
    (0.122, 0.467, 0.706), (1.000, 0.498, 0.055), (0.173, 0.627, 0.173),
    (0.839, 0.153, 0.157), (0.580, 0.404, 0.741), (0.549, 0.337, 0.294),
    (0.890, 0.467, 0.761), (0.498, 0.498, 0.498), (0.737, 0.741, 0.133),
    (0.090, 0.745, 0.812))
LEVEL_NAMES = {CollisionAlert.LEVEL_NONE: 'NONE', CollisionAlert.LEVEL_CAUTION: 'CAUTION',
               CollisionAlert.LEVEL_WARNING: 'WARNING', CollisionAlert.LEVEL_CRITICAL: 'CRITICAL',
               CollisionAlert.LEVEL_SENSOR_LOST: 'SENSOR_LOST'}
LEVEL_COLOURS = {CollisionAlert.LEVEL_CAUTION: (1.0, 0.85, 0.0),
                 CollisionAlert.LEVEL_WARNING: (1.0, 0.5, 0.0),
                 CollisionAlert.LEVEL_CRITICAL: (1.0, 0.0, 0.0),
                 CollisionAlert.LEVEL_SENSOR_LOST: (0.6, 0.2, 0.8)}
SECTOR_ALPHA = 0.45
SEVERITY_COLOURS = {CrackSegmentation.SEVERITY_MONITOR: (0.2, 0.8, 0.2),
                    CrackSegmentation.SEVERITY_REPAIR: (1.0, 0.0, 0.0),
                    CrackSegmentation.SEVERITY_UNKNOWN: (0.6, 0.6, 0.6)}
PICK_COLOUR = (1.0, 1.0, 1.0)
TEXT_COLOUR = (1.0, 1.0, 1.0)


class MarkerInputError(ValueError):
    """An input message that cannot be drawn (e.g. an unknown alert level)."""


@dataclass(frozen=True)
class MarkerStyle:
    """Sizes, lifetime and frame convention of the markers (the node's parameters)."""

    lifetime_s: float = 0.5
    sphere_diameter_m: float = 0.08
    text_height_m: float = 0.06
    pick_arrow_length_m: float = 0.1
    sector_half_width_rad: float = 0.2
    sector_segments: int = 8
    frame_convention: str = 'auto'

    def __post_init__(self):
        if self.frame_convention not in FRAME_CONVENTIONS:
            raise ValueError(f'frame_convention must be one of {FRAME_CONVENTIONS}, not '
                             f'{self.frame_convention!r}')
        if not (self.lifetime_s >= 0 and self.sphere_diameter_m > 0 and self.text_height_m > 0
                and self.pick_arrow_length_m >= 0 and 0 < self.sector_half_width_rad < math.pi
                and self.sector_segments >= 1):
            raise ValueError(f'invalid marker style {self}: sizes must be positive, lifetime '
                             'and arrow length >= 0, 0 < half width < pi, segments >= 1')


def frame_is_optical(frame_id: str, convention: str = 'auto') -> bool:
    """Whether a frame has optical axes (z forward, x right, y down) rather than REP 103 body."""
    if convention == 'optical':
        return True
    if convention == 'body':
        return False
    if convention != 'auto':
        raise ValueError(f'convention must be one of {FRAME_CONVENTIONS}, not {convention!r}')
    return frame_id.rstrip('/').endswith(('_optical_frame', '_optical'))


def bearing_point(distance_m: float, bearing_rad: float, optical: bool) -> Tuple[float, ...]:
    """Return the point at distance_m in direction bearing_rad (0 ahead, positive left).

    Optical frame: x = -d sin(b), y = 0, z = d cos(b) (the inverse of the node's atan2(-x, z));
    body frame: x = d cos(b), y = d sin(b), z = 0.
    """
    if optical:
        return (-distance_m * math.sin(bearing_rad), 0.0, distance_m * math.cos(bearing_rad))
    return (distance_m * math.cos(bearing_rad), distance_m * math.sin(bearing_rad), 0.0)


def sector_triangles(distance_m: float, bearing_rad: float, half_width_rad: float,
                     segments: int, optical: bool) -> List[Tuple[float, ...]]:
    """TRIANGLE_LIST vertices of a fan from the origin to distance_m, bearing +- half width."""
    if not (math.isfinite(distance_m) and distance_m > 0 and math.isfinite(bearing_rad)):
        raise MarkerInputError(f'a sector needs a finite positive distance and a finite bearing,'
                               f' got distance {distance_m} m, bearing {bearing_rad} rad')
    origin = (0.0, 0.0, 0.0)
    edges = [bearing_rad - half_width_rad + 2.0 * half_width_rad * i / segments
             for i in range(segments + 1)]
    vertices = []
    for left, right in zip(edges[:-1], edges[1:]):
        vertices += [origin, bearing_point(distance_m, left, optical),
                     bearing_point(distance_m, right, optical)]
    return vertices


def _point(xyz) -> Point:
    return Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))


def _colour(rgb, alpha=1.0) -> ColorRGBA:
    return ColorRGBA(r=float(rgb[0]), g=float(rgb[1]), b=float(rgb[2]), a=float(alpha))


def _lifetime(seconds: float) -> Duration:
    sec = int(math.floor(seconds))
    return Duration(sec=sec, nanosec=int(round((seconds - sec) * 1e9)) % 1_000_000_000)


def _marker(header, ns, marker_id, marker_type, style, rgb, alpha=1.0) -> Marker:
    marker = Marker()
    marker.header = copy_header(header)
    marker.ns = ns
    marker.id = int(marker_id)
    marker.type = marker_type
    marker.action = Marker.ADD
    marker.pose.orientation.w = 1.0
    marker.color = _colour(rgb, alpha)
    marker.lifetime = _lifetime(style.lifetime_s)
    return marker


def _text(header, ns, marker_id, text, xyz, style, rgb=TEXT_COLOUR) -> Marker:
    marker = _marker(header, ns, marker_id, Marker.TEXT_VIEW_FACING, style, rgb)
    marker.pose.position = _point(xyz)
    marker.scale.z = float(style.text_height_m)
    marker.text = text
    return marker


def delete_marker(header, ns: str, marker_id: int) -> Marker:
    """Return a DELETE of one marker."""
    marker = Marker()
    marker.header = copy_header(header)
    marker.ns = ns
    marker.id = int(marker_id)
    marker.action = Marker.DELETE
    return marker


def delete_all_marker(header, ns: str) -> Marker:
    """Return a DELETEALL of one namespace (RViz 2 honours it; an empty one clears all)."""
    marker = Marker()
    marker.header = copy_header(header)
    marker.ns = ns
    marker.action = Marker.DELETEALL
    return marker


def class_colour(class_id: int) -> Tuple[float, float, float]:
    """Return the palette colour of a class id."""
    return CLASS_PALETTE[int(class_id) % len(CLASS_PALETTE)]


def detection_marker_id(detection, index: int) -> int:
    """Stable across frames for tracks (the track id, in int32), else -(index + 1)."""
    if detection.track_id >= 0:
        return int(detection.track_id % (2 ** 31 - 1))
    return -(index + 1)


def _finite(*values) -> bool:
    return all(math.isfinite(v) for v in values)


def drawable_detections(msg: DetectionArray):
    """(index, detection) of the detections with a valid, finite 3D position."""
    return [(i, d) for i, d in enumerate(msg.detections)
            if d.position_valid and _finite(d.position.x, d.position.y, d.position.z)]


def non_finite_detections(msg: DetectionArray) -> List[int]:
    """Return the indices of detections flagged position_valid with a non-finite position."""
    return [i for i, d in enumerate(msg.detections)
            if d.position_valid and not _finite(d.position.x, d.position.y, d.position.z)]


def _label(detection) -> str:
    parts = [detection.class_name or f'class {detection.class_id}']
    if detection.track_id >= 0:
        parts.append(f'#{detection.track_id}')
    parts.append(f'{detection.score:.2f}')
    if detection.material:
        parts.append(f'{detection.material} {detection.material_confidence:.2f}')
    return ' '.join(parts)


def detection_markers(msg: DetectionArray, style: MarkerStyle = MarkerStyle()) -> List[Marker]:
    """Sphere, label and pick point of every 3D detection; DELETEALL when there is none."""
    drawable = drawable_detections(msg)
    if not drawable:
        return [delete_all_marker(msg.header, ns) for ns in DETECTION_NAMESPACES]
    markers = []
    for index, d in drawable:
        marker_id = detection_marker_id(d, index)
        rgb = class_colour(d.class_id)
        sphere = _marker(msg.header, NS_DETECTIONS, marker_id, Marker.SPHERE, style, rgb, 0.8)
        sphere.pose.position = _point((d.position.x, d.position.y, d.position.z))
        size = float(style.sphere_diameter_m)
        sphere.scale.x = sphere.scale.y = sphere.scale.z = size
        markers.append(sphere)
        # Optical frame (Detection.msg): "up" is -y, so the label floats above the sphere.
        above = (d.position.x, d.position.y - size - style.text_height_m, d.position.z)
        markers.append(_text(msg.header, NS_LABELS, marker_id, _label(d), above, style, rgb))
        if d.pick_point_valid and _finite(d.pick_point.x, d.pick_point.y, d.pick_point.z):
            markers.append(_pick_marker(msg.header, marker_id, d.pick_point, style))
    return markers


def _pick_marker(header, marker_id, pick, style) -> Marker:
    end = (pick.x, pick.y, pick.z)
    length = style.pick_arrow_length_m
    norm = math.sqrt(sum(c * c for c in end))
    if length <= 0 or norm <= 0:
        marker = _marker(header, NS_PICK, marker_id, Marker.SPHERE, style, PICK_COLOUR)
        marker.pose.position = _point(end)
        size = 0.5 * float(style.sphere_diameter_m)
        marker.scale.x = marker.scale.y = marker.scale.z = size
        return marker
    # Along the line of sight from the camera, ending at the pick point: the approach an arm
    # with an eye-in-hand camera would take.
    start = tuple(c - length * c / norm for c in end)
    marker = _marker(header, NS_PICK, marker_id, Marker.ARROW, style, PICK_COLOUR)
    marker.points = [_point(start), _point(end)]
    marker.scale.x = 0.1 * length      # shaft diameter
    marker.scale.y = 0.2 * length      # head diameter
    marker.scale.z = 0.3 * length      # head length
    return marker


def marker_keys(markers: Sequence[Marker]):
    """{(ns, id)} of the ADD markers."""
    return {(m.ns, m.id) for m in markers if m.action == Marker.ADD}


def vanished_markers(previous_keys, markers: Sequence[Marker], header) -> List[Marker]:
    """Return DELETEs for markers drawn last time and absent now (a track that disappeared).

    Namespaces that `markers` clears with a DELETEALL get no DELETE on top.
    """
    current = marker_keys(markers)
    cleared = {m.ns for m in markers if m.action == Marker.DELETEALL}
    return [delete_marker(header, ns, marker_id)
            for ns, marker_id in sorted(set(previous_keys) - current) if ns not in cleared]


def alert_markers(msg: CollisionAlert, style: MarkerStyle = MarkerStyle()) -> List[Marker]:
    """Return the alert sector and label; SENSOR_LOST: a label at the origin; NONE: deletes.

    Raises:
        MarkerInputError: unknown level.
    """
    level = int(msg.level)
    if level not in LEVEL_NAMES:
        raise MarkerInputError(f'unknown CollisionAlert level {level}; known: '
                               f'{sorted(LEVEL_NAMES)}')
    if level == CollisionAlert.LEVEL_NONE:
        return [delete_marker(msg.header, NS_ALERT, ALERT_SECTOR_ID),
                delete_marker(msg.header, NS_ALERT, ALERT_TEXT_ID)]
    rgb = LEVEL_COLOURS[level]
    if level == CollisionAlert.LEVEL_SENSOR_LOST:
        text = f'SENSOR_LOST: {msg.reason}' if msg.reason else 'SENSOR_LOST'
        return [delete_marker(msg.header, NS_ALERT, ALERT_SECTOR_ID),
                _text(msg.header, NS_ALERT, ALERT_TEXT_ID, text, (0.0, 0.0, 0.0), style, rgb)]
    distance, bearing = float(msg.distance_m), float(msg.bearing_rad)
    optical = frame_is_optical(msg.header.frame_id, style.frame_convention)
    label = f'{LEVEL_NAMES[level]} TTI {msg.time_to_impact_s:.1f} s'
    if math.isfinite(msg.closing_speed_mps):
        label += f' {msg.closing_speed_mps:.1f} m/s'
    if not (math.isfinite(distance) and distance > 0):
        # A level without a distance (not expected from time_to_impact): say it, draw no sector.
        return [delete_marker(msg.header, NS_ALERT, ALERT_SECTOR_ID),
                _text(msg.header, NS_ALERT, ALERT_TEXT_ID, label, (0.0, 0.0, 0.0), style, rgb)]
    if not math.isfinite(bearing):
        bearing = 0.0       # scene mode without camera info: no bearing, draw it ahead
        label += ' (bearing unknown)'
    sector = _marker(msg.header, NS_ALERT, ALERT_SECTOR_ID, Marker.TRIANGLE_LIST, style, rgb,
                     SECTOR_ALPHA)
    sector.scale.x = sector.scale.y = sector.scale.z = 1.0
    sector.points = [_point(v) for v in sector_triangles(
        distance, bearing, style.sector_half_width_rad, style.sector_segments, optical)]
    tip = bearing_point(distance, bearing, optical)
    return [sector, _text(msg.header, NS_ALERT, ALERT_TEXT_ID, label, tip, style, rgb)]


def crack_markers(msg: CrackSegmentation, style: MarkerStyle = MarkerStyle()) -> List[Marker]:
    """Severity and width text on the optical axis at the crack's depth; no crack deletes it."""
    if msg.severity == CrackSegmentation.SEVERITY_NONE:
        return [delete_marker(msg.header, NS_CRACK, 0)]
    rgb = SEVERITY_COLOURS.get(int(msg.severity), SEVERITY_COLOURS[
        CrackSegmentation.SEVERITY_UNKNOWN])
    label = msg.severity_label or 'unknown'
    if msg.metric_valid and _finite(msg.depth_m, msg.max_width_mm, msg.length_mm):
        text = (f'crack: {label}, max width {msg.max_width_mm:.2f} mm, '
                f'length {msg.length_mm:.0f} mm')
        depth = float(msg.depth_m)
    else:
        text = f'crack: {label}, max width {msg.max_width_px:.1f} px (no depth)'
        depth = 1.0         # placement only: the crack's depth is unknown
    return [_text(msg.header, NS_CRACK, 0, text, (0.0, 0.0, depth), style, rgb)]


class MarkersNode(Node):
    """Publishes RViz markers for detections, collision alerts and cracks."""

    def on_parameters_changed(self, names):
        """Apply a run-time parameter set: the style of the next markers, input staleness."""
        self.style = self._style(self.params)
        for monitor in (self.detections_input, self.alert_input, self.crack_input):
            if monitor is not None:
                monitor.stale_after_s = self.params['stale_after_s']

    @staticmethod
    def _style(p):
        return MarkerStyle(
            lifetime_s=p['marker_lifetime_s'], sphere_diameter_m=p['sphere_diameter_m'],
            text_height_m=p['text_height_m'], pick_arrow_length_m=p['pick_arrow_length_m'],
            sector_half_width_rad=p['alert_sector_half_width_rad'],
            sector_segments=p['alert_sector_segments'],
            frame_convention=p['alert_frame_convention'])

    def __init__(self, **kwargs):
        super().__init__('markers', **kwargs)
        p = self.params = declare_parameters(self, PARAMS, self.on_parameters_changed)
        self.style = self._style(p)
        # Reliable, as RViz subscribes to markers by default.
        self.pub = self.create_publisher(MarkerArray, p['markers_topic'], ALERT_QOS)
        self._detection_keys = set()
        monitors = []
        self.detections_input = self.alert_input = self.crack_input = None
        if p['detections_topic']:
            self.detections_input = InputMonitor('detections', p['stale_after_s'])
            monitors.append(self.detections_input)
            self.create_subscription(DetectionArray, p['detections_topic'], self.on_detections,
                                     DATA_QOS)
        if p['alert_topic']:
            self.alert_input = InputMonitor('collision_alert', p['stale_after_s'])
            monitors.append(self.alert_input)
            self.create_subscription(CollisionAlert, p['alert_topic'], self.on_alert, ALERT_QOS)
        if p['crack_topic']:
            self.crack_input = InputMonitor('crack', p['stale_after_s'])
            monitors.append(self.crack_input)
            self.create_subscription(CrackSegmentation, p['crack_topic'], self.on_crack,
                                     DATA_QOS)
        if not monitors:
            raise ValueError('markers: every input topic is disabled (detections_topic, '
                             'alert_topic and crack_topic are all empty)')
        self.diagnostics = Diagnostics(self, monitors)
        self.get_logger().info(
            f'markers: {[m.name for m in monitors]} -> {self.pub.topic_name}')

    def on_detections(self, msg):
        """Draw the 3D detections; delete markers of tracks that are gone."""
        self.detections_input.arrived()
        bad = non_finite_detections(msg)
        if bad:
            error = f'detections {bad} are position_valid with a non-finite position: not drawn'
            self.detections_input.reject(error)
            self.get_logger().warning(error, throttle_duration_sec=5.0)
        else:
            self.detections_input.accepted()
        markers = detection_markers(msg, self.style)
        deletes = vanished_markers(self._detection_keys, markers, msg.header)
        self._detection_keys = marker_keys(markers)
        self.pub.publish(MarkerArray(markers=deletes + markers))

    def on_alert(self, msg):
        """Draw the alert's sector (or SENSOR_LOST text)."""
        self._draw(self.alert_input, alert_markers, msg)

    def on_crack(self, msg):
        """Draw the crack's severity text."""
        self._draw(self.crack_input, crack_markers, msg)

    def _draw(self, monitor, convert, msg):
        monitor.arrived()
        try:
            markers = convert(msg, self.style)
        except MarkerInputError as error:
            monitor.reject(str(error))
            self.get_logger().warning(f'{monitor.name} not drawn: {error}',
                                      throttle_duration_sec=5.0)
            return
        monitor.accepted()
        self.pub.publish(MarkerArray(markers=markers))


def main(args=None):
    """Entry point: `markers_node` (ros2 run edge_perception markers_node)."""
    run_node(MarkersNode, args)


if __name__ == '__main__':
    main()
