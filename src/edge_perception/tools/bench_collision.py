"""`edge-perception bench-collision`: end-to-end alert latency of the collision chain over DDS.

Replays scenario bags (640x480 16UC1 depth at 30 Hz, restamped to the wall clock like a live
sensor) through time_to_impact -> haptic_alert and measures:
- alert latency: depth header stamp -> CollisionAlert received by a probe node (every frame);
- haptic latency: depth header stamp -> HapticCommand received, for each escalation (the
  commands that matter: an escalation is never rate-limited).
The per-frame compute cost of the time-to-impact step alone is `edge-perception bench-tti`.
"""
import json
import pathlib

import numpy as np


def register(subparsers):
    """Add the `bench-collision` sub-command."""
    parser = subparsers.add_parser(
        'bench-collision', help='end-to-end alert latency of the collision chain over DDS')
    parser.add_argument('--repeats', type=int, default=5,
                        help='replays of each scenario (default 5)')
    parser.add_argument('--scenarios', nargs='+', default=['approach', 'cross'])
    parser.add_argument('--json', type=pathlib.Path, default=None, help='write figures here')
    parser.set_defaults(func=run)


def percentiles(values):
    """p50/p90/p99/max of a list (ms), rounded."""
    if not values:
        return {'n': 0}
    arr = np.asarray(values)
    return {'n': int(arr.size), 'p50': round(float(np.percentile(arr, 50)), 2),
            'p90': round(float(np.percentile(arr, 90)), 2),
            'p99': round(float(np.percentile(arr, 99)), 2), 'max': round(float(arr.max()), 2)}


def run(args):
    """Replay, measure, print a table and optionally write JSON."""
    import tempfile

    from edge_perception.bags import write_scenario_bag
    from edge_perception.harness.scenarios import scenario_by_name
    from edge_perception.harness.replay import collision_probe, replay_collision_scenario
    from edge_perception.harness.runner import NodeGraph
    from edge_perception.tools.demo import default_config

    alert_ms, haptic_ms, per_node_ms = [], [], []
    offered = 0
    with tempfile.TemporaryDirectory() as tmp:
        graph = NodeGraph(['time_to_impact', 'haptic_alert'],
                          [default_config('collision.yaml')]).spin_in_background()
        try:
            probe = collision_probe(graph)
            for name in args.scenarios:
                scenario = scenario_by_name(name)
                bag = write_scenario_bag(scenario, pathlib.Path(tmp) / name)
                for _ in range(args.repeats):
                    figures, _, _ = replay_collision_scenario(
                        graph, probe, scenario, bag, ['/depth/image_raw', '/depth/camera_info'])
                    alert_ms += figures.alert_latency_ms
                    offered += len(scenario.frames)
                    haptic_ms += figures.haptic_latency_ms
            stats = graph.nodes['time_to_impact'].diagnostics.latency.summary()
            per_node_ms = stats
        finally:
            graph.shutdown()
    result = {'alert_latency_ms': percentiles(alert_ms),
              'haptic_latency_ms': percentiles(haptic_ms),
              'time_to_impact_callback_ms_last_200': per_node_ms,
              'scenarios': args.scenarios, 'repeats': args.repeats, 'frames_offered': offered}
    print(f'end-to-end latency, depth stamp -> output received (ms), {offered} depth frames '
          f'offered (SENSOR_LOST alerts, before the first estimate, are not timed):')
    for key in ('alert_latency_ms', 'haptic_latency_ms'):
        print(f'  {key:<20} {result[key]}')
    print(f'  time_to_impact callback (conversion + estimate + publish): {per_node_ms}')
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0
