"""Deterministic synthetic depth sequences with ground truth, for tests, benchmarks and demos.

A pinhole camera (default 640x480, fx = fy = 525, cx = 319.5, cy = 239.5) looks at a
fronto-parallel background wall and fronto-parallel boxes (their front faces). Depth is the
optical-axis z in metres, as a depth camera reports it. Noise: Gaussian with
sigma(z) = noise_k * z**2 (structured-light-like) plus a fraction of holes (half 0, half NaN).
Every generator takes a `seed` and returns the same frames for the same arguments.

Ground truth per frame: distance (depth of the object that matters), signed range rate
(negative = approaching), TTI and whether the paper's alert (speed < -2.2 m/s and TTI < 3 s)
should fire.
"""
from dataclasses import dataclass, field
import math
from typing import Callable, Dict, List, Optional, Sequence

from edge_perception.core.collision import should_alert, time_to_impact
import numpy as np


@dataclass(frozen=True)
class PinholeCamera:
    """Intrinsics of the synthetic depth camera."""

    width: int = 640
    height: int = 480
    fx: float = 525.0
    fy: float = 525.0
    cx: float = 319.5
    cy: float = 239.5

    def column_bearings_rad(self) -> np.ndarray:
        """Bearing of each column: atan2(-(u - cx), fx) (0 ahead, positive left)."""
        return np.arctan2(-(np.arange(self.width) - self.cx), self.fx)


@dataclass(frozen=True)
class Box:
    """Front face of a box, parallel to the image plane, in the optical frame (x right, y down)."""

    center_x_m: float
    center_y_m: float
    depth_m: float
    width_m: float
    height_m: float


@dataclass
class ScenarioFrame:
    """One stamped depth frame and its ground truth."""

    stamp_s: float
    depth_m: np.ndarray        # float32 HxW, metres; holes are 0 or NaN
    true_distance_m: float     # NaN when nothing approaches or recedes
    true_speed_mps: float      # signed range rate, negative = approaching
    true_tti_s: float          # distance / -speed when approaching, else inf
    expect_alert: bool         # should_alert(true_speed_mps, true_tti_s)


@dataclass
class Scenario:
    """A named sequence of frames and the camera that saw them."""

    name: str
    frames: List[ScenarioFrame]
    camera: PinholeCamera = field(default_factory=PinholeCamera)
    description: str = ''


def render_depth(boxes: Sequence[Box], camera: PinholeCamera = PinholeCamera(),
                 background_m: float = 10.0) -> np.ndarray:
    """Noise-free depth (float32 HxW) of boxes in front of a wall at background_m.

    A pixel shows a box when its centre's ray hits the box face; the nearest surface wins.
    background_m may be inf or NaN (no wall: invalid depth).
    """
    depth = np.full((camera.height, camera.width), background_m, dtype=np.float32)
    for box in boxes:
        z = float(box.depth_m)
        if z <= 0:
            continue
        u_lo = camera.cx + camera.fx * (box.center_x_m - 0.5 * box.width_m) / z
        u_hi = camera.cx + camera.fx * (box.center_x_m + 0.5 * box.width_m) / z
        v_lo = camera.cy + camera.fy * (box.center_y_m - 0.5 * box.height_m) / z
        v_hi = camera.cy + camera.fy * (box.center_y_m + 0.5 * box.height_m) / z
        c0 = max(int(math.ceil(u_lo)), 0)
        c1 = min(int(math.floor(u_hi)) + 1, camera.width)
        r0 = max(int(math.ceil(v_lo)), 0)
        r1 = min(int(math.floor(v_hi)) + 1, camera.height)
        if c0 >= c1 or r0 >= r1:
            continue
        patch = depth[r0:r1, c0:c1]
        np.fmin(patch, np.float32(z), out=patch)
    return depth


def add_depth_noise(depth_m: np.ndarray, rng: np.random.Generator, noise_k: float = 0.0025,
                    hole_fraction: float = 0.05) -> np.ndarray:
    """Return depth with Gaussian noise sigma = noise_k * z**2 and random holes (0 or NaN)."""
    if noise_k < 0 or not 0.0 <= hole_fraction <= 1.0:
        raise ValueError(f'need noise_k >= 0 and 0 <= hole_fraction <= 1, got {noise_k}, '
                         f'{hole_fraction}')
    depth = np.asarray(depth_m, dtype=np.float32)
    noisy = depth + np.float32(noise_k) * depth * depth * rng.standard_normal(
        depth.shape, dtype=np.float32)
    noisy = np.where(noisy > 0, noisy, np.float32(0.0)).astype(np.float32)
    if hole_fraction > 0:
        draw = rng.random(depth.shape, dtype=np.float32)
        noisy[draw < hole_fraction * 0.5] = 0.0
        noisy[(draw >= hole_fraction * 0.5) & (draw < hole_fraction)] = np.nan
    return noisy


def _stamps(duration_s, rate_hz, start_s=0.0):
    count = int(math.floor(duration_s * rate_hz + 1e-9)) + 1
    return start_s + np.arange(count) / float(rate_hz)


def _frame(stamp, boxes, camera, background_m, rng, noise_k, hole_fraction, distance, speed):
    depth = add_depth_noise(render_depth(boxes, camera, background_m), rng, noise_k,
                            hole_fraction)
    tti = time_to_impact(distance, speed) if math.isfinite(distance) else math.inf
    return ScenarioFrame(float(stamp), depth, float(distance), float(speed), float(tti),
                         should_alert(speed, tti))


def approach(speed_mps=3.0, start_m=8.0, stop_m=1.0, box_width_m=1.0, box_height_m=1.0,
             background_m=10.0, rate_hz=30.0, noise_k=0.0025, hole_fraction=0.05, seed=0,
             camera=PinholeCamera(), stamps=None, center_x_m=0.0, name='approach'):
    """Move a box along the optical axis towards the camera at speed_mps, start_m to stop_m.

    `stamps` (seconds from the start) overrides the regular rate (irregular or dropped frames);
    `center_x_m` shifts the box sideways (x right), so its bearing is atan2(-x, z).
    """
    if speed_mps <= 0 or not start_m > stop_m > 0:
        raise ValueError('approach needs speed_mps > 0 and start_m > stop_m > 0')
    rng = np.random.default_rng(seed)
    if stamps is None:
        stamps = _stamps((start_m - stop_m) / speed_mps, rate_hz)
    frames = []
    for stamp in stamps:
        z = start_m - speed_mps * stamp
        box = Box(center_x_m, 0.0, z, box_width_m, box_height_m)
        frames.append(_frame(stamp, [box], camera, background_m, rng, noise_k, hole_fraction,
                             z, -speed_mps))
    return Scenario(name, frames, camera,
                    f'box {box_width_m}x{box_height_m} m approaching at {speed_mps} m/s from '
                    f'{start_m} m to {stop_m} m, wall at {background_m} m')


def recede(speed_mps=3.0, start_m=1.5, stop_m=8.0, box_width_m=1.0, box_height_m=1.0,
           background_m=10.0, rate_hz=30.0, noise_k=0.0025, hole_fraction=0.05, seed=1,
           camera=PinholeCamera()):
    """Move a box straight away from the camera: a real motion, but no alert."""
    if speed_mps <= 0 or not 0 < start_m < stop_m:
        raise ValueError('recede needs speed_mps > 0 and 0 < start_m < stop_m')
    rng = np.random.default_rng(seed)
    frames = []
    for stamp in _stamps((stop_m - start_m) / speed_mps, rate_hz):
        z = start_m + speed_mps * stamp
        box = Box(0.0, 0.0, z, box_width_m, box_height_m)
        frames.append(_frame(stamp, [box], camera, background_m, rng, noise_k, hole_fraction,
                             z, speed_mps))
    return Scenario('recede', frames, camera,
                    f'box receding at {speed_mps} m/s from {start_m} m to {stop_m} m')


def cross(lateral_speed_mps=2.0, depth_m=3.0, start_x_m=-3.0, stop_x_m=3.0, box_width_m=0.8,
          box_height_m=1.0, background_m=8.0, rate_hz=30.0, noise_k=0.0025, hole_fraction=0.05,
          seed=2, camera=PinholeCamera()):
    """Move a box sideways across the view at constant depth: steps at its edges, no approach."""
    if lateral_speed_mps <= 0 or stop_x_m <= start_x_m:
        raise ValueError('cross needs lateral_speed_mps > 0 and stop_x_m > start_x_m')
    rng = np.random.default_rng(seed)
    frames = []
    for stamp in _stamps((stop_x_m - start_x_m) / lateral_speed_mps, rate_hz):
        x = start_x_m + lateral_speed_mps * stamp
        box = Box(x, 0.0, depth_m, box_width_m, box_height_m)
        frames.append(_frame(stamp, [box], camera, background_m, rng, noise_k, hole_fraction,
                             math.nan, 0.0))
    return Scenario('cross', frames, camera,
                    f'box crossing at {lateral_speed_mps} m/s, {depth_m} m away')


def enter(lateral_speed_mps=1.5, depth_m=2.5, stop_x_m=0.0, duration_s=3.0, box_width_m=1.0,
          box_height_m=1.2, background_m=8.0, rate_hz=30.0, noise_k=0.0025, hole_fraction=0.05,
          seed=3, camera=PinholeCamera()):
    """Bring a box in from the left edge at constant depth; it stops at stop_x_m and stays."""
    rng = np.random.default_rng(seed)
    # Start just outside the left edge of the image.
    start_x = -(camera.cx + 1.0) * depth_m / camera.fx - 0.5 * box_width_m
    if stop_x_m <= start_x or lateral_speed_mps <= 0:
        raise ValueError('enter needs lateral_speed_mps > 0 and stop_x_m inside the view')
    frames = []
    for stamp in _stamps(duration_s, rate_hz):
        x = min(start_x + lateral_speed_mps * stamp, stop_x_m)
        box = Box(x, 0.0, depth_m, box_width_m, box_height_m)
        frames.append(_frame(stamp, [box], camera, background_m, rng, noise_k, hole_fraction,
                             math.nan, 0.0))
    return Scenario('enter', frames, camera,
                    f'box entering from the left at {lateral_speed_mps} m/s, {depth_m} m away')


def walk_to_wall(speed_mps=1.4, start_m=6.0, stop_m=1.0, rate_hz=30.0, noise_k=0.0025,
                 hole_fraction=0.05, seed=4, camera=PinholeCamera()):
    """Walk the sensor towards a static wall: a true approach below the alert speed."""
    if speed_mps <= 0 or not start_m > stop_m > 0:
        raise ValueError('walk_to_wall needs speed_mps > 0 and start_m > stop_m > 0')
    rng = np.random.default_rng(seed)
    frames = []
    for stamp in _stamps((start_m - stop_m) / speed_mps, rate_hz):
        z = start_m - speed_mps * stamp
        frames.append(_frame(stamp, [], camera, z, rng, noise_k, hole_fraction, z, -speed_mps))
    return Scenario('walk_to_wall', frames, camera,
                    f'sensor walking at {speed_mps} m/s towards a wall from {start_m} m')


def approach_irregular(speed_mps=3.0, start_m=8.0, stop_m=1.0, rate_hz=30.0, jitter=0.3,
                       drop_fraction=0.2, gap_s=(0.8, 1.0), seed=5, **kwargs):
    """Build the approach scene with jittered stamps, randomly dropped frames and one gap.

    jitter: stamp noise as a fraction of the period (uniform +-); drop_fraction: frames lost at
    random; gap_s: (start, end) of an interval with no frames at all, or None.
    """
    rng = np.random.default_rng(seed + 1000)
    period = 1.0 / rate_hz
    nominal = _stamps((start_m - stop_m) / speed_mps, rate_hz)
    stamps = nominal + rng.uniform(-jitter, jitter, nominal.size) * period
    stamps[0] = 0.0
    keep = rng.random(nominal.size) >= drop_fraction
    keep[:2] = True
    if gap_s is not None:
        keep &= ~((stamps >= gap_s[0]) & (stamps < gap_s[1]))
    stamps = np.sort(stamps[keep])
    stamps = stamps[stamps <= (start_m - stop_m) / speed_mps]
    scenario = approach(speed_mps=speed_mps, start_m=start_m, stop_m=stop_m, seed=seed,
                        stamps=stamps, name='approach_irregular', **kwargs)
    scenario.description += (f'; stamps jittered +-{jitter:.0%} of the period, '
                             f'{drop_fraction:.0%} dropped, gap {gap_s}')
    return scenario


def approach_and_cross(speed_mps=3.0, start_m=8.0, stop_m=1.5, crosser_depth_m=2.0,
                       crosser_speed_mps=2.0, background_m=10.0, rate_hz=30.0, noise_k=0.0025,
                       hole_fraction=0.05, seed=7, camera=PinholeCamera()):
    """Approach a box head-on while a nearer box crosses the view sideways in front of it.

    The crosser is nearer but not approaching, so the truth is the approaching box (whenever
    the crosser does not hide it completely).
    """
    rng = np.random.default_rng(seed)
    frames = []
    duration = (start_m - stop_m) / speed_mps
    for stamp in _stamps(duration, rate_hz):
        z = start_m - speed_mps * stamp
        crosser_x = -2.0 + crosser_speed_mps * stamp
        boxes = [Box(0.0, 0.0, z, 1.0, 1.0),
                 Box(crosser_x, 0.0, crosser_depth_m, 0.4, 1.0)]
        frames.append(_frame(stamp, boxes, camera, background_m, rng, noise_k, hole_fraction,
                             z, -speed_mps))
    return Scenario('approach_and_cross', frames, camera,
                    f'box approaching at {speed_mps} m/s while a box crosses at '
                    f'{crosser_depth_m} m')


def static(duration_s=2.0, depth_m=3.0, background_m=8.0, rate_hz=30.0, noise_k=0.0025,
           hole_fraction=0.05, seed=6, camera=PinholeCamera()):
    """Keep a box in front of a wall still: only the sensor noise changes."""
    rng = np.random.default_rng(seed)
    box = Box(0.3, 0.0, depth_m, 1.0, 1.0)
    frames = [_frame(stamp, [box], camera, background_m, rng, noise_k, hole_fraction,
                     math.nan, 0.0) for stamp in _stamps(duration_s, rate_hz)]
    return Scenario('static', frames, camera, f'static box at {depth_m} m, wall at '
                    f'{background_m} m')


_GENERATORS: Dict[str, Callable[..., Scenario]] = {
    'approach': approach,
    'recede': recede,
    'cross': cross,
    'enter': enter,
    'walk_to_wall': walk_to_wall,
    'approach_irregular': approach_irregular,
    'approach_and_cross': approach_and_cross,
    'static': static,
}
SCENARIO_NAMES = tuple(_GENERATORS)


def scenario_by_name(name: str, **kwargs) -> Scenario:
    """Build a scenario by name (see SCENARIO_NAMES); keyword arguments go to its generator."""
    try:
        generator = _GENERATORS[name]
    except KeyError:
        raise ValueError(f'unknown scenario {name!r}; known: {", ".join(SCENARIO_NAMES)}') \
            from None
    return generator(**kwargs)


def frames_within(scenario: Scenario, start_s: float = 0.0,
                  stop_s: Optional[float] = None) -> List[ScenarioFrame]:
    """Return the frames of a scenario with start_s <= stamp <= stop_s."""
    return [f for f in scenario.frames
            if f.stamp_s >= start_s and (stop_s is None or f.stamp_s <= stop_s)]
