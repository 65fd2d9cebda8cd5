"""The node registry: every node of the package, named once.

Read by the in-process runner (edge_perception.harness.runner), the bringup profiles
(edge_perception.profiles), the parameter docs (tools/params_doc.py) and setup.py, which makes
a console script `<type>_node` (running the module's `main`) of each entry. setup.py reads this
file's syntax tree without importing the package, so NODE_TYPES stays a plain literal and
nothing is imported here at module level (profiles must not pull in rclpy).
"""

# Node type -> 'module:Class'. The type is also the node's default ROS name and the key of its
# section in the params files (`/**/<type>`).
NODE_TYPES = {
    'time_to_impact': 'edge_perception.nodes.time_to_impact_node:TimeToImpactNode',
    'haptic_alert': 'edge_perception.nodes.haptic_alert_node:HapticAlertNode',
    'detector': 'edge_perception.nodes.detector_node:DetectorNode',
    'waste_segmentation':
        'edge_perception.nodes.waste_segmentation_node:WasteSegmentationNode',
    'tracker': 'edge_perception.nodes.tracker_node:TrackerNode',
    'crack_segmentation': 'edge_perception.nodes.crack_segmentation_node:CrackSegmentationNode',
    'markers': 'edge_perception.nodes.markers_node:MarkersNode',
}


def node_module(type_name):
    """Return the name of the module that defines the node type (and its PARAMS and main)."""
    if type_name not in NODE_TYPES:
        raise ValueError(f'unknown node type {type_name!r}; known: {sorted(NODE_TYPES)}')
    return NODE_TYPES[type_name].split(':')[0]


def node_class(type_name):
    """Import and return the node class registered under type_name."""
    import importlib
    module_name = node_module(type_name)
    return getattr(importlib.import_module(module_name), NODE_TYPES[type_name].split(':')[1])
