"""Depth scenes rendered by MuJoCo (scripts/render_scenes.py), loaded as harness Scenarios.

Each scene is a folder of data/rendered/: NNNN.png (16-bit depth in mm, 0 = invalid, noise-free)
and scene.json (camera, stamps, per-frame ground truth; see the generator's docstring). The
loader adds the synthetic suite's sensor noise (sigma = noise_k * z**2, holes) from a seed, so a
scene is the same for the same arguments.

`score_scene` turns per-frame estimates into the figures the tests assert: how late the first
alert came after it was due, false-alert frames, median relative TTI error.
"""
from dataclasses import dataclass
import json
import math
from pathlib import Path
from typing import List, Optional, Sequence

from edge_perception.harness.scenarios import (add_depth_noise, PinholeCamera, Scenario,
                                               ScenarioFrame)
import numpy as np

RENDERED_DIR = Path(__file__).resolve().parents[1] / 'data' / 'rendered'
RENDERED_SCENES = ('thrown_ball', 'drone_cross_turn', 'wall_fly', 'cart_stops',
                   'pedestrian_crossing', 'near_pass', 'two_drones')


def load_rendered_scene(name: str, noise_k: float = 0.0025, hole_fraction: float = 0.05,
                        seed: int = 0, directory: Optional[Path] = None) -> Scenario:
    """Load a rendered scene as a Scenario (depth in metres, float32, seeded noise and holes).

    The scene's meta data (e.g. contact_time_s: when the object reaches the camera) is kept in
    `scenario.meta`.
    """
    from PIL import Image

    folder = Path(directory or RENDERED_DIR) / name
    spec_path = folder / 'scene.json'
    if not spec_path.exists():
        raise ValueError(f'no rendered scene {name!r} in {folder.parent} (known: '
                         f'{", ".join(RENDERED_SCENES)})')
    spec = json.loads(spec_path.read_text())
    camera = PinholeCamera(spec['width'], spec['height'], spec['fx'], spec['fy'], spec['cx'],
                           spec['cy'])
    rng = np.random.default_rng(seed)
    frames = []
    for index, truth in enumerate(spec['frames']):
        millimetres = np.asarray(Image.open(folder / f'{index:04d}.png'), dtype=np.float32)
        depth = millimetres * np.float32(1e-3)
        if noise_k > 0 or hole_fraction > 0:
            valid = depth > 0
            depth = add_depth_noise(depth, rng, noise_k, hole_fraction)
            depth[~valid] = 0.0
        tti = truth['tti_s']
        frames.append(ScenarioFrame(
            float(truth['stamp_s']), depth, float(truth['distance_m']),
            float(truth['speed_mps']), math.inf if tti is None else float(tti),
            bool(truth['expect_alert'])))
    scenario = Scenario(name, frames, camera, spec['description'])
    scenario.meta = dict(spec.get('meta', {}))
    return scenario


@dataclass
class SceneScore:
    """Figures of one scene: per-frame estimates against the ground truth."""

    name: str
    frames: int
    due_s: Optional[float]          # first stamp where an alert is due (None: never)
    first_alert_s: Optional[float]  # first stamp with an alert (None: never)
    late_s: float                   # first_alert_s - due_s (inf when missed, nan when not due)
    lead_s: float                   # contact_time_s - first_alert_s (nan without contact)
    tti_at_alert_s: float           # true TTI at the first alert
    false_alert_frames: int         # alerts with no alert due within the last late_window_s
    median_tti_error: float         # relative; no-approach estimates count as inf
    tti_frames: int

    def row(self) -> str:
        """Return a one-line summary."""
        def text(value):
            return '-' if value is None or (isinstance(value, float) and math.isnan(value)) \
                else f'{value:.3f}' if isinstance(value, float) else str(value)
        return (f'{self.name:<20} due {text(self.due_s):>6} alert {text(self.first_alert_s):>6} '
                f'late {text(self.late_s):>6} lead {text(self.lead_s):>6} false '
                f'{self.false_alert_frames:>3} median TTI err {text(self.median_tti_error):>6} '
                f'({self.tti_frames} frames)')


def score_scene(scenario: Scenario, alerts: Sequence[bool], ttis: Sequence[float],
                valid: Sequence[bool], late_window_s: float = 0.35,
                tti_window_s: float = 5.0) -> SceneScore:
    """Score per-frame (alert, TTI, valid) against the scene's ground truth.

    A false-alert frame is an alert where no frame of the last late_window_s was due (an alert
    may outlast the danger by as long as it may come late). The TTI error is taken where the
    truth approaches with TTI < tti_window_s and the estimate is valid; an estimate of no
    approach there counts as an infinite error.
    """
    frames: List[ScenarioFrame] = scenario.frames
    stamps = np.array([f.stamp_s for f in frames])
    due = next((f.stamp_s for f in frames if f.expect_alert), None)
    first = next((f.stamp_s for f, a in zip(frames, alerts) if a), None)
    false_frames = 0
    for i, (frame, alert) in enumerate(zip(frames, alerts)):
        if not alert:
            continue
        recent = (stamps >= frame.stamp_s - late_window_s - 1e-9) & (stamps <= frame.stamp_s)
        if not any(frames[j].expect_alert for j in np.flatnonzero(recent)):
            false_frames += 1
    errors = []
    for frame, tti, ok in zip(frames, ttis, valid):
        if ok and math.isfinite(frame.true_tti_s) and frame.true_tti_s < tti_window_s:
            errors.append(abs(tti - frame.true_tti_s) / frame.true_tti_s
                          if math.isfinite(tti) else math.inf)
    if due is None:
        late = math.nan
    else:
        late = (first - due) if first is not None else math.inf
    contact = getattr(scenario, 'meta', {}).get('contact_time_s')
    lead = contact - first if contact is not None and first is not None else math.nan
    at_alert = next((f.true_tti_s for f, a in zip(frames, alerts) if a), math.nan)
    median = (float(np.percentile(errors, 50, method='inverted_cdf')) if errors else math.nan)
    return SceneScore(scenario.name, len(frames), due, first, late, lead, at_alert,
                      false_frames, median, len(errors))


def run_estimator(scenario: Scenario, config=None):
    """Run a fresh DepthTTIEstimator over a scene; return (alerts, ttis, valid) per frame."""
    from edge_perception.core.collision import DepthTTIEstimator

    estimator = DepthTTIEstimator(config, scenario.camera.column_bearings_rad())
    alerts, ttis, valid = [], [], []
    for frame in scenario.frames:
        estimate = estimator.update(frame.depth_m, frame.stamp_s)
        alerts.append(bool(estimate.alert))
        ttis.append(estimate.tti_s)
        valid.append(bool(estimate.valid))
    return alerts, ttis, valid


def main(argv=None):
    """Print the scene figures: python -m edge_perception.harness.rendered_scenes [--seeds 0 1]."""
    import argparse

    from edge_perception.core.collision import SceneTTIConfig

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument('--scenes', nargs='+', default=list(RENDERED_SCENES))
    parser.add_argument('--pixels-only', action='store_true',
                        help='object_association false (the estimator before issue 11)')
    args = parser.parse_args(argv)
    config = SceneTTIConfig(object_association=not args.pixels_only)
    for seed in args.seeds:
        for name in args.scenes:
            scenario = load_rendered_scene(name, seed=seed)
            print(f'seed {seed} ' + score_scene(scenario, *run_estimator(scenario, config)).row())
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
