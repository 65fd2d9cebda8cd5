"""Managed (lifecycle) nodes for the nodes that load models: detector and crack segmentation.

As in nav2 and yolo_ros: `configure` loads and warms the models and creates the publishers,
`activate` subscribes to the camera, `deactivate` unsubscribes (the models stay loaded),
`cleanup` frees the models. With the parameter `autostart` (default true) the node configures
and activates itself at start-up, as nav2's lifecycle_manager does with autostart, so
`ros2 launch`, `ros2 run` and the in-process runner need no manager; with `autostart: false` it
waits in `unconfigured` for `ros2 lifecycle set <node> configure` / `activate`.

A model that cannot be loaded does not fail `configure`: the node stays up, reports the reason in
its diagnostics (ERROR) and retries every `model_retry_s`, so a file copied into place later is
picked up without a restart (the project's rule for bad input: say what is wrong, recover).
"""
from edge_perception.nodes.common import Param
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

AUTOSTART_PARAM = Param(
    'autostart', True, 'Configure (load and warm the models) and activate at start-up; false: '
    'wait for `ros2 lifecycle set <node> configure` and `activate`')


class ManagedNode(LifecycleNode):
    """A LifecycleNode that can start itself and reports its state in diagnostics."""

    def autostart(self):
        """Configure, then activate; returns the resulting state's label."""
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()
        return self.lifecycle_state()

    def lifecycle_state(self):
        """Return the current state's label: unconfigured, inactive, active or finalized."""
        return self._state_machine.current_state[1]

    def lifecycle_status(self):
        """Diagnostics extra: the state, WARN unless active."""
        from diagnostic_msgs.msg import DiagnosticStatus
        state = self.lifecycle_state()
        level = DiagnosticStatus.OK if state == 'active' else DiagnosticStatus.WARN
        return level, ('' if state == 'active' else f'lifecycle state {state}'), {
            'lifecycle_state': state}
