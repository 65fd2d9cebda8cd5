"""sensor_msgs <-> numpy conversion: encodings, row padding, endianness, invalid depth."""
import math
import struct

from edge_perception.conversions import (color_to_rgb, depth_to_metres, image_to_numpy,
                                         ImageConversionError, laserscan_to_ranges,
                                         numpy_to_image, pointcloud_to_xyz, seconds_to_stamp,
                                         stamp_to_seconds)
import numpy as np
import pytest
from sensor_msgs.msg import Image, LaserScan, PointCloud2, PointField


def make_image(encoding, height, width, row_bytes, step, data_rows, bigendian=False):
    msg = Image()
    msg.encoding, msg.height, msg.width, msg.step = encoding, height, width, step
    msg.is_bigendian = bigendian
    msg.data = b''.join(row + b'\xee' * (step - row_bytes) for row in data_rows)
    return msg


def test_round_trip_every_encoding():
    rng = np.random.default_rng(0)
    cases = {'mono8': (np.uint8, 1), 'mono16': (np.uint16, 1), '16UC1': (np.uint16, 1),
             '32FC1': (np.float32, 1), 'rgb8': (np.uint8, 3), 'bgra8': (np.uint8, 4)}
    for encoding, (dtype, channels) in cases.items():
        shape = (5, 7) if channels == 1 else (5, 7, channels)
        array = (rng.random(shape) * 200).astype(dtype)
        msg = numpy_to_image(array, encoding)
        assert msg.step == 7 * channels * np.dtype(dtype).itemsize
        np.testing.assert_array_equal(image_to_numpy(msg), array)


def test_padded_rows_are_skipped():
    rows = [bytes([r * 10 + c for c in range(3)]) for r in range(2)]
    msg = make_image('mono8', 2, 3, 3, 8, rows)   # 5 padding bytes per row
    np.testing.assert_array_equal(image_to_numpy(msg), [[0, 1, 2], [10, 11, 12]])


def test_big_endian_16bit_depth_is_swapped():
    rows = [struct.pack('>HH', 1000, 2500)]
    msg = make_image('16UC1', 1, 2, 4, 4, rows, bigendian=True)
    np.testing.assert_allclose(depth_to_metres(msg), [[1.0, 2.5]])


def test_depth_invalid_samples_become_nan():
    depth_mm = np.array([[0, 1500, 65535]], dtype=np.uint16)
    out = depth_to_metres(numpy_to_image(depth_mm, '16UC1'), max_m=30.0)
    assert math.isnan(out[0, 0]) and out[0, 1] == pytest.approx(1.5)
    assert math.isnan(out[0, 2])   # 65.535 m is beyond max_m
    depth_m = np.array([[np.nan, np.inf, 0.0, -1.0, 2.0, 50.0]], dtype=np.float32)
    out = depth_to_metres(numpy_to_image(depth_m, '32FC1'), min_m=0.1, max_m=20.0)
    assert np.isnan(out[0, [0, 1, 2, 3, 5]]).all() and out[0, 4] == pytest.approx(2.0)


def test_rejects_wrong_encoding_and_short_data():
    with pytest.raises(ImageConversionError, match='not a depth encoding'):
        depth_to_metres(numpy_to_image(np.zeros((2, 2, 3), np.uint8), 'rgb8'))
    with pytest.raises(ImageConversionError, match='unsupported image encoding'):
        image_to_numpy(make_image('yuv422', 1, 1, 2, 2, [b'ab']))
    msg = numpy_to_image(np.zeros((4, 4), np.uint16), '16UC1')
    msg.data = bytes(msg.data)[:10]
    with pytest.raises(ImageConversionError, match='needs'):
        image_to_numpy(msg)
    msg = numpy_to_image(np.zeros((4, 4), np.uint16), '16UC1')
    msg.step = 4
    with pytest.raises(ImageConversionError, match='smaller than one row'):
        image_to_numpy(msg)
    empty = Image()
    empty.encoding = 'mono8'
    with pytest.raises(ImageConversionError, match='empty image'):
        image_to_numpy(empty)


def test_colour_channel_orders():
    rgb = np.zeros((1, 1, 3), np.uint8)
    rgb[0, 0] = (10, 20, 30)
    assert color_to_rgb(numpy_to_image(rgb, 'rgb8'))[0, 0].tolist() == [10, 20, 30]
    assert color_to_rgb(numpy_to_image(rgb[:, :, ::-1], 'bgr8'))[0, 0].tolist() == [10, 20, 30]
    bgra = np.array([[[30, 20, 10, 255]]], np.uint8)
    assert color_to_rgb(numpy_to_image(bgra, 'bgra8'))[0, 0].tolist() == [10, 20, 30]
    with pytest.raises(ImageConversionError, match='colour image encoding'):
        color_to_rgb(numpy_to_image(np.zeros((1, 1), np.float32), '32FC1'))


def make_cloud(points, extra_field=True):
    msg = PointCloud2()
    fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
              for i, n in enumerate('xyz')]
    if extra_field:
        fields.append(PointField(name='intensity', offset=12, datatype=PointField.FLOAT32,
                                 count=1))
    msg.fields = fields
    msg.point_step = 16 if extra_field else 12
    msg.height, msg.width = 1, len(points)
    msg.row_step = msg.point_step * len(points)
    msg.data = b''.join(struct.pack('<ffff' if extra_field else '<fff', *p,
                                    *([7.0] if extra_field else [])) for p in points)
    return msg


def test_pointcloud_xyz_and_nan_points():
    xyz = pointcloud_to_xyz(make_cloud([(1, 2, 3), (float('nan'), 0, 0), (4, 5, 6)]))
    np.testing.assert_allclose(xyz, [[1, 2, 3], [4, 5, 6]])
    bad = make_cloud([(1, 2, 3)])
    bad.fields = bad.fields[:2]
    with pytest.raises(ImageConversionError, match='no field'):
        pointcloud_to_xyz(bad)


def test_laserscan_invalid_ranges():
    msg = LaserScan()
    msg.angle_min, msg.angle_increment = -0.1, 0.1
    msg.range_min, msg.range_max = 0.2, 10.0
    msg.ranges = [1.0, float('inf'), 0.1, 11.0, 5.0]
    angles, ranges = laserscan_to_ranges(msg)
    np.testing.assert_allclose(angles, [-0.1, 0.0, 0.1, 0.2, 0.3], atol=1e-6)
    assert ranges[0] == 1.0 and ranges[4] == 5.0 and np.isnan(ranges[1:4]).all()


def test_stamp_round_trip():
    stamp = seconds_to_stamp(12.9999999999)
    assert stamp.nanosec < 1_000_000_000
    assert stamp_to_seconds(seconds_to_stamp(1234.5678)) == pytest.approx(1234.5678, abs=1e-9)


def test_laserscan_with_unusable_angles_is_refused():
    msg = LaserScan()
    msg.angle_min, msg.angle_increment, msg.range_min, msg.range_max = 0.0, 0.0, 0.1, 10.0
    msg.ranges = [1.0, 2.0]
    with pytest.raises(ImageConversionError, match='angles unusable'):
        laserscan_to_ranges(msg)
    msg.angle_increment, msg.range_max = 0.01, float('nan')
    with pytest.raises(ImageConversionError, match='range limits'):
        laserscan_to_ranges(msg)
