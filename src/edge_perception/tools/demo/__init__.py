"""`edge-perception demo`: the main job on the bundled default, no camera needed.

Starts the composed graph (detector, waste_segmentation, tracker, time_to_impact, haptic_alert,
crack_segmentation, markers: real nodes over DDS, params from config/perception.yaml,
config/crack_inspection.yaml and config/demo.yaml) and replays the bundled scenes as rosbag2
files at their recorded pace:
1. collision scenarios (synthetic depth: approach, cross, enter, recede, ...; and depth
   rendered by MuJoCo: a thrown ball, a drone crossing then turning towards the camera),
2. the waste belt (TrashNet composites with registered depth and labels) through the detector
   and tracker, and through waste_segmentation (per-pixel materials, a detection per region),
3. crack images (DeepCrack samples on a flat surface at 0.5 m).
Writes out/demo/: report.md, collision_tti.png, waste_frames.png, crack_overlays.png,
alerts.csv and figures.json, and prints a summary.

This module runs the scenes (orchestration); `plots` draws the pictures and `report` writes the
report, the CSV and the JSON. The figures come from edge_perception.harness (the collision
replay's and the waste chain's, the same code the integration tests assert on).
"""
import pathlib

from edge_perception.tools.demo.plots import draw_cracks, draw_waste
from edge_perception.tools.demo.report import describe, write_report

DEMO_SCENARIOS = ('approach', 'cross', 'enter', 'recede', 'walk_to_wall', 'approach_irregular',
                  'thrown_ball', 'drone_cross_turn')   # the last two: rendered (MuJoCo) depth
DEMO_NODES = ('detector', 'waste_segmentation', 'tracker', 'time_to_impact', 'haptic_alert',
              'crack_segmentation', 'markers')
DEMO_PARAMS = ('perception.yaml', 'crack_inspection.yaml', 'demo.yaml')


def register(subparsers):
    """Add the `demo` sub-command."""
    parser = subparsers.add_parser(
        'demo', help='run the bundled demo scenarios through the node graph and write a report')
    parser.add_argument('--out', type=pathlib.Path, default=pathlib.Path('out/demo'),
                        help='output folder (default out/demo)')
    parser.add_argument('--scenarios', nargs='+', default=list(DEMO_SCENARIOS),
                        help=f'collision scenarios (default: {" ".join(DEMO_SCENARIOS)})')
    parser.add_argument('--params-file', type=pathlib.Path, action='append', default=None,
                        help='params files of the composed graph (default: '
                             f'{", ".join("config/" + p for p in DEMO_PARAMS)})')
    parser.add_argument('--skip', nargs='*', default=[], choices=['collision', 'waste', 'crack'],
                        help='chains to leave out')
    parser.set_defaults(func=run)


def default_config(name):
    """Path of a bundled config file (source tree or installed share/)."""
    package = pathlib.Path(__file__).resolve().parents[2]     # .../edge_perception
    for candidate in (package.parents[1] / 'config' / name,
                      package.parents[3] / 'share' / 'edge_perception' / 'config' / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f'config/{name} not found next to the package')


def run(args):
    """Run the demo scenes through the composed graph and write the report."""
    from edge_perception.harness.runner import NodeGraph

    out = args.out
    (out / 'bags').mkdir(parents=True, exist_ok=True)
    params = args.params_file or [default_config(name) for name in DEMO_PARAMS]
    print(f'[demo] composed graph: {" ".join(DEMO_NODES)}')
    graph = NodeGraph(list(DEMO_NODES), params).spin_in_background()
    sections = {}
    try:
        counter = _output_counter(graph)
        if 'collision' not in args.skip:
            sections['collision'] = run_collision(graph, out, args.scenarios)
        if 'waste' not in args.skip:
            sections['waste'] = run_waste(graph, out)
        if 'crack' not in args.skip:
            sections['crack'] = run_crack(graph, out)
        counts = {topic: len(records) for topic, records in counter.records.items()}
        failures = graph.failures
    finally:
        graph.shutdown()
    write_report(out, sections, counts, failures)
    print('[demo] published: ' + ', '.join(f'{t} {n}' for t, n in counts.items()))
    print(f'[demo] report: {out / "report.md"}')
    return 0


def _output_counter(graph):
    from diagnostic_msgs.msg import DiagnosticArray
    from edge_perception.harness.replay import Probe
    from edge_perception.msg import (CollisionAlert, CrackSegmentation, DetectionArray,
                                     HapticCommand)
    from edge_perception.nodes import vision_msgs_bridge
    from edge_perception.nodes.common import ALERT_QOS, DATA_QOS, SENSOR_QOS
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import Image
    from visualization_msgs.msg import MarkerArray
    topics = {
        'collision_alert': (CollisionAlert, ALERT_QOS),
        'haptic_command': (HapticCommand, ALERT_QOS),
        'detections': (DetectionArray, DATA_QOS), 'tracks': (DetectionArray, DATA_QOS),
        'crack/segmentation': (CrackSegmentation, DATA_QOS),
        'markers': (MarkerArray, QoSProfile(depth=10)),
        '/diagnostics': (DiagnosticArray, QoSProfile(depth=50)),
        'crack/mask': (Image, SENSOR_QOS)}
    if vision_msgs_bridge.available():   # what other ROS stacks and RViz plugins consume
        from vision_msgs.msg import Detection2DArray, Detection3DArray
        topics.update({'detections_2d': (Detection2DArray, DATA_QOS),
                       'detections_3d': (Detection3DArray, DATA_QOS),
                       'tracks_2d': (Detection2DArray, DATA_QOS)})
    return graph.add_node(Probe(graph.context, topics, name='demo_counter'))


def run_collision(graph, out, names):
    """Replay the collision scenarios; returns [(scenario, figures, alerts, commands)]."""
    from edge_perception.bags import write_scenario_bag
    from edge_perception.harness.rendered_scenes import load_rendered_scene, RENDERED_SCENES
    from edge_perception.harness.scenarios import scenario_by_name
    from edge_perception.harness.replay import collision_probe, replay_collision_scenario

    print('[demo] 1/3 collision alerts: depth scenarios -> time_to_impact -> haptic_alert')
    probe = collision_probe(graph)
    runs = []
    for name in names:
        scenario = (load_rendered_scene(name) if name in RENDERED_SCENES else
                    scenario_by_name(name))
        bag = write_scenario_bag(scenario, out / 'bags' / name)
        figures, alerts, commands = replay_collision_scenario(
            graph, probe, scenario, bag, ['/depth/image_raw', '/depth/camera_info'])
        runs.append((scenario, figures, alerts, commands))
        print(f'[demo] {describe(figures, alerts)}')
    return runs


def run_waste(graph, out):
    """Replay the waste belt; returns the waste figures and the frames to draw."""
    from edge_perception.conversions import stamp_to_seconds
    from edge_perception.harness.replay import replay_and_collect
    from edge_perception.harness.samples import (waste_belt_frames, waste_camera,
                                                 write_color_depth_bag)
    from edge_perception.harness.waste_figures import WasteScore
    from edge_perception.nodes.common import DATA_QOS
    from edge_perception.msg import DetectionArray

    print('[demo] 2/3 waste: RGB-D belt -> detector (+ material, 3D, pick point) -> tracker; '
          'and -> waste_segmentation')
    detector = graph.nodes['detector']
    if detector.detector is None:
        print(f'[demo]   detector not loaded: {detector.model_error}')
        return {'error': detector.model_error}
    frames = waste_belt_frames()
    width, height, k = waste_camera()
    bag = write_color_depth_bag(out / 'bags' / 'waste_belt', frames, width, height, k)
    seg_probe = _segmentation_probe(graph)
    tracks, offset = replay_and_collect(
        graph, bag, ['/camera/image_raw', '/camera/camera_info',
                     '/camera/depth_registered/image_raw'],
        'tracks', DetectionArray, frames[-1][0], DATA_QOS, timeout_s=10.0, name='demo_waste')
    by_stamp = {round(f[0] + offset, 6): f for f in frames}
    segmentation = _segmentation_figures(seg_probe, by_stamp, k) if seg_probe else None
    if seg_probe:
        graph.remove_node(seg_probe)
    score = WasteScore(k)
    drawn = {}
    for msg in tracks:
        frame = by_stamp.get(round(stamp_to_seconds(msg.header.stamp), 6))
        if frame is None:
            continue
        _, rgb, _, truth = frame
        dets = list(msg.detections)
        score.add(truth, dets)
        drawn[truth[0]['sequence'] if truth else len(drawn)] = (rgb, dets)
    figures = {'frames': len(frames), 'track_messages': len(tracks), **score.figures()}
    matched, total = figures['matched'], figures['truth_objects']
    print(f"[demo]   recall {figures['recall_iou50']:.2f} ({matched}/{total} objects in "
          f"{len(tracks)} frames), {figures['objects_tracked']} tracks, "
          f"{figures['id_switches']} ID switches, 3D error median "
          f"{figures['position_error_mm_median']:.0f} mm, material right "
          f"{100 * figures['material_accuracy']:.0f}%")
    draw_waste(out / 'waste_frames.png', list(drawn.values()))
    if segmentation is not None:
        figures['segmentation'] = segmentation
        print(f"[demo]   segmentation: recall {segmentation['recall_iou50']:.2f} "
              f"({segmentation['matched']}/{segmentation['truth_objects']} objects, a region "
              f"per item), material right {100 * segmentation['material_accuracy']:.0f}%, 3D "
              f"error median {segmentation['position_error_mm_median']:.0f} mm, "
              f"{segmentation['label_images']} label images, "
              f"{segmentation['ms_per_frame_p50']:.0f} ms per frame")
    return figures


def _segmentation_probe(graph):
    """Return a probe on waste_segmentation's outputs (None: node or model absent)."""
    from edge_perception.harness.replay import Probe, wait_until
    from edge_perception.msg import DetectionArray
    from edge_perception.nodes.common import DATA_QOS, SENSOR_QOS
    from sensor_msgs.msg import Image
    node = graph.nodes.get('waste_segmentation')
    if node is None or node.detector is None:
        if node is not None:
            print(f'[demo]   waste_segmentation not loaded: {node.model_error}')
        return None
    topics = {node.params['detections_topic']: (DetectionArray, DATA_QOS),
              node.params['label_image_topic']: (Image, SENSOR_QOS)}
    probe = graph.add_node(Probe(graph.context, topics, name='demo_segmentation',
                                 namespace=graph.namespace))
    wait_until(lambda: all(probe.matched_publishers(t) > 0 for t in topics), 15.0)
    return probe


def _segmentation_figures(probe, by_stamp, k):
    """Region figures of waste_segmentation against the belt labels (no tracking)."""
    import numpy as np
    from edge_perception.conversions import stamp_to_seconds
    from edge_perception.harness.waste_figures import WasteScore
    detections_topic, labels_topic = list(probe.records)
    score = WasteScore(k)
    inference = []
    for msg, _ in probe.snapshot(detections_topic):
        frame = by_stamp.get(round(stamp_to_seconds(msg.header.stamp), 6))
        if frame is not None:
            score.add(frame[3], list(msg.detections))
            inference.append(msg.inference_ms)
    return {**score.figures(), 'label_images': len(probe.snapshot(labels_topic)),
            'ms_per_frame_p50': float(np.median(inference)) if inference else float('nan')}


def run_crack(graph, out):
    """Replay the crack images; returns per-image figures."""
    from edge_perception.conversions import image_to_numpy, stamp_to_seconds
    from edge_perception.core.crack import segmentation_metrics
    from edge_perception.harness.replay import replay_and_collect
    from edge_perception.harness.samples import crack_frames, write_crack_bag
    from edge_perception.nodes.common import DATA_QOS
    from edge_perception.msg import CrackSegmentation

    print('[demo] 3/3 cracks: inspection images + depth -> crack_segmentation (top-2 MoE)')
    node = graph.nodes['crack_segmentation']
    if node.segmenter is None:
        print(f'[demo]   crack models not loaded: {node.model_error}')
        return {'error': node.model_error}
    frames = crack_frames(depth_m=0.5, fx=1000.0)
    bag = write_crack_bag(out / 'bags' / 'cracks', frames, prefix='/inspection')
    results, offset = replay_and_collect(
        graph, bag, ['/inspection/image_raw', '/inspection/camera_info',
                     '/inspection/depth_registered/image_raw'],
        'crack/segmentation', CrackSegmentation, frames[-1][0], DATA_QOS, name='demo_crack')
    by_stamp = {round(f[0] + offset, 6): f for f in frames}
    rows, panels = [], []
    for msg in results:
        frame = by_stamp.get(round(stamp_to_seconds(msg.header.stamp), 6))
        if frame is None:
            continue
        _, rgb, _, gt, name, _ = frame
        mask = image_to_numpy(msg.mask) > 127
        iou = segmentation_metrics(mask, gt)['iou']
        rows.append({'image': name, 'iou': iou, 'length_mm': msg.length_mm,
                     'max_width_mm': msg.max_width_mm, 'mean_width_mm': msg.mean_width_mm,
                     'severity': msg.severity_label,
                     'experts': ', '.join(f'{e} {w:.2f}' for e, w in
                                          zip(msg.experts_used, msg.expert_weights)),
                     'inference_ms': msg.inference_ms})
        panels.append((rgb, mask, gt, f'{name}: IoU {iou:.2f}, max width '
                                      f'{msg.max_width_mm:.1f} mm -> {msg.severity_label}'))
        experts = rows[-1]['experts']
        print(f'[demo]   {name}: IoU {iou:.2f}, length {msg.length_mm:.0f} mm, max width '
              f'{msg.max_width_mm:.2f} mm -> {msg.severity_label} ({experts})')
    draw_cracks(out / 'crack_overlays.png', panels)
    return {'images': rows}
