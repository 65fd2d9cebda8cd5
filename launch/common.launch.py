"""The arguments every edge_perception launch file takes, declared once.

collision.launch.py, crack_inspection.launch.py and perception.launch.py include this file
first, so `namespace`, `use_sim_time`, `use_respawn`, `log_level` and `fastdds_profile` have
one declaration and one description (`ros2 launch edge_perception X.launch.py --show-args`
lists them with the file's own arguments). It starts no node; on its own it only declares them
and sets the environment of the nodes the including file starts.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import (EnvironmentVariable, LaunchConfiguration,
                                  NotEqualsSubstitution)


def generate_launch_description():
    """Declare the shared arguments; log lines appear as they are written."""
    large_images = os.path.join(get_package_share_directory('edge_perception'), 'config',
                                'fastdds_large_images.xml')
    fastdds_profile = LaunchConfiguration('fastdds_profile')
    return LaunchDescription([
        SetEnvironmentVariable('RCUTILS_LOGGING_BUFFERED_STREAM', '1'),
        DeclareLaunchArgument(
            'fastdds_profile',
            default_value=EnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE',
                                              default_value=large_images),
            description='Fast DDS XML profile of the nodes (FASTDDS_DEFAULT_PROFILES_FILE). '
                        'Default: the one already in the environment, else '
                        'config/fastdds_large_images.xml (a 16 MB shared-memory segment: '
                        'full-size images between processes); empty: Fast DDS defaults'),
        SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE', fastdds_profile,
                               condition=IfCondition(NotEqualsSubstitution(fastdds_profile,
                                                                           ''))),
        DeclareLaunchArgument(
            'namespace', default_value='',
            description='Namespace of all nodes and their relative topics (e.g. arm1, cane)'),
        DeclareLaunchArgument(
            'use_sim_time', default_value='false',
            description='Use the simulation (Gazebo) or bag clock on /clock if true'),
        DeclareLaunchArgument(
            'use_respawn', default_value='false',
            description='Respawn a node that exits (2 s delay)'),
        DeclareLaunchArgument(
            'log_level', default_value='info',
            description='Log level of all nodes (debug, info, warn, error)'),
    ])
