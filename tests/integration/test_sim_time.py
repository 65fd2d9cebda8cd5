"""The collision chain on simulated time (use_sim_time, /clock from the bag, as with Gazebo).

The approach scenario is replayed with its own stamps (0 .. 2.33 s) while /clock carries the
bag time. The graph must judge everything in that time: alerts carry the bag's stamps, the
WARNING comes within 0.5 s of bag time after it is due, TTI is right in simulated seconds, and
the sensor watchdog runs on the node clock, so a stopped /clock (simulation paused, bag ended)
raises no SENSOR_LOST by wall time alone, while /clock moving on without sensor data does.
"""
import pathlib
import time

from edge_perception.bags import write_scenario_bag
from edge_perception.conversions import stamp_to_seconds
from edge_perception.core.collision_metrics import AlertRecord, collision_figures
from edge_perception.harness.replay import collision_probe, play_bag, wait_until
from edge_perception.harness.runner import NodeGraph
from edge_perception.harness.scenarios import scenario_by_name
from edge_perception.msg import CollisionAlert, HapticCommand
import pytest
from rclpy.node import Node
from rosgraph_msgs.msg import Clock

CONFIG = pathlib.Path(__file__).resolve().parents[2] / 'config' / 'collision.yaml'
NAMESPACE = 'sim'
DEPTH_INPUTS = ['/depth/image_raw', '/depth/camera_info']
SENSOR_TIMEOUT_S = 0.5          # config/collision.yaml
WARM_UP_S = 0.3                 # the estimator needs baseline_s (0.25 s) of history
LOST = CollisionAlert.LEVEL_SENSOR_LOST


def clock_msg(seconds):
    msg = Clock()
    msg.clock.sec = int(seconds)
    msg.clock.nanosec = int(round((seconds - int(seconds)) * 1e9)) % 1_000_000_000
    return msg


def stamp(msg):
    return stamp_to_seconds(msg.header.stamp)


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """Replay the approach on sim time, then stop /clock, then advance it without data."""
    graph = NodeGraph(['time_to_impact', 'haptic_alert'], [CONFIG], use_sim_time=True,
                      namespace=NAMESPACE).spin_in_background()
    probe = collision_probe(graph)
    scenario = scenario_by_name('approach')
    bag = write_scenario_bag(scenario, tmp_path_factory.mktemp('bags') / 'approach')
    end_s = scenario.frames[-1].stamp_s
    result = {'scenario': scenario, 'end_s': end_s}
    try:
        assert wait_until(lambda: probe.matched_publishers('collision_alert') > 0, 15.0)
        probe.clear()
        player = play_bag(graph, bag, DEPTH_INPUTS, mode='clock')
        # The last frame is never skipped (freshest-frame QoS drops only frames a newer one
        # replaced), so its alert marks the end of the replay.
        assert probe.wait_for(lambda records: any(
            abs(stamp(m) - end_s) < 1e-6 and m.level != LOST
            for m, _ in records['collision_alert']), 5.0), 'no alert for the last frame'
        result['bag_alerts'] = probe.snapshot('collision_alert')
        graph.remove_node(player.node)

        # /clock has stopped at end_s: wall time passes, simulated time does not.
        frozen_from = time.time()
        result['lost_while_frozen'] = probe.wait_for(lambda records: any(
            m.level == LOST and rx > frozen_from for m, rx in records['collision_alert']),
            3 * SENSOR_TIMEOUT_S)
        result['alerts_while_frozen'] = [
            m for m, rx in probe.snapshot('collision_alert') if rx > frozen_from]

        # Simulated time moves on by 1 s with no sensor data.
        clock_node = graph.add_node(Node('sim_clock', context=graph.context))
        clock_pub = clock_node.create_publisher(Clock, '/clock', 10)
        assert wait_until(lambda: clock_pub.get_subscription_count() >= 2, 10.0)
        probe.clear()
        clock_pub.publish(clock_msg(end_s + 1.0))
        probe.wait_for(lambda records: any(m.level == LOST for m, _ in records[
            'collision_alert']) and any(m.level == LOST for m, _ in records['haptic_command']),
            5.0)
        result['after_advance'] = probe.snapshot('collision_alert')
        result['commands_after_advance'] = probe.snapshot('haptic_command')

        # The clock jumps back (a looping bag, a simulation reset) and then runs on for 1 s in
        # 0.1 s ticks, as a simulator's would, with no sensor data.
        probe.clear()
        for tick in range(11):
            clock_pub.publish(clock_msg(0.05 + 0.1 * tick))
            time.sleep(0.05)        # pace the ticks so the nodes' timers see each of them
        probe.wait_for(lambda records: any(m.level == LOST for m, _ in records[
            'collision_alert']), 3.0)
        result['after_jump_back'] = probe.snapshot('collision_alert')
        yield result
    finally:
        graph.shutdown()


def test_alert_stamps_are_the_bags_sim_time(run):
    scenario, alerts = run['scenario'], run['bag_alerts']
    frame_stamps = {round(f.stamp_s, 6) for f in scenario.frames}
    judged = [m for m, _ in alerts if m.level != LOST]
    # Scene alerts copy the depth header: exactly a bag stamp, not a wall-clock time.
    assert judged and all(round(stamp(m), 6) in frame_stamps for m in judged)
    # SENSOR_LOST (warm-up, before the first estimate) is stamped with the node clock: sim time.
    assert all(0.0 <= stamp(m) <= run['end_s'] + 1e-6 for m, _ in alerts)
    due = {round(f.stamp_s, 6) for f in scenario.frames if f.stamp_s >= WARM_UP_S}
    got = {round(stamp(m), 6) for m in judged}
    # The node may skip a frame when busy (freshest frame only), by design: see
    # test_collision_chain.coverage.
    assert len(due & got) / len(due) >= 0.9, 'alerts lost on the way'


def test_warning_in_time_and_tti_in_simulated_seconds(run):
    scenario = run['scenario']
    records = [AlertRecord(stamp(m), m.level, m.time_to_impact_s, rx, stamp(m))
               for m, rx in run['bag_alerts']]
    figures = collision_figures(scenario.name, scenario.frames, records)
    print(f'sim time: {figures.summary()}')                 # pytest -s, for the notes
    assert not figures.missed
    assert figures.unmatched_alerts == 0, figures.unmatched_stamps_s    # stamps are bag stamps
    assert figures.detection_delay_s <= 0.5, figures.summary()   # bag time after it was due
    assert figures.lead_time_s >= 2.0, figures.summary()
    assert figures.median_tti_rel_error <= 0.10, figures.summary()
    assert max(m.level for m, _ in run['bag_alerts'] if m.level != LOST) == \
        CollisionAlert.LEVEL_CRITICAL


def test_no_sensor_lost_from_wall_time_while_the_clock_stands_still(run):
    assert not run['lost_while_frozen'], [
        (stamp(m), m.level, m.reason) for m in run['alerts_while_frozen']]
    # Nothing at all is published on a stopped clock: the watchdog is a sim-time timer.
    assert [m for m in run['alerts_while_frozen'] if stamp(m) > run['end_s'] + 1e-6] == []


def test_sensor_lost_when_sim_time_moves_on_without_data(run):
    lost = [m for m, _ in run['after_advance'] if m.level == LOST]
    assert lost, 'no SENSOR_LOST after /clock advanced 1 s without sensor data'
    assert stamp(lost[0]) == pytest.approx(run['end_s'] + 1.0, abs=1e-6)
    assert lost[0].header.frame_id == 'camera_depth_optical_frame'   # last known frame
    # Silent for 1 s of simulated time (minus at most one frame: the clock and the frame race).
    silent_s = float(lost[0].reason.split(' for ')[1].split(' s')[0])
    assert 1.0 - 1 / 30 - 1e-6 <= silent_s <= 1.0 + 1e-6, lost[0].reason
    commands = [m for m, _ in run['commands_after_advance']
                if m.level == LOST and m.pattern == HapticCommand.PATTERN_SENSOR_LOST]
    assert commands, 'the haptic device was not told'


def test_sensor_lost_after_the_clock_jumps_back(run):
    # Sensor silent for 1 s of simulated time after the jump: SENSOR_LOST, stamped after it.
    lost = [m for m, _ in run['after_jump_back'] if m.level == LOST]
    assert lost and all(0.05 - 1e-6 <= stamp(m) <= 1.05 + 1e-6 for m in lost), [
        (stamp(m), m.reason) for m, _ in run['after_jump_back']]
