"""ROS 2 nodes: thin glue (parameters, message conversion, wiring) around edge_perception.core."""
