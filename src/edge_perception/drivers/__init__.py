"""Device drivers: the serial link to the haptic device and the sound player.

They talk to hardware (a serial port, an audio player process), so they are neither algorithms
(`core/`) nor ROS glue (`nodes/`); no rclpy here either, so they are tested without ROS (the
serial link on a real pseudo-terminal).
"""
