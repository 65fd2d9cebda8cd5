"""Synthesise a YOLO detection data set from TrashNet cut-outs on procedural belt backgrounds.

Usage:
    python training/detector/make_dataset.py --trashnet /work/shared/data/trashnet \
        --out out/detector_data [--n-train 2500] [--n-val 400] [--seed 0]

Output (Ultralytics layout):
    OUT/cutouts/{train,val}/<material>_<stem>.png   RGBA cut-outs (cached; see cutout.py)
    OUT/images/{train,val}/*.jpg, OUT/labels/{train,val}/*.txt   one class: 0 = waste
    OUT/meta/{train,val}.jsonl   per image: boxes in pixels and each object's TrashNet material
    OUT/data.yaml, OUT/cutout_stats.json

Honesty of the split: the train images are built only from TrashNet `train` photos and the
held-out (val) images only from TrashNet `val` photos, so no object is shared between them.
Boxes are exact: each is the bounding box of the object's visible pasted mask (alpha > 0.5) after
every later object and the frame edge have clipped it.
"""
import argparse
import json
import math
from pathlib import Path
import sys

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cutout import cut_out  # noqa: E402, I100  (sibling script module, not a package)

MATERIALS = ('cardboard', 'glass', 'metal', 'paper', 'plastic', 'trash')


def build_cutouts(trashnet_dir, out_dir, split, max_per_class=None):
    """Cut out the photos of a TrashNet split once (cached); return (paths, stats).

    `max_per_class` keeps the first N photos (sorted by name) of each material, to bound the
    GrabCut time on a small CPU.
    """
    dst = out_dir / 'cutouts' / split
    dst.mkdir(parents=True, exist_ok=True)
    stats = {}
    for material in MATERIALS:
        photos = sorted((trashnet_dir / split / material).glob('*.jpg'))[:max_per_class]
        kept = 0
        for photo in photos:
            target = dst / f'{material}_{photo.stem}.png'
            rejected = dst / f'{material}_{photo.stem}.rejected'
            if target.exists():
                kept += 1
                continue
            if rejected.exists():
                continue
            bgr = cv2.imread(str(photo))
            mask = None if bgr is None else cut_out(bgr)
            if mask is None:
                rejected.touch()
                continue
            ys, xs = np.nonzero(mask)
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            rgba = np.dstack([bgr, mask.astype(np.uint8) * 255])[y0:y1, x0:x1]
            cv2.imwrite(str(target), rgba)
            kept += 1
        stats[material] = {'photos': len(photos), 'kept': kept}
        print(f'[cutouts] {split}/{material}: kept {kept} of {len(photos)}', flush=True)
    names = {f'{m}_{p.stem}.png' for m in MATERIALS
             for p in sorted((trashnet_dir / split / m).glob('*.jpg'))[:max_per_class]}
    return sorted(p for p in dst.glob('*.png') if p.name in names), stats


def _value_noise(rng, h, w, cells, octaves=3):
    """Smooth multi-octave noise in [0, 1] (bicubic-upscaled random grids)."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for i in range(octaves):
        gh = max(2, int(cells * 2 ** i * h / max(h, w)))
        gw = max(2, int(cells * 2 ** i * w / max(h, w)))
        grid = rng.random((gh, gw)).astype(np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.5
    out /= total
    return np.clip((out - out.min()) / (np.ptp(out) + 1e-6), 0, 1)


def _random_colour(rng, dark=False):
    if dark:
        grey = rng.uniform(15, 110)
        return np.clip(grey + rng.normal(0, 12, 3), 0, 255)
    return rng.uniform(0, 255, 3)


def make_background(rng, h, w, kind=None):
    """Return a procedural belt/floor background, float32 BGR in [0, 255]."""
    kind = kind or rng.choice(['belt', 'belt', 'noise', 'gradient', 'flat', 'stripes'])
    if kind == 'belt':
        # Rubber belt: dark, fine grain, streaks along the running direction, seams across it.
        base = _random_colour(rng, dark=rng.random() < 0.8)
        img = np.ones((h, w, 3), np.float32) * base
        streak = rng.normal(0, rng.uniform(2, 10), (1, w)).astype(np.float32)
        streak = cv2.GaussianBlur(streak, (0, 0), rng.uniform(0.5, 3))
        img += np.repeat(streak, h, axis=0)[..., None]
        img += rng.normal(0, rng.uniform(2, 9), (h, w, 1)).astype(np.float32)
        for _ in range(rng.integers(0, 3)):
            y = rng.integers(0, h)
            img[y:y + rng.integers(1, 4)] *= rng.uniform(0.6, 1.3)
        if rng.random() < 0.5:
            img = np.ascontiguousarray(np.rot90(img))
            img = cv2.resize(img, (w, h))
    elif kind == 'noise':
        c0, c1 = _random_colour(rng), _random_colour(rng)
        t = _value_noise(rng, h, w, rng.integers(2, 8))[..., None]
        img = c0 * (1 - t) + c1 * t
    elif kind == 'gradient':
        c0, c1 = _random_colour(rng), _random_colour(rng)
        angle = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = (xx * math.cos(angle) + yy * math.sin(angle))
        t = ((t - t.min()) / (np.ptp(t) + 1e-6))[..., None]
        img = c0 * (1 - t) + c1 * t
    elif kind == 'flat':
        img = np.ones((h, w, 3), np.float32) * _random_colour(rng)
    else:
        # Painted stripes or plates: straight-edged distractors that are not waste.
        img = np.ones((h, w, 3), np.float32) * _random_colour(rng, dark=True)
        for _ in range(rng.integers(1, 5)):
            colour = _random_colour(rng)
            if rng.random() < 0.5:
                x = rng.integers(0, w)
                img[:, x:x + rng.integers(3, 25)] = colour
            else:
                y = rng.integers(0, h)
                img[y:y + rng.integers(3, 25)] = colour
    img = img.astype(np.float32) + rng.normal(0, rng.uniform(1, 6), (h, w, 3)).astype(np.float32)
    return np.clip(img, 0, 255)


def _lighting(rng, h, w):
    """Return a smooth multiplicative illumination field (uneven lamps, vignetting)."""
    field = 1.0 + rng.uniform(0.1, 0.5) * (_value_noise(rng, h, w, 2, octaves=1) - 0.5)
    if rng.random() < 0.5:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2
        field *= 1.0 - rng.uniform(0, 0.6) * r2
    return field * rng.uniform(0.7, 1.25)


def _transform_cutout(rng, rgba, target_side):
    """Scale, rotate, flip and colour-jitter an RGBA cut-out; return (bgr float, alpha float)."""
    h, w = rgba.shape[:2]
    scale = target_side / math.sqrt(h * w)
    angle = rng.uniform(0, 360)
    if rng.random() < 0.5:
        rgba = rgba[:, ::-1]
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    cos, sin = abs(rot[0, 0]), abs(rot[0, 1])
    new_w, new_h = int(h * sin + w * cos) + 2, int(h * cos + w * sin) + 2
    rot[0, 2] += new_w / 2 - w / 2
    rot[1, 2] += new_h / 2 - h / 2
    out = cv2.warpAffine(np.ascontiguousarray(rgba), rot, (new_w, new_h),
                         flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    bgr = out[..., :3].astype(np.float32)
    alpha = out[..., 3].astype(np.float32) / 255.0
    # Colour jitter: contrast, brightness, per-channel gain (white balance).
    bgr = (bgr - 128) * rng.uniform(0.75, 1.25) + 128 + rng.uniform(-25, 25)
    bgr *= rng.uniform(0.9, 1.1, 3).astype(np.float32)
    # Soften the cut edge by a pixel so no hard aliasing betrays the paste.
    alpha = cv2.GaussianBlur(alpha, (3, 3), 0.7)
    return np.clip(bgr, 0, 255), alpha


def compose(rng, cutouts, h, w, min_objects=1, max_objects=6, min_visible=0.5,
            background=None, return_owner=False):
    """Compose one image; return (bgr uint8, list of (box_xyxy, cutout_path)).

    With return_owner, also the HxW map of which object (index into the list) owns each pixel
    (-1 = background).
    """
    canvas = make_background(rng, h, w, background)
    owner = np.full((h, w), -1, np.int32)
    areas = []
    sources = []
    n_target = int(rng.integers(min_objects, max_objects + 1))
    for _ in range(n_target):
        for _attempt in range(8):
            path = cutouts[int(rng.integers(len(cutouts)))]
            rgba = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            side = rng.uniform(0.12, 0.42) * min(h, w)
            bgr, alpha = _transform_cutout(rng, rgba, side)
            oh, ow = alpha.shape
            # Allow up to ~30 % of an object to leave the frame (items entering the view).
            x0 = int(rng.integers(-ow // 3, w - 2 * ow // 3))
            y0 = int(rng.integers(-oh // 3, h - 2 * oh // 3))
            cx0, cy0 = max(x0, 0), max(y0, 0)
            cx1, cy1 = min(x0 + ow, w), min(y0 + oh, h)
            if cx1 <= cx0 or cy1 <= cy0:
                continue
            sub_alpha = alpha[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
            full_area = float((alpha > 0.5).sum())
            inside = sub_alpha > 0.5
            if full_area < 1 or inside.sum() < 0.7 * full_area:
                continue
            new_owner = owner.copy()
            new_owner[cy0:cy1, cx0:cx1][inside] = len(areas)
            # Occlusion check: every earlier object keeps at least min_visible of its area.
            counts = np.bincount(new_owner[new_owner >= 0].ravel(), minlength=len(areas) + 1)
            if any(counts[i] < min_visible * areas[i] for i in range(len(areas))):
                continue
            # Soft shadow below the object, then the object itself.
            shadow = np.zeros((h, w), np.float32)
            dx, dy = rng.integers(-6, 7, 2)
            sx0, sy0 = max(x0 + dx, 0), max(y0 + dy, 0)
            sx1, sy1 = min(x0 + dx + ow, w), min(y0 + dy + oh, h)
            if sx1 > sx0 and sy1 > sy0:
                shadow[sy0:sy1, sx0:sx1] = alpha[sy0 - y0 - dy:sy1 - y0 - dy,
                                                 sx0 - x0 - dx:sx1 - x0 - dx]
                shadow = cv2.GaussianBlur(shadow, (0, 0), rng.uniform(2, 6))
                canvas *= (1 - rng.uniform(0.2, 0.5) * shadow)[..., None]
            region = canvas[cy0:cy1, cx0:cx1]
            a = sub_alpha[..., None]
            region[:] = region * (1 - a) + bgr[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0] * a
            owner = new_owner
            areas.append(full_area * (inside.sum() / full_area))
            sources.append(path)
            break
    canvas *= _lighting(rng, h, w)[..., None]
    if rng.random() < 0.3:
        canvas = cv2.GaussianBlur(canvas, (0, 0), rng.uniform(0.3, 1.2))
    if rng.random() < 0.2:
        # Motion blur along the belt.
        k = int(rng.integers(3, 8))
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2] = 1.0 / k
        if rng.random() < 0.5:
            kernel = kernel.T
        canvas = cv2.filter2D(canvas, -1, kernel)
    canvas += rng.normal(0, rng.uniform(0, 5), canvas.shape).astype(np.float32)
    objects = []
    final_owner = np.full((h, w), -1, np.int32)
    for i, path in enumerate(sources):
        ys, xs = np.nonzero(owner == i)
        if len(ys) == 0:
            continue
        final_owner[ys, xs] = len(objects)
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        objects.append((box, path))
    image = np.clip(canvas, 0, 255).astype(np.uint8)
    if return_owner:
        return image, objects, final_owner
    return image, objects


def write_split(rng, cutouts, out_dir, split, count, h, w):
    """Write `count` composite images and YOLO labels for one split."""
    img_dir = out_dir / 'images' / split
    lbl_dir = out_dir / 'labels' / split
    img_dir.mkdir(parents=True, exist_ok=True)
    lbl_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / 'meta').mkdir(exist_ok=True)
    n_boxes = 0
    with open(out_dir / 'meta' / f'{split}.jsonl', 'w') as meta:
        for i in range(count):
            image, objects = compose(rng, cutouts, h, w)
            name = f'{split}_{i:05d}'
            cv2.imwrite(str(img_dir / f'{name}.jpg'), image,
                        [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(70, 96))])
            lines = []
            for (x0, y0, x1, y1), _ in objects:
                lines.append(f'0 {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} '
                             f'{(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}')
            (lbl_dir / f'{name}.txt').write_text('\n'.join(lines) + ('\n' if lines else ''))
            meta.write(json.dumps({
                'image': f'images/{split}/{name}.jpg',
                'objects': [{'box_xyxy': list(box), 'material': p.stem.split('_')[0],
                             'source': p.stem} for box, p in objects]}) + '\n')
            n_boxes += len(objects)
            if (i + 1) % 250 == 0:
                print(f'[compose] {split}: {i + 1}/{count}', flush=True)
    return n_boxes


def main(argv=None):
    """Build cut-outs and composites for the train and held-out splits."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--trashnet', type=Path, required=True,
                        help='folder with train/ and val/ TrashNet class folders')
    parser.add_argument('--out', type=Path, required=True)
    parser.add_argument('--n-train', type=int, default=2500)
    parser.add_argument('--n-val', type=int, default=400)
    parser.add_argument('--width', type=int, default=384)
    parser.add_argument('--height', type=int, default=288)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--max-photos-per-class', type=int, default=None,
                        help='cut out at most N photos per material and split (GrabCut time)')
    args = parser.parse_args(argv)
    for split in ('train', 'val'):
        if not (args.trashnet / split).is_dir():
            raise SystemExit(f'{args.trashnet / split} not found (expected TrashNet train/ val/)')
    args.out.mkdir(parents=True, exist_ok=True)
    stats = {}
    counts = {'train': args.n_train, 'val': args.n_val}
    for k, split in enumerate(('train', 'val')):
        cutouts, stats[split] = build_cutouts(args.trashnet, args.out, split,
                                              args.max_photos_per_class)
        rng = np.random.default_rng(args.seed + k)
        stats[split]['images'] = counts[split]
        stats[split]['boxes'] = write_split(rng, cutouts, args.out, split, counts[split],
                                            args.height, args.width)
        print(f'[compose] {split}: {counts[split]} images, {stats[split]["boxes"]} boxes')
    (args.out / 'cutout_stats.json').write_text(json.dumps(stats, indent=1))
    (args.out / 'data.yaml').write_text(
        f'path: {args.out.resolve()}\ntrain: images/train\nval: images/val\nnames:\n  0: waste\n')


if __name__ == '__main__':
    main()
