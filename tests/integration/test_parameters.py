"""Parameters do what they say, over real nodes.

Every declared parameter of every node is either live (a run-time set succeeds and the node
uses the new value) or read-only (a run-time set is refused with the reason), never a set that
succeeds while nothing changes. Two live sets are checked in the output: a lower
`tti_threshold_s` delays the WARNING of an approach, a lower `warning_intensity` weakens the
WARNING vibration.
"""
import importlib
import math

from edge_perception.bags import write_scenario_bag
from edge_perception.harness.replay import collision_probe, replay_collision_scenario
from edge_perception.harness.runner import NodeGraph
from edge_perception.harness.scenarios import approach
from edge_perception.msg import CollisionAlert, HapticCommand
from edge_perception.nodes.registry import node_module, NODE_TYPES
import pytest
from rclpy.parameter import Parameter

CONFIG_DIR = __import__('pathlib').Path(__file__).resolve().parents[2] / 'config'


def candidates(spec, current):
    """Other valid values to try for a parameter (the first the node accepts is used)."""
    if spec.choices:
        return [c for c in spec.choices if c != current]
    if isinstance(current, bool):
        return [not current]
    if isinstance(current, int):
        hi = spec.max_value if spec.max_value is not None else current + 10
        lo = spec.min_value if spec.min_value is not None else current - 10
        return [v for v in (current + 1, current - 1, int(hi), int(lo)) if lo <= v <= hi
                and v != current]
    if isinstance(current, float):
        hi = spec.max_value if spec.max_value is not None else current + 10.0
        lo = spec.min_value if spec.min_value is not None else current - 10.0
        values = [current * 0.8, current * 1.2, current + 0.1, current - 0.1,
                  (current + hi) / 2, (current + lo) / 2]
        return [v for v in values if lo <= v <= hi and not math.isclose(v, current)]
    if isinstance(current, str):
        return [current + '_x' if current else 'x']
    if isinstance(current, list):
        if current and isinstance(current[0], float):
            return [[v * 1.5 for v in current]]
        if current and isinstance(current[0], str):
            return [[v + '_x' for v in current]]
    return []


@pytest.mark.parametrize('node_type', sorted(NODE_TYPES))
def test_every_parameter_is_live_or_refused_with_a_reason(node_type):
    module = importlib.import_module(node_module(node_type))
    graph = NodeGraph([node_type], namespace=f'walk_{node_type}').spin_in_background()
    try:
        node = graph.nodes[node_type]
        # rclpy's own: use_sim_time (live) and start_type_description_service (read-only).
        declared = {name for name in node._parameters
                    if name not in ('use_sim_time', 'start_type_description_service')}
        assert declared == {p.name for p in module.PARAMS}, 'a parameter outside PARAMS'
        for spec in module.PARAMS:
            current = node.params[spec.name]
            descriptor = node.describe_parameter(spec.name)
            assert descriptor.read_only == (not spec.live), spec.name
            if current is None:      # a typed parameter without a value (optional array)
                tried = [['x'] if spec.default == Parameter.Type.STRING_ARRAY else [0.0]]
            else:
                tried = candidates(spec, current)
            assert tried, f'{node_type}.{spec.name}: no value to try'
            results = []
            for value in tried:
                result = node.set_parameters([Parameter(spec.name, value=value)])[0]
                results.append((value, result))
                if result.successful:
                    break
            value, result = results[-1]
            if spec.live:
                assert result.successful, (
                    f'{node_type}.{spec.name} is live but every set was refused: '
                    f'{[(v, r.reason) for v, r in results]}')
                assert node.params[spec.name] == value, f'{spec.name}: node kept the old value'
                if current is not None:
                    restore = node.set_parameters([Parameter(spec.name, value=current)])[0]
                    assert restore.successful and node.params[spec.name] == current
            else:
                assert not result.successful, f'{node_type}.{spec.name}: read-only set accepted'
                assert 'read-only' in result.reason, result.reason
                assert node.params[spec.name] == current
    finally:
        graph.shutdown()


def first(records, topic, predicate):
    for msg, _ in records[topic]:
        if predicate(msg):
            return msg
    return None


def test_live_tti_threshold_and_warning_intensity_change_the_output(tmp_path):
    graph = NodeGraph(['time_to_impact', 'haptic_alert'], [CONFIG_DIR / 'collision.yaml'],
                      namespace='live_params').spin_in_background()
    try:
        probe = collision_probe(graph)
        scenario = approach()
        bag = write_scenario_bag(scenario, tmp_path / 'approach')
        replay_collision_scenario(graph, probe, scenario, bag, ['/depth/image_raw'])
        default = first(probe.records, 'collision_alert',
                        lambda m: m.level == CollisionAlert.LEVEL_WARNING)
        default_command = first(probe.records, 'haptic_command',
                                lambda m: m.pattern == HapticCommand.PATTERN_WARNING)
        assert default is not None and default.time_to_impact_s > 1.8
        assert math.isclose(default_command.intensity, 0.7, abs_tol=1e-6)

        tti = graph.nodes['time_to_impact'].set_parameters(
            [Parameter('tti_threshold_s', value=1.5)])[0]
        haptic = graph.nodes['haptic_alert'].set_parameters(
            [Parameter('warning_intensity', value=0.25)])[0]
        assert tti.successful and haptic.successful
        replay_collision_scenario(graph, probe, scenario, bag, ['/depth/image_raw'])
        lowered = first(probe.records, 'collision_alert',
                        lambda m: m.level == CollisionAlert.LEVEL_WARNING)
        command = first(probe.records, 'haptic_command',
                        lambda m: m.pattern == HapticCommand.PATTERN_WARNING)
        assert lowered is not None and lowered.time_to_impact_s <= 1.5
        assert math.isclose(command.intensity, 0.25, abs_tol=1e-6)
    finally:
        graph.shutdown()


def test_segmentation_model_parameters_reach_the_running_models():
    # One node for both live settings: starting it loads the segmenter and the classifier.
    graph = NodeGraph(['waste_segmentation'], namespace='live_seg').spin_in_background()
    try:
        node = graph.nodes['waste_segmentation']
        assert node.detector is not None, node.model_error
        assert node.detector.edge_refinement is True
        result = node.set_parameters([Parameter('edge_refinement', value=False)])[0]
        assert result.successful, result.reason
        assert node.detector.edge_refinement is False
        assert node.set_parameters([Parameter('edge_refinement', value=True)])[0].successful
        assert node.detector.edge_refinement is True

        assert node.refiner is not None, node.material_error or node.model_error
        default = node.refiner.crop_mode
        other = 'box' if default == 'masked' else 'masked'
        result = node.set_parameters([Parameter('material_crop', value=other)])[0]
        assert result.successful, result.reason
        assert node.refiner.crop_mode == other
        refused = node.set_parameters([Parameter('material_crop', value='polygon')])[0]
        assert not refused.successful and 'not one of' in refused.reason
        assert node.refiner.crop_mode == other
    finally:
        graph.shutdown()
