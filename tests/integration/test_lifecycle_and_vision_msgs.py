"""Managed model nodes driven through the real lifecycle services, and the vision_msgs outputs.

The detector with `autostart: false` waits unconfigured; `configure` (the ChangeState service,
as `ros2 lifecycle set` calls it) loads the model, `activate` subscribes to the camera,
`deactivate` unsubscribes, `cleanup` frees the model. A vision_msgs subscriber receives the
belt's detections and tracks as Detection2DArray/Detection3DArray with the image header, and
a late subscriber still gets the latched LabelInfo.
"""
from edge_perception.conversions import stamp_to_seconds
from edge_perception.harness.replay import play_bag, Probe, wait_until
from edge_perception.harness.runner import NodeGraph
from edge_perception.harness.samples import (waste_belt_frames, waste_camera,
                                             write_color_depth_bag)
from edge_perception.msg import DetectionArray
from edge_perception.nodes import vision_msgs_bridge
from edge_perception.nodes.common import DATA_QOS, LATCHED_QOS
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
import pytest
from rclpy.node import Node

NO_VISION_MSGS = 'vision_msgs is not importable: ' + vision_msgs_bridge.unavailable_reason()


def write_params(tmp_path, text):
    path = tmp_path / 'params.yaml'
    path.write_text(text)
    return path


def change_state(client, transition_id):
    request = ChangeState.Request()
    request.transition = Transition(id=transition_id)
    future = client.call_async(request)
    assert wait_until(future.done, 60.0, poll_s=0.05), f'transition {transition_id} timed out'
    return future.result().success


def test_detector_lifecycle_through_its_services(tmp_path):
    params = write_params(tmp_path, '/**/detector:\n  ros__parameters:\n'
                                    '    autostart: false\n    material_model_path: none\n'
                                    "    depth_topic: ''\n    camera_info_topic: ''\n")
    graph = NodeGraph(['detector'], [params], namespace='lifecycle').spin_in_background()
    try:
        node = graph.nodes['detector']
        helper = graph.add_node(Node('lifecycle_client', context=graph.context,
                                     namespace='lifecycle'))
        client = helper.create_client(ChangeState, '/lifecycle/detector/change_state')
        assert client.wait_for_service(timeout_sec=15.0)
        image_topic = '/lifecycle/camera/image_raw'

        assert node.lifecycle_state() == 'unconfigured' and node.detector is None
        assert helper.count_subscribers(image_topic) == 0
        assert change_state(client, Transition.TRANSITION_CONFIGURE)
        assert node.lifecycle_state() == 'inactive' and node.detector is not None
        assert helper.count_subscribers(image_topic) == 0
        assert change_state(client, Transition.TRANSITION_ACTIVATE)
        assert node.lifecycle_state() == 'active'
        assert wait_until(lambda: helper.count_subscribers(image_topic) == 1, 10.0)
        values = {kv.key: kv.value for kv in node.diagnostics.build_status().values}
        assert values['lifecycle_state'] == 'active'
        assert change_state(client, Transition.TRANSITION_DEACTIVATE)
        assert wait_until(lambda: helper.count_subscribers(image_topic) == 0, 10.0)
        assert node.detector is not None            # deactivate keeps the model loaded
        assert change_state(client, Transition.TRANSITION_CLEANUP)
        assert node.lifecycle_state() == 'unconfigured' and node.detector is None
    finally:
        graph.shutdown()


@pytest.mark.skipif(not vision_msgs_bridge.available(), reason=NO_VISION_MSGS)
def test_vision_msgs_subscriber_receives_detections_and_tracks(tmp_path):
    from vision_msgs.msg import Detection2DArray, Detection3DArray, LabelInfo
    params = write_params(tmp_path, '/**/detector:\n  ros__parameters:\n'
                                    '    material_model_path: none\n')
    graph = NodeGraph(['detector', 'tracker'], [params], namespace='vision').spin_in_background()
    try:
        probe = graph.add_node(Probe(graph.context, {
            'detections': (DetectionArray, DATA_QOS),
            'detections_2d': (Detection2DArray, DATA_QOS),
            'detections_3d': (Detection3DArray, DATA_QOS),
            'tracks_2d': (Detection2DArray, DATA_QOS)}, namespace='vision'))
        width, height, k = waste_camera()
        frames = waste_belt_frames()
        bag = write_color_depth_bag(tmp_path / 'belt', frames, width, height, k)
        play_bag(graph, bag, ['/camera/image_raw', '/camera/depth_registered/image_raw'])
        assert probe.wait_for(lambda r: len(r['detections_2d']) >= len(r['detections']) > 5
                              and len(r['tracks_2d']) > 5, 30.0)
        ours = {stamp_to_seconds(m.header.stamp): m for m, _ in probe.snapshot('detections')}
        theirs = {stamp_to_seconds(m.header.stamp): m for m, _ in probe.snapshot('detections_2d')}
        assert set(theirs) == set(ours)
        for stamp, msg in ours.items():
            view = theirs[stamp]
            assert view.header.frame_id == msg.header.frame_id != ''
            assert len(view.detections) == len(msg.detections)
            for det, d2 in zip(msg.detections, view.detections):
                assert d2.bbox.center.position.x == pytest.approx(det.center_x)
                assert d2.bbox.size_y == pytest.approx(det.size_y)
                assert d2.results[0].hypothesis.class_id == str(det.class_id)
                assert d2.results[0].hypothesis.score == pytest.approx(det.score)
        views_3d = [m for m, _ in probe.snapshot('detections_3d')]
        with_3d = [sum(d.position_valid for d in m.detections) for m in ours.values()]
        assert sum(len(m.detections) for m in views_3d) == sum(with_3d) > 0
        sized = [d for m in views_3d for d in m.detections]
        assert all(d.bbox.size.x > 0 and d.bbox.center.position.z > 0 for d in sized)
        assert all(d.id != '' for m, _ in probe.snapshot('tracks_2d') for d in m.detections)

        # A subscriber that comes late still gets the class names (latched LabelInfo).
        late = graph.add_node(Probe(graph.context, {'label_info': (LabelInfo, LATCHED_QOS)},
                                    name='late_probe', namespace='vision'))
        assert late.wait_for(lambda r: len(r['label_info']) == 1, 10.0)
        info = late.snapshot('label_info')[0][0]
        assert [c.class_name for c in info.class_map] == list(
            graph.nodes['detector'].detector.class_names)
    finally:
        graph.shutdown()
