#!/usr/bin/env python3
"""Variants of trained waste-seg checkpoints without training: weight averages and flip TTA.

Both were measured against the shipped v2 and not shipped (models/waste_seg/MODEL_CARD.md,
"Weight averaging and flip TTA"):

    # uniform average ("model soup") of EMA checkpoints that continue from one another
    python training/waste_seg/checkpoint_variants.py average --out /tmp/mat7/s2.pt \
        /tmp/wasteseg/run_fl3/last.pt /tmp/wasteseg/run_fl4/last.pt /tmp/wasteseg/run_fl4b/last.pt
    python training/waste_seg/train_waste_seg.py --evaluate-checkpoint /tmp/mat7/s2.pt \
        --out /tmp/mat7/s2 --eval /tmp/wasteseg/eval_infamily --no-int8 --no-latency
    # horizontal-flip test-time augmentation inside the graph (same ONNX contract)
    python training/waste_seg/checkpoint_variants.py flip-tta --out /tmp/mat7/seg_tta.onnx \
        /tmp/wasteseg/run_fl3/last.pt
    edge-perception eval-waste-seg --model /tmp/mat7/seg_tta.onnx --material-model none ...
"""
import argparse
from pathlib import Path
import sys

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_waste_seg  # noqa: E402, I100


def average(paths):
    """Checkpoint whose float tensors are the mean of `paths`' (others from the first)."""
    checkpoints = [torch.load(p, map_location='cpu') for p in paths]
    first = checkpoints[0]
    state = {key: (sum(c['state_dict'][key] for c in checkpoints) / len(checkpoints)
                   if value.is_floating_point() else value)
             for key, value in first['state_dict'].items()}
    return {**first, 'state_dict': state}


class FlipTTA(torch.nn.Module):
    """Mean of the logits of the image and of its mirror image (mirrored back)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        mirrored = torch.flip(self.model(torch.flip(x, dims=[3])), dims=[3])
        return 0.5 * (self.model(x) + mirrored)


def export_flip_tta(checkpoint_path, out):
    """Export the checkpoint wrapped in FlipTTA; return max |ONNX - torch| on random inputs."""
    ckpt = torch.load(checkpoint_path, map_location='cpu')
    args = argparse.Namespace(init_checkpoint=checkpoint_path, init_material_onnx=None)
    wrapped = FlipTTA(train_waste_seg.model_from_checkpoint(ckpt, args))
    metadata = train_waste_seg.metadata_for(args, ckpt['step'], 'fp32-flip-tta')
    train_waste_seg.export_onnx(wrapped, out, args.height, args.width_px, metadata)
    check = torch.rand(2, 3, args.height, args.width_px).numpy()
    return train_waste_seg.onnx_vs_torch(wrapped, out, check)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('mode', choices=('average', 'flip-tta'))
    parser.add_argument('checkpoints', type=Path, nargs='+', help="runs' last.pt files")
    parser.add_argument('--out', type=Path, required=True, help='.pt (average) or .onnx')
    args = parser.parse_args(argv)
    if args.mode == 'average':
        torch.save(average(args.checkpoints), args.out)
        print(f'{args.out}: mean of {len(args.checkpoints)} checkpoints')
    else:
        if len(args.checkpoints) != 1:
            raise SystemExit('flip-tta takes one checkpoint')
        difference = export_flip_tta(args.checkpoints[0], args.out)
        print(f'{args.out}: max |ONNX - torch| {difference:.2e}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
