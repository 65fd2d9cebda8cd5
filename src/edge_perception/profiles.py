"""Bringup profiles: which nodes run, from which params files, with which overrides.

A profile is a small YAML file in `config/profiles/` (installed to
`share/edge_perception/config/profiles/`), for one kind of machine or setup:

    description: CPU, ONNX Runtime (default)       # one line, shown by tools
    nodes: [detector, tracker, time_to_impact, haptic_alert, markers]
    params_files: [config/perception.yaml]         # relative to the package root, or absolute
    use_sim_time: false                            # true: follow /clock (Gazebo, bag replay)
    parameters:                                    # optional overrides, params-file layout
      /**/detector:
        ros__parameters: {device: cpu}

Keys other than these are refused, so a typo never silently does nothing. `params_files` are
applied in order and the overrides last (later files win, as with repeated `--params-file`).
No rclpy here: the loader only reads YAML and checks names, so it is usable from the CLI, tests
and scripts alike. `edge-perception run --profile NAME` starts
`NodeGraph(profile.nodes, profile.all_params_files(), profile.use_sim_time)`.
"""
from dataclasses import dataclass
import pathlib
import tempfile
from typing import Iterable, Optional, Tuple

from edge_perception.nodes.registry import NODE_TYPES
import yaml

# Node types a profile may name: the node registry's (and the ROS node names). The registry
# imports nothing, so this loader stays free of rclpy.
KNOWN_NODES = tuple(NODE_TYPES)
PROFILE_KEYS = ('description', 'nodes', 'params_files', 'use_sim_time', 'parameters')
_REQUIRED_KEYS = ('description', 'nodes')


class ProfileError(ValueError):
    """A profile that cannot be used: missing, malformed, or naming unknown nodes or files."""


@dataclass(frozen=True)
class Profile:
    """A loaded profile with resolved paths."""

    name: str
    path: pathlib.Path
    description: str
    nodes: Tuple[str, ...]
    params_files: Tuple[pathlib.Path, ...]      # absolute, existing, in order
    use_sim_time: bool
    overrides_file: Optional[pathlib.Path]      # temp YAML of `parameters`, or None

    def all_params_files(self):
        """Return the params files in the order to pass them: the profile's, then overrides."""
        files = list(self.params_files)
        if self.overrides_file is not None:
            files.append(self.overrides_file)
        return files


def package_root() -> pathlib.Path:
    """Return the directory holding `config/`: the source tree, else the share directory."""
    source_root = pathlib.Path(__file__).resolve().parents[2]
    if (source_root / 'config' / 'profiles').is_dir():
        return source_root
    try:
        from ament_index_python.packages import get_package_share_directory
        return pathlib.Path(get_package_share_directory('edge_perception'))
    except (ImportError, LookupError) as error:
        raise ProfileError(
            f'cannot find the config directory: not in a source tree ({source_root}) and the '
            f'package share directory is unknown ({error})') from error


def profiles_dir() -> pathlib.Path:
    """Return the directory of the shipped profiles."""
    return package_root() / 'config' / 'profiles'


def list_profiles():
    """Names of the shipped profiles, sorted."""
    return sorted(p.stem for p in profiles_dir().glob('*.yaml'))


def _profile_path(name_or_path) -> pathlib.Path:
    text = str(name_or_path)
    looks_like_path = text.endswith(('.yaml', '.yml')) or '/' in text
    if looks_like_path:
        path = pathlib.Path(text).expanduser()
        if not path.is_file():
            raise ProfileError(f'profile file not found: {path}')
        return path.resolve()
    path = profiles_dir() / f'{text}.yaml'
    if not path.is_file():
        raise ProfileError(f'unknown profile {text!r}; known: {list_profiles()} '
                           f'(or give a path to a profile .yaml)')
    return path


def _check_overrides(parameters, nodes, where):
    """Check that overrides look like a params file and address only nodes the profile runs."""
    if not isinstance(parameters, dict):
        raise ProfileError(f'{where}: parameters must be a mapping of "/**/<node>" sections')
    for key, section in parameters.items():
        node = str(key).split('/')[-1]
        if node not in KNOWN_NODES:
            raise ProfileError(f'{where}: parameters section {key!r} names unknown node '
                               f'{node!r}; known: {list(KNOWN_NODES)}')
        if node not in nodes:
            raise ProfileError(f'{where}: parameters section {key!r} is for node {node!r}, '
                               f'which the profile does not run (nodes: {list(nodes)})')
        if (not isinstance(section, dict) or set(section) != {'ros__parameters'}
                or not isinstance(section['ros__parameters'], dict)):
            raise ProfileError(f'{where}: section {key!r} must be '
                               '{ros__parameters: {name: value, ...}}')


def _resolve_params_file(entry, root, where) -> pathlib.Path:
    path = pathlib.Path(str(entry)).expanduser()
    if not path.is_absolute():
        path = root / path
    if not path.is_file():
        raise ProfileError(f'{where}: params file not found: {entry} (looked at {path})')
    return path.resolve()


def load_profile(name_or_path, known_nodes: Optional[Iterable[str]] = None,
                 overrides_dir=None) -> Profile:
    """Load a profile by name (`config/profiles/<name>.yaml`) or path.

    Args:
        name_or_path: a shipped profile's name ('default', 'gazebo', ...) or a .yaml path.
        known_nodes: node types allowed (default KNOWN_NODES; the runner passes NODE_TYPES).
        overrides_dir: where to write the overrides YAML (default: the system temp dir).

    Relative params files are resolved against the package root (the directory holding
    `config/`), so the same profile works in the source tree and when installed.

    Raises:
        ProfileError: missing file, unknown key, unknown or repeated node, missing params file,
            or overrides for a node the profile does not run.
    """
    path = _profile_path(name_or_path)
    where = f'profile {path}'
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ProfileError(f'{where}: not valid YAML: {error}') from error
    if not isinstance(data, dict):
        raise ProfileError(f'{where}: must be a mapping with keys {list(PROFILE_KEYS)}')
    unknown_keys = set(data) - set(PROFILE_KEYS)
    if unknown_keys:
        raise ProfileError(f'{where}: unknown keys {sorted(unknown_keys)}; '
                           f'allowed: {list(PROFILE_KEYS)}')
    missing = [k for k in _REQUIRED_KEYS if k not in data]
    if missing:
        raise ProfileError(f'{where}: missing keys {missing}')

    allowed = tuple(known_nodes) if known_nodes is not None else KNOWN_NODES
    nodes = data['nodes']
    if not isinstance(nodes, list) or not nodes or not all(isinstance(n, str) for n in nodes):
        raise ProfileError(f'{where}: nodes must be a non-empty list of node types')
    unknown_nodes = [n for n in nodes if n not in allowed]
    if unknown_nodes:
        raise ProfileError(f'{where}: unknown nodes {unknown_nodes}; known: {sorted(allowed)}')
    if len(set(nodes)) != len(nodes):
        raise ProfileError(f'{where}: a node is listed twice: {nodes}')

    use_sim_time = data.get('use_sim_time', False)
    if not isinstance(use_sim_time, bool):
        raise ProfileError(f'{where}: use_sim_time must be true or false, not {use_sim_time!r}')

    entries = data.get('params_files') or []
    if not isinstance(entries, list):
        raise ProfileError(f'{where}: params_files must be a list of paths')
    root = package_root()
    params_files = tuple(_resolve_params_file(e, root, where) for e in entries)

    overrides_file = None
    parameters = data.get('parameters') or {}
    _check_overrides(parameters, nodes, where)
    if parameters:
        handle = tempfile.NamedTemporaryFile(
            'w', prefix=f'edge_perception_{path.stem}_', suffix='.yaml', dir=overrides_dir,
            delete=False)
        with handle:
            yaml.safe_dump(parameters, handle, default_flow_style=False, sort_keys=False)
        overrides_file = pathlib.Path(handle.name)

    return Profile(name=path.stem, path=path, description=str(data['description']),
                   nodes=tuple(nodes), params_files=params_files, use_sim_time=use_sim_time,
                   overrides_file=overrides_file)
