"""Replays a rosbag2 (read with `rosbags`) over real DDS with rclpy, at the recorded pace.

Two time modes:
- restamp (default): header stamps are shifted by one constant offset so the first message is
  stamped "now"; relative timing is exact and the graph sees a live sensor (latency measurable
  against the wall clock);
- clock: stamps are kept and rosgraph_msgs/Clock is published with the bag time, as Gazebo does,
  for nodes running with use_sim_time.
"""
import importlib
import threading
import time

from edge_perception.bags import read_bag
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from rosgraph_msgs.msg import Clock

# Reliable keep-last publishers match both reliable and best-effort subscribers.
PLAYER_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                        reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)


def message_class(msgtype):
    """'sensor_msgs/msg/Image' -> the rclpy message class."""
    package, _, name = msgtype.split('/')
    return getattr(importlib.import_module(f'{package}.msg'), name)


class BagPlayer:
    """Publishes a bag's messages through a node's publishers."""

    def __init__(self, node: Node, bag_path, rate=1.0, mode='restamp', topic_map=None):
        if mode not in ('restamp', 'clock'):
            raise ValueError(f"mode must be 'restamp' or 'clock', not {mode!r}")
        self.node = node
        self.rate = float(rate)
        self.mode = mode
        self.topic_map = dict(topic_map or {})
        self.messages = []
        for topic, msgtype, record_ns, raw in read_bag(bag_path):
            msg = deserialize_message(raw, message_class(msgtype))
            self.messages.append((self.topic_map.get(topic, topic), record_ns * 1e-9, msg))
        self._publishers = {}
        for topic, _, msg in self.messages:
            if topic not in self._publishers:
                self._publishers[topic] = node.create_publisher(type(msg), topic, PLAYER_QOS)
        self._clock_pub = (node.create_publisher(Clock, '/clock', 10)
                           if mode == 'clock' else None)
        self.offset_s = 0.0          # added to every stamp in restamp mode
        self.published = 0
        self.max_lateness_s = 0.0

    def wait_for_subscribers(self, topics, timeout_s=10.0):
        """Block until each topic has a matched subscription; return the ones that do not."""
        deadline = time.monotonic() + timeout_s
        pending = set(topics)
        while pending and time.monotonic() < deadline:
            pending = {t for t in pending if self._publishers[t].get_subscription_count() == 0}
            if pending:
                time.sleep(0.02)
        return pending

    def play(self, stop: threading.Event = None):
        """Publish every message at its recorded time (scaled by rate). Returns self."""
        if not self.messages:
            return self
        t0 = self.messages[0][1]
        wall0 = time.time()
        mono0 = time.monotonic()
        self.offset_s = wall0 - t0
        for topic, t_rec, msg in self.messages:
            if stop is not None and stop.is_set():
                break
            due = mono0 + (t_rec - t0) / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.max_lateness_s = max(self.max_lateness_s, time.monotonic() - due)
            if self.mode == 'restamp' and hasattr(msg, 'header'):
                self._shift(msg.header.stamp, self.offset_s if self.rate == 1.0 else None,
                            wall0 + (t_rec - t0) / self.rate)
            elif self._clock_pub is not None:
                clock = Clock()
                clock.clock.sec = int(t_rec)
                clock.clock.nanosec = int(round((t_rec - int(t_rec)) * 1e9)) % 1_000_000_000
                self._clock_pub.publish(clock)
            self._publishers[topic].publish(msg)
            self.published += 1
        return self

    @staticmethod
    def _shift(stamp, offset_s, wall_s):
        # At rate 1 shift by the constant offset (exact relative timing); otherwise stamp with the
        # scaled wall time so stamps stay consistent with the pace the graph sees.
        seconds = (stamp.sec + stamp.nanosec * 1e-9 + offset_s) if offset_s is not None else wall_s
        stamp.sec = int(seconds)
        stamp.nanosec = int(round((seconds - int(seconds)) * 1e9)) % 1_000_000_000
