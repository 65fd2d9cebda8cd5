#!/usr/bin/env python3
"""Horizontal-flip test-time augmentation of the crack experts, on the LODO out-of-fold maps.

For each fold, each expert's map of every image of the left-out set becomes the mean of its map
and the mirrored-back map of the mirror image (the fold's own weights, RUN/FOLD/EXPERT.pt), and
is written as OUT/FOLD/pred_EXPERT.npz, the layout per_image_threshold.py reads. Measured and
not adopted (models/crack/MODEL_CARD.md):

    python training/crack/flip_tta_lodo.py /work/shared/data --run training/crack/runs/v3 \
        --out /tmp/mat7/tta_run --fold crackmap        # and deepcrack, uav
    python training/crack/per_image_threshold.py /work/shared/data --run /tmp/mat7/tta_run
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from data import load_all, SETS  # noqa: E402, I100
from nets import build_expert, pad_multiple  # noqa: E402
from train_experts import predict  # noqa: E402

EXPERT_NAMES = ('lite0_unet', 'lite0_s8', 'lite0_half')


def write_fold_maps(run, out, fold, data, maps_of, prepare=lambda model: model):
    """Write OUT/FOLD/pred_EXPERT.npz for every expert of a LODO fold, from its own weights.

    RUN/FOLD/EXPERT.pt is loaded, passed through `prepare`, and for every image of the fold's
    left-out set `maps_of(model, image, pad multiple)` returns (checked map, written map), both
    float crack probabilities. The checked map is compared with the stored OOF map
    (RUN/FOLD/pred_EXPERT.npz) and the largest difference, in 255ths, is printed.
    """
    os.makedirs(os.path.join(out, fold), exist_ok=True)
    for name in EXPERT_NAMES:
        model = build_expert(name, pretrained=False)
        model.load_state_dict(torch.load(os.path.join(run, fold, f'{name}.pt')))
        model = prepare(model.eval())
        stored = np.load(os.path.join(run, fold, f'pred_{name}.npz'))
        preds, started, largest_change = {}, time.time(), 0
        for image, stem in zip(data['images'], data['stems']):
            key = f'{fold}/{stem}'
            checked, written = maps_of(model, image, pad_multiple(name))
            largest_change = max(largest_change, int(np.abs(
                np.round(checked * 255).astype(int) - stored[key].astype(int)).max()))
            preds[key] = np.round(written * 255).astype(np.uint8)
        np.savez_compressed(os.path.join(out, fold, f'pred_{name}.npz'), **preds)
        print(f'{fold} {name}: {len(preds)} maps in {time.time() - started:.0f} s; '
              f'checked vs stored map: max difference {largest_change} of 255', flush=True)


def plain_and_flip_tta(model, image, multiple):
    """(plain map, which must be the stored one; mean of it and the mirrored-back mirror map)."""
    plain = predict(model, image, multiple)
    mirrored = predict(model, np.ascontiguousarray(image[:, ::-1]), multiple)[:, ::-1]
    return plain, (plain + mirrored) / 2


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('data')
    parser.add_argument('--run', default='training/crack/runs/v3')
    parser.add_argument('--out', required=True)
    parser.add_argument('--fold', required=True, choices=SETS)
    parser.add_argument('--holdout-dir', default='src/edge_perception/data/samples/crack')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = load_all(args.data, 0, args.holdout_dir)[args.fold]
    write_fold_maps(args.run, args.out, args.fold, data, plain_and_flip_tta)
    return 0


if __name__ == '__main__':
    sys.exit(main())
