"""The runner's threading model, over real DDS: a busy node never holds up another.

NodeGraph spins each node on an executor and thread of its own (runner.NodeSpinner). These tests
pin down what that buys, with events rather than timings: a node blocked in a callback, a
callback that raises, a paused node, and a vision node's depth arriving during inference.
"""
import threading

from edge_perception.conversions import numpy_to_image
from edge_perception.harness.replay import wait_until
from edge_perception.harness.runner import NodeGraph
from edge_perception.nodes.camera_inputs import CameraSideInputs
import numpy as np
import pytest
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image
from std_msgs.msg import String

QOS = QoSProfile(depth=10)


class Listener(Node):
    """Counts String messages; sets `got_enough` after `enough` of them."""

    def __init__(self, context, enough=5, name='listener'):
        super().__init__(name, context=context, namespace='runner')
        self.received = 0
        self.enough = enough
        self.got_enough = threading.Event()
        self.create_subscription(String, 'chatter', self._on_message, QOS)

    def _on_message(self, msg):
        self.received += 1
        if self.received >= self.enough:
            self.got_enough.set()


class Blocker(Node):
    """A timer callback that blocks (as a long inference would) until released."""

    def __init__(self, context, release):
        super().__init__('blocker', context=context, namespace='runner')
        self.release = release
        self.blocking = threading.Event()
        self.released_in_time = None
        self.timer = self.create_timer(0.01, self._on_timer)

    def _on_timer(self):
        self.timer.cancel()
        self.blocking.set()
        self.released_in_time = self.release.wait(10.0)


@pytest.fixture
def graph():
    graph = NodeGraph([], namespace='runner').spin_in_background()
    yield graph
    graph.shutdown()


def talker(graph):
    node = graph.add_node(Node('talker', context=graph.context, namespace='runner'))
    return node.create_publisher(String, 'chatter', QOS)


def test_a_node_blocked_in_a_callback_does_not_hold_up_another(graph):
    listener = graph.add_node(Listener(graph.context))
    blocker = graph.add_node(Blocker(graph.context, listener.got_enough))
    pub = talker(graph)
    assert wait_until(lambda: pub.get_subscription_count() > 0, 10.0)
    assert blocker.blocking.wait(10.0)
    # While the blocker is stuck in its callback, the listener must keep receiving: its
    # messages release the blocker. With one shared single thread nothing would arrive.
    assert wait_until(lambda: pub.publish(String(data='x')) or listener.got_enough.is_set(),
                      10.0, poll_s=0.02)
    assert wait_until(lambda: blocker.released_in_time is not None, 10.0)
    assert blocker.released_in_time, 'the listener was held up by the blocked node'


class Raiser(Node):
    """A timer whose first callback raises; later ones count."""

    def __init__(self, context):
        super().__init__('raiser', context=context, namespace='runner')
        self.calls = 0
        self.create_timer(0.01, self._on_timer)

    def _on_timer(self):
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError('a bug in a callback')


def test_a_callback_that_raises_is_counted_and_the_node_keeps_running(graph):
    raiser = graph.add_node(Raiser(graph.context))
    assert wait_until(lambda: raiser.calls >= 5, 10.0), 'the node stopped after the error'
    assert graph.failures == 1


def test_a_paused_node_gets_nothing_until_resumed(graph):
    listener = graph.add_node(Listener(graph.context, enough=1))
    pub = talker(graph)
    assert wait_until(lambda: pub.get_subscription_count() > 0, 10.0)
    with graph.paused(listener):
        for _ in range(3):
            pub.publish(String(data='x'))
        # Delivered to the listener's subscription, not taken: nothing runs while paused. The
        # publisher's own spin thread proves the graph still runs meanwhile.
        probe = graph.add_node(Listener(graph.context, enough=3, name='probe'))
        assert wait_until(lambda: pub.get_subscription_count() >= 2, 10.0)
        assert wait_until(lambda: pub.publish(String(data='y')) or probe.got_enough.is_set(),
                          10.0, poll_s=0.02)
        assert listener.received == 0
    assert listener.got_enough.wait(10.0), 'the resumed node did not take its messages'


def test_depth_keeps_arriving_while_the_vision_node_is_busy(graph):
    node = graph.add_node(Node('vision', context=graph.context, namespace='runner'))
    side = CameraSideInputs(node, 'depth/image_raw', 'depth/camera_info', 0.5, 1.0)
    try:
        source = graph.add_node(Node('depth_camera', context=graph.context,
                                     namespace='runner'))
        pub = source.create_publisher(Image, 'depth/image_raw', QOS)
        assert wait_until(lambda: pub.get_subscription_count() > 0, 10.0)
        depth = numpy_to_image(np.ones((4, 4), np.float32), '32FC1')
        # The vision node itself does not spin (as during a long inference callback) ...
        with graph.paused(node):
            # ... and its depth arrives all the same (the companion receiver has its thread).
            assert wait_until(lambda: pub.publish(depth) or side.depth.received >= 3, 10.0,
                              poll_s=0.02)
    finally:
        side.close()


def test_shutdown_stops_every_spin_thread():
    graph = NodeGraph(['time_to_impact', 'haptic_alert'], namespace='runner_stop')
    graph.spin_in_background()
    names = {t.name for t in threading.enumerate() if t.name.startswith('spin:')}
    assert {'spin:time_to_impact', 'spin:haptic_alert'} <= names
    graph.shutdown()
    alive = [t.name for t in threading.enumerate() if t.name.startswith('spin:') and t.is_alive()]
    assert not alive, alive
