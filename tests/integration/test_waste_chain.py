"""The waste chain over real DDS: RGB + registered depth + camera info -> detector -> tracker.

Asserts, against the labels of the bundled belt sequence (edge_perception.harness.samples: each
sample frame slides 6 px per frame at 5 Hz, like a conveyor, so every object moves): every frame
answered with its header, recall and false positives, the material of each matched object, 3D
positions within a stated error, stable track IDs, and the debug image drawn only while
subscribed. Bounds are the measured figures minus a stated margin (see each constant).
"""
import pathlib

from edge_perception.conversions import stamp_to_seconds
from edge_perception.harness.replay import play_bag, Probe, wait_until
from edge_perception.harness.runner import NodeGraph
from edge_perception.harness.samples import (waste_belt_frames, waste_camera, WASTE_FRAME,
                                             write_color_depth_bag)
from edge_perception.harness.waste_figures import match
from edge_perception.msg import DetectionArray
from edge_perception.nodes.common import DATA_QOS, SENSOR_QOS
import pytest
from sensor_msgs.msg import Image
from waste_chain_checks import (check_3d_positions, check_every_frame_answered,
                                check_track_ids, frame_of, print_figures)

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL = next(iter(sorted((ROOT / 'src/edge_perception/models/detector').glob('*.onnx'))), None)
# Measured on this chain (24 frames, 78 labelled objects, shipped ONNX detector and TrashNet
# material classifier, 2 shared CPU cores; pytest -s prints them): 24/24 frames answered, 76/78
# objects matched, 15 unmatched detections, the labelled material on 63 of the 76 matched objects
# (0.829 with the v5 ensemble classifier; chance is 1/6), 3D error median 11.0 mm, p90 18 mm,
# max 35 mm. Each bound is the measured figure with a stated margin for platform differences.
RECALL_FLOOR = 0.80                  # measured 0.97
FALSE_POSITIVES_MAX = 20             # measured 15 unmatched detections over the sequence
MATERIAL_FLOOR = 0.75                # measured 0.829 (63/76); v2 classifier 0.855, v1 0.55
POSITION_MEDIAN_MAX_M = 0.020        # measured 11.0 mm
POSITION_MAX_M = 0.050               # measured 35 mm

pytestmark = pytest.mark.skipif(MODEL is None, reason='no shipped detector model (.onnx)')


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    frames = waste_belt_frames()
    width, height, k = waste_camera()
    bag = write_color_depth_bag(tmp_path_factory.mktemp('waste') / 'belt', frames, width,
                                height, k)
    graph = NodeGraph(['detector', 'tracker'], [ROOT / 'config/perception.yaml'],
                      namespace='waste').spin_in_background()
    try:
        probe = graph.add_node(Probe(graph.context, {
            'detections': (DetectionArray, DATA_QOS), 'tracks': (DetectionArray, DATA_QOS)},
            namespace='waste'))
        assert wait_until(lambda: graph.nodes['detector'].detector is not None, 60.0)
        # Matched, not merely created: reliable messages sent before the match are lost.
        assert wait_until(lambda: probe.matched_publishers('detections') > 0
                          and probe.matched_publishers('tracks') > 0, 15.0)
        player = play_bag(graph, bag, ['/camera/image_raw', '/camera/camera_info',
                                       '/camera/depth_registered/image_raw'])
        last = frames[-1][0] + player.offset_s
        probe.wait_for(lambda r: any(stamp_to_seconds(m.header.stamp) >= last - 1e-6
                                     for m, _ in r['tracks']), 10.0)
        graph.remove_node(player.node)
        by_stamp = {round(f[0] + player.offset_s, 6): f for f in frames}
        yield {'by_stamp': by_stamp, 'detections': probe.snapshot('detections'),
               'tracks': probe.snapshot('tracks'), 'k': k, 'graph': graph, 'frames': frames}
    finally:
        graph.shutdown()


@pytest.fixture(scope='module', autouse=True)
def figures_table(run):
    """Print the measured figures once the module is done (seen with pytest -s)."""
    yield
    print_figures('waste chain', run)


def test_every_frame_answered_with_its_header(run):
    check_every_frame_answered(run)


def test_detections_match_the_labels(run):
    matched = total = false_pos = 0
    for msg, _ in run['detections']:
        truth = frame_of(run, msg)[3]
        pairs = match(truth, list(msg.detections))
        matched += len(pairs)
        total += len(truth)
        false_pos += len(msg.detections) - len(pairs)
    # Frames lost count as misses: recall is over every labelled object of the sequence.
    total += sum(len(f[3]) for s, f in run['by_stamp'].items()
                 if s not in {round(stamp_to_seconds(m.header.stamp), 6)
                              for m, _ in run['detections']})
    recall = matched / total
    assert recall >= RECALL_FLOOR, f'recall {recall:.3f} ({matched}/{total})'
    assert false_pos <= FALSE_POSITIVES_MAX, f'{false_pos} unmatched detections'


def test_materials_match_the_labels(run):
    right = matched = 0
    confusions = []
    for msg, _ in run['detections']:
        for obj, det in match(frame_of(run, msg)[3], list(msg.detections)):
            assert 0.0 < det.material_confidence <= 1.0
            matched += 1
            right += det.material == obj['material']
            if det.material != obj['material']:
                confusions.append((obj['material'], det.material))
    assert matched
    assert right / matched >= MATERIAL_FLOOR, (right, matched, sorted(set(confusions)))


def test_3d_positions_within_tolerance(run):
    check_3d_positions(run, POSITION_MEDIAN_MAX_M, POSITION_MAX_M)


def test_track_ids_are_stable_across_frames(run):
    check_track_ids(run, lambda objects: max(1, objects // 10))


def test_debug_image_only_drawn_when_subscribed(run, tmp_path):
    graph, detector = run['graph'], run['graph'].nodes['detector']
    drawn = []
    draw = detector._debug_image

    def spy(header, rgb, out, result):
        drawn.append(stamp_to_seconds(header.stamp))
        return draw(header, rgb, out, result)

    detector._debug_image = spy
    frames = run['frames'][:4]
    width, height, k = waste_camera()
    inputs = ['/camera/image_raw', '/camera/camera_info', '/camera/depth_registered/image_raw']

    def replay(name, probe):
        bag = write_color_depth_bag(tmp_path / name, frames, width, height, k)
        player = play_bag(graph, bag, inputs, player_name=f'player_{name}')
        last = frames[-1][0] + player.offset_s
        assert probe.wait_for(lambda r: any(stamp_to_seconds(m.header.stamp) >= last - 1e-6
                                            for m, _ in r['detections']), 15.0)
        graph.remove_node(player.node)
        return player.offset_s

    # Subscribed: a bgr8 image of the input's size, with the input's header, per detection frame.
    probe = graph.add_node(Probe(graph.context, {
        'detections': (DetectionArray, DATA_QOS),
        'detections/debug_image': (Image, SENSOR_QOS)}, name='debug_probe', namespace='waste'))
    assert wait_until(lambda: detector.debug_pub.get_subscription_count() > 0, 15.0)
    assert wait_until(lambda: probe.matched_publishers('detections') > 0, 15.0)
    replay('subscribed', probe)
    answered = {m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
                for m, _ in probe.snapshot('detections')}
    assert probe.wait_for(lambda r: len(r['detections/debug_image']) >= 1, 5.0)
    images = [m for m, _ in probe.snapshot('detections/debug_image')]
    for image in images:
        assert image.encoding == 'bgr8' and (image.width, image.height) == (width, height)
        assert image.header.frame_id == WASTE_FRAME
        assert image.header.stamp.sec * 10**9 + image.header.stamp.nanosec in answered
    graph.remove_node(probe)
    # Unsubscribed: frames are still detected, no debug image is drawn.
    assert wait_until(lambda: detector.debug_pub.get_subscription_count() == 0, 15.0)
    drawn.clear()
    probe = graph.add_node(Probe(graph.context, {'detections': (DetectionArray, DATA_QOS)},
                                 name='plain_probe', namespace='waste'))
    assert wait_until(lambda: probe.matched_publishers('detections') > 0, 15.0)
    replay('unsubscribed', probe)
    assert len(probe.snapshot('detections')) >= len(frames) - 1
    assert drawn == [], f'{len(drawn)} debug images drawn with no subscriber'
    graph.remove_node(probe)
    detector._debug_image = draw
