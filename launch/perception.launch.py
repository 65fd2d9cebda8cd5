"""Waste-sorting perception: detector -> tracker -> time_to_impact -> haptic_alert, + markers.

    ros2 launch edge_perception perception.launch.py
    ros2 launch edge_perception perception.launch.py waste_model:=segmentation
    ros2 launch edge_perception perception.launch.py namespace:=arm1 device:=cuda:0 \
        model_path:=/opt/edge_perception/models/waste_detector_orin_nx_fp16.engine \
        image_topic:=/camera/color/image_raw \
        depth_topic:=/camera/aligned_depth_to_color/image_raw \
        camera_info_topic:=/camera/color/camera_info

Modelled on nav2_bringup: every argument is declared with a description, parameters come from
one YAML file keyed `/**/<node>` (so a namespace still matches), and use_sim_time is one switch
for Gazebo or bag replay. As bringup_launch.py includes navigation_launch.py, this file starts
the waste nodes (detector, tracker, markers) in a group that pushes the namespace, sets
use_sim_time and remaps the camera topics, and includes collision.launch.py for
time_to_impact and haptic_alert with the same namespace, params file and camera remaps. The
same params file drives the single-process runner (`edge-perception run --profile default`).
The model_path and device arguments are applied after the params file, so they win over its
detector values. `waste_model:=segmentation` starts waste_segmentation (per-pixel materials,
one detection per region) in the detector's place: both publish `detections`, so the tracker,
markers and time_to_impact are the same either way.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import EqualsSubstitution, LaunchConfiguration
from launch_ros.actions import Node, PushROSNamespace, SetParameter, SetRemap
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description():
    """Declare the arguments, the three waste nodes and include the collision nodes."""
    share_dir = get_package_share_directory('edge_perception')
    launch_dir = os.path.join(share_dir, 'launch')

    namespace = LaunchConfiguration('namespace')
    use_sim_time = LaunchConfiguration('use_sim_time')
    params_file = LaunchConfiguration('params_file')
    model_path = LaunchConfiguration('model_path')
    device = LaunchConfiguration('device')
    image_topic = LaunchConfiguration('image_topic')
    depth_topic = LaunchConfiguration('depth_topic')
    camera_info_topic = LaunchConfiguration('camera_info_topic')
    use_markers = LaunchConfiguration('use_markers')
    waste_model = LaunchConfiguration('waste_model')
    use_respawn = LaunchConfiguration('use_respawn')
    log_level = LaunchConfiguration('log_level')

    # The nodes subscribe to these relative names (config/perception.yaml); remapping them
    # plugs in any camera driver without editing the params file.
    camera_remaps = [SetRemap(src='camera/image_raw', dst=image_topic),
                     SetRemap(src='camera/depth_registered/image_raw', dst=depth_topic),
                     SetRemap(src='camera/camera_info', dst=camera_info_topic)]

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
    declare_waste_model_cmd = DeclareLaunchArgument(
        'waste_model', default_value='detector', choices=['detector', 'segmentation'],
        description="What finds the waste items: 'detector' (YOLO boxes + material of each "
                    "crop) or 'segmentation' (per-pixel materials, a detection per region)")
    declare_use_markers_cmd = DeclareLaunchArgument(
        'use_markers', default_value='true',
        description='Also start the markers node (RViz MarkerArray on markers)')

    # Every node: log to the screen, respawn when asked, at the requested log level.
    node_options = {'output': 'screen', 'respawn': use_respawn, 'respawn_delay': 2.0,
                    'arguments': ['--ros-args', '--log-level', log_level]}
    waste_nodes_cmd = GroupAction([
        PushROSNamespace(namespace),
        SetParameter('use_sim_time', use_sim_time),
        *camera_remaps,
        Node(
            condition=IfCondition(EqualsSubstitution(waste_model, 'detector')),
            package='edge_perception',
            executable='detector_node',
            name='detector',
            parameters=[params_file,
                        {'model_path': ParameterValue(model_path, value_type=str),
                         'device': ParameterValue(device, value_type=str)}],
            # Unloading PyTorch/ONNX Runtime at exit takes seconds on a busy CPU: more time
            # than launch's default 5 s before it escalates a Ctrl-C to SIGTERM.
            sigterm_timeout='20',
            **node_options),
        Node(
            condition=IfCondition(EqualsSubstitution(waste_model, 'segmentation')),
            package='edge_perception',
            executable='waste_segmentation_node',
            name='waste_segmentation',
            parameters=[params_file],
            sigterm_timeout='20',
            **node_options),
        Node(
            package='edge_perception',
            executable='tracker_node',
            name='tracker',
            parameters=[params_file],
            **node_options),
        Node(
            condition=IfCondition(use_markers),
            package='edge_perception',
            executable='markers_node',
            name='markers',
            parameters=[params_file],
            **node_options),
    ])
    # time_to_impact (scene mode on the detector's depth, object mode on the tracks) and
    # haptic_alert: collision.launch.py pushes the namespace and sets use_sim_time itself; the
    # camera remaps apply to time_to_impact's depth and camera info inputs here.
    collision_cmd = GroupAction([
        *camera_remaps,
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(os.path.join(launch_dir, 'collision.launch.py')),
            launch_arguments={'namespace': namespace,
                              'use_sim_time': use_sim_time,
                              'params_file': params_file,
                              'use_respawn': use_respawn,
                              'log_level': log_level}.items()),
    ])

    ld = LaunchDescription()
    # namespace, use_sim_time, use_respawn, log_level (and unbuffered log lines).
    ld.add_action(IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(launch_dir, 'common.launch.py'))))
    ld.add_action(declare_params_file_cmd)
    ld.add_action(declare_model_path_cmd)
    ld.add_action(declare_device_cmd)
    ld.add_action(declare_image_topic_cmd)
    ld.add_action(declare_depth_topic_cmd)
    ld.add_action(declare_camera_info_topic_cmd)
    ld.add_action(declare_waste_model_cmd)
    ld.add_action(declare_use_markers_cmd)
    ld.add_action(waste_nodes_cmd)
    ld.add_action(collision_cmd)
    return ld
