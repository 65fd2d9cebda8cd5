"""Waste detector node: colour image (+ registered depth, camera info) in, DetectionArray out.

YOLO (.pt, .onnx on ONNX Runtime, .engine on TensorRT) through edge_perception.core.detector;
3D position and pick point from depth (core.depth_fusion); optional material of each item from a
crop classifier (core.material). Thin glue: parameters, conversion, wiring, diagnostics.
"""
import math
import pathlib
import time

from edge_perception.conversions import color_to_rgb, detection_box_xyxy, ImageConversionError
from edge_perception.conversions import numpy_to_image, set_detection_box, stamp_to_seconds
from edge_perception.core.depth_fusion import DepthFusionError, object_position, pick_point
from edge_perception.msg import Detection, DetectionArray
from edge_perception.nodes import vision_msgs_bridge
from edge_perception.nodes.common import (copy_header, DATA_QOS, declare_parameters,
                                          Diagnostics, InputMonitor, LATCHED_QOS, Param,
                                          SENSOR_QOS, with_live)
from edge_perception.nodes.lifecycle import AUTOSTART_PARAM, ManagedNode
from edge_perception.nodes.spinning import run_node
import numpy as np
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Header

PARAMS = [
    Param('image_topic', 'camera/image_raw', 'Colour image (rgb8, bgr8, rgba8, bgra8, mono8)'),
    Param('depth_topic', 'camera/depth_registered/image_raw',
          "Depth registered to the colour image (16UC1 mm / 32FC1 m); '' disables 3D"),
    Param('camera_info_topic', 'camera/camera_info',
          "Colour camera info (intrinsics for 3D); '' disables 3D"),
    Param('detections_topic', 'detections', 'DetectionArray output'),
    Param('debug_image_topic', 'detections/debug_image',
          'Annotated image, drawn only while someone subscribes'),
    Param('model_path', '', "YOLO model (.pt, .onnx, .engine); '' = the shipped waste model"),
    Param('class_names', Parameter.Type.STRING_ARRAY,
          "Expected class names in id order; the model's must match (unset = accept the model's)"),
    Param('confidence_threshold', 0.25, 'Minimum detection score', 0.0, 1.0),
    Param('iou_threshold', 0.45, 'NMS IoU threshold', 0.0, 1.0),
    Param('imgsz', 0, 'Network input size (0 = the size the model was trained/exported at)',
          0, 4096),
    Param('device', 'cpu', "Inference device: 'cpu' or 'cuda:N' (.engine always uses CUDA)"),
    Param('cpu_threads', 0, 'CPU inference threads (0 = the library default: one per core, '
          'slow when cores are shared with other nodes)', 0, 64),
    Param('max_detections', 100, 'Detections per frame', 1, 1000),
    Param('material_model_path', '',
          "Material crop classifier (.onnx); '' = the shipped one; 'none' disables"),
    Param('material_threads', 1, 'ONNX Runtime threads of the material classifier', 1, 16),
    Param('min_depth_m', 0.1, 'Nearer depth samples are invalid, m', 0.0, 100.0),
    Param('max_depth_m', 10.0, 'Farther depth samples are invalid, m', 0.1, 1000.0),
    Param('core_fraction', 0.5, 'Without a mask: central part of the box used for depth',
          0.05, 1.0),
    Param('min_depth_samples', 10, 'Valid depth samples needed for a 3D position', 1, 100000),
    Param('max_depth_age_s', 0.05, 'Depth frame must be this close in stamp to the image, s',
          0.0, 5.0),
    Param('stale_after_s', 1.0, 'An input older than this is reported stale, s', 0.01, 60.0),
    Param('model_retry_s', 5.0, 'Retry loading a missing/corrupt model this often, s',
          0.1, 3600.0),
    Param('vision_msgs_enabled', True, 'Also publish vision_msgs Detection2DArray, '
          'Detection3DArray (with depth) and a latched LabelInfo, when vision_msgs imports'),
    Param('detections_2d_topic', 'detections_2d', 'vision_msgs/Detection2DArray output'),
    Param('detections_3d_topic', 'detections_3d',
          'vision_msgs/Detection3DArray output (detections with a valid 3D position)'),
    Param('label_info_topic', 'label_info', 'vision_msgs/LabelInfo (latched): class id -> name'),
    AUTOSTART_PARAM,
]
# Applied at run time: thresholds, depth fusion, staleness and retry timing. Topics, the models
# and where they run are read-only (change them with a restart, or cleanup + configure).
PARAMS = with_live(PARAMS, [
    'confidence_threshold', 'iou_threshold', 'max_detections', 'min_depth_m', 'max_depth_m',
    'core_fraction', 'min_depth_samples', 'max_depth_age_s', 'stale_after_s', 'model_retry_s'])


def shipped_model(folder, suffixes=('.onnx',)):
    """Return the model shipped in edge_perception/models/<folder>/ (first match by suffix)."""
    base = pathlib.Path(__file__).resolve().parents[1] / 'models' / folder
    for suffix in suffixes:
        found = sorted(base.glob(f'*{suffix}'))
        if found:
            return found[0]
    raise FileNotFoundError(f'model_path is empty and no {"/".join(suffixes)} model is '
                            f'shipped in {base}')


class DetectorNode(ManagedNode):
    """Detects waste items per frame with 3D position, pick point and material (managed node)."""

    def __init__(self, node_name='detector', params=None, **kwargs):
        super().__init__(node_name, **kwargs)
        p = self.params = declare_parameters(self, params or PARAMS,
                                             self.on_parameters_changed)
        self.image_input = InputMonitor('image', p['stale_after_s'])
        self.side = None
        self.detector = None
        self.material = None
        self.model_error = 'not configured'
        self.material_error = ''
        self.three_d_note = ''
        self._next_load_try = 0.0
        self.pub = self.debug_pub = self._image_sub = None
        self.vision = None           # vision_msgs publishers (2D, 3D, label info)
        self.diagnostics = Diagnostics(self, [self.image_input],
                                       extra=[self._model_status, self.lifecycle_status])
        if p['autostart']:
            self.autostart()

    # ---------------------------------------------------------------- lifecycle
    def on_configure(self, state):
        """Create the outputs and camera-side inputs, load and warm the models."""
        p = self.params
        self._open_camera_inputs()
        self.pub = self.create_publisher(DetectionArray, p['detections_topic'], DATA_QOS)
        self.debug_pub = self.create_publisher(Image, p['debug_image_topic'], SENSOR_QOS)
        self._create_vision_publishers()
        self._load_models()
        return TransitionCallbackReturn.SUCCESS

    def _release(self):
        self._close_camera_inputs()
        for pub in [self.pub, self.debug_pub] + list((self.vision or {}).values()):
            if pub is not None:
                self.destroy_publisher(pub)
        self.pub = self.debug_pub = self.vision = None
        self.detector = self.material = None
        self.model_error, self.material_error = 'not configured', ''

    def on_parameters_changed(self, names):
        """Apply a run-time parameter set (thresholds from the next frame on)."""
        if self.detector is not None:
            self._apply_model_params()
        self._apply_input_timing()

    def _apply_model_params(self):
        p = self.params
        self.detector.conf = float(p['confidence_threshold'])
        self.detector.iou = float(p['iou_threshold'])
        self.detector.max_det = int(p['max_detections'])

    def _create_vision_publishers(self):
        p = self.params
        if not p['vision_msgs_enabled']:
            return
        if not vision_msgs_bridge.available():
            self.get_logger().info(vision_msgs_bridge.unavailable_reason())
            return
        from vision_msgs.msg import Detection2DArray, Detection3DArray, LabelInfo
        self.vision = {
            '2d': self.create_publisher(Detection2DArray, p['detections_2d_topic'], DATA_QOS),
            '3d': self.create_publisher(Detection3DArray, p['detections_3d_topic'], DATA_QOS),
            'labels': self.create_publisher(LabelInfo, p['label_info_topic'], LATCHED_QOS)}

    # ---------------------------------------------------------------- models
    def _load_models(self):
        """(Re)load the detector and material models; keep running and report on failure."""
        from edge_perception.core.detector import YoloDetector
        p = self.params
        self._next_load_try = time.monotonic() + p['model_retry_s']
        if self.detector is None:
            try:
                path = p['model_path'] or str(shipped_model('detector'))
                self.detector = YoloDetector(
                    path, conf=p['confidence_threshold'], iou=p['iou_threshold'],
                    imgsz=p['imgsz'] or None, device=p['device'],
                    class_names=p['class_names'] or None, max_det=p['max_detections'],
                    cpu_threads=p['cpu_threads'] or None)
                self.model_error = ''
                self._publish_label_info()
                self.get_logger().info(
                    f'detector: {path} ({self.detector.backend}, {self.detector.task}, '
                    f'imgsz {self.detector.imgsz}, classes {self.detector.class_names})')
            except Exception as error:  # noqa: BLE001 - reported, retried
                self.model_error = str(error)
                self.get_logger().error(f'detector model not loaded: {error}; retrying every '
                                        f"{p['model_retry_s']:.0f} s")
        self._load_material_model()

    def _load_material_model(self):
        """Load the material classifier unless disabled; report a failure, keep running."""
        p = self.params
        if self.material is None and p['material_model_path'] != 'none':
            from edge_perception.core.material import MaterialClassifier
            path = p['material_model_path'] or None
            try:
                self.material = MaterialClassifier(
                    path, intra_op_num_threads=p['material_threads'])
                self.material_error = ''
            except Exception as error:  # noqa: BLE001
                self.material_error = str(error)
                self.get_logger().error(f'material model not loaded: {error}')

    def _publish_label_info(self):
        if self.vision is None or self.detector is None:
            return
        header = Header(frame_id='', stamp=self.get_clock().now().to_msg())
        self.vision['labels'].publish(vision_msgs_bridge.label_info(
            header, self.detector.class_names, self._score_threshold()))

    def _score_threshold(self):
        """Return the score below which nothing is reported (LabelInfo's threshold)."""
        return self.params['confidence_threshold']

    # ---------------------------------------------------------------- frames
    def on_image(self, msg):
        """Detect, fuse depth, classify material, publish (freshest frame: sensor QoS)."""
        started = time.perf_counter()
        self.image_input.arrived()
        if self.detector is None or (self.material is None and self.material_error):
            if time.monotonic() >= self._next_load_try:
                self._load_models()
            if self.detector is None:
                return
        try:
            rgb = color_to_rgb(msg)
            result = self._infer(rgb)
        except (ImageConversionError, ValueError) as error:
            self.image_input.reject(str(error))
            self.get_logger().error(f'image rejected: {error}', throttle_duration_sec=5.0)
            return
        self.image_input.accepted()
        out = DetectionArray()
        out.header = copy_header(msg.header)
        out.inference_ms = float(result.inference_ms)
        depth, intrinsics, note = self._depth_and_intrinsics(msg, rgb.shape)
        self.three_d_note = note
        materials = self._classify(rgb, result)
        for det, material in zip(result.detections, materials):
            out.detections.append(self._to_msg(msg.header, det, depth, intrinsics, material))
        self.pub.publish(out)
        # The other outputs after the one the arm and tracker wait for, each built only while
        # someone subscribes (a vision_msgs conversion costs about as much as the publish).
        if self.vision is not None:
            if self.vision['2d'].get_subscription_count() > 0:
                self.vision['2d'].publish(vision_msgs_bridge.to_detection2d_array(out))
            if depth is not None and self.vision['3d'].get_subscription_count() > 0:
                self.vision['3d'].publish(vision_msgs_bridge.to_detection3d_array(
                    out, *((intrinsics.fx, intrinsics.fy) if intrinsics else (None, None))))
        self._publish_extras(msg.header, result)
        if self.debug_pub.get_subscription_count() > 0:
            self.debug_pub.publish(self._debug_image(msg.header, rgb, out, result))
        self.diagnostics.latency.add((time.perf_counter() - started) * 1e3)

    def _infer(self, rgb):
        """Run the model on one RGB frame; return a core.detector.DetectionResult."""
        return self.detector.detect(rgb)

    def _publish_extras(self, header, result):
        """Publish per-frame outputs beyond the detections (none here; subclasses add)."""

    def _depth_and_intrinsics(self, msg, shape):
        p = self.params
        height, width = shape[:2]
        if self.side.depth is None and self.side.camera_info is None:
            return None, None, ''
        intrinsics, reason = self.side.intrinsics(width, height)
        depth, depth_reason = self.side.depth_for(stamp_to_seconds(msg.header.stamp),
                                                  p['min_depth_m'], p['max_depth_m'])
        if depth is not None and depth.shape != (height, width):
            depth_reason = (f'depth {depth.shape[1]}x{depth.shape[0]} differs from the image '
                            f'{width}x{height}: register depth to the colour camera')
            self.side.depth.reject(depth_reason)
            depth = None
        note = '; '.join(r for r in (reason, depth_reason) if r)
        if note:
            self.get_logger().warning(f'3D invalid: {note}', throttle_duration_sec=5.0)
        return depth, intrinsics, note

    def _classify(self, rgb, result):
        """Material of each detection (None where unknown), all crops in one batch."""
        detections = result.detections
        if self.material is None or not detections:
            return [None] * len(detections)
        from edge_perception.core.material import crop_for_box
        crops, index = [], []
        for i, det in enumerate(detections):
            try:
                crops.append(crop_for_box(rgb, det.box_xyxy))
                index.append(i)
            except ValueError:
                continue   # degenerate box: no material
        results = [None] * len(detections)
        for i, res in zip(index, self.material.classify(crops)):
            results[i] = res
        return results

    def _to_msg(self, header, det, depth, intrinsics, material):
        p = self.params
        d = Detection()
        d.header = copy_header(header)
        d.class_id, d.class_name, d.score = int(det.class_id), det.class_name, float(det.score)
        set_detection_box(d, det.box_xyxy)
        d.track_id = Detection.TRACK_ID_NONE
        d.position_depth_std_m = math.nan
        if det.mask is not None:
            d.has_mask = True
            d.mask = numpy_to_image(det.mask.astype(np.uint8) * 255, 'mono8', copy_header(header))
        if material is not None:
            d.material, d.material_confidence = material.material, float(material.confidence)
        shape_mask = det.mask if det.mask is not None else det.box_xyxy
        try:
            if depth is not None:   # invalid (never guessed) without depth or intrinsics
                pos = object_position(depth, det.box_xyxy, det.mask, intrinsics,
                                      core_fraction=p['core_fraction'],
                                      min_samples=p['min_depth_samples'])
                if pos.valid:
                    d.position_valid = True
                    d.position.x, d.position.y, d.position.z = pos.xyz
                    d.position_depth_std_m = float(pos.depth_std_m)
            pick = pick_point(shape_mask, depth, intrinsics)
            d.pick_u, d.pick_v = float(pick.u), float(pick.v)
            if pick.valid:
                d.pick_point_valid = True
                d.pick_point.x, d.pick_point.y, d.pick_point.z = pick.xyz
        except DepthFusionError as error:
            self.three_d_note = str(error)
        return d

    def _debug_image(self, header, rgb, out, result):
        """Boxes, labels and pick points of `out` drawn over the frame (bgr8)."""
        import cv2
        canvas = np.ascontiguousarray(rgb[:, :, ::-1])
        for d in out.detections:
            x0, y0, x1, y1 = (int(v) for v in detection_box_xyxy(d))
            cv2.rectangle(canvas, (x0, y0), (x1, y1), (0, 200, 0), 2)
            label = f'{d.class_name} {d.score:.2f}'
            if d.material:
                label += f' {d.material}'
            if d.position_valid:
                label += f' {d.position.z:.2f}m'
            cv2.putText(canvas, label, (x0, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                        (0, 200, 0), 1)
            cv2.drawMarker(canvas, (int(d.pick_u), int(d.pick_v)), (0, 0, 255),
                           cv2.MARKER_CROSS, 12, 2)
        return numpy_to_image(canvas, 'bgr8', copy_header(header))

    def _model_status(self):
        from diagnostic_msgs.msg import DiagnosticStatus
        values = {'model': str(getattr(self.detector, 'model_path', self.params['model_path'])),
                  'model_loaded': str(self.detector is not None),
                  'material_loaded': str(self.material is not None)}
        if self.detector is None:
            return DiagnosticStatus.ERROR, f'model not loaded: {self.model_error}', values
        if self.material_error:
            return DiagnosticStatus.WARN, f'material model: {self.material_error}', values
        if self.three_d_note:
            return DiagnosticStatus.WARN, f'3D invalid: {self.three_d_note}', values
        return DiagnosticStatus.OK, '', values


def main(args=None):
    """Entry point: `detector_node`."""
    run_node(DetectorNode, args)


if __name__ == '__main__':
    main()
