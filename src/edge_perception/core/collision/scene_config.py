"""Scene-mode estimate and tunables: TTIEstimate, SceneTTIConfig, lidar_scene_config."""
from dataclasses import dataclass
import math


@dataclass
class TTIEstimate:
    """One scene-mode estimate (one sensor frame)."""

    speed_mps: float       # signed range rate, m/s; negative = approaching (paper's convention)
    tti_s: float           # distance / -speed when approaching, else math.inf
    distance_m: float      # NaN when nothing qualifies
    alert: bool            # should_alert(speed_mps, tti_s, thresholds) and confirmed
    confidence: float      # 0..1, see DepthTTIEstimator.update
    bearing_rad: float     # direction of the approaching points (0 ahead, + left); NaN if unknown
    valid: bool            # False: too few valid samples, or no reference frame yet
    reason: str            # short human-readable cause
    support: int = 0       # number of samples the distance and speed are computed from
    baseline_s: float = math.nan   # time between the reference frame and this one
    step_check: bool = False       # whether a mid frame was available to reject depth steps
    # False for an approach not yet seen in confirm_frames consecutive estimates at consistent
    # distances (alert is then False, and the node raises no level on it). True otherwise.
    confirmed: bool = True
    # Input usable, but the history is still too short for an estimate (after start-up or a
    # gap): not a sensor fault.
    warming_up: bool = False


@dataclass
class SceneTTIConfig:
    """Tunables of DepthTTIEstimator; the node exposes each as a ROS parameter.

    ROI fractions are of the image width/height. Noise model: sigma(z) = noise_floor_m +
    noise_k * z**2 (structured light and stereo grow with z**2; for LiDAR set noise_k = 0 and
    noise_floor_m to the range noise, e.g. 0.03).
    """

    roi_col_min: float = 1 / 12
    roi_col_max: float = 11 / 12
    roi_row_min: float = 1 / 3
    roi_row_max: float = 2 / 3
    min_motion_m: float = 0.2
    speed_threshold_mps: float = -2.2
    tti_threshold_s: float = 3.0
    min_range_m: float = 0.1
    max_range_m: float = 20.0
    baseline_s: float = 0.25
    max_baseline_s: float = 1.0
    min_valid_fraction: float = 0.2   # of ROI samples
    # Robust filter knobs.
    roi_stride: int = 1               # take every n-th row and column of the ROI (speed vs detail)
    noise_k: float = 0.0025           # sensor noise sigma(z) = noise_floor_m + noise_k * z**2
    noise_floor_m: float = 0.005
    detect_sigmas: float = 3.0        # a sample is moving when its change exceeds this many sigma
    step_tolerance: float = 0.2       # allowed mid-frame deviation from linear, fraction of change
    mid_fraction_min: float = 0.3     # mid frame within [min, 1 - min] of the baseline
    min_support_fraction: float = 0.005   # of valid ROI samples, for an approaching group
    min_support_samples: int = 5      # and at least this many samples
    cluster_bin_fraction: float = 0.05    # depth histogram bin width, fraction of depth
    band_sigmas: float = 3.0          # group depth band: median +- this many robust sigma
    dominance_ratio: float = 3.0      # the group must outnumber its time-reversed mirror
    max_groups: int = 3               # depth groups tried, nearest first, per direction
    require_step_check: bool = True   # without a mid frame: invalid (True) or unchecked (False)
    min_motion_snr: float = 3.0       # lengthen the baseline until motion >= this x noise (0: off)
    max_speed_mps: float = 20.0       # faster depth changes are surface changes, not motion
    confirm_frames: int = 2           # consecutive consistent approach estimates to alert (1: off)
    # Object path (core/collision/objects.py): approaching blobs followed across the image.
    object_association: bool = True   # False: per-pixel path only
    object_roi_row_min: float = 0.0   # its ROI: these rows (fractions of the height) and the
    object_roi_row_max: float = 1.0   # ROI's columns (a ball arrives from above the centre band)
    object_stride: int = 0            # sample step; 0: about 120 rows (4 at 480 rows)
    object_min_samples: int = 6       # smaller blobs are noise
    object_max_fraction: float = 0.1  # larger blobs (of the object ROI) are the per-pixel path's
    object_edge_fraction: float = 0.1     # a depth jump > this fraction of depth cuts surfaces
    object_size_ratio: float = 1.5    # a match keeps its physical size within this factor
    object_baseline_s: float = 0.1    # blobs are compared over this first, then baseline_s

    def range_sigma(self, z):
        """Return the sensor's range noise sigma at range z (m)."""
        return self.noise_floor_m + self.noise_k * z * z

    def __post_init__(self):
        """Reject inconsistent values with a message naming the field."""
        def need(condition, text):
            if not condition:
                raise ValueError(f'SceneTTIConfig: {text}')
        need(0.0 <= self.roi_col_min < self.roi_col_max <= 1.0,
             f'need 0 <= roi_col_min < roi_col_max <= 1, got {self.roi_col_min}, '
             f'{self.roi_col_max}')
        need(0.0 <= self.roi_row_min < self.roi_row_max <= 1.0,
             f'need 0 <= roi_row_min < roi_row_max <= 1, got {self.roi_row_min}, '
             f'{self.roi_row_max}')
        need(self.min_motion_m > 0.0, f'min_motion_m must be > 0, got {self.min_motion_m}')
        need(self.tti_threshold_s > 0.0,
             f'tti_threshold_s must be > 0, got {self.tti_threshold_s}')
        need(0.0 <= self.min_range_m < self.max_range_m,
             f'need 0 <= min_range_m < max_range_m, got {self.min_range_m}, {self.max_range_m}')
        need(0.0 < self.baseline_s <= self.max_baseline_s,
             f'need 0 < baseline_s <= max_baseline_s, got {self.baseline_s}, '
             f'{self.max_baseline_s}')
        need(0.0 <= self.min_valid_fraction <= 1.0,
             f'min_valid_fraction must be in [0, 1], got {self.min_valid_fraction}')
        need(int(self.roi_stride) == self.roi_stride and self.roi_stride >= 1,
             f'roi_stride must be an integer >= 1, got {self.roi_stride}')
        need(self.noise_k >= 0.0 and self.noise_floor_m >= 0.0,
             'noise_k and noise_floor_m must be >= 0')
        need(self.detect_sigmas >= 0.0, 'detect_sigmas must be >= 0')
        need(0.0 <= self.step_tolerance < 0.5,
             f'step_tolerance must be in [0, 0.5) (a step deviates by >= mid_fraction_min of '
             f'the change), got {self.step_tolerance}')
        need(0.0 < self.mid_fraction_min <= 0.5,
             f'mid_fraction_min must be in (0, 0.5], got {self.mid_fraction_min}')
        need(0.0 <= self.min_support_fraction <= 1.0 and self.min_support_samples >= 1,
             'need 0 <= min_support_fraction <= 1 and min_support_samples >= 1')
        need(self.cluster_bin_fraction > 0.0, 'cluster_bin_fraction must be > 0')
        need(self.band_sigmas > 0.0, 'band_sigmas must be > 0')
        need(self.dominance_ratio >= 1.0, 'dominance_ratio must be >= 1')
        need(self.max_groups >= 1, 'max_groups must be >= 1')
        need(self.max_speed_mps > 0, f'max_speed_mps must be > 0, got {self.max_speed_mps}')
        need(int(self.confirm_frames) == self.confirm_frames and self.confirm_frames >= 1,
             f'confirm_frames must be an integer >= 1, got {self.confirm_frames}')
        need(0.0 <= self.object_roi_row_min < self.object_roi_row_max <= 1.0,
             f'need 0 <= object_roi_row_min < object_roi_row_max <= 1, got '
             f'{self.object_roi_row_min}, {self.object_roi_row_max}')
        need(int(self.object_stride) == self.object_stride and self.object_stride >= 0,
             f'object_stride must be an integer >= 0 (0: automatic), got {self.object_stride}')
        need(self.object_min_samples >= 1, 'object_min_samples must be >= 1')
        need(0.0 < self.object_max_fraction <= 1.0, 'object_max_fraction must be in (0, 1]')
        need(self.object_edge_fraction > 0.0, 'object_edge_fraction must be > 0')
        need(self.object_size_ratio >= 1.0, 'object_size_ratio must be >= 1')
        need(self.object_baseline_s > 0.0,
             f'object_baseline_s must be > 0, got {self.object_baseline_s}')


def lidar_scene_config(**overrides) -> SceneTTIConfig:
    """Return a SceneTTIConfig for LiDAR range images from the helpers below.

    Range noise is constant (noise_k = 0, noise_floor_m = 0.03); the helpers already cut the
    forward sector, so the ROI is the whole image; scans have few samples, so the support
    minimum is small; a scan has one row, too few for blobs, so the object path is off.
    Keyword arguments override any field.
    """
    values = {'roi_col_min': 0.0, 'roi_col_max': 1.0, 'roi_row_min': 0.0, 'roi_row_max': 1.0,
              'noise_k': 0.0, 'noise_floor_m': 0.03, 'min_support_fraction': 0.02,
              'min_support_samples': 3, 'object_association': False}
    values.update(overrides)
    return SceneTTIConfig(**values)
