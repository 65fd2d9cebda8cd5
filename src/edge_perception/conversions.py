"""sensor_msgs <-> numpy conversions, in one place.

cv_bridge is not installable from PyPI (its PyPI namesake is a broken ROS 1 build), so images are
converted here. Rules: honour `step` (rows may be padded), `is_bigendian`, and the encoding;
refuse anything inconsistent with a clear `ImageConversionError` instead of guessing.

No rclpy import: message classes are plain Python objects, so this is unit-tested without ROS
running.
"""
import functools
import math
import sys

import numpy as np

# encoding -> (numpy dtype, channels)
_ENCODINGS = {
    'mono8': (np.uint8, 1),
    '8UC1': (np.uint8, 1),
    'mono16': (np.uint16, 1),
    '16UC1': (np.uint16, 1),
    '32FC1': (np.float32, 1),
    '64FC1': (np.float64, 1),
    'rgb8': (np.uint8, 3),
    'bgr8': (np.uint8, 3),
    '8UC3': (np.uint8, 3),
    'rgba8': (np.uint8, 4),
    'bgra8': (np.uint8, 4),
    '8UC4': (np.uint8, 4),
}
COLOR_ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', '8UC3')
DEPTH_ENCODINGS = ('16UC1', 'mono16', '32FC1')


class ImageConversionError(ValueError):
    """A sensor_msgs/Image that cannot be read as it claims to be."""


def _byte_buffer(data):
    """uint8 view of a message's byte field (bytes, rclpy's array.array, list in tests)."""
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:
        return np.frombuffer(bytes(data), dtype=np.uint8)


def image_to_numpy(msg):
    """Return the pixels of a sensor_msgs/Image as an HxW or HxWxC array.

    The array may be a read-only view of the message's buffer (unpadded rows, native byte
    order); copy it before writing into it.

    Raises ImageConversionError on unknown encodings, sizes that disagree with the data, or an
    empty image.
    """
    encoding = msg.encoding
    if encoding not in _ENCODINGS:
        raise ImageConversionError(
            f'unsupported image encoding {encoding!r}; supported: {sorted(_ENCODINGS)}')
    dtype, channels = _ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f'empty image ({width}x{height})')
    itemsize = np.dtype(dtype).itemsize
    row_bytes = width * channels * itemsize
    if step < row_bytes:
        raise ImageConversionError(
            f'step {step} is smaller than one row of {width} px x {channels} ch x {itemsize} B '
            f'= {row_bytes} B ({encoding})')
    buf = _byte_buffer(msg.data)
    if buf.size < step * height:
        raise ImageConversionError(
            f'data has {buf.size} B but height {height} x step {step} needs {step * height} B')
    rows = buf[:step * height].reshape(height, step)
    swap = itemsize > 1 and bool(msg.is_bigendian) != (sys.byteorder == 'big')
    if step == row_bytes and not swap:
        # Unpadded and native order: a read-only view of the message, no copy (large images
        # arrive every frame and the callers only read them).
        pixels = rows.view(dtype)
        pixels.flags.writeable = False
    else:
        pixels = rows[:, :row_bytes].copy().view(dtype)
        if swap:
            pixels = pixels.byteswap()
    if channels == 1:
        return pixels.reshape(height, width)
    return pixels.reshape(height, width, channels)


def numpy_to_image(array, encoding, header=None, msg_type=None):
    """Build a sensor_msgs/Image from an array (native byte order, unpadded rows)."""
    if msg_type is None:
        from sensor_msgs.msg import Image as msg_type
    if encoding not in _ENCODINGS:
        raise ImageConversionError(f'unsupported image encoding {encoding!r}')
    dtype, channels = _ENCODINGS[encoding]
    array = np.ascontiguousarray(array, dtype=dtype)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] != channels:
        raise ImageConversionError(
            f'array of shape {array.shape} does not fit encoding {encoding} ({channels} ch)')
    msg = msg_type()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = sys.byteorder == 'big'
    msg.step = int(array.shape[1] * channels * np.dtype(dtype).itemsize)
    msg.data = array.tobytes()
    return msg


def depth_to_metres(msg, min_m=0.0, max_m=math.inf):
    """Return a depth image as float32 metres, with every invalid sample set to NaN.

    Accepts 16UC1/mono16 (millimetres, 0 = no return) and 32FC1 (metres, NaN/inf/0 = no return),
    per REP 118. Samples outside [min_m, max_m] are invalid too.
    """
    if msg.encoding not in DEPTH_ENCODINGS:
        raise ImageConversionError(
            f'depth image encoding {msg.encoding!r} is not a depth encoding; expected one of '
            f'{DEPTH_ENCODINGS} (16UC1 in mm or 32FC1 in m, REP 118)')
    raw = image_to_numpy(msg)
    if raw.dtype == np.uint16:
        # One table lookup per pixel (every millimetre value -> metres or NaN) instead of a
        # float conversion and five full-frame comparisons: 3.6x faster at 640x480 (measured).
        return np.take(_millimetre_table(float(min_m), float(max_m)), raw)
    depth = raw.astype(np.float32, copy=True)
    invalid = ~np.isfinite(depth) | (depth <= 0.0) | (depth < min_m) | (depth > max_m)
    depth[invalid] = np.nan
    return depth


@functools.lru_cache(maxsize=8)
def _millimetre_table(min_m, max_m):
    """float32 metres of every uint16 millimetre value, NaN where invalid (0, out of range)."""
    table = np.arange(65536, dtype=np.float32) * np.float32(0.001)
    table[(table <= 0.0) | (table < min_m) | (table > max_m)] = np.nan
    table.flags.writeable = False
    return table


def color_to_rgb(msg):
    """Return a colour image as HxWx3 uint8 RGB (mono8 is replicated to 3 channels)."""
    if msg.encoding not in COLOR_ENCODINGS:
        raise ImageConversionError(
            f'colour image encoding {msg.encoding!r} is not supported; expected one of '
            f'{COLOR_ENCODINGS}')
    pixels = image_to_numpy(msg)
    if msg.encoding in ('rgb8', '8UC3'):
        return pixels
    if msg.encoding == 'bgr8':
        return pixels[:, :, ::-1].copy()
    if msg.encoding == 'rgba8':
        return pixels[:, :, :3].copy()
    if msg.encoding == 'bgra8':
        return pixels[:, :, 2::-1].copy()
    return np.repeat(pixels[:, :, None], 3, axis=2)


def stamp_to_seconds(stamp):
    """Convert a builtin_interfaces/Time to float seconds."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def seconds_to_stamp(seconds, msg_type=None):
    """Convert float seconds to a builtin_interfaces/Time."""
    if msg_type is None:
        from builtin_interfaces.msg import Time as msg_type
    sec = int(math.floor(seconds))
    nanosec = int(round((seconds - sec) * 1e9))
    if nanosec >= 1_000_000_000:
        sec, nanosec = sec + 1, nanosec - 1_000_000_000
    return msg_type(sec=sec, nanosec=nanosec)


# sensor_msgs/PointField datatype -> numpy type
_POINTFIELD_TYPES = {1: np.int8, 2: np.uint8, 3: np.int16, 4: np.uint16, 5: np.int32,
                     6: np.uint32, 7: np.float32, 8: np.float64}


def pointcloud_to_xyz(msg):
    """Return the x, y, z fields of a sensor_msgs/PointCloud2 as an Nx3 float32 array.

    Points with a non-finite coordinate are dropped. Raises ImageConversionError when the cloud
    lacks x/y/z or its sizes disagree with its data.
    """
    fields = {f.name: f for f in msg.fields}
    missing = [name for name in ('x', 'y', 'z') if name not in fields]
    if missing:
        raise ImageConversionError(f'point cloud has no field(s) {missing}')
    count = int(msg.width) * int(msg.height)
    point_step = int(msg.point_step)
    if count == 0:
        return np.zeros((0, 3), np.float32)
    buf = msg.data if isinstance(msg.data, (bytes, bytearray, memoryview)) else bytes(msg.data)
    needed = int(msg.row_step) * int(msg.height) if msg.height > 1 else point_step * count
    if point_step <= 0 or len(buf) < needed or msg.row_step < point_step * msg.width:
        raise ImageConversionError(
            f'point cloud data of {len(buf)} B does not hold {count} points of {point_step} B '
            f'(row_step {msg.row_step})')
    byteorder = '>' if msg.is_bigendian else '<'
    dtype = np.dtype({
        'names': ['x', 'y', 'z'],
        'formats': [np.dtype(_POINTFIELD_TYPES[fields[n].datatype]).newbyteorder(byteorder)
                    for n in ('x', 'y', 'z')],
        'offsets': [fields[n].offset for n in ('x', 'y', 'z')],
        'itemsize': point_step,
    })
    rows = np.frombuffer(buf, dtype=np.uint8, count=needed).reshape(int(msg.height), -1)
    rows = rows[:, :point_step * int(msg.width)]
    points = np.ascontiguousarray(rows).view(dtype).reshape(-1)
    xyz = np.stack([points['x'], points['y'], points['z']], axis=1).astype(np.float32)
    return xyz[np.all(np.isfinite(xyz), axis=1)]


def laserscan_to_ranges(msg):
    """Return (angles_rad, ranges_m) of a sensor_msgs/LaserScan; invalid ranges are NaN.

    Raises ImageConversionError when the angles are not finite or the increment is zero, or the
    range limits are NaN (the scan cannot be placed or judged).
    """
    if not (math.isfinite(msg.angle_min) and math.isfinite(msg.angle_increment)
            and msg.angle_increment != 0.0):
        raise ImageConversionError(
            f'laser scan angles unusable: angle_min={msg.angle_min}, '
            f'angle_increment={msg.angle_increment}')
    if math.isnan(msg.range_min) or math.isnan(msg.range_max):
        raise ImageConversionError(
            f'laser scan range limits are NaN: [{msg.range_min}, {msg.range_max}]')
    ranges = np.asarray(msg.ranges, dtype=np.float32).copy()
    angles = msg.angle_min + np.arange(ranges.size, dtype=np.float32) * msg.angle_increment
    invalid = ~np.isfinite(ranges) | (ranges < msg.range_min) | (ranges > msg.range_max)
    ranges[invalid] = np.nan
    return angles.astype(np.float32), ranges


def detection_box_xyxy(detection):
    """Return the (x0, y0, x1, y1) pixel corners of a Detection message's centre/size box."""
    half_w, half_h = detection.size_x / 2, detection.size_y / 2
    return (detection.center_x - half_w, detection.center_y - half_h,
            detection.center_x + half_w, detection.center_y + half_h)


def set_detection_box(detection, box_xyxy):
    """Set a Detection message's centre/size box from (x0, y0, x1, y1) pixel corners."""
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    detection.center_x, detection.center_y = (x0 + x1) / 2, (y0 + y1) / 2
    detection.size_x, detection.size_y = x1 - x0, y1 - y0
