"""Algorithms and model runtimes. Nothing in this package may import rclpy."""
