"""`edge-perception bench-crack`: crack segmentation speed (frames/s) per expert and strategy.

    edge-perception bench-crack [--size 512] [--frames 50] [--json OUT] [--threads 2]
                                [--manifest moe.yaml] [--k 2]

The bundled crack samples, resized to --size x --size, are segmented back to back with
`core.moe.CrackSegmenter` on the CPU (onnxruntime, --threads intra-op threads) for each single
expert and for the hard, top-k and soft mixtures, after a warm-up of 3 frames. Reported per
configuration: mean, p50 and p90 of SegmentationResult.inference_ms (gate + experts incl.
pre/post-processing) and frames/s = frames / wall time of the loop.
"""
import json
import os
from pathlib import Path
import platform
import time


def sample_frames(size):
    """Return the bundled crack samples as RGB uint8, resized to size x size."""
    import cv2
    import numpy as np
    from PIL import Image

    folder = Path(__file__).resolve().parents[1] / 'data' / 'samples' / 'crack' / 'images'
    frames = []
    for path in sorted(folder.glob('*.jpg')):
        with Image.open(path) as image:
            rgb = np.asarray(image.convert('RGB'))
        frames.append(cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA))
    if not frames:
        raise ValueError(f'no sample images in {folder}')
    return frames


def bench(segmenter, frames, n_frames, warmup=3):
    """Segment n_frames (cycling through frames); return the timing summary."""
    import numpy as np

    for i in range(warmup):
        segmenter.segment(frames[i % len(frames)])
    latencies = []
    start = time.perf_counter()
    for i in range(n_frames):
        latencies.append(segmenter.segment(frames[i % len(frames)]).inference_ms)
    elapsed = time.perf_counter() - start
    lat = np.asarray(latencies)
    return {'frames': n_frames, 'elapsed_s': round(elapsed, 3),
            'fps': round(n_frames / elapsed, 2), 'mean_ms': round(float(lat.mean()), 2),
            'p50_ms': round(float(np.percentile(lat, 50)), 2),
            'p90_ms': round(float(np.percentile(lat, 90)), 2)}


def register(subparsers):
    """Add the `bench-crack` sub-command."""
    parser = subparsers.add_parser(
        'bench-crack', help='crack segmentation frames/s per expert and strategy',
        description=__doc__.split('\n')[0])
    parser.add_argument('--size', type=int, default=512, help='square frame side, px')
    parser.add_argument('--frames', type=int, default=50, help='timed frames per configuration')
    parser.add_argument('--json', type=Path, default=None, help='also write the figures here')
    parser.add_argument('--threads', type=int, default=2, help='onnxruntime intra-op threads')
    parser.add_argument('--manifest', default=None, help='moe.yaml (default: the shipped one)')
    parser.add_argument('--k', type=int, default=2, help='experts fused by topk')
    parser.set_defaults(func=run)


def run(args):
    """Benchmark and print (and optionally write) the figures; return the exit code."""
    import sys

    from edge_perception.core.moe import CrackSegmenter

    if args.size < 16 or args.frames < 1:
        print('bench-crack: --size must be >= 16 and --frames >= 1', file=sys.stderr)
        return 2
    try:
        frames = sample_frames(args.size)
        common = {'manifest': args.manifest, 'intra_op_num_threads': args.threads}
        names = CrackSegmenter(strategy='single', **common).manifest_experts
        configs = {f'single:{n}': {'strategy': 'single', 'expert': n} for n in names}
        configs.update({'hard': {'strategy': 'hard'},
                        f'topk(k={args.k})': {'strategy': 'topk', 'k': args.k},
                        'soft': {'strategy': 'soft'}})
        segmenters = {key: CrackSegmenter(**common, **cfg) for key, cfg in configs.items()}
    except ValueError as exc:
        print(f'bench-crack: {exc}', file=sys.stderr)
        return 2
    report = {'size': args.size, 'threads': args.threads,
              'host': {'machine': platform.machine(), 'cpu_count': os.cpu_count(),
                       'load_average_1min': os.getloadavg()[0]},
              'configurations': {}}
    for key, segmenter in segmenters.items():
        figures = bench(segmenter, frames, args.frames)
        report['configurations'][key] = figures
        print(f'{key:<16} {figures["fps"]:7.2f} FPS  mean {figures["mean_ms"]:7.1f} ms  '
              f'p50 {figures["p50_ms"]:7.1f} ms  p90 {figures["p90_ms"]:7.1f} ms')
    report['host']['load_average_1min_after'] = os.getloadavg()[0]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    return 0
