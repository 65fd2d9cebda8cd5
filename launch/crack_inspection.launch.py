"""Crack inspection: crack_segmentation (single expert or Top-K mixture) + markers.

    ros2 launch edge_perception crack_inspection.launch.py
    ros2 launch edge_perception crack_inspection.launch.py namespace:=drone1 \
        image_topic:=/camera/color/image_raw \
        depth_topic:=/camera/aligned_depth_to_color/image_raw \
        camera_info_topic:=/camera/color/camera_info

Modelled on nav2_bringup's navigation_launch.py: every argument declared with a description,
parameters from config/crack_inspection.yaml (keyed `/**/<node>`), the nodes in a group that
pushes the namespace and sets use_sim_time (Gazebo or bag replay) for both. The manifest_path
argument (the experts and gate) is applied after the params file. Without depth and camera
info the widths stay in pixels (`metric_valid: false`).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node, PushROSNamespace, SetParameter
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description():
    """Declare the arguments and the two nodes."""
    share_dir = get_package_share_directory('edge_perception')
    launch_dir = os.path.join(share_dir, 'launch')

    namespace = LaunchConfiguration('namespace')
    use_sim_time = LaunchConfiguration('use_sim_time')
    params_file = LaunchConfiguration('params_file')
    manifest_path = LaunchConfiguration('manifest_path')
    image_topic = LaunchConfiguration('image_topic')
    depth_topic = LaunchConfiguration('depth_topic')
    camera_info_topic = LaunchConfiguration('camera_info_topic')
    use_markers = LaunchConfiguration('use_markers')
    use_respawn = LaunchConfiguration('use_respawn')
    log_level = LaunchConfiguration('log_level')

    declare_params_file_cmd = DeclareLaunchArgument(
        'params_file', default_value=os.path.join(share_dir, 'config', 'crack_inspection.yaml'),
        description='Full path to the ROS 2 parameters file (strategy, top_k, severity bins)')
    declare_manifest_path_cmd = DeclareLaunchArgument(
        'manifest_path', default_value='',
        description="Crack models: YAML manifest of the ONNX experts and gate; '' = the "
                    'shipped models. Overrides the params file')
    declare_image_topic_cmd = DeclareLaunchArgument(
        'image_topic', default_value='camera/image_raw',
        description='Colour image topic (remapped to camera/image_raw)')
    declare_depth_topic_cmd = DeclareLaunchArgument(
        'depth_topic', default_value='camera/depth_registered/image_raw',
        description='Depth registered to the image, for widths in mm (remapped to '
                    'camera/depth_registered/image_raw)')
    declare_camera_info_topic_cmd = DeclareLaunchArgument(
        'camera_info_topic', default_value='camera/camera_info',
        description='Camera info of the image, for widths in mm (remapped to '
                    'camera/camera_info)')
    declare_use_markers_cmd = DeclareLaunchArgument(
        'use_markers', default_value='true',
        description='Also start the markers node (crack severity text in RViz)')

    # Every node: log to the screen, respawn when asked, at the requested log level.
    node_options = {'output': 'screen', 'respawn': use_respawn, 'respawn_delay': 2.0,
                    'arguments': ['--ros-args', '--log-level', log_level]}
    nodes_cmd = GroupAction([
        PushROSNamespace(namespace),
        SetParameter('use_sim_time', use_sim_time),
        Node(
            package='edge_perception',
            executable='crack_segmentation_node',
            name='crack_segmentation',
            parameters=[params_file,
                        {'manifest_path': ParameterValue(manifest_path, value_type=str)}],
            # Unloading PyTorch/ONNX Runtime at exit takes seconds on a busy CPU: more time
            # than launch's default 5 s before it escalates a Ctrl-C to SIGTERM.
            sigterm_timeout='20',
            **node_options,
            remappings=[('camera/image_raw', image_topic),
                        ('camera/depth_registered/image_raw', depth_topic),
                        ('camera/camera_info', camera_info_topic)]),
        Node(
            condition=IfCondition(use_markers),
            package='edge_perception',
            executable='markers_node',
            name='markers',
            parameters=[params_file],
            **node_options),
    ])

    ld = LaunchDescription()
    # namespace, use_sim_time, use_respawn, log_level (and unbuffered log lines).
    ld.add_action(IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(launch_dir, 'common.launch.py'))))
    ld.add_action(declare_params_file_cmd)
    ld.add_action(declare_manifest_path_cmd)
    ld.add_action(declare_image_topic_cmd)
    ld.add_action(declare_depth_topic_cmd)
    ld.add_action(declare_camera_info_topic_cmd)
    ld.add_action(declare_use_markers_cmd)
    ld.add_action(nodes_cmd)
    return ld
