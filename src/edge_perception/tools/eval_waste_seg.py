"""`edge-perception eval-waste-seg`: pooled per-label IoU and mIoU of the waste segmenter.

    edge-perception eval-waste-seg --images DIR --masks DIR --json OUT.json \
        [--model PATH] [--threads N] [--material-model PATH|none] [--material-exponent A] \
        [--edge-refinement on|off] [--material-crop box|masked] [--compare-to BASE.json]

DIR of images (PNG/JPG, RGB) and DIR of same-stem PNG label maps (values 0..6, the labels of
`edge_perception.core.waste_segmentation.LABELS`). Intersection and union are summed over all
images before the IoU of each label; `miou` is the mean over the 7 labels (a label whose union is
empty in the whole set has IoU null and is left out of the mean). `ms_per_frame_p50` is the
median of the segmenter's own timing (preprocessing, inference, upsampling) plus the region
material refinement.

By default the labels are scored as the segmentation node publishes them: each region relabelled
with the material the crop classifier and the segmenter agree on (core.region_materials, the
shipped material classifier, exponent 4, regions of >= 400 px as the node's default
`min_region_area_px`, regions the segmenter gives one material >= 0.8 keep their label).
`--material-model none` scores the segmenter alone. Edge refinement (the guided filter of
core.waste_segmentation) is on, as in the node; `--edge-refinement off` scores without it.

Each image's confusion matrix is kept in the JSON (`per_image_confusion`, by stem), so two
reports of the same images can be compared: `--compare-to BASE.json` adds how far this
configuration's mIoU is from BASE's, with a paired bootstrap over the images (1000 resamples):
the difference, its standard deviation and a 90 % interval. On 200 composites that standard
deviation is about 0.006-0.009 mIoU, so differences below about twice that are noise.
"""
import json
from pathlib import Path
import sys
import time

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp')


class EvalWasteSegDataError(ValueError):
    """The image/mask folders are missing, empty, or an image has no usable mask."""


def list_pairs(images_dir, masks_dir):
    """Return [(image path, mask path)] sorted by stem; a missing mask raises, naming it."""
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise EvalWasteSegDataError(f'folder not found: {folder}')
    images = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise EvalWasteSegDataError(f'no images in {images_dir} (looked for {IMAGE_SUFFIXES})')
    pairs = []
    for image in images:
        mask = masks_dir / f'{image.stem}.png'
        if not mask.is_file():
            raise EvalWasteSegDataError(f'no mask {mask} for image {image}')
        pairs.append((image, mask))
    return pairs


def read_pair(image_path, mask_path):
    """Return (RGB uint8 HxWx3, labels uint8 HxW); size mismatch and labels > 6 raise."""
    import cv2
    import numpy as np
    from edge_perception.core.waste_segmentation import LABELS

    bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise EvalWasteSegDataError(f'cannot read image {image_path}')
    mask = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise EvalWasteSegDataError(f'cannot read mask {mask_path}')
    if mask.ndim != 2:
        raise EvalWasteSegDataError(
            f'mask {mask_path} must be a single-channel label image, got shape {mask.shape}')
    if mask.shape != bgr.shape[:2]:
        raise EvalWasteSegDataError(
            f'mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} but image {image_path} is '
            f'{bgr.shape[1]}x{bgr.shape[0]}')
    if mask.size and int(mask.max()) >= len(LABELS):
        raise EvalWasteSegDataError(
            f'mask {mask_path} has label {int(mask.max())}; labels are 0..{len(LABELS) - 1}')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), mask.astype(np.uint8)


def evaluate_dir(segmenter, images_dir, masks_dir, refiner=None):
    """Segment (and refine, when given a RegionMaterialRefiner) every image; pooled metrics."""
    import numpy as np
    from edge_perception.core.waste_segmentation import confusion_matrix, LABELS, pooled_iou

    pairs = list_pairs(images_dir, masks_dir)
    confusion = np.zeros((len(LABELS), len(LABELS)), np.int64)
    per_image = {}
    times = []
    for image_path, mask_path in pairs:
        rgb, truth = read_pair(image_path, mask_path)
        started = time.perf_counter()
        result = segmenter.segment(rgb)
        labels = result.labels
        if refiner is not None:
            labels = refiner.refine(rgb, labels, result.confidence, result.probabilities).labels
        times.append((time.perf_counter() - started) * 1e3)
        image_confusion = confusion_matrix(truth, labels)
        per_image[image_path.stem] = image_confusion.tolist()
        confusion += image_confusion
    metrics = pooled_iou(confusion)
    return {'miou': metrics['miou'], 'iou': metrics['iou'], 'images': len(pairs),
            'model': str(segmenter.model_path),
            'component_vote': getattr(segmenter, 'component_vote', None),
            'edge_refinement': getattr(segmenter, 'edge_refinement', None),
            'material_model': (str(refiner.classifier.model_path) if refiner else None),
            'material_exponent': (refiner.exponent if refiner else None),
            'material_vote_below': (refiner.vote_below if refiner else None),
            'material_crop': (refiner.crop_mode if refiner else None),
            'ms_per_frame_p50': float(np.median(times)),
            'confusion_matrix': confusion.tolist(),
            'confusion_matrix_axes': 'rows = true label, columns = predicted label',
            'labels': list(LABELS), 'per_image_confusion': per_image}


def compare_reports(metrics, base):
    """Paired bootstrap of metrics' mIoU minus base's, over the images both scored."""
    from edge_perception.core.waste_segmentation import paired_bootstrap_miou

    ours, theirs = metrics.get('per_image_confusion'), base.get('per_image_confusion')
    if not theirs:
        raise EvalWasteSegDataError('the base report has no per_image_confusion (written by an '
                                    'older eval-waste-seg): score it again')
    if set(ours) != set(theirs):
        missing = sorted(set(ours) ^ set(theirs))
        raise EvalWasteSegDataError(
            f'the reports scored different images ({len(missing)} differ, e.g. {missing[:3]})')
    stems = sorted(ours)
    return paired_bootstrap_miou([ours[s] for s in stems], [theirs[s] for s in stems])


def format_table(metrics):
    """Short text table of per-label IoU."""
    lines = [f'{metrics["images"]} images, mIoU {metrics["miou"]:.4f}, '
             f'{metrics["ms_per_frame_p50"]:.1f} ms per frame (median)',
             f'{"label":<12}{"IoU":>8}']
    for label, value in metrics['iou'].items():
        lines.append(f'{label:<12}{value:>8.4f}' if value is not None else f'{label:<12}{"-":>8}')
    return '\n'.join(lines)


def run(args):
    """Evaluate, write the JSON report and print the table; returns the exit code."""
    from edge_perception.core.waste_segmentation import WasteSegmenter

    try:
        options = {}
        for option in ('component_vote', 'edge_refinement'):
            value = getattr(args, option, None)
            if value is not None:
                options[option] = value == 'on'
        segmenter = WasteSegmenter(args.model, intra_op_num_threads=args.threads,
                                   **options)
        refiner = None
        material_model = getattr(args, 'material_model', '')
        if material_model != 'none':
            from edge_perception.core import region_materials
            from edge_perception.core.material import MaterialClassifier
            classifier = MaterialClassifier(material_model or None,
                                            intra_op_num_threads=args.threads)
            # Options left unset keep the refiner's defaults, which are the node's.
            given = {'exponent': getattr(args, 'material_exponent', None),
                     'vote_below': getattr(args, 'material_vote_below', None),
                     'min_area_px': getattr(args, 'min_region_area_px', None),
                     'crop_mode': getattr(args, 'material_crop', None)}
            refiner = region_materials.RegionMaterialRefiner(
                classifier, segmenter.class_names,
                **{k: v for k, v in given.items() if v is not None})
        base = None
        compare_to = getattr(args, 'compare_to', None)
        if compare_to is not None:
            try:
                base = json.loads(Path(compare_to).read_text(encoding='utf-8'))
            except (OSError, json.JSONDecodeError) as error:
                raise EvalWasteSegDataError(f'cannot read {compare_to}: {error}') from None
        metrics = evaluate_dir(segmenter, args.images, args.masks, refiner)
        if base is not None:
            metrics['compare'] = {'base': str(compare_to), **compare_reports(metrics, base)}
    except ValueError as error:
        print(f'eval-waste-seg: error: {error}', file=sys.stderr)
        return 2
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(metrics, indent=1) + '\n', encoding='utf-8')
    print(format_table(metrics))
    if 'compare' in metrics:
        c = metrics['compare']
        low, high = c['interval_90']
        print(f'\nmIoU minus {c["base"]}: {c["difference"]:+.4f} (paired bootstrap over '
              f'{c["images"]} images: sd {c["sd"]:.4f}, 90 % interval {low:+.4f} to {high:+.4f})')
    print(f'\nwrote {args.json}')
    return 0


def register(subparsers):
    """Add the `eval-waste-seg` sub-command."""
    parser = subparsers.add_parser(
        'eval-waste-seg', help='pooled IoU of the waste segmenter on image/mask folders',
        description=__doc__.split('\n\n')[0])
    parser.add_argument('--images', type=Path, required=True, help='folder of RGB frames')
    parser.add_argument('--masks', type=Path, required=True,
                        help='folder of same-stem PNG label maps (0..6)')
    parser.add_argument('--json', type=Path, required=True, help='where to write the metrics')
    parser.add_argument('--model', type=Path, default=None,
                        help='ONNX model (default: the one shipped with the package)')
    parser.add_argument('--threads', type=int, default=1, help='onnxruntime intra-op threads')
    parser.add_argument('--component-vote', choices=('on', 'off'), default=None,
                        help="one material per connected item region (default: the runtime's)")
    parser.add_argument('--edge-refinement', choices=('on', 'off'), default=None,
                        help='guided-filter the label edges with the image (default: the '
                             "runtime's, on)")
    parser.add_argument('--material-model', default='',
                        help="crop classifier that relabels each region ('' = the shipped one, "
                             "'none' = the segmenter alone)")
    parser.add_argument('--material-exponent', type=float, default=None,
                        help="weight of the classifier's vote (default: the node's "
                             'material_exponent, 4)')
    parser.add_argument('--material-vote-below', type=float, default=None,
                        help='regions the segmenter is this sure of keep their material '
                             "(default: the node's material_vote_below, 0.8; 1 = classify "
                             'every region)')
    parser.add_argument('--material-crop', choices=('box', 'masked'), default=None,
                        help="what the classifier sees of a region (default: the node's "
                             'material_crop)')
    parser.add_argument('--compare-to', type=Path, default=None,
                        help='a report of the same images by another configuration: add the '
                             'mIoU difference with a paired bootstrap interval')
    parser.add_argument('--min-region-area-px', type=int, default=None,
                        help="smaller regions keep the segmenter's labels (default: the "
                             "node's min_region_area_px, 400)")
    parser.set_defaults(func=run)
