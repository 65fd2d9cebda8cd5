"""Sub-commands of the `edge-perception` CLI: one module each, exposing `register(subparsers)`.

Tool modules must import heavy dependencies (torch, ultralytics, rclpy) inside their `run`
functions, not at module level, so `edge-perception --help` stays fast.
"""
