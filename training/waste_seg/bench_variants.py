#!/usr/bin/env python3
"""Design measurements for the model card: decoder and input size, upsampling cost (CPU, ONNX).

    OMP_NUM_THREADS=1 python training/waste_seg/bench_variants.py --json OUT.json

Exports untrained (ImageNet encoder, random head) variants to ONNX and times onnxruntime on one
input (median of `--repeats` after warm-up) at 1 and 2 threads:
  * lraspp_block13 (shipped design: encoder to block 13, LR-ASPP, stride-8 logits) at 320x240
    and 384x288; lraspp_block10 (encoder to block 10, stride 16) at 320x240;
  * unet_s4_block10: the block-10 encoder with a U-Net-like decoder (stride 16 -> 8 -> 4, 3x3
    convs, 64/48/32 channels), logits at stride 4: a heavier alternative.
And the runtime's post-processing to 640x480 (core.waste_segmentation.upsample_argmax: one
cv2.resize per probability plane and a running max) against one 7-channel resize followed by
numpy argmax / max over the channel axis.
"""
import argparse
import json
import os
from pathlib import Path
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault('OMP_NUM_THREADS', '1')

import cv2  # noqa: E402, I100
import torch  # noqa: E402
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_waste_seg import conv_bn_relu, export_onnx, LiteSeg  # noqa: E402, I100


class UNetS4(nn.Module):
    """Heavier alternative: the same encoder, U-Net-like decoder to stride 4."""

    def __init__(self):
        super().__init__()
        self.base = LiteSeg()
        self.dec8 = nn.Sequential(conv_bn_relu(112 + 40, 64, 3), conv_bn_relu(64, 48, 3))
        self.dec4 = conv_bn_relu(48 + 24, 32, 3)
        self.head = nn.Conv2d(32, 7, 1)

    def forward(self, x):
        enc = self.base.encoder
        enc.taps = {2: 's4', 4: 's8', 10: 's16'}
        f = enc(x * (255.0 / 128.0) - (127.0 / 128.0))
        d = self.dec8(torch.cat([F.interpolate(f['s16'], size=f['s8'].shape[-2:],
                                               mode='bilinear'), f['s8']], 1))
        d = self.dec4(torch.cat([F.interpolate(d, size=f['s4'].shape[-2:], mode='bilinear'),
                                 f['s4']], 1))
        return self.head(d)


def time_session(path, h, w, threads, repeats):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])
    x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
    for _ in range(3):
        session.run(None, {'image': x})
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        session.run(None, {'image': x})
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))


def postprocess_times(repeats, h=30, w=40):
    """Median ms of two ways to get labels + confidence at 640 x 480 from 7 x h x w logits."""
    from edge_perception.core.waste_segmentation import upsample_argmax
    logits = np.random.default_rng(0).normal(0, 3, (7, h, w)).astype(np.float32)

    def numpy_channel_axis():
        planes = np.ascontiguousarray(logits.transpose(1, 2, 0))
        planes = np.exp(planes - planes.max(axis=2, keepdims=True))
        planes /= planes.sum(axis=2, keepdims=True)
        probs = cv2.resize(planes, (640, 480), interpolation=cv2.INTER_LINEAR)
        return probs.argmax(axis=2).astype(np.uint8), probs.max(axis=2)

    def runtime_per_plane():
        return upsample_argmax(logits, 480, 640)

    out = {}
    for name, fn in (('one_7ch_resize_then_numpy_argmax_max', numpy_channel_axis),
                     ('runtime_upsample_argmax_per_plane', runtime_per_plane)):
        fn()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1000)
        out[name] = float(np.median(times))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--json', type=Path, required=True)
    parser.add_argument('--repeats', type=int, default=20)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    report = {'load_average_at_start': os.getloadavg(), 'variants': {},
              'postprocess_ms_640x480': postprocess_times(args.repeats)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, build, sizes in (
                ('lraspp_block13', lambda: LiteSeg(last_block=13), ((240, 320), (288, 384))),
                ('lraspp_block10', LiteSeg, ((240, 320),)),
                ('unet_s4_block10', UNetS4, ((240, 320),))):
            model = build().eval()
            params = sum(p.numel() for p in model.parameters())
            for h, w in sizes:
                path = Path(tmp) / f'{name}_{w}x{h}.onnx'
                export_onnx(model, path, h, w, {})
                key = f'{name}_{w}x{h}'
                report['variants'][key] = {
                    'parameters': params, 'onnx_bytes': path.stat().st_size,
                    'ms_1_thread': time_session(path, h, w, 1, args.repeats),
                    'ms_2_threads': time_session(path, h, w, 2, args.repeats)}
                print(key, report['variants'][key], flush=True)
    report['load_average_at_end'] = os.getloadavg()
    print(json.dumps(report['postprocess_ms_640x480']))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
