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
