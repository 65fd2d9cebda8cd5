"""Does a per-image threshold carry to an unseen surface? LODO check on the OOF predictions.

Usage (after train_experts.py; minutes on one thread):
    .venv/bin/python training/crack/per_image_threshold.py /work/shared/data \
        --run training/crack/runs/v3

Rule tried: threshold_n = clip(r * q(p_n), low, t) per image n, q one of max / 99th / 99.5th /
99.9th percentile of the image's probability map: an image the model is unsure about (low q)
gets a lower threshold, a sure one keeps t. For each LODO fold, (t, r, low, q) is chosen on the
OOF predictions of the two other sets' non-test images (mean over sets of per-set pooled F1, as
train_gate.py calibrates), and scored on every image of the left-out set; the global threshold
alone (same protocol) is the baseline. Maps: single experts and plain averages of OOF maps.
"""
import argparse
import itertools
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from data import load_all, SETS  # noqa: E402, I100
from train_gate import histograms, levels, THRESHOLDS  # noqa: E402, I100

MAPS = {'lite0_unet': ['lite0_unet'], 'lite0_half': ['lite0_half'],
        'uniform': ['lite0_unet', 'lite0_s8', 'lite0_half'],
        'unet+half': ['lite0_unet', 'lite0_half']}
QUANTILES = (None, 0.99, 0.995, 0.999)        # None = the maximum


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('data')
    parser.add_argument('--run', default='training/crack/runs/v3')
    parser.add_argument('--json', default='')
    parser.add_argument('--holdout-dir', default='src/edge_perception/data/samples/crack')
    args = parser.parse_args(argv)
    data = load_all(args.data, 0, args.holdout_dir)
    rows = [(s, i) for s in SETS for i in range(len(data[s]['stems']))]
    row_set = np.array([s for s, _ in rows])
    row_split = np.array([data[s]['split'][i] for s, i in rows])
    experts = sorted({e for names in MAPS.values() for e in names})
    oof = {s: {e: np.load(os.path.join(args.run, s, f'pred_{e}.npz')) for e in experts}
           for s in SETS}
    report = {}
    for name, members in MAPS.items():
        hists, stats = [], []
        for s, i in rows:
            key = f'{s}/{data[s]["stems"][i]}'
            p = np.mean([oof[s][e][key].astype(np.float32) / 255 for e in members], axis=0)
            hists.append(histograms(p, data[s]['masks'][i]))
            stats.append([p.max()] + [np.quantile(p, q) for q in QUANTILES[1:]])
        hists, stats = np.array(hists, np.int64), np.array(stats)
        at_or_above = np.cumsum(hists[:, :, ::-1], axis=2)[:, :, ::-1]
        positives = hists[:, 0].sum(axis=1)

        def f1(rows_used, lv):
            tp = at_or_above[rows_used, 0, lv].sum()
            fp = at_or_above[rows_used, 1, lv].sum()
            fn = positives[rows_used].sum() - tp
            return 2 * tp / max(2 * tp + fp + fn, 1)

        def rule_levels(rule, rows_used):
            t, r, low, qi = rule
            if r is None:
                return np.full(len(rows_used), levels(t))
            return levels(np.clip(r * stats[rows_used, qi], low, t))

        rules = [(t, None, None, None) for t in THRESHOLDS] + list(itertools.product(
            THRESHOLDS, np.round(np.arange(0.2, 1.01, 0.1), 2), (0.02, 0.05, 0.1),
            range(len(QUANTILES))))
        report[name] = {}
        for fold in SETS:
            calibration = [np.flatnonzero((row_set == s) & (row_split != 'test'))
                           for s in SETS if s != fold]
            held = np.flatnonzero(row_set == fold)
            best = {}
            for rule in rules:
                kind = 'global' if rule[1] is None else 'per_image'
                score = np.mean([f1(c, rule_levels(rule, c)) for c in calibration])
                if kind not in best or score > best[kind][0]:
                    best[kind] = (score, rule)
            report[name][fold] = {
                kind: {'rule': [None if v is None else float(v) for v in rule],
                       'calibration_f1': float(score),
                       'left_out_f1': float(f1(held, rule_levels(rule, held)))}
                for kind, (score, rule) in best.items()}
        means = {kind: float(np.mean([report[name][f][kind]['left_out_f1'] for f in SETS]))
                 for kind in ('global', 'per_image')}
        report[name]['mean_left_out_f1'] = means
        print(name, ' '.join(f"{f} {report[name][f]['global']['left_out_f1']:.3f}->"
                             f"{report[name][f]['per_image']['left_out_f1']:.3f}" for f in SETS),
              f"mean {means['global']:.3f}->{means['per_image']:.3f}", flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
