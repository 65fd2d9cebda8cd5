"""Collision alerts: time_to_impact -> haptic_alert (a white cane, a drone, a mobile base).

    ros2 launch edge_perception collision.launch.py
    ros2 launch edge_perception collision.launch.py depth_topic:=/camera/depth/image_rect_raw \
        camera_info_topic:=/camera/depth/camera_info
    ros2 launch edge_perception collision.launch.py use_sim_time:=true scan_topic:=/scan \
        params_file:=/path/to/lidar.yaml         # with `source: laserscan` in it

Modelled on nav2_bringup's navigation_launch.py: every argument declared with a description,
parameters from config/collision.yaml (keyed `/**/<node>`), the nodes in a group that pushes
the namespace and sets use_sim_time (Gazebo or bag replay) for both. Which sensor drives scene
mode (`source`) is chosen in the params file; the topic arguments remap the node's default input
names. perception.launch.py includes this file (as nav2's bringup_launch.py includes
navigation_launch.py) for the same two nodes on the waste-sorting camera.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node, PushROSNamespace, SetParameter


def generate_launch_description():
    """Declare the arguments and the two nodes."""
    share_dir = get_package_share_directory('edge_perception')
    launch_dir = os.path.join(share_dir, 'launch')

    namespace = LaunchConfiguration('namespace')
    use_sim_time = LaunchConfiguration('use_sim_time')
    params_file = LaunchConfiguration('params_file')
    depth_topic = LaunchConfiguration('depth_topic')
    camera_info_topic = LaunchConfiguration('camera_info_topic')
    pointcloud_topic = LaunchConfiguration('pointcloud_topic')
    scan_topic = LaunchConfiguration('scan_topic')
    use_respawn = LaunchConfiguration('use_respawn')
    log_level = LaunchConfiguration('log_level')

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

    # Every node: log to the screen, respawn when asked, at the requested log level.
    node_options = {'output': 'screen', 'respawn': use_respawn, 'respawn_delay': 2.0,
                    'arguments': ['--ros-args', '--log-level', log_level]}
    nodes_cmd = GroupAction([
        PushROSNamespace(namespace),
        SetParameter('use_sim_time', use_sim_time),
        Node(
            package='edge_perception',
            executable='time_to_impact_node',
            name='time_to_impact',
            parameters=[params_file],
            **node_options,
            remappings=[('depth/image_raw', depth_topic),
                        ('depth/camera_info', camera_info_topic),
                        ('points', pointcloud_topic),
                        ('scan', scan_topic)]),
        Node(
            package='edge_perception',
            executable='haptic_alert_node',
            name='haptic_alert',
            parameters=[params_file],
            **node_options),
    ])

    ld = LaunchDescription()
    # namespace, use_sim_time, use_respawn, log_level (and unbuffered log lines).
    ld.add_action(IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(launch_dir, 'common.launch.py'))))
    ld.add_action(declare_params_file_cmd)
    ld.add_action(declare_depth_topic_cmd)
    ld.add_action(declare_camera_info_topic_cmd)
    ld.add_action(declare_pointcloud_topic_cmd)
    ld.add_action(declare_scan_topic_cmd)
    ld.add_action(nodes_cmd)
    return ld
