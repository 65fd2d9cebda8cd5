"""edge_perception: waste detection, crack inspection and collision alerts for ROS 2 robots."""

__version__ = '0.1.0'
