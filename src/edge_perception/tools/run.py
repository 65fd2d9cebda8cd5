"""`edge-perception run`: start nodes in one process from params files (the dev/CI launcher)."""
import pathlib


def register(subparsers):
    """Add the `run` sub-command."""
    parser = subparsers.add_parser(
        'run', help='run nodes in one process from params YAML files',
        description='Start the named nodes in one process (real rclpy over DDS) with the given '
                    'params files, like a launch file would; Ctrl-C stops them.')
    parser.add_argument('--nodes', nargs='+', required=True,
                        help='node types: time_to_impact haptic_alert detector tracker '
                             'crack_segmentation')
    parser.add_argument('--params-file', action='append', default=[], type=pathlib.Path,
                        help='ROS params YAML (repeatable)')
    parser.add_argument('--use-sim-time', action='store_true', help='follow /clock')
    parser.add_argument('--namespace', default='', help='namespace for all nodes')
    parser.add_argument('--ros-args', nargs='*', default=[], dest='extra',
                        help='extra ROS arguments, e.g. -r depth/image_raw:=/camera/depth')
    parser.set_defaults(func=run)


def run(args):
    """Run the graph until interrupted."""
    for path in args.params_file:
        if not path.is_file():
            raise SystemExit(f'params file not found: {path}')
    from edge_perception.nodes.runner import run_graph
    run_graph(args.nodes, args.params_file, True if args.use_sim_time else None,
              args.namespace, args.extra)
    return 0
