"""DeepCrack image/mask loading, seeded 5-fold split and random-crop batches (training only)."""
import os

import numpy as np
from PIL import Image

# Normalisation written into moe.yaml; the runtime applies the same (x / 255 - mean) / std.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def load_pairs(data_dir):
    """Return (stems, images uint8 (N, H, W, 3), masks bool (N, H, W)) from DIR/images, DIR/masks.

    Portrait images are transposed to landscape so that all arrays stack; masks follow.
    """
    image_dir = os.path.join(data_dir, 'images')
    mask_dir = os.path.join(data_dir, 'masks')
    stems = sorted(os.path.splitext(f)[0] for f in os.listdir(image_dir)
                   if f.lower().endswith(('.jpg', '.jpeg', '.png')))
    if not stems:
        raise ValueError(f'no images in {image_dir}')
    images, masks = [], []
    for stem in stems:
        names = [n for n in os.listdir(image_dir) if os.path.splitext(n)[0] == stem]
        image = np.asarray(Image.open(os.path.join(image_dir, names[0])).convert('RGB'))
        mask = np.asarray(Image.open(os.path.join(mask_dir, stem + '.png')).convert('L')) > 127
        if image.shape[0] > image.shape[1]:
            image, mask = image.transpose(1, 0, 2), mask.T
        images.append(image)
        masks.append(mask)
    return stems, np.stack(images), np.stack(masks)


def fold_assignment(n, n_folds=5, seed=0):
    """Fold index (0..n_folds-1) per item: a seeded permutation cut into equal parts."""
    order = np.random.default_rng(seed).permutation(n)
    folds = np.empty(n, dtype=int)
    for f, part in enumerate(np.array_split(order, n_folds)):
        folds[part] = f
    return folds


def normalise(images_uint8):
    """Convert (N, H, W, 3) uint8 to (N, 3, H, W) float32 normalised with MEAN/STD."""
    x = images_uint8.astype(np.float32) / 255.0
    x = (x - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def random_crop_batch(images, masks, indices, batch_size, crop, rng):
    """Return random crops with flips, transposes and brightness/contrast jitter.

    Returns (x float32 (B, 3, crop, crop) normalised, y float32 (B, 1, crop, crop)).
    Crops are taken from full-resolution images: thin cracks would vanish if downscaled.
    """
    xs = np.empty((batch_size, crop, crop, 3), np.float32)
    ys = np.empty((batch_size, crop, crop), np.float32)
    for b in range(batch_size):
        i = indices[rng.integers(len(indices))]
        h, w = masks[i].shape
        r0 = rng.integers(0, h - crop + 1)
        c0 = rng.integers(0, w - crop + 1)
        img = images[i, r0:r0 + crop, c0:c0 + crop].astype(np.float32) / 255.0
        msk = masks[i, r0:r0 + crop, c0:c0 + crop]
        if rng.random() < 0.5:
            img, msk = img[:, ::-1], msk[:, ::-1]
        if rng.random() < 0.5:
            img, msk = img[::-1], msk[::-1]
        if rng.random() < 0.5:
            img, msk = img.transpose(1, 0, 2), msk.T
        contrast = rng.uniform(0.8, 1.2)
        brightness = rng.uniform(-0.1, 0.1)
        img = np.clip((img - img.mean()) * contrast + img.mean() + brightness, 0.0, 1.0)
        xs[b] = img
        ys[b] = msk
    xs = (xs - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    return np.ascontiguousarray(xs.transpose(0, 3, 1, 2)), ys[:, None]
