#!/usr/bin/env python3
"""Print the material classifier's CPU latency per call for a few batch sizes.

    python training/material/bench_material.py [--model PATH] [--threads 1] [--repeats 50]

Uses the bundled TrashNet samples (256 x 341 RGB) so the figure includes preprocessing.
Speed is reported, never asserted: it depends on the machine and its load.
"""
import argparse
from pathlib import Path
import statistics
import time

from edge_perception.core.material import MaterialClassifier
import numpy as np
from PIL import Image

SAMPLES = Path(__file__).resolve().parents[2] / 'src' / 'edge_perception' / 'data' / \
    'samples' / 'trashnet'


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', type=Path, default=None)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=50)
    parser.add_argument('--batch-sizes', type=str, default='1,4,12')
    args = parser.parse_args()

    classifier = MaterialClassifier(args.model, intra_op_num_threads=args.threads)
    images = []
    for path in sorted(SAMPLES.glob('*/*.jpg')):
        with Image.open(path) as image:
            images.append(np.asarray(image.convert('RGB')))
    print(f'model {classifier.model_path} ({classifier.model_path.stat().st_size / 1e6:.2f} MB), '
          f'input {classifier.input_size} px, {args.threads} thread(s)')
    for batch_size in (int(b) for b in args.batch_sizes.split(',')):
        batch = [images[i % len(images)] for i in range(batch_size)]
        classifier.classify(batch)  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            classifier.classify(batch)
            times.append(time.perf_counter() - start)
        median = statistics.median(times) * 1e3
        print(f'batch {batch_size:>3}: median {median:7.2f} ms per call, '
              f'{median / batch_size:6.2f} ms per crop, '
              f'p90 {np.percentile(times, 90) * 1e3:7.2f} ms')


if __name__ == '__main__':
    main()
