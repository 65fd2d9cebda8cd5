"""Waste-sorting perception: detector -> tracker -> time_to_impact -> haptic_alert, + markers.

    ros2 launch edge_perception perception.launch.py
    ros2 launch edge_perception perception.launch.py namespace:=arm1 device:=cuda:0 \
        model_path:=/opt/edge_perception/models/waste_detector_orin_nx_fp16.engine \
        image_topic:=/camera/color/image_raw \
        depth_topic:=/camera/aligned_depth_to_color/image_raw \
        camera_info_topic:=/camera/color/camera_info

Modelled on nav2_bringup's navigation_launch.py: every argument is declared with a description,
parameters come from one YAML file keyed `/**/<node>` (so a namespace still matches), and
use_sim_time is one switch for Gazebo or bag replay. The same file drives the single-process
runner (`edge-perception run --profile default`). The model_path and device arguments are
applied after the params file, so they win over its detector values.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description():
    """Declare the arguments and the five nodes."""
    share_dir = get_package_share_directory('edge_perception')

    namespace = LaunchConfiguration('namespace')
    use_sim_time = LaunchConfiguration('use_sim_time')
    params_file = LaunchConfiguration('params_file')
    model_path = LaunchConfiguration('model_path')
    device = LaunchConfiguration('device')
    image_topic = LaunchConfiguration('image_topic')
    depth_topic = LaunchConfiguration('depth_topic')
    camera_info_topic = LaunchConfiguration('camera_info_topic')
    use_markers = LaunchConfiguration('use_markers')
    use_respawn = LaunchConfiguration('use_respawn')
    log_level = LaunchConfiguration('log_level')

    sim_time = {'use_sim_time': ParameterValue(use_sim_time, value_type=bool)}
    # The nodes subscribe to these relative names (config/perception.yaml); remapping them
    # plugs in any camera driver without editing the params file.
    camera_remappings = [('camera/image_raw', image_topic),
                         ('camera/depth_registered/image_raw', depth_topic),
                         ('camera/camera_info', camera_info_topic)]

    declare_namespace_cmd = DeclareLaunchArgument(
        'namespace', default_value='',
        description='Namespace of all nodes and their relative topics (e.g. arm1)')
    declare_use_sim_time_cmd = DeclareLaunchArgument(
        'use_sim_time', default_value='false',
        description='Use the simulation (Gazebo) or bag clock on /clock if true')
    declare_params_file_cmd = DeclareLaunchArgument(
        'params_file', default_value=os.path.join(share_dir, 'config', 'perception.yaml'),
        description='Full path to the ROS 2 parameters file for all launched nodes')
    declare_model_path_cmd = DeclareLaunchArgument(
        'model_path', default_value='',
        description='Detector model (.pt, .onnx or TensorRT .engine; the backend follows the '
                    "suffix); '' = the shipped waste model. Overrides the params file")
    declare_device_cmd = DeclareLaunchArgument(
        'device', default_value='cpu',
        description="Detector inference device: 'cpu' or 'cuda:N' (an .engine always runs "
                    'on CUDA). Overrides the params file')
    declare_image_topic_cmd = DeclareLaunchArgument(
        'image_topic', default_value='camera/image_raw',
        description='Colour image topic (remapped to camera/image_raw)')
    declare_depth_topic_cmd = DeclareLaunchArgument(
        'depth_topic', default_value='camera/depth_registered/image_raw',
        description='Depth registered to the colour image, 16UC1 mm or 32FC1 m (remapped to '
                    'camera/depth_registered/image_raw; feeds the detector and time_to_impact)')
    declare_camera_info_topic_cmd = DeclareLaunchArgument(
        'camera_info_topic', default_value='camera/camera_info',
        description='Camera info of the colour image (remapped to camera/camera_info)')
    declare_use_markers_cmd = DeclareLaunchArgument(
        'use_markers', default_value='true',
        description='Also start the markers node (RViz MarkerArray on markers)')
    declare_use_respawn_cmd = DeclareLaunchArgument(
        'use_respawn', default_value='false',
        description='Respawn a node that exits (2 s delay)')
    declare_log_level_cmd = DeclareLaunchArgument(
        'log_level', default_value='info',
        description='Log level of all nodes (debug, info, warn, error)')

    detector_cmd = Node(
        package='edge_perception',
        executable='detector_node',
        name='detector',
        namespace=namespace,
        output='screen',
        respawn=use_respawn,
        respawn_delay=2.0,
        parameters=[params_file, sim_time,
                    {'model_path': ParameterValue(model_path, value_type=str),
                     'device': ParameterValue(device, value_type=str)}],
        arguments=['--ros-args', '--log-level', log_level],
        remappings=camera_remappings)
    tracker_cmd = Node(
        package='edge_perception',
        executable='tracker_node',
        name='tracker',
        namespace=namespace,
        output='screen',
        respawn=use_respawn,
        respawn_delay=2.0,
        parameters=[params_file, sim_time],
        arguments=['--ros-args', '--log-level', log_level])
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
        remappings=camera_remappings)
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
    markers_cmd = Node(
        condition=IfCondition(use_markers),
        package='edge_perception',
        executable='markers_node',
        name='markers',
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
    ld.add_action(declare_model_path_cmd)
    ld.add_action(declare_device_cmd)
    ld.add_action(declare_image_topic_cmd)
    ld.add_action(declare_depth_topic_cmd)
    ld.add_action(declare_camera_info_topic_cmd)
    ld.add_action(declare_use_markers_cmd)
    ld.add_action(declare_use_respawn_cmd)
    ld.add_action(declare_log_level_cmd)
    ld.add_action(detector_cmd)
    ld.add_action(tracker_cmd)
    ld.add_action(time_to_impact_cmd)
    ld.add_action(haptic_alert_cmd)
    ld.add_action(markers_cmd)
    return ld
