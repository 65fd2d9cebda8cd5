"""Malformed messages of every input type, generated with hypothesis, into the real nodes.

Each node's subscription callback is called directly with the generated message (the node is the
real one, built by the runner; only DDS transport is skipped so that thousands of examples run
in seconds). Nothing may raise; bad input is counted and reported; a good message afterwards
still produces the right output over DDS.
"""
import math
import pathlib

from builtin_interfaces.msg import Time
from edge_perception.conversions import numpy_to_image
from edge_perception.harness.replay import collision_probe
from edge_perception.harness.runner import NodeGraph
from edge_perception.harness.scenarios import PinholeCamera, render_depth
from edge_perception.msg import CollisionAlert, Detection, DetectionArray
from fuzz_strategies import fuzz_settings, images
from hypothesis import given, strategies as st
import pytest
from sensor_msgs.msg import LaserScan, PointCloud2, PointField

CONFIG = pathlib.Path(__file__).resolve().parents[2] / 'config' / 'collision.yaml'
FUZZ = fuzz_settings(150)
FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=32)


@st.composite
def clouds(draw):
    msg = PointCloud2()
    msg.header.stamp = Time(sec=draw(st.integers(0, 10**6)), nanosec=0)
    names = draw(st.lists(st.sampled_from(['x', 'y', 'z', 'i', 'rgb']), max_size=5))
    msg.fields = [PointField(name=n, offset=draw(st.integers(0, 40)),
                             datatype=draw(st.integers(0, 9)), count=1) for n in names]
    msg.height = draw(st.integers(0, 3))
    msg.width = draw(st.integers(0, 50))
    msg.point_step = draw(st.integers(0, 40))
    msg.row_step = draw(st.integers(0, 2000))
    msg.is_bigendian = draw(st.booleans())
    msg.data = draw(st.binary(max_size=3000))
    return msg


@st.composite
def scans(draw):
    msg = LaserScan()
    msg.header.stamp = Time(sec=draw(st.integers(0, 10**6)), nanosec=0)
    msg.angle_min = draw(FLOATS)
    msg.angle_increment = draw(FLOATS)
    msg.range_min = draw(FLOATS)
    msg.range_max = draw(FLOATS)
    msg.ranges = draw(st.lists(FLOATS, max_size=400))
    return msg


@st.composite
def detection_arrays(draw):
    msg = DetectionArray()
    msg.header.stamp = Time(sec=draw(st.integers(0, 10**6)),
                            nanosec=draw(st.integers(0, 999_999_999)))
    for _ in range(draw(st.integers(0, 6))):
        d = Detection()
        d.track_id = draw(st.integers(-5, 2**40))
        d.class_id = draw(st.integers(-3, 100))
        d.score = draw(FLOATS)
        d.center_x, d.center_y, d.size_x, d.size_y = (draw(FLOATS) for _ in range(4))
        d.position_valid = draw(st.booleans())
        d.position.x, d.position.y, d.position.z = (draw(st.floats(allow_nan=True))
                                                    for _ in range(3))
        msg.detections.append(d)
    return msg


@st.composite
def alerts(draw):
    msg = CollisionAlert()
    msg.level = draw(st.integers(0, 255))
    msg.bearing_rad = draw(FLOATS)
    msg.time_to_impact_s = draw(FLOATS)
    msg.header.frame_id = draw(st.sampled_from(['', 'cam']))
    return msg


@pytest.fixture(scope='module')
def graphs(tmp_path_factory):
    made = []

    def make(node_types, yaml_text='', namespace='fuzz'):
        files = [CONFIG]
        if yaml_text:
            path = tmp_path_factory.mktemp('fuzz') / 'p.yaml'
            path.write_text(yaml_text)
            files.append(path)
        graph = NodeGraph(node_types, files, namespace=namespace).spin_in_background()
        made.append(graph)
        return graph

    yield make
    for graph in made:
        graph.shutdown()


def sole_caller(graph, *nodes):
    """Stop spinning nodes while the test calls their callbacks.

    So no timer or DDS callback of theirs runs concurrently (as in real use, where a node's
    callbacks run one at a time); their publishers keep working.
    """
    return graph.paused(*nodes)


def good_depth_frame(stamp_sec):
    camera = PinholeCamera(width=64, height=48, fx=52.5, fy=52.5, cx=31.5, cy=23.5)
    msg = numpy_to_image(render_depth([], camera, background_m=3.0), '32FC1')
    msg.header.stamp = Time(sec=stamp_sec, nanosec=0)
    msg.header.frame_id = 'cam'
    return msg


def test_depth_node_survives_malformed_images(graphs):
    graph = graphs(['time_to_impact'], namespace='fuzz_depth')
    node = graph.nodes['time_to_impact']

    @FUZZ
    @given(images())
    def feed(msg):
        node.on_depth(msg)

    with sole_caller(graph, node):
        feed()
    assert graph.failures == 0
    assert node.input.rejected > 0 and node.input.last_error
    # Still works: a good stream is estimated (alerts at level NONE, not SENSOR_LOST).
    probe = collision_probe(graph)
    with sole_caller(graph, node):
        for i in range(12):
            msg = good_depth_frame(2**31 - 100)
            msg.header.stamp.nanosec = i * 50_000_000
            node.on_depth(msg)
    assert probe.wait_for(lambda r: any(
        m.level == CollisionAlert.LEVEL_NONE and m.header.frame_id == 'cam'
        for m, _ in r['collision_alert']), 5.0)


@pytest.mark.parametrize('source,callback,strategy', [
    ('pointcloud', 'on_pointcloud', clouds()),
    ('laserscan', 'on_laserscan', scans()),
])
def test_lidar_sources_survive_malformed_messages(graphs, source, callback, strategy):
    graph = graphs(['time_to_impact'],
                   f'/**/time_to_impact:\n  ros__parameters:\n    source: {source}\n',
                   namespace=f'fuzz_{source}')
    node = graph.nodes['time_to_impact']

    @FUZZ
    @given(strategy)
    def feed(msg):
        getattr(node, callback)(msg)

    with sole_caller(graph, node):
        feed()
    assert graph.failures == 0
    assert node.input.received > 0


def test_tracks_and_tracker_survive_malformed_detections(graphs):
    # Separate namespaces: the tracker's output must not reach on_tracks over DDS while the
    # test calls it directly (a node's callbacks never run concurrently in real use).
    graph = graphs(['time_to_impact'],
                   '/**/time_to_impact:\n  ros__parameters:\n    source: none\n'
                   '    tracks_enabled: true\n', namespace='fuzz_tracks')
    tracker_graph = graphs(['tracker'], namespace='fuzz_tracker')
    tti, tracker = graph.nodes['time_to_impact'], tracker_graph.nodes['tracker']

    @FUZZ
    @given(detection_arrays())
    def feed(msg):
        tti.on_tracks(msg)
        tracker.on_detections(msg)

    with sole_caller(graph, tti), sole_caller(tracker_graph, tracker):
        feed()
    assert graph.failures == 0 and tracker_graph.failures == 0


def test_haptic_node_survives_malformed_alerts(graphs):
    graph = graphs(['haptic_alert'], namespace='fuzz_haptic')
    node = graph.nodes['haptic_alert']

    @FUZZ
    @given(alerts())
    def feed(msg):
        node.on_alert(msg)

    with sole_caller(graph, node):
        feed()
        check_good_and_malformed_alerts(node)
    assert graph.failures == 0


def check_good_and_malformed_alerts(node):
    # A valid CRITICAL straight ahead still renders as the CRITICAL pattern.
    good = CollisionAlert(level=CollisionAlert.LEVEL_CRITICAL, bearing_rad=0.0,
                          time_to_impact_s=0.5)
    node.limiter = type(node.limiter)(node.config)   # forget the fuzzed history
    node.on_alert(good)
    assert node._last_output.pattern == 3 and math.isclose(node._last_output.intensity,
                                                           node.config.critical_intensity)
    # An alert of unknown level is rendered as SENSOR_LOST ("I cannot tell") and reported.
    node.on_alert(CollisionAlert(level=9, bearing_rad=math.inf))
    assert node._last_output.pattern == 4 and node._last_output.motor_mask == 0xFF
    assert 'unknown alert level 9' in node.alerts.last_error
