"""Score each expert and each fusion strategy on out-of-fold (OOF) predictions.

Usage (after train_experts.py and train_gate.py):
    .venv/bin/python training/crack/evaluate_oof.py /work/shared/data/deepcrack_train \
        --run training/crack/runs/v1 --json training/crack/oof_results.json

Every image is scored with expert predictions from fold models that never saw it, fused with
weights from the gate of the same fold (trained without that fold's images). Reported: pooled
crack-class IoU/F1/precision/recall over all pixels (counts summed over images), the same with a
2 px tolerance, and means of per-image IoU/F1. Also two references that are not deployable: the
uniform average of all experts (soft fusion without a gate) and the per-image oracle (the expert
with the best IoU on each image, chosen with the ground truth).
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from data import load_pairs  # noqa: E402, I100
from edge_perception.core.crack import metrics_from_counts, segmentation_metrics  # noqa: E402
from edge_perception.core.moe import fuse, gate_weights, select_experts  # noqa: E402


def score(prob_maps, masks, threshold=0.5, tolerance_px=2):
    """Pooled and per-image-mean metrics of probability maps against masks."""
    sums = {0: np.zeros(4), tolerance_px: np.zeros(4)}
    per_image = {'iou': [], 'f1': []}
    for prob, gt in zip(prob_maps, masks):
        pred = prob >= threshold
        for tol in sums:
            m = segmentation_metrics(pred, gt, tolerance_px=tol)
            sums[tol] += (m['tp'], m['fp'], m['fn'], m['tp_gt'])
            if tol == 0:
                per_image['iou'].append(m['iou'])
                per_image['f1'].append(m['f1'])
    out = {'pooled': metrics_from_counts(*sums[0]),
           f'pooled_tol{tolerance_px}px': metrics_from_counts(*sums[tolerance_px]),
           'per_image_mean': {k: float(np.mean(v)) for k, v in per_image.items()}}
    return out


def main(argv=None):
    """Evaluate and write the JSON and a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('data')
    parser.add_argument('--run', default='training/crack/runs/v1')
    parser.add_argument('--json', default='training/crack/oof_results.json')
    parser.add_argument('--k', type=int, default=2)
    args = parser.parse_args(argv)

    split = json.load(open(os.path.join(args.run, 'split.json')))
    experts = split['experts']
    stems, _, masks = load_pairs(args.data)
    if stems != split['stems']:
        raise SystemExit('data folder does not match the run')
    oof = np.stack([np.load(os.path.join(args.run, f'oof_{e}.npy')) for e in experts], 1)
    probs = oof.astype(np.float32) / 255.0           # (N, E, H, W)
    g = gate_weights(np.load(os.path.join(args.run, 'gate_oof_logits.npy')))  # (N, E)

    results = {}
    for i, name in enumerate(experts):
        results[f'single:{name}'] = score(probs[:, i], masks)
        print(name, results[f'single:{name}']['pooled'])
    usage = {}
    for strategy in ('hard', 'soft', 'topk'):
        fused, counts = [], np.zeros(len(experts))
        for n in range(len(stems)):
            idx, w = select_experts(g[n], strategy, args.k)
            counts[idx] += 1
            fused.append(fuse([probs[n, i] for i in idx], w))
        key = f'topk(k={args.k})' if strategy == 'topk' else strategy
        results[key] = score(fused, masks)
        usage[key] = dict(zip(experts, (counts / len(stems)).round(3).tolist()))
        print(key, results[key]['pooled'])
    results['reference:uniform_average'] = score(probs.mean(1), masks)
    per_image_iou = np.stack([[segmentation_metrics(probs[n, i] >= 0.5, masks[n])['iou']
                               for i in range(len(experts))] for n in range(len(stems))])
    best = per_image_iou.argmax(1)
    results['reference:oracle_best_expert'] = score(
        [probs[n, best[n]] for n in range(len(stems))], masks)
    report = {'images': len(stems), 'folds': int(max(split['fold']) + 1), 'experts': experts,
              'threshold': 0.5, 'k': args.k, 'expert_share_selected': usage,
              'oracle_best_expert_share': dict(zip(experts, np.bincount(
                  best, minlength=len(experts)).tolist())),
              'results': results}
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, 'w') as f:
        json.dump(report, f, indent=1)
    print(markdown_table(results))
    return 0


def markdown_table(results):
    """Markdown table of pooled IoU/F1 (plain and 2 px tolerance) and per-image means."""
    lines = ['| model / strategy | IoU | F1 | precision | recall | IoU (2 px tol.) '
             '| F1 (2 px tol.) | mean image IoU |', '|---|---|---|---|---|---|---|---|']
    for key, r in results.items():
        p, t = r['pooled'], r['pooled_tol2px']
        lines.append(f"| {key} | {p['iou']:.3f} | {p['f1']:.3f} | {p['precision']:.3f} | "
                     f"{p['recall']:.3f} | {t['iou']:.3f} | {t['f1']:.3f} | "
                     f"{r['per_image_mean']['iou']:.3f} |")
    return '\n'.join(lines)


if __name__ == '__main__':
    sys.exit(main())
