"""The launch files run for real: `ros2 launch` from the colcon install space, as a user would.

Each launch file is started in a namespace of its own. The test asserts that every expected node
appears exactly once in that namespace, that the topics between the nodes are connected, that a
bag replayed into it yields alerts (collision), detections (perception) or crack segmentations,
and that a Ctrl-C in the terminal (SIGINT to the whole process group) ends every node with exit
code 0. A SIGTERM to `ros2 launch` alone (as `kill` or a process supervisor sends) must leave
no node process behind.

Images cross process boundaries at full size (640x480 rgb8, 921,600 B): this test process plays
the camera driver with the shipped Fast DDS profile (config/fastdds_large_images.xml, a 16 MB
shared-memory segment; with Fast DDS's 512 KB default most such images are lost between
processes on this machine), and the launch files give it to the nodes by default.

Needs the real `launch`/`launch_ros`/`ros2cli` (a full ROS install, or ../shared/ros2-extra
installed by scripts/bootstrap.sh) and the colcon install space ros2_ws/install.
"""
import os
import pathlib
import shutil
import signal
import subprocess

from edge_perception.bags import write_scenario_bag
from edge_perception.harness.replay import play_bag, Probe, wait_until
from edge_perception.harness.runner import NodeGraph
from edge_perception.harness.samples import (crack_frames, waste_belt_frames, waste_camera,
                                             write_color_depth_bag, write_crack_bag)
from edge_perception.harness.scenarios import approach
from edge_perception.msg import (CollisionAlert, CrackSegmentation, DetectionArray,
                                 HapticCommand)
from edge_perception.nodes.common import ALERT_QOS, DATA_QOS
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
INSTALL = ROOT / 'ros2_ws' / 'install' / 'edge_perception'
ROS2 = shutil.which('ros2')
pytestmark = pytest.mark.skipif(
    ROS2 is None or not (INSTALL / 'share' / 'edge_perception' / 'launch').is_dir(),
    reason='needs the ros2 command (ros2cli, ros2launch) and the colcon install space: on a full '
           'ROS install from the distribution, here from ../shared/ros2-extra via bootstrap')

# The camera side (this process) loads the profile before its first DDS participant exists.
LARGE_IMAGES_PROFILE = ROOT / 'config' / 'fastdds_large_images.xml'
os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(LARGE_IMAGES_PROFILE)
NAMESPACE = 'launch_test'
EXPECTED_NODES = {
    'collision.launch.py': {'time_to_impact', 'haptic_alert'},
    'perception.launch.py': {'detector', 'tracker', 'markers', 'time_to_impact',
                             'haptic_alert'},
    'crack_inspection.launch.py': {'crack_segmentation', 'markers'},
}
# (publisher node, topic, subscriber node) pairs that must be connected.
CONNECTIONS = {
    'collision.launch.py': [('time_to_impact', 'collision_alert', 'haptic_alert')],
    'perception.launch.py': [('detector', 'detections', 'tracker'),
                             ('time_to_impact', 'collision_alert', 'haptic_alert'),
                             ('tracker', 'tracks', 'markers')],
    'crack_inspection.launch.py': [('crack_segmentation', 'crack/segmentation', 'markers')],
}
START_TIMEOUT_S = 90.0      # model loading and warm-up on a loaded 2-core machine


def children_of(pid):
    """Return the PIDs of the processes whose parent is pid (from /proc)."""
    found = []
    for entry in pathlib.Path('/proc').iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / 'stat').read_text().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def alive(pid):
    """Return True while pid exists and is not a zombie."""
    try:
        state = pathlib.Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0]
    except OSError:
        return False
    return state != 'Z'


class Launch:
    """One `ros2 launch edge_perception <file>` in a process group of its own, logged to a file."""

    def __init__(self, launch_file, tmp_path, *arguments):
        self.log_path = tmp_path / f'{launch_file}.log'
        self._log = open(self.log_path, 'w')
        # Without the profile in its environment: the launch file's default must provide it.
        env = {k: v for k, v in os.environ.items() if k != 'FASTDDS_DEFAULT_PROFILES_FILE'}
        self.proc = subprocess.Popen(
            [ROS2, 'launch', 'edge_perception', launch_file, f'namespace:={NAMESPACE}',
             *arguments],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env=env)

    def log(self):
        self._log.flush()
        return self.log_path.read_text()

    def stop(self, sig, timeout_s=30.0):
        """Send sig (SIGINT to the group, as a terminal's Ctrl-C does); return the exit code."""
        if sig == signal.SIGINT:
            os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout_s)
        finally:
            self._log.close()

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for pid in children_of(self.proc.pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def graph():
    """Yield a test-side rclpy context (no nodes of ours) to watch the launched graph."""
    g = NodeGraph([], namespace=NAMESPACE).spin_in_background()
    yield g
    g.shutdown()


def our_nodes(watcher):
    """Return (name, namespace) of every node in the graph, as `ros2 node list` sees them."""
    return watcher.get_node_names_and_namespaces()


def wait_for_nodes(watcher, launch, expected):
    """Wait until every expected node is up in the namespace; return the node list."""
    want = {(name, '/' + NAMESPACE) for name in expected}

    def ready():
        if launch.proc.poll() is not None:
            raise AssertionError(f'ros2 launch exited early ({launch.proc.returncode}):\n'
                                 + launch.log()[-3000:])
        return want <= set(our_nodes(watcher))
    assert wait_until(ready, START_TIMEOUT_S, poll_s=0.2), (
        f'nodes {sorted(want - set(our_nodes(watcher)))} did not appear:\n' + launch.log()[-3000:])
    return our_nodes(watcher)


def assert_each_node_once(nodes, expected):
    in_namespace = [name for name, ns in nodes if ns == '/' + NAMESPACE]
    for name in expected:
        assert in_namespace.count(name) == 1, f'{name} appears {in_namespace.count(name)} times'
    # No helper node took over a launched node's name (launch's __node:= rename).
    assert len(in_namespace) == len(set(in_namespace)), in_namespace


def assert_connected(watcher, launch_file):
    for publisher, topic, subscriber in CONNECTIONS[launch_file]:
        full = f'/{NAMESPACE}/{topic}'

        def linked():
            pubs = {i.node_name for i in watcher.get_publishers_info_by_topic(full)}
            subs = {i.node_name for i in watcher.get_subscriptions_info_by_topic(full)}
            return publisher in pubs and subscriber in subs
        # A node is listed before its entities exist (the tracker imports PyTorch first).
        assert wait_until(linked, START_TIMEOUT_S, poll_s=0.2), (
            f'{publisher} -> {full} -> {subscriber}')


def wait_for_matched(watcher, topics):
    """Wait until the watcher's subscriptions are matched with the launched publishers.

    Known to the graph is not enough: reliable messages sent before the match are lost.
    """
    assert wait_until(lambda: all(watcher.matched_publishers(t) > 0 for t in topics),
                      START_TIMEOUT_S, poll_s=0.1), f'no publisher matched on {topics}'


def assert_clean_sigint_exit(launch, pids):
    code = launch.stop(signal.SIGINT)
    log = launch.log_path.read_text()
    assert code == 0, f'ros2 launch exit code {code}:\n{log[-3000:]}'
    assert 'process has died' not in log, log[-3000:]
    assert 'Traceback' not in log, log[-3000:]
    assert log.count('process has finished cleanly') == len(pids), log[-3000:]
    assert not [p for p in pids if alive(p)]


def test_collision_launch_alerts_and_exits_cleanly(graph, tmp_path):
    launch = Launch('collision.launch.py', tmp_path)
    try:
        watcher = graph.add_node(Probe(graph.context, {
            'collision_alert': (CollisionAlert, ALERT_QOS),
            'haptic_command': (HapticCommand, ALERT_QOS)}, namespace=NAMESPACE))
        nodes = wait_for_nodes(watcher, launch, EXPECTED_NODES['collision.launch.py'])
        assert_each_node_once(nodes, EXPECTED_NODES['collision.launch.py'])
        assert_connected(watcher, 'collision.launch.py')
        pids = children_of(launch.proc.pid)
        assert len(pids) == 2, pids

        wait_for_matched(watcher, ['collision_alert', 'haptic_command'])
        bag = write_scenario_bag(approach(), tmp_path / 'approach')
        play_bag(graph, bag, ['/depth/image_raw'])
        assert watcher.wait_for(lambda r: any(
            m.level >= CollisionAlert.LEVEL_WARNING for m, _ in r['collision_alert']), 10.0)
        assert watcher.wait_for(lambda r: any(
            m.pattern >= HapticCommand.PATTERN_WARNING for m, _ in r['haptic_command']), 10.0)
        assert_clean_sigint_exit(launch, pids)
    finally:
        launch.kill()


def test_perception_launch_detects_and_exits_cleanly(graph, tmp_path):
    launch = Launch('perception.launch.py', tmp_path)
    try:
        watcher = graph.add_node(Probe(graph.context, {
            'detections': (DetectionArray, DATA_QOS), 'tracks': (DetectionArray, DATA_QOS)},
            namespace=NAMESPACE))
        expected = EXPECTED_NODES['perception.launch.py']
        nodes = wait_for_nodes(watcher, launch, expected)
        assert_each_node_once(nodes, expected)
        assert_connected(watcher, 'perception.launch.py')
        pids = children_of(launch.proc.pid)
        assert len(pids) == len(expected), pids

        wait_for_matched(watcher, ['detections', 'tracks'])
        width, height, k = waste_camera()
        frames = waste_belt_frames()
        bag = write_color_depth_bag(tmp_path / 'belt', frames, width, height, k)
        play_bag(graph, bag, ['/camera/image_raw'])
        assert watcher.wait_for(lambda r: any(
            len(m.detections) > 0 for m, _ in r['detections']), 30.0), launch.log()[-3000:]
        # Full-size frames across processes: (nearly) every one answered, not a lucky few.
        assert watcher.wait_for(lambda r: len(r['detections']) >= len(frames) - 2, 30.0), (
            f"{len(watcher.snapshot('detections'))} of {len(frames)} frames answered")
        assert watcher.wait_for(lambda r: any(
            any(d.track_id >= 0 for d in m.detections) for m, _ in r['tracks']), 30.0)
        assert_clean_sigint_exit(launch, pids)
    finally:
        launch.kill()


def test_crack_launch_segments_and_exits_cleanly(graph, tmp_path):
    launch = Launch('crack_inspection.launch.py', tmp_path)
    try:
        watcher = graph.add_node(Probe(graph.context, {
            'crack/segmentation': (CrackSegmentation, DATA_QOS)}, namespace=NAMESPACE))
        expected = EXPECTED_NODES['crack_inspection.launch.py']
        nodes = wait_for_nodes(watcher, launch, expected)
        assert_each_node_once(nodes, expected)
        assert_connected(watcher, 'crack_inspection.launch.py')
        pids = children_of(launch.proc.pid)

        wait_for_matched(watcher, ['crack/segmentation'])
        bag = write_crack_bag(tmp_path / 'cracks', crack_frames())
        play_bag(graph, bag, ['/camera/image_raw'])
        assert watcher.wait_for(lambda r: any(
            m.component_count > 0 and m.metric_valid
            for m, _ in r['crack/segmentation']), 60.0), launch.log()[-3000:]
        assert_clean_sigint_exit(launch, pids)
    finally:
        launch.kill()


def test_sigterm_to_launch_leaves_no_node_behind(graph, tmp_path):
    launch = Launch('collision.launch.py', tmp_path)
    try:
        watcher = graph.add_node(Probe(graph.context, {}, namespace=NAMESPACE))
        wait_for_nodes(watcher, launch, EXPECTED_NODES['collision.launch.py'])
        pids = children_of(launch.proc.pid)
        assert len(pids) == 2, pids
        launch.stop(signal.SIGTERM)
        # launch itself exits without stopping its children (upstream behaviour); each node
        # asks the kernel for SIGTERM when its parent dies, and exits on it.
        assert wait_until(lambda: not [p for p in pids if alive(p)], 30.0, poll_s=0.1), (
            'node processes left running after SIGTERM to ros2 launch')
    finally:
        launch.kill()
