"""Crack segmentation node: image (+ depth, camera info) in; mask, CrackSegmentation out.

A single expert or a Top-K mixture of experts (edge_perception.core.moe), crack geometry and
millimetre widths (core.crack: width_mm = width_px * Z / fx at the crack's depth), severity bins
(default GB 50204-2015: < 0.1 mm monitor, >= 0.1 mm repair). Millimetre fields are flagged
invalid without depth or intrinsics, never guessed.
"""
import math
import time

from edge_perception.conversions import color_to_rgb, ImageConversionError, numpy_to_image
from edge_perception.conversions import stamp_to_seconds
from edge_perception.core.crack import (crack_geometry, metric_widths,
                                        remove_small_components, severity)
from edge_perception.msg import CrackSegmentation
from edge_perception.nodes.common import (copy_header, DATA_QOS, declare_parameters,
                                          Diagnostics, InputMonitor, Param, SENSOR_QOS,
                                          with_live)
from edge_perception.nodes.lifecycle import AUTOSTART_PARAM, ManagedNode
from edge_perception.nodes.spinning import run_node
import numpy as np
from rclpy.lifecycle import TransitionCallbackReturn
from sensor_msgs.msg import Image

STRATEGIES = ('single', 'hard', 'soft', 'topk')

PARAMS = [
    Param('image_topic', 'camera/image_raw', 'Colour image'),
    Param('depth_topic', 'camera/depth_registered/image_raw',
          "Depth registered to the image (16UC1 mm / 32FC1 m); '' disables millimetres"),
    Param('camera_info_topic', 'camera/camera_info', "Camera info; '' disables millimetres"),
    Param('segmentation_topic', 'crack/segmentation', 'CrackSegmentation output'),
    Param('mask_topic', 'crack/mask', 'mono8 mask output (255 = crack), input header'),
    Param('debug_image_topic', 'crack/debug_image',
          'Overlay image, drawn only while someone subscribes'),
    Param('manifest_path', '', "Experts + gate manifest (YAML); '' = the shipped models"),
    Param('strategy', 'topk', 'Fusion strategy (paper eq. 5-7)', choices=STRATEGIES),
    Param('top_k', 2, 'Experts fused by topk', 1, 16),
    Param('expert', '', "Expert for strategy 'single' ('' = the manifest's default)"),
    Param('threshold', 0.0, "Crack probability threshold of the fused map (0 = the manifest's, "
          'calibrated per strategy on validation data)', 0.0, 1.0),
    Param('max_side', 0, 'Downscale images whose longer side exceeds this (0 = native)',
          0, 8192),
    Param('threads', 2, 'ONNX Runtime threads per model', 1, 16),
    Param('min_area_px', 20, 'Crack components smaller than this are removed from the mask '
          'before measuring and publishing', 0, 1000000),
    Param('severity_bins_mm', [0.1], 'Max-width bin edges, mm (GB 50204-2015: 0.1)'),
    Param('severity_labels', ['monitor', 'repair'], 'One label per bin (len(bins) + 1)'),
    Param('min_depth_m', 0.1, 'Nearer depth samples are invalid, m', 0.0, 100.0),
    Param('max_depth_m', 20.0, 'Farther depth samples are invalid, m', 0.1, 1000.0),
    Param('max_depth_age_s', 0.05, 'Depth must be this close in stamp to the image, s',
          0.0, 5.0),
    Param('stale_after_s', 2.0, 'An input older than this is reported stale, s', 0.01, 60.0),
    Param('model_retry_s', 5.0, 'Retry loading missing/corrupt models this often, s',
          0.1, 3600.0),
    AUTOSTART_PARAM,
]
# Applied at run time: fusion (the segmenter is rebuilt), measurement, severity, depth and
# timing. Topics, the manifest and the model runtime's size and threads are read-only.
PARAMS = with_live(PARAMS, [
    'strategy', 'top_k', 'expert', 'threshold', 'min_area_px', 'severity_bins_mm',
    'severity_labels', 'min_depth_m', 'max_depth_m', 'max_depth_age_s', 'stale_after_s',
    'model_retry_s'])
_SEGMENTER_PARAMS = {'strategy', 'top_k', 'expert', 'threshold'}


class CrackSegmentationNode(ManagedNode):
    """Segments cracks and measures them (managed node: see nodes/lifecycle.py)."""

    def __init__(self, **kwargs):
        super().__init__('crack_segmentation', **kwargs)
        p = self.params = declare_parameters(self, PARAMS, self.on_parameters_changed,
                                             self._check_parameters)
        self._check_parameters(p)
        self.image_input = InputMonitor('image', p['stale_after_s'])
        self.side = None
        self.segmenter = None
        self.model_error = 'not configured'
        self.metric_note = ''
        self._next_load_try = 0.0
        self.seg_pub = self.mask_pub = self.debug_pub = self._image_sub = None
        self.diagnostics = Diagnostics(self, [self.image_input],
                                       extra=[self._model_status, self.lifecycle_status])
        if p['autostart']:
            self.autostart()

    # ---------------------------------------------------------------- lifecycle
    def on_configure(self, state):
        """Create the outputs and camera-side inputs, load and warm the experts and gate."""
        p = self.params
        self._open_camera_inputs()
        self.seg_pub = self.create_publisher(CrackSegmentation, p['segmentation_topic'],
                                             DATA_QOS)
        self.mask_pub = self.create_publisher(Image, p['mask_topic'], SENSOR_QOS)
        self.debug_pub = self.create_publisher(Image, p['debug_image_topic'], SENSOR_QOS)
        self._load()
        return TransitionCallbackReturn.SUCCESS

    def _release(self):
        self._close_camera_inputs()
        for pub in (self.seg_pub, self.mask_pub, self.debug_pub):
            if pub is not None:
                self.destroy_publisher(pub)
        self.seg_pub = self.mask_pub = self.debug_pub = None
        self.segmenter = None
        self.model_error = 'not configured'

    def on_parameters_changed(self, names):
        """Apply a run-time parameter set; a fusion change rebuilds (and warms) the segmenter."""
        self._apply_input_timing()
        if names & _SEGMENTER_PARAMS and self.side is not None:
            self._load()

    @staticmethod
    def _check_parameters(values):
        if len(values['severity_labels']) != len(values['severity_bins_mm']) + 1:
            raise ValueError('severity_labels needs one more entry than severity_bins_mm')

    def _load(self):
        from edge_perception.core.moe import CrackSegmenter
        p = self.params
        self._next_load_try = time.monotonic() + p['model_retry_s']
        try:
            self.segmenter = CrackSegmenter(
                p['manifest_path'] or None, strategy=p['strategy'], k=p['top_k'],
                expert=p['expert'] or None, threshold=p['threshold'] or None,
                intra_op_num_threads=p['threads'], max_side=p['max_side'] or None)
            # Off the frame path: the first segment() builds ONNX Runtime's kernels and the
            # first crack_geometry() imports skimage (0.9 s + 0.2 s cold, 0.09 + 0.02 s after).
            self.segmenter.warm_up()
            crack_geometry(np.zeros((8, 8), bool))
            self.model_error = ''
            self.get_logger().info(f"crack models loaded: strategy {p['strategy']}, "
                                   f'experts {self.segmenter.expert_names}')
        except Exception as error:  # noqa: BLE001 - reported in diagnostics, retried
            self.segmenter = None
            self.model_error = str(error)
            self.get_logger().error(f'crack models not loaded: {error}')

    def on_image(self, msg):
        """Segment, measure, publish mask and CrackSegmentation with the image header."""
        started = time.perf_counter()
        self.image_input.arrived()
        if self.segmenter is None:
            if time.monotonic() >= self._next_load_try:
                self._load()
            if self.segmenter is None:
                return
        try:
            rgb = color_to_rgb(msg)
            result = self.segmenter.segment(rgb)
        except (ImageConversionError, ValueError) as error:
            self.image_input.reject(str(error))
            self.get_logger().error(f'image rejected: {error}', throttle_duration_sec=5.0)
            return
        self.image_input.accepted()
        p = self.params
        # Measure and publish the mask without specks, so the published mask is what was
        # measured.
        mask, _ = remove_small_components(result.mask, p['min_area_px'])
        geometry = crack_geometry(mask, p['min_area_px'])
        depth, fx, fy = self._depth_and_focal(msg, rgb.shape)
        metric = metric_widths(geometry, mask, depth, fx, fy)
        code, label = severity(metric.max_width_mm, metric.metric_valid,
                               p['severity_bins_mm'], p['severity_labels'],
                               crack_found=geometry.component_count > 0)
        mask_msg = numpy_to_image(mask.astype(np.uint8) * 255, 'mono8',
                                  copy_header(msg.header))
        out = CrackSegmentation()
        out.header = copy_header(msg.header)
        out.mask = mask_msg
        out.crack_pixel_fraction = float(geometry.pixel_fraction)
        out.component_count = int(geometry.component_count)
        out.length_px = float(geometry.length_px)
        out.max_width_px = float(geometry.max_width_px)
        out.mean_width_px = float(geometry.mean_width_px)
        out.metric_valid = bool(metric.metric_valid)
        out.depth_m = float(metric.depth_m)
        nan = math.nan
        out.length_mm = float(metric.length_mm) if metric.metric_valid else nan
        out.max_width_mm = float(metric.max_width_mm) if metric.metric_valid else nan
        out.mean_width_mm = float(metric.mean_width_mm) if metric.metric_valid else nan
        out.severity, out.severity_label = int(code), label
        out.strategy = p['strategy']
        out.experts_used = list(result.experts_used)
        out.expert_weights = [float(w) for w in result.expert_weights]
        out.inference_ms = float(result.inference_ms)
        self.seg_pub.publish(out)
        self.mask_pub.publish(mask_msg)
        if self.debug_pub.get_subscription_count() > 0:
            overlay = rgb.copy()
            overlay[mask] = (255, 40, 40)
            self.debug_pub.publish(numpy_to_image(overlay, 'rgb8', copy_header(msg.header)))
        self.diagnostics.latency.add((time.perf_counter() - started) * 1e3)

    def _depth_and_focal(self, msg, shape):
        height, width = shape[:2]
        if self.side.depth is None or self.side.camera_info is None:
            self.metric_note = 'no depth or camera_info topic: millimetres disabled'
            return None, None, None
        intrinsics, reason = self.side.intrinsics(width, height)
        depth, depth_reason = self.side.depth_for(stamp_to_seconds(msg.header.stamp),
                                                  self.params['min_depth_m'],
                                                  self.params['max_depth_m'])
        if depth is not None and depth.shape != (height, width):
            depth_reason = (f'depth {depth.shape[1]}x{depth.shape[0]} differs from the image '
                            f'{width}x{height}')
            self.side.depth.reject(depth_reason)
            depth = None
        self.metric_note = '; '.join(r for r in (reason, depth_reason) if r)
        if intrinsics is None or depth is None:
            return None, None, None
        return depth, intrinsics.fx, intrinsics.fy

    def _model_status(self):
        from diagnostic_msgs.msg import DiagnosticStatus
        values = {'strategy': self.params['strategy']}
        if self.segmenter is None:
            return DiagnosticStatus.ERROR, f'crack models not loaded: {self.model_error}', values
        values['experts'] = ','.join(self.segmenter.expert_names)
        if self.metric_note:
            return DiagnosticStatus.WARN, f'millimetres invalid: {self.metric_note}', values
        return DiagnosticStatus.OK, '', values


def main(args=None):
    """Entry point: `crack_segmentation_node`."""
    run_node(CrackSegmentationNode, args)


if __name__ == '__main__':
    main()
