"""Time-to-impact node: range data in, graded CollisionAlert out, every cycle.

Inputs: a depth image, point cloud or laser scan, and optionally tracks.

Thin glue around edge_perception.core.collision: parameters, message conversion, watchdog.
"""
import math
import time

from edge_perception.conversions import (depth_to_metres, ImageConversionError,
                                         laserscan_to_ranges, pointcloud_to_xyz,
                                         stamp_to_seconds)
from edge_perception.core.collision import (AlertLevel, AlertLevelConfig, AlertLevelFilter,
                                            DepthTTIEstimator, lidar_scene_config,
                                            ObjectTTIConfig,
                                            ObjectTTITracker, range_image_from_laserscan,
                                            range_image_from_points, SceneTTIConfig,
                                            TrackObservation)
from edge_perception.msg import CollisionAlert, DetectionArray
from edge_perception.nodes.common import (ALERT_QOS, copy_header, DATA_QOS, declare_parameters,
                                          Diagnostics, InputMonitor, Param, SENSOR_QOS,
                                          SENSOR_QOS_QUEUED, with_live)
from edge_perception.nodes.spinning import run_node
import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, LaserScan, PointCloud2

SOURCES = ('depth', 'pointcloud', 'laserscan', 'none')
_SOURCE_CODE = {'depth': CollisionAlert.SOURCE_DEPTH_IMAGE,
                'pointcloud': CollisionAlert.SOURCE_POINTCLOUD,
                'laserscan': CollisionAlert.SOURCE_LASERSCAN}

PARAMS = [
    Param('source', 'depth', 'Scene-mode input', choices=SOURCES),
    Param('depth_topic', 'depth/image_raw', 'Depth image topic (16UC1 mm or 32FC1 m)'),
    Param('camera_info_topic', 'depth/camera_info',
          'Camera info of the depth image (for bearings; optional)'),
    Param('pointcloud_topic', 'points', 'sensor_msgs/PointCloud2 topic (REP 103 frame)'),
    Param('laserscan_topic', 'scan', 'sensor_msgs/LaserScan topic'),
    Param('tracks_enabled', False,
          'Object mode: also compute per-track time-to-impact from tracked 3D detections'),
    Param('tracks_topic', 'tracks', 'edge_perception/DetectionArray of tracks with 3D'),
    Param('alert_topic', 'collision_alert', 'CollisionAlert output (reliable QoS)'),
    # Scene mode (ImpactAlert algorithm, made robust).
    Param('roi_col_min', 1.0 / 12.0, 'ROI left edge, fraction of width', 0.0, 1.0),
    Param('roi_col_max', 11.0 / 12.0, 'ROI right edge, fraction of width', 0.0, 1.0),
    Param('roi_row_min', 1.0 / 3.0, 'ROI top edge, fraction of height', 0.0, 1.0),
    Param('roi_row_max', 2.0 / 3.0, 'ROI bottom edge, fraction of height', 0.0, 1.0),
    Param('min_motion_m', 0.2, 'Minimum depth change since the reference frame, m', 0.0, 10.0),
    Param('min_range_m', 0.1, 'Nearer samples are invalid, m', 0.0, 100.0),
    Param('max_range_m', 20.0, 'Farther samples are invalid, m', 0.1, 1000.0),
    Param('baseline_s', 0.25, 'Reference frame is at least this much older (stamps), s',
          0.001, 10.0),
    Param('max_baseline_s', 1.0, 'Reference frame at most this old (sensors slower than ~3 Hz '
          'need more, e.g. 4 s at 0.6 Hz), s', 0.01, 60.0),
    Param('min_valid_fraction', 0.2, 'Minimum fraction of valid ROI samples', 0.0, 1.0),
    Param('roi_stride', 1, 'Use every n-th ROI row and column (speed vs detail)', 1, 16),
    Param('noise_k', -1.0, 'Range noise sigma = noise_floor_m + noise_k z^2; negative = the '
          "source's default (depth camera 0.0025, LiDAR 0)", -1.0, 1.0),
    Param('noise_floor_m', -1.0, "Range noise floor, m; negative = the source's default "
          '(depth camera 0.005, LiDAR 0.03)', -1.0, 10.0),
    Param('detect_sigmas', 3.0, 'A sample moves when its change exceeds this many sigma',
          0.5, 20.0),
    Param('require_step_check', True, 'Without a frame between reference and now, call the '
          'estimate invalid rather than risk an entering object looking like an approach'),
    Param('max_speed_mps', 20.0, 'Faster depth changes are surface changes, not motion, m/s',
          0.1, 1000.0),
    Param('confirm_frames', 2, 'An approach raises a level once seen in this many consecutive '
          'frames at consistent distances (1: at once; 2 costs one frame, rejects one-frame '
          'blips such as a scene cut)', 1, 10),
    Param('object_association', True, 'Depth source: also follow approaching surfaces as '
          'objects (depth blobs matched across frames), so small fast objects that move across '
          'the image (a thrown ball, a drone) alert; false: per-pixel comparison only'),
    # Alert test and levels.
    Param('speed_threshold_mps', -2.2,
          'WARNING when range rate is below this (negative = approaching), m/s', -100.0, 0.0),
    Param('tti_threshold_s', 3.0, 'WARNING when time-to-impact is below this, s', 0.0, 60.0),
    Param('caution_speed_mps', -1.0, 'CAUTION when range rate is below this, m/s', -100.0, 0.0),
    Param('caution_tti_s', 5.0, 'CAUTION when time-to-impact is below this, s', 0.0, 60.0),
    Param('critical_tti_s', 1.0, 'CRITICAL: a WARNING with time-to-impact below this, s',
          0.0, 60.0),
    Param('exit_tti_ratio', 1.25, 'Hysteresis: leave a level when TTI > enter x ratio',
          1.0, 10.0),
    Param('min_on_time_s', 0.5, 'A raised level is held at least this long, s', 0.0, 10.0),
    Param('sensor_timeout_s', 0.5, 'No valid input for this long -> SENSOR_LOST, s', 0.01, 60.0),
    Param('watchdog_period_s', 0.1, 'How often silence is checked, s', 0.01, 5.0),
    # Object mode.
    Param('corridor_radius_m', 0.5, 'Object mode: alert only if the closest point of approach '
          'passes within this radius, m', 0.0, 100.0),
    Param('track_window_s', 0.5, 'Object mode: range-rate fit window, s', 0.05, 10.0),
    Param('track_timeout_s', 1.0, 'Object mode: forget tracks unseen this long, s', 0.05, 60.0),
]
# Applied at run time (on_parameters_changed); the rest (source, topics, object mode on/off,
# watchdog period) shape the node's wiring and are read-only.
PARAMS = with_live(PARAMS, [
    p.name for p in PARAMS if p.name not in (
        'source', 'depth_topic', 'camera_info_topic', 'pointcloud_topic', 'laserscan_topic',
        'tracks_enabled', 'tracks_topic', 'alert_topic', 'watchdog_period_s')])
# Scene parameters that change which samples the estimator keeps: its history restarts.
_HISTORY_PARAMS = {'roi_col_min', 'roi_col_max', 'roi_row_min', 'roi_row_max', 'roi_stride'}


class TimeToImpactNode(Node):
    """Publishes the collision state of every sensor cycle and SENSOR_LOST on silence."""

    def __init__(self, **kwargs):
        super().__init__('time_to_impact', **kwargs)
        p = self.params = declare_parameters(self, PARAMS, self.on_parameters_changed,
                                             self._check_parameters)
        self.scene_config = self._scene_config(p)
        self.level_config = self._level_config(p)
        self.level_filter = AlertLevelFilter(self.level_config)
        self.estimator = None           # created on the first frame (needs bearings)
        self._column_bearings = None
        self._object_tracker = ObjectTTITracker(self._object_config(p))
        self._latest_object_alert = None   # most urgent ObjectTTI of the last tracks message
        self._last_valid_rx = None         # node-clock time of the last usable input
        self._last_header = None
        self._lost_reported = False

        self.alert_pub = self.create_publisher(CollisionAlert, p['alert_topic'], ALERT_QOS)
        source = p['source']
        self.input = InputMonitor(source if source != 'none' else 'tracks',
                                  p['sensor_timeout_s'])
        monitors = [self.input]
        if source == 'depth':
            self.create_subscription(Image, p['depth_topic'], self.on_depth, SENSOR_QOS_QUEUED)
            self.create_subscription(CameraInfo, p['camera_info_topic'], self.on_camera_info,
                                     SENSOR_QOS)
        elif source == 'pointcloud':
            self.create_subscription(PointCloud2, p['pointcloud_topic'], self.on_pointcloud,
                                     SENSOR_QOS_QUEUED)
        elif source == 'laserscan':
            self.create_subscription(LaserScan, p['laserscan_topic'], self.on_laserscan,
                                     SENSOR_QOS_QUEUED)
        if p['tracks_enabled'] or source == 'none':
            self.tracks_input = InputMonitor('tracks', p['track_timeout_s'])
            monitors.append(self.tracks_input)
            self.create_subscription(DetectionArray, p['tracks_topic'], self.on_tracks, DATA_QOS)
        self.diagnostics = Diagnostics(self, monitors, extra=[self._level_status])
        self.create_timer(p['watchdog_period_s'], self.on_watchdog)
        self.get_logger().info(
            f"time_to_impact: source={source} tracks={p['tracks_enabled']} -> "
            f'{self.alert_pub.topic_name}')

    def on_parameters_changed(self, names):
        """Apply a run-time parameter set: rebuild the configs, keep the history if possible."""
        p = self.params
        self.scene_config = self._scene_config(p)
        if self.estimator is not None:
            if names & _HISTORY_PARAMS:
                self.estimator = None      # rebuilt on the next frame with the new ROI
            else:
                self.estimator.config = self.scene_config
        self.level_config = self._level_config(p)
        self.level_filter.config = self.level_config
        self._object_tracker.config = self._object_config(p)
        self.input.stale_after_s = p['sensor_timeout_s']

    def _check_parameters(self, values):
        """Raise ValueError for a set that would leave inconsistent configs (an empty ROI)."""
        self._scene_config(values)
        self._level_config(values)
        self._object_config(values)

    @staticmethod
    def _level_config(p):
        return AlertLevelConfig(
            caution_speed_mps=p['caution_speed_mps'], caution_tti_s=p['caution_tti_s'],
            warning_speed_mps=p['speed_threshold_mps'], warning_tti_s=p['tti_threshold_s'],
            critical_tti_s=p['critical_tti_s'], exit_tti_ratio=p['exit_tti_ratio'],
            min_on_time_s=p['min_on_time_s'], sensor_timeout_s=p['sensor_timeout_s'])

    @staticmethod
    def _object_config(p):
        return ObjectTTIConfig(
            corridor_radius_m=p['corridor_radius_m'], window_s=p['track_window_s'],
            track_timeout_s=p['track_timeout_s'], speed_threshold_mps=p['speed_threshold_mps'],
            tti_threshold_s=p['tti_threshold_s'])

    @staticmethod
    def _scene_config(p):
        """Return the scene config: camera ROI and noise for depth, the LiDAR preset otherwise.

        The LiDAR preset (whole forward sector, constant range noise) is for scans and clouds.
        Negative noise parameters keep the source's default.
        """
        common = {
            'min_motion_m': p['min_motion_m'], 'speed_threshold_mps': p['speed_threshold_mps'],
            'tti_threshold_s': p['tti_threshold_s'], 'min_range_m': p['min_range_m'],
            'max_range_m': p['max_range_m'], 'baseline_s': p['baseline_s'],
            'max_baseline_s': p['max_baseline_s'],
            'min_valid_fraction': p['min_valid_fraction'],
            'roi_stride': p['roi_stride'], 'detect_sigmas': p['detect_sigmas'],
            'require_step_check': p['require_step_check'],
            'max_speed_mps': p['max_speed_mps'], 'confirm_frames': p['confirm_frames']}
        for name in ('noise_k', 'noise_floor_m'):
            if p[name] >= 0:
                common[name] = p[name]
        if p['source'] in ('laserscan', 'pointcloud'):
            return lidar_scene_config(**common)
        return SceneTTIConfig(roi_col_min=p['roi_col_min'], roi_col_max=p['roi_col_max'],
                              roi_row_min=p['roi_row_min'], roi_row_max=p['roi_row_max'],
                              object_association=p['object_association'], **common)

    # ---------------------------------------------------------------- inputs
    def on_camera_info(self, msg):
        """Column bearings from the intrinsics: 0 on the optical axis, positive to the left."""
        fx, cx = msg.k[0], msg.k[2]
        if fx <= 0 or msg.width == 0:
            return
        bearings = np.arctan2(-(np.arange(msg.width, dtype=np.float32) - cx), fx)
        if self._column_bearings is None or self._column_bearings.shape != bearings.shape:
            self._column_bearings = bearings.astype(np.float32)
            self.estimator = None   # rebuilt with bearings on the next frame

    def on_depth(self, msg):
        """Depth image -> scene-mode estimate."""
        self._process(msg.header, lambda: (depth_to_metres(
            msg, self.params['min_range_m'], self.params['max_range_m']), self._column_bearings))

    def on_pointcloud(self, msg):
        """Point cloud -> spherical range image -> scene-mode estimate."""
        self._process(msg.header, lambda: range_image_from_points(pointcloud_to_xyz(msg)))

    def on_laserscan(self, msg):
        """Laser scan -> 1xN range image -> scene-mode estimate."""
        self._process(msg.header, lambda: range_image_from_laserscan(*laserscan_to_ranges(msg)))

    def on_tracks(self, msg):
        """Tracked 3D detections -> per-track time-to-impact (object mode)."""
        self.tracks_input.arrived()
        stamp = stamp_to_seconds(msg.header.stamp)
        observations = [
            TrackObservation(int(d.track_id), (d.position.x, d.position.y, d.position.z))
            for d in msg.detections if d.position_valid and d.track_id >= 0]
        try:
            results = self._object_tracker.update(observations, stamp)
        except ValueError as error:
            self.tracks_input.reject(str(error))
            self.get_logger().warning(f'tracks rejected: {error}', throttle_duration_sec=5.0)
            return
        self.tracks_input.accepted()
        self._latest_object_alert = results[0] if results and results[0].valid else None
        if self.params['source'] == 'none':
            self._last_valid_rx = self._now_s()
            self._publish_object_only(msg.header)

    # ---------------------------------------------------------------- core
    def _process(self, header, convert):
        """Convert one sensor message, update estimator and level filter, publish the alert.

        convert() returns (ranges HxW, column bearings or None).
        """
        started = time.perf_counter()
        self.input.arrived()
        self._last_header = header
        try:
            ranges, bearings = convert()
            if (self.estimator is None
                    or (bearings is not None and ranges.shape[1] != len(bearings))):
                self.estimator = DepthTTIEstimator(self.scene_config, bearings)
            try:
                estimate = self.estimator.update(ranges, stamp_to_seconds(header.stamp))
            except ValueError as error:
                # Shape change or stamps going backwards (bag loop, sensor restart): start over.
                self.get_logger().warning(f'{error}; resetting the estimator',
                                          throttle_duration_sec=5.0)
                self.estimator = DepthTTIEstimator(self.scene_config, bearings)
                estimate = self.estimator.update(ranges, stamp_to_seconds(header.stamp))
        except (ImageConversionError, ValueError) as error:
            self.input.reject(str(error))
            self.get_logger().error(f'{self.input.name} rejected: {error}',
                                    throttle_duration_sec=5.0)
            return
        if estimate.valid or estimate.warming_up:
            # Usable input keeps the watchdog quiet, also while the history fills up.
            self.input.accepted()
            self._last_valid_rx = self._now_s()
        else:
            self.input.reject(estimate.reason)
        # An approach seen in one frame only raises no level yet (see SceneTTIConfig.
        # confirm_frames); the message still reports what was measured.
        speed, tti = ((estimate.speed_mps, estimate.tti_s) if estimate.confirmed
                      else (0.0, math.inf))
        level = self._filter_level(speed, tti, estimate.valid, stamp_to_seconds(header.stamp))
        alert = self._alert_from_scene(header, estimate, level)
        self._merge_object_alert(alert)
        self._publish(alert)
        self.diagnostics.latency.add((time.perf_counter() - started) * 1e3)

    def _alert_from_scene(self, header, estimate, level):
        msg = CollisionAlert()
        msg.header = copy_header(header)
        msg.level = int(level)
        msg.time_to_impact_s = float(estimate.tti_s)
        msg.closing_speed_mps = float(-estimate.speed_mps) if estimate.valid else 0.0
        msg.distance_m = float(estimate.distance_m)
        msg.bearing_rad = float(estimate.bearing_rad)
        msg.track_id = -1
        msg.source = _SOURCE_CODE[self.params['source']]
        msg.confidence = float(estimate.confidence)
        msg.alert = bool(estimate.alert)
        msg.reason = estimate.reason
        return msg

    def _merge_object_alert(self, msg):
        """Replace the scene state by the most urgent track's when that is more urgent."""
        obj = self._latest_object_alert
        if obj is None or not obj.alert:
            return
        if msg.level == AlertLevel.SENSOR_LOST or obj.tti_s >= msg.time_to_impact_s:
            return
        msg.level = max(msg.level, int(AlertLevel.WARNING if obj.tti_s >= self.params[
            'critical_tti_s'] else AlertLevel.CRITICAL))
        msg.time_to_impact_s = float(obj.tti_s)
        msg.closing_speed_mps = float(-obj.speed_mps)
        msg.distance_m = float(obj.distance_m)
        msg.bearing_rad = float(obj.bearing_rad)
        msg.track_id = int(obj.track_id)
        msg.source = CollisionAlert.SOURCE_TRACKS
        msg.alert = True
        msg.reason = (f'track {obj.track_id}: closing {-obj.speed_mps:.1f} m/s, '
                      f'TTI {obj.tti_s:.1f} s, CPA {obj.cpa_distance_m:.2f} m')

    def _publish_object_only(self, header):
        obj = self._latest_object_alert
        msg = CollisionAlert()
        msg.header = copy_header(header)
        msg.source = CollisionAlert.SOURCE_TRACKS
        msg.track_id = -1
        if obj is None:
            speed, tti = 0.0, math.inf
            msg.distance_m = math.nan
            msg.bearing_rad = math.nan
            msg.time_to_impact_s = math.inf
            msg.reason = 'no approaching track'
        else:
            speed, tti = obj.speed_mps, obj.tti_s
            msg.distance_m, msg.bearing_rad = float(obj.distance_m), float(obj.bearing_rad)
            msg.time_to_impact_s, msg.closing_speed_mps = float(tti), float(-speed)
            msg.track_id, msg.alert = int(obj.track_id), bool(obj.alert)
            msg.reason = f'track {obj.track_id}: TTI {tti:.1f} s'
            if not obj.alert:
                tti = math.inf   # crossing tracks (CPA outside the corridor) raise no level
        msg.confidence = 1.0
        msg.level = int(self._filter_level(speed, tti, True, stamp_to_seconds(header.stamp)))
        self._publish(msg)

    def _filter_level(self, speed, tti, valid, stamp):
        """Return the level of this frame.

        A stamp going back (bag loop, sensor restart) resets the filter (escalation is
        immediate again once estimates resume).
        """
        try:
            return self.level_filter.update(speed, tti, valid, stamp)
        except ValueError as error:
            self.get_logger().warning(f'{error}; resetting alert levels',
                                      throttle_duration_sec=5.0)
            self.level_filter.reset()
            return self.level_filter.update(speed, tti, valid, stamp)

    # ---------------------------------------------------------------- watchdog
    def on_watchdog(self):
        """SENSOR_LOST when no usable input arrived for sensor_timeout_s (node clock)."""
        now = self._now_s()
        last = self._last_valid_rx
        if last is not None and now < last:
            # The clock jumped back (bag loop, simulation reset): count silence from the jump.
            self._last_valid_rx = last = now
        silent_for = math.inf if last is None else now - last
        if silent_for <= self.params['sensor_timeout_s']:
            self._lost_reported = False
            return
        msg = CollisionAlert()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self._last_header.frame_id if self._last_header else ''
        msg.level = CollisionAlert.LEVEL_SENSOR_LOST
        msg.time_to_impact_s = math.inf
        msg.distance_m = math.nan
        msg.bearing_rad = math.nan
        msg.track_id = -1
        msg.source = _SOURCE_CODE.get(self.params['source'], CollisionAlert.SOURCE_TRACKS)
        msg.reason = ('no usable input yet' if last is None else
                      f'no valid {self.input.name} for {silent_for:.2f} s')
        if self.input.last_error:
            msg.reason += f' (last error: {self.input.last_error})'
        if not self._lost_reported:
            self.get_logger().warning(f'SENSOR_LOST: {msg.reason}')
            self._lost_reported = True
        self._publish(msg)

    def _publish(self, msg):
        self.alert_pub.publish(msg)
        self._last_level = msg.level

    def _level_status(self):
        from diagnostic_msgs.msg import DiagnosticStatus
        level = getattr(self, '_last_level', None)
        if level is None:
            return None
        names = {int(v): v.name for v in AlertLevel}
        return DiagnosticStatus.OK, '', {'alert_level': names.get(level, str(level))}

    def _now_s(self):
        return self.get_clock().now().nanoseconds * 1e-9


def main(args=None):
    """Entry point: `time_to_impact_node` (ros2 run edge_perception time_to_impact_node)."""
    run_node(TimeToImpactNode, args)


if __name__ == '__main__':
    main()
