"""Train the crack experts: 5-fold out-of-fold (OOF) predictions, then the final models.

Usage (developer machine; 68 min on one CPU thread of a shared 2-core machine, about half that
when the machine is free):
    .venv/bin/python training/crack/train_experts.py /work/shared/data/deepcrack_train \
        --out training/crack/runs/v1

For fold f = 0..4 and each expert: train on the other four folds (random 192 px crops from the
full-resolution images, BCE + soft Dice, AdamW with a one-cycle schedule, a fixed number of steps),
then predict the 60 held-out images at full resolution. The OOF probabilities (uint8, prob * 255)
go to OUT/oof_<expert>.npy in the order of OUT/split.json; the weights to OUT/fold<f>_<expert>.pt.
Final experts are trained the same way on all images except the five bundled samples
(--holdout-dir; OUT/final_<expert>.pt). Finished pieces are skipped on a re-run, so an interrupted
run can be resumed.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from data import fold_assignment, load_pairs, normalise, random_crop_batch  # noqa: E402, I100
from nets import build_expert, count_parameters, EXPERTS  # noqa: E402


def dice_loss(logits, target, eps=1.0):
    """Soft Dice loss over the batch (crack class)."""
    p = torch.sigmoid(logits)
    inter = (p * target).sum()
    return 1.0 - (2.0 * inter + eps) / (p.sum() + target.sum() + eps)


def expert_loss(model, x, y):
    """BCE + Dice on the output; the side-output net also supervises each side (as DeepCrack)."""
    if hasattr(model, 'sides'):
        fused, sides = model(x, return_sides=True)
        loss = F.binary_cross_entropy_with_logits(fused, y) + dice_loss(fused, y)
        for s in sides:
            loss = loss + 0.25 * F.binary_cross_entropy_with_logits(s, y)
        return loss
    logits = model(x)
    return F.binary_cross_entropy_with_logits(logits, y) + dice_loss(logits, y)


def train_one(name, images, masks, indices, steps, seed, args, log):
    """Train expert `name` on images[indices]; return the model in eval mode."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_expert(name)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps,
                                                pct_start=0.1)
    model.train()
    t0 = time.perf_counter()
    running = 0.0
    for step in range(1, steps + 1):
        x, y = random_crop_batch(images, masks, indices, args.batch, args.crop, rng)
        loss = expert_loss(model, torch.from_numpy(x), torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        running += loss.item()
        if step % 100 == 0:
            log(f'  {name} step {step}/{steps} loss {running / 100:.4f} '
                f'({time.perf_counter() - t0:.0f} s)')
            running = 0.0
    model.eval()
    return model, time.perf_counter() - t0


@torch.no_grad()
def predict(model, images):
    """Crack probabilities (N, H, W) float32 for uint8 images at full resolution."""
    out = []
    for i in range(len(images)):
        x = torch.from_numpy(normalise(images[i:i + 1]))
        out.append(torch.sigmoid(model(x))[0, 0].numpy())
    return np.stack(out)


def iou_per_image(probs, masks, threshold=0.5):
    """Crack-class IoU per image (1.0 when both prediction and ground truth are empty)."""
    pred = probs >= threshold
    inter = (pred & masks).sum(axis=(1, 2))
    union = (pred | masks).sum(axis=(1, 2))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def holdout_stems(folder):
    """File stems of the images in folder/images ('' or None: none)."""
    if not folder:
        return set()
    return {os.path.splitext(f)[0] for f in os.listdir(os.path.join(folder, 'images'))}


def main(argv=None):
    """Run the 5-fold OOF training and the final training."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('data', help='folder with images/ and masks/ (DeepCrack train)')
    parser.add_argument('--out', default='training/crack/runs/v1')
    parser.add_argument('--experts', default=','.join(EXPERTS))
    parser.add_argument('--folds', type=int, default=5)
    parser.add_argument('--steps', type=int, default=400, help='training steps per fold model')
    parser.add_argument('--final-steps', type=int, default=500)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--crop', type=int, default=192)
    parser.add_argument('--lr', type=float, default=3e-3)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--skip-final', action='store_true')
    parser.add_argument('--holdout-dir', default='src/edge_perception/data/samples/crack',
                        help='images whose stems appear in DIR/images are left out of the final '
                        'training (the bundled samples, so tests on them are held out); '
                        "'' for none")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    log_file = open(os.path.join(args.out, 'train_experts.log'), 'a')

    def log(msg):
        print(msg, flush=True)
        log_file.write(msg + '\n')
        log_file.flush()

    stems, images, masks = load_pairs(args.data)
    folds = fold_assignment(len(stems), args.folds, args.seed)
    experts = args.experts.split(',')
    with open(os.path.join(args.out, 'split.json'), 'w') as f:
        json.dump({'stems': stems, 'fold': folds.tolist(), 'seed': args.seed,
                   'experts': experts, 'args': vars(args)}, f, indent=1)
    log(f'{len(stems)} images {images.shape[1:3]}, folds {np.bincount(folds).tolist()}, '
        f'experts {experts}')
    summary_path = os.path.join(args.out, 'train_summary.json')
    summary = json.load(open(summary_path)) if os.path.exists(summary_path) else {}

    for e_idx, name in enumerate(experts):
        oof_path = os.path.join(args.out, f'oof_{name}.npy')
        if os.path.exists(oof_path):
            log(f'{name}: OOF predictions exist, skipped')
            continue
        oof = np.zeros(masks.shape, np.uint8)
        for fold in range(args.folds):
            train_idx = np.flatnonzero(folds != fold)
            held = np.flatnonzero(folds == fold)
            weights = os.path.join(args.out, f'fold{fold}_{name}.pt')
            seed = args.seed * 1000 + 10 * fold + e_idx
            model = build_expert(name)
            if os.path.exists(weights):
                model.load_state_dict(torch.load(weights))
                model.eval()
                seconds = summary.get(f'fold{fold}_{name}', {}).get('train_s', float('nan'))
            else:
                log(f'fold {fold} {name} ({count_parameters(model)} params): train on '
                    f'{len(train_idx)}')
                model, seconds = train_one(name, images, masks, train_idx, args.steps, seed,
                                           args, log)
                torch.save(model.state_dict(), weights)
            probs = predict(model, images[held])
            oof[held] = np.round(probs * 255).astype(np.uint8)
            ious = iou_per_image(probs, masks[held])
            summary[f'fold{fold}_{name}'] = {'train_s': seconds,
                                             'mean_iou': float(ious.mean())}
            log(f'fold {fold} {name}: {seconds:.0f} s, held-out mean IoU {ious.mean():.4f}')
            json.dump(summary, open(summary_path, 'w'), indent=1)
        np.save(oof_path, oof)

    if not args.skip_final:
        held_out = holdout_stems(args.holdout_dir)
        all_idx = np.array([i for i, s in enumerate(stems) if s not in held_out])
        log(f'final training: {len(all_idx)} images, held out {sorted(held_out)}')
        for e_idx, name in enumerate(experts):
            weights = os.path.join(args.out, f'final_{name}.pt')
            if os.path.exists(weights):
                continue
            log(f'final {name}: train on {len(all_idx)}')
            model, seconds = train_one(name, images, masks, all_idx, args.final_steps,
                                       args.seed * 1000 + 100 + e_idx, args, log)
            torch.save(model.state_dict(), weights)
            summary[f'final_{name}'] = {'train_s': seconds}
            json.dump(summary, open(summary_path, 'w'), indent=1)
            log(f'final {name}: {seconds:.0f} s')
    log('done')
    return 0


if __name__ == '__main__':
    sys.exit(main())
