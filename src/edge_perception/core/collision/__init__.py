"""Time to impact (TTI) from depth images, range scans, point clouds and object tracks.

No rclpy here: the ROS node wraps these classes; everything is unit-tested on synthetic data.
One module per concept (as nav2_collision_monitor keeps scan, pointcloud, polygon apart):

- `rule`: the app's alert rule `should_alert` and `time_to_impact` (shared by every mode);
- `scene_config`: `SceneTTIConfig` (scene-mode tunables), `TTIEstimate`, `lidar_scene_config`;
- `scene`: `DepthTTIEstimator`, scene mode on stamped depth/range images;
- `objects`: scene mode's object path (depth blobs matched across frames);
- `range_images`: laser scans and point clouds as range images for scene mode;
- `object_tti`: object mode, per-track TTI and closest point of approach;
- `levels`: `AlertLevelFilter`, NONE..CRITICAL / SENSOR_LOST with hysteresis.

The stable API for other tools is imported from here:
`edge_perception.core.collision.should_alert(...)` and `DepthTTIEstimator.update(depth_m,
stamp_s)`.
"""
from edge_perception.core.collision.levels import AlertLevel, AlertLevelConfig, AlertLevelFilter
from edge_perception.core.collision.object_tti import (ObjectTTI, ObjectTTIConfig,
                                                       ObjectTTITracker, TrackObservation)
from edge_perception.core.collision.range_images import (range_image_from_laserscan,
                                                         range_image_from_points)
from edge_perception.core.collision.rule import CollisionInputError, should_alert, time_to_impact
from edge_perception.core.collision.scene import DepthTTIEstimator
from edge_perception.core.collision.scene_config import (lidar_scene_config, SceneTTIConfig,
                                                         TTIEstimate)

__all__ = [
    'AlertLevel', 'AlertLevelConfig', 'AlertLevelFilter', 'CollisionInputError',
    'DepthTTIEstimator', 'lidar_scene_config', 'ObjectTTI', 'ObjectTTIConfig',
    'ObjectTTITracker', 'range_image_from_laserscan', 'range_image_from_points',
    'SceneTTIConfig', 'should_alert', 'time_to_impact', 'TrackObservation', 'TTIEstimate',
]
