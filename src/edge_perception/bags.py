"""rosbag2 files of sensor scenarios, written and read with the `rosbags` library (no ROS needed).

Bags are MCAP rosbag2 directories with standard CDR-serialised messages, so `ros2 bag play` on a
full ROS install replays them too; here `edge_perception.harness.bag_player` publishes them.
No rclpy import: usable from scripts, tests and core alike.
"""
import math
import pathlib
import shutil

import numpy as np
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
IMAGE = 'sensor_msgs/msg/Image'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
LASERSCAN = 'sensor_msgs/msg/LaserScan'
POINTCLOUD = 'sensor_msgs/msg/PointCloud2'
DEFAULT_TOPICS = {'depth': '/depth/image_raw', 'camera_info': '/depth/camera_info',
                  'scan': '/scan', 'points': '/points', 'color': '/camera/image_raw',
                  'color_info': '/camera/camera_info'}


def _types():
    return TYPESTORE.types


def _stamp(seconds):
    sec = int(math.floor(seconds))
    nanosec = min(int(round((seconds - sec) * 1e9)), 999_999_999)
    return _types()['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec)


def _header(seconds, frame_id):
    return _types()['std_msgs/msg/Header'](stamp=_stamp(seconds), frame_id=frame_id)


def image_message(array, encoding, stamp_s, frame_id):
    """Return a rosbags sensor_msgs/Image of a numpy array (little-endian, unpadded rows)."""
    array = np.ascontiguousarray(array)
    channels = 1 if array.ndim == 2 else array.shape[2]
    return _types()[IMAGE](
        header=_header(stamp_s, frame_id), height=array.shape[0], width=array.shape[1],
        encoding=encoding, is_bigendian=0,
        step=array.shape[1] * channels * array.dtype.itemsize,
        data=np.frombuffer(array.tobytes(), dtype=np.uint8))


def camera_info_message(width, height, fx, fy, cx, cy, stamp_s, frame_id):
    """Return a rosbags sensor_msgs/CameraInfo of a pinhole camera without distortion."""
    types = _types()
    return types[CAMERA_INFO](
        header=_header(stamp_s, frame_id), height=height, width=width,
        distortion_model='plumb_bob', d=np.zeros(5),
        k=np.array([fx, 0, cx, 0, fy, cy, 0, 0, 1], dtype=np.float64),
        r=np.eye(3).reshape(-1),
        p=np.array([fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0], dtype=np.float64),
        binning_x=0, binning_y=0,
        roi=types['sensor_msgs/msg/RegionOfInterest'](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def laserscan_message(ranges_m, angle_min, angle_increment, stamp_s, frame_id, range_max=30.0):
    """Return a rosbags sensor_msgs/LaserScan; NaN ranges become +inf (no return, REP 117)."""
    ranges = np.asarray(ranges_m, dtype=np.float32).copy()
    ranges[~np.isfinite(ranges)] = np.inf
    return _types()[LASERSCAN](
        header=_header(stamp_s, frame_id), angle_min=float(angle_min),
        angle_max=float(angle_min + angle_increment * (len(ranges) - 1)),
        angle_increment=float(angle_increment), time_increment=0.0, scan_time=0.0,
        range_min=0.05, range_max=float(range_max), ranges=ranges,
        intensities=np.zeros(0, dtype=np.float32))


def pointcloud_message(xyz, stamp_s, frame_id):
    """Return a rosbags sensor_msgs/PointCloud2 of Nx3 float32 points.

    The cloud has x, y, z fields and is unorganised.
    """
    types = _types()
    xyz = np.ascontiguousarray(xyz, dtype='<f4')
    fields = [types['sensor_msgs/msg/PointField'](name=n, offset=4 * i, datatype=7, count=1)
              for i, n in enumerate('xyz')]
    return types[POINTCLOUD](
        header=_header(stamp_s, frame_id), height=1, width=len(xyz), fields=fields,
        is_bigendian=False, point_step=12, row_step=12 * len(xyz),
        data=np.frombuffer(xyz.tobytes(), dtype=np.uint8), is_dense=True)


def depth_to_lidar_points(depth_m, camera, stride=4):
    """Back-project a depth image into points in a REP 103 sensor frame.

    The frame has x forward, y left, z up; every `stride`-th pixel is used; invalid depth
    gives no point.
    """
    rows = np.arange(0, depth_m.shape[0], stride)
    cols = np.arange(0, depth_m.shape[1], stride)
    z = depth_m[np.ix_(rows, cols)].astype(np.float32)
    u, v = np.meshgrid(cols.astype(np.float32), rows.astype(np.float32))
    x_cam = (u - camera.cx) * z / camera.fx
    y_cam = (v - camera.cy) * z / camera.fy
    ok = np.isfinite(z) & (z > 0)
    return np.stack([z[ok], -x_cam[ok], -y_cam[ok]], axis=1)


class BagWriter:
    """Writes messages into a new MCAP rosbag2 directory (replacing an existing one)."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._connections = {}

    def __enter__(self):
        self._writer.open()
        return self

    def __exit__(self, *exc):
        self._writer.close()

    def write(self, topic, msgtype, msg, stamp_s):
        """Append one rosbags message, recorded at stamp_s (its header stamp)."""
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(
                topic, msgtype, typestore=TYPESTORE)
        self._writer.write(self._connections[topic], int(round(stamp_s * 1e9)),
                           TYPESTORE.serialize_cdr(msg, msgtype))


def read_bag(path):
    """Yield (topic, msgtype, record_time_ns, cdr_bytes) of a rosbag2 in recording order."""
    with Reader(pathlib.Path(path)) as reader:
        for connection, timestamp, rawdata in reader.messages():
            yield connection.topic, connection.msgtype, timestamp, bytes(rawdata)


def bag_topics(path):
    """{topic: (msgtype, message count)} of a rosbag2."""
    with Reader(pathlib.Path(path)) as reader:
        return {c.topic: (c.msgtype, c.msgcount) for c in reader.connections}


def write_scenario_bag(scenario, path, encoding='16UC1', frame_id='camera_depth_optical_frame',
                       scan_frame_id='laser', with_scan=True, with_points=False, topics=None):
    """Write a depth scenario (edge_perception.harness.scenarios.Scenario) as a rosbag2.

    Per frame: the depth image (16UC1 millimetres or 32FC1 metres), its camera info, and, with
    with_scan, a LaserScan of the same scene along the image's middle row (uniform angles over the
    camera's horizontal field of view; range = z / cos(angle)); with with_points, a PointCloud2
    of the depth back-projected into a REP 103 frame (every 4th pixel). Returns the bag path.
    """
    topics = dict(DEFAULT_TOPICS, **(topics or {}))
    camera = scenario.camera
    half_fov = math.atan2(camera.cx, camera.fx) * 0.98
    angles = np.linspace(-half_fov, half_fov, 181)
    columns = np.clip(np.round(camera.cx - camera.fx * np.tan(angles)).astype(int), 0,
                      camera.width - 1)
    row = int(round(camera.cy))
    with BagWriter(path) as bag:
        for frame in scenario.frames:
            depth = frame.depth_m
            if encoding == '16UC1':
                mm = np.nan_to_num(depth, nan=0.0, posinf=0.0, neginf=0.0) * 1000.0
                data = np.clip(np.round(mm), 0, 65535).astype(np.uint16)
            elif encoding == '32FC1':
                data = depth.astype(np.float32)
            else:
                raise ValueError(f'depth encoding must be 16UC1 or 32FC1, not {encoding!r}')
            bag.write(topics['depth'], IMAGE,
                      image_message(data, encoding, frame.stamp_s, frame_id), frame.stamp_s)
            bag.write(topics['camera_info'], CAMERA_INFO,
                      camera_info_message(camera.width, camera.height, camera.fx, camera.fy,
                                          camera.cx, camera.cy, frame.stamp_s, frame_id),
                      frame.stamp_s)
            if with_scan:
                z = depth[row, columns].astype(np.float64)
                z[~(np.isfinite(z) & (z > 0))] = np.nan
                bag.write(topics['scan'], LASERSCAN,
                          laserscan_message(z / np.cos(angles), angles[0],
                                            angles[1] - angles[0], frame.stamp_s,
                                            scan_frame_id), frame.stamp_s)
            if with_points:
                bag.write(topics['points'], POINTCLOUD,
                          pointcloud_message(depth_to_lidar_points(depth, camera), frame.stamp_s,
                                             scan_frame_id), frame.stamp_s)
    return pathlib.Path(path)
