"""Single-process runner: start a set of nodes from params YAML files on one rclpy executor.

`launch`/`launch_ros` are not installable from PyPI, so this is how the graph runs in development,
CI and the demo. It reads the same params files the launch files pass (`--ros-args --params-file`,
keyed by node name with `ros__parameters`), so both start identical graphs.

    edge-perception run --nodes time_to_impact haptic_alert --params-file config/collision.yaml
"""
import gc
import importlib
import logging
import signal
import threading

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

_LOG = logging.getLogger('edge_perception.runner')

# Node type name -> 'module:Class'. The type name is also the node's default ROS name.
NODE_TYPES = {
    'time_to_impact': 'edge_perception.nodes.time_to_impact_node:TimeToImpactNode',
    'haptic_alert': 'edge_perception.nodes.haptic_alert_node:HapticAlertNode',
    'detector': 'edge_perception.nodes.detector_node:DetectorNode',
    'tracker': 'edge_perception.nodes.tracker_node:TrackerNode',
    'crack_segmentation': 'edge_perception.nodes.crack_segmentation_node:CrackSegmentationNode',
    'markers': 'edge_perception.nodes.markers_node:MarkersNode',
}


def node_class(type_name):
    """Import and return the node class registered under type_name."""
    if type_name not in NODE_TYPES:
        raise ValueError(f'unknown node type {type_name!r}; known: {sorted(NODE_TYPES)}')
    module_name, class_name = NODE_TYPES[type_name].split(':')
    return getattr(importlib.import_module(module_name), class_name)


def ros_args(params_files=(), use_sim_time=None, extra=()):
    """Return the `--ros-args` list for params files, use_sim_time and extra ROS arguments."""
    args = ['--ros-args']
    for path in params_files:
        args += ['--params-file', str(path)]
    if use_sim_time is not None:
        args += ['-p', f'use_sim_time:={str(bool(use_sim_time)).lower()}']
    args += list(extra)
    return args if len(args) > 1 else []


class NodeGraph:
    """A set of nodes in one process, with its own rclpy context, spun in a background thread.

    Used by `edge-perception run`, by the demo and by the integration tests, so all three start
    the same real nodes over real DDS.
    """

    def __init__(self, node_types, params_files=(), use_sim_time=None, namespace='',
                 extra_ros_args=(), num_threads=None):
        self.node_types = list(node_types)
        self.namespace = namespace
        self.context = Context()
        rclpy.init(
            args=['edge_perception'] + ros_args(params_files, use_sim_time, extra_ros_args),
            context=self.context)
        self.executor = MultiThreadedExecutor(
            num_threads=num_threads or max(2, len(self.node_types) + 1), context=self.context)
        self.nodes = {}
        self.extra_nodes = []
        self.failures = 0          # callbacks that raised (logged, graph kept running)
        self.last_replay_end = None   # monotonic end of the last scenario replay (nodes.replay)
        self._thread = None
        for type_name in self.node_types:
            self.start_node(type_name)

    def start_node(self, type_name):
        """Create the node of type_name and add it to the executor."""
        node = node_class(type_name)(context=self.context, namespace=self.namespace)
        self.nodes[type_name] = node
        self.executor.add_node(node)
        return node

    def stop_node(self, type_name):
        """Remove and destroy one node (as if its process died)."""
        node = self.nodes.pop(type_name)
        self.executor.remove_node(node)
        node.destroy_node()

    def restart_node(self, type_name):
        """Stop and start one node again; returns the new node."""
        self.stop_node(type_name)
        return self.start_node(type_name)

    def add_node(self, node):
        """Add an extra node built by the caller with this graph's context (e.g. a test probe)."""
        self.executor.add_node(node)
        self.extra_nodes.append(node)
        return node

    def remove_node(self, node):
        """Remove and destroy an extra node added with add_node."""
        self.executor.remove_node(node)
        self.extra_nodes.remove(node)
        node.destroy_node()

    def spin_in_background(self):
        """Spin the executor in a daemon thread; returns self."""
        self._thread = threading.Thread(target=self._spin, name='node-graph', daemon=True)
        self._thread.start()
        return self

    def _spin(self):
        # One failing callback must not stop every other node of a safety graph: log it and
        # keep spinning (the node's diagnostics report its own errors).
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.1)
            except (ExternalShutdownException, KeyboardInterrupt):
                break
            except Exception:  # noqa: BLE001
                if not self.context.ok():
                    break
                self.failures += 1
                _LOG.exception('callback raised; graph keeps running')

    def spin(self):
        """Spin in the calling thread until shutdown (Ctrl-C)."""
        self._spin()

    def shutdown(self):
        """Destroy the nodes and shut the context down."""
        if self.context.ok():
            rclpy.shutdown(context=self.context)      # stops the spin loop
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self.executor.shutdown(timeout_sec=2.0)
        # The context's shutdown destroyed the nodes already.
        self.nodes.clear()
        self.extra_nodes.clear()
        # Free the DDS participant now: while the executor holds the context's handle its
        # destruction is deferred, and a process that starts many graphs (tests, restarts) would
        # keep every old participant alive, announcing to each new one (measured: ~2.4 native
        # threads leaked per graph; later graphs' messages got delayed).
        self.executor = None
        try:
            self.context.destroy()
        except Exception:  # noqa: BLE001 - already destroyed: nothing left to free
            pass
        gc.collect()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()


def spin_nodes(node_classes, args=None):
    """Entry point helper for a one-node executable (ros2 run style: ROS args from argv)."""
    rclpy.init(args=args)
    executor = MultiThreadedExecutor()
    nodes = [cls() for cls in node_classes]
    for node in nodes:
        executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for node in nodes:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


def run_graph(node_types, params_files=(), use_sim_time=None, namespace='', extra_ros_args=()):
    """Run a graph in the foreground until SIGINT/SIGTERM."""
    graph = NodeGraph(node_types, params_files, use_sim_time, namespace, extra_ros_args)
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
        if graph.context.ok():
            rclpy.shutdown(context=graph.context)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        graph.spin()
    finally:
        graph.shutdown()
