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
from edge_perception.nodes.camera_inputs import CameraSideInputs
from edge_perception.nodes.common import Param, SENSOR_QOS
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from sensor_msgs.msg import Image

AUTOSTART_PARAM = Param(
    'autostart', True, 'Configure (load and warm the models) and activate at start-up; false: '
    'wait for `ros2 lifecycle set <node> configure` and `activate`')


class ManagedNode(LifecycleNode):
    """A camera-fed LifecycleNode that can start itself and reports its state in diagnostics.

    Subclasses set `self.params` (image_topic, depth_topic, camera_info_topic, max_depth_age_s,
    stale_after_s), `self.image_input` and `self.diagnostics`, define `on_image`, `on_configure`
    (calling `_open_camera_inputs`) and `_release()` (free models and publishers, then
    `_close_camera_inputs`); activation subscribes `on_image` to the image topic.
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

    def _open_camera_inputs(self):
        """Subscribe to depth and camera info (params depth_topic, camera_info_topic)."""
        p = self.params
        self.side = CameraSideInputs(self, p['depth_topic'], p['camera_info_topic'],
                                     p['max_depth_age_s'], p['stale_after_s'])
        self.diagnostics.inputs = [self.image_input] + self.side.monitors

    def _close_camera_inputs(self):
        if self.side is not None:
            self.side.close()
            self.side = None
        self.diagnostics.inputs = [self.image_input]

    def _apply_input_timing(self):
        """Apply run-time stale_after_s and max_depth_age_s to the image and side inputs."""
        p = self.params
        self.image_input.stale_after_s = p['stale_after_s']
        if self.side is not None:
            self.side.max_depth_age_s = p['max_depth_age_s']
            for monitor in self.side.monitors:
                monitor.stale_after_s = p['stale_after_s']

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
