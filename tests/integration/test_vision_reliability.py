"""Reliability of the vision nodes (detector, crack_segmentation).

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
from edge_perception.nodes.common import DATA_QOS
from edge_perception.nodes.replay import Probe, wait_until
from edge_perception.nodes.runner import NodeGraph
from edge_perception.samples import waste_belt_frames, waste_camera
from edge_perception_msgs.msg import DetectionArray
from hypothesis import given, HealthCheck, settings, strategies as st
import numpy as np
import pytest
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, Image

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODELS = ROOT / 'src/edge_perception/models'
DETECTOR = next(iter(sorted((MODELS / 'detector').glob('*.onnx'))), None)
CRACK_MANIFEST = MODELS / 'crack' / 'moe.yaml'
FLOOD_S = float(os.environ.get('EDGE_PERCEPTION_FLOOD_S', '60'))
FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
ENCODINGS = ['rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', '16UC1', '32FC1', 'yuv422', '', 'x']


@st.composite
def images(draw):
    msg = Image()
    msg.header.stamp = Time(sec=draw(st.integers(0, 10**6)), nanosec=0)
    msg.encoding = draw(st.sampled_from(ENCODINGS))
    msg.height = draw(st.integers(0, 40))
    msg.width = draw(st.integers(0, 40))
    msg.step = draw(st.integers(0, 200))
    msg.is_bigendian = draw(st.booleans())
    msg.data = draw(st.binary(max_size=5000))
    return msg


@st.composite
def camera_infos(draw):
    msg = CameraInfo()
    msg.width = draw(st.integers(0, 50))
    msg.height = draw(st.integers(0, 50))
    msg.k = [draw(st.floats(allow_nan=True, allow_infinity=True)) for _ in range(9)]
    return msg


def params_file(tmp_path, text):
    path = tmp_path / 'params.yaml'
    path.write_text(text)
    return path


def sole_caller(graph, node):
    """Stop spinning the node (for good) while the test calls its callbacks directly."""
    graph.pause(node)
    return node


@pytest.mark.skipif(DETECTOR is None, reason='no shipped detector model')
def test_detector_survives_malformed_images_depth_and_camera_info(tmp_path):
    graph = NodeGraph(['detector'], [ROOT / 'config/perception.yaml'],
                      namespace='vfuzz').spin_in_background()
    try:
        node = sole_caller(graph, graph.nodes['detector'])

        @FUZZ
        @given(images(), images(), camera_infos())
        def feed(image, depth, info):
            node.side._on_camera_info(info)
            node.side._on_depth(depth)
            image.header.stamp = depth.header.stamp
            node.on_image(image)

        feed()
        assert graph.failures == 0
        assert node.image_input.rejected > 0 and node.image_input.last_error
        # Good input afterwards: detections with the frame's header, 3D valid again.
        width, height, k = waste_camera()
        _, rgb, depth_mm, truth = waste_belt_frames()[0]
        info = CameraInfo(width=width, height=height, k=[float(v) for v in k])
        depth = numpy_to_image(depth_mm, '16UC1')
        image = numpy_to_image(rgb, 'rgb8')
        for msg in (depth, image):
            msg.header.stamp = Time(sec=2_000_000, nanosec=0)
            msg.header.frame_id = 'cam'
        probe = graph.add_node(Probe(graph.context, {'detections': (DetectionArray, DATA_QOS)},
                                     namespace='vfuzz'))
        assert wait_until(lambda: probe.matched_publishers('detections') > 0, 10.0)
        node.side._on_camera_info(info)
        node.side._on_depth(depth)
        node.on_image(image)
        assert probe.wait_for(lambda r: r['detections'], 10.0)
        out = probe.snapshot('detections')[-1][0]
        assert out.header.frame_id == 'cam' and len(out.detections) >= len(truth) - 1
        assert all(d.position_valid for d in out.detections)
    finally:
        graph.shutdown()


@pytest.mark.skipif(not CRACK_MANIFEST.is_file(), reason='no shipped crack models')
def test_crack_node_survives_malformed_images(tmp_path):
    graph = NodeGraph(['crack_segmentation'], [ROOT / 'config/crack_inspection.yaml'],
                      namespace='cfuzz').spin_in_background()
    try:
        node = sole_caller(graph, graph.nodes['crack_segmentation'])

        @FUZZ
        @given(images(), images(), camera_infos())
        def feed(image, depth, info):
            node.side._on_camera_info(info)
            node.side._on_depth(depth)
            image.header.stamp = depth.header.stamp
            node.on_image(image)

        feed()
        assert graph.failures == 0
        assert node.image_input.rejected > 0
    finally:
        graph.shutdown()


@pytest.mark.skipif(DETECTOR is None, reason='no shipped detector model')
def test_missing_model_keeps_node_up_and_recovers_when_the_file_appears(tmp_path):
    model = tmp_path / 'models' / 'waste.onnx'
    params = params_file(tmp_path, '/**/detector:\n  ros__parameters:\n'
                                   f"    model_path: '{model}'\n    model_retry_s: 0.2\n"
                                   "    material_model_path: 'none'\n")
    graph = NodeGraph(['detector'], [params], namespace='missing').spin_in_background()
    try:
        node = graph.nodes['detector']
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
        shutil.copy(DETECTOR, model)
        assert wait_until(lambda: (node.on_image(numpy_to_image(
            np.zeros((48, 64, 3), np.uint8), 'rgb8')) or node.detector is not None), 5.0,
            poll_s=0.25)
        status = node.diagnostics.build_status()   # WARN at most: no depth in this test
        assert status.level != b'\x02' and 'model not loaded' not in status.message
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


@pytest.mark.skipif(DETECTOR is None, reason='no shipped detector model')
def test_image_flood_keeps_memory_bounded_and_processes_the_freshest_frame(tmp_path):
    params = params_file(tmp_path, '/**/detector:\n  ros__parameters:\n'
                                   "    material_model_path: 'none'\n    depth_topic: ''\n"
                                   "    camera_info_topic: ''\n    cpu_threads: 1\n")
    graph = NodeGraph(['detector'], [params], namespace='vflood').spin_in_background()
    try:
        probe = graph.add_node(Probe(graph.context, {'detections': (DetectionArray, DATA_QOS)},
                                     namespace='vflood'))
        flooder = graph.add_node(ImageFlooder(graph.context))
        assert wait_until(lambda: flooder.pub.get_subscription_count() > 0, 15.0)
        flooder.flood(300.0, 3.0)               # warm-up
        rss_start, samples, lags = rss_mb(), [], []
        started = time.monotonic()
        while time.monotonic() - started < FLOOD_S:
            probe.clear()
            flooder.flood(300.0, 5.0)
            samples.append(rss_mb())
            received = probe.snapshot('detections')
            # Freshness: the age of the frame the node answered last, at the end of the chunk.
            if received:
                lags.append(flooder.last_stamp - stamp_to_seconds(received[-1][0].header.stamp))
        node = graph.nodes['detector']
        elapsed = time.monotonic() - started
        growth = max(samples) - rss_start
        print(f'vision flood: {flooder.published} images in {elapsed:.0f} s '
              f'({flooder.published / elapsed:.0f} Hz offered, 640x480 rgb8), node received '
              f'{node.image_input.received}, RSS {rss_start:.0f} -> {samples[-1]:.0f} MB '
              f'(max growth {growth:.0f} MB), answered-frame age per chunk (s) '
              f'{[round(v, 3) for v in lags]}, callback {node.diagnostics.latency.summary()}')
        assert growth < 200, f'memory grew by {growth:.0f} MB under the flood'
        assert lags and max(lags) < 0.5, f'a queue built up: the node answered stale frames {lags}'
        assert math.isfinite(rss_start) and graph.failures == 0
    finally:
        graph.shutdown()
