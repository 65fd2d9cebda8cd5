"""Train the gates on out-of-fold (OOF) IoU labels; calibrate every fold's thresholds on OOF data.

Usage (after train_experts.py for the three LODO folds and the final fold; minutes on one thread):
    .venv/bin/python training/crack/train_gate.py /work/shared/data --run training/crack/runs/v3 \
        --experts lite0_unet,lite0_s8,lite0_half

OOF predictions: every image of set S was predicted by the experts of LODO fold S, which never saw
S. They stand for what a model does on a surface it was not trained on, which is what the
thresholds and the gate must be right about (a drone over a road the project has no data of).

Each fold F (a LODO fold, or `final`) is calibrated and its gate trained on the OOF predictions of
the non-test images of the *other* sets (final: of all three sets), never on F's own images:

1. Single-expert thresholds: per expert, the threshold in 0.05..0.95 with the best mean over sets
   of the per-set pooled F1 (each surface counts equally, whatever its image count).
2. Gate labels: IoU of each expert's OOF mask at that threshold, q_n = softmax(IoU_n / T)
   (T = --temperature, 0.03: an IoU lead of 0.03 is a factor e in weight); loss
   KL(q_n || softmax(gate(x_n))). v2 used soft (probabilistic) IoU, which rewarded the sharper
   probability maps of an expert that lost once thresholded.
3. Fused configurations (uniform, hard, soft, top-k): thresholds as in 1, with fold F's gate.

Written: RUN/FOLD/thresholds.json (`threshold` and the calibration F1 per configuration, and, for
the record, `val_threshold`: the v2 rule, the best pooled F1 on the fold's in-domain val images);
export_onnx.py puts the thresholds into the fold's moe.yaml. RUN/gate_summary.json holds the OOF
IoU per expert and set and how each LODO gate does on its left-out set.

Honest-use note: a LODO fold's threshold and gate never see its left-out set's images or labels;
the OOF predictions they use come from fold models that did train on that set (second order).
"""
import argparse
import json
import os
import sys
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from data import load_all, MEAN, SETS, STD  # noqa: E402, I100
from nets import count_parameters, GateCNN  # noqa: E402

GATE_SIZE = (96, 128)  # H, W; the runtime resizes with cv2.INTER_AREA as here
THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.05), 2)


def gate_inputs(images):
    """Resize and normalise uint8 images to (N, 3, 96, 128) float32 as at run time."""
    out = []
    for img in images:
        small = cv2.resize(img, (GATE_SIZE[1], GATE_SIZE[0]), interpolation=cv2.INTER_AREA)
        x = (small.astype(np.float32) / 255.0 - np.array(MEAN, np.float32)) / np.array(
            STD, np.float32)
        out.append(x.transpose(2, 0, 1))
    return np.stack(out).astype(np.float32)


def hard_iou(prob, gt, threshold):
    """Return the IoU of (prob >= threshold) with gt (1.0 when both are empty)."""
    pred = prob >= threshold
    union = np.count_nonzero(pred | gt)
    return np.count_nonzero(pred & gt) / union if union else 1.0


def histograms(prob, gt):
    """(2, 256) counts of crack / non-crack pixels per probability level round(p * 255)."""
    q = np.rint(prob * 255.0).astype(np.int64).ravel()
    g = gt.ravel()
    return np.stack([np.bincount(q[g], minlength=256), np.bincount(q[~g], minlength=256)])


def levels(thresholds):
    """Histogram level of each threshold: p >= t  <=>  round(p * 255) >= level (to 1/510)."""
    return np.clip(np.ceil(np.asarray(thresholds) * 255.0 - 0.5).astype(int), 0, 255)


LEVELS = levels(THRESHOLDS)    # of the grid thresholds


def f1_curve(hists):
    """Pooled F1 at every grid threshold from summed (2, 256) histograms."""
    h = np.sum(hists, axis=0)
    pos_at_or_above = np.cumsum(h[0][::-1])[::-1]
    neg_at_or_above = np.cumsum(h[1][::-1])[::-1]
    tp = pos_at_or_above[LEVELS]
    fp = neg_at_or_above[LEVELS]
    fn = h[0].sum() - tp
    return 2 * tp / np.maximum(2 * tp + fp + fn, 1)


def best_threshold(hists_by_set):
    """Threshold with the best mean over sets of per-set pooled F1; (threshold, that mean)."""
    curve = np.mean([f1_curve(h) for h in hists_by_set.values()], axis=0)
    best = int(np.argmax(curve))
    return float(THRESHOLDS[best]), float(curve[best])


def soft_labels(iou, temperature):
    """softmax(IoU / T) per image (rows)."""
    z = iou / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def train_gate(x, q, n_experts, args, seed):
    """Train a GateCNN on inputs x (N, 3, h, w) and soft labels q (N, E); return it (eval)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gate = GateCNN(n_experts)
    opt = torch.optim.AdamW(gate.parameters(), lr=args.lr, weight_decay=1e-3)
    steps_per_epoch = int(np.ceil(len(x) / args.batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr,
                                                total_steps=args.epochs * steps_per_epoch)
    xt, qt = torch.from_numpy(x), torch.from_numpy(q.astype(np.float32))
    gate.train()
    for _ in range(args.epochs):
        order = rng.permutation(len(x))
        for s in range(steps_per_epoch):
            idx = torch.from_numpy(order[s * args.batch:(s + 1) * args.batch])
            xb = xt[idx]
            if rng.random() < 0.5:
                xb = xb.flip(3)
            if rng.random() < 0.5:
                xb = xb.flip(2)
            log_p = F.log_softmax(gate(xb), dim=1)
            loss = F.kl_div(log_p, qt[idx], reduction='batchmean')
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    gate.eval()
    return gate


def configurations(experts, k):
    """Return the configuration names, as core.moe.config_key and eval-crack write them."""
    return [f'single:{e}' for e in experts] + ['uniform', 'hard', 'soft', f'topk(k={k})']


def fused(probs, gate_logits, config, experts, k):
    """Fused probability map of one image: probs (E, H, W), gate logits (E,)."""
    from edge_perception.core.moe import fuse, gate_weights, select_experts

    if config.startswith('single:'):
        return probs[experts.index(config.split(':', 1)[1])]
    if config == 'uniform':
        return probs.mean(0)
    strategy = 'topk' if config.startswith('topk') else config
    idx, w = select_experts(gate_weights(gate_logits), strategy, k)
    return fuse([probs[i] for i in idx], w)


def main(argv=None):
    """Train the LODO and final gates on OOF labels, calibrate thresholds on OOF predictions."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('data', help='folder holding deepcrack_train, crack_uav, crack_crackmap')
    parser.add_argument('--run', default='training/crack/runs/v3')
    parser.add_argument('--experts', default='lite0_unet,lite0_s8,lite0_half')
    parser.add_argument('--temperature', type=float, default=0.03)
    parser.add_argument('--epochs', type=int, default=40)
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--lr', type=float, default=3e-3)
    parser.add_argument('--k', type=int, default=2)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--holdout-dir', default='src/edge_perception/data/samples/crack')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    experts = args.experts.split(',')
    configs = configurations(experts, args.k)
    t0 = time.perf_counter()
    data = load_all(args.data, args.seed, args.holdout_dir)

    def preds(fold, name):
        return np.load(os.path.join(args.run, fold, f'pred_{name}.npz'))

    # OOF probabilities per image (E, H, W), from the LODO fold that left the image's set out.
    rows = [(s, i) for s in SETS for i in range(len(data[s]['stems']))]
    oof = {s: [preds(s, e) for e in experts] for s in SETS}
    oof_u8 = [np.stack([p[f'{s}/{data[s]["stems"][i]}'] for p in oof[s]]) for s, i in rows]

    def probs(n):             # uint8 in memory (735 images x E maps), float32 when used
        return oof_u8[n].astype(np.float32) / 255.0
    masks = [data[s]['masks'][i] for s, i in rows]
    x = gate_inputs([data[s]['images'][i] for s, i in rows])
    row_set = np.array([s for s, _ in rows])
    row_split = np.array([data[s]['split'][i] for s, i in rows])
    print(f'{len(rows)} OOF images loaded ({time.perf_counter() - t0:.0f} s)', flush=True)
    report = {'experts': experts, 'temperature': args.temperature, 'epochs': args.epochs,
              'labels': "IoU at each expert's OOF-calibrated threshold", 'folds': {}}

    def calibration_hists(config, rows_used, gate_logits):
        """{set: [(2, 256) histogram per image]} of a configuration on the given rows."""
        out = {}
        for n in rows_used:
            fused_map = fused(probs(n), gate_logits[n] if gate_logits is not None else None,
                              config, experts, args.k)
            out.setdefault(row_set[n], []).append(histograms(fused_map, masks[n]))
        return out

    def expert_ious(rows_used, thresholds):
        """(rows, E) IoU of each expert's OOF mask at its single-expert threshold."""
        out = []
        for n in rows_used:
            p = probs(n)
            out.append([hard_iou(p[j], masks[n], thresholds[f'single:{e}']['threshold'])
                        for j, e in enumerate(experts)])
        return np.array(out)

    for f_idx, fold in enumerate(list(SETS) + ['final']):
        # Never the fold's own set, never a test split.
        use = np.flatnonzero((row_split != 'test') & (row_set != fold))
        thresholds = {}
        for e in experts:
            t, f1 = best_threshold(calibration_hists(f'single:{e}', use, None))
            thresholds[f'single:{e}'] = {'threshold': t, 'calibration_mean_f1': f1}
        iou = expert_ious(use, thresholds)
        gate = train_gate(x[use], soft_labels(iou, args.temperature), len(experts), args,
                          args.seed * 1000 + f_idx)
        torch.save(gate.state_dict(), os.path.join(args.run, fold, 'gate.pt'))
        with torch.no_grad():
            logits = gate(torch.from_numpy(x)).numpy()
        for config in configs:
            if config.startswith('single:'):
                continue
            t, f1 = best_threshold(calibration_hists(config, use, logits))
            thresholds[config] = {'threshold': t, 'calibration_mean_f1': f1}
        # For the record: the v2 rule (best pooled F1 on the fold's in-domain val predictions).
        val = [(s, i) for s, i in rows if s != fold and data[s]['split'][i] == 'val']
        fold_preds = [preds(fold, e) for e in experts]
        with torch.no_grad():
            val_logits = gate(torch.from_numpy(gate_inputs([data[s]['images'][i]
                                                            for s, i in val]))).numpy()
        val_probs = [np.stack([p[f'{s}/{data[s]["stems"][i]}'] for p in fold_preds])
                     .astype(np.float32) / 255.0 for s, i in val]
        for config in configs:
            h = [histograms(fused(val_probs[n], val_logits[n], config, experts, args.k),
                            data[s]['masks'][i]) for n, (s, i) in enumerate(val)]
            curve = f1_curve(h)
            thresholds[config]['val_threshold'] = float(THRESHOLDS[int(np.argmax(curve))])
            thresholds[config]['val_f1'] = float(curve.max())
        json.dump(thresholds, open(os.path.join(args.run, fold, 'thresholds.json'), 'w'),
                  indent=1)
        entry = {'calibration_images': int(len(use)), 'val_images': len(val),
                 'oof_iou_mean': dict(zip(experts, iou.mean(0).round(4).tolist())),
                 'best_expert_share': np.bincount(iou.argmax(1), minlength=len(experts))
                 .tolist(), 'thresholds': thresholds}
        if fold != 'final':   # how the gate does on the left-out set (IoU at fold thresholds)
            held = np.flatnonzero(row_set == fold)
            held_iou = expert_ious(held, thresholds)
            choice = logits[held].argmax(1)
            entry['left_out_iou'] = {
                'gate_argmax': float(held_iou[np.arange(len(held)), choice].mean()),
                'oracle': float(held_iou.max(1).mean()),
                'gate_choice_share': np.bincount(choice, minlength=len(experts)).tolist(),
                **{e: float(held_iou[:, j].mean()) for j, e in enumerate(experts)}}
        report['folds'][fold] = entry
        print(fold, json.dumps(entry), f'({time.perf_counter() - t0:.0f} s)', flush=True)
    report['gate_params'] = count_parameters(gate)
    report['train_s'] = round(time.perf_counter() - t0, 1)
    json.dump(report, open(os.path.join(args.run, 'gate_summary.json'), 'w'), indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
