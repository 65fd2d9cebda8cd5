"""Reliability of the vision nodes (detector, waste_segmentation, crack_segmentation).

Malformed images, depth and camera info generated with hypothesis go into the real nodes'
callbacks (nothing may raise; errors are reported; good input still works afterwards), a missing
model file keeps the node up and is recovered when the file appears, and a 10x-rate image flood
keeps memory bounded and the newest frame processed.
"""
import math
import os
import pathlib
import shutil
import time

from builtin_interfaces.msg import Time
from edge_perception.conversions import numpy_to_image, stamp_to_seconds
from edge_perception.harness.replay import Probe, wait_until
from edge_perception.harness.runner import NodeGraph
from edge_perception.harness.samples import crack_frames, waste_belt_frames, waste_camera
from edge_perception.msg import CrackSegmentation, DetectionArray
from edge_perception.nodes.common import DATA_QOS
from fuzz_strategies import camera_infos, fuzz_settings, images
from hypothesis import given
import numpy as np
import pytest
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, Image

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODELS = ROOT / 'src/edge_perception/models'
DETECTOR = next(iter(sorted((MODELS / 'detector').glob('*.onnx'))), None)
CRACK_MANIFEST = MODELS / 'crack' / 'moe.yaml'
WASTE_SEG = MODELS / 'waste_seg' / 'waste_seg_lite0.onnx'
FLOOD_S = float(os.environ.get('EDGE_PERCEPTION_FLOOD_S', '60'))
FUZZ = fuzz_settings(60)


def params_file(tmp_path, text):
    path = tmp_path / 'params.yaml'
    path.write_text(text)
    return path


def sole_caller(graph, node):
    """Stop spinning the node (for good) while the test calls its callbacks directly."""
    graph.pause(node)
    return node


def belt_frame_messages():
    """Return the first belt frame's rgb8 and 16UC1 messages, camera info and labelled objects."""
    width, height, k = waste_camera()
    _, rgb, depth_mm, truth = waste_belt_frames()[0]
    return (numpy_to_image(rgb, 'rgb8'), numpy_to_image(depth_mm, '16UC1'),
            CameraInfo(width=width, height=height, k=[float(v) for v in k]), truth)


def good_detector_input():
    """Return a bundled belt frame, its depth and intrinsics, and a check of the answer."""
    image, depth, info, truth = belt_frame_messages()

    def check(out):
        assert len(out.detections) >= len(truth) - 1
        assert all(d.position_valid for d in out.detections)   # 3D valid again

    return image, depth, info, check


def good_segmentation_input():
    """Return a bundled belt frame for the segmentation node, and a check of the answer."""
    image, depth, info, truth = belt_frame_messages()

    def check(out):
        assert len(out.detections) >= len(truth) - 1       # a region per item (4 items)
        assert all(d.position_valid and len(d.mask.data) for d in out.detections)

    return image, depth, info, check


def good_crack_input():
    """Return a bundled crack sample on a flat surface, and a check of the answer."""
    _, rgb, depth_m, gt, _, k = crack_frames()[0]
    height, width = gt.shape

    def check(out):
        assert out.component_count > 0 and out.metric_valid   # millimetres valid again
        assert out.severity == CrackSegmentation.SEVERITY_REPAIR   # 1.7-11.9 mm wide

    return (numpy_to_image(rgb, 'rgb8'), numpy_to_image(depth_m, '32FC1'),
            CameraInfo(width=width, height=height, k=[float(v) for v in k]), check)


VISION_NODES = {
    # node type: (params file, output topic, its type, good input, present)
    'detector': ('config/perception.yaml', 'detections', DetectionArray, good_detector_input,
                 DETECTOR is not None),
    'waste_segmentation': ('config/perception.yaml', 'detections', DetectionArray,
                           good_segmentation_input, WASTE_SEG.is_file()),
    'crack_segmentation': ('config/crack_inspection.yaml', 'crack/segmentation',
                           CrackSegmentation, good_crack_input, CRACK_MANIFEST.is_file()),
}


@pytest.mark.parametrize('node_type', sorted(VISION_NODES))
def test_vision_node_survives_malformed_images_depth_and_camera_info(node_type):
    params, topic, msg_type, good_input, present = VISION_NODES[node_type]
    if not present:
        pytest.skip(f'no shipped model for {node_type}')
    graph = NodeGraph([node_type], [ROOT / params], namespace='vfuzz').spin_in_background()
    try:
        node = sole_caller(graph, graph.nodes[node_type])

        @FUZZ
        @given(images(max_side=40), images(max_side=40), camera_infos())
        def feed(image, depth, info):
            node.side._on_camera_info(info)
            node.side._on_depth(depth)
            image.header.stamp = depth.header.stamp
            node.on_image(image)

        feed()
        assert graph.failures == 0
        assert node.image_input.rejected > 0 and node.image_input.last_error
        # Good input afterwards: the answer, with the frame's header.
        image, depth, info, check = good_input()
        for msg in (depth, image):
            msg.header.stamp = Time(sec=2_000_000, nanosec=0)
            msg.header.frame_id = 'cam'
        probe = graph.add_node(Probe(graph.context, {topic: (msg_type, DATA_QOS)},
                                     namespace='vfuzz'))
        assert wait_until(lambda: probe.matched_publishers(topic) > 0, 10.0)
        node.side._on_camera_info(info)
        node.side._on_depth(depth)
        node.on_image(image)
        assert probe.wait_for(lambda r: r[topic], 10.0)
        out = probe.snapshot(topic)[-1][0]
        assert out.header.frame_id == 'cam' and out.header.stamp.sec == 2_000_000
        check(out)
    finally:
        graph.shutdown()


# The model-loading nodes: node type -> (shipped model, parameters besides model_path).
MODEL_NODES = {
    'detector': (DETECTOR, "    material_model_path: 'none'\n"),
    'waste_segmentation': (WASTE_SEG if WASTE_SEG.is_file() else None, ''),
}


@pytest.mark.parametrize('node_type', sorted(MODEL_NODES))
def test_missing_model_keeps_node_up_and_recovers_when_the_file_appears(tmp_path, node_type):
    shipped, extra = MODEL_NODES[node_type]
    if shipped is None:
        pytest.skip(f'no shipped model for {node_type}')
    model = tmp_path / 'models' / 'waste.onnx'
    params = params_file(tmp_path, f'/**/{node_type}:\n  ros__parameters:\n'
                                   f"    model_path: '{model}'\n    model_retry_s: 0.2\n"
                                   + extra)
    graph = NodeGraph([node_type], [params], namespace='missing').spin_in_background()
    try:
        node = graph.nodes[node_type]
        assert node.detector is None and 'not found' in node.model_error
        status = node.diagnostics.build_status()
        assert status.level == b'\x02' and 'model not loaded' in status.message
        # A corrupt file is refused with its path ...
        model.parent.mkdir(parents=True)
        model.write_bytes(b'not an onnx model')
        assert wait_until(lambda: time.monotonic() >= node._next_load_try, 2.0)  # retry due
        node.on_image(numpy_to_image(np.zeros((48, 64, 3), np.uint8), 'rgb8'))
        assert node.detector is None and str(model) in node.model_error
        # ... and the real file, copied in place, is picked up on a later frame.
        shutil.copy(shipped, model)
        assert wait_until(lambda: (node.on_image(numpy_to_image(
            np.zeros((48, 64, 3), np.uint8), 'rgb8')) or node.detector is not None), 5.0,
            poll_s=0.25)
        status = node.diagnostics.build_status()   # WARN at most: no depth in this test
        assert status.level != b'\x02' and 'model not loaded' not in status.message
    finally:
        graph.shutdown()


MATERIAL_MODEL = MODELS / 'material' / 'material_effnet_lite0.onnx'
GOOD_INPUT = {'detector': good_detector_input, 'waste_segmentation': good_segmentation_input}


@pytest.mark.parametrize('node_type', sorted(MODEL_NODES))
def test_corrupt_material_model_keeps_detections_and_recovers(tmp_path, node_type):
    # The material classifier is an add-on: with a corrupt file the node still reports every
    # item (the detector's class / the segmenter's own labels), says why in diagnostics (WARN,
    # with the path), and uses the classifier once a good file is copied in place.
    shipped, _ = MODEL_NODES[node_type]
    if shipped is None or not MATERIAL_MODEL.is_file():
        pytest.skip(f'no shipped model for {node_type} or no shipped material classifier')
    material = tmp_path / 'material.onnx'
    material.write_bytes(b'not an onnx model')
    params = params_file(tmp_path, f'/**/{node_type}:\n  ros__parameters:\n'
                                   f"    material_model_path: '{material}'\n"
                                   '    model_retry_s: 0.2\n')
    graph = NodeGraph([node_type], [ROOT / 'config/perception.yaml', params],
                      namespace='badmat').spin_in_background()
    try:
        node = sole_caller(graph, graph.nodes[node_type])
        assert node.detector is not None and node.material is None
        assert str(material) in node.material_error
        status = node.diagnostics.build_status()
        assert status.level == b'\x01' and 'material model' in status.message
        probe = graph.add_node(Probe(graph.context, {'detections': (DetectionArray, DATA_QOS)},
                                     namespace='badmat'))
        assert wait_until(lambda: probe.matched_publishers('detections') > 0, 10.0)
        image, depth, info, check = GOOD_INPUT[node_type]()

        def feed(sec):
            for msg in (depth, image):
                msg.header.stamp = Time(sec=sec, nanosec=0)
            node.side._on_camera_info(info)
            node.side._on_depth(depth)
            node.on_image(image)
            assert probe.wait_for(lambda r: any(m.header.stamp.sec == sec
                                                for m, _ in r['detections']), 10.0)
            return next(m for m, _ in probe.snapshot('detections') if m.header.stamp.sec == sec)

        out = feed(100)
        check(out)      # every item still reported, with 3D
        assert node.material is None
        # The good file in place: picked up on a later frame, materials come from it again.
        shutil.copy(MATERIAL_MODEL, material)
        assert wait_until(lambda: time.monotonic() >= node._next_load_try, 2.0)   # retry due
        out = feed(101)
        check(out)
        assert node.material is not None and node.material_error == ''
        if node_type == 'waste_segmentation':
            assert node.refiner is not None
        assert all(d.material for d in out.detections)
        assert node.diagnostics.build_status().level == b'\x00'
    finally:
        graph.shutdown()


class ImageFlooder(Node):
    """Publishes the belt frames as fast as asked, stamped now."""

    def __init__(self, context):
        super().__init__('image_flooder', context=context, namespace='vflood')
        self.pub = self.create_publisher(Image, 'camera/image_raw', QoSProfile(depth=1))
        self.frames = [numpy_to_image(f[1], 'rgb8') for f in waste_belt_frames()[::8]]
        self.published = 0
        self.last_stamp = None

    def flood(self, rate_hz, seconds):
        start, sent = time.monotonic(), 0
        while time.monotonic() - start < seconds:
            msg = self.frames[sent % len(self.frames)]
            msg.header.stamp = self.get_clock().now().to_msg()
            self.pub.publish(msg)
            self.last_stamp = stamp_to_seconds(msg.header.stamp)
            sent += 1
            time.sleep(max(0.0, start + sent / rate_hz - time.monotonic()))
        self.published += sent


def rss_mb():
    with open('/proc/self/status') as status:
        return next(int(line.split()[1]) / 1024.0 for line in status
                    if line.startswith('VmRSS:'))


# The segmentation node shares the detector's input path (DetectorNode), so a third of the
# flood time shows that its heavier per-frame work does not queue frames either.
FLOOD_NODES = {'detector': FLOOD_S, 'waste_segmentation': FLOOD_S / 3}


@pytest.mark.parametrize('node_type', sorted(FLOOD_NODES))
def test_image_flood_keeps_memory_bounded_and_processes_the_freshest_frame(tmp_path, node_type):
    shipped, extra = MODEL_NODES[node_type]
    if shipped is None:
        pytest.skip(f'no shipped model for {node_type}')
    params = params_file(tmp_path, f'/**/{node_type}:\n  ros__parameters:\n'
                                   "    depth_topic: ''\n    camera_info_topic: ''\n"
                                   '    detections_topic: detections\n    cpu_threads: 1\n'
                                   + extra)
    graph = NodeGraph([node_type], [params], namespace='vflood').spin_in_background()
    try:
        probe = graph.add_node(Probe(graph.context, {'detections': (DetectionArray, DATA_QOS)},
                                     namespace='vflood', keep_last=1))
        flooder = graph.add_node(ImageFlooder(graph.context))
        assert wait_until(lambda: flooder.pub.get_subscription_count() > 0, 15.0)
        flooder.flood(300.0, 3.0)               # warm-up
        rss_start, samples, lags = rss_mb(), [], []
        started = time.monotonic()
        while time.monotonic() - started < FLOOD_NODES[node_type]:
            probe.clear()
            flooder.flood(300.0, 5.0)
            samples.append(rss_mb())
            received = probe.snapshot('detections')
            # Freshness: the age of the frame the node answered last, at the end of the chunk.
            if received:
                lags.append(flooder.last_stamp - stamp_to_seconds(received[-1][0].header.stamp))
        node = graph.nodes[node_type]
        elapsed = time.monotonic() - started
        growth = max(samples) - rss_start
        print(f'vision flood ({node_type}): {flooder.published} images in {elapsed:.0f} s '
              f'({flooder.published / elapsed:.0f} Hz offered, 640x480 rgb8), node received '
              f'{node.image_input.received}, RSS {rss_start:.0f} -> {samples[-1]:.0f} MB '
              f'(max growth {growth:.0f} MB), answered-frame age per chunk (s) '
              f'{[round(v, 3) for v in lags]}, callback {node.diagnostics.latency.summary()}')
        assert growth < 200, f'memory grew by {growth:.0f} MB under the flood'
        assert lags and max(lags) < 0.5, f'a queue built up: the node answered stale frames {lags}'
        assert math.isfinite(rss_start) and graph.failures == 0
    finally:
        graph.shutdown()
