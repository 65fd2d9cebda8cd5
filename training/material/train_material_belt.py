#!/usr/bin/env python3
"""Fine-tune the material classifier on belt crops mixed with plain TrashNet photos; export ONNX.

    python training/material/train_material_belt.py --data /work/shared/data/trashnet \
        --cache /tmp/matbelt --init /tmp/mat/run2/best.pt --out OUT [--epochs 28]

The shipped model (train_material.py, TrashNet only) learned the photos' plain board as context
and is near chance on detector crops from a belt. Each epoch here shows every TrashNet train
photo once (the shipped recipe's augmentation) and as many belt crops (belt_augment.py:
TrashNet *train* cut-outs composited on procedural backgrounds, cut out by their box + 10 %
pad), so plain photos keep working. Same architecture (MaterialNet, imported), started from the
given checkpoint's weights, SGD with warm-up and cosine decay, label smoothing, EMA of the
weights. The final EMA
weights are exported, with no epoch picked on validation data; TrashNet val and belt crops of
TrashNet *val* cut-outs are only logged per epoch.

One process, one torch thread. Writes OUT/material_cnn.onnx (+ .classes.txt), OUT/last.pt,
OUT/history.json, OUT/summary.json.
"""
import argparse
import json
import os
from pathlib import Path
import random
import sys
import time

from edge_perception.core import material as runtime
import numpy as np

# One thread is the budget; set before torch starts its pools.
os.environ.setdefault('OMP_NUM_THREADS', '1')

import torch  # noqa: E402
from torchvision.transforms import v2  # noqa: E402

# Sibling training scripts are plain modules, not a package.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from belt_augment import (  # noqa: E402, I100
    cached_crop_pool, cutout_cache, held_out_belt_crops, SAMPLE_STYLE)
from train_material import (  # noqa: E402, I100
    check_onnx_matches_torch, evaluate, export_onnx, list_images, load_rgb, make_augment,
    MaterialNet, random_rot90, sgd_optimizer, shrink_short_side, train_step, warmup_cosine)


def belt_crop_augment(input_size):
    """Augmentation of belt crops: mild crop jitter only (the detector's box is near the object).

    The composites already vary lighting, colour, blur and noise.
    """
    return v2.Compose([
        v2.RandomResizedCrop(input_size, scale=(0.6, 1.0), ratio=(0.75, 1.33), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomVerticalFlip(),
        v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.02),
        v2.ToDtype(torch.float32, scale=True),
    ])


def as_chw(images):
    """N x H x W x 3 uint8 array -> list of 3 x H x W uint8 tensors (shared memory)."""
    return [torch.from_numpy(image).permute(2, 0, 1) for image in images]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', type=Path, required=True, help='TrashNet folder: train/, val/')
    parser.add_argument('--cache', type=Path, required=True, help='belt_augment cut-out cache')
    parser.add_argument('--init', type=Path, default=None,
                        help='train_material.py best.pt to start from (default: from scratch)')
    parser.add_argument('--out', type=Path, required=True)
    parser.add_argument('--epochs', type=int, default=28)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--lr', type=float, default=0.02, help='peak SGD learning rate')
    parser.add_argument('--weight-decay', type=float, default=5e-4)
    parser.add_argument('--warmup-epochs', type=float, default=1.0)
    parser.add_argument('--label-smoothing', type=float, default=0.1)
    parser.add_argument('--ema-decay', type=float, default=0.998)
    parser.add_argument('--min-crop-scale', type=float, default=0.35,
                        help='plain photos: smallest random crop (the shipped recipe)')
    parser.add_argument('--erase-probability', type=float, default=0.0,
                        help='plain photos: chance of random erasing (the shipped recipe)')
    parser.add_argument('--belt-fraction', type=float, default=0.5,
                        help='share of belt crops in each epoch')
    parser.add_argument('--pool-composites', type=int, default=1200,
                        help='composites per training pool (two pools: sample-style belt, '
                        'mixed backgrounds)')
    parser.add_argument('--pool-side', type=int, default=144)
    parser.add_argument('--monitor-composites', type=int, default=60)
    parser.add_argument('--widths', type=str, default='32,64,128,192',
                        help='only used without --init')
    parser.add_argument('--input-size', type=int, default=128, help='only used without --init')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--max-batches', type=int, default=0,
                        help='stop each epoch after this many batches (0 = all; for timing)')
    args = parser.parse_args(argv)
    if args.epochs < 1:
        raise SystemExit(f'--epochs must be >= 1, got {args.epochs}')
    if not 0.0 <= args.belt_fraction < 1.0:
        raise SystemExit(f'--belt-fraction must be in [0, 1), got {args.belt_fraction}')

    torch.set_num_threads(1)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    order_rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()

    if args.init is not None:
        checkpoint = torch.load(args.init, map_location='cpu')
        class_names = list(checkpoint['class_names'])
        widths = tuple(checkpoint['widths'])
        input_size = int(checkpoint['input_size'])
    else:
        checkpoint, class_names = None, None
        widths = tuple(int(w) for w in args.widths.split(','))
        input_size = args.input_size

    train_paths, train_labels, class_names = list_images(args.data / 'train', class_names)
    val_paths, val_labels, _ = list_images(args.data / 'val', class_names)
    num_classes = len(class_names)
    train_images = [torch.from_numpy(shrink_short_side(load_rgb(p), round(input_size * 1.25)))
                    .permute(2, 0, 1).contiguous() for p in train_paths]
    val_inputs = torch.from_numpy(np.stack(
        [runtime.preprocess(load_rgb(p), input_size) for p in val_paths]))

    train_cutouts, _ = cutout_cache(args.data, args.cache, 'train')
    pools = [cached_crop_pool(args.cache, train_cutouts, args.pool_composites, args.seed + k,
                              args.pool_side, **style)
             for k, style in enumerate((SAMPLE_STYLE, {}))]
    belt_images = as_chw(np.concatenate([p[0] for p in pools]))
    belt_labels = np.array([class_names.index(m) for p in pools for m in p[1]], np.int64)
    val_cutouts, _ = cutout_cache(args.data, args.cache, 'val')
    monitor_crops, monitor_materials = held_out_belt_crops(
        val_cutouts, args.monitor_composites, 999, SAMPLE_STYLE)
    monitor_inputs = torch.from_numpy(np.stack(
        [runtime.preprocess(c, input_size) for c in monitor_crops]))
    monitor_labels = np.array([class_names.index(m) for m in monitor_materials], np.int64)
    print(f'{len(train_images)} train photos, {len(belt_images)} belt crops of '
          f'{len(train_cutouts)} train cut-outs; monitors: {len(val_inputs)} val photos, '
          f'{len(monitor_inputs)} belt crops of val cut-outs; ready in '
          f'{time.time() - started:.0f} s', flush=True)

    n_plain = len(train_images)
    n_belt = round(n_plain * args.belt_fraction / (1 - args.belt_fraction))
    # Inverse square-root frequency over one epoch's expected mix (helps the rare 'trash').
    counts = (np.bincount(train_labels, minlength=num_classes)
              + np.bincount(belt_labels, minlength=num_classes) * n_belt / len(belt_labels))
    class_weights = torch.tensor((counts.mean() / counts) ** 0.5, dtype=torch.float32)

    model = MaterialNet(num_classes, widths)
    if checkpoint is not None:
        model.load_state_dict(checkpoint['state_dict'])
    ema = torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(args.ema_decay),
        use_buffers=True)
    optimizer = sgd_optimizer(model, args.lr, args.weight_decay)
    steps_per_epoch = (n_plain + n_belt) // args.batch_size
    if args.max_batches:
        steps_per_epoch = min(steps_per_epoch, args.max_batches)
    total_steps = steps_per_epoch * args.epochs
    lr_at = warmup_cosine(args.lr, int(args.warmup_epochs * steps_per_epoch), total_steps)

    augment_plain = make_augment(input_size, args.min_crop_scale, args.erase_probability)
    augment_belt = belt_crop_augment(input_size)
    history = []
    initial = {'val_top1': evaluate(model, val_inputs, val_labels, num_classes)[0],
               'belt_monitor_top1': evaluate(model, monitor_inputs, monitor_labels,
                                             num_classes)[0]}
    print(json.dumps({'epoch': 0, **initial}), flush=True)
    belt_order = order_rng.permutation(len(belt_images))
    belt_cursor = 0
    step = 0
    for epoch in range(1, args.epochs + 1):
        epoch_start = time.time()
        model.train()
        # This epoch's belt crops: the next n_belt of a cycling permutation of the pool.
        if belt_cursor + n_belt > len(belt_order):
            belt_order = np.concatenate([belt_order[belt_cursor:],
                                         order_rng.permutation(len(belt_images))])
            belt_cursor = 0
        chosen = belt_order[belt_cursor:belt_cursor + n_belt]
        belt_cursor += n_belt
        # Items: (is_belt, index); mixed in one shuffled order.
        items = [(False, i) for i in range(n_plain)] + [(True, int(i)) for i in chosen]
        order = torch.randperm(len(items), generator=generator).tolist()
        loss_sum = 0.0
        for batch_index in range(steps_per_epoch):
            batch = [items[k] for k in
                     order[batch_index * args.batch_size:(batch_index + 1) * args.batch_size]]
            inputs = random_rot90(torch.stack(
                [augment_belt(belt_images[i]) if is_belt else augment_plain(train_images[i])
                 for is_belt, i in batch]), generator)
            targets = torch.tensor([belt_labels[i] if is_belt else train_labels[i]
                                    for is_belt, i in batch])
            loss_sum += train_step(model, optimizer, ema, inputs, targets, lr_at(step),
                                   class_weights, args.label_smoothing)
            step += 1
        train_seconds = time.time() - epoch_start
        val_top1, val_recall, _ = evaluate(ema.module, val_inputs, val_labels, num_classes)
        belt_top1, belt_recall, _ = evaluate(ema.module, monitor_inputs, monitor_labels,
                                             num_classes)
        record = {'epoch': epoch, 'loss': loss_sum / steps_per_epoch, 'lr': lr_at(step - 1),
                  'val_top1_ema': val_top1, 'belt_monitor_top1_ema': belt_top1,
                  'train_seconds': round(train_seconds, 1),
                  'elapsed_seconds': round(time.time() - started, 1)}
        history.append(record)
        print(json.dumps(record), flush=True)
        torch.save({'state_dict': ema.module.state_dict(), 'class_names': class_names,
                    'widths': widths, 'input_size': input_size, 'epoch': epoch},
                   args.out / 'last.pt')
        (args.out / 'history.json').write_text(json.dumps(history, indent=1))

    train_minutes = (time.time() - started) / 60
    final_model = MaterialNet(num_classes, widths)
    final_model.load_state_dict(torch.load(args.out / 'last.pt')['state_dict'])
    onnx_path = args.out / 'material_cnn.onnx'
    export_onnx(final_model, onnx_path, class_names, input_size, {
        'architecture': f'MaterialNet widths={list(widths)} (small ResNet-style CNN)',
        'input': 'float32 NCHW RGB in [0,1], whole crop resized to input_size (INTER_AREA)',
        'output': 'logits',
        'training_data': 'TrashNet (Thung and Yang 2016), MIT licence; plus belt composites '
                         'of TrashNet train cut-outs (training/material/belt_augment.py)',
        'fine_tuned_from': str(args.init) if args.init else 'none (from scratch)',
        'val_top1': f'{val_top1:.4f}', 'epoch': str(args.epochs), 'seed': str(args.seed)})
    difference = max(check_onnx_matches_torch(final_model, onnx_path, val_inputs[:16]),
                     check_onnx_matches_torch(final_model, onnx_path, monitor_inputs[:16]))
    summary = {'class_names': class_names,
               'parameters': sum(p.numel() for p in final_model.parameters()),
               'onnx_bytes': onnx_path.stat().st_size, 'onnx_max_abs_logit_diff': difference,
               'train_minutes': round(train_minutes, 1), 'initial': initial,
               'final': history[-1] if history else None,
               'final_val_recall': dict(zip(class_names, val_recall)) if history else None,
               'final_belt_monitor_recall': (dict(zip(class_names, belt_recall))
                                             if history else None),
               'belt_crops_in_pool': len(belt_images), 'belt_crops_per_epoch': n_belt,
               'args': {k: str(v) for k, v in vars(args).items()}}
    (args.out / 'summary.json').write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: summary[k] for k in
                      ('onnx_bytes', 'onnx_max_abs_logit_diff', 'train_minutes')}))
    print(f'final EMA: TrashNet val top-1 {summary["final"]["val_top1_ema"]:.4f}, belt monitor '
          f'top-1 {summary["final"]["belt_monitor_top1_ema"]:.4f}; wrote {onnx_path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
