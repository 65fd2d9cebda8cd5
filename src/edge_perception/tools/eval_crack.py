"""`edge-perception eval-crack`: crack segmentation quality on a folder of images and masks.

    edge-perception eval-crack --images DIR --masks DIR --json OUT
        [--strategy single|hard|soft|topk] [--experts a,b] [--k 2] [--expert NAME] [--compare]
        [--manifest moe.yaml] [--threads 2] [--max-side N] [--tolerance 2]

Masks are PNG files named like the image (same stem), 255 (any value > 127) = crack. Each image is
segmented with `core.moe.CrackSegmenter`; reported per configuration: crack-class IoU, F1,
precision and recall pooled over all pixels of all images (counts summed), the same with a
--tolerance px tolerance (definition in core/crack.py), the means of per-image IoU and F1, the mean
inference time and how often each expert ran. --compare evaluates every single expert and the
hard, soft and top-k strategies in one run and prints a table.
"""
import json
from pathlib import Path
import sys

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff')


def find_pairs(image_dir, mask_dir):
    """Return [(stem, image path, mask path)] sorted by stem; raise ValueError on gaps."""
    image_dir, mask_dir = Path(image_dir), Path(mask_dir)
    for folder in (image_dir, mask_dir):
        if not folder.is_dir():
            raise ValueError(f'not a folder: {folder}')
    images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise ValueError(f'no images ({", ".join(IMAGE_SUFFIXES)}) in {image_dir}')
    pairs, missing = [], []
    for path in images:
        mask = mask_dir / (path.stem + '.png')
        if mask.is_file():
            pairs.append((path.stem, path, mask))
        else:
            missing.append(mask.name)
    if missing:
        raise ValueError(f'{len(missing)} images have no mask in {mask_dir}: '
                         f'{", ".join(missing[:5])}')
    return pairs


def load_pair(image_path, mask_path):
    """Return (RGB uint8 image, boolean mask); raise ValueError when their sizes differ."""
    import numpy as np
    from PIL import Image

    with Image.open(image_path) as image:
        rgb = np.asarray(image.convert('RGB'))
    with Image.open(mask_path) as mask:
        gt = np.asarray(mask.convert('L')) > 127
    if gt.shape != rgb.shape[:2]:
        raise ValueError(f'mask {mask_path} is {gt.shape[::-1]} but image is '
                         f'{rgb.shape[1::-1]} (W x H)')
    return rgb, gt


def evaluate(segmenter, pairs, tolerance_px):
    """Segment every pair; return (summary dict, per-image list)."""
    import numpy as np
    from edge_perception.core.crack import metrics_from_counts, segmentation_metrics

    sums = {0: np.zeros(4), tolerance_px: np.zeros(4)}
    per_image, times, usage = [], [], {}
    for stem, image_path, mask_path in pairs:
        rgb, gt = load_pair(image_path, mask_path)
        result = segmenter.segment(rgb)
        times.append(result.inference_ms)
        for name in result.experts_used:
            usage[name] = usage.get(name, 0) + 1
        row = {'image': stem, 'experts_used': result.experts_used,
               'expert_weights': [round(w, 4) for w in result.expert_weights],
               'inference_ms': round(result.inference_ms, 2)}
        for tol in sums:
            m = segmentation_metrics(result.mask, gt, tolerance_px=tol)
            sums[tol] += (m['tp'], m['fp'], m['fn'], m['tp_gt'])
            suffix = '' if tol == 0 else f'_tol{tolerance_px:g}px'
            row[f'iou{suffix}'] = round(m['iou'], 5)
            row[f'f1{suffix}'] = round(m['f1'], 5)
        per_image.append(row)
    summary = {
        'pooled': metrics_from_counts(*sums[0]),
        f'pooled_tol{tolerance_px:g}px': metrics_from_counts(*sums[tolerance_px]),
        'per_image_mean': {k: float(np.mean([r[k] for r in per_image]))
                           for k in ('iou', 'f1', f'iou_tol{tolerance_px:g}px',
                                     f'f1_tol{tolerance_px:g}px')},
        'counts': dict(zip(('tp', 'fp', 'fn', 'tp_gt'), sums[0].astype(int).tolist())),
        'mean_inference_ms': float(np.mean(times)),
        'expert_share': {k: v / len(pairs) for k, v in sorted(usage.items())},
    }
    return summary, per_image


def table(results, tolerance_px):
    """Plain-text table of the pooled figures per configuration."""
    tol = f'pooled_tol{tolerance_px:g}px'
    lines = [f'{"configuration":<22} {"IoU":>6} {"F1":>6} {"prec":>6} {"recall":>6} '
             f'{f"IoU@{tolerance_px:g}px":>9} {f"F1@{tolerance_px:g}px":>8} '
             f'{"img IoU":>8} {"ms":>7}']
    for key, r in results.items():
        p, t = r['pooled'], r[tol]
        lines.append(f'{key:<22} {p["iou"]:6.3f} {p["f1"]:6.3f} {p["precision"]:6.3f} '
                     f'{p["recall"]:6.3f} {t["iou"]:9.3f} {t["f1"]:8.3f} '
                     f'{r["per_image_mean"]["iou"]:8.3f} {r["mean_inference_ms"]:7.1f}')
    return '\n'.join(lines)


def register(subparsers):
    """Add the `eval-crack` sub-command."""
    parser = subparsers.add_parser(
        'eval-crack', help='crack segmentation IoU/F1 on images + masks',
        description=__doc__.split('\n')[0])
    parser.add_argument('--images', type=Path, required=True, help='folder of images')
    parser.add_argument('--masks', type=Path, required=True,
                        help='folder of PNG masks (255 = crack), same stem as the image')
    parser.add_argument('--json', type=Path, required=True, help='write the figures here')
    parser.add_argument('--strategy', default='topk', choices=['single', 'hard', 'soft', 'topk'])
    parser.add_argument('--experts', default=None,
                        help='comma-separated experts to consider (default: all in the manifest)')
    parser.add_argument('--expert', default=None,
                        help="expert for --strategy single (default: the manifest's)")
    parser.add_argument('--k', type=int, default=2, help='experts fused by topk')
    parser.add_argument('--compare', action='store_true',
                        help='evaluate each single expert and each strategy')
    parser.add_argument('--manifest', default=None, help='moe.yaml (default: the shipped one)')
    parser.add_argument('--threads', type=int, default=2, help='onnxruntime intra-op threads')
    parser.add_argument('--max-side', type=int, default=None,
                        help='downscale images whose longer side exceeds this')
    parser.add_argument('--tolerance', type=float, default=2.0,
                        help='pixel tolerance of the second set of figures')
    parser.set_defaults(func=run)


def run(args):
    """Evaluate and write the JSON; return the exit code."""
    from edge_perception.core.moe import CrackSegmenter

    try:
        if args.tolerance <= 0:
            raise ValueError('--tolerance must be > 0 (the strict figures are always reported)')
        pairs = find_pairs(args.images, args.masks)
        experts = [e.strip() for e in args.experts.split(',')] if args.experts else None
        common = {'manifest': args.manifest, 'experts': experts,
                  'intra_op_num_threads': args.threads, 'max_side': args.max_side}
        if args.compare:
            names = experts or CrackSegmenter(strategy='single', **common).manifest_experts
            configs = {f'single:{n}': {'strategy': 'single', 'expert': n} for n in names}
            configs.update({'hard': {'strategy': 'hard'}, 'soft': {'strategy': 'soft'},
                            f'topk(k={args.k})': {'strategy': 'topk', 'k': args.k}})
        else:
            key = f'topk(k={args.k})' if args.strategy == 'topk' else args.strategy
            if args.strategy == 'single':
                key = f'single:{args.expert}' if args.expert else 'single'
            configs = {key: {'strategy': args.strategy, 'k': args.k, 'expert': args.expert}}
        segmenters = {key: CrackSegmenter(**common, **cfg) for key, cfg in configs.items()}
        results, per_image = {}, {}
        for key, segmenter in segmenters.items():
            results[key], per_image[key] = evaluate(segmenter, pairs, args.tolerance)
            print(f'{key}: IoU {results[key]["pooled"]["iou"]:.4f}, '
                  f'F1 {results[key]["pooled"]["f1"]:.4f}', file=sys.stderr)
    except ValueError as exc:
        print(f'eval-crack: {exc}', file=sys.stderr)
        return 2
    any_segmenter = next(iter(segmenters.values()))
    report = {'images': len(pairs), 'image_dir': str(args.images), 'mask_dir': str(args.masks),
              'manifest': any_segmenter.manifest, 'threshold': any_segmenter.threshold,
              'tolerance_px': args.tolerance, 'results': results, 'per_image': per_image}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    print(table(results, args.tolerance))
    return 0
