"""Collision alerts: time_to_impact -> haptic_alert (a white cane, a drone, a mobile base).

    ros2 launch edge_perception collision.launch.py
    ros2 launch edge_perception collision.launch.py depth_topic:=/camera/depth/image_rect_raw \
        camera_info_topic:=/camera/depth/camera_info
    ros2 launch edge_perception collision.launch.py use_sim_time:=true scan_topic:=/scan \
        params_file:=/path/to/lidar.yaml         # with `source: laserscan` in it

Modelled on nav2_bringup's navigation_launch.py: every argument declared with a description,
parameters from config/collision.yaml (keyed `/**/<node>`), use_sim_time for Gazebo or bag
replay. Which sensor drives scene mode (`source`) is chosen in the params file; the topic
arguments remap the node's default input names.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description():
    """Declare the arguments and the two nodes."""
    share_dir = get_package_share_directory('edge_perception')

    namespace = LaunchConfiguration('namespace')
    use_sim_time = LaunchConfiguration('use_sim_time')
    params_file = LaunchConfiguration('params_file')
    depth_topic = LaunchConfiguration('depth_topic')
    camera_info_topic = LaunchConfiguration('camera_info_topic')
    pointcloud_topic = LaunchConfiguration('pointcloud_topic')
    scan_topic = LaunchConfiguration('scan_topic')
    use_respawn = LaunchConfiguration('use_respawn')
    log_level = LaunchConfiguration('log_level')

    sim_time = {'use_sim_time': ParameterValue(use_sim_time, value_type=bool)}

    declare_namespace_cmd = DeclareLaunchArgument(
        'namespace', default_value='',
        description='Namespace of both nodes and their relative topics (e.g. cane)')
    declare_use_sim_time_cmd = DeclareLaunchArgument(
        'use_sim_time', default_value='false',
        description='Use the simulation (Gazebo) or bag clock on /clock if true')
    declare_params_file_cmd = DeclareLaunchArgument(
        'params_file', default_value=os.path.join(share_dir, 'config', 'collision.yaml'),
        description='Full path to the ROS 2 parameters file (source, thresholds, serial port)')
    declare_depth_topic_cmd = DeclareLaunchArgument(
        'depth_topic', default_value='depth/image_raw',
        description='Depth image, 16UC1 mm or 32FC1 m (remapped to depth/image_raw; '
                    'source: depth)')
    declare_camera_info_topic_cmd = DeclareLaunchArgument(
        'camera_info_topic', default_value='depth/camera_info',
        description='Camera info of the depth image, for bearings (remapped to '
                    'depth/camera_info)')
    declare_pointcloud_topic_cmd = DeclareLaunchArgument(
        'pointcloud_topic', default_value='points',
        description='PointCloud2 in a REP 103 frame (remapped to points; source: pointcloud)')
    declare_scan_topic_cmd = DeclareLaunchArgument(
        'scan_topic', default_value='scan',
        description='LaserScan (remapped to scan; source: laserscan)')
    declare_use_respawn_cmd = DeclareLaunchArgument(
        'use_respawn', default_value='false',
        description='Respawn a node that exits (2 s delay)')
    declare_log_level_cmd = DeclareLaunchArgument(
        'log_level', default_value='info',
        description='Log level of both nodes (debug, info, warn, error)')

    time_to_impact_cmd = Node(
        package='edge_perception',
        executable='time_to_impact_node',
        name='time_to_impact',
        namespace=namespace,
        output='screen',
        respawn=use_respawn,
        respawn_delay=2.0,
        parameters=[params_file, sim_time],
        arguments=['--ros-args', '--log-level', log_level],
        remappings=[('depth/image_raw', depth_topic),
                    ('depth/camera_info', camera_info_topic),
                    ('points', pointcloud_topic),
                    ('scan', scan_topic)])
    haptic_alert_cmd = Node(
        package='edge_perception',
        executable='haptic_alert_node',
        name='haptic_alert',
        namespace=namespace,
        output='screen',
        respawn=use_respawn,
        respawn_delay=2.0,
        parameters=[params_file, sim_time],
        arguments=['--ros-args', '--log-level', log_level])

    ld = LaunchDescription()
    # Log lines appear as they are written, not when a buffer fills.
    ld.add_action(SetEnvironmentVariable('RCUTILS_LOGGING_BUFFERED_STREAM', '1'))
    ld.add_action(declare_namespace_cmd)
    ld.add_action(declare_use_sim_time_cmd)
    ld.add_action(declare_params_file_cmd)
    ld.add_action(declare_depth_topic_cmd)
    ld.add_action(declare_camera_info_topic_cmd)
    ld.add_action(declare_pointcloud_topic_cmd)
    ld.add_action(declare_scan_topic_cmd)
    ld.add_action(declare_use_respawn_cmd)
    ld.add_action(declare_log_level_cmd)
    ld.add_action(time_to_impact_cmd)
    ld.add_action(haptic_alert_cmd)
    return ld
