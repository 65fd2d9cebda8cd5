"""Train the gates on out-of-fold (OOF) soft-IoU labels and calibrate every fold's thresholds.

Usage (after train_experts.py for the three LODO folds and the final fold; minutes on one thread):
    .venv/bin/python training/crack/train_gate.py /work/shared/data --run training/crack/runs/v2

OOF labels: every image of set S was predicted by the experts of LODO fold S, which never saw S.
For image n and expert i, IoU_ni is the soft (probabilistic) crack IoU of that prediction,
sum(p g) / sum(p + g - p g): no threshold needed. Target q_n = softmax(IoU_n / T) (T =
--temperature, default 0.03: an IoU lead of 0.03 is a factor e in weight); loss
KL(q_n || softmax(gate(x_n))).

- Gate of LODO fold S: trained on the train+val images of the two other sets, never on S.
- Final gate: trained on the train+val images of all three sets (test splits, which hold the
  bundled samples, are never used).

Thresholds: for each fold and each configuration (single expert, uniform average, hard, soft,
top-k), the threshold in 0.05..0.95 with the best pooled F1 on that fold's validation images
(LODO fold S: the val splits of the two training sets; final: the val splits of all three) is
written to RUN/FOLD/thresholds.json; export_onnx.py puts them into the fold's moe.yaml.
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


def soft_iou(prob, gt):
    """sum(p g) / sum(p + g - p g) (1.0 when both are empty)."""
    inter = float((prob * gt).sum())
    union = float(prob.sum() + gt.sum()) - inter
    return inter / union if union > 0 else 1.0


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


def calibrate(prob_list, logit_list, masks, experts, k):
    """Best pooled-F1 threshold on the grid per configuration, and that F1."""
    out = {}
    for config in configurations(experts, k):
        tp = np.zeros(len(THRESHOLDS))
        fp = np.zeros(len(THRESHOLDS))
        fn = np.zeros(len(THRESHOLDS))
        for probs, logits, gt in zip(prob_list, logit_list, masks):
            p = fused(probs, logits, config, experts, k)
            for j, t in enumerate(THRESHOLDS):
                pred = p >= t
                tp[j] += np.count_nonzero(pred & gt)
                fp[j] += np.count_nonzero(pred & ~gt)
                fn[j] += np.count_nonzero(~pred & gt)
        f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
        best = int(np.argmax(f1))
        out[config] = {'threshold': float(THRESHOLDS[best]), 'val_f1': float(f1[best])}
    return out


def main(argv=None):
    """Train the LODO and final gates, calibrate thresholds."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('data', help='folder holding deepcrack_train, crack_uav, crack_crackmap')
    parser.add_argument('--run', default='training/crack/runs/v2')
    parser.add_argument('--experts', default='lite0_unet,lite0_s8')
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
    t0 = time.perf_counter()
    data = load_all(args.data, args.seed, args.holdout_dir)

    def preds(fold, name):
        return np.load(os.path.join(args.run, fold, f'pred_{name}.npz'))

    # OOF soft IoU per image and expert, from the LODO fold that left the image's set out.
    rows = []                       # (set, index)
    iou = []
    oof = {s: [preds(s, e) for e in experts] for s in SETS}
    for s in SETS:
        for i, stem in enumerate(data[s]['stems']):
            gt = data[s]['masks'][i].astype(np.float32)
            rows.append((s, i))
            iou.append([soft_iou(p[f'{s}/{stem}'] / 255.0, gt) for p in oof[s]])
    iou = np.array(iou)
    q = soft_labels(iou, args.temperature)
    x = gate_inputs([data[s]['images'][i] for s, i in rows])
    row_set = np.array([s for s, _ in rows])
    row_split = np.array([data[s]['split'][i] for s, i in rows])
    report = {'experts': experts, 'temperature': args.temperature, 'epochs': args.epochs,
              'oof_soft_iou_mean': {s: dict(zip(experts, iou[row_set == s].mean(0).round(4)
                                                .tolist())) for s in SETS},
              'oof_best_expert_share': {s: np.bincount(iou[row_set == s].argmax(1),
                                                       minlength=len(experts)).tolist()
                                        for s in SETS},
              'folds': {}}
    print(json.dumps({k: report[k] for k in ('oof_soft_iou_mean', 'oof_best_expert_share')}))

    for f_idx, fold in enumerate(list(SETS) + ['final']):
        train = (row_split != 'test') & (row_set != fold)
        gate = train_gate(x[train], q[train], len(experts), args, args.seed * 1000 + f_idx)
        torch.save(gate.state_dict(), os.path.join(args.run, fold, 'gate.pt'))
        # Validation images of this fold: val splits of its training sets.
        val = [(s, i) for s, i in rows if s != fold and data[s]['split'][i] == 'val']
        fold_preds = [preds(fold, e) for e in experts]
        prob_list, masks = [], []
        for s, i in val:
            key = f'{s}/{data[s]["stems"][i]}'
            prob_list.append(np.stack([p[key] for p in fold_preds]).astype(np.float32) / 255.0)
            masks.append(data[s]['masks'][i])
        with torch.no_grad():
            logits = gate(torch.from_numpy(gate_inputs([data[s]['images'][i]
                                                        for s, i in val]))).numpy()
        thresholds = calibrate(prob_list, logits, masks, experts, args.k)
        json.dump(thresholds, open(os.path.join(args.run, fold, 'thresholds.json'), 'w'),
                  indent=1)
        report['folds'][fold] = {'gate_train_images': int(train.sum()),
                                 'val_images': len(val), 'thresholds': thresholds}
        if fold != 'final':   # how the gate does on the left-out set's OOF labels
            held = row_set == fold
            with torch.no_grad():
                g = torch.softmax(gate(torch.from_numpy(x[held])), 1).numpy()
            report['folds'][fold]['left_out_soft_iou'] = {
                'gate_argmax': float(iou[held][np.arange(held.sum()), g.argmax(1)].mean()),
                'oracle': float(iou[held].max(1).mean()),
                **{e: float(iou[held, j].mean()) for j, e in enumerate(experts)}}
        print(fold, json.dumps(report['folds'][fold]), f'({time.perf_counter() - t0:.0f} s)',
              flush=True)
    report['gate_params'] = count_parameters(gate)
    report['train_s'] = round(time.perf_counter() - t0, 1)
    json.dump(report, open(os.path.join(args.run, 'gate_summary.json'), 'w'), indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
