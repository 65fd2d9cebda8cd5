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
from edge_perception.nodes.common import Param, SENSOR_QOS
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from sensor_msgs.msg import Image

AUTOSTART_PARAM = Param(
    'autostart', True, 'Configure (load and warm the models) and activate at start-up; false: '
    'wait for `ros2 lifecycle set <node> configure` and `activate`')


class ManagedNode(LifecycleNode):
    """A camera-fed LifecycleNode that can start itself and reports its state in diagnostics.

    Subclasses set `self.side` (camera-side inputs or None) and `self.params` (with
    `image_topic`), define `on_image`, `on_configure` and `_release()` (free models, publishers
    and inputs); activation subscribes `on_image` to the image topic.
    """

    side = None
    _image_sub = None

    def on_activate(self, state):
        """Subscribe to the camera: frames are processed from now on."""
        self._image_sub = self.create_subscription(Image, self.params['image_topic'],
                                                   self.on_image, SENSOR_QOS)
        return super().on_activate(state)

    def on_deactivate(self, state):
        """Unsubscribe from the camera; models and publishers stay."""
        if self._image_sub is not None:
            self.destroy_subscription(self._image_sub)
            self._image_sub = None
        return super().on_deactivate(state)

    def on_cleanup(self, state):
        """Free the models, publishers and camera-side inputs (back to unconfigured)."""
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state):
        """Release everything on the way to finalized."""
        self.on_deactivate(state)
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self):
        """Stop the camera-side receiver thread with the node."""
        if self.side is not None:
            self.side.close()
        return super().destroy_node()

    def _release(self):
        raise NotImplementedError

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
