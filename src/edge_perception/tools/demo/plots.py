"""The demo's pictures: time-to-impact per scenario, waste frames, crack overlays."""
import math

from edge_perception.conversions import detection_box_xyxy
from edge_perception.tools.demo.report import describe, LEVEL_COLORS
import numpy as np


def plot_collision_tti(path, runs):
    """Plot true vs estimated time to impact per scenario, alert levels shaded."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), 1, figsize=(9, 2.6 * len(runs)), squeeze=False)
    for ax, (scenario, figures, alerts, _) in zip(axes[:, 0], runs):
        t_true = [f.stamp_s for f in scenario.frames]
        ax.plot(t_true, [min(f.true_tti_s, 10.0) for f in scenario.frames], 'k-', lw=2,
                label='true TTI')
        judged = sorted((a for a in alerts if a.level != 4 and -0.5 < a.scenario_stamp_s),
                        key=lambda a: a.scenario_stamp_s)
        estimated = [a for a in judged if not math.isnan(a.tti_s)]   # NaN: no estimate yet
        ax.plot([a.scenario_stamp_s for a in estimated],
                [min(a.tti_s, 10.0) for a in estimated],
                'b.', ms=4, label='estimated TTI (inf drawn at 10)')
        for a, b in zip(judged, judged[1:]):   # each level holds until the next alert
            if a.level:
                ax.axvspan(a.scenario_stamp_s, b.scenario_stamp_s, color=LEVEL_COLORS[a.level],
                           alpha=0.6, lw=0)
        ax.axhline(3.0, color='r', ls='--', lw=0.8)
        ax.set_ylim(0, 10.5)
        ax.set_ylabel('TTI [s]')
        ax.set_title(describe(figures, alerts).strip(), fontsize=9, loc='left')
        ax.legend(loc='upper right', fontsize=7)
    axes[-1, 0].set_xlabel('scenario time [s] (shading: CAUTION yellow, WARNING orange, '
                           'CRITICAL red)')
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def draw_waste(path, frames):
    """Up to three belt frames with boxes, track id, material, depth and pick point."""
    import cv2
    tiles = []
    for rgb, dets in frames[:3]:
        canvas = np.ascontiguousarray(rgb[:, :, ::-1])
        for d in dets:
            x0, y0, x1, y1 = (int(v) for v in detection_box_xyxy(d))
            cv2.rectangle(canvas, (x0, y0), (x1, y1), (0, 220, 0), 2)
            z = f' z={d.position.z:.2f}m' if d.position_valid else ''
            cv2.putText(canvas, f'#{d.track_id} {d.material}{z}', (x0 + 2, max(14, y0 - 5)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 255), 1, cv2.LINE_AA)
            if d.pick_point_valid:
                cv2.drawMarker(canvas, (int(d.pick_u), int(d.pick_v)), (0, 0, 255),
                               cv2.MARKER_CROSS, 14, 2)
        tiles.append(canvas)
    if tiles:
        cv2.imwrite(str(path), np.concatenate(tiles, axis=1))


def draw_cracks(path, panels):
    """Crack images side by side: prediction in red, ground truth outlined in green."""
    import cv2
    tiles = []
    for rgb, mask, gt, title in panels:
        canvas = rgb[:, :, ::-1].copy()
        canvas[mask] = (0.4 * canvas[mask] + 0.6 * np.array([40, 40, 255])).astype(np.uint8)
        contours, _ = cv2.findContours(gt.astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(canvas, contours, -1, (0, 220, 0), 1)
        canvas = cv2.resize(canvas, (384, int(384 * canvas.shape[0] / canvas.shape[1])))
        label = np.full((22, canvas.shape[1], 3), 255, np.uint8)
        cv2.putText(label, title, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                    cv2.LINE_AA)
        tiles.append(np.concatenate([label, canvas], axis=0))
    if not tiles:
        return
    height = max(t.shape[0] for t in tiles)
    tiles = [np.pad(t, ((0, height - t.shape[0]), (0, 0), (0, 0)), constant_values=255)
             for t in tiles]
    cv2.imwrite(str(path), np.concatenate(tiles, axis=1))
