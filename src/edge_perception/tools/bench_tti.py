"""`edge-perception bench-tti`: scene-mode time-to-impact speed (ms/frame) and accuracy.

    edge-perception bench-tti [--frames 500] [--json OUT] [--scenario approach]
                              [--strides 1 2] [--no-accuracy]

Speed: DepthTTIEstimator.update on the 640x480 float32 frames of a synthetic scenario
(default: the 3 m/s approach with z^2 noise and 5 % holes), back to back on one thread, for
--frames calls per ROI stride (the scenario is replayed, with reset() between passes, untimed).
Reported: median, p90 and p99 ms per call, over all calls and over the calls that had a
reference frame (the steady state; the first baseline_s of each pass only fills the history),
in wall time and in the thread's CPU time (the cost on one core when the machine is shared).

Accuracy (unless --no-accuracy): every scenario of harness.scenarios per stride: median and p90
relative TTI error over the frames that truly approach and got a valid estimate ('inf' where
an approach was reported as none, e.g. while occluded), false alerts
(alert where the truth has none), missed alerts (no alert on a valid frame whose truth alerts),
and the same for the ImpactAlert app's rule as re-implemented here for comparison (ROI, moved
>= 0.2 m and nearer than the ROI median, means, invalid depth read as 0, reference 8 frames
back, time from stamps).
"""
import json
import math
import os
from pathlib import Path
import platform
import sys
import time


def timing(scenario, config, n_calls):
    """Time n_calls estimator updates replaying the scenario; return the figures (ms)."""
    import numpy as np

    from edge_perception.core.collision import DepthTTIEstimator

    estimator = DepthTTIEstimator(config, scenario.camera.column_bearings_rad())
    all_ms, steady_ms, steady_cpu_ms = [], [], []
    index = 0
    while len(all_ms) < n_calls:
        if index == len(scenario.frames):
            index = 0
            estimator.reset()
        frame = scenario.frames[index]
        start_cpu = time.thread_time()
        start = time.perf_counter()
        estimate = estimator.update(frame.depth_m, frame.stamp_s)
        elapsed_ms = 1e3 * (time.perf_counter() - start)
        cpu_ms = 1e3 * (time.thread_time() - start_cpu)
        all_ms.append(elapsed_ms)
        if estimate.valid or 'no reference' not in estimate.reason:
            steady_ms.append(elapsed_ms)
            steady_cpu_ms.append(cpu_ms)
        index += 1

    def summary(values):
        values = np.asarray(values)
        return {'calls': int(values.size),
                'median_ms': round(float(np.median(values)), 3),
                'p90_ms': round(float(np.percentile(values, 90)), 3),
                'p99_ms': round(float(np.percentile(values, 99)), 3),
                'mean_ms': round(float(values.mean()), 3)}

    # Wall time is what a node sees; the thread's CPU time is the cost on one core when the
    # machine is shared (other processes stretch the wall time, not the CPU time).
    return {'all': summary(all_ms), 'with_reference': summary(steady_ms),
            'with_reference_cpu': summary(steady_cpu_ms)}


def app_rule(frames, lag=8, min_motion_m=0.2):
    """(speed, tti, alert) per frame by the ImpactAlert app's rule (for comparison only)."""
    import numpy as np

    from edge_perception.core.collision import should_alert, time_to_impact

    results = []
    for i, frame in enumerate(frames):
        if i < lag:
            results.append((math.nan, math.nan, False))
            continue
        ref = frames[i - lag]
        height, width = frame.depth_m.shape
        rows = slice(height // 3, 2 * height // 3)
        cols = slice(width // 12, 11 * width // 12)
        now = np.nan_to_num(frame.depth_m[rows, cols].astype(np.float64), posinf=0.0)
        before = np.nan_to_num(ref.depth_m[rows, cols].astype(np.float64), posinf=0.0)
        change = now - before
        keep = (np.abs(change) >= min_motion_m) & (now < np.median(now))
        if not keep.any():
            results.append((0.0, math.inf, False))
            continue
        speed = float(change[keep].mean()) / (frame.stamp_s - ref.stamp_s)
        tti = time_to_impact(float(now[keep].mean()), speed)
        results.append((speed, tti, should_alert(speed, tti)))
    return results


def score(frames, outputs):
    """Accuracy figures from (frame, (speed, tti, alert, valid)) pairs."""
    import numpy as np

    errors, false_alerts, missed, due, valid = [], 0, 0, 0, 0
    for frame, (speed, tti, alert, ok) in zip(frames, outputs):
        valid += ok
        false_alerts += bool(alert and not frame.expect_alert)
        if ok and frame.expect_alert:
            due += 1
            missed += not alert
        if ok and math.isfinite(frame.true_tti_s):
            errors.append(abs(tti - frame.true_tti_s) / frame.true_tti_s)

    def quantile(q):
        # 'inverted_cdf' picks an observed value, so an infinite error (an approach reported
        # as none) stays infinite instead of turning into NaN by interpolation.
        if not errors:
            return None
        value = float(np.percentile(errors, q, method='inverted_cdf'))
        return round(value, 4) if math.isfinite(value) else 'inf'

    return {'frames': len(frames), 'valid': int(valid),
            'median_tti_error': quantile(50), 'p90_tti_error': quantile(90),
            'false_alert_frames': int(false_alerts), 'missed_alert_frames': int(missed),
            'alert_due_frames': int(due)}


def accuracy(stride):
    """Score the estimator (ROI stride) and the app's rule on every scenario."""
    from edge_perception.core.collision import DepthTTIEstimator, SceneTTIConfig
    from edge_perception.harness.scenarios import scenario_by_name, SCENARIO_NAMES

    table = {}
    for name in SCENARIO_NAMES:
        scenario = scenario_by_name(name)
        estimator = DepthTTIEstimator(SceneTTIConfig(roi_stride=stride),
                                      scenario.camera.column_bearings_rad())
        ours = []
        for frame in scenario.frames:
            estimate = estimator.update(frame.depth_m, frame.stamp_s)
            ours.append((estimate.speed_mps, estimate.tti_s, estimate.alert, estimate.valid))
        app = [(speed, tti, alert, not math.isnan(speed))
               for speed, tti, alert in app_rule(scenario.frames)]
        table[name] = {'estimator': score(scenario.frames, ours),
                       'app_rule': score(scenario.frames, app)}
    return table


def register(subparsers):
    """Add the `bench-tti` sub-command."""
    parser = subparsers.add_parser(
        'bench-tti', help='time-to-impact ms/frame on 640x480 depth, and accuracy per scenario',
        description=__doc__.split('\n')[0])
    parser.add_argument('--frames', type=int, default=500, help='timed update calls per stride')
    parser.add_argument('--json', type=Path, default=None, help='also write the figures here')
    parser.add_argument('--scenario', default='approach', help='scenario replayed for timing')
    parser.add_argument('--strides', type=int, nargs='+', default=[1, 2],
                        help='ROI strides to measure (1 = every ROI pixel)')
    parser.add_argument('--no-accuracy', action='store_true',
                        help='skip the per-scenario accuracy table')
    parser.set_defaults(func=run)


def run(args):
    """Benchmark and print (and optionally write) the figures; return the exit code."""
    # Single thread. numpy's element-wise kernels are single-threaded anyway; these only bind
    # BLAS/OpenMP pools if numpy is not imported yet.
    for variable in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
        os.environ.setdefault(variable, '1')
    import numpy as np

    from edge_perception.core.collision import SceneTTIConfig
    from edge_perception.harness.scenarios import scenario_by_name

    if args.frames < 1 or any(s < 1 for s in args.strides):
        print('bench-tti: --frames and --strides must be >= 1', file=sys.stderr)
        return 2
    try:
        scenario = scenario_by_name(args.scenario)
    except (ValueError, TypeError) as exc:
        print(f'bench-tti: {exc}', file=sys.stderr)
        return 2
    shape = scenario.frames[0].depth_m.shape
    report = {'scenario': args.scenario, 'image': f'{shape[1]}x{shape[0]} float32',
              'numpy': np.__version__,
              'host': {'machine': platform.machine(), 'processor': platform.processor(),
                       'cpu_count': os.cpu_count(),
                       'load_average_1min': round(os.getloadavg()[0], 2)},
              'timing': {}, 'accuracy': {}}
    print(f'bench-tti: {args.scenario}, {report["image"]}, {args.frames} calls per stride, '
          f'load average {report["host"]["load_average_1min"]}')
    for stride in args.strides:
        figures = timing(scenario, SceneTTIConfig(roi_stride=stride), args.frames)
        report['timing'][f'stride_{stride}'] = figures
        for part in ('all', 'with_reference', 'with_reference_cpu'):
            f = figures[part]
            print(f'stride {stride} {part:<18} median {f["median_ms"]:6.2f} ms  '
                  f'p90 {f["p90_ms"]:6.2f} ms  p99 {f["p99_ms"]:6.2f} ms  '
                  f'({f["calls"]} calls)')
    if not args.no_accuracy:
        print(f'{"scenario":<20} {"method":<14} {"valid":>9} {"medTTIerr":>9} {"p90err":>7} '
              f'{"false":>5} {"missed":>9}')
        for stride in args.strides:
            table = accuracy(stride)
            report['accuracy'][f'stride_{stride}'] = table
            for name, methods in table.items():
                for method, f in methods.items():
                    if method == 'app_rule' and stride != args.strides[0]:
                        continue     # the app's rule does not depend on the stride
                    label = f'stride {stride}' if method == 'estimator' else 'app rule'

                    def text(value):
                        return f'{value:.3f}' if isinstance(value, float) else str(value or '-')
                    print(f'{name:<20} {label:<14} {f["valid"]:>4}/{f["frames"]:<4} '
                          f'{text(f["median_tti_error"]):>9} {text(f["p90_tti_error"]):>7} '
                          f'{f["false_alert_frames"]:>5} '
                          f'{f["missed_alert_frames"]:>4}/{f["alert_due_frames"]:<4}')
    report['host']['load_average_1min_after'] = round(os.getloadavg()[0], 2)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    return 0
