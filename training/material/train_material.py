#!/usr/bin/env python3
"""Train the material classifier from scratch on TrashNet and export it to ONNX.

    python training/material/train_material.py --data /work/shared/data/trashnet --out OUT

DATA holds train/<class>/*.jpg and val/<class>/*.jpg. No pre-trained weights are used (none can
be downloaded where this project is built), so the recipe leans on augmentation: random resized
crops, flips, 90-degree turns, colour jitter and random erasing, with label smoothing and an
exponential moving average (EMA) of the weights. Val is used only to pick the best epoch.

Sized for 2 shared CPU cores: one process, one torch thread, about 40 minutes at the defaults.
Writes OUT/material_cnn.onnx (+ .classes.txt), OUT/best.pt, OUT/history.json, OUT/summary.json.
"""
import argparse
import copy
import json
import os
from pathlib import Path
import random
import sys
import time

from edge_perception.core import material as runtime  # imports no torch
import numpy as np
from PIL import Image

# One thread is the budget; set before torch starts its pools.
os.environ.setdefault('OMP_NUM_THREADS', '1')

import torch  # noqa: E402
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torchvision.transforms import v2  # noqa: E402

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png')


def list_images(split_dir: Path, class_names=None):
    """Return (paths, labels, class_names) for split_dir/<class>/*.jpg, classes sorted by name."""
    if class_names is None:
        class_names = sorted(d.name for d in split_dir.iterdir() if d.is_dir())
    paths, labels = [], []
    for index, name in enumerate(class_names):
        files = sorted(p for p in (split_dir / name).iterdir()
                       if p.suffix.lower() in IMAGE_SUFFIXES)
        paths += files
        labels += [index] * len(files)
    if not paths:
        raise SystemExit(f'no images under {split_dir}')
    return paths, np.array(labels, dtype=np.int64), class_names


def load_rgb(path: Path) -> np.ndarray:
    """Decode an image file to RGB uint8."""
    with Image.open(path) as image:
        return np.asarray(image.convert('RGB'))


def shrink_short_side(rgb: np.ndarray, short_side: int) -> np.ndarray:
    """Downscale so the short side is `short_side` (never upscale); keeps the aspect ratio."""
    import cv2
    height, width = rgb.shape[:2]
    scale = short_side / min(height, width)
    if scale >= 1:
        return rgb
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def conv_bn_relu(in_channels, out_channels, stride=1):
    """3x3 convolution, batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
        nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with an identity shortcut (ResNet basic block)."""

    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_relu(channels, channels),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels))
        nn.init.zeros_(self.body[-1].weight)  # start as identity: steadier from-scratch training

    def forward(self, x):
        return F.relu(x + self.body(x))


class MaterialNet(nn.Module):
    """Small ResNet-style CNN: stride-2 stem, then per stage a stride-2 conv and a residual block.

    Takes float RGB in [0, 1] (N, 3, S, S) and normalises inside, so the ONNX graph carries it.
    """

    def __init__(self, num_classes, widths=(32, 64, 128, 192), dropout=0.2):
        super().__init__()
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer('std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        layers = [conv_bn_relu(3, widths[0], stride=2)]
        channels = widths[0]
        for width in widths:
            layers += [conv_bn_relu(channels, width, stride=2), ResidualBlock(width)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, num_classes))

    def forward(self, x):
        x = self.features((x - self.mean) / self.std)
        return self.head(F.adaptive_avg_pool2d(x, 1))


def make_augment(input_size, min_crop_scale, erase_probability):
    """Per-image training augmentation on uint8 CHW tensors; returns float in [0, 1]."""
    return v2.Compose([
        v2.RandomResizedCrop(input_size, scale=(min_crop_scale, 1.0), ratio=(0.6, 1.67),
                             antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomVerticalFlip(),
        # Hue kept small: colour is a real cue (brown cardboard, green glass).
        v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.03),
        v2.ToDtype(torch.float32, scale=True),
        v2.RandomErasing(p=erase_probability, scale=(0.02, 0.2), value=0.5),
    ])


def random_rot90(batch, generator):
    """Turn each image by a random multiple of 90 degrees (items lie in any orientation)."""
    turns = torch.randint(0, 4, (batch.shape[0],), generator=generator)
    return torch.stack([torch.rot90(img, int(k), dims=(1, 2)) for img, k in zip(batch, turns)])


@torch.no_grad()
def sgd_optimizer(model, lr, weight_decay):
    """Nesterov SGD, with weight decay on weights only (not on biases and norm scales)."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return torch.optim.SGD(
        [{'params': decay, 'weight_decay': weight_decay},
         {'params': no_decay, 'weight_decay': 0.0}], lr=lr, momentum=0.9, nesterov=True)


def warmup_cosine(base_lr, warmup_steps, total_steps):
    """Return lr_at(step): linear warm-up to base_lr, then cosine decay to 0 at total_steps."""
    def lr_at(step):
        if step < warmup_steps:
            return base_lr * (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return base_lr * 0.5 * (1 + np.cos(np.pi * progress))
    return lr_at


def apply_step(model, optimizer, ema, loss, lr):
    """Step the optimiser on `loss` at learning rate lr, update the EMA; return the loss."""
    for group in optimizer.param_groups:
        group['lr'] = lr
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    ema.update_parameters(model)
    return loss.item()


def train_step(model, optimizer, ema, inputs, targets, lr, class_weights, label_smoothing):
    """Run one cross-entropy optimisation step at learning rate lr; return the loss."""
    loss = F.cross_entropy(model(inputs), targets, weight=class_weights,
                           label_smoothing=label_smoothing)
    return apply_step(model, optimizer, ema, loss, lr)


def evaluate(model, inputs, labels, num_classes, batch_size=64):
    """Return (top-1, per-class recall list, confusion matrix rows=true cols=predicted)."""
    model.eval()
    predictions = []
    for start in range(0, len(inputs), batch_size):
        predictions.append(model(inputs[start:start + batch_size]).argmax(1))
    predictions = torch.cat(predictions).numpy()
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    recall = (confusion.diagonal() / np.maximum(confusion.sum(1), 1)).tolist()
    return float((predictions == labels).mean()), recall, confusion


def export_onnx(model, path: Path, class_names, input_size, metadata_extra):
    """Export to ONNX with a dynamic batch axis, class names and input size as metadata."""
    import onnx
    model = copy.deepcopy(model).eval()
    example = torch.rand(2, 3, input_size, input_size)
    torch.onnx.export(
        model, (example,), str(path), dynamo=False, opset_version=17,
        input_names=['image'], output_names=['logits'],
        dynamic_axes={'image': {0: 'batch'}, 'logits': {0: 'batch'}})
    proto = onnx.load(str(path))
    metadata = {runtime.METADATA_CLASS_NAMES: json.dumps(list(class_names)),
                runtime.METADATA_INPUT_SIZE: str(input_size), **metadata_extra}
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    runtime.classes_path_for(path).write_text('\n'.join(class_names) + '\n', encoding='utf-8')


def check_onnx_matches_torch(model, path: Path, inputs: torch.Tensor, tolerance=1e-4):
    """Return the largest |logit difference| of onnxruntime vs torch; exit above tolerance."""
    import onnxruntime as ort
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    model.eval()
    with torch.no_grad():
        expected = model(inputs).numpy()
    got = session.run(None, {'image': inputs.numpy()})[0]
    difference = float(np.abs(expected - got).max())
    if difference > tolerance:
        raise SystemExit(f'ONNX output differs from torch by {difference:.2e} > {tolerance}')
    return difference


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', type=Path, required=True, help='folder with train/ and val/')
    parser.add_argument('--out', type=Path, required=True, help='output folder')
    parser.add_argument('--epochs', type=int, default=50)
    parser.add_argument('--input-size', type=int, default=128)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--lr', type=float, default=0.03, help='peak SGD learning rate')
    parser.add_argument('--weight-decay', type=float, default=5e-4)
    parser.add_argument('--warmup-epochs', type=float, default=3.0)
    parser.add_argument('--label-smoothing', type=float, default=0.1)
    parser.add_argument('--ema-decay', type=float, default=0.999)
    parser.add_argument('--min-crop-scale', type=float, default=0.35,
                        help='smallest random crop, as a fraction of the image area')
    parser.add_argument('--erase-probability', type=float, default=0.0,
                        help='chance of random erasing per training image')
    parser.add_argument('--widths', type=str, default='32,64,128,192')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--max-batches', type=int, default=0,
                        help='stop each epoch after this many batches (0 = all; for smoke tests)')
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()

    train_paths, train_labels, class_names = list_images(args.data / 'train')
    val_paths, val_labels, _ = list_images(args.data / 'val', class_names)
    num_classes = len(class_names)
    # Decode once; keep train images a little above the input size so crops have detail to lose.
    cache_short_side = round(args.input_size * 1.25)
    train_images = [torch.from_numpy(shrink_short_side(load_rgb(p), cache_short_side))
                    .permute(2, 0, 1).contiguous() for p in train_paths]
    # Val goes through exactly the runtime's preprocessing, so its score is what the robot gets.
    val_inputs = torch.from_numpy(np.stack(
        [runtime.preprocess(load_rgb(p), args.input_size) for p in val_paths]))
    print(f'{len(train_images)} train / {len(val_inputs)} val images, classes {class_names}, '
          f'decoded in {time.time() - started:.0f} s', flush=True)

    counts = np.bincount(train_labels, minlength=num_classes)
    # Inverse square-root frequency: helps the rare 'trash' class without swamping the rest.
    class_weights = torch.tensor((counts.mean() / counts) ** 0.5, dtype=torch.float32)

    widths = tuple(int(w) for w in args.widths.split(','))
    model = MaterialNet(num_classes, widths)
    ema = torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(args.ema_decay),
        use_buffers=True)
    parameters = sum(p.numel() for p in model.parameters())
    optimizer = sgd_optimizer(model, args.lr, args.weight_decay)
    steps_per_epoch = len(train_images) // args.batch_size
    if args.max_batches:
        steps_per_epoch = min(steps_per_epoch, args.max_batches)
    total_steps = steps_per_epoch * args.epochs
    lr_at = warmup_cosine(args.lr, int(args.warmup_epochs * steps_per_epoch), total_steps)

    augment = make_augment(args.input_size, args.min_crop_scale, args.erase_probability)
    history, best = [], {'top1': -1.0}
    step = 0
    for epoch in range(1, args.epochs + 1):
        epoch_start = time.time()
        model.train()
        order = torch.randperm(len(train_images), generator=generator).tolist()
        loss_sum = 0.0
        for batch_index in range(steps_per_epoch):
            indices = order[batch_index * args.batch_size:(batch_index + 1) * args.batch_size]
            inputs = random_rot90(torch.stack([augment(train_images[i]) for i in indices]),
                                  generator)
            targets = torch.from_numpy(train_labels[indices])
            loss_sum += train_step(model, optimizer, ema, inputs, targets, lr_at(step),
                                   class_weights, args.label_smoothing)
            step += 1
        train_seconds = time.time() - epoch_start
        top1, recall, confusion = evaluate(ema.module, val_inputs, val_labels, num_classes)
        record = {'epoch': epoch, 'loss': loss_sum / steps_per_epoch, 'val_top1_ema': top1,
                  'lr': lr_at(step - 1),
                  'train_seconds': round(train_seconds, 1),
                  'elapsed_seconds': round(time.time() - started, 1)}
        history.append(record)
        print(json.dumps(record), flush=True)
        if top1 > best['top1']:
            best = {'top1': top1, 'epoch': epoch, 'recall': dict(zip(class_names, recall)),
                    'confusion': confusion.tolist()}
            torch.save({'state_dict': ema.module.state_dict(), 'class_names': class_names,
                        'widths': widths, 'input_size': args.input_size, 'epoch': epoch},
                       args.out / 'best.pt')
        (args.out / 'history.json').write_text(json.dumps(history, indent=1))

    train_minutes = (time.time() - started) / 60
    final_model = MaterialNet(num_classes, widths)
    final_model.load_state_dict(torch.load(args.out / 'best.pt')['state_dict'])
    onnx_path = args.out / 'material_cnn.onnx'
    export_onnx(final_model, onnx_path, class_names, args.input_size, {
        'architecture': f'MaterialNet widths={list(widths)} (small ResNet-style CNN)',
        'input': 'float32 NCHW RGB in [0,1], whole crop resized to input_size (INTER_AREA)',
        'output': 'logits',
        'training_data': 'TrashNet (Thung and Yang 2016), MIT licence',
        'val_top1': f'{best["top1"]:.4f}', 'best_epoch': str(best['epoch']),
        'seed': str(args.seed)})
    difference = check_onnx_matches_torch(final_model, onnx_path, val_inputs[:16])
    summary = {'class_names': class_names, 'parameters': parameters,
               'onnx_bytes': onnx_path.stat().st_size, 'onnx_max_abs_logit_diff': difference,
               'train_minutes': round(train_minutes, 1), 'best': best,
               'final_epoch_val_top1_ema': history[-1]['val_top1_ema'], 'args': {
                   k: str(v) for k, v in vars(args).items()}}
    (args.out / 'summary.json').write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: summary[k] for k in
                      ('parameters', 'onnx_bytes', 'onnx_max_abs_logit_diff', 'train_minutes')}))
    print(f'best val top-1 {best["top1"]:.4f} at epoch {best["epoch"]}; wrote {onnx_path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
