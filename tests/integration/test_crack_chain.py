"""The crack chain over real DDS: image + depth + camera info -> crack_segmentation.

The bundled DeepCrack samples are seen twice, on a flat surface at 0.2 m through two focal
lengths (one pixel spans 0.02 mm, then 0.004 mm), so that by the ground-truth masks some cracks
are below 0.1 mm (monitor) and some above (repair). Asserted against the ground truth the test
owns: the published mask's IoU, each frame's max width in px, and the severity class where the
ground-truth width in mm is clearly on one side of the bin edge; and the header and the
conversion width_mm = width_px * Z / fx. Without camera info the millimetre fields are flagged
invalid and the severity is UNKNOWN, never guessed. The tolerances are for any decent model (the
crack models are retrained from time to time), not today's exact outputs.
"""
import math
import pathlib

from edge_perception.conversions import image_to_numpy, stamp_to_seconds
from edge_perception.core.crack import crack_geometry, metric_widths, segmentation_metrics
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
# Pooled IoU of the shipped top-2 mixture (v3 experts, issue 8) on these 5 samples, which were
# held out of the final experts' and gate's training: measured 0.681 through this chain (0.680 in
# tests/test_crack_models.py outside ROS; v2 0.666, v1 0.641), floor = measured - 0.08.
IOU_FLOOR = 0.60
DEPTH_M = 0.2
FOCAL_PX = (10000.0, 50000.0)      # 0.02 and 0.004 mm per pixel at DEPTH_M
# Max width (px) of the published mask vs the ground-truth mask's (both by core.crack_geometry):
# within WIDTH_TOLERANCE_PX or WIDTH_TOLERANCE_REL of the ground truth, whichever is larger.
# Measured with the v3 top-2 mixture: errors -1.9, +1.9, +2.6, +1.7, +1.3 px on the five
# samples (ground truth 19.9, 23.2, 9.8, 3.0, 9.0 px; v1: -0.9, +0.5, +2.6, +0.5, +1.3).
WIDTH_TOLERANCE_PX = 4.0
WIDTH_TOLERANCE_REL = 0.35
REPAIR_MM = 0.1                    # the severity bin edge (config/crack_inspection.yaml)

pytestmark = pytest.mark.skipif(not MANIFEST.is_file(), reason='no shipped crack models')


def two_scale_frames():
    """Return the crack frames at DEPTH_M through each focal length of FOCAL_PX, 1 s apart."""
    frames = []
    for fx in FOCAL_PX:
        frames += crack_frames(depth_m=DEPTH_M, fx=fx, period_s=1.0,
                               start_s=200.0 + len(frames) * 1.0)
    return frames


def truth_width(gt, depth, k):
    """Return the ground-truth mask's (max width px, max width mm)."""
    geometry = crack_geometry(gt)
    metric = metric_widths(geometry, gt, depth, k[0], k[4])
    return geometry.max_width_px, metric.max_width_mm


def run_chain(tmp_path, namespace, extra_yaml=''):
    frames = two_scale_frames()
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
    stamps = [round(stamp_to_seconds(m.header.stamp), 6) for m in results]
    assert len(set(stamps)) == len(stamps) and set(stamps) <= set(by_stamp)
    # Sensor QoS keeps the freshest frame: one frame may be skipped under load, not more.
    assert len(results) >= len(by_stamp) - 1, f'{len(by_stamp) - len(results)} frames lost'
    tp = fp = fn = 0
    judged = {}           # expected severity label -> frames where it was asserted
    for msg in results:
        stamp, rgb, depth, gt, name, k = by_stamp[round(stamp_to_seconds(msg.header.stamp), 6)]
        assert msg.header.frame_id == 'inspection_camera_optical_frame'
        assert msg.mask.header.stamp == msg.header.stamp
        mask = image_to_numpy(msg.mask) > 127
        assert mask.shape == gt.shape
        counts = segmentation_metrics(mask, gt)
        tp, fp, fn = tp + counts['tp'], fp + counts['fp'], fn + counts['fn']
        assert msg.strategy == 'topk' and len(msg.experts_used) == 2
        assert math.isclose(sum(msg.expert_weights), 1.0, rel_tol=1e-4)
        assert msg.metric_valid and math.isclose(msg.depth_m, DEPTH_M, rel_tol=1e-3)
        # width_mm = width_px * Z / fx, exactly, at this flat depth.
        assert math.isclose(msg.max_width_mm, msg.max_width_px * DEPTH_M / k[0] * 1000.0,
                            rel_tol=1e-3)
        # The class is the bin of the published max width (the documented rule) ...
        assert msg.severity_label == ('repair' if msg.max_width_mm >= REPAIR_MM else 'monitor')
        # ... and against the ground truth: the width in px, and the class where unambiguous.
        true_px, true_mm = truth_width(gt, depth, k)
        tolerance = max(WIDTH_TOLERANCE_PX, WIDTH_TOLERANCE_REL * true_px)
        assert abs(msg.max_width_px - true_px) <= tolerance, (
            f'{name}: max width {msg.max_width_px:.1f} px, ground truth {true_px:.1f} px')
        # Severity is asserted where every width within the tolerance gives the same class.
        mm_per_px = true_mm / true_px
        low, high = (true_px - tolerance) * mm_per_px, (true_px + tolerance) * mm_per_px
        if low >= REPAIR_MM or high < REPAIR_MM:
            expected = 'repair' if true_mm >= REPAIR_MM else 'monitor'
            judged.setdefault(expected, []).append(name)
            assert msg.severity_label == expected, (
                f'{name} at fx {k[0]:.0f}: ground truth {true_mm:.3f} mm -> {expected}, '
                f'got {msg.severity_label} ({msg.max_width_mm:.3f} mm)')
    # The scene splits the bins: both classes were asserted, on several frames each.
    assert len(judged.get('monitor', [])) >= 2 and len(judged.get('repair', [])) >= 2, judged
    pooled = tp / (tp + fp + fn)
    assert pooled >= IOU_FLOOR, f'pooled IoU {pooled:.3f}'


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
