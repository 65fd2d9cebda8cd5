"""The collision chain over real DDS: scenario rosbag2 -> time_to_impact -> haptic_alert.

In the style of nav2_collision_monitor's bag test: each scenario is written as an MCAP rosbag2,
replayed at its recorded pace (restamped to now, like a live sensor), and the figures of what the
graph published are asserted: missed alerts, false-alert rate, TTI error, alert lead time.
Latency is measured here too but asserted only loosely (shared 2-core CI machines); the benchmark
`edge-perception bench-collision` reports it properly.
"""
import math
import pathlib

from edge_perception.bags import write_scenario_bag
from edge_perception.harness.rendered_scenes import load_rendered_scene
from edge_perception.harness.replay import collision_probe, replay_collision_scenario
from edge_perception.harness.runner import NodeGraph
from edge_perception.harness.scenarios import scenario_by_name
from edge_perception.msg import CollisionAlert
import pytest

CONFIG = pathlib.Path(__file__).resolve().parents[2] / 'config' / 'collision.yaml'
DEPTH_INPUTS = ['/depth/image_raw', '/depth/camera_info']
DEPTH_FRAME = 'camera_depth_optical_frame'      # write_scenario_bag's depth frame_id
RESULTS = {}


@pytest.fixture(scope='module', autouse=True)
def figures_table():
    """Print the figures of every scenario run once the module is done (seen with pytest -s)."""
    yield
    for name, summary in RESULTS.items():
        print(name, {k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v)
                     for k, v in summary.items()})


@pytest.fixture(scope='module')
def chain():
    graph = NodeGraph(['time_to_impact', 'haptic_alert'], [CONFIG]).spin_in_background()
    probe = collision_probe(graph)
    yield graph, probe
    graph.shutdown()


@pytest.fixture(scope='module')
def bag_dir(tmp_path_factory):
    return tmp_path_factory.mktemp('bags')


WARM_UP_S = 0.3   # the estimator needs baseline_s (0.25 s) of history before it can judge


def coverage(figures, alerts, scenario):
    """Fraction of frames after the warm-up that got a judged (non SENSOR_LOST) alert.

    The node may skip a frame it cannot take in time (sensor QoS keeps only the freshest), by
    design, so coverage is asserted >= 90%, not 100%. Measured 0.98-1.0 since each node spins in
    its own thread; with one MultiThreadedExecutor for the graph it fell to 0.27-0.89 (its spin
    thread busy-looped holding the GIL: see runner.NodeSpinner).
    """
    due = {round(f.stamp_s, 6) for f in scenario.frames if f.stamp_s >= WARM_UP_S}
    got = {round(a.scenario_stamp_s, 6) for a in alerts if a.level != 4}
    return len(due & got) / len(due)


def run(chain, bag_dir, name, inputs=DEPTH_INPUTS, **kwargs):
    graph, probe = chain
    scenario = scenario_by_name(name, **kwargs)
    bag = write_scenario_bag(scenario, bag_dir / name)
    figures, alerts, commands = replay_collision_scenario(graph, probe, scenario, bag, inputs)
    RESULTS[name] = dict(figures.summary(), coverage=coverage(figures, alerts, scenario))
    assert figures.unmatched_alerts == 0, f'alert stamps of no frame: {figures.unmatched_stamps_s}'
    assert RESULTS[name]['coverage'] >= 0.9, f'alerts lost on the way: {RESULTS[name]}'
    return figures, alerts, commands


@pytest.mark.parametrize('name', ['approach', 'approach_irregular'])
def test_approach_alerts_in_time_with_accurate_tti(chain, bag_dir, name):
    figures, alerts, commands = run(chain, bag_dir, name)
    assert not figures.missed
    # The scenario starts at TTI 2.67 s (8 m at 3 m/s), so the alert is due from the first
    # frame; the estimator needs one reference baseline (0.25 s) of history. So: raised within
    # 0.5 s of being due, leaving at least 2 s to react.
    assert figures.detection_delay_s <= 0.5, figures.summary()
    assert figures.lead_time_s >= 2.0, figures.summary()
    assert figures.median_tti_rel_error <= 0.10
    levels = [a.level for a in alerts if a.level != 4]
    assert max(levels) == 3, 'a 3 m/s approach to 1 m must reach CRITICAL (TTI < 1 s)'
    # The haptic device was told: the escalation reached it as a command of the same level.
    assert any(c.level == 3 and c.pattern == 3 for c in commands)
    assert figures.haptic_latency_ms and max(figures.haptic_latency_ms) < 500


@pytest.mark.parametrize('name', ['cross', 'enter', 'recede', 'static'])
def test_no_false_alerts(chain, bag_dir, name):
    figures, alerts, _ = run(chain, bag_dir, name)
    assert figures.false_alert_frames == 0, figures.summary()
    assert figures.false_alert_rate == 0.0


def test_walking_to_a_wall_gives_tti_but_no_warning(chain, bag_dir):
    figures, alerts, _ = run(chain, bag_dir, 'walk_to_wall')
    assert not figures.raised_warning
    assert figures.median_tti_rel_error <= 0.10, figures.summary()
    assert figures.tti_rel_errors, 'TTI must be estimated for a real (slow) approach'


def test_rendered_thrown_ball_alerts_in_time_over_dds(chain, bag_dir):
    # A MuJoCo-rendered scene (harness.rendered_scenes): a 0.25 m ball lobbed from 9 m, moving
    # 40-100 px across the image per 0.25 s. The real node must follow it as an object.
    graph, probe = chain
    scenario = load_rendered_scene('thrown_ball')
    bag = write_scenario_bag(scenario, bag_dir / 'rendered_thrown_ball')
    figures, alerts, commands = replay_collision_scenario(graph, probe, scenario, bag,
                                                          DEPTH_INPUTS)
    RESULTS['rendered_thrown_ball'] = dict(figures.summary(),
                                           coverage=coverage(figures, alerts, scenario))
    assert RESULTS['rendered_thrown_ball']['coverage'] >= 0.9, RESULTS['rendered_thrown_ball']
    assert not figures.missed, figures.summary()
    # Due from 0.1 s; offline the estimator alerts at 0.13 s. The bar: <= 0.35 s late.
    assert figures.detection_delay_s <= 0.35, figures.summary()
    contact_s = scenario.meta['contact_time_s']
    assert contact_s - figures.first_warning_stamp_s >= 1.1, figures.summary()
    assert figures.median_tti_rel_error <= 0.15, figures.summary()
    assert any(c.level >= 2 for c in commands), 'the haptic device must be told'


def test_rendered_pedestrian_crossing_no_false_alert_over_dds(chain, bag_dir):
    graph, probe = chain
    scenario = load_rendered_scene('pedestrian_crossing')
    bag = write_scenario_bag(scenario, bag_dir / 'rendered_pedestrian_crossing')
    figures, alerts, _ = replay_collision_scenario(graph, probe, scenario, bag, DEPTH_INPUTS)
    RESULTS['rendered_pedestrian_crossing'] = dict(figures.summary(),
                                                   coverage=coverage(figures, alerts, scenario))
    assert RESULTS['rendered_pedestrian_crossing']['coverage'] >= 0.9
    assert figures.false_alert_frames == 0, figures.summary()


def test_every_output_copies_the_input_header(chain, bag_dir):
    _, probe = chain
    _, records, _ = run(chain, bag_dir, 'approach')    # run() asserts no unmatched stamp
    frame_stamps = {round(f.stamp_s, 6) for f in scenario_by_name('approach').frames}
    judged = [a for a in records if a.level != CollisionAlert.LEVEL_SENSOR_LOST]
    assert judged and all(round(a.scenario_stamp_s, 6) in frame_stamps for a in judged)
    # The raw messages of this replay (the probe is cleared at the start of each replay).
    # From the first frame's alert on: before any frame (a fresh node's watchdog) no header
    # exists to copy.
    alerts = [m for m, _ in probe.snapshot('collision_alert')]
    alerts = alerts[next(i for i, m in enumerate(alerts)
                         if m.level != CollisionAlert.LEVEL_SENSOR_LOST):]
    commands = [m for m, _ in probe.snapshot('haptic_command')]
    commands = commands[next(i for i, m in enumerate(commands)
                             if m.level != CollisionAlert.LEVEL_SENSOR_LOST):]
    assert {m.header.frame_id for m in alerts} == {DEPTH_FRAME}
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in alerts
              if m.level != CollisionAlert.LEVEL_SENSOR_LOST]
    assert len(set(stamps)) == len(stamps), 'two alerts with one stamp'
    # Haptic commands render alerts: the frame_id and the stamp of the alert they render.
    rendered = [c for c in commands if c.level != CollisionAlert.LEVEL_SENSOR_LOST]
    assert any(c.level == CollisionAlert.LEVEL_CRITICAL for c in rendered)
    assert {c.header.frame_id for c in commands} == {DEPTH_FRAME}
    for command in rendered:
        stamp = command.header.stamp.sec * 10**9 + command.header.stamp.nanosec
        assert stamp in stamps, f'haptic command stamped {stamp}: no alert has that stamp'


@pytest.mark.parametrize('source,topic,bag_options', [
    ('laserscan', '/scan', {}),
    ('pointcloud', '/points', {'with_scan': False, 'with_points': True}),
])
def test_lidar_sources(bag_dir, tmp_path, source, topic, bag_options):
    params = tmp_path / f'{source}.yaml'
    params.write_text(f'/**/time_to_impact:\n  ros__parameters:\n    source: {source}\n')
    # Namespaced, so the module's depth graph (still running) never sees these messages.
    graph = NodeGraph(['time_to_impact', 'haptic_alert'], [CONFIG, params], namespace=source)
    graph.spin_in_background()
    try:
        probe = collision_probe(graph)
        for name, expect in (('approach', True), ('cross', False)):
            scenario = scenario_by_name(name)
            bag = write_scenario_bag(scenario, bag_dir / f'{source}_{name}', **bag_options)
            figures, alerts, _ = replay_collision_scenario(graph, probe, scenario, bag, [topic])
            RESULTS[f'{source}_{name}'] = dict(figures.summary(),
                                               coverage=coverage(figures, alerts, scenario))
            assert figures.unmatched_alerts == 0, figures.unmatched_stamps_s
            assert RESULTS[f'{source}_{name}']['coverage'] >= 0.9, RESULTS[f'{source}_{name}']
            if expect:
                assert not figures.missed and figures.lead_time_s >= 2.0, figures.summary()
                assert figures.median_tti_rel_error <= 0.10
            else:
                assert figures.false_alert_frames == 0, figures.summary()
    finally:
        graph.shutdown()
