#!/usr/bin/env python3
"""Segmentation composites: TrashNet cut-outs on many surfaces, with exact 7-label maps.

Labels: 0 background, 1 cardboard, 2 glass, 3 metal, 4 paper, 5 plastic, 6 trash
(`LABELS`, the runtime's `edge_perception.core.waste_segmentation.LABELS`).

Each composite is `training/detector/make_dataset.compose(..., return_owner=True)` (touching and
overlapping items, shadows, uneven light, blur, motion blur, noise): imported, not copied. The
label of a pixel is the material of the object that owns it in compose's owner map (alpha > 0.5
after every later object and the frame edge clipped it), 0 where no object does.

Backgrounds (`BACKGROUND_FAMILIES`) vary hard, because the model is judged on surfaces we do not
have:
  * procedural, from make_dataset.make_background: belt, noise, gradient, flat, stripes;
  * procedural, here: wood (grain rings), fabric (weave), tiles (grout grid), speckle
    (terrazzo / granite), blotch (stains and painted shapes over another surface);
  * real photo textures: random patches of crack data sets (concrete and asphalt) recoloured
    (hue turn, saturation, gamma, channel gain, sometimes grey then tinted), rescaled, blurred:
    `deepcrack` (DeepCrack, research and education use), `crackmap` (CrackMap, research use),
    `uav` (UAV crack tiles, CC0).
`HELD_OUT_FAMILIES` (uav and wood) are never used for training; the held-out-surface evaluation
composites use only them. Training objects come only from TrashNet `train` cut-outs, evaluation
objects only from `val` cut-outs.

Write evaluation sets (PNG frames + same-stem PNG label maps, for `edge-perception
eval-waste-seg`):

    python training/waste_seg/compose_seg.py write --cutouts /tmp/matv3/cache/cutouts/val \
        --out /tmp/wasteseg/eval_heldout --n 200 --families held_out --seed 101
    python training/waste_seg/compose_seg.py write --cutouts /tmp/matv3/cache/cutouts/val \
        --out /tmp/wasteseg/eval_infamily --n 200 --families train --seed 102

From Python (the node tests' helper): `write_eval_set(out_dir, cutout_dir, n, seed=0,
families='held_out', height=480, width=640, texture_root=DEFAULT_TEXTURE_ROOT)`.
"""
import argparse
import math
from pathlib import Path
import sys

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / 'detector'))
import make_dataset  # noqa: E402, I100  (sibling script modules, not a package)
from make_dataset import compose, MATERIALS  # noqa: E402, I100

LABELS = ('background',) + MATERIALS
DEFAULT_TEXTURE_ROOT = Path('/work/shared/data')
TEXTURE_SOURCES = {
    'deepcrack': 'deepcrack_train/images',
    'crackmap': 'crack_crackmap/images',
    'uav': 'crack_uav/images',
}
PROCEDURAL_BASE = ('belt', 'noise', 'gradient', 'flat', 'stripes')
PROCEDURAL_NEW = ('wood', 'fabric', 'tiles', 'speckle', 'blotch')
BACKGROUND_FAMILIES = PROCEDURAL_BASE + PROCEDURAL_NEW + tuple(TEXTURE_SOURCES)
HELD_OUT_FAMILIES = ('uav', 'wood')
TRAIN_FAMILIES = tuple(f for f in BACKGROUND_FAMILIES if f not in HELD_OUT_FAMILIES)
# Sampling weights of the training families (real textures and the belt a little more often).
TRAIN_WEIGHTS = {'belt': 2.0, 'deepcrack': 2.0, 'crackmap': 1.5}


class ComposeSegError(ValueError):
    """A cut-out folder or texture source is missing or empty, or a family is unknown."""


def label_of(cutout_path) -> int:
    """Label (1..6) of a cached cut-out named `<material>_<photo stem>.png`."""
    material = Path(cutout_path).stem.split('_')[0]
    if material not in MATERIALS:
        raise ComposeSegError(f'{cutout_path}: name does not start with a material {MATERIALS}')
    return 1 + MATERIALS.index(material)


def list_cutouts(cutout_dir):
    """Sorted RGBA cut-out PNGs of a folder (belt_augment / make_dataset cache layout)."""
    paths = sorted(Path(cutout_dir).glob('*.png'))
    if not paths:
        raise ComposeSegError(f'no cut-outs (*.png) in {cutout_dir}')
    for path in paths:
        label_of(path)
    return paths


def balanced_cutouts(paths, power, resolution=10):
    """Repeat cut-outs so a material with n cut-outs is drawn in proportion to n ** (1 - power).

    compose() draws uniformly from its list, so repetition is the weight: power 0 keeps the list
    (materials drawn as often as they have cut-outs), 1 draws every material equally often.
    Repeat counts are rounded to 1/resolution of the largest material's.
    """
    by_label = {}
    for path in paths:
        by_label.setdefault(label_of(path), []).append(path)
    largest = max(len(v) for v in by_label.values())
    out = []
    for label in sorted(by_label):
        repeat = max(1, round(resolution * (largest / len(by_label[label])) ** power))
        out.extend(by_label[label] * repeat)
    return out


def load_textures(root=DEFAULT_TEXTURE_ROOT, sources=tuple(TEXTURE_SOURCES), max_side=448):
    """Return {source: [BGR uint8 images]} of the real-texture sources, shrunk to max_side."""
    textures = {}
    for source in sources:
        folder = Path(root) / TEXTURE_SOURCES[source]
        images = []
        for path in sorted(folder.glob('*.jpg')) + sorted(folder.glob('*.png')):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                continue
            scale = max_side / max(image.shape[:2])
            if scale < 1:
                image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            images.append(image)
        if not images:
            raise ComposeSegError(f'no texture images in {folder}')
        textures[source] = images
    return textures


def _recolour(rng, img):
    """Random hue turn, saturation, gamma, gain and tint of a float32 BGR image in [0, 255]."""
    img = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.35:  # grey, then tinted: concrete, painted steel, plastic belts
        grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
        tint = rng.uniform(0.3, 1.0, 3).astype(np.float32)
        out = grey[..., None] * tint / tint.max()
    else:
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(0, 180)) % 180
        hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.3, 3.0) + rng.uniform(0, 60), 0, 255)
        out = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR).astype(np.float32)
    gamma = rng.uniform(0.5, 1.8)
    out = 255.0 * (out / 255.0) ** gamma
    contrast = rng.uniform(0.5, 1.4)
    out = (out - out.mean()) * contrast + rng.uniform(30, 200)
    return np.clip(out * rng.uniform(0.85, 1.15, 3).astype(np.float32), 0, 255)


def texture_background(rng, h, w, images):
    """Return a random patch of a real texture photo, rescaled, flipped, recoloured, blurred."""
    src = images[int(rng.integers(len(images)))]
    sh, sw = src.shape[:2]
    zoom = rng.uniform(0.35, 1.0)  # fraction of the source's short side that spans the frame
    ch = max(8, int(min(sh, sw) * zoom * min(h, w) / max(h, w)))
    cw = max(8, int(ch * w / h))
    if cw > sw:
        cw, ch = sw, max(8, int(sw * h / w))
    y0 = int(rng.integers(0, sh - ch + 1))
    x0 = int(rng.integers(0, sw - cw + 1))
    patch = src[y0:y0 + ch, x0:x0 + cw]
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    if rng.random() < 0.5:
        patch = patch[::-1]
    img = cv2.resize(np.ascontiguousarray(patch), (w, h), interpolation=cv2.INTER_LINEAR)
    img = _recolour(rng, img.astype(np.float32))
    if rng.random() < 0.4:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 2.5))
    return img


def _noise(rng, h, w, cells, octaves=3):
    return make_dataset._value_noise(rng, h, w, int(cells), octaves)


def _colour(rng):
    return rng.uniform(0, 255, 3).astype(np.float32)


def procedural_background(rng, h, w, kind):
    """Return one of the new procedural surfaces (PROCEDURAL_NEW), float32 BGR in [0, 255]."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == 'wood':
        # Growth rings: distance to a far-off centre, warped by smooth noise, along a random axis.
        angle = rng.uniform(0, math.pi)
        u = xx * math.cos(angle) + yy * math.sin(angle)
        v = -xx * math.sin(angle) + yy * math.cos(angle)
        warp = _noise(rng, h, w, rng.integers(2, 5)) * rng.uniform(10, 40)
        rings = np.sin((v * rng.uniform(0.05, 0.3) + warp + 0.002 * u) * 1.0)
        grain = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 0.8)
        t = np.clip(0.5 + 0.35 * rings + 0.08 * grain, 0, 1)[..., None]
        light = np.array([rng.uniform(120, 230), rng.uniform(90, 190), rng.uniform(40, 120)])
        dark = light * rng.uniform(0.35, 0.75)
        img = (dark[::-1] * (1 - t) + light[::-1] * t).astype(np.float32)  # BGR
        if rng.random() < 0.3:  # planks
            period = rng.uniform(40, 160)
            img *= (0.75 + 0.25 * (np.abs(((v / period) % 1) - 0.5) > 0.02))[..., None]
    elif kind == 'fabric':
        period = rng.uniform(2.5, 9)
        angle = rng.uniform(0, math.pi)
        u = xx * math.cos(angle) + yy * math.sin(angle)
        v = -xx * math.sin(angle) + yy * math.cos(angle)
        weave = np.sin(2 * math.pi * u / period) * np.sin(2 * math.pi * v / period)
        t = (0.5 + 0.25 * weave + 0.25 * (_noise(rng, h, w, 6) - 0.5))[..., None]
        c0, c1 = _colour(rng), _colour(rng)
        img = c0 * (1 - t) + c1 * t
        if rng.random() < 0.4:  # checks / tartan
            band = rng.uniform(20, 90)
            img *= (0.8 + 0.2 * ((np.floor(u / band) + np.floor(v / band)) % 2))[..., None]
    elif kind == 'tiles':
        side = rng.uniform(25, 120)
        angle = rng.uniform(-0.3, 0.3)
        u = xx * math.cos(angle) + yy * math.sin(angle)
        v = -xx * math.sin(angle) + yy * math.cos(angle)
        grout = ((u % side) < rng.uniform(1.5, 5)) | ((v % side) < rng.uniform(1.5, 5))
        tile_id = (np.floor(u / side) * 7 + np.floor(v / side) * 13) % 5
        base = _colour(rng)
        img = base * (0.85 + 0.06 * tile_id[..., None])
        img = img + (_noise(rng, h, w, 8)[..., None] - 0.5) * 40
        img[grout] = _colour(rng) * 0.6
    elif kind == 'speckle':
        base = _colour(rng)
        img = np.ones((h, w, 3), np.float32) * base
        for _ in range(3):
            n = int(h * w * rng.uniform(0.005, 0.04))
            ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
            img[ys, xs] = _colour(rng)
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.5))
        img = cv2.dilate(img, np.ones((2, 2), np.uint8)) if rng.random() < 0.5 else img
    elif kind == 'blotch':
        img = make_dataset.make_background(rng, h, w, str(rng.choice(PROCEDURAL_BASE)))
        for _ in range(int(rng.integers(1, 6))):
            colour = _colour(rng)
            mask = np.zeros((h, w), np.uint8)
            cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
            if rng.random() < 0.5:
                axes = (int(rng.integers(5, w // 3)), int(rng.integers(5, h // 3)))
                cv2.ellipse(mask, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
            else:
                pts = np.stack([cx + rng.normal(0, w / 8, 5), cy + rng.normal(0, h / 8, 5)], 1)
                cv2.fillPoly(mask, [pts.astype(np.int32)], 1)
            soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), rng.uniform(0.5, 8))
            alpha = soft[..., None] * rng.uniform(0.3, 0.9)
            img = img * (1 - alpha) + colour * alpha
    else:
        raise ComposeSegError(f'unknown procedural background {kind!r}')
    img = img + rng.normal(0, rng.uniform(1, 6), (h, w, 3)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.float32)


class BackgroundSampler:
    """Draws a background of one of `families` (names in BACKGROUND_FAMILIES)."""

    def __init__(self, families, texture_root=DEFAULT_TEXTURE_ROOT, weights=None):
        unknown = [f for f in families if f not in BACKGROUND_FAMILIES]
        if unknown or not families:
            raise ComposeSegError(f'unknown background families {unknown}; known '
                                  f'{BACKGROUND_FAMILIES}')
        self.families = tuple(families)
        weights = weights or {}
        p = np.array([weights.get(f, 1.0) for f in self.families], np.float64)
        self.p = p / p.sum()
        self.textures = load_textures(texture_root, [f for f in self.families
                                                     if f in TEXTURE_SOURCES])

    def __call__(self, rng, h, w):
        """Return (float32 BGR background HxWx3, family name)."""
        family = self.families[int(rng.choice(len(self.families), p=self.p))]
        if family in PROCEDURAL_BASE:
            img = make_dataset.make_background(rng, h, w, family)
        elif family in PROCEDURAL_NEW:
            img = procedural_background(rng, h, w, family)
        else:
            img = texture_background(rng, h, w, self.textures[family])
        return np.ascontiguousarray(img, dtype=np.float32), family


_original_make_background = make_dataset.make_background


def _make_background_hook(rng, h, w, kind=None):
    """make_dataset.compose's background: an array passed as `kind` is used as it is."""
    if isinstance(kind, np.ndarray):
        return kind.copy()
    return _original_make_background(rng, h, w, kind)


# compose() looks make_background up in its module at call time; this lets it take a ready
# background array (make_dataset.py stays unchanged; its own kinds behave as before).
make_dataset.make_background = _make_background_hook


def compose_seg(rng, cutouts, h, w, sampler, min_objects=1, max_objects=6, min_visible=0.5):
    """Return (RGB uint8 HxWx3, labels uint8 HxW in 0..6, background family) of one composite."""
    background, family = sampler(rng, h, w)
    bgr, objects, owner = compose(rng, cutouts, h, w, min_objects, max_objects, min_visible,
                                  background=background, return_owner=True)
    lut = np.zeros(len(objects) + 1, np.uint8)  # index 0 <- owner -1 (background)
    for i, (_, path) in enumerate(objects):
        lut[i + 1] = label_of(path)
    labels = lut[owner + 1]
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), labels, family


def families_named(name):
    """'train' / 'held_out' / 'all' or a comma-separated list of family names."""
    presets = {'train': TRAIN_FAMILIES, 'held_out': HELD_OUT_FAMILIES,
               'all': BACKGROUND_FAMILIES}
    if name in presets:
        return presets[name]
    return tuple(f.strip() for f in name.split(',') if f.strip())


def write_eval_set(out_dir, cutout_dir, n, seed=0, families='held_out', height=480, width=640,
                   texture_root=DEFAULT_TEXTURE_ROOT, min_objects=1, max_objects=6):
    """Write n composites as OUT/images/NNNN.png (RGB) and OUT/masks/NNNN.png (labels 0..6).

    Use TrashNet *val* cut-outs (`cutout_dir`) for anything that evaluates a model trained here.
    Returns a list of {'stem', 'family', 'labels_present'} per image (also OUT/index.json).
    """
    import json

    out_dir = Path(out_dir)
    (out_dir / 'images').mkdir(parents=True, exist_ok=True)
    (out_dir / 'masks').mkdir(parents=True, exist_ok=True)
    cutouts = list_cutouts(cutout_dir)
    sampler = BackgroundSampler(families_named(families), texture_root)
    rng = np.random.default_rng(seed)
    index = []
    for i in range(n):
        rgb, labels, family = compose_seg(rng, cutouts, height, width, sampler,
                                          min_objects, max_objects)
        stem = f'{i:04d}'
        cv2.imwrite(str(out_dir / 'images' / f'{stem}.png'), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(out_dir / 'masks' / f'{stem}.png'), labels)
        index.append({'stem': stem, 'family': family,
                      'labels_present': sorted(int(v) for v in np.unique(labels))})
    (out_dir / 'index.json').write_text(json.dumps(
        {'cutouts': str(cutout_dir), 'seed': seed, 'families': families, 'size': [width, height],
         'images': index}, indent=1) + '\n')
    return index


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    commands = parser.add_subparsers(dest='command', required=True)
    write = commands.add_parser('write', help='write PNG frames + label maps')
    write.add_argument('--cutouts', type=Path, required=True, help='RGBA cut-out folder')
    write.add_argument('--out', type=Path, required=True)
    write.add_argument('--n', type=int, default=100)
    write.add_argument('--seed', type=int, default=0)
    write.add_argument('--families', default='held_out',
                       help="'train', 'held_out', 'all' or a comma-separated list")
    write.add_argument('--width', type=int, default=640)
    write.add_argument('--height', type=int, default=480)
    write.add_argument('--texture-root', type=Path, default=DEFAULT_TEXTURE_ROOT)
    args = parser.parse_args(argv)
    index = write_eval_set(args.out, args.cutouts, args.n, args.seed, args.families,
                           args.height, args.width, args.texture_root)
    families = sorted({e['family'] for e in index})
    print(f'wrote {len(index)} composites ({", ".join(families)}) to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
