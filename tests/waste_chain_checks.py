"""Checks shared by the waste chain tests (detector and waste_segmentation, each -> tracker).

A run is the dict the tests' module fixtures build: `by_stamp` (output stamp -> labelled belt
frame, edge_perception.harness.samples), `detections` and `tracks` ([(message, received)]) and
`k` (the camera matrix). Each function asserts; the bounds are the calling test's.
"""
from edge_perception.conversions import stamp_to_seconds
from edge_perception.harness.samples import WASTE_FRAME
from edge_perception.harness.waste_figures import match, position_error_m, WasteScore


def frame_of(run, msg):
    """Return the labelled frame a message answers (its stamp maps back onto the frame's)."""
    stamp = round(stamp_to_seconds(msg.header.stamp), 6)
    assert stamp in run['by_stamp'], f'output stamp {stamp} matches no input frame'
    return run['by_stamp'][stamp]


def print_figures(title, run):
    """Print the run's figures (seen with pytest -s): what the bounds were measured from."""
    score = WasteScore(run['k'])
    unmatched = 0
    for msg, _ in run['detections']:
        pairs = score.add(frame_of(run, msg)[3], list(msg.detections))
        unmatched += len(msg.detections) - len(pairs)
    errors = sorted(score.errors_m)
    print(f'{title}:', dict(score.figures(), unmatched_detections=unmatched,
                            material_right=score.material_ok,
                            position_error_mm_max=1000 * errors[-1] if errors else None,
                            frames=len(run['by_stamp']), answered=len(run['detections'])))


def check_every_frame_answered(run):
    """Check every frame is answered once on detections and tracks, with its header."""
    for topic in ('detections', 'tracks'):
        stamps = [round(stamp_to_seconds(m.header.stamp), 6) for m, _ in run[topic]]
        assert all(m.header.frame_id == WASTE_FRAME for m, _ in run[topic]), topic
        assert all(d.header.frame_id == WASTE_FRAME and d.header.stamp == m.header.stamp
                   for m, _ in run[topic] for d in m.detections), topic
        assert len(stamps) == len(set(stamps)), f'{topic}: a frame answered twice'
        # Sensor QoS keeps the freshest frame only, so one frame may be skipped under load.
        lost = set(run['by_stamp']) - set(stamps)
        assert len(lost) <= 1, f'{topic}: {len(lost)} of {len(run["by_stamp"])} frames lost'
        assert not set(stamps) - set(run['by_stamp'])


def check_3d_positions(run, median_max_m, max_m):
    """Check that matched detections carry 3D positions and pick points within the errors."""
    errors = []
    for msg, _ in run['detections']:
        for obj, det in match(frame_of(run, msg)[3], list(msg.detections)):
            assert det.position_valid and det.pick_point_valid
            errors.append(position_error_m(obj, det, run['k']))
    assert errors
    errors.sort()
    median = errors[len(errors) // 2]
    assert median <= median_max_m, f'median {median * 1000:.1f} mm'
    assert errors[-1] <= max_m, f'max {errors[-1] * 1000:.1f} mm'


def check_track_ids(run, max_switches):
    """Check each labelled object keeps its track id and no id is shared by two objects."""
    ids_of = {}        # (sequence, object source) -> set of track ids
    for msg, _ in run['tracks']:
        for obj, det in match(frame_of(run, msg)[3], list(msg.detections)):
            assert det.track_id >= 1
            ids_of.setdefault((obj['sequence'], obj['source']), set()).add(det.track_id)
    assert ids_of, 'no tracks matched the labels'
    owners = {}
    for obj, ids in ids_of.items():
        for track_id in ids:
            owners.setdefault(track_id, set()).add(obj)
    shared = {i: o for i, o in owners.items() if len(o) > 1}
    assert not shared, f'track ids reused for different objects: {shared}'
    switches = sum(len(ids) - 1 for ids in ids_of.values())
    assert switches <= max_switches(len(ids_of)), f'{switches} switches: {ids_of}'
    # Objects moving at 6 px per 0.2 s get a velocity estimate.
    assert any(d.velocity_valid for m, _ in run['tracks'] for d in m.detections)
