"""ament_python package edge_perception (src layout)."""
import ast
from glob import glob
import os

from setuptools import find_packages, setup

package_name = 'edge_perception'


def node_console_scripts():
    """`<type>_node = <module>:main` for every node of the node registry.

    src/edge_perception/nodes/registry.py is read as a syntax tree (NODE_TYPES is a literal):
    setup.py runs before the package can be imported.
    """
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'src', package_name, 'nodes',
                        'registry.py')
    with open(path) as handle:
        tree = ast.parse(handle.read(), filename=path)
    for statement in tree.body:
        if (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                and getattr(statement.targets[0], 'id', None) == 'NODE_TYPES'):
            node_types = ast.literal_eval(statement.value)
            return [f"{name}_node = {target.split(':')[0]}:main"
                    for name, target in node_types.items()]
    raise RuntimeError(f'{path} defines no NODE_TYPES')


setup(
    name=package_name,
    version='0.1.0',
    package_dir={'': 'src'},
    packages=find_packages(where='src'),
    package_data={package_name: ['models/*/*', 'data/samples/*/*', 'data/samples/*/*/*',
                                 'data/rendered/*/*']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml')),
        ('share/' + package_name + '/config/profiles', glob('config/profiles/*.yaml')),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='edge_perception maintainers',
    maintainer_email='maintainers@edge-perception.org',
    description='Edge perception for robots: waste detection, crack inspection, collision alerts.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'edge-perception = edge_perception.cli:main',
        ] + node_console_scripts(),
    },
)
