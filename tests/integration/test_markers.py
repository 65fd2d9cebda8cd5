"""The markers node: detections and alerts with known geometry in, RViz markers out.

The conversion functions are checked directly (marker messages need no rclpy.init), then the
real node over DDS: a DetectionArray with known 3D positions and CollisionAlerts with known
distance and bearing are published, and the MarkerArrays' positions, frame ids, stamps and
colours are compared with the geometry they must have.
"""
import math
import pathlib

from edge_perception.harness.replay import Probe, wait_until
from edge_perception.harness.runner import NodeGraph
from edge_perception.msg import CollisionAlert, CrackSegmentation, Detection, DetectionArray
from edge_perception.nodes.common import ALERT_QOS, DATA_QOS
from edge_perception.nodes.markers_node import (alert_markers, bearing_point, crack_markers,
                                                detection_markers, frame_is_optical,
                                                MarkerInputError, MarkersNode, MarkerStyle,
                                                sector_triangles, vanished_markers)
import pytest
from rclpy.node import Node
from visualization_msgs.msg import Marker, MarkerArray

CONFIG = pathlib.Path(__file__).resolve().parents[2] / 'config' / 'perception.yaml'
NAMESPACE = 'markers_test'
CAMERA_FRAME = 'camera_color_optical_frame'
# tab10 colours of classes 0 and 1 (the palette documented in markers_node).
BLUE = (31 / 255, 119 / 255, 180 / 255)
ORANGE_TAB10 = (255 / 255, 127 / 255, 14 / 255)
WARNING_ORANGE = (1.0, 0.5, 0.0)
CRITICAL_RED = (1.0, 0.0, 0.0)


def detection(track_id, class_id, xyz, pick=None, valid=True, name='plastic'):
    d = Detection()
    d.class_id, d.class_name, d.score, d.track_id = class_id, name, 0.9, track_id
    d.position_valid = valid
    d.position.x, d.position.y, d.position.z = xyz
    if pick is not None:
        d.pick_point_valid = True
        d.pick_point.x, d.pick_point.y, d.pick_point.z = pick
    return d


def detection_array(detections, stamp_s=12.5, frame_id=CAMERA_FRAME):
    msg = DetectionArray()
    msg.header.stamp.sec = int(stamp_s)
    msg.header.stamp.nanosec = int(round((stamp_s % 1) * 1e9))
    msg.header.frame_id = frame_id
    msg.detections = detections
    return msg


def alert(level, distance_m=2.0, bearing_rad=0.3, frame_id='camera_depth_optical_frame',
          stamp_s=20.25):
    msg = CollisionAlert()
    msg.header.stamp.sec = int(stamp_s)
    msg.header.stamp.nanosec = int(round((stamp_s % 1) * 1e9))
    msg.header.frame_id = frame_id
    msg.level = level
    msg.distance_m, msg.bearing_rad = distance_m, bearing_rad
    msg.time_to_impact_s, msg.closing_speed_mps = 0.8, 2.5
    msg.reason = 'test'
    return msg


def rgb(marker):
    return (marker.color.r, marker.color.g, marker.color.b)


def xyz(point):
    return (point.x, point.y, point.z)


def by_ns(markers, ns):
    return {m.id: m for m in markers if m.ns == ns}


# ------------------------------------------------------------------ pure conversion
def test_bearing_points_invert_the_node_bearing_convention():
    # time_to_impact: bearing = atan2(-x, z) in an optical frame, 0 ahead, positive left.
    for bearing in (-0.7, 0.0, 0.3, 1.2):
        x, y, z = bearing_point(2.0, bearing, optical=True)
        assert y == 0.0 and math.isclose(math.atan2(-x, z), bearing, abs_tol=1e-12)
        assert math.isclose(math.hypot(x, z), 2.0)
        x, y, z = bearing_point(2.0, bearing, optical=False)
        assert z == 0.0 and math.isclose(math.atan2(y, x), bearing, abs_tol=1e-12)


def test_sector_is_a_fan_from_the_origin_to_the_distance():
    vertices = sector_triangles(2.0, 0.3, 0.2, 8, optical=True)
    assert len(vertices) == 8 * 3
    origins, rims = vertices[0::3], vertices[1::3] + vertices[2::3]
    assert all(v == (0.0, 0.0, 0.0) for v in origins)
    bearings = sorted(math.atan2(-x, z) for x, _, z in rims)
    assert all(math.isclose(math.hypot(x, z), 2.0) for x, _, z in rims)
    assert math.isclose(bearings[0], 0.1) and math.isclose(bearings[-1], 0.5)
    with pytest.raises(MarkerInputError, match='finite positive distance'):
        sector_triangles(math.nan, 0.3, 0.2, 8, optical=True)


def test_frame_convention():
    assert frame_is_optical('camera_depth_optical_frame')
    assert frame_is_optical('cam_optical')
    assert not frame_is_optical('laser')
    assert not frame_is_optical('base_link')
    assert frame_is_optical('laser', 'optical')
    assert not frame_is_optical('camera_optical_frame', 'body')
    with pytest.raises(ValueError, match='convention'):
        frame_is_optical('laser', 'sideways')


def test_style_refuses_bad_values():
    with pytest.raises(ValueError, match='frame_convention'):
        MarkerStyle(frame_convention='upside_down')
    with pytest.raises(ValueError, match='invalid marker style'):
        MarkerStyle(sphere_diameter_m=0.0)


def test_detection_markers_without_ros_running():
    msg = detection_array([detection(7, 0, (0.1, -0.05, 1.2), pick=(0.12, -0.04, 1.15)),
                           detection(-1, 1, (0.0, 0.0, 1.0), valid=False)])
    markers = detection_markers(msg, MarkerStyle(pick_arrow_length_m=0.1))
    spheres = by_ns(markers, 'detections')
    assert list(spheres) == [7] and xyz(spheres[7].pose.position) == (0.1, -0.05, 1.2)
    arrow = by_ns(markers, 'pick_points')[7]
    assert arrow.type == Marker.ARROW
    start, end = xyz(arrow.points[0]), xyz(arrow.points[1])
    assert end == pytest.approx((0.12, -0.04, 1.15))
    # The arrow lies on the line of sight and is 0.1 m long.
    assert math.dist(start, end) == pytest.approx(0.1)
    assert math.dist((0, 0, 0), start) + 0.1 == pytest.approx(math.dist((0, 0, 0), end))
    # Only invalid positions: nothing to draw, so each detection namespace is cleared.
    cleared = detection_markers(detection_array([detection(3, 0, (0, 0, 1), valid=False)]))
    assert [(m.action, m.ns) for m in cleared] == [
        (Marker.DELETEALL, 'detections'), (Marker.DELETEALL, 'detection_labels'),
        (Marker.DELETEALL, 'pick_points')]
    non_finite = detection_markers(detection_array([detection(4, 0, (math.nan, 0.0, 1.0))]))
    assert all(m.action == Marker.DELETEALL for m in non_finite)


def test_vanished_tracks_are_deleted():
    first = detection_markers(detection_array([detection(7, 0, (0, 0, 1)),
                                               detection(9, 1, (0, 0, 2))]))
    second = detection_markers(detection_array([detection(9, 1, (0, 0, 2))]))
    keys = {(m.ns, m.id) for m in first}
    deletes = vanished_markers(keys, second, second[0].header)
    assert {(m.ns, m.id, m.action) for m in deletes} == {
        ('detections', 7, Marker.DELETE), ('detection_labels', 7, Marker.DELETE)}
    # An empty array clears the namespaces with DELETEALL; no DELETE per track on top.
    cleared = detection_markers(detection_array([]))
    assert vanished_markers(keys, cleared, cleared[0].header) == []


def test_alert_levels_and_errors():
    assert [m.action for m in alert_markers(alert(CollisionAlert.LEVEL_NONE))] == [
        Marker.DELETE, Marker.DELETE]
    lost = alert_markers(alert(CollisionAlert.LEVEL_SENSOR_LOST, math.nan, math.nan))
    assert lost[0].action == Marker.DELETE and lost[1].text.startswith('SENSOR_LOST')
    with pytest.raises(MarkerInputError, match='unknown CollisionAlert level 9'):
        alert_markers(alert(9))


def test_crack_text_at_the_crack_depth():
    msg = CrackSegmentation()
    msg.header.frame_id = CAMERA_FRAME
    msg.severity, msg.severity_label = CrackSegmentation.SEVERITY_REPAIR, 'repair'
    msg.metric_valid, msg.depth_m, msg.max_width_mm, msg.length_mm = True, 0.8, 0.35, 120.0
    (text,) = crack_markers(msg)
    assert xyz(text.pose.position) == (0.0, 0.0, pytest.approx(0.8))
    assert rgb(text) == CRITICAL_RED and '0.35 mm' in text.text
    msg.severity = CrackSegmentation.SEVERITY_NONE
    assert crack_markers(msg)[0].action == Marker.DELETE


# ------------------------------------------------------------------ the node over DDS
class Publisher(Node):
    """Publishes tracks and collision alerts into the markers node."""

    def __init__(self, context):
        super().__init__('markers_test_source', context=context, namespace=NAMESPACE)
        self.tracks = self.create_publisher(DetectionArray, 'tracks', DATA_QOS)
        self.alerts = self.create_publisher(CollisionAlert, 'collision_alert', ALERT_QOS)


@pytest.fixture(scope='module')
def rig():
    graph = NodeGraph([], [CONFIG]).spin_in_background()
    graph.add_node(MarkersNode(context=graph.context, namespace=NAMESPACE))
    probe = graph.add_node(Probe(graph.context, {'markers': (MarkerArray, ALERT_QOS)},
                                 namespace=NAMESPACE))
    source = graph.add_node(Publisher(graph.context))
    assert wait_until(lambda: source.tracks.get_subscription_count() > 0
                      and source.alerts.get_subscription_count() > 0
                      and probe.matched_publishers('markers') > 0, 15.0)
    yield probe, source
    graph.shutdown()


def publish_and_receive(probe, publisher, msg, timeout_s=5.0):
    """Publish msg and return the next MarkerArray's markers."""
    probe.clear()
    publisher.publish(msg)
    assert probe.wait_for(lambda records: records['markers'], timeout_s), 'no MarkerArray'
    return list(probe.snapshot('markers')[0][0].markers)


def test_tracks_become_spheres_labels_and_pick_arrows(rig):
    probe, source = rig
    msg = detection_array([
        detection(7, 0, (0.1, -0.05, 1.2), pick=(0.12, -0.04, 1.15)),
        detection(9, 1, (-0.3, 0.1, 2.0), name='glass'),
        detection(11, 0, (0.0, 0.0, 1.0), valid=False)])
    markers = publish_and_receive(probe, source.tracks, msg)
    spheres = by_ns(markers, 'detections')
    assert set(spheres) == {7, 9}, 'one sphere per 3D detection, none for the invalid one'
    assert xyz(spheres[7].pose.position) == pytest.approx((0.1, -0.05, 1.2))
    assert xyz(spheres[9].pose.position) == pytest.approx((-0.3, 0.1, 2.0))
    assert rgb(spheres[7]) == pytest.approx(BLUE, abs=2e-3)
    assert rgb(spheres[9]) == pytest.approx(ORANGE_TAB10, abs=2e-3)
    labels = by_ns(markers, 'detection_labels')
    assert labels[9].text.startswith('glass #9 0.90')
    assert labels[7].pose.position.y < spheres[7].pose.position.y    # above: -y in optical
    picks = by_ns(markers, 'pick_points')
    assert set(picks) == {7} and xyz(picks[7].points[1]) == pytest.approx((0.12, -0.04, 1.15))
    for marker in markers:
        assert marker.header.frame_id == CAMERA_FRAME
        assert (marker.header.stamp.sec, marker.header.stamp.nanosec) == (12, 500_000_000)
        assert marker.action == Marker.ADD
        # config/perception.yaml: marker_lifetime_s 0.5
        assert (marker.lifetime.sec, marker.lifetime.nanosec) == (0, 500_000_000)


def test_gone_tracks_are_deleted_and_empty_arrays_clear(rig):
    probe, source = rig
    publish_and_receive(probe, source.tracks, detection_array([
        detection(7, 0, (0.1, -0.05, 1.2), pick=(0.12, -0.04, 1.15)),
        detection(9, 1, (-0.3, 0.1, 2.0))]))
    markers = publish_and_receive(probe, source.tracks, detection_array(
        [detection(9, 1, (-0.3, 0.1, 2.2))], stamp_s=12.6))
    deleted = {(m.ns, m.id) for m in markers if m.action == Marker.DELETE}
    assert deleted == {('detections', 7), ('detection_labels', 7), ('pick_points', 7)}
    assert xyz(by_ns(markers, 'detections')[9].pose.position) == pytest.approx(
        (-0.3, 0.1, 2.2))
    markers = publish_and_receive(probe, source.tracks, detection_array([], stamp_s=12.7))
    assert {(m.ns, m.action) for m in markers} == {
        ('detections', Marker.DELETEALL), ('detection_labels', Marker.DELETEALL),
        ('pick_points', Marker.DELETEALL)}
    assert all(m.header.frame_id == CAMERA_FRAME for m in markers)


def test_warning_sector_in_an_optical_frame(rig):
    probe, source = rig
    markers = publish_and_receive(probe, source.alerts, alert(CollisionAlert.LEVEL_WARNING))
    sector = by_ns(markers, 'collision_alert')[0]
    text = by_ns(markers, 'collision_alert')[1]
    assert sector.type == Marker.TRIANGLE_LIST and len(sector.points) % 3 == 0
    assert sector.header.frame_id == 'camera_depth_optical_frame'
    assert (sector.header.stamp.sec, sector.header.stamp.nanosec) == (20, 250_000_000)
    assert rgb(sector) == pytest.approx(WARNING_ORANGE) and 0 < sector.color.a < 1
    rim = [xyz(p) for p in sector.points if xyz(p) != (0.0, 0.0, 0.0)]
    # In the x-z plane of the optical frame, 2 m away, centred on the 0.3 rad bearing.
    assert all(y == 0.0 for _, y, _ in rim)
    assert [math.hypot(x, z) for x, _, z in rim] == pytest.approx([2.0] * len(rim))
    bearings = [math.atan2(-x, z) for x, _, z in rim]
    assert (min(bearings) + max(bearings)) / 2 == pytest.approx(0.3)
    assert xyz(text.pose.position) == pytest.approx(
        (-2.0 * math.sin(0.3), 0.0, 2.0 * math.cos(0.3)))
    assert text.text.startswith('WARNING TTI 0.8 s')


def test_critical_sector_in_a_lidar_frame_and_none_deletes(rig):
    probe, source = rig
    markers = publish_and_receive(probe, source.alerts, alert(
        CollisionAlert.LEVEL_CRITICAL, distance_m=1.5, bearing_rad=-0.4, frame_id='laser'))
    sector, text = by_ns(markers, 'collision_alert')[0], by_ns(markers, 'collision_alert')[1]
    assert sector.header.frame_id == 'laser' and rgb(sector) == pytest.approx(CRITICAL_RED)
    rim = [xyz(p) for p in sector.points if xyz(p) != (0.0, 0.0, 0.0)]
    assert all(z == 0.0 for _, _, z in rim)        # REP 103: the x-y plane
    assert xyz(text.pose.position) == pytest.approx(
        (1.5 * math.cos(-0.4), 1.5 * math.sin(-0.4), 0.0))
    markers = publish_and_receive(probe, source.alerts, alert(CollisionAlert.LEVEL_NONE))
    assert {(m.ns, m.id, m.action) for m in markers} == {
        ('collision_alert', 0, Marker.DELETE), ('collision_alert', 1, Marker.DELETE)}


def test_bad_alert_is_not_drawn_and_the_node_keeps_going(rig):
    probe, source = rig
    probe.clear()
    source.alerts.publish(alert(9))
    source.alerts.publish(alert(CollisionAlert.LEVEL_SENSOR_LOST, math.nan, math.nan))
    assert probe.wait_for(lambda records: records['markers'], 5.0), 'no MarkerArray'
    arrays = [array for array, _ in probe.snapshot('markers')]
    # Reliable and in order: the first array is the SENSOR_LOST one, nothing came for level 9.
    text = by_ns(arrays[0].markers, 'collision_alert')[1]
    assert text.text == 'SENSOR_LOST: test'
    assert rgb(text) == pytest.approx((0.6, 0.2, 0.8))
