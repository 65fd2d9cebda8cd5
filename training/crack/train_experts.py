"""Train crack experts for one leave-one-dataset-out (LODO) fold or the final models.

Usage (developer machine; see run_all.sh for the whole pipeline and the budget):
    .venv/bin/python training/crack/train_experts.py /work/shared/data --fold uav \
        --out training/crack/runs/v2
    .venv/bin/python training/crack/train_experts.py /work/shared/data --fold final ...

--fold SET (deepcrack, uav or crackmap): train on the train splits of the two other sets and
predict every image of SET (out-of-fold: these become the gate's labels and the LODO report) and
the val splits of the two training sets (for the fold's threshold calibration).
--fold final: train on the train splits of all three sets (the bundled samples are forced into
DeepCrack's test split, so never trained on) and predict the val and test splits.

Training: random crops (--crop px) at random scale 0.6-1.5, half of them centred near a crack,
each set equally likely; rotations/flips, photometric, saturation, texture, blur and noise
augmentation (data.py); loss BCE + soft Dice (1-5 % of pixels are crack); AdamW, one-cycle LR,
the pretrained encoder at a quarter of the decoder's rate. Predictions are stored as uint8
(prob * 255) per image in OUT/FOLD/pred_EXPERT.npz (key SET/STEM). Finished pieces are skipped.
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
from data import load_all, normalise, pad_to_multiple, random_batch, SETS  # noqa: E402, I100
from nets import build_expert, count_parameters, EXPERTS, pad_multiple  # noqa: E402


def dice_loss(logits, target, eps=1.0):
    """Soft Dice loss over the batch (crack class)."""
    p = torch.sigmoid(logits)
    inter = (p * target).sum()
    return 1.0 - (2.0 * inter + eps) / (p.sum() + target.sum() + eps)


def expert_loss(logits, y):
    """BCE + soft Dice."""
    return F.binary_cross_entropy_with_logits(logits, y) + dice_loss(logits, y)


def train_one(name, pool, steps, seed, args, log):
    """Train expert `name` on crops from pool; return (model in eval mode, seconds)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_expert(name, mixstyle=args.mixstyle)
    enc = [p for n, p in model.named_parameters() if n.startswith('encoder.') and p.requires_grad]
    dec = [p for n, p in model.named_parameters() if not n.startswith('encoder.')]
    groups = [{'params': dec, 'lr': args.lr}]
    if enc:
        groups.append({'params': enc, 'lr': args.lr * args.encoder_lr_factor})
    opt = torch.optim.AdamW(groups, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[g['lr'] for g in groups], total_steps=steps, pct_start=0.1)
    model.train()
    t0 = time.perf_counter()
    running = 0.0
    for step in range(1, steps + 1):
        x, y = random_batch(pool, args.batch, args.crop, rng)
        loss = expert_loss(model(torch.from_numpy(x)), torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        running += loss.item()
        if step % 50 == 0:
            log(f'  {name} step {step}/{steps} loss {running / 50:.4f} '
                f'({time.perf_counter() - t0:.0f} s)')
            running = 0.0
    model.eval()
    return model, time.perf_counter() - t0


@torch.no_grad()
def predict(model, image, multiple=16):
    """Crack probability (H, W) float32 for a uint8 image, padded as at run time."""
    h, w = image.shape[:2]
    x = torch.from_numpy(normalise(pad_to_multiple(image, multiple)))
    return torch.sigmoid(model(x))[0, 0, :h, :w].numpy()


def pool_of(data, sets, split='train'):
    """[(images, masks, indices of `split`)] for the given sets."""
    return [(data[s]['images'], data[s]['masks'],
             np.flatnonzero(np.array(data[s]['split']) == split)) for s in sets]


def main(argv=None):
    """Train the experts of one fold and store their predictions."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('data', help='folder holding deepcrack_train, crack_uav, crack_crackmap')
    parser.add_argument('--fold', required=True, choices=list(SETS) + ['final'])
    parser.add_argument('--out', default='training/crack/runs/v2')
    parser.add_argument('--experts', default=','.join(['lite0_unet', 'lite0_s8']))
    parser.add_argument('--steps', type=int, default=250)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--crop', type=int, default=192)
    parser.add_argument('--lr', type=float, default=2e-3)
    parser.add_argument('--encoder-lr-factor', type=float, default=0.25)
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the data splits (and of training, unless --train-seed)')
    parser.add_argument('--train-seed', type=int, default=None,
                        help='seed of the weights and batches only (default: --seed)')
    parser.add_argument('--mixstyle', type=float, default=0.0,
                        help='MixStyle probability per batch in the Lite0 encoders (0: off)')
    parser.add_argument('--holdout-dir', default='src/edge_perception/data/samples/crack',
                        help='stems in DIR/images are forced into the DeepCrack test split')
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    out = os.path.join(args.out, args.fold)
    os.makedirs(out, exist_ok=True)
    log_file = open(os.path.join(out, 'train.log'), 'a')

    def log(msg):
        print(msg, flush=True)
        log_file.write(msg + '\n')
        log_file.flush()

    data = load_all(args.data, args.seed, args.holdout_dir)
    splits = {s: dict(zip(d['stems'], d['split'])) for s, d in data.items()}
    json.dump(splits, open(os.path.join(args.out, 'splits.json'), 'w'), indent=0)
    if args.fold == 'final':
        train_sets = list(SETS)
        targets = [(s, i) for s in SETS for i, sp in enumerate(data[s]['split'])
                   if sp in ('val', 'test')]
    else:
        train_sets = [s for s in SETS if s != args.fold]
        targets = [(args.fold, i) for i in range(len(data[args.fold]['stems']))]
        targets += [(s, i) for s in train_sets for i, sp in enumerate(data[s]['split'])
                    if sp == 'val']
    pool = pool_of(data, train_sets)
    log(f'fold {args.fold}: train on {train_sets} '
        f'({sum(len(p[2]) for p in pool)} images), predict {len(targets)}; args {vars(args)}')
    summary_path = os.path.join(out, 'summary.json')

    def update_summary(name, **figures):     # re-read: another process may train this fold
        summary = json.load(open(summary_path)) if os.path.exists(summary_path) else {}
        summary.setdefault(name, {}).update(figures)
        json.dump(summary, open(summary_path, 'w'), indent=1)

    for name in args.experts.split(','):
        if name not in EXPERTS:
            raise SystemExit(f'unknown expert {name}')
        pred_path = os.path.join(out, f'pred_{name}.npz')
        if os.path.exists(pred_path):
            log(f'{name}: done, skipped')
            continue
        weights = os.path.join(out, f'{name}.pt')
        # Seeded by fold and expert name, so experts trained in separate processes differ.
        train_seed = args.seed if args.train_seed is None else args.train_seed
        seed = train_seed * 1000 + 10 * (list(SETS) + ['final']).index(args.fold) + \
            list(EXPERTS).index(name)
        if os.path.exists(weights):
            model = build_expert(name, pretrained=False)
            model.load_state_dict(torch.load(weights))
            model.eval()
        else:
            model = build_expert(name)
            log(f'{name}: {count_parameters(model)} trainable parameters, {args.steps} steps')
            model, seconds = train_one(name, pool, args.steps, seed, args, log)
            torch.save(model.state_dict(), weights)
            update_summary(name, train_s=round(seconds, 1), steps=args.steps,
                           params=count_parameters(model))
        t0 = time.perf_counter()
        preds = {}
        for s, i in targets:
            prob = predict(model, data[s]['images'][i], pad_multiple(name))
            preds[f'{s}/{data[s]["stems"][i]}'] = np.round(prob * 255).astype(np.uint8)
        np.savez_compressed(pred_path, **preds)
        update_summary(name, predict_s=round(time.perf_counter() - t0, 1))
        log(f'{name}: predictions written ({time.perf_counter() - t0:.0f} s)')
    log('done')
    return 0


if __name__ == '__main__':
    sys.exit(main())
