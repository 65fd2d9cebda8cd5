"""The demo's report: report.md, alerts.csv, figures.json and the per-scenario line."""
import json
import math


LEVEL_NAMES = {0: 'NONE', 1: 'CAUTION', 2: 'WARNING', 3: 'CRITICAL', 4: 'SENSOR_LOST'}
LEVEL_COLORS = {0: '#ffffff', 1: '#fff3b0', 2: '#ffb347', 3: '#ff5c5c', 4: '#b0b0b0'}


def describe(figures, alerts):
    """One line per scenario for the terminal."""
    first = next((a for a in alerts if a.level in (2, 3)), None)
    if figures.expected_alert:
        verdict = ('MISSED' if figures.missed else
                   f'WARNING at t={first.scenario_stamp_s:.2f} s with {figures.lead_time_s:.2f} s '
                   f'to impact')
    else:
        verdict = ('no alert (correct)' if not figures.raised_warning else
                   f'FALSE ALERT in {figures.false_alert_frames} frames')
    err = figures.median_tti_rel_error
    tti = f', median TTI error {100 * err:.1f}%' if math.isfinite(err) else ''
    peak = max((a.level for a in alerts if a.level != 4), default=0)
    return f'{figures.scenario:>18}: {verdict}{tti}; peak level {LEVEL_NAMES[peak]}'


def _section(lines, title, section, what):
    """Add a section's heading; False (and the reason) when its models did not load."""
    lines += [f'## {title}', '']
    if 'error' in section:
        lines += [f'{what} not loaded: {section["error"]}', '']
        return False
    return True


def write_report(out, sections, counts, failures):
    """report.md, collision_tti.png, alerts.csv, figures.json (+ the waste and crack images)."""
    runs = sections.get('collision', [])
    figures_json = {'collision': {fig.scenario: fig.summary() for _, fig, _, _ in runs},
                    'waste': sections.get('waste'), 'crack': sections.get('crack'),
                    'published': counts, 'callback_failures': failures}
    (out / 'figures.json').write_text(json.dumps(figures_json, indent=2, default=str))
    lines = ['# edge_perception demo report', '',
             'One composed graph of real nodes over DDS (detector, waste_segmentation, tracker, '
             'time_to_impact, haptic_alert, crack_segmentation, markers), fed the bundled '
             'scenes as rosbag2 files replayed at their recorded pace.', '']
    if runs:
        _write_collision(out, runs, lines)
    waste = sections.get('waste')
    if waste and _section(lines, 'Waste belt', waste, 'Detector'):
        lines += [
            'TrashNet objects composited on a belt (held-out objects, exact labels, '
            'registered depth), sliding 6 px per frame at 5 Hz.', '',
            '| frames | recall @ IoU 0.5 | tracks | ID switches | 3D error median / p90 '
            '| material correct |', '|---|---|---|---|---|---|',
            f"| {waste['track_messages']} | {waste['recall_iou50']:.3f} "
            f"({waste['matched']}/{waste['truth_objects']}) | {waste['objects_tracked']} | "
            f"{waste['id_switches']} | {waste['position_error_mm_median']:.0f} / "
            f"{waste['position_error_mm_p90']:.0f} mm | "
            f"{100 * waste['material_accuracy']:.0f}% |", '',
            '![waste](waste_frames.png)', '',
            'Boxes with track id, material and depth; red crosses: pick points.', '']
        seg = waste.get('segmentation')
        if seg:
            lines += [
                'The same frames through waste_segmentation (per-pixel materials, one '
                'detection per connected region of one material; not tracked here):', '',
                '| recall @ IoU 0.5 | material correct | 3D error median / p90 | label images '
                '| ms per frame (p50) |', '|---|---|---|---|---|',
                f"| {seg['recall_iou50']:.3f} ({seg['matched']}/{seg['truth_objects']}) | "
                f"{100 * seg['material_accuracy']:.0f}% | "
                f"{seg['position_error_mm_median']:.0f} / {seg['position_error_mm_p90']:.0f} mm "
                f"| {seg['label_images']} | {seg['ms_per_frame_p50']:.0f} |", '']
    crack = sections.get('crack')
    if crack and _section(lines, 'Cracks', crack, 'Crack models'):
        lines += ['DeepCrack samples (research/education licence) seen on a flat surface '
                  'at 0.5 m with fx = 1000 px (0.5 mm per pixel). Red: predicted crack; '
                  'green outline: ground truth.', '',
                  '| image | IoU | length mm | max / mean width mm | severity | experts '
                  '(weight) | ms |', '|---|---|---|---|---|---|---|']
        for r in crack['images']:
            lines.append(f"| {r['image']} | {r['iou']:.3f} | {r['length_mm']:.0f} | "
                         f"{r['max_width_mm']:.2f} / {r['mean_width_mm']:.2f} | "
                         f"{r['severity']} | {r['experts']} | {r['inference_ms']:.0f} |")
        lines += ['', '![cracks](crack_overlays.png)', '']
    lines += ['## Messages published', '', '| topic | messages |', '|---|---|']
    lines += [f'| `{topic}` | {n} |' for topic, n in counts.items()]
    lines += ['', f'Callbacks that raised: {failures}.', '']
    (out / 'report.md').write_text('\n'.join(lines))


def _write_collision(out, runs, lines):
    """alerts.csv, the TTI plot and the collision table."""
    from edge_perception.tools.demo.plots import plot_collision_tti

    with open(out / 'alerts.csv', 'w') as csv:
        csv.write('scenario,stamp_s,level,level_name,tti_s,latency_ms\n')
        for scenario, _, alerts, _ in runs:
            for a in alerts:
                csv.write(f'{scenario.name},{a.scenario_stamp_s:.4f},{a.level},'
                          f'{LEVEL_NAMES.get(a.level)},{a.tti_s:.4f},'
                          f'{(a.received_wall_s - a.stamp_wall_s) * 1e3:.2f}\n')

    plot_collision_tti(out / 'collision_tti.png', runs)

    lines += ['## Collision alerts', '',
              'Synthetic depth scenarios (640x480 16UC1, 30 Hz, range noise sigma = 0.0025 z^2, '
              '5% holes) -> time_to_impact -> haptic_alert.', '',
              '| scenario | expected | result | lead time s | median TTI error | '
              'alert latency p50/p99 ms | haptic patterns |',
              '|---|---|---|---|---|---|---|']
    for scenario, f, alerts, commands in runs:
        result = ('missed' if f.missed else 'alert' if f.raised_warning else 'no alert')
        err = f'{100 * f.median_tti_rel_error:.1f}%' if math.isfinite(
            f.median_tti_rel_error) else '-'
        lead = f'{f.lead_time_s:.2f}' if math.isfinite(f.lead_time_s) else '-'
        summary = f.summary()
        patterns = sorted({LEVEL_NAMES[c.level] for c in commands})
        lines.append(f'| {scenario.name} | {"alert" if f.expected_alert else "none"} | '
                     f'{result} | {lead} | {err} | {summary["alert_latency_ms_p50"]:.1f} / '
                     f'{summary["alert_latency_ms_p99"]:.1f} | {", ".join(patterns)} |')
    lines += ['', '![time-to-impact](collision_tti.png)', '',
              'Per-alert records: `alerts.csv`; all figures: `figures.json`.', '']
