"""Write the bundled waste sample frames (tests, demo, benchmark) with labels and depth.

Usage:
    python training/detector/make_samples.py --cutouts out/detector_data/cutouts/val \
        --out src/edge_perception/data/samples/waste [--count 3] [--seed 7]

Each frame is a 640x480 composite, on a belt background, of TrashNet *val* cut-outs (objects
the model never saw in training; TrashNet is MIT). Written per frame:
    waste_NN.jpg            RGB frame
    waste_NN_depth.png      registered depth, uint16 millimetres (16UC1), 0 = no return:
                            a belt plane 0.80-0.82 m away (slightly tilted) with each object
                            raised up to 60 mm (dome from the mask's distance transform), and
                            a few dropout holes
plus labels.json: per frame the exact visible-mask boxes (x0, y0, x1, y1 px, pixel i covers
[i, i+1)), each object's material and its true mean surface depth, and camera.yaml with the
intrinsics the depth is consistent with.
"""
import argparse
import json
from pathlib import Path
import sys

import cv2
import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_dataset import compose  # noqa: E402, I100  (sibling script module, not a package)

WIDTH, HEIGHT = 640, 480
FX = FY = 525.0
CX, CY = 319.5, 239.5


def depth_for(owner, n_objects, rng):
    """Belt plane plus a dome per object; returns (depth_mm uint16, per-object true depth m)."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    belt_m = 0.80 + 0.02 * yy / HEIGHT  # camera slightly tilted along the belt
    depth_m = belt_m.copy()
    truths = []
    for i in range(n_objects):
        mask = owner == i
        dist = ndimage.distance_transform_edt(mask)
        height = 0.06 * np.clip(dist / 25.0, 0, 1) ** 0.5
        depth_m[mask] = belt_m[mask] - height[mask]
        truths.append(float(np.median(depth_m[mask])))
    holes = rng.random((HEIGHT, WIDTH)) < 0.02
    depth_mm = np.round(depth_m * 1000.0).astype(np.uint16)
    depth_mm[holes] = 0
    return depth_mm, truths


def main(argv=None):
    """Compose the sample frames and write them with their labels and depth."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--cutouts', type=Path, required=True, help='cut-outs of TrashNet val')
    parser.add_argument('--out', type=Path, required=True)
    parser.add_argument('--count', type=int, default=3)
    parser.add_argument('--seed', type=int, default=7)
    args = parser.parse_args(argv)
    cutouts = sorted(args.cutouts.glob('*.png'))
    if not cutouts:
        raise SystemExit(f'no cut-outs in {args.cutouts}')
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    labels = {}
    for k in range(args.count):
        bgr, objects, owner = compose(rng, cutouts, HEIGHT, WIDTH, min_objects=3,
                                      max_objects=4, min_visible=0.8, background='belt',
                                      return_owner=True)
        depth_mm, truths = depth_for(owner, len(objects), rng)
        name = f'waste_{k:02d}'
        cv2.imwrite(str(args.out / f'{name}.jpg'), bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])
        cv2.imwrite(str(args.out / f'{name}_depth.png'), depth_mm)
        labels[name] = [{'box_xyxy': list(box), 'material': path.stem.split('_')[0],
                         'source': f'trashnet val {path.stem}', 'depth_m': round(z, 4)}
                        for (box, path), z in zip(objects, truths)]
    (args.out / 'labels.json').write_text(json.dumps(labels, indent=1) + '\n')
    (args.out / 'camera.yaml').write_text(
        f'# Intrinsics the sample depth images are consistent with (pinhole, no distortion).\n'
        f'width: {WIDTH}\nheight: {HEIGHT}\n'
        f'k: [{FX}, 0.0, {CX}, 0.0, {FY}, {CY}, 0.0, 0.0, 1.0]\n')


if __name__ == '__main__':
    main()
