"""`edge-perception run`: start nodes in one process from params files (the dev/CI launcher)."""
import pathlib
import tempfile


def register(subparsers):
    """Add the `run` sub-command."""
    parser = subparsers.add_parser(
        'run', help='run nodes in one process from params YAML files',
        description='Start the named nodes in one process (real rclpy over DDS) with the given '
                    'params files, like a launch file would; Ctrl-C stops them.')
    parser.add_argument('--profile', default=None,
                        help='a bringup profile (config/profiles/<name>.yaml or a path): '
                             'nodes, params files, use_sim_time and overrides in one name; '
                             '--nodes/--params-file/--use-sim-time add to it')
    parser.add_argument('--nodes', nargs='+', default=[],
                        help='node types: time_to_impact haptic_alert detector tracker '
                             'crack_segmentation markers')
    parser.add_argument('--params-file', action='append', default=[], type=pathlib.Path,
                        help='ROS params YAML (repeatable)')
    parser.add_argument('--use-sim-time', action='store_true', help='follow /clock')
    parser.add_argument('--namespace', default='', help='namespace for all nodes')
    parser.add_argument('--ros-args', nargs='*', default=[], dest='extra',
                        help='extra ROS arguments, e.g. -r depth/image_raw:=/camera/depth')
    parser.set_defaults(func=run)


def run(args):
    """Run the graph until interrupted."""
    from edge_perception.harness.runner import run_graph
    from edge_perception.nodes.registry import NODE_TYPES
    nodes, params_files, use_sim_time = list(args.nodes), list(args.params_file), None
    overrides_dir = tempfile.TemporaryDirectory(prefix='edge_perception_profile_')
    if args.profile:
        from edge_perception.profiles import load_profile, ProfileError
        try:
            profile = load_profile(args.profile, known_nodes=NODE_TYPES,
                                   overrides_dir=overrides_dir.name)
        except ProfileError as error:
            raise SystemExit(f'profile {args.profile!r}: {error}')
        print(f'[run] profile {profile.name}: {profile.description}')
        nodes = list(profile.nodes) + [n for n in nodes if n not in profile.nodes]
        params_files = list(profile.params_files) + (
            [profile.overrides_file] if profile.overrides_file else []) + params_files
        use_sim_time = profile.use_sim_time
    if not nodes:
        raise SystemExit('nothing to run: give --profile or --nodes')
    unknown = [n for n in nodes if n not in NODE_TYPES]
    if unknown:
        raise SystemExit(f'unknown node types {unknown}; known: {sorted(NODE_TYPES)}')
    for path in params_files:
        if not pathlib.Path(path).is_file():
            raise SystemExit(f'params file not found: {path}')
    if args.use_sim_time:
        use_sim_time = True
    with overrides_dir:    # the profile's overrides file lives as long as the graph
        run_graph(nodes, params_files, use_sim_time, args.namespace, args.extra)
    return 0
