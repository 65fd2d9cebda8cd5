"""Replay scenario bags through a running NodeGraph and collect what the graph publishes.

Shared by the integration tests, the demo and the latency benchmark, so all of them measure the
real nodes over real DDS the same way.
"""
import threading
import time

from edge_perception.bags import bag_topics
from edge_perception.conversions import stamp_to_seconds
from edge_perception.core.collision_metrics import (AlertRecord, collision_figures,
                                                    CommandRecord)
from edge_perception.harness.bag_player import BagPlayer
from edge_perception.msg import CollisionAlert, HapticCommand
from edge_perception.nodes.common import ALERT_QOS
from rclpy.node import Node


class Probe(Node):
    """Records every message of the given topics with its wall-clock receive time.

    keep_last=N keeps only the newest N per topic: a flood test measuring its own process's
    memory must not count a pile of received messages (segmentation masks are 0.3 MB each).
    """

    def __init__(self, context, topics, name='probe', namespace='', keep_last=None):
        super().__init__(name, context=context, namespace=namespace)
        self.keep_last = keep_last
        # Re-entrant: wait_for's predicate may call snapshot() while the lock is held.
        self._lock = threading.RLock()
        self._condition = threading.Condition(self._lock)
        self.records = {topic: [] for topic in topics}
        self._probe_subscriptions = {}
        for topic, (msg_type, qos) in topics.items():
            self._probe_subscriptions[topic] = self.create_subscription(
                msg_type, topic, lambda msg, t=topic: self._on_message(t, msg), qos)

    def _on_message(self, topic, msg):
        with self._condition:
            records = self.records[topic]
            records.append((msg, time.time()))
            if self.keep_last and len(records) > self.keep_last:
                del records[:-self.keep_last]
            self._condition.notify_all()

    def matched_publishers(self, topic):
        """Return how many publishers are matched to the subscription of topic."""
        return self._probe_subscriptions[topic].get_publisher_count()

    def clear(self):
        """Forget everything received so far."""
        with self._lock:
            for values in self.records.values():
                values.clear()

    def wait_for(self, predicate, timeout_s):
        """Wait until predicate(records) is true; return whether it became true in time."""
        deadline = time.monotonic() + timeout_s
        with self._condition:
            while not predicate(self.records):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
            return True

    def snapshot(self, topic):
        """Return a copy of the (msg, receive time) list of one topic."""
        with self._lock:
            return list(self.records[topic])


def collision_probe(graph, alert_topic='collision_alert', command_topic='haptic_command'):
    """Return a Probe on the collision chain's outputs, added to graph's executor."""
    return graph.add_node(Probe(graph.context, {
        alert_topic: (CollisionAlert, ALERT_QOS), command_topic: (HapticCommand, ALERT_QOS)},
        namespace=graph.namespace))


def wait_until(predicate, timeout_s, poll_s=0.01):
    """Poll predicate() until it is true or timeout_s passes; return its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(poll_s)


def play_bag(graph, bag_path, input_topics, mode='restamp', rate=1.0, player_name='bag_player'):
    """Play a bag into the graph once its input subscriptions are matched; returns the player.

    In a namespaced graph the bag's absolute topics are moved into the namespace
    ('/scan' -> '/ns/scan'), as `ros2 bag play --remap` would.
    """
    namespace = '/' + graph.namespace.strip('/') if graph.namespace.strip('/') else ''
    topic_map = {t: namespace + t for t in bag_topics(bag_path)} if namespace else {}
    node = graph.add_node(Node(player_name, context=graph.context, namespace=graph.namespace))
    player = BagPlayer(node, bag_path, rate=rate, mode=mode, topic_map=topic_map)
    wanted = [topic_map.get(t, t) for t in input_topics]
    missing = player.wait_for_subscribers(
        [t for t in wanted if t in player._publishers], timeout_s=15.0)
    if missing:
        raise RuntimeError(f'no subscriber matched {sorted(missing)} within 15 s')
    player.play()
    return player


def replay_and_collect(graph, bag_path, input_topics, topic, msg_type, last_stamp_s, qos,
                       timeout_s=30.0, name='collector'):
    """Play a bag into the graph and collect what it publishes on one topic.

    Waits until the output stamped with the bag's last frame (last_stamp_s, bag time) arrived or
    timeout_s passed. Returns (messages in arrival order, the player's restamp offset in s), so
    an output's bag time is its stamp minus the offset.
    """
    probe = graph.add_node(Probe(graph.context, {topic: (msg_type, qos)}, name=name,
                                 namespace=graph.namespace))
    try:
        if not wait_until(lambda: probe.matched_publishers(topic) > 0, 15.0):
            raise RuntimeError(f'no publisher matched on {topic}')
        player = play_bag(graph, bag_path, input_topics)
        last = last_stamp_s + player.offset_s
        probe.wait_for(lambda r: any(stamp_to_seconds(m.header.stamp) >= last - 1e-6
                                     for m, _ in r[topic]), timeout_s)
        messages = [m for m, _ in probe.snapshot(topic)]
        graph.remove_node(player.node)
        return messages, player.offset_s
    finally:
        graph.remove_node(probe)


def replay_collision_scenario(graph, probe, scenario, bag_path, input_topics,
                              alert_topic='collision_alert', command_topic='haptic_command',
                              settle_s=3.0, min_gap_s=1.5):
    """Play a scenario's bag, wait for the last frame's alert, and return its CollisionFigures."""
    # Matched, not merely known to the graph: reliable messages sent before the match are lost.
    if not wait_until(lambda: probe.matched_publishers(alert_topic) > 0
                      and probe.matched_publishers(command_topic) > 0, 15.0):
        raise RuntimeError(f'no publisher matched on {alert_topic} / {command_topic}')
    # Separate recordings are separate: leave more than max_baseline_s (1 s) of silence after
    # the previous scenario so that none of its frames can serve as a reference for this one.
    last_end = getattr(graph, 'last_replay_end', None)
    if last_end is not None:
        time.sleep(max(0.0, last_end + min_gap_s - time.monotonic()))
    probe.clear()
    player = play_bag(graph, bag_path, input_topics)
    last_stamp = scenario.frames[-1].stamp_s + player.offset_s
    probe.wait_for(lambda records: any(
        stamp_to_seconds(m.header.stamp) >= last_stamp - 1e-6 and m.level != 4
        for m, _ in records[alert_topic]), settle_s)
    alerts = [AlertRecord(stamp_to_seconds(m.header.stamp) - player.offset_s, m.level,
                          m.time_to_impact_s, rx, stamp_to_seconds(m.header.stamp))
              for m, rx in probe.snapshot(alert_topic)]
    commands = [CommandRecord(stamp_to_seconds(m.header.stamp) - player.offset_s, m.level,
                              m.pattern, rx, stamp_to_seconds(m.header.stamp))
                for m, rx in probe.snapshot(command_topic)]
    graph.remove_node(player.node)
    graph.last_replay_end = time.monotonic()
    return collision_figures(scenario.name, scenario.frames, alerts, commands), alerts, commands
