"""`edge-perception eval-material`: top-1, per-class recall and confusion of the material model.

    edge-perception eval-material --data DIR --json OUT.json [--model PATH]

DIR holds one folder per class, named as the model's classes (`<class>/*.jpg`); folders for only
some of the classes are fine, a folder the model does not know is an error.
"""
import json
from pathlib import Path
import sys

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')


class EvalDataError(ValueError):
    """The evaluation folder is missing, empty or names classes the model does not have."""


def list_labelled_images(data_dir, class_names):
    """Return [(path, class index)] for data_dir/<class>/*, sorted; unknown folders raise."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise EvalDataError(f'evaluation folder not found: {data_dir}')
    folders = sorted(d for d in data_dir.iterdir() if d.is_dir())
    unknown = [d.name for d in folders if d.name not in class_names]
    if unknown:
        raise EvalDataError(
            f'{data_dir}: folders {unknown} are not model classes {list(class_names)}')
    items = []
    for folder in folders:
        index = class_names.index(folder.name)
        items += [(p, index) for p in sorted(folder.iterdir())
                  if p.suffix.lower() in IMAGE_SUFFIXES]
    if not items:
        raise EvalDataError(f'no images in {data_dir}/<class>/ (looked for {IMAGE_SUFFIXES})')
    return items


def evaluate_folder(classifier, data_dir, batch_size=32):
    """Classify every image under data_dir/<class>/ and return the metrics as a dict."""
    import numpy as np
    from PIL import Image

    names = classifier.class_names
    items = list_labelled_images(data_dir, names)
    confusion = np.zeros((len(names), len(names)), dtype=np.int64)
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        images = []
        for path, _ in chunk:
            with Image.open(path) as image:
                images.append(np.asarray(image.convert('RGB')))
        for (_, truth), result in zip(chunk, classifier.classify(images)):
            confusion[truth, names.index(result.material)] += 1
    per_class_n = confusion.sum(axis=1)
    recall = {name: (float(confusion[i, i] / per_class_n[i]) if per_class_n[i] else None)
              for i, name in enumerate(names)}
    return {
        'model': str(classifier.model_path),
        'data': str(data_dir),
        'n_images': int(confusion.sum()),
        'top1': float(np.trace(confusion) / confusion.sum()),
        'class_names': list(names),
        'per_class_n': {name: int(n) for name, n in zip(names, per_class_n)},
        'per_class_recall': recall,
        'confusion_matrix': confusion.tolist(),
        'confusion_matrix_axes': 'rows = true class, columns = predicted class',
    }


def format_table(metrics):
    """Return a short text table of per-class recall and the confusion matrix."""
    names = metrics['class_names']
    width = max(9, max(len(n) for n in names) + 1)
    lines = [f'{metrics["n_images"]} images, top-1 {metrics["top1"]:.4f}',
             'rows: true class; columns: predicted class',
             f'{"class":<{width}}{"n":>5}{"recall":>8}  ' + ' '.join(f'{n[:6]:>6}' for n in names)]
    for i, name in enumerate(names):
        recall = metrics['per_class_recall'][name]
        recall_text = f'{recall:.3f}' if recall is not None else '-'
        row = ' '.join(f'{v:>6d}' for v in metrics['confusion_matrix'][i])
        lines.append(f'{name:<{width}}{metrics["per_class_n"][name]:>5}{recall_text:>8}  {row}')
    return '\n'.join(lines)


def run(args):
    """Evaluate, write the JSON report and print the table; returns the exit code."""
    from edge_perception.core.material import MaterialClassifier

    try:
        classifier = MaterialClassifier(args.model, intra_op_num_threads=args.threads)
        metrics = evaluate_folder(classifier, args.data, args.batch_size)
    except ValueError as error:
        print(f'eval-material: error: {error}', file=sys.stderr)
        return 2
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(metrics, indent=1) + '\n', encoding='utf-8')
    print(format_table(metrics))
    print(f'\nwrote {args.json}')
    return 0


def register(subparsers):
    """Add the `eval-material` sub-command."""
    parser = subparsers.add_parser(
        'eval-material', help='evaluate the material classifier on <class>/*.jpg folders',
        description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', type=Path, required=True,
                        help='folder with one sub-folder of images per class')
    parser.add_argument('--json', type=Path, required=True, help='where to write the metrics')
    parser.add_argument('--model', type=Path, default=None,
                        help='ONNX model (default: the one shipped with the package)')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--threads', type=int, default=1, help='onnxruntime intra-op threads')
    parser.set_defaults(func=run)
