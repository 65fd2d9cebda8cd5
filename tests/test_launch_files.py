"""Launch files, params files and profiles agree with the code.

`launch`/`launch_ros` are not on PyPI, so the launch files are checked twice: for real when
launch_ros imports (a full ROS install), and always by reading their syntax tree: the
executables are console scripts of setup.py, the package is ours, the params files exist, every
argument is described and every LaunchConfiguration is declared, and the node names are the
runner's node types and the params files' keys. Profiles load, name known nodes and existing
files, and set only declared parameters with the declared types (rclpy refuses an int for a
double parameter at start-up).
"""
import ast
import importlib
import importlib.util
import pathlib
import re

from edge_perception import profiles
from edge_perception.nodes.registry import NODE_TYPES
from edge_perception.profiles import load_profile, ProfileError
import pytest
from rclpy.parameter import Parameter
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The graphs; common.launch.py only declares the arguments they share (each includes it).
LAUNCH_FILES = sorted(p for p in (ROOT / 'launch').glob('*.launch.py')
                      if p.name != 'common.launch.py')
PROFILE_FILES = sorted((ROOT / 'config' / 'profiles').glob('*.yaml'))
PACKAGE = 'edge_perception'
REQUIRED_ARGUMENTS = {'namespace', 'use_sim_time', 'params_file', 'log_level'}
NO_LAUNCH_REASON = ('launch/launch_ros are not installable from PyPI; on a full ROS install this '
                    'test loads the launch files')

try:
    import launch_ros  # noqa: F401
    HAVE_LAUNCH_ROS = True
except ImportError:
    HAVE_LAUNCH_ROS = False


def console_scripts():
    """Return the executables the colcon package installs in lib/edge_perception (CMakeLists.txt).

    Launch files start these; a test below keeps them equal to the node registry and to the
    console scripts setup.py makes for pip installs.
    """
    text = (ROOT / 'CMakeLists.txt').read_text()
    block = re.search(r'set\(EDGE_PERCEPTION_EXECUTABLES(.*?)\)', text, re.S).group(1)
    return {m.group(1) for m in re.finditer(r'"([\w-]+)=edge_perception[\w.]*"', block)}


def test_installed_executables_are_the_registry_nodes_and_the_tool():
    expected = {f'{name}_node' for name in NODE_TYPES} | {'edge-perception'}
    assert console_scripts() == expected
    text = (ROOT / 'CMakeLists.txt').read_text()
    for name, target in NODE_TYPES.items():
        module = target.split(':')[0]
        assert f'"{name}_node={module}"' in text, name


def node_modules():
    """Node type -> module defining PARAMS: the runner's, plus the markers node (new here)."""
    modules = {name: target.split(':')[0] for name, target in NODE_TYPES.items()}
    modules.setdefault('markers', 'edge_perception.nodes.markers_node')
    return modules


def declared_params():
    """Node type -> {parameter name: default}."""
    return {node: {p.name: p.default for p in importlib.import_module(module).PARAMS}
            for node, module in node_modules().items()}


def params_file_nodes(path):
    """Node names of a params file's `/**/<node>` keys."""
    return {key.split('/')[-1] for key in yaml.safe_load(pathlib.Path(path).read_text())}


class LaunchFileSyntax:
    """What a launch file names, read from its syntax tree (no import: launch is not here).

    Nodes, params files and arguments of the launch files it includes (a `*.launch.py` name in
    it) count as its own: each includes common.launch.py (the shared arguments), and
    perception.launch.py includes collision.launch.py.
    """

    def __init__(self, path):
        self.path = path
        self.tree = ast.parse(path.read_text(), filename=str(path))
        self.nodes = []            # {keyword: constant} of each Node(...) call, included too
        self.includes = set()      # names of the launch files it includes
        self.arguments = {}        # DeclareLaunchArgument name -> description
        self.configurations = set()
        self.yaml_files = set()
        self.names = set()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Name):
                self.names.add(node.id)
            elif isinstance(node, ast.Attribute):
                self.names.add(node.attr)
            elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
                  and node.value.endswith('.yaml')):
                self.yaml_files.add(node.value)
            elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
                  and node.value.endswith('.launch.py')):
                self.includes.add(node.value)
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            keywords = {k.arg: k.value for k in node.keywords}
            if node.func.id == 'Node':
                self.nodes.append({k: v.value for k, v in keywords.items()
                                   if isinstance(v, ast.Constant)})
            elif node.func.id == 'DeclareLaunchArgument':
                name = node.args[0].value
                description = keywords.get('description')
                self.arguments[name] = (description.value if isinstance(
                    description, ast.Constant) else None)
            elif node.func.id == 'LaunchConfiguration':
                self.configurations.add(node.args[0].value)
        for name in sorted(self.includes):
            included = LaunchFileSyntax(path.parent / name)
            self.nodes += included.nodes
            self.yaml_files |= included.yaml_files
            self.arguments = {**included.arguments, **self.arguments}
            self.configurations |= included.configurations


@pytest.fixture(scope='module', params=LAUNCH_FILES, ids=lambda p: p.name)
def launch_file(request):
    return LaunchFileSyntax(request.param)


def test_there_are_three_launch_files():
    assert {p.name for p in LAUNCH_FILES} >= {
        'perception.launch.py', 'crack_inspection.launch.py', 'collision.launch.py'}


def launch_entities(entities):
    """Every entity, with those inside groups and included launch descriptions."""
    from launch import LaunchContext
    from launch.actions import GroupAction, IncludeLaunchDescription
    for entity in entities:
        yield entity
        if isinstance(entity, GroupAction):
            yield from launch_entities(entity.get_sub_entities())
        elif isinstance(entity, IncludeLaunchDescription):
            included = entity.launch_description_source.get_launch_description(LaunchContext())
            yield from launch_entities(included.entities)


@pytest.mark.skipif(not HAVE_LAUNCH_ROS, reason=NO_LAUNCH_REASON)
@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_description_loads(path):
    from launch.actions import DeclareLaunchArgument
    from launch_ros.actions import Node
    spec = importlib.util.spec_from_file_location(path.stem.replace('.', '_'), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    arguments = [e for e in launch_entities(description.entities)
                 if isinstance(e, DeclareLaunchArgument)]
    assert REQUIRED_ARGUMENTS <= {a.name for a in arguments}
    assert all(a.description.strip() for a in arguments)
    nodes = [e for e in launch_entities(description.entities) if isinstance(e, Node)]
    assert nodes
    scripts = console_scripts()
    for node in nodes:
        assert node.node_package == PACKAGE
        assert node.node_executable in scripts


def test_executables_are_console_scripts_of_this_package(launch_file):
    scripts = console_scripts()
    assert launch_file.nodes, f'{launch_file.path.name} starts no Node'
    for node in launch_file.nodes:
        assert node.get('package') == PACKAGE, node
        assert node.get('executable') in scripts, (
            f"{launch_file.path.name}: executable {node.get('executable')!r} is not a console "
            f'script in setup.py ({sorted(scripts)})')


def test_node_names_are_runner_types_and_params_file_keys(launch_file):
    names = {node.get('name') for node in launch_file.nodes}
    assert names <= set(NODE_TYPES), (
        f'{launch_file.path.name}: node names {sorted(names - set(NODE_TYPES))} are not '
        f'runner NODE_TYPES ({sorted(NODE_TYPES)})')
    keys = set()
    for name in launch_file.yaml_files:
        keys |= params_file_nodes(ROOT / 'config' / name)
    assert names == keys, f'{launch_file.path.name}: launched {names}, params file has {keys}'


def test_params_files_exist(launch_file):
    assert launch_file.yaml_files, f'{launch_file.path.name} names no params file'
    for name in launch_file.yaml_files:
        assert (ROOT / 'config' / name).is_file(), f'{launch_file.path.name}: config/{name}'


def test_arguments_are_described_and_declared(launch_file):
    assert REQUIRED_ARGUMENTS <= set(launch_file.arguments)
    for name, description in launch_file.arguments.items():
        assert description and description.strip(), f'argument {name!r} has no description'
    undeclared = launch_file.configurations - set(launch_file.arguments)
    assert not undeclared, f'LaunchConfiguration without DeclareLaunchArgument: {undeclared}'
    unused = set(launch_file.arguments) - launch_file.configurations
    assert not unused, f'declared but never used: {unused}'


def test_no_opaque_functions_or_eval(launch_file):
    # House style: arguments visible to `ros2 launch --show-args`, no code from launch values.
    forbidden = {'OpaqueFunction', 'PythonExpression', 'eval', 'exec'} & launch_file.names
    assert not forbidden, f'{launch_file.path.name} uses {forbidden}'


# ------------------------------------------------------------------ params files and profiles
def _type_error(name, value, default):
    """Why rclpy would refuse value for a parameter declared with default, or ''."""
    if isinstance(default, Parameter.Type):
        return ''
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, float)
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, list):
        ok = isinstance(value, list)
    else:
        ok = True
    return '' if ok else f'{name}: {value!r} is not a {type(default).__name__}'


def check_params_layout(data, where):
    """Only declared parameters, of the declared type, for known nodes."""
    declared = declared_params()
    for key, section in data.items():
        node = key.split('/')[-1]
        assert key == f'/**/{node}', f'{where}: key {key!r} should be /**/{node}'
        assert node in declared, f'{where}: unknown node {key}'
        values = section['ros__parameters']
        unknown = set(values) - set(declared[node]) - {'use_sim_time'}
        assert not unknown, f'{where}: {key} sets undeclared parameters {unknown}'
        errors = [_type_error(n, v, declared[node][n]) for n, v in values.items()
                  if n in declared[node]]
        assert not any(errors), f'{where}: {key}: {[e for e in errors if e]}'


@pytest.mark.parametrize('name', ['perception.yaml', 'crack_inspection.yaml', 'collision.yaml'])
def test_params_files_set_declared_parameters_of_the_right_type(name):
    path = ROOT / 'config' / name
    check_params_layout(yaml.safe_load(path.read_text()), name)


def test_known_nodes_of_the_loader_are_the_runner_types():
    assert set(profiles.KNOWN_NODES) == set(NODE_TYPES)


@pytest.mark.parametrize('path', PROFILE_FILES, ids=lambda p: p.stem)
def test_profile_loads_known_nodes_and_existing_files(path, tmp_path):
    profile = load_profile(path.stem, known_nodes=node_modules(), overrides_dir=tmp_path)
    assert profile.path == path
    assert profile.description.strip()
    assert set(profile.nodes) <= set(node_modules())
    for params_file in profile.params_files:
        assert params_file.is_absolute() and params_file.is_file()
        assert params_file.parent == ROOT / 'config'
    data = yaml.safe_load(path.read_text())
    if data.get('parameters'):
        assert profile.overrides_file.parent == tmp_path
        assert yaml.safe_load(profile.overrides_file.read_text()) == data['parameters']
        assert profile.all_params_files()[-1] == profile.overrides_file
        check_params_layout(data['parameters'], path.name)
    # Every node the profile runs has its section in the params files (none runs on defaults
    # by accident), and the params files only configure known nodes (a typo is no node). A
    # section for a node the profile does not start is allowed: perception.yaml configures
    # both detector and waste_segmentation, and the launch file or profile picks one.
    configured = set()
    for params_file in profile.params_files:
        configured |= params_file_nodes(params_file)
    assert set(profile.nodes) <= configured, f'{path.name}: runs {profile.nodes}, ' \
        f'params files configure {sorted(configured)}'
    assert configured <= set(NODE_TYPES), f'{path.name}: params files configure unknown ' \
        f'nodes {sorted(configured - set(NODE_TYPES))}'


@pytest.mark.parametrize('path', PROFILE_FILES, ids=lambda p: p.stem)
def test_rcl_parses_profile_params_files(path, tmp_path):
    """Rcl itself reads the files (a malformed YAML fails rclpy.init)."""
    import rclpy
    from rclpy.context import Context
    profile = load_profile(path, overrides_dir=tmp_path)
    args = ['edge_perception', '--ros-args']
    for params_file in profile.all_params_files():
        args += ['--params-file', str(params_file)]
    context = Context()
    rclpy.init(args=args, context=context)
    rclpy.shutdown(context=context)


def test_shipped_profiles():
    assert profiles.list_profiles() == ['default', 'gazebo', 'jetson_orin_nano',
                                        'jetson_orin_nx', 'waste_segmentation']


def _detector_overrides(name, tmp_path):
    profile = load_profile(name, overrides_dir=tmp_path)
    return profile, yaml.safe_load(profile.overrides_file.read_text())[
        '/**/detector']['ros__parameters']


def test_jetson_profiles_use_tensorrt_engines_on_cuda(tmp_path):
    for name in ('jetson_orin_nano', 'jetson_orin_nx'):
        profile, detector = _detector_overrides(name, tmp_path)
        assert detector['model_path'].endswith('.engine')
        assert 'fp16' in detector['model_path']        # the choice explained in the profile
        assert detector['device'] == 'cuda:0'
        assert not profile.use_sim_time


def test_default_profile_runs_on_the_cpu(tmp_path):
    profile, detector = _detector_overrides('default', tmp_path)
    assert detector == {'model_path': '', 'device': 'cpu'}
    assert not profile.use_sim_time


def test_gazebo_profile_follows_sim_time_and_the_bridge_topics(tmp_path):
    profile = load_profile('gazebo', overrides_dir=tmp_path)
    assert profile.use_sim_time
    overrides = yaml.safe_load(profile.overrides_file.read_text())
    detector = overrides['/**/detector']['ros__parameters']
    tti = overrides['/**/time_to_impact']['ros__parameters']
    assert (detector['image_topic'], detector['depth_topic'], detector['camera_info_topic']) == (
        '/camera/image', '/camera/depth_image', '/camera/camera_info')
    assert (tti['depth_topic'], tti['pointcloud_topic'], tti['laserscan_topic']) == (
        '/camera/depth_image', '/lidar/points', '/scan')


# ------------------------------------------------------------------ loader errors
def write_profile(tmp_path, text, name='custom.yaml'):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize('text, message', [
    ('description: x\nnodes: [detector, lidar_fusion]\n', "unknown nodes ['lidar_fusion']"),
    ('description: x\nnodes: [detector]\nparams_files: [config/nope.yaml]\n',
     'params file not found: config/nope.yaml'),
    ('description: x\nnodes: [detector]\nuse_simtime: true\n', "unknown keys ['use_simtime']"),
    ('nodes: [detector]\n', "missing keys ['description']"),
    ('description: x\nnodes: []\n', 'nodes must be a non-empty list'),
    ('description: x\nnodes: [detector, detector]\n', 'listed twice'),
    ('description: x\nnodes: [detector]\nuse_sim_time: yes please\n',
     'use_sim_time must be true or false'),
    ('description: x\nnodes: [detector]\nparameters:\n  /**/tracker:\n'
     '    ros__parameters: {lost_track_s: 2.0}\n', 'which the profile does not run'),
    ('description: x\nnodes: [detector]\nparameters:\n  /**/detector: {device: cpu}\n',
     'must be {ros__parameters'),
    ('- just\n- a list\n', 'must be a mapping'),
])
def test_bad_profiles_are_refused_with_the_reason(tmp_path, text, message):
    path = write_profile(tmp_path, text)
    with pytest.raises(ProfileError) as error:
        load_profile(path, overrides_dir=tmp_path)
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_unknown_profile_name_lists_the_known_ones():
    with pytest.raises(ProfileError) as error:
        load_profile('jetson_agx_thor')
    assert "unknown profile 'jetson_agx_thor'" in str(error.value)
    assert 'jetson_orin_nx' in str(error.value)


def test_missing_profile_path():
    with pytest.raises(ProfileError, match='profile file not found'):
        load_profile('/nonexistent/robot.yaml')


def test_profile_without_overrides_and_absolute_params_file(tmp_path):
    params = tmp_path / 'tti.yaml'
    params.write_text('/**/time_to_impact:\n  ros__parameters:\n    source: laserscan\n')
    path = write_profile(tmp_path, f'description: LiDAR cane\nnodes: [time_to_impact]\n'
                                   f'params_files: [config/collision.yaml, {params}]\n')
    profile = load_profile(path, overrides_dir=tmp_path)
    assert profile.overrides_file is None
    assert profile.params_files == (ROOT / 'config' / 'collision.yaml', params)
    assert profile.all_params_files() == [ROOT / 'config' / 'collision.yaml', params]
    assert profile.use_sim_time is False
    assert profile.nodes == ('time_to_impact',)
