"""Single-process runner: start a set of nodes from params YAML files on one rclpy executor.

`launch`/`launch_ros` are not installable from PyPI, so this is how the graph runs in development,
CI and the demo. It reads the same params files the launch files pass (`--ros-args --params-file`,
keyed by node name with `ros__parameters`), so both start identical graphs.

    edge-perception run --nodes time_to_impact haptic_alert --params-file config/collision.yaml
"""
import contextlib
import gc
import signal
import threading

from edge_perception.nodes.registry import node_class
from edge_perception.nodes.spinning import NodeSpinner
import rclpy
from rclpy.context import Context


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
    """A set of nodes in one process, with its own rclpy context, each node spun in a thread.

    Used by `edge-perception run`, by the demo and by the integration tests, so all three start
    the same real nodes over real DDS. Each node has an executor and a thread of its own
    (NodeSpinner), as each would have in a process of its own under the launch files.
    """

    def __init__(self, node_types, params_files=(), use_sim_time=None, namespace='',
                 extra_ros_args=()):
        self.node_types = list(node_types)
        self.namespace = namespace
        self.context = Context()
        rclpy.init(
            args=['edge_perception'] + ros_args(params_files, use_sim_time, extra_ros_args),
            context=self.context)
        self.nodes = {}
        self.extra_nodes = []
        self.failures = 0          # callbacks that raised (logged, graph kept running)
        self.last_replay_end = None   # monotonic end of the last scenario replay (harness.replay)
        self._spinners = {}        # node -> NodeSpinner
        self._lock = threading.Lock()
        self._spinning = False
        for type_name in self.node_types:
            self.start_node(type_name)

    def _count_failure(self):
        with self._lock:
            self.failures += 1

    def _attach(self, node):
        spinner = NodeSpinner(node, self._count_failure)
        with self._lock:
            self._spinners[node] = spinner
            spinning = self._spinning
        if spinning:
            spinner.start()
        return node

    def _detach(self, node):
        with self._lock:
            spinner = self._spinners.pop(node, None)
        if spinner is not None:
            spinner.stop()

    def start_node(self, type_name):
        """Create the node of type_name and start spinning it (if the graph spins)."""
        node = node_class(type_name)(context=self.context, namespace=self.namespace)
        self.nodes[type_name] = node
        return self._attach(node)

    def stop_node(self, type_name):
        """Stop and destroy one node (as if its process died)."""
        node = self.nodes.pop(type_name)
        self._detach(node)
        node.destroy_node()

    def restart_node(self, type_name):
        """Stop and start one node again; returns the new node."""
        self.stop_node(type_name)
        return self.start_node(type_name)

    def add_node(self, node):
        """Add an extra node built by the caller with this graph's context (e.g. a test probe)."""
        self.extra_nodes.append(node)
        return self._attach(node)

    def remove_node(self, node):
        """Remove and destroy an extra node added with add_node."""
        self._detach(node)
        self.extra_nodes.remove(node)
        node.destroy_node()

    def pause(self, *nodes):
        """Stop spinning nodes (a test calling their callbacks directly).

        Their timers and subscriptions do not run meanwhile; their publishers keep working.
        """
        for node in nodes:
            self._detach(node)

    def resume(self, *nodes):
        """Spin paused nodes again."""
        for node in nodes:
            self._attach(node)

    @contextlib.contextmanager
    def paused(self, *nodes):
        """pause() for the duration of a with block."""
        self.pause(*nodes)
        try:
            yield nodes
        finally:
            self.resume(*nodes)

    def spin_in_background(self):
        """Start every node's spin thread; returns self."""
        with self._lock:
            self._spinning = True
            spinners = list(self._spinners.values())
        for spinner in spinners:
            spinner.start()
        return self

    def spin(self):
        """Spin until shutdown (Ctrl-C) in the calling thread."""
        self.spin_in_background()
        stopped = threading.Event()
        self.context.on_shutdown(stopped.set)
        while self.context.ok() and not stopped.wait(0.5):
            pass

    def shutdown(self):
        """Stop every spin thread, destroy the nodes and free the context's DDS participant."""
        if self.context.ok():
            rclpy.shutdown(context=self.context)      # wakes and ends every spin loop
        with self._lock:
            spinners = list(self._spinners.values())
            self._spinners.clear()
            self._spinning = False
        for spinner in spinners:
            spinner.stop(timeout_s=2.0)
        # The context's shutdown destroyed the nodes already.
        self.nodes.clear()
        self.extra_nodes.clear()
        # Free the DDS participant now: while an executor holds the context's handle its
        # destruction is deferred, and a process that starts many graphs (tests, restarts) would
        # keep every old participant alive, announcing to each new one (measured: ~2.4 native
        # threads leaked per graph; later graphs' messages got delayed). The spinners own the
        # executors: drop the last references before destroying the context.
        del spinners
        try:
            self.context.destroy()
        except Exception:  # noqa: BLE001 - already destroyed: nothing left to free
            pass
        gc.collect()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()


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
