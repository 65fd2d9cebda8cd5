"""Object mode over DDS: tracked detections with 3D positions -> per-track time-to-impact.

Each track gets a closest-point-of-approach test. A head-on track alerts; one crossing the view
or passing beside the sensor does not.
"""
import math
import pathlib
import time

from edge_perception.conversions import stamp_to_seconds
from edge_perception.harness.replay import collision_probe, wait_until
from edge_perception.harness.runner import NodeGraph
from edge_perception.msg import CollisionAlert, Detection, DetectionArray
from edge_perception.nodes.common import DATA_QOS
import pytest
from rclpy.node import Node

CONFIG = pathlib.Path(__file__).resolve().parents[2] / 'config' / 'collision.yaml'
RATE_HZ = 30.0


class FakeTracker(Node):
    """Publishes one track per frame at a scripted 3D position (camera optical frame)."""

    def __init__(self, context, namespace):
        super().__init__('fake_tracker', context=context, namespace=namespace)
        self.pub = self.create_publisher(DetectionArray, 'tracks', DATA_QOS)
        self.stamps = []

    def play(self, track_id, positions):
        start = time.monotonic()
        for i, (x, y, z) in enumerate(positions):
            msg = DetectionArray()
            msg.header.stamp = self.get_clock().now().to_msg()
            msg.header.frame_id = 'camera_color_optical_frame'
            d = Detection()
            d.header = msg.header
            d.track_id, d.class_name, d.score = track_id, 'waste', 0.9
            d.position_valid = True
            d.position.x, d.position.y, d.position.z = x, y, z
            msg.detections = [d]
            self.pub.publish(msg)
            self.stamps.append(stamp_to_seconds(msg.header.stamp))
            time.sleep(max(0.0, start + (i + 1) / RATE_HZ - time.monotonic()))


def linear(start, velocity, seconds):
    n = int(seconds * RATE_HZ)
    return [tuple(s + v * i / RATE_HZ for s, v in zip(start, velocity)) for i in range(n)]


@pytest.fixture
def rig(tmp_path):
    # A graph per test: a track that was last seen approaching keeps alerting until
    # track_timeout_s, which would leak from one test into the next.
    params = tmp_path / 'objects.yaml'
    params.write_text('/**/time_to_impact:\n  ros__parameters:\n    source: none\n'
                      '    tracks_enabled: true\n')
    graph = NodeGraph(['time_to_impact', 'haptic_alert'], [CONFIG, params],
                      namespace='objects').spin_in_background()
    probe = collision_probe(graph)
    tracker = graph.add_node(FakeTracker(graph.context, 'objects'))
    assert wait_until(lambda: tracker.pub.get_subscription_count() > 0, 15.0)
    yield probe, tracker
    graph.shutdown()


def run(rig, track_id, positions):
    probe, tracker = rig
    probe.clear()
    first = len(tracker.stamps)
    tracker.play(track_id, positions)
    stamps = tracker.stamps[first:]
    probe.wait_for(lambda r: any(abs(stamp_to_seconds(m.header.stamp) - stamps[-1]) < 1e-6
                                 for m, _ in r['collision_alert']), 3.0)
    return [m for m, _ in probe.snapshot('collision_alert')
            if stamps[0] - 1e-6 <= stamp_to_seconds(m.header.stamp) <= stamps[-1] + 1e-6
            and m.level != CollisionAlert.LEVEL_SENSOR_LOST]


def test_head_on_track_alerts_with_its_id_and_right_tti(rig):
    alerts = run(rig, 7, linear((0.0, 0.0, 8.0), (0.0, 0.0, -3.0), 2.3))
    assert len(alerts) >= 0.9 * int(2.3 * RATE_HZ)
    warnings = [m for m in alerts if m.level >= CollisionAlert.LEVEL_WARNING]
    assert warnings, 'a head-on 3 m/s approach from 8 m must alert'
    first = warnings[0]
    assert first.source == CollisionAlert.SOURCE_TRACKS and first.track_id == 7
    assert first.header.frame_id == 'camera_color_optical_frame'
    # TTI against the truth at each alert's stamp (distance / 3 m/s).
    t0 = stamp_to_seconds(alerts[0].header.stamp)
    errors = []
    for m in warnings:
        z_true = 8.0 - 3.0 * (stamp_to_seconds(m.header.stamp) - t0)
        errors.append(abs(m.time_to_impact_s - z_true / 3.0) / (z_true / 3.0))
    errors.sort()
    assert errors[len(errors) // 2] <= 0.10
    assert abs(first.bearing_rad) < 0.05
    assert max(m.level for m in alerts) == CollisionAlert.LEVEL_CRITICAL


@pytest.mark.parametrize('start,velocity', [
    ((-3.0, 0.0, 3.0), (2.0, 0.0, 0.0)),     # crossing the view at 3 m
    ((2.0, 0.0, 8.0), (0.0, 0.0, -3.0)),     # approaching fast but passing 2 m beside
])
def test_tracks_that_miss_the_sensor_do_not_alert(rig, start, velocity):
    alerts = run(rig, 9, linear(start, velocity, 2.3))
    assert len(alerts) >= 0.9 * int(2.3 * RATE_HZ)
    assert all(m.level < CollisionAlert.LEVEL_WARNING for m in alerts), \
        [(m.level, m.reason) for m in alerts if m.level >= 2][:3]
    assert not any(m.alert for m in alerts)
    assert all(math.isfinite(m.time_to_impact_s) or m.time_to_impact_s == math.inf
               for m in alerts)
