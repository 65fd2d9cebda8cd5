"""`edge-perception eval-crack`: crack segmentation quality on a folder of images and masks.

    edge-perception eval-crack --images DIR --masks DIR --json OUT
        [--strategy single|hard|soft|topk] [--experts a,b] [--k 2] [--expert NAME] [--compare]
        [--manifest moe.yaml] [--threads 2] [--max-side N] [--tolerance 2]
    edge-perception eval-crack --sets NAME=DIR [NAME=DIR ...] --json OUT
        [--lodo-run RUN | --manifest moe.yaml] [--stems-json splits.json --split test] ...

Multi-set mode (--sets; each DIR holds images/ and masks/): every configuration (each single
expert, the uniform average of all experts, hard, soft and top-k gating) is scored on every set
and printed as one table of pooled F1 per set. With --lodo-run RUN, set NAME is segmented with
the models of RUN/NAME/onnx/moe.yaml, the leave-one-dataset-out fold trained without NAME
(training/crack/export_onnx.py writes it): the LODO table. Without it every set uses --manifest
(default the shipped models). --stems-json (a JSON {set: {stem: split}}) with --split keeps only
that split's images (e.g. the in-domain test splits). Each configuration is thresholded at the
manifest's threshold for it (`thresholds`; core.moe.manifest_threshold); the expert maps and the
gate logits are computed once per image and fused as core.moe does.

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


def evaluate_sets(sets, manifests, args):
    """Multi-set mode: (results {config: {set: summary}}, meta {set: {...}})."""
    import numpy as np
    from edge_perception.core.crack import metrics_from_counts, segmentation_metrics
    from edge_perception.core.moe import (
        config_key, CrackSegmenter, fuse, gate_weights, manifest_threshold, select_experts)
    import yaml

    results, meta = {}, {}
    keep = None
    if args.stems_json:
        keep = json.loads(Path(args.stems_json).read_text())
    for name, folder in sets.items():
        manifest = manifests[name]
        segmenter = CrackSegmenter(manifest, strategy='soft', intra_op_num_threads=args.threads,
                                   max_side=args.max_side)
        spec = yaml.safe_load(Path(segmenter.manifest).read_text())
        experts = segmenter.expert_names
        configs = [config_key('single', expert=e) for e in experts] + [
            'uniform', 'hard', 'soft', config_key('topk', args.k)]
        thresholds = {c: manifest_threshold(spec, c) for c in configs}
        pairs = find_pairs(folder / 'images', folder / 'masks')
        if keep is not None:
            pairs = [p for p in pairs if keep.get(name, {}).get(p[0]) == args.split]
        if not pairs:
            raise ValueError(f'set {name}: no images left (--split {args.split})')
        counts = {c: np.zeros(3) for c in configs}
        used = {c: np.zeros(len(experts)) for c in configs}
        for stem, image_path, mask_path in pairs:
            rgb, gt = load_pair(image_path, mask_path)
            maps = segmenter.expert_probabilities(rgb)
            probs = [maps[e] for e in experts]
            g = gate_weights(segmenter.gate_logits(rgb))
            for c in configs:
                if c.startswith('single:'):
                    idx, w = [experts.index(c.split(':', 1)[1])], [1.0]
                elif c == 'uniform':
                    idx, w = list(range(len(experts))), [1.0 / len(experts)] * len(experts)
                else:
                    idx, w = select_experts(g, 'topk' if c.startswith('topk') else c, args.k)
                prob = fuse([probs[i] for i in idx], w)
                used[c][list(idx)] += 1
                m = segmentation_metrics(prob >= thresholds[c], gt)
                counts[c] += (m['tp'], m['fp'], m['fn'])
        for c in configs:
            summary = metrics_from_counts(*counts[c])
            summary['threshold'] = thresholds[c]
            summary['expert_share'] = dict(zip(experts, (used[c] / len(pairs)).round(3)
                                               .tolist()))
            results.setdefault(c, {})[name] = summary
        meta[name] = {'images': len(pairs), 'folder': str(folder),
                      'manifest': segmenter.manifest}
        print(f'{name}: {len(pairs)} images, ' + ', '.join(
            f'{c} F1 {results[c][name]["f1"]:.3f}' for c in configs), file=sys.stderr)
    return results, meta


def sets_table(results, names):
    """Plain-text table: pooled F1 (precision/recall) per set and the mean F1 over sets."""
    width = 20
    lines = [f'{"configuration":<18} ' + ' '.join(f'{n + " F1 (P/R)":>{width}}' for n in names)
             + f' {"mean F1":>8}']
    for key, by_set in results.items():
        cells = [f'{by_set[n]["f1"]:.3f} ({by_set[n]["precision"]:.2f}/'
                 f'{by_set[n]["recall"]:.2f})' for n in names]
        mean = sum(by_set[n]['f1'] for n in names) / len(names)
        lines.append(f'{key:<18} ' + ' '.join(f'{c:>{width}}' for c in cells) + f' {mean:8.3f}')
    return '\n'.join(lines)


def run_sets(args):
    """Multi-set / LODO mode of run(); returns the exit code."""
    try:
        sets = {}
        for item in args.sets:
            name, sep, folder = item.partition('=')
            if not sep or not name or not folder:
                raise ValueError(f'--sets wants NAME=DIR, got {item!r}')
            sets[name] = Path(folder)
        if args.stems_json and not args.split:
            raise ValueError('--stems-json needs --split')
        manifests = {}
        for name in sets:
            if args.lodo_run:
                manifests[name] = str(Path(args.lodo_run) / name / 'onnx' / 'moe.yaml')
                if not Path(manifests[name]).is_file():
                    raise ValueError(f'no LODO fold manifest {manifests[name]}')
            else:
                manifests[name] = args.manifest
        results, meta = evaluate_sets(sets, manifests, args)
    except ValueError as exc:
        print(f'eval-crack: {exc}', file=sys.stderr)
        return 2
    report = {'mode': 'lodo' if args.lodo_run else 'sets', 'sets': meta, 'k': args.k,
              'split': args.split, 'results': results}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    print(sets_table(results, list(sets)))
    return 0


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
    parser.add_argument('--images', type=Path, help='folder of images')
    parser.add_argument('--masks', type=Path,
                        help='folder of PNG masks (255 = crack), same stem as the image')
    parser.add_argument('--sets', nargs='+', default=None, metavar='NAME=DIR',
                        help='multi-set mode: data sets (DIR/images, DIR/masks), one table')
    parser.add_argument('--lodo-run', default=None,
                        help='with --sets: segment set NAME with RUN/NAME/onnx/moe.yaml')
    parser.add_argument('--stems-json', default=None,
                        help='with --sets: JSON {set: {stem: split}}; keep --split only')
    parser.add_argument('--split', default=None, help='split kept with --stems-json')
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

    if args.sets:
        return run_sets(args)
    if args.images is None or args.masks is None:
        print('eval-crack: --images and --masks are required (or --sets)', file=sys.stderr)
        return 2
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
