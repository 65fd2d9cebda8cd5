"""Package-level rules.

Core never imports rclpy, configs only set declared parameters, the generated parameter docs
are current, every tool registers.
"""
import pathlib
import subprocess
import sys

from edge_perception.cli import build_parser
from edge_perception.tools import params_doc
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_core_modules_do_not_import_rclpy():
    # core/ (with its subpackages) and the device drivers moved out of it: no rclpy.
    src = ROOT / 'src'
    modules = sorted('.'.join(p.relative_to(src).with_suffix('').parts)
                     for folder in ('core', 'drivers')
                     for p in (src / 'edge_perception' / folder).rglob('*.py')
                     if p.stem != '__init__')
    code = ('import sys, importlib\n'
            f'for m in {modules!r}:\n'
            '    importlib.import_module(m)\n'
            "print('rclpy' in sys.modules)\n")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True).stdout.strip().splitlines()[-1]
    assert out == 'False', 'a core module imported rclpy'
    for name in ('conversions', 'bags'):
        text = (ROOT / f'src/edge_perception/{name}.py').read_text()
        assert 'import rclpy' not in text and 'from rclpy' not in text


def test_config_files_only_set_declared_parameters():
    import importlib
    declared = {node: {p.name for p in importlib.import_module(module).PARAMS}
                for node, module in params_doc.NODE_MODULES.items()}
    for path in sorted((ROOT / 'config').glob('*.yaml')):
        data = yaml.safe_load(path.read_text())
        for key, section in data.items():
            node = key.split('/')[-1]
            assert node in declared, f'{path.name}: unknown node {key}'
            unknown = set(section['ros__parameters']) - declared[node] - {'use_sim_time'}
            assert not unknown, f'{path.name}: {key} sets undeclared parameters {unknown}'


def test_parameter_docs_are_current():
    assert (ROOT / 'docs/parameters.md').read_text() == params_doc.markdown(), \
        'docs/parameters.md is stale: run edge-perception params-doc --out docs/parameters.md'


def test_every_tool_registers_a_subcommand():
    parser = build_parser()
    commands = set(parser._subparsers._group_actions[0].choices)
    tools = ROOT / 'src/edge_perception/tools'
    names = ({p.stem for p in tools.glob('*.py')}
             | {p.parent.name for p in tools.glob('*/__init__.py')})
    expected = {n.replace('_', '-') for n in names if not n.startswith('_')}
    assert expected <= commands


# Every module the package and its launch files import, and how a ROS user gets it: a
# package.xml key (rosdep installs it), requirements/runtime.txt (no rosdep key), or optional.
ROSDEP_KEYS = {
    'ament_index_python': 'ament_index_python', 'builtin_interfaces': 'builtin_interfaces',
    'diagnostic_msgs': 'diagnostic_msgs', 'geometry_msgs': 'geometry_msgs', 'launch': 'launch',
    'launch_ros': 'launch_ros', 'lifecycle_msgs': 'lifecycle_msgs',
    'rcl_interfaces': 'rcl_interfaces', 'rclpy': 'rclpy', 'rosgraph_msgs': 'rosgraph_msgs',
    'sensor_msgs': 'sensor_msgs', 'std_msgs': 'std_msgs', 'vision_msgs': 'vision_msgs',
    'visualization_msgs': 'visualization_msgs',
    'numpy': 'python3-numpy', 'scipy': 'python3-scipy', 'yaml': 'python3-yaml',
    'serial': 'python3-serial', 'cv2': 'python3-opencv', 'PIL': 'python3-pil',
    'matplotlib': 'python3-matplotlib', 'skimage': 'python3-skimage'}
NO_ROSDEP_KEY = {'onnxruntime', 'rosbags'}
OPTIONAL = {  # imported only on the paths that need them
    'ultralytics': '.pt models and export', 'torch': '.pt models and export',
    'tensorrt': '.engine models on Jetson', 'onnxslim': 'export'}


def imported_top_level_modules():
    import ast
    modules = set()
    files = list((ROOT / 'src/edge_perception').rglob('*.py')) + list(
        (ROOT / 'launch').glob('*.py'))
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split('.')[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module.split('.')[0])
    return modules - set(sys.stdlib_module_names) - {'edge_perception'}


def test_package_xml_and_runtime_requirements_name_every_dependency():
    import xml.etree.ElementTree as ET
    root = ET.parse(ROOT / 'package.xml').getroot()
    keys = {e.text.strip() for e in root if e.tag.endswith('depend') and e.text}
    runtime = (ROOT / 'requirements/runtime.txt').read_text()
    modules = imported_top_level_modules()
    unclassified = modules - set(ROSDEP_KEYS) - NO_ROSDEP_KEY - set(OPTIONAL)
    assert not unclassified, f'new imports: say how a user installs them: {unclassified}'
    missing = {ROSDEP_KEYS[m] for m in modules & set(ROSDEP_KEYS)} - keys
    assert not missing, f'package.xml lacks {missing} (rosdep would not install them)'
    for module in NO_ROSDEP_KEY & modules:
        assert module in runtime, f'{module} is not in requirements/runtime.txt'
    assert 'lifecycle_msgs' in keys and 'vision_msgs' in keys
