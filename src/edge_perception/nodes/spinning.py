"""How a node is spun: an executor and thread of its own, or the standard `main()` of a node.

`NodeSpinner` serves the in-process graph (edge_perception.harness.runner) and the camera-inputs
companion node of the detector and crack nodes; `run_node` is the body of every node's `main()`
(`ros2 run edge_perception <node>_node`).
"""
import logging
import threading

import rclpy
from rclpy.executors import ExternalShutdownException, ShutdownException
from rclpy.executors import SingleThreadedExecutor

_LOG = logging.getLogger('edge_perception.spinning')


def run_node(node_class, args=None):
    """Spin one node the standard way until Ctrl-C or an external shutdown.

    rclpy.init, the node, rclpy.spin (a SingleThreadedExecutor: see NodeSpinner for why not
    multi-threaded), then destroy_node and rclpy.try_shutdown whatever ended the spin.
    """
    rclpy.init(args=args)
    node = None
    try:
        node = node_class()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


class NodeSpinner:
    """One node on a SingleThreadedExecutor of its own, spun in a daemon thread.

    Why not one MultiThreadedExecutor for the graph: rclpy's multi-threaded executor re-yields a
    callback that is queued but not yet started on every pass of its wait loop, so while a
    worker waits for the GIL the spinning thread loops at full speed holding it. Measured on
    the 2-core CI machine: the spin thread took 2.2-2.4 s of CPU in 2.4 s of bag replay, single
    callbacks stalled 300-700 ms and 80-90% of depth frames were never processed, on a quiet
    machine. One thread per node, each waiting and then running its own callbacks, has no such
    hand-off, and a slow node (inference) can never hold up another (the safety chain).
    This is the layout of rclcpp_components' component_container_isolated.
    """

    def __init__(self, node, on_failure=None):
        self.node = node
        self._on_failure = on_failure
        self.executor = SingleThreadedExecutor(context=node.context)
        self.executor.add_node(node)
        self._thread = None

    def start(self):
        """Start spinning in a daemon thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.spin, daemon=True,
                                            name=f'spin:{self.node.get_name()}')
            self._thread.start()
        return self

    def spin(self):
        """Spin until the executor or the context shuts down."""
        # One failing callback must not stop a safety graph: log it and keep spinning (the
        # node's diagnostics report its own errors).
        executor, context = self.executor, self.node.context
        while context.ok():
            try:
                executor.spin()
                return       # executor shut down
            except (ExternalShutdownException, ShutdownException, KeyboardInterrupt):
                return
            except Exception:  # noqa: BLE001
                if not context.ok():
                    return
                if self._on_failure is not None:
                    self._on_failure()
                _LOG.exception('callback of %s raised; node keeps running',
                               self.node.get_name())

    def stop(self, timeout_s=5.0):
        """Stop spinning (the node itself stays alive)."""
        self.executor.shutdown(timeout_sec=timeout_s)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout_s)
        self._thread = None
