"""The waste chain's figures against the bundled belt's labels, for the demo and the tests.

A frame's labelled objects (edge_perception.harness.samples.waste_belt_frames) are matched to
its detections or tracks (Detection messages) by greedy IoU >= 0.5; each match is scored for its
track id, its material and its 3D position against the box centre back-projected at the
labelled depth. No rclpy: messages are read as plain objects.
"""
import math

from edge_perception.conversions import detection_box_xyxy
from edge_perception.core.detection_metrics import greedy_match


def match(truth, detections):
    """Greedy IoU >= 0.5 matching: list of (truth object, detection)."""
    pairs = greedy_match([obj['box_xyxy'] for obj in truth],
                         [detection_box_xyxy(d) for d in detections])
    return [(truth[t], detections[p]) for t, p in pairs]


def truth_position(obj, k):
    """(x, y, z) in m, optical frame, of a labelled object: its box centre at its depth.

    k is the row-major 3x3 camera matrix; pixel indices are pixel centres (hence the -0.5).
    """
    z = obj['depth_m']
    u = (obj['box_xyxy'][0] + obj['box_xyxy'][2]) / 2 - 0.5
    v = (obj['box_xyxy'][1] + obj['box_xyxy'][3]) / 2 - 0.5
    return ((u - k[2]) * z / k[0], (v - k[5]) * z / k[4], z)


def position_error_m(obj, detection, k):
    """Distance in m between a detection's 3D position and its labelled object's."""
    got = (detection.position.x, detection.position.y, detection.position.z)
    return math.dist(got, truth_position(obj, k))


class WasteScore:
    """Figures of a replay, added frame by frame: recall, track ids, 3D error, material."""

    def __init__(self, k):
        """Score against camera matrix k (row-major 3x3)."""
        self.k = k
        self.matched = self.truth_objects = self.material_ok = 0
        self.errors_m = []
        self.track_ids = {}       # (sequence, object source) -> set of track ids

    def add(self, truth, detections):
        """Score one frame's detections (or tracks); return its (truth, detection) pairs."""
        pairs = match(truth, detections)
        self.matched += len(pairs)
        self.truth_objects += len(truth)
        for obj, det in pairs:
            self.track_ids.setdefault((obj['sequence'], obj['source']), set()).add(det.track_id)
            self.material_ok += det.material == obj['material']
            if det.position_valid:
                self.errors_m.append(position_error_m(obj, det, self.k))
        return pairs

    def id_switches(self):
        """Track ids beyond the first that a labelled object was given."""
        return sum(len(ids) - 1 for ids in self.track_ids.values())

    def figures(self):
        """Return the figures as a dict (NaN where nothing was there to measure)."""
        errors = sorted(self.errors_m)
        matched, total = self.matched, self.truth_objects
        return {
            'recall_iou50': matched / total if total else math.nan, 'matched': matched,
            'truth_objects': total, 'objects_tracked': len(self.track_ids),
            'id_switches': self.id_switches(),
            'position_error_mm_median': 1000 * errors[len(errors) // 2] if errors else math.nan,
            'position_error_mm_p90': 1000 * errors[int(0.9 * len(errors))] if errors else math.nan,
            'material_accuracy': self.material_ok / matched if matched else math.nan,
        }
