"""How a node is spun: an executor and thread of its own, or the standard `main()` of a node.

`NodeSpinner` serves the in-process graph (edge_perception.harness.runner) and the camera-inputs
companion node of the detector and crack nodes; `run_node` is the body of every node's `main()`
(`ros2 run edge_perception <node>_node`).
"""
import ctypes
import faulthandler
import logging
import os
import signal
import sys
import threading

import rclpy
from rclpy.exceptions import InvalidHandle
from rclpy.executors import ExternalShutdownException, ShutdownException
from rclpy.executors import SingleThreadedExecutor

_LOG = logging.getLogger('edge_perception.spinning')
_PR_SET_PDEATHSIG = 1   # linux/prctl.h


def die_with_parent():
    """Ask the kernel for SIGTERM when the parent process exits (Linux; elsewhere a no-op).

    `ros2 launch` stopped by SIGTERM exits without stopping its children (upstream launch says
    "using SIGTERM can result in orphaned processes"); a node that asked for this ends with it,
    cleanly, through rclpy's SIGTERM handling.
    """
    if not sys.platform.startswith('linux'):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        parent = os.getppid()
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:     # the parent died before the request: end now
            os.kill(os.getpid(), signal.SIGTERM)
    except (OSError, AttributeError):
        _LOG.debug('prctl(PR_SET_PDEATHSIG) unavailable: node outlives a killed parent')


def _ctrl_c_is_handled_by_rclpy(signum, frame):
    """Python's side of SIGINT in a node process: nothing (rclpy's handler does the work)."""


def run_node(node_class, args=None):
    """Spin one node the standard way until Ctrl-C, SIGTERM or an external shutdown; exit 0.

    rclpy.init, the node, rclpy.spin (a SingleThreadedExecutor: see NodeSpinner for why not
    multi-threaded), then destroy_node and rclpy.try_shutdown whatever ended the spin. A
    terminal's Ctrl-C reaches every process of the group and `ros2 launch` forwards one more
    SIGINT: further SIGINTs are ignored once shutting down, so the clean-up is not cut short
    (it used to end with exit code -2 and a KeyboardInterrupt out of destroy_node).
    """
    die_with_parent()
    # `kill -USR1 <pid>` prints every thread's stack: for a node that hangs in the field.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    # Ctrl-C ends the node through rclpy's own handler (it shuts the context down, so spin ends
    # with ExternalShutdownException), not through a KeyboardInterrupt raised wherever the main
    # thread happens to be: one landing while rclpy converted a taken 640 KB image killed the
    # node with a pybind11 RuntimeError, another left a half-built rclpy Task whose __del__
    # printed a traceback. rclpy chains to the handler installed before init: this no-op.
    signal.signal(signal.SIGINT, _ctrl_c_is_handled_by_rclpy)
    rclpy.init(args=args)
    node = None
    try:
        node = node_class()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # rclpy's handler shuts the context down between two steps of the executor, which may
        # then fail to build its wait set (RCLError: context not valid): that is the shutdown.
        if node is None or node.context.ok():
            raise
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


def _context_ok(context):
    """context.ok(), False once the context is being destroyed (it then raises InvalidHandle)."""
    try:
        return context.ok()
    except InvalidHandle:
        return False


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
        while _context_ok(context):
            try:
                executor.spin()
                return       # executor shut down
            except (ExternalShutdownException, ShutdownException, KeyboardInterrupt):
                return
            except Exception:  # noqa: BLE001
                if not _context_ok(context):
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
