"""Camera-side inputs shared by the detector and crack nodes.

Registered depth paired to the colour image by stamp, and intrinsics from CameraInfo.

Depth is converted to metres as it arrives, in the receiver thread, for the depth range the
owner last asked for: the image callback, which runs after inference, then finds it ready
(ONNX Runtime releases the GIL while it runs, so the conversion overlaps inference instead of
adding about half a millisecond per 640x480 frame to the detections' latency).

message_filters is not on PyPI, so pairing is done here: the depth frame nearest in stamp to the
image, within a tolerance. The image callback looks its depth up after inference, so depth and
camera info must keep arriving during a long inference: they are received by a small companion
node (`<node>_camera_inputs`) spun in a thread of its own, as tf2's TransformListener does with
`spin_thread=True`. Topic names are resolved (namespace and remapping) by the owning node.
"""
import collections
import threading

from edge_perception.conversions import depth_to_metres, stamp_to_seconds
from edge_perception.core.depth_fusion import CameraIntrinsics, DepthFusionError
from edge_perception.nodes.common import InputMonitor, SENSOR_QOS
from edge_perception.nodes.spinning import NodeSpinner
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image


class CameraSideInputs:
    """Subscribes to optional depth and camera info; pairs depth to image stamps."""

    def __init__(self, node, depth_topic, camera_info_topic, max_depth_age_s, stale_after_s,
                 history=8):
        self._node = node
        self._lock = threading.Lock()
        self._depths = collections.deque(maxlen=history)   # (stamp_s, msg, converted or None)
        self._depth_range = (0.0, float('inf'))            # (min_m, max_m) of the conversion
        self._camera_info = None
        self.max_depth_age_s = max_depth_age_s
        self.monitors = []
        self.depth = None
        self.camera_info = None
        self._spinner = None
        if not (depth_topic or camera_info_topic):
            return
        # use_global_arguments=False: the process's global ROS arguments (launch's `__node:=`
        # rename, `__ns:=`, remaps) are the owning node's; applied here they would rename this
        # helper to the owner's name (listed twice in `ros2 node list`). Its name and namespace
        # are given explicitly and its topics are resolved by the owner.
        receiver = Node(f'{node.get_name()}_camera_inputs', namespace=node.get_namespace(),
                        context=node.context, start_parameter_services=False,
                        use_global_arguments=False)
        if depth_topic:
            self.depth = InputMonitor('depth', stale_after_s)
            self.monitors.append(self.depth)
            receiver.create_subscription(Image, node.resolve_topic_name(depth_topic),
                                         self._on_depth, SENSOR_QOS)
        if camera_info_topic:
            self.camera_info = InputMonitor('camera_info', stale_after_s)
            self.monitors.append(self.camera_info)
            receiver.create_subscription(CameraInfo, node.resolve_topic_name(camera_info_topic),
                                         self._on_camera_info, SENSOR_QOS)
        self._spinner = NodeSpinner(receiver).start()

    def close(self):
        """Stop receiving and destroy the companion node."""
        if self._spinner is not None:
            spinner, self._spinner = self._spinner, None
            spinner.stop(timeout_s=2.0)
            spinner.node.destroy_node()

    def _on_depth(self, msg):
        self.depth.arrived()
        depth_range = self._depth_range
        try:
            converted = (depth_range, depth_to_metres(msg, *depth_range))
        except ValueError:
            converted = None     # depth_for converts again and reports the error
        with self._lock:
            self._depths.append((stamp_to_seconds(msg.header.stamp), msg, converted))

    def _on_camera_info(self, msg):
        self.camera_info.arrived()
        with self._lock:
            self._camera_info = msg

    def intrinsics(self, width, height):
        """(CameraIntrinsics or None, reason). None when no usable camera info."""
        with self._lock:
            info = self._camera_info
        if info is None:
            return None, 'no camera_info received: 3D positions are flagged invalid'
        if (info.width, info.height) != (width, height):
            return None, (f'camera_info is for {info.width}x{info.height} but the image is '
                          f'{width}x{height}')
        try:
            return CameraIntrinsics.from_k(info.k, width, height), ''
        except DepthFusionError as error:
            return None, f'camera_info unusable: {error}'

    def depth_for(self, stamp_s, min_m=0.0, max_m=float('inf')):
        """(depth in metres or None, reason): the depth frame nearest stamp_s within tolerance."""
        if self.depth is None:
            return None, 'no depth topic configured'
        with self._lock:
            candidates = list(self._depths)
        if not candidates:
            return None, 'no depth received'
        depth_stamp, msg, converted = min(candidates, key=lambda c: abs(c[0] - stamp_s))
        gap = abs(depth_stamp - stamp_s)
        if gap > self.max_depth_age_s:
            return None, (f'nearest depth is {gap * 1e3:.0f} ms from the image '
                          f'(max {self.max_depth_age_s * 1e3:.0f} ms)')
        self._depth_range = (float(min_m), float(max_m))
        if converted is not None and converted[0] == self._depth_range:
            self.depth.accepted()
            return converted[1], ''
        try:
            depth = depth_to_metres(msg, min_m, max_m)
        except ValueError as error:
            self.depth.reject(str(error))
            return None, f'depth rejected: {error}'
        self.depth.accepted()
        return depth, ''
