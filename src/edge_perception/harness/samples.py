"""The bundled sample scenes as rosbag2 sequences, for the demo and the integration tests.

- Waste belt: each bundled TrashNet composite frame (with registered depth and exact labels,
  data/samples/waste) slides SHIFT_PX per frame, like a conveyor, at RATE_HZ.
- Cracks: each bundled DeepCrack image (data/samples/crack, research/education licence) as a
  colour frame, with a flat depth at a chosen distance and pinhole intrinsics, so millimetre
  widths and the severity class can be computed.
No rclpy: messages are written with `rosbags` (edge_perception.bags).
"""
import json
import pathlib

from edge_perception.bags import BagWriter, CAMERA_INFO, camera_info_message, IMAGE
from edge_perception.bags import image_message
import numpy as np

SAMPLES = pathlib.Path(__file__).resolve().parents[1] / 'data' / 'samples'
WASTE_FRAME = 'camera_color_optical_frame'
SHIFT_PX, STEPS, RATE_HZ = 6, 8, 5.0


def _read_image(path, mode=None):
    from PIL import Image
    image = Image.open(path)
    return np.array(image.convert(mode) if mode else image)


def waste_camera():
    """(width, height, K row-major) the waste sample depth images are consistent with."""
    import yaml
    camera = yaml.safe_load((SAMPLES / 'waste' / 'camera.yaml').read_text())
    return camera['width'], camera['height'], list(camera['k'])


def _shifted(array, dx):
    if dx == 0:
        return array
    out = np.zeros_like(array)
    out[:, dx:] = array[:, :array.shape[1] - dx]
    return out


def waste_belt_frames(start_s=100.0):
    """[(stamp_s, rgb uint8, depth uint16 mm, truth objects)] of the belt sequence.

    Truth objects: the labels (box_xyxy shifted with the frame, material, depth_m, source) plus
    `sequence` (the sample name); objects leaving the view are dropped from the truth.
    """
    labels = json.loads((SAMPLES / 'waste' / 'labels.json').read_text())
    frames, t = [], start_s
    for name in sorted(labels):
        rgb = _read_image(SAMPLES / 'waste' / f'{name}.jpg', 'RGB')
        depth = _read_image(SAMPLES / 'waste' / f'{name}_depth.png')
        for step in range(STEPS):
            dx = step * SHIFT_PX
            truth = [dict(obj, sequence=name,
                          box_xyxy=[obj['box_xyxy'][0] + dx, obj['box_xyxy'][1],
                                    obj['box_xyxy'][2] + dx, obj['box_xyxy'][3]])
                     for obj in labels[name] if obj['box_xyxy'][2] + dx <= rgb.shape[1] - 10]
            frames.append((t, _shifted(rgb, dx), _shifted(depth, dx), truth))
            t += 1.0 / RATE_HZ
        t += 2.0    # a pause between sequences: their objects are different items
    return frames


def write_color_depth_bag(path, frames, width, height, k, frame_id=WASTE_FRAME,
                          topics=('/camera/image_raw', '/camera/depth_registered/image_raw',
                                  '/camera/camera_info')):
    """Write [(stamp, rgb, depth, ...)] as rgb8 + depth + camera info; returns the path.

    Depth arrays of dtype uint16 are written as 16UC1 (mm), float32 as 32FC1 (m).
    """
    color_topic, depth_topic, info_topic = topics
    with BagWriter(path) as bag:
        for stamp, rgb, depth, *_ in frames:
            bag.write(color_topic, IMAGE, image_message(rgb, 'rgb8', stamp, frame_id), stamp)
            if depth is not None:
                encoding = '16UC1' if depth.dtype == np.uint16 else '32FC1'
                bag.write(depth_topic, IMAGE,
                          image_message(depth, encoding, stamp, frame_id), stamp)
            bag.write(info_topic, CAMERA_INFO, camera_info_message(
                width, height, k[0], k[4], k[2], k[5], stamp, frame_id), stamp)
    return pathlib.Path(path)


def crack_frames(depth_m=0.5, fx=1000.0, start_s=200.0, period_s=0.5):
    """[(stamp_s, rgb, depth float32 m, gt mask bool, name, K)] of the bundled crack samples.

    The surface is flat at depth_m and the camera's focal length is fx px, so one pixel spans
    depth_m / fx metres (0.5 mm at the defaults): the severity class follows from the widths.
    """
    frames = []
    for i, image_path in enumerate(sorted((SAMPLES / 'crack' / 'images').glob('*.jpg'))):
        rgb = _read_image(image_path, 'RGB')
        gt = _read_image(SAMPLES / 'crack' / 'masks' / f'{image_path.stem}.png') > 127
        h, w = rgb.shape[:2]
        k = [fx, 0.0, (w - 1) / 2, 0.0, fx, (h - 1) / 2, 0.0, 0.0, 1.0]
        depth = np.full((h, w), depth_m, np.float32)
        frames.append((start_s + i * period_s, rgb, depth, gt, image_path.stem, k))
    return frames


def write_crack_bag(path, frames, frame_id='inspection_camera_optical_frame', prefix='/camera'):
    """Write crack frames (of any sizes) as rgb8 + 32FC1 depth + camera info.

    Topics: `<prefix>/image_raw`, `<prefix>/depth_registered/image_raw`, `<prefix>/camera_info`.
    """
    with BagWriter(path) as bag:
        for stamp, rgb, depth, _, _, k in frames:
            h, w = rgb.shape[:2]
            bag.write(f'{prefix}/image_raw', IMAGE,
                      image_message(rgb, 'rgb8', stamp, frame_id), stamp)
            bag.write(f'{prefix}/depth_registered/image_raw', IMAGE,
                      image_message(depth, '32FC1', stamp, frame_id), stamp)
            bag.write(f'{prefix}/camera_info', CAMERA_INFO,
                      camera_info_message(w, h, k[0], k[4], k[2], k[5], stamp, frame_id), stamp)
    return pathlib.Path(path)
