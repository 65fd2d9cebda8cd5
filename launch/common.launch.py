"""The arguments every edge_perception launch file takes, declared once.

collision.launch.py, crack_inspection.launch.py and perception.launch.py include this file
first, so `namespace`, `use_sim_time`, `use_respawn` and `log_level` have one declaration and
one description (`ros2 launch edge_perception X.launch.py --show-args` lists them with the
file's own arguments). It starts no node; on its own it only declares them.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable


def generate_launch_description():
    """Declare the shared arguments; log lines appear as they are written."""
    return LaunchDescription([
        SetEnvironmentVariable('RCUTILS_LOGGING_BUFFERED_STREAM', '1'),
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
