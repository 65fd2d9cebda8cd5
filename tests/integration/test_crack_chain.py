"""The crack chain over real DDS: image + depth + camera info -> crack_segmentation.

On the bundled DeepCrack samples (flat surface at 0.5 m, fx = 1000 px: one pixel spans 0.5 mm),
asserts the published mask's IoU against ground truth, the header, the millimetre widths
(width_mm = width_px * Z / fx) and the severity class; without camera info the millimetre fields
are flagged invalid and the severity is UNKNOWN, never guessed.
"""
import math
import pathlib

from edge_perception.conversions import image_to_numpy, stamp_to_seconds
from edge_perception.core.crack import segmentation_metrics
from edge_perception.harness.replay import play_bag, Probe, wait_until
from edge_perception.harness.runner import NodeGraph
from edge_perception.harness.samples import crack_frames, write_crack_bag
from edge_perception.msg import CrackSegmentation
from edge_perception.nodes.common import DATA_QOS, SENSOR_QOS
import numpy as np
import pytest
from sensor_msgs.msg import Image

ROOT = pathlib.Path(__file__).resolve().parents[2]
MANIFEST = ROOT / 'src/edge_perception/models/crack/moe.yaml'
# Pooled IoU of the shipped top-2 mixture (v2 experts, issue 8) on these 5 samples, which were
# held out of the final experts' and gate's training: measured 0.666 through this chain (0.665 in
# tests/test_crack_models.py outside ROS; v1 measured 0.641), floor = measured - 0.08.
IOU_FLOOR = 0.58

pytestmark = pytest.mark.skipif(not MANIFEST.is_file(), reason='no shipped crack models')


def run_chain(tmp_path, namespace, extra_yaml=''):
    frames = crack_frames(depth_m=0.5, fx=1000.0)
    bag = write_crack_bag(tmp_path / 'cracks', frames)
    files = [ROOT / 'config/crack_inspection.yaml']
    if extra_yaml:
        extra = tmp_path / 'extra.yaml'
        extra.write_text(extra_yaml)
        files.append(extra)
    graph = NodeGraph(['crack_segmentation'], files, namespace=namespace).spin_in_background()
    try:
        node = graph.nodes['crack_segmentation']
        assert wait_until(lambda: node.segmenter is not None, 60.0), node.model_error
        topics = {node.params['segmentation_topic']: (CrackSegmentation, DATA_QOS),
                  node.params['mask_topic']: (Image, SENSOR_QOS)}
        probe = graph.add_node(Probe(graph.context, topics, namespace=namespace))
        # Matched, not merely created: reliable messages sent before the match are lost.
        assert wait_until(lambda: all(probe.matched_publishers(t) > 0 for t in topics), 15.0)
        # Wait only for the inputs this configuration subscribes to.
        inputs = ['/' + node.params[key] for key in ('image_topic', 'camera_info_topic',
                                                     'depth_topic') if node.params[key]]
        player = play_bag(graph, bag, inputs)
        last = frames[-1][0] + player.offset_s
        seg_topic = node.params['segmentation_topic']
        probe.wait_for(lambda r: any(stamp_to_seconds(m.header.stamp) >= last - 1e-6
                                     for m, _ in r[seg_topic]), 30.0)
        by_stamp = {round(f[0] + player.offset_s, 6): f for f in frames}
        return by_stamp, [m for m, _ in probe.snapshot(seg_topic)]
    finally:
        graph.shutdown()


def test_masks_widths_and_severity(tmp_path):
    by_stamp, results = run_chain(tmp_path, 'crack')
    assert len(results) >= len(by_stamp) - 1, 'frames lost'
    tp = fp = fn = 0
    for msg in results:
        stamp, rgb, _, gt, name, k = by_stamp[round(stamp_to_seconds(msg.header.stamp), 6)]
        assert msg.header.frame_id == 'inspection_camera_optical_frame'
        assert msg.mask.header.stamp == msg.header.stamp
        mask = image_to_numpy(msg.mask) > 127
        assert mask.shape == gt.shape
        counts = segmentation_metrics(mask, gt)
        tp, fp, fn = tp + counts['tp'], fp + counts['fp'], fn + counts['fn']
        assert msg.strategy == 'topk' and len(msg.experts_used) == 2
        assert math.isclose(sum(msg.expert_weights), 1.0, rel_tol=1e-4)
        assert msg.metric_valid and math.isclose(msg.depth_m, 0.5, rel_tol=1e-3)
        # width_mm = width_px * Z / fx, exactly, at this flat depth.
        assert math.isclose(msg.max_width_mm, msg.max_width_px * 0.5 / 1000.0 * 1000.0,
                            rel_tol=1e-3)
        expected = 'repair' if msg.max_width_mm >= 0.1 else 'monitor'
        assert msg.severity_label == expected
        print(f'{name}: IoU {counts["iou"]:.3f}, length {msg.length_mm:.0f} mm, max width '
              f'{msg.max_width_mm:.2f} mm -> {msg.severity_label}, experts {msg.experts_used}')
    pooled = tp / (tp + fp + fn)
    print(f'crack chain: pooled IoU {pooled:.3f} over {len(results)} frames')
    assert pooled >= IOU_FLOOR


def test_without_intrinsics_millimetres_are_invalid_not_guessed(tmp_path):
    _, results = run_chain(tmp_path, 'crack_nocal',
                           '/**/crack_segmentation:\n  ros__parameters:\n'
                           '    camera_info_topic: ""\n')
    assert results
    for msg in results:
        assert not msg.metric_valid
        assert math.isnan(msg.max_width_mm) and math.isnan(msg.length_mm)
        assert msg.max_width_px > 0
        assert msg.severity == CrackSegmentation.SEVERITY_UNKNOWN
        assert np.isfinite(msg.length_px)
