"""Waste segmentation node: per-pixel materials, and one Detection per region of one material.

Colour image (+ registered depth, camera info) in. The semantic model (core.waste_segmentation,
ONNX Runtime) labels every pixel background or one of six materials; the material crop
classifier relabels each region with the material both agree on (core.region_materials; off
with `material_model_path: none`); core.semantic_regions cuts the labels into regions.
Everything after that is
the detector node's (this class extends it): 3D position and pick point from registered depth
on the region's mask, DetectionArray with masks, vision_msgs, debug image, diagnostics,
lifecycle and model retry. So the tracker, the markers and an arm consume it unchanged. Extra
output: the label image (mono8, pixel = label 0..6, the input image's header).
"""
from dataclasses import dataclass, field
import time
from typing import List, Optional

from edge_perception.conversions import numpy_to_image
from edge_perception.core import region_materials, semantic_regions
from edge_perception.core.detector import DetectionResult
from edge_perception.core.material import MaterialResult
from edge_perception.nodes import detector_node
from edge_perception.nodes.common import copy_header, Param, SENSOR_QOS, with_live
from edge_perception.nodes.detector_node import DetectorNode
from edge_perception.nodes.spinning import run_node
import numpy as np
from sensor_msgs.msg import Image

# The detector's camera, depth-fusion, output and timing parameters apply as they are; the
# YOLO and crop-classifier ones do not.
_NOT_APPLICABLE = {'model_path', 'class_names', 'confidence_threshold', 'iou_threshold',
                   'imgsz', 'device', 'max_detections', 'material_model_path',
                   'cpu_threads', 'detections_topic', 'debug_image_topic'}
PARAMS = [
    Param('detections_topic', 'segmentation/detections',
          'DetectionArray output: one detection (with mask) per region of one material'),
    Param('debug_image_topic', 'segmentation/debug_image',
          'Labels blended over the image, drawn only while someone subscribes'),
    Param('label_image_topic', 'segmentation/labels',
          'mono8 label image (0 background, then the class names in order)'),
    Param('model_path', '', "Semantic segmentation model (.onnx); '' = the shipped one"),
    Param('cpu_threads', 1, 'ONNX Runtime intra-op threads', 1, 64),
    Param('edge_refinement', True,
          "Guided-filter the segmenter's probabilities with the image so region outlines "
          'follow its edges (about 9 ms a 640x480 frame; false = plain upsampling)'),
    Param('min_region_area_px', semantic_regions.MIN_REGION_AREA_PX,
          'Regions with fewer pixels are not reported',
          1, 10_000_000),
    Param('min_region_score', 0.5, 'Regions whose mean pixel confidence is lower are not '
          'reported', 0.0, 1.0),
    Param('max_detections', 50, 'Regions per frame (largest first)', 1, 1000),
    Param('material_model_path', '',
          'Material crop classifier that relabels each region with the material it and the '
          "segmenter agree on (.onnx); '' = the shipped one; 'none' = segmenter labels only"),
    Param('material_vote_below', region_materials.VOTE_BELOW,
          'Regions the segmenter gives one material at least this probability (region mean) '
          'keep it without a classifier run (1 = classify all)', 0.0, 1.0),
    Param('material_exponent', region_materials.EXPONENT,
          "Weight of the classifier's vote against the segmenter's "
          '(p_classifier ** exponent * p_segmenter; 0 = the segmenter alone)', 0.0, 8.0),
    Param('material_crop', region_materials.CROP_MODE,
          "What the classifier sees of a region: 'box' = its padded box (surface and "
          "neighbours included), 'masked' = the box painted outside the region",
          choices=region_materials.CROP_MODES),
] + [p for p in detector_node.PARAMS if p.name not in _NOT_APPLICABLE]
PARAMS = with_live(PARAMS, [p.name for p in PARAMS if p.live] + [
    'min_region_area_px', 'min_region_score', 'max_detections', 'material_exponent',
    'material_vote_below', 'material_crop', 'edge_refinement'])

# Label colours of the debug image (RGB), background transparent.
LABEL_COLOURS_RGB = np.array([(0, 0, 0), (180, 110, 40), (60, 200, 200), (160, 160, 160),
                              (240, 240, 240), (230, 60, 60), (40, 40, 40)], np.uint8)


@dataclass
class RegionResult(DetectionResult):
    """A frame's regions, with the labels they came from and each region's material."""

    labels: Optional[np.ndarray] = None
    materials: List[MaterialResult] = field(default_factory=list)


class WasteSegmentationNode(DetectorNode):
    """Labels every pixel with a material and reports each region as a Detection (managed)."""

    def __init__(self, **kwargs):
        self.label_pub = None
        self.refiner = None
        super().__init__('waste_segmentation', PARAMS, **kwargs)

    def on_configure(self, state):
        """Create the detector's outputs and inputs, plus the label image publisher."""
        self.label_pub = self.create_publisher(Image, self.params['label_image_topic'],
                                               SENSOR_QOS)
        return super().on_configure(state)

    def _release(self):
        self.refiner = None
        if self.label_pub is not None:
            self.destroy_publisher(self.label_pub)
            self.label_pub = None
        super()._release()

    def _apply_model_params(self):
        # Region filters are read per frame; the refiner takes the live material parameters,
        # and regions too small to be reported are not classified either.
        if self.detector is not None:
            self.detector.edge_refinement = bool(self.params['edge_refinement'])
        if self.refiner is not None:
            p = self.params
            self.refiner.exponent = float(p['material_exponent'])
            self.refiner.vote_below = float(p['material_vote_below'])
            self.refiner.crop_mode = p['material_crop']
            self.refiner.min_area_px = int(p['min_region_area_px'])
            self.refiner.max_regions = int(p['max_detections'])

    def _score_threshold(self):
        return self.params['min_region_score']

    def _load_models(self):
        """(Re)load the segmentation model; keep running and report on failure."""
        from edge_perception.core.waste_segmentation import WasteSegmenter
        p = self.params
        self._next_load_try = time.monotonic() + p['model_retry_s']
        self._load_material_model()
        if self.detector is not None:
            self._make_refiner()
            return
        try:
            self.detector = WasteSegmenter(p['model_path'] or None,
                                           intra_op_num_threads=p['cpu_threads'],
                                           edge_refinement=p['edge_refinement'])
            self.model_error = ''
            self._publish_label_info()
            self.get_logger().info(f'waste segmentation: {self.detector.model_path} (classes '
                                   f'{self.detector.class_names})')
        except Exception as error:  # noqa: BLE001 - reported, retried
            self.model_error = str(error)
            self.get_logger().error(f'segmentation model not loaded: {error}; retrying every '
                                    f"{p['model_retry_s']:.0f} s")
            return
        self._make_refiner()

    def _make_refiner(self):
        """Pair the segmenter with the material classifier once both are loaded."""
        if self.refiner is not None or self.material is None or self.detector is None:
            return
        try:
            self.refiner = region_materials.RegionMaterialRefiner(self.material,
                                                                  self.detector.class_names)
        except ValueError as error:
            # Classes that do not match the labels: the segmenter's labels stay, and it says so.
            self.material, self.material_error = None, str(error)
            self.get_logger().error(f'material model not used: {error}')
            return
        self._apply_model_params()

    def _infer(self, rgb):
        """Segment the frame and return a detection per region (inference_ms covers both)."""
        p = self.params
        started = time.perf_counter()
        seg = self.detector.segment(rgb)
        labels, stage_ms = seg.labels, {'segment': float(seg.inference_ms)}
        material_confidence = None
        if self.refiner is not None:
            refine_started = time.perf_counter()
            refined = self.refiner.refine(rgb, labels, seg.confidence, seg.probabilities)
            labels, material_confidence = refined.labels, refined.material_confidence
            stage_ms['material'] = (time.perf_counter() - refine_started) * 1e3
        detections = [d for d in semantic_regions.label_regions(
            labels, seg.confidence, self.detector.class_names,
            min_area_px=p['min_region_area_px'], max_regions=p['max_detections'])
            if d.score >= p['min_region_score']]
        materials = []
        for d in detections:
            # The region's label is its material; its confidence is the combined probability
            # of that material, or the mean pixel confidence where the classifier did not vote.
            confidence = float(d.score)
            if material_confidence is not None:
                voted = material_confidence[d.mask]
                voted = voted[voted > 0]
                confidence = float(voted.mean()) if voted.size else confidence
            materials.append(MaterialResult(d.class_name, confidence,
                                            {d.class_name: confidence}))
        return RegionResult(detections, (time.perf_counter() - started) * 1e3, stage_ms,
                            labels=labels, materials=materials)

    def _classify(self, rgb, result):
        return list(result.materials)

    def _publish_extras(self, header, result):
        self.label_pub.publish(numpy_to_image(result.labels, 'mono8', copy_header(header)))

    def _debug_image(self, header, rgb, out, result):
        # Labels blended over the image first, then the detector's boxes and pick points.
        labels = result.labels
        if labels.shape == rgb.shape[:2]:
            objects = labels > 0
            rgb = rgb.copy()
            rgb[objects] = (0.5 * rgb[objects]
                            + 0.5 * LABEL_COLOURS_RGB[labels[objects]]).astype(np.uint8)
        return super()._debug_image(header, rgb, out, result)


def main(args=None):
    """Entry point: `waste_segmentation_node`."""
    run_node(WasteSegmentationNode, args)


if __name__ == '__main__':
    main()
