"""Tracker node: DetectionArray in, tracked DetectionArray (stable IDs, 3D velocity) out.

ByteTrack (Ultralytics' implementation) through edge_perception.core.tracking; time from header
stamps. The tracks feed the time_to_impact node's object mode.
"""
import time

from edge_perception.conversions import detection_box_xyxy, stamp_to_seconds
from edge_perception.core.tracking import ObjectTracker, TrackerConfig, TrackingError
from edge_perception.msg import Detection, DetectionArray
from edge_perception.nodes import vision_msgs_bridge
from edge_perception.nodes.common import (copy_header, DATA_QOS, declare_parameters,
                                          Diagnostics, InputMonitor, Param, with_live)
from edge_perception.nodes.spinning import run_node
from rclpy.node import Node

PARAMS = [
    Param('detections_topic', 'detections', 'DetectionArray input (from the detector)'),
    Param('tracks_topic', 'tracks', 'Tracked DetectionArray output'),
    Param('track_high_thresh', 0.25, 'First association: detections at or above this score',
          0.0, 1.0),
    Param('track_low_thresh', 0.1, 'Second association: scores between low and high',
          0.0, 1.0),
    Param('new_track_thresh', 0.25, 'An unmatched detection starts a track at or above this',
          0.0, 1.0),
    Param('match_thresh', 0.8, 'Maximum association cost (1 - IoU, score-fused)', 0.0, 1.0),
    Param('lost_track_s', 1.0, 'A track unmatched this long (stamp time) is dropped, s',
          0.01, 60.0),
    Param('max_frame_rate_hz', 30.0, 'Highest expected input rate (sizes the lost-track buffer)',
          0.1, 1000.0),
    Param('velocity_window_s', 0.5, 'Least-squares window of the 3D velocity, s', 0.01, 10.0),
    Param('stale_after_s', 1.0, 'Input older than this is reported stale, s', 0.01, 60.0),
    Param('vision_msgs_enabled', True, 'Also publish the tracks as vision_msgs Detection2DArray '
          'and Detection3DArray (id = track id), when vision_msgs imports'),
    Param('tracks_2d_topic', 'tracks_2d', 'vision_msgs/Detection2DArray of the tracks'),
    Param('tracks_3d_topic', 'tracks_3d',
          'vision_msgs/Detection3DArray of the tracks with a valid 3D position'),
]
# Applied at run time without losing tracks; topics and the lost-track buffer are read-only.
PARAMS = with_live(PARAMS, ['track_high_thresh', 'track_low_thresh', 'new_track_thresh',
                            'match_thresh', 'velocity_window_s', 'stale_after_s'])


class TrackerNode(Node):
    """Assigns stable track IDs and 3D velocities to detections."""

    def __init__(self, **kwargs):
        super().__init__('tracker', **kwargs)
        p = self.params = declare_parameters(self, PARAMS, self.on_parameters_changed,
                                             self._tracker_config)
        self.tracker = ObjectTracker(self._tracker_config(p))
        self.input = InputMonitor('detections', p['stale_after_s'])
        self.pub = self.create_publisher(DetectionArray, p['tracks_topic'], DATA_QOS)
        self.vision = None
        if p['vision_msgs_enabled'] and vision_msgs_bridge.available():
            from vision_msgs.msg import Detection2DArray, Detection3DArray
            self.vision = (
                self.create_publisher(Detection2DArray, p['tracks_2d_topic'], DATA_QOS),
                self.create_publisher(Detection3DArray, p['tracks_3d_topic'], DATA_QOS))
        elif p['vision_msgs_enabled']:
            self.get_logger().info(vision_msgs_bridge.unavailable_reason())
        self.create_subscription(DetectionArray, p['detections_topic'], self.on_detections,
                                 DATA_QOS)
        self.diagnostics = Diagnostics(self, [self.input])

    def on_parameters_changed(self, names):
        """Apply a run-time parameter set to the running tracker (tracks kept)."""
        self.tracker.set_config(self._tracker_config(self.params))
        self.input.stale_after_s = self.params['stale_after_s']

    @staticmethod
    def _tracker_config(p):
        return TrackerConfig(
            track_high_thresh=p['track_high_thresh'], track_low_thresh=p['track_low_thresh'],
            new_track_thresh=p['new_track_thresh'], match_thresh=p['match_thresh'],
            lost_track_s=p['lost_track_s'], max_frame_rate_hz=p['max_frame_rate_hz'],
            velocity_window_s=p['velocity_window_s'])

    def on_detections(self, msg):
        """Track one frame; publish its confirmed tracks with the frame's header."""
        started = time.perf_counter()
        self.input.arrived()
        stamp = stamp_to_seconds(msg.header.stamp)
        dets = list(msg.detections)
        boxes = [detection_box_xyxy(d) for d in dets]
        positions = [(d.position.x, d.position.y, d.position.z) if d.position_valid else None
                     for d in dets]
        try:
            tracks = self.tracker.update(stamp, boxes, [d.score for d in dets],
                                         [d.class_id for d in dets], positions)
        except TrackingError as error:
            # Time went back (bag loop, sensor restart) or bad input: start over, say so.
            self.get_logger().warning(f'{error}; tracker reset', throttle_duration_sec=5.0)
            self.input.reject(str(error))
            self.tracker.reset()
            return
        self.input.accepted()
        out = DetectionArray()
        out.header = copy_header(msg.header)
        out.inference_ms = msg.inference_ms
        for track in tracks:
            d = Detection()
            source = dets[track.detection_index]
            d.header = copy_header(msg.header)
            for field in ('class_id', 'class_name', 'score', 'center_x', 'center_y', 'size_x',
                          'size_y', 'has_mask', 'mask', 'position_valid', 'position',
                          'position_depth_std_m', 'pick_point_valid', 'pick_u', 'pick_v',
                          'pick_point', 'material', 'material_confidence'):
                setattr(d, field, getattr(source, field))
            d.track_id = int(track.track_id)
            if track.velocity_valid:
                d.velocity_valid = True
                d.velocity.x, d.velocity.y, d.velocity.z = track.velocity
            out.detections.append(d)
        self.pub.publish(out)
        if self.vision is not None:
            self.vision[0].publish(vision_msgs_bridge.to_detection2d_array(out))
            self.vision[1].publish(vision_msgs_bridge.to_detection3d_array(out))
        self.diagnostics.latency.add((time.perf_counter() - started) * 1e3)


def main(args=None):
    """Entry point: `tracker_node`."""
    run_node(TrackerNode, args)


if __name__ == '__main__':
    main()
