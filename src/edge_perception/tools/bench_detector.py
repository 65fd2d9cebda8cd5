"""`edge-perception bench-detector`: inference speed of the waste detector per backend.

    edge-perception bench-detector --json OUT.json [--model PATH] [--backends pt,onnx,engine]
                                   [--seconds 60] [--threads N]

For each backend the model file with that suffix next to --model is loaded through the runtime
(`core.detector.YoloDetector`) and run back to back on the bundled sample frames for --seconds
(after a warm-up). Reported per backend: frames, mean inference ms, FPS, inferences per minute,
latency p50/p99 (wall time of detect(): pre-process + model + NMS). Backends that cannot run
here (no file, no CUDA for TensorRT, load failure) are listed with the reason.

Then the node (`--node-backend`): frames through the real detector node over DDS, closed loop;
`node_over_inference_p50` = node latency p50 / inference p50 (the node's overhead, the issue's
figure), and the transport floor: an echo node in the detector's place, same messages, no work.
"""
import json
from pathlib import Path
import platform
import sys
import time

BACKEND_SUFFIX = {'pt': '.pt', 'onnx': '.onnx', 'engine': '.engine'}


def default_model_path():
    """Return the shipped waste detector (.pt; the other backends sit next to it)."""
    from edge_perception.core.detector import DEFAULT_MODEL_DIR
    return DEFAULT_MODEL_DIR / 'waste_detector.pt'


def sample_frames():
    """RGB uint8 frames of the bundled waste samples."""
    import numpy as np
    from PIL import Image
    from edge_perception.core.detector import SAMPLES_DIR
    frames = []
    for path in sorted(SAMPLES_DIR.glob('*.jpg')):
        with Image.open(path) as image:
            frames.append(np.asarray(image.convert('RGB')))
    return frames


def bench_backend(detector, frames, seconds, warmup=5):
    """Run detector on frames (cycled) for `seconds`; return the timing summary dict."""
    import numpy as np
    for i in range(warmup):
        detector.detect(frames[i % len(frames)])
    latencies = []
    start = time.perf_counter()
    while True:
        latencies.append(detector.detect(frames[len(latencies) % len(frames)]).inference_ms)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
    lat = np.asarray(latencies)
    return {
        'available': True,
        'frames': int(lat.size),
        'elapsed_s': round(elapsed, 3),
        'mean_ms': round(float(lat.mean()), 3),
        'fps': round(lat.size / elapsed, 2),
        'inferences_per_min': round(lat.size / elapsed * 60.0, 1),
        'p50_ms': round(float(np.percentile(lat, 50)), 3),
        'p99_ms': round(float(np.percentile(lat, 99)), 3),
    }


def register(subparsers):
    """Add the `bench-detector` sub-command."""
    parser = subparsers.add_parser(
        'bench-detector', help='inference speed of the waste detector per backend',
        description=__doc__.split('\n')[0])
    parser.add_argument('--json', type=Path, required=True, help='write the figures here')
    parser.add_argument('--model', type=Path, default=None,
                        help='model path; the backends use the same stem with .pt/.onnx/.engine '
                             '(default: the shipped waste_detector)')
    parser.add_argument('--backends', default='pt,onnx,engine',
                        help='comma-separated subset of pt,onnx,engine')
    parser.add_argument('--seconds', type=float, default=60.0, help='timed run per backend')
    parser.add_argument('--threads', type=int, default=None,
                        help='CPU threads for torch and ONNX Runtime (default: the libraries '
                             'defaults, one per core)')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda:N' for pt and onnx")
    parser.add_argument('--node-backend', default='onnx',
                        help='backend whose file the detector node runs for the node-overhead '
                             "figures ('none' skips them)")
    parser.add_argument('--node-frames', type=int, default=100,
                        help='frames sent through the node (closed loop)')
    parser.add_argument('--node-material', default='none',
                        help="the node's material_model_path: 'none' (default: the detector "
                             "alone) or '' (the shipped classifier, one batch per frame)")
    parser.set_defaults(func=run)


def run(args):
    """Benchmark each requested backend and write the JSON; return the exit code."""
    backends = [b.strip() for b in args.backends.split(',') if b.strip()]
    unknown = [b for b in backends if b not in BACKEND_SUFFIX]
    if unknown or not backends:
        print(f'bench-detector: unknown backends {unknown}; choose from {list(BACKEND_SUFFIX)}',
              file=sys.stderr)
        return 2
    if args.seconds <= 0:
        print('bench-detector: --seconds must be > 0', file=sys.stderr)
        return 2
    import os
    import torch
    from edge_perception.core.detector import DetectorError, YoloDetector

    base = Path(args.model) if args.model else default_model_path()
    frames = sample_frames()
    if not frames:
        print('bench-detector: no sample frames found', file=sys.stderr)
        return 2
    report = {
        'model': str(base.with_suffix('')),
        'seconds_per_backend': args.seconds,
        'sample_frames': [f'{f.shape[1]}x{f.shape[0]}' for f in frames],
        'host': {'machine': platform.machine(), 'processor': platform.processor(),
                 'cpu_count': os.cpu_count(), 'threads_requested': args.threads,
                 'cuda': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        'backends': {},
    }
    for backend in backends:
        path = base.with_suffix(BACKEND_SUFFIX[backend])
        if not path.is_file():
            report['backends'][backend] = {'available': False, 'reason': f'no file {path}'}
            continue
        try:
            detector = YoloDetector(path, device=args.device,
                                    cpu_threads=args.threads if backend != 'engine' else None)
        except DetectorError as exc:
            report['backends'][backend] = {'available': False, 'reason': str(exc)}
            continue
        figures = bench_backend(detector, frames, args.seconds)
        figures.update(model=str(path), imgsz=detector.imgsz, device=detector.device)
        report['backends'][backend] = figures
        print(f'{backend}: {figures["mean_ms"]:.1f} ms mean, {figures["fps"]:.1f} FPS, '
              f'p50 {figures["p50_ms"]:.1f} ms, p99 {figures["p99_ms"]:.1f} ms')
    for backend, figures in report['backends'].items():
        if not figures['available']:
            print(f'{backend}: unavailable: {figures["reason"]}')
    if args.node_backend != 'none':
        path = base.with_suffix(BACKEND_SUFFIX.get(args.node_backend, '.onnx'))
        if path.is_file():
            report['node'] = bench_node(path, args.node_frames, args.threads, args.device,
                                        material=args.node_material)
            node = report['node']
            print(f"node ({path.name}, {node['frames']} frames, material "
                  f"{node['material']}): inference p50 {node['inference_ms_p50']:.1f} ms, "
                  f"node latency p50 {node['node_latency_ms_p50']:.1f} ms "
                  f"(x{node['node_over_inference_p50']:.2f}), p99 "
                  f"{node['node_latency_ms_p99']:.1f} ms; node callback p50 "
                  f"{node['callback_ms_p50']:.1f} ms (x{node['callback_over_inference_p50']:.2f}"
                  ' of inference)')
        else:
            report['node'] = {'available': False, 'reason': f'no file {path}'}
        report['transport_floor'] = bench_node(None, args.node_frames, None, 'cpu', echo=True)
        floor = report['transport_floor']['latency_ms_p50']
        print(f'transport floor (an echo node in place of the detector, same inputs): p50 '
              f'{floor:.2f} ms, p99 {report["transport_floor"]["latency_ms_p99"]:.2f} ms')
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


def bench_node(model_path, frames_to_send, threads, device, material='none', echo=False):
    """Node overhead: frames through the real detector node over DDS, closed loop.

    Each sample frame (rgb8 + registered 16UC1 depth + camera info, stamped now) is published
    and the next one only after its DetectionArray arrived, so no queue inflates the latency.
    inference_ms comes from the node's own DetectionArray.inference_ms of the same frames.
    With echo=True an `EchoNode` takes the detector's place: it receives the same inputs the
    same way and answers each image at once with an empty DetectionArray, so its latency is
    the floor that DDS and rclpy set for these messages on this machine, whatever the model.
    """
    import tempfile

    from edge_perception.conversions import numpy_to_image, stamp_to_seconds
    from edge_perception.nodes.common import DATA_QOS
    from edge_perception.harness.replay import Probe, wait_until
    from edge_perception.harness.runner import NodeGraph
    from edge_perception.harness.samples import waste_belt_frames, waste_camera
    from edge_perception.msg import DetectionArray
    import numpy as np
    from rclpy.node import Node
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import CameraInfo, Image

    width, height, k = waste_camera()
    frames = waste_belt_frames()[::8]
    with tempfile.TemporaryDirectory() as tmp:
        params = Path(tmp) / 'bench.yaml'
        params.write_text(
            '/**/detector:\n  ros__parameters:\n'
            f"    model_path: '{model_path}'\n    device: {device}\n"
            f"    material_model_path: '{material}'\n"
            + (f'    cpu_threads: {threads}\n' if threads else ''))
        graph = NodeGraph([] if echo else ['detector'], [params],
                          namespace='bench').spin_in_background()
        try:
            if echo:
                graph.add_node(EchoNode(graph.context))
            source = graph.add_node(Node('bench_camera', context=graph.context,
                                         namespace='bench'))
            qos = QoSProfile(depth=1)
            image_pub = source.create_publisher(Image, 'camera/image_raw', qos)
            depth_pub = source.create_publisher(Image, 'camera/depth_registered/image_raw', qos)
            info_pub = source.create_publisher(CameraInfo, 'camera/camera_info', qos)
            probe = graph.add_node(Probe(graph.context, {
                'detections': (DetectionArray, DATA_QOS)}, namespace='bench'))
            wait_until(lambda: image_pub.get_subscription_count() > 0, 30.0)
            info = CameraInfo(width=width, height=height, k=[float(v) for v in k])
            latencies, inference = [], []
            for i in range(frames_to_send + 5):
                _, rgb, depth, _ = frames[i % len(frames)]
                # Messages built before the stamp: a camera driver's own work is not the node's.
                depth_msg, image = numpy_to_image(depth, '16UC1'), numpy_to_image(rgb, 'rgb8')
                stamp = source.get_clock().now().to_msg()
                for msg, pub in ((info, info_pub), (depth_msg, depth_pub)):
                    msg.header.stamp = stamp
                    pub.publish(msg)
                image.header.stamp = stamp
                probe.clear()
                image_pub.publish(image)
                if not probe.wait_for(lambda r: r['detections'], 10.0):
                    continue
                out, received = probe.snapshot('detections')[0]
                if i < 5 or out.header.stamp != stamp:
                    continue     # warm-up frames
                latencies.append((received - stamp_to_seconds(stamp)) * 1e3)
                inference.append(out.inference_ms)
            callback = (None if echo else
                        graph.nodes['detector'].diagnostics.latency.summary())
        finally:
            graph.shutdown()
    lat = np.percentile(latencies, [50, 99])
    if echo:
        return {'available': True, 'frames': len(latencies), 'latency_ms_p50': float(lat[0]),
                'latency_ms_p99': float(lat[1])}
    inf = np.percentile(inference, [50, 99])
    return {'available': True, 'model': str(model_path), 'material': material,
            'frames': len(latencies), 'inference_ms_p50': float(inf[0]),
            'inference_ms_p99': float(inf[1]), 'node_latency_ms_p50': float(lat[0]),
            'node_latency_ms_p99': float(lat[1]),
            'node_over_inference_p50': float(lat[0] / inf[0]),
            # The node's own callback (conversion + detect + 3D + message building + publish),
            # last 200 frames: the rest of node_latency is DDS transport of the image and depth.
            'callback_ms_p50': float(callback['latency_ms.p50']),
            'callback_over_inference_p50': float(callback['latency_ms.p50']) / float(inf[0]),
            'callback_ms_p99': float(callback['latency_ms.p99'])}


def EchoNode(context):
    """Return a node that answers every image on camera/image_raw with an empty DetectionArray.

    It subscribes to depth and camera info too (sensor QoS, as the detector does) so the same
    messages cross DDS; nothing is computed.
    """
    from edge_perception.msg import DetectionArray
    from edge_perception.nodes.common import DATA_QOS, SENSOR_QOS
    from rclpy.node import Node
    from sensor_msgs.msg import CameraInfo, Image

    node = Node('detector', context=context, namespace='bench')
    pub = node.create_publisher(DetectionArray, 'detections', DATA_QOS)

    def on_image(msg):
        out = DetectionArray()
        out.header = msg.header
        pub.publish(out)

    node.create_subscription(Image, 'camera/image_raw', on_image, SENSOR_QOS)
    node.create_subscription(Image, 'camera/depth_registered/image_raw', lambda m: None,
                             SENSOR_QOS)
    node.create_subscription(CameraInfo, 'camera/camera_info', lambda m: None, SENSOR_QOS)
    return node
