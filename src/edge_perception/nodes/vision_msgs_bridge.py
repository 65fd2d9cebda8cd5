"""vision_msgs views of our detections: Detection2DArray, Detection3DArray and LabelInfo.

Every other ROS perception stack, RViz/Foxglove plugin and tutorial speaks vision_msgs, so the
detector and the tracker publish these beside our richer DetectionArray (which keeps masks,
pick points, materials and velocities that vision_msgs cannot say).

Mapping (vision_msgs 4.x conventions, as Isaac ROS and yolo_ros use them):
- `hypothesis.class_id` is the model's class index as a string; the latched `LabelInfo` maps it
  to the class name (`class_map`), `threshold` is the detector's score threshold;
- `Detection2D.bbox`: centre and size in pixels; `id`: the track id, '' when untracked;
- `Detection3D` only for detections with a valid 3D position: `results[0].pose` and
  `bbox.center` are that position (the image's optical frame, metres); `bbox.size` is the 2D
  box scaled by depth / focal length (x, y) when the camera intrinsics are known, else 0
  (unknown); the depth extent (z) is 0 (a camera sees one side of an object).
vision_msgs is optional: `available()` says whether it imports (any ROS install has it; the
project's CI builds it from ../shared/ros2-extra).
"""
import math

from edge_perception.nodes.common import copy_header

try:
    from vision_msgs.msg import (Detection2D, Detection2DArray, Detection3D, Detection3DArray,
                                 LabelInfo, ObjectHypothesisWithPose, VisionClass)
    _IMPORT_ERROR = None
except ImportError as exc:  # no vision_msgs on this machine: the bridge is off
    _IMPORT_ERROR = exc


def available():
    """Return True when vision_msgs imports."""
    return _IMPORT_ERROR is None


def unavailable_reason():
    """Why vision_msgs output is off ('' when it is available)."""
    if _IMPORT_ERROR is None:
        return ''
    return (f'vision_msgs is not importable ({_IMPORT_ERROR}); Detection2DArray/Detection3DArray '
            'output is off (install ros-<distro>-vision-msgs, or build ../shared/ros2-extra)')


def _hypothesis(det):
    hyp = ObjectHypothesisWithPose()
    hyp.hypothesis.class_id = str(int(det.class_id))
    hyp.hypothesis.score = float(det.score)
    return hyp


def _track_id(det):
    return '' if det.track_id < 0 else str(int(det.track_id))


def to_detection2d_array(msg):
    """Return a vision_msgs/Detection2DArray of a DetectionArray (same header)."""
    out = Detection2DArray()
    out.header = copy_header(msg.header, type(out.header))
    for det in msg.detections:
        d = Detection2D()
        d.header = copy_header(msg.header, type(d.header))
        d.results.append(_hypothesis(det))
        d.bbox.center.position.x = float(det.center_x)
        d.bbox.center.position.y = float(det.center_y)
        d.bbox.size_x = float(det.size_x)
        d.bbox.size_y = float(det.size_y)
        d.id = _track_id(det)
        out.detections.append(d)
    return out


def to_detection3d_array(msg, fx=None, fy=None):
    """Return a vision_msgs/Detection3DArray of the detections that have a valid 3D position.

    `fx`, `fy`: focal lengths in pixels (camera info K[0], K[4]) to size the box; None: size 0.
    """
    out = Detection3DArray()
    out.header = copy_header(msg.header, type(out.header))
    for det in msg.detections:
        if not det.position_valid:
            continue
        d = Detection3D()
        d.header = copy_header(msg.header, type(d.header))
        hyp = _hypothesis(det)
        hyp.pose.pose.position.x = float(det.position.x)
        hyp.pose.pose.position.y = float(det.position.y)
        hyp.pose.pose.position.z = float(det.position.z)
        hyp.pose.pose.orientation.w = 1.0
        std = float(det.position_depth_std_m)
        if math.isfinite(std):
            hyp.pose.covariance[14] = std * std  # z variance (row 2, column 2)
        d.results.append(hyp)
        d.bbox.center.position = hyp.pose.pose.position
        d.bbox.center.orientation.w = 1.0
        z = float(det.position.z)
        if fx and fy and z > 0.0:
            d.bbox.size.x = float(det.size_x) * z / float(fx)
            d.bbox.size.y = float(det.size_y) * z / float(fy)
        d.id = _track_id(det)
        out.detections.append(d)
    return out


def label_info(header, class_names, threshold):
    """Return a vision_msgs/LabelInfo mapping class index -> name (publish latched)."""
    info = LabelInfo()
    info.header = copy_header(header, type(info.header))
    for index, name in enumerate(class_names):
        info.class_map.append(VisionClass(class_id=index, class_name=str(name)))
    info.threshold = float(threshold)
    return info
