#!/usr/bin/env python3
"""Test-time batch-norm adaptation (AdaBN) of the crack experts, on the LODO out-of-fold maps.

Every BatchNorm2d of an expert normalises with alpha x (this image's channel mean and variance
over H and W) + (1 - alpha) x (its running statistics), so the features of an unseen surface
are re-centred on that surface (Li et al. 2016, AdaBN; Schneider et al. 2020 mix the two as
here). For each fold, each expert's map of every image of the left-out set is predicted with
the fold's own weights (RUN/FOLD/EXPERT.pt) and written as OUT/FOLD/pred_EXPERT.npz, the layout
per_image_threshold.py reads. Measured and not adopted (models/crack/MODEL_CARD.md):

    python training/crack/adabn_lodo.py /work/shared/data --run training/crack/runs/v3 \
        --out /tmp/mat8/adabn_a1 --alpha 1.0
    python training/crack/per_image_threshold.py /work/shared/data --run /tmp/mat8/adabn_a1

`--alpha 0` reproduces the stored OOF maps (the script prints the largest difference from them).
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from data import load_all, SETS  # noqa: E402, I100
from flip_tta_lodo import write_fold_maps  # noqa: E402
from train_experts import predict  # noqa: E402


class ImageStatsBatchNorm(torch.nn.Module):
    """Inference batch norm whose statistics mix the input's own with the stored ones."""

    def __init__(self, bn, alpha):
        super().__init__()
        self.bn, self.alpha = bn, alpha

    def forward(self, x):
        mean = x.mean((0, 2, 3))
        var = x.var((0, 2, 3), unbiased=False)
        return F.batch_norm(x, self.alpha * mean + (1 - self.alpha) * self.bn.running_mean,
                            self.alpha * var + (1 - self.alpha) * self.bn.running_var,
                            self.bn.weight, self.bn.bias, False, 0.0, self.bn.eps)


def adapt_batch_norm(module, alpha):
    """Replace every BatchNorm2d below `module` by ImageStatsBatchNorm (in place)."""
    for name, child in module.named_children():
        if isinstance(child, torch.nn.BatchNorm2d):
            setattr(module, name, ImageStatsBatchNorm(child, alpha))
        else:
            adapt_batch_norm(child, alpha)
    return module


def adapt_scope(model, scope, alpha):
    """Adapt the BN layers of `scope`: all, encoder (stem, blocks) or frozen (stem, blocks 0-2)."""
    if scope == 'all':
        return adapt_batch_norm(model, alpha)
    encoder = model.encoder
    parts = [encoder.stem] + list(encoder.blocks if scope == 'encoder' else encoder.blocks[:3])
    for part in parts:
        adapt_batch_norm(part, alpha)
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('data')
    parser.add_argument('--run', default='training/crack/runs/v3')
    parser.add_argument('--out', required=True)
    parser.add_argument('--alpha', type=float, required=True,
                        help="weight of the image's own statistics (0 = plain inference)")
    parser.add_argument('--scope', choices=('all', 'encoder', 'frozen'), default='all',
                        help='which BN layers adapt: all, the encoder (stem and blocks) or its '
                        'frozen part (stem and blocks 0-2, ImageNet statistics)')
    parser.add_argument('--fold', action='append', choices=SETS,
                        help='left-out set(s) to predict (default: all three)')
    parser.add_argument('--holdout-dir', default='src/edge_perception/data/samples/crack')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = load_all(args.data, 0, args.holdout_dir)
    for fold in args.fold or SETS:
        # The checked map is the adapted one: with --alpha 0 it must be the stored OOF map.
        write_fold_maps(args.run, args.out, fold, data[fold],
                        lambda model, image, multiple: (predict(model, image, multiple),) * 2,
                        lambda model: adapt_scope(model, args.scope, args.alpha))
    return 0


if __name__ == '__main__':
    sys.exit(main())
