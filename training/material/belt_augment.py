#!/usr/bin/env python3
"""Belt-crop data for the material classifier: TrashNet objects on procedural belt backgrounds.

The classifier trained on plain TrashNet photos learned their white/grey poster-board context and
is near chance on crops of the belt composites. Here each TrashNet object is cut out (the
detector's cutter, training/detector/cutout.py), pasted onto a procedural background (the
detector's compositor, training/detector/make_dataset.py, imported, not copied), and cut back
out as the detector would give it to the classifier: the object's box + 10 % pad
(`edge_perception.core.material.crop_for_box`). Crops keep whatever the box holds: belt, a rim
of the original board, parts of neighbouring objects.

    # cut-outs of a split, once, into a cache (GrabCut, ~0.3 s a photo on a busy CPU)
    python training/material/belt_augment.py cutouts --trashnet DIR --cache /tmp/matbelt \
        --split train
    # held-out figures of one or more ONNX models: TrashNet val, belt crops of val objects,
    # the bundled belt frames
    python training/material/belt_augment.py eval --trashnet DIR --cache /tmp/matbelt \
        --model OLD.onnx --model NEW.onnx --json OUT.json

Honesty of the split: training pools use only `train` cut-outs; the belt evaluation uses only
`val` cut-outs, as do the bundled sample frames (training/detector/make_samples.py).
"""
import argparse
import hashlib
import json
from pathlib import Path
import sys
import time

import cv2
from edge_perception.core.material import crop_for_box, masked_crop_for_region
import numpy as np

# The detector's data scripts are plain modules beside each other, not a package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'detector'))
from make_dataset import build_cutouts, compose, MATERIALS  # noqa: E402, I100

# The bundled sample frames' camera and composition (training/detector/make_samples.py).
FRAME_HEIGHT, FRAME_WIDTH = 480, 640
SAMPLE_STYLE = {'background': 'belt', 'min_objects': 3, 'max_objects': 4, 'min_visible': 0.8}


class BeltDataError(ValueError):
    """A cut-out cache or split is missing, empty or names an unknown material."""


def material_of(cutout_path) -> str:
    """Return the material of a cached cut-out named `<material>_<photo stem>.png`."""
    material = Path(cutout_path).stem.split('_')[0]
    if material not in MATERIALS:
        raise BeltDataError(f'{cutout_path}: name does not start with a material {MATERIALS}')
    return material


def cutout_cache(trashnet_dir, cache_dir, split):
    """Cut out every photo of a TrashNet split once into cache_dir/cutouts/<split>; list them.

    Cached cut-outs (and rejections) are reused, so a second call costs nothing.
    """
    trashnet_dir, cache_dir = Path(trashnet_dir), Path(cache_dir)
    if not (trashnet_dir / split).is_dir():
        raise BeltDataError(f'{trashnet_dir / split} not found (expected TrashNet <split>/)')
    paths, stats = build_cutouts(trashnet_dir, cache_dir, split)
    if not paths:
        raise BeltDataError(f'no usable cut-outs for {trashnet_dir / split}')
    return paths, stats


# Masked crops: the segmentation node's region vote (core.region_materials, crop_mode 'masked')
# paints the padded box outside the region, dilated by its MASK_DILATE_PX (7 px). Training draws
# the dilation from this range, and erodes the true mask first a third of the time, because the
# segmenter's regions are a little larger or smaller than the item.
MASK_DILATE_PX = (2, 12)
MASK_ERODE_PX = (1, 6)
MASK_ERODE_PROBABILITY = 1 / 3


def noisy_region_mask(rng, mask):
    """Return the object's mask, eroded by a few pixels with MASK_ERODE_PROBABILITY."""
    if rng.random() >= MASK_ERODE_PROBABILITY:
        return mask
    radius = int(rng.integers(MASK_ERODE_PX[0], MASK_ERODE_PX[1] + 1))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)
    eroded = cv2.erode(mask.astype(np.uint8), kernel) > 0
    return eroded if eroded.any() else mask


def belt_crops(rng, cutouts, n_composites, height=FRAME_HEIGHT, width=FRAME_WIDTH,
               masked=False, **style):
    """Yield (crop RGB uint8, material, cut-out name) for every object of `n_composites` images.

    Each composite is `make_dataset.compose(rng, cutouts, height, width, **style)`; each object
    is cut from it with `crop_for_box` on its exact visible-mask box (the detector's crop), or,
    with `masked`, with `masked_crop_for_region` on a noisy copy of its visible mask (the
    segmentation node's masked crop).
    """
    for _ in range(n_composites):
        bgr, objects, owner = compose(rng, cutouts, height, width, return_owner=True, **style)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        for index, (box, path) in enumerate(objects):
            if masked:
                mask = noisy_region_mask(rng, owner == index)
                dilate = int(rng.integers(MASK_DILATE_PX[0], MASK_DILATE_PX[1] + 1))
                crop = masked_crop_for_region(rgb, box, mask, dilate_px=dilate)
            else:
                crop = crop_for_box(rgb, box).copy()
            yield crop, material_of(path), path.stem


def crop_pool(cutouts, n_composites, seed, side, masked=False, **style):
    """Return (images N x side x side x 3 uint8, materials, cut-out names) of belt crops.

    Crops are squashed to side x side with INTER_AREA, as the runtime's preprocessing squashes
    them to its input size; keep `side` a little above the model input for crop jitter.
    """
    rng = np.random.default_rng(seed)
    images, materials, names = [], [], []
    for crop, material, name in belt_crops(rng, cutouts, n_composites, masked=masked, **style):
        images.append(cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA))
        materials.append(material)
        names.append(name)
    if not images:
        raise BeltDataError('the composites held no objects')
    return np.stack(images), materials, names


def cached_crop_pool(cache_dir, cutouts, n_composites, seed, side, masked=False, **style):
    """crop_pool(), stored once in cache_dir/pools/ under a key of its inputs and reused."""
    fields = {'cutouts': [p.name for p in cutouts], 'n': n_composites, 'seed': seed,
              'side': side, 'style': style}
    if masked:   # box pools keep the keys they had before masked pools existed
        fields['masked'] = [MASK_DILATE_PX, MASK_ERODE_PX, MASK_ERODE_PROBABILITY]
    key = json.dumps(fields, sort_keys=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    path = Path(cache_dir) / 'pools' / f'pool_{digest}.npz'
    if path.is_file():
        with np.load(path) as data:
            return data['images'], data['materials'].tolist(), data['names'].tolist()
    started = time.time()
    images, materials, names = crop_pool(cutouts, n_composites, seed, side, masked, **style)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, images=images, materials=np.array(materials), names=np.array(names))
    print(f'[pool] {len(images)} crops from {n_composites} composites in '
          f'{time.time() - started:.0f} s -> {path}', flush=True)
    return images, materials, names


def confusion_metrics(truths, predictions, class_names):
    """Top-1, per-class n and recall, confusion matrix (rows true) for class-name lists."""
    confusion = np.zeros((len(class_names), len(class_names)), np.int64)
    for truth, predicted in zip(truths, predictions):
        confusion[class_names.index(truth), class_names.index(predicted)] += 1
    per_class_n = confusion.sum(axis=1)
    return {
        'n_images': int(confusion.sum()),
        'top1': float(np.trace(confusion) / max(confusion.sum(), 1)),
        'per_class_n': {n: int(c) for n, c in zip(class_names, per_class_n)},
        'per_class_recall': {n: (float(confusion[i, i] / per_class_n[i]) if per_class_n[i]
                                 else None) for i, n in enumerate(class_names)},
        'confusion_matrix': confusion.tolist(),
    }


def classify_all(classifier, crops, batch_size=32):
    """Return the predicted material of each crop (the runtime's preprocessing and model)."""
    predicted = []
    for start in range(0, len(crops), batch_size):
        predicted += [r.material for r in classifier.classify(crops[start:start + batch_size])]
    return predicted


def held_out_belt_crops(cutouts, n_composites, seed, style, masked=False):
    """Return (crops, materials) of composites of `cutouts` (native crop sizes, not squashed)."""
    rng = np.random.default_rng(seed)
    crops, materials = [], []
    for crop, material, _ in belt_crops(rng, cutouts, n_composites, masked=masked, **style):
        crops.append(crop)
        materials.append(material)
    return crops, materials


def bundled_frame_crops(step=1):
    """(crops, materials) of every `step`-th bundled belt frame, ground-truth box per object."""
    from edge_perception.harness.samples import waste_belt_frames
    crops, materials = [], []
    for _, rgb, _, truth in waste_belt_frames()[::step]:
        for obj in truth:
            crops.append(crop_for_box(rgb, obj['box_xyxy']))
            materials.append(obj['material'])
    return crops, materials


def evaluate_models(args):
    """Evaluate each model on (a) TrashNet val, (b) belt crops of val objects, (c) bundled."""
    from edge_perception.core.material import MaterialClassifier
    from edge_perception.tools.eval_material import evaluate_folder

    val_cutouts, _ = cutout_cache(args.trashnet, args.cache, 'val')
    sets = {
        # (b) the bundled frames' composition (belt background, 3-4 objects, >= 80 % visible)
        'belt_val_sample_style': held_out_belt_crops(
            val_cutouts, args.composites, args.seed, SAMPLE_STYLE),
        # (b') the detector data set's mix of backgrounds (belt, noise, gradient, flat, stripes)
        'belt_val_mixed_backgrounds': held_out_belt_crops(
            val_cutouts, args.composites, args.seed + 1, {}),
        # (b'') (b)'s composites, each item's crop masked as the segmentation node's vote does
        'belt_val_sample_style_masked': held_out_belt_crops(
            val_cutouts, args.composites, args.seed, SAMPLE_STYLE, masked=True),
        # (c) the repro: every 8th bundled frame (10 objects), and all 24 shifted frames
        'bundled_frames_every_8th': bundled_frame_crops(8),
        'bundled_frames_all': bundled_frame_crops(1),
    }
    report = {'args': {k: str(v) for k, v in vars(args).items()},
              'sets': {name: len(crops) for name, (crops, _) in sets.items()}, 'models': {}}
    for model_path in args.model:
        classifier = MaterialClassifier(model_path, intra_op_num_threads=1)
        names = classifier.class_names
        results = {'trashnet_val': evaluate_folder(classifier, args.trashnet / 'val')}
        for set_name, (crops, materials) in sets.items():
            results[set_name] = confusion_metrics(
                materials, classify_all(classifier, crops), names)
        report['models'][str(model_path)] = results
        print(f'{model_path}:')
        for set_name, metrics in results.items():
            recall = ' '.join(f'{n[:4]} {r:.2f}' if r is not None else f'{n[:4]} -'
                              for n, r in metrics['per_class_recall'].items())
            print(f'  {set_name:<28} n={metrics["n_images"]:<4} top-1 {metrics["top1"]:.3f}'
                  f'  ({recall})', flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + '\n')
        print(f'wrote {args.json}')
    return 0


def main(argv=None):
    """Command line: `cutouts` fills the cache, `eval` measures models on held-out crops."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    commands = parser.add_subparsers(dest='command', required=True)
    cut = commands.add_parser('cutouts', help='cut out a TrashNet split into the cache')
    evaluate = commands.add_parser('eval', help='held-out figures of ONNX models')
    for sub in (cut, evaluate):
        sub.add_argument('--trashnet', type=Path, required=True,
                         help='folder with train/ and val/ TrashNet class folders')
        sub.add_argument('--cache', type=Path, required=True, help='cut-out cache folder')
    cut.add_argument('--split', choices=('train', 'val'), required=True)
    evaluate.add_argument('--model', type=Path, action='append', required=True,
                          help='ONNX model (repeat to compare)')
    evaluate.add_argument('--composites', type=int, default=200,
                          help='belt composites per held-out set (3-4 objects each)')
    evaluate.add_argument('--seed', type=int, default=1234)
    evaluate.add_argument('--json', type=Path, default=None)
    args = parser.parse_args(argv)
    if args.command == 'cutouts':
        started = time.time()
        paths, stats = cutout_cache(args.trashnet, args.cache, args.split)
        print(json.dumps(stats))
        print(f'{len(paths)} cut-outs of {args.split} in {time.time() - started:.0f} s')
        return 0
    return evaluate_models(args)


if __name__ == '__main__':
    sys.exit(main())
