"""Train the gate on out-of-fold (OOF) IoU soft labels with a KL-divergence loss.

Usage (after train_experts.py; a few minutes on one CPU thread):
    .venv/bin/python training/crack/train_gate.py /work/shared/data/deepcrack_train \
        --run training/crack/runs/v1

Soft labels: for image n and expert i, IoU_ni is the crack-class IoU (threshold 0.5) of expert i's
OOF prediction (made by the fold model that never saw image n). The gate's target is
q_n = softmax(IoU_n / T) over experts (T = --temperature, default 0.03: an IoU lead of 0.03 is a
factor e in weight). Loss: KL(q_n || softmax(gate(x_n))).

For fold f the gate is trained on the images outside fold f and predicts fold f (OOF gate logits,
OUT/gate_oof_logits.npy), so evaluate_oof.py never scores a gate on images it was trained on.
A final gate is trained on all images but the bundled samples (OUT/gate_final.pt).
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
from data import load_pairs, MEAN, STD  # noqa: E402, I100
from nets import count_parameters, GateCNN  # noqa: E402
from train_experts import holdout_stems, iou_per_image  # noqa: E402

GATE_SIZE = (96, 128)  # H, W; the runtime resizes with cv2.INTER_AREA as here


def gate_inputs(images):
    """Resize and normalise (N, H, W, 3) uint8 to (N, 3, 96, 128) float32 as at run time."""
    out = []
    for img in images:
        small = cv2.resize(img, (GATE_SIZE[1], GATE_SIZE[0]), interpolation=cv2.INTER_AREA)
        x = (small.astype(np.float32) / 255.0 - np.array(MEAN, np.float32)) / np.array(
            STD, np.float32)
        out.append(x.transpose(2, 0, 1))
    return np.stack(out).astype(np.float32)


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


def main(argv=None):
    """Train per-fold gates (OOF logits) and the final gate."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('data', help='folder with images/ and masks/')
    parser.add_argument('--run', default='training/crack/runs/v1',
                        help='output folder of train_experts.py')
    parser.add_argument('--temperature', type=float, default=0.03)
    parser.add_argument('--epochs', type=int, default=60)
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--lr', type=float, default=3e-3)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--holdout-dir', default='src/edge_perception/data/samples/crack',
                        help='stems in DIR/images are left out of the final gate')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    split = json.load(open(os.path.join(args.run, 'split.json')))
    experts = split['experts']
    folds = np.array(split['fold'])
    stems, images, masks = load_pairs(args.data)
    if stems != split['stems']:
        raise SystemExit('data folder does not match the run (different image list)')
    iou = np.stack([iou_per_image(np.load(os.path.join(args.run, f'oof_{e}.npy')) / 255.0,
                                  masks) for e in experts], axis=1)
    q = soft_labels(iou, args.temperature)
    x = gate_inputs(images)
    print(f'OOF IoU per expert (mean over images): '
          f'{dict(zip(experts, iou.mean(0).round(4).tolist()))}')
    print(f'best expert per image: {np.bincount(iou.argmax(1), minlength=len(experts)).tolist()}')
    print(f'mean soft label: {q.mean(0).round(3).tolist()}')

    oof_logits = np.zeros((len(stems), len(experts)), np.float32)
    t0 = time.perf_counter()
    for fold in range(folds.max() + 1):
        train = folds != fold
        gate = train_gate(x[train], q[train], len(experts), args, args.seed * 1000 + fold)
        with torch.no_grad():
            oof_logits[~train] = gate(torch.from_numpy(x[~train])).numpy()
        torch.save(gate.state_dict(), os.path.join(args.run, f'gate_fold{fold}.pt'))
        held_q = q[~train]
        held_p = torch.softmax(torch.from_numpy(oof_logits[~train]), 1).numpy()
        kl = float(np.mean(np.sum(held_q * (np.log(held_q + 1e-12) - np.log(held_p + 1e-12)),
                                  1)))
        picked = iou[~train][np.arange(held_p.shape[0]), held_p.argmax(1)].mean()
        print(f'fold {fold}: held-out KL {kl:.4f}, IoU of gate argmax {picked:.4f} '
              f'({time.perf_counter() - t0:.0f} s)')
    np.save(os.path.join(args.run, 'gate_oof_logits.npy'), oof_logits)
    keep = np.array([s not in holdout_stems(args.holdout_dir) for s in stems])
    gate = train_gate(x[keep], q[keep], len(experts), args, args.seed * 1000 + 100)
    torch.save(gate.state_dict(), os.path.join(args.run, 'gate_final.pt'))
    json.dump({'temperature': args.temperature, 'epochs': args.epochs,
               'gate_params': count_parameters(gate), 'gate_input_hw': GATE_SIZE,
               'oof_iou_mean': dict(zip(experts, iou.mean(0).tolist())),
               'train_s': time.perf_counter() - t0},
              open(os.path.join(args.run, 'gate_summary.json'), 'w'), indent=1)
    print(f'done in {time.perf_counter() - t0:.0f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
