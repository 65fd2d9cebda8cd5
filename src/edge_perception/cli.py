"""Command-line entry point `edge-perception`.

Each sub-command lives in its own module under `edge_perception.tools` and defines
`register(subparsers)`, which adds its parser and sets `func` (called with the parsed args; its
return value is the exit code). Modules are discovered, so adding a tool touches no shared file.
"""
import argparse
import importlib
import pkgutil
import sys

from edge_perception import tools


def build_parser():
    """Return the argument parser with every tool module's sub-command registered."""
    parser = argparse.ArgumentParser(
        prog='edge-perception',
        description='edge_perception tools: demos, evaluation, export and benchmarks.')
    subparsers = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    for module_info in sorted(pkgutil.iter_modules(tools.__path__), key=lambda m: m.name):
        if module_info.name.startswith('_'):
            continue
        module = importlib.import_module(f'{tools.__name__}.{module_info.name}')
        register = getattr(module, 'register', None)
        if register is not None:
            register(subparsers)
    return parser


def main(argv=None):
    """Run one sub-command and return its exit code."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == '__main__':
    sys.exit(main())
