"""Crack data sets: loading, group-aware splits and augmented random-crop batches (training only).

Three sets from ../shared/data (see its MANIFEST.md): deepcrack_train (DeepCrack, 300 pairs),
crack_uav (UAV concrete, 315 pairs; `slideN` tiles are neighbouring crops, grouped in blocks of
UAV_BLOCK consecutive N) and crack_crackmap (CrackMap asphalt, 120 pairs; crops of one GoPro frame
share a group). Each set is split by group, seeded, into train / val / test (about 80/10/10 %):
val calibrates thresholds, test is the in-domain held-out report. Images whose stems are among the
bundled samples (src/edge_perception/data/samples/crack) are forced into DeepCrack's test split so
that no model ever trains on them.
"""
import os
import re

import cv2
import numpy as np
from PIL import Image

# Normalisation written into moe.yaml; the runtime applies the same (x / 255 - mean) / std.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SETS = {'deepcrack': 'deepcrack_train', 'uav': 'crack_uav', 'crackmap': 'crack_crackmap'}
UAV_BLOCK = 50
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
PAD_MULTIPLE = 16


def load_set(data_dir):
    """Return (stems, images [uint8 (H, W, 3)], masks [bool (H, W)]) from DIR/images, DIR/masks."""
    image_dir = os.path.join(data_dir, 'images')
    mask_dir = os.path.join(data_dir, 'masks')
    files = sorted(f for f in os.listdir(image_dir)
                   if f.lower().endswith(('.jpg', '.jpeg', '.png')))
    if not files:
        raise ValueError(f'no images in {image_dir}')
    stems, images, masks = [], [], []
    for name in files:
        stem = os.path.splitext(name)[0]
        image = np.asarray(Image.open(os.path.join(image_dir, name)).convert('RGB'))
        mask = np.asarray(Image.open(os.path.join(mask_dir, stem + '.png')).convert('L')) > 127
        if mask.shape != image.shape[:2]:
            raise ValueError(f'{name}: mask {mask.shape} != image {image.shape[:2]}')
        stems.append(stem)
        images.append(image)
        masks.append(mask)
    return stems, images, masks


def group_of(set_name, stem):
    """Images of one group are never split between train, val and test."""
    if set_name == 'uav':
        m = re.fullmatch(r'slide(\d+)', stem)
        return f'slide_block{int(m.group(1)) // UAV_BLOCK}' if m else stem
    if set_name == 'crackmap':
        return stem.rsplit('_', 1)[0]          # GOPR0315_3 -> GOPR0315 (one GoPro frame)
    return stem


def split_set(set_name, stems, seed=0, forced_test=()):
    """'train' / 'val' / 'test' per image: seeded group permutation filled to SPLIT_FRACTIONS."""
    groups = [group_of(set_name, s) for s in stems]
    names = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(names))
    size = {g: groups.count(g) for g in names}
    n = len(stems)
    split_of_group, filled = {}, {'val': 0, 'test': 0}
    for k in order:
        g = names[k]
        if filled['val'] + size[g] <= SPLIT_FRACTIONS[1] * n + 1e-9 and filled['val'] < \
                filled['test'] + 1:
            split_of_group[g] = 'val'
        elif filled['test'] + size[g] <= SPLIT_FRACTIONS[2] * n + 1e-9:
            split_of_group[g] = 'test'
        else:
            split_of_group[g] = 'train'
        if split_of_group[g] != 'train':
            filled[split_of_group[g]] += size[g]
    split = [split_of_group[g] for g in groups]
    for i, s in enumerate(stems):
        if s in forced_test:
            split[i] = 'test'
    return split


def holdout_stems(folder):
    """File stems of the images in folder/images ('' or None: none)."""
    if not folder:
        return set()
    return {os.path.splitext(f)[0] for f in os.listdir(os.path.join(folder, 'images'))}


def load_all(data_root, seed=0, holdout_dir=''):
    """Return {set name: {'stems', 'images', 'masks', 'split', 'groups'}} for the three sets."""
    forced = holdout_stems(holdout_dir)
    out = {}
    for name, folder in SETS.items():
        stems, images, masks = load_set(os.path.join(data_root, folder))
        out[name] = {'stems': stems, 'images': images, 'masks': masks,
                     'split': split_set(name, stems, seed, forced if name == 'deepcrack' else ()),
                     'groups': [group_of(name, s) for s in stems]}
    return out


def normalise(image_uint8):
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 normalised with MEAN/STD."""
    x = (image_uint8.astype(np.float32) / 255.0 - np.array(MEAN, np.float32)) / np.array(
        STD, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def pad_to_multiple(image, m=PAD_MULTIPLE):
    """Reflect-pad bottom/right to a multiple of m, as core.moe does at run time."""
    h, w = image.shape[:2]
    ph, pw = (-h) % m, (-w) % m
    if ph or pw:
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode='reflect')
    return image


def _texture(shape, rng):
    """Zero-mean random texture: blurred noise (aggregate/grain) plus a low-frequency shading."""
    h, w = shape
    grain = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0),
                             rng.uniform(0.7, 2.5))
    grain *= rng.uniform(0.02, 0.08) / (grain.std() + 1e-6)
    coarse = cv2.resize(rng.standard_normal((4, 4)).astype(np.float32), (w, h),
                        interpolation=cv2.INTER_CUBIC) * rng.uniform(0.02, 0.1)
    return grain + coarse


def augment(img, rng):
    """Photometric, blur, noise and texture augmentation of a float32 RGB crop in [0, 1]."""
    if rng.random() < 0.8:       # brightness / contrast / gamma / per-channel gain
        mean = img.mean()
        img = (img - mean) * rng.uniform(0.6, 1.4) + mean + rng.uniform(-0.15, 0.15)
        img = np.clip(img, 0.0, 1.0) ** rng.uniform(0.7, 1.4)
        img = img * rng.uniform(0.85, 1.15, size=3).astype(np.float32)
    if rng.random() < 0.5:       # saturation (towards / away from grey)
        grey = img.mean(axis=2, keepdims=True)
        img = grey + (img - grey) * rng.uniform(0.0, 1.5)
    if rng.random() < 0.5:       # surface texture / uneven lighting
        img = img + _texture(img.shape[:2], rng)[..., None]
    if rng.random() < 0.3:       # defocus / motion-free blur
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.5))
    if rng.random() < 0.4:       # sensor noise
        img = img + rng.normal(0.0, rng.uniform(0.01, 0.05), img.shape).astype(np.float32)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def sample_crop(image, mask, crop, rng, crack_centred=0.5, scale=(0.6, 1.5)):
    """One random crop at a random scale (crop x crop), often centred near a crack pixel."""
    s = float(np.exp(rng.uniform(np.log(scale[0]), np.log(scale[1]))))
    win = max(8, int(round(crop / s)))
    h, w = mask.shape
    if h < win or w < win:     # small image at a large window: reflect-pad
        ph, pw = max(0, win - h), max(0, win - w)
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode='reflect')
        mask = np.pad(mask, ((0, ph), (0, pw)), mode='reflect')
        h, w = mask.shape
    if rng.random() < crack_centred and mask.any():
        ys, xs = np.nonzero(mask)
        k = rng.integers(len(ys))
        r0 = int(np.clip(ys[k] - rng.integers(win), 0, h - win))
        c0 = int(np.clip(xs[k] - rng.integers(win), 0, w - win))
    else:
        r0, c0 = rng.integers(0, h - win + 1), rng.integers(0, w - win + 1)
    img = image[r0:r0 + win, c0:c0 + win].astype(np.float32) / 255.0
    msk = mask[r0:r0 + win, c0:c0 + win].astype(np.float32)
    if win != crop:
        down = win > crop
        img = cv2.resize(img, (crop, crop), interpolation=cv2.INTER_AREA if down
                         else cv2.INTER_LINEAR)
        msk = cv2.resize(msk, (crop, crop), interpolation=cv2.INTER_AREA if down
                         else cv2.INTER_LINEAR)
        msk = msk >= (0.3 if down else 0.5)     # thin cracks survive downscaling
    k = rng.integers(4)
    img, msk = np.rot90(img, k), np.rot90(msk, k)
    if rng.random() < 0.5:
        img, msk = img[:, ::-1], msk[:, ::-1]
    return augment(np.ascontiguousarray(img), rng), np.ascontiguousarray(msk, np.float32)


def random_batch(pool, batch_size, crop, rng):
    """Batch from pool = [(images, masks, indices) per set]; each set equally likely.

    Returns (x float32 (B, 3, crop, crop) normalised, y float32 (B, 1, crop, crop)).
    """
    xs = np.empty((batch_size, crop, crop, 3), np.float32)
    ys = np.empty((batch_size, crop, crop), np.float32)
    for b in range(batch_size):
        images, masks, indices = pool[rng.integers(len(pool))]
        i = indices[rng.integers(len(indices))]
        xs[b], ys[b] = sample_crop(images[i], masks[i], crop, rng)
    xs = (xs - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    return np.ascontiguousarray(xs.transpose(0, 3, 1, 2)), ys[:, None]
