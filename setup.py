"""ament_python package edge_perception (src layout)."""
from glob import glob

from setuptools import find_packages, setup

package_name = 'edge_perception'

setup(
    name=package_name,
    version='0.1.0',
    package_dir={'': 'src'},
    packages=find_packages(where='src'),
    package_data={package_name: ['models/*/*', 'data/samples/*/*', 'data/samples/*/*/*']},
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
            'time_to_impact_node = edge_perception.nodes.time_to_impact_node:main',
            'haptic_alert_node = edge_perception.nodes.haptic_alert_node:main',
            'detector_node = edge_perception.nodes.detector_node:main',
            'tracker_node = edge_perception.nodes.tracker_node:main',
            'crack_segmentation_node = edge_perception.nodes.crack_segmentation_node:main',
            'markers_node = edge_perception.nodes.markers_node:main',
        ],
    },
)
