"""Malformed messages of every input type, generated with hypothesis, into the real nodes.

Each node's subscription callback is called directly with the generated message (the node is the
real one, built by the runner; only DDS transport is skipped so that thousands of examples run
in seconds). Nothing may raise (a raise fails the hypothesis run: the test calls the callback
itself, so the graph's failure counter would see nothing); a known-bad message is rejected with
its reason in the node's input monitor (what diagnostics report); good input afterwards gets the
right answer over DDS, with its header.
"""
import math
import pathlib

from builtin_interfaces.msg import Time
from edge_perception.conversions import numpy_to_image
from edge_perception.harness.replay import collision_probe, Probe, wait_until
from edge_perception.harness.runner import NodeGraph
from edge_perception.harness.scenarios import PinholeCamera, render_depth
from edge_perception.msg import CollisionAlert, Detection, DetectionArray
from edge_perception.nodes.common import DATA_QOS
from fuzz_strategies import fuzz_settings, images
from hypothesis import given, strategies as st
import numpy as np
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


GOOD_STAMP = 2**31 - 100     # after every fuzzed stamp: the estimators never see time go back


def good_scan(i):
    """Return a laser scan of a wall 3 m away all round, frame i of a 20 Hz stream."""
    msg = LaserScan(angle_min=-1.0, angle_increment=2.0 / 179, angle_max=1.0, range_min=0.1,
                    range_max=30.0, ranges=[3.0] * 180)
    msg.header.stamp = Time(sec=GOOD_STAMP, nanosec=i * 50_000_000)
    msg.header.frame_id = 'laser'
    return msg


def good_cloud(i):
    """Return a cloud of points 3 m away over the whole forward sector, frame i of 20 Hz.

    REP 103 (x forward); 360 x 32 directions cover every cell of the node's range image.
    """
    azimuth, elevation = np.meshgrid(np.radians(np.linspace(-44.9, 44.9, 360)),
                                     np.radians(np.linspace(-14.9, 14.9, 32)))
    xyz = 3.0 * np.stack([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) *
                          np.sin(azimuth), np.sin(elevation)], axis=-1).reshape(-1, 3)
    xyz = xyz.astype(np.float32)
    msg = PointCloud2(height=1, width=len(xyz), point_step=12, row_step=12 * len(xyz),
                      is_dense=True, is_bigendian=False, data=xyz.tobytes())
    msg.fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                  for i, n in enumerate('xyz')]
    msg.header.stamp = Time(sec=GOOD_STAMP, nanosec=i * 50_000_000)
    msg.header.frame_id = 'laser'
    return msg


def bad_scan():
    """Return a scan whose angle increment is NaN: no bearing can be computed."""
    msg = good_scan(0)
    msg.angle_increment = math.nan
    return msg


def bad_cloud():
    """Return a cloud whose data is shorter than its declared size."""
    msg = good_cloud(0)
    msg.data = msg.data[:100]
    return msg


@pytest.mark.parametrize('source,callback,strategy,good,bad', [
    ('pointcloud', 'on_pointcloud', clouds(), good_cloud, bad_cloud),
    ('laserscan', 'on_laserscan', scans(), good_scan, bad_scan),
])
def test_lidar_sources_survive_malformed_messages(graphs, source, callback, strategy, good,
                                                  bad):
    graph = graphs(['time_to_impact'],
                   f'/**/time_to_impact:\n  ros__parameters:\n    source: {source}\n',
                   namespace=f'fuzz_{source}')
    node = graph.nodes['time_to_impact']

    @FUZZ
    @given(strategy)
    def feed(msg):
        getattr(node, callback)(msg)

    probe = collision_probe(graph)
    assert wait_until(lambda: probe.matched_publishers('collision_alert') > 0, 10.0)
    with sole_caller(graph, node):
        feed()
        assert node.input.rejected > 0
        # A known-bad message is rejected, with a reason.
        rejected = node.input.rejected
        getattr(node, callback)(bad())
        assert node.input.rejected == rejected + 1 and node.input.last_error
        # Still works: a static wall is estimated (level NONE once the 0.25 s baseline is
        # there, never a warning), the error cleared.
        probe.clear()
        for i in range(20):
            getattr(node, callback)(good(i))
        assert node.input.last_error == ''
    assert probe.wait_for(lambda r: sum(
        m.level == CollisionAlert.LEVEL_NONE and m.header.frame_id == 'laser'
        and m.header.stamp.sec == GOOD_STAMP for m, _ in r['collision_alert']) >= 10, 5.0), [
        (m.level, m.header.frame_id, m.header.stamp.sec, m.reason)
        for m, _ in probe.snapshot('collision_alert')]
    assert not any(m.level in (CollisionAlert.LEVEL_WARNING, CollisionAlert.LEVEL_CRITICAL)
                   for m, _ in probe.snapshot('collision_alert')
                   if m.header.stamp.sec == GOOD_STAMP)


def approaching_track(i, track_id=7, sec=GOOD_STAMP):
    """Return frame i (10 Hz) of one track approaching at 3 m/s from 6 m, straight ahead."""
    msg = DetectionArray()
    msg.header.stamp = Time(sec=sec, nanosec=i * 100_000_000)
    msg.header.frame_id = 'camera_color_optical_frame'
    d = Detection(track_id=track_id, class_id=0, score=0.9, center_x=320.0, center_y=240.0,
                  size_x=80.0, size_y=80.0, position_valid=True)
    d.position.x, d.position.y, d.position.z = 0.0, 0.0, 6.0 - 0.3 * i
    d.header = msg.header
    msg.detections.append(d)
    return msg


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

    alert_probe = collision_probe(graph)
    track_probe = tracker_graph.add_node(Probe(tracker_graph.context, {
        'tracks': (DetectionArray, DATA_QOS)}, namespace='fuzz_tracker'))
    assert wait_until(lambda: alert_probe.matched_publishers('collision_alert') > 0
                      and track_probe.matched_publishers('tracks') > 0, 10.0)
    with sole_caller(graph, tti), sole_caller(tracker_graph, tracker):
        feed()
        assert tti.tracks_input.rejected > 0 and tracker.input.rejected > 0
        # Known-bad: a valid 3D position that is NaN; time going back for the tracker (10 s
        # after the good frames below, which the tracker takes only if it started over).
        bad = approaching_track(0)
        bad.detections[0].position.z = math.nan
        rejected = tti.tracks_input.rejected
        tti.on_tracks(bad)
        assert tti.tracks_input.rejected == rejected + 1 and tti.tracks_input.last_error
        tracker.on_detections(approaching_track(5, sec=GOOD_STAMP + 10))
        rejected = tracker.input.rejected
        tracker.on_detections(approaching_track(4, sec=GOOD_STAMP + 10))
        assert tracker.input.rejected == rejected + 1 and tracker.input.last_error
        # Good input afterwards: the approaching track gets its time to impact (true TTI at
        # frame i: (6 - 0.3 i) / 3 s) and a warning, the tracker one stable track id.
        alert_probe.clear()
        track_probe.clear()
        for i in range(10):
            tti.on_tracks(approaching_track(i))
            tracker.on_detections(approaching_track(i))
        assert tti.tracks_input.last_error == '' and tracker.input.last_error == ''
    assert alert_probe.wait_for(lambda r: any(
        m.header.stamp.nanosec == 900_000_000 for m, _ in r['collision_alert']), 5.0)
    last = [m for m, _ in alert_probe.snapshot('collision_alert')
            if m.header.stamp.sec == GOOD_STAMP][-1]
    assert last.header.frame_id == 'camera_color_optical_frame'
    assert last.source == CollisionAlert.SOURCE_TRACKS and last.track_id == 7
    assert last.time_to_impact_s == pytest.approx((6.0 - 0.3 * 9) / 3.0, rel=0.15)
    assert last.level in (CollisionAlert.LEVEL_WARNING, CollisionAlert.LEVEL_CRITICAL)
    assert track_probe.wait_for(lambda r: any(
        m.header.stamp.nanosec == 900_000_000 for m, _ in r['tracks']), 5.0)
    tracks = [m for m, _ in track_probe.snapshot('tracks') if m.header.stamp.sec == GOOD_STAMP]
    # Every good frame answered (the tracker started over after time went back) ...
    assert len(tracks) == 10, [m.header.stamp.nanosec for m in tracks]
    ids = {d.track_id for m in tracks for d in m.detections}
    # ... with one track id throughout.
    assert len(ids) == 1 and min(ids) >= 1, ids
    assert all(m.header.frame_id == 'camera_color_optical_frame' for m in tracks)


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
