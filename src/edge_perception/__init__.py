"""edge_perception: waste detection, crack inspection and collision alerts for ROS 2 robots."""
# The generated interfaces (edge_perception.msg) live in the colcon install space, the sources in
# src/ (development) or beside them (a colcon install): extend_path lets one package span both.
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

__version__ = '0.2.0'
