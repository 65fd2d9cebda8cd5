#!/usr/bin/env python3
"""Render the collision test scenes with MuJoCo: 16-bit PNG depth (mm) plus ground truth JSON.

    MUJOCO_GL=egl python scripts/render_scenes.py [--out src/edge_perception/data/rendered]
                                                   [--scenes thrown_ball ...]

Needs `mujoco` (pip install mujoco; not a dependency of the package: the rendered scenes are
committed, and harness.rendered_scenes loads them). EGL renders offscreen without a display;
MUJOCO_GL=osmesa is the software fallback.

Camera: 640x480 pinhole, fx = fy = 525, cx = 319.5, cy = 239.5 (the synthetic suite's
camera), 30 Hz. Depth is MuJoCo's linearised z-buffer, i.e. z along the optical axis, as a
depth camera reports it; beyond 40 m (sky) it is written as 0 (invalid). The PNGs are noise-free
(they compress well); the loader adds seeded sensor noise and holes.

Ground truth per frame, in the package's convention (harness.scenarios): distance = optical-axis
depth of the nearest point of the object that matters, speed = its time derivative (negative =
approaching), TTI = distance / -speed, expect_alert = should_alert(speed, TTI). Scenes where an
object hits the camera also give the time of contact (object within contact_m of the camera
centre), so lead times can be stated against the real impact.
"""
import argparse
import json
import math
import os
from pathlib import Path
import sys

import numpy as np

WIDTH, HEIGHT, FX, RATE_HZ = 640, 480, 525.0, 30.0
FOVY_DEG = math.degrees(2.0 * math.atan(0.5 * HEIGHT / FX))
FAR_M = 40.0
G = 9.81

_WORLD = """
<mujoco model="{name}">
  <statistic extent="1" center="0 0 0"/>
  <visual><map znear="0.02" zfar="120"/><global offwidth="{w}" offheight="{h}"/></visual>
  <worldbody>
    <geom type="plane" size="60 60 0.1" rgba=".5 .5 .5 1"/>
    {static}
    <body name="rig" mocap="true" pos="0 0 1.5">
      <camera name="cam" pos="0 0 0" xyaxes="0 -1 0 0 0 1" fovy="{fovy}"/>
    </body>
    {bodies}
  </worldbody>
</mujoco>
"""

# A street: a building front 20 m ahead and two side buildings.
_STATIC = """
    <geom type="box" pos="20 0 20" size="0.5 30 20" rgba=".7 .6 .5 1"/>
    <geom type="box" pos="10 -9 6" size="10 0.5 6" rgba=".6 .6 .7 1"/>
    <geom type="box" pos="10 10 6" size="10 0.5 6" rgba=".6 .7 .6 1"/>
"""
# Street furniture, left out where the camera flies down the street (passing it is no hazard,
# but its depth shrinks faster than the wall's and would be the truth's nearest approach).
_CLUTTER = """
    <geom type="cylinder" pos="11 -3.5 2" size="0.1 2" rgba=".3 .3 .3 1"/>
    <geom type="box" pos="14 3.5 0.8" size="1.5 0.9 0.8" rgba=".2 .3 .6 1"/>
"""


def camera_axes(pitch_rad):
    """Return (forward, right, up) world vectors of a camera looking along +x, pitched up."""
    forward = np.array([math.cos(pitch_rad), 0.0, math.sin(pitch_rad)])
    right = np.array([0.0, -1.0, 0.0])
    up = np.cross(right, forward)
    return forward, right, up


def stamps(duration_s):
    """Frame stamps at RATE_HZ from 0 to duration_s."""
    return np.arange(int(math.floor(duration_s * RATE_HZ + 1e-9)) + 1) / RATE_HZ


# -- scenes: each returns (xml bodies, camera pitch, per-frame poses, ground truth) -----------

def thrown_ball():
    """Lob a 0.25 m ball from 9 m at about 6 m/s closing speed, arriving from above.

    A ball thrown over 9 m at 6 m/s falls 11 m below its straight line in the 1.45 s flight,
    so it arrives from about 50 degrees above; the camera (1.5 m up) is pitched up 28 degrees
    so that the whole flight is in view, as a drone or a person looking at the thrower sees it.
    The ball is held still at the release point for the first 0.5 s (the camera is running
    before the throw), so the lead time is measured on a running stream.
    """
    radius, contact_m, flight_s, hold_s = 0.125, 0.3, 1.45, 0.5
    cam = np.array([0.0, 0.0, 1.5])
    start = np.array([9.0, 0.6, 2.5])
    end = cam + np.array([contact_m, 0.0, 0.0])
    v0 = (end - start - 0.5 * np.array([0, 0, -G]) * flight_s ** 2) / flight_s

    def position(t):
        # Held still at the release point for hold_s (the camera is already running), thrown.
        t = max(t - hold_s, 0.0)
        return start + v0 * t + 0.5 * np.array([0, 0, -G]) * t * t

    # A building 15 m away behind the thrower: the view up is not sky (out of range) alone.
    bodies = (f'<body name="obj" mocap="true"><geom type="sphere" size="{radius}" '
              f'rgba=".9 .4 .1 1"/></body>'
              '<geom type="box" pos="15.5 0 20" size="0.5 12 20" rgba=".6 .5 .5 1"/>')
    pitch = math.radians(28.0)
    forward, _, _ = camera_axes(pitch)
    times = stamps(hold_s + flight_s - 0.05)

    def depth_of(t):
        return float(np.dot(position(t) - cam, forward)) - radius

    frames = [{'t': t, 'cam': cam, 'obj': position(t)} for t in times]
    truth = _truth(times, depth_of)
    meta = {'release_time_s': hold_s, 'contact_time_s': hold_s + flight_s,
            'launch_speed_mps': float(np.linalg.norm(v0)),
            'closing_speed_mps': float(-v0[0]), 'ball_diameter_m': 2 * radius,
            'start_distance_m': float(np.linalg.norm(start - cam))}
    return bodies, pitch, frames, truth, meta, 'ball lobbed from 9 m, arriving from above'


def drone_cross_turn():
    """Fly a second drone across 6 m ahead at 3 m/s, turning towards the camera at 4.5 m/s."""
    half = np.array([0.25, 0.25, 0.06])
    cam = np.array([0.0, 0.0, 1.5])
    dt = 1e-3
    path_t = np.arange(0.0, 3.0, dt)
    pos = np.empty((path_t.size, 3))
    p = np.array([6.0, 4.0, 1.7])
    for i, t in enumerate(path_t):
        pos[i] = p
        s = min(max((t - 1.15) / 0.45, 0.0), 1.0)
        s = s * s * (3 - 2 * s)
        v = (1 - s) * np.array([0.0, -3.0, 0.0]) + s * np.array([-4.5, 0.3, -0.06])
        p = p + v * dt
    contact = path_t[np.argmax(pos[:, 0] - half[0] <= 0.3)]

    def position(t):
        return np.array([np.interp(t, path_t, pos[:, k]) for k in range(3)])

    bodies = (f'<body name="obj" mocap="true"><geom type="box" size="{half[0]} {half[1]} '
              f'{half[2]}" rgba=".2 .2 .2 1"/>'
              + ''.join(f'<geom type="cylinder" pos="{sx * 0.3} {sy * 0.3} 0.08" '
                        f'size="0.12 0.01" rgba=".4 .4 .4 1"/>'
                        for sx in (-1, 1) for sy in (-1, 1)) + '</body>')
    times = stamps(contact - 0.05)

    def depth_of(t):
        return float(position(t)[0] - cam[0] - half[0])

    frames = [{'t': t, 'cam': cam, 'obj': position(t)} for t in times]
    return bodies, 0.0, frames, _truth(times, depth_of), {'contact_time_s': float(contact)}, \
        'drone crossing 6 m ahead at 3 m/s, then turning towards the camera at 4.5 m/s'


def wall_fly():
    """Fly the camera at 4 m/s at a wall, from 14 m to 1.5 m."""
    speed, start, stop = 4.0, 14.0, 1.5
    wall_x = 20.0 - 0.5
    times = stamps((start - stop) / speed)
    frames = [{'t': t, 'cam': np.array([wall_x - start + speed * t, 0.0, 1.5]), 'obj': None}
              for t in times]
    return '', 0.0, frames, _truth(times, lambda t: start - speed * t), \
        {'contact_time_s': start / speed}, 'camera flying at 4 m/s at a building front'


def cart_stops():
    """Drive a cart at 3 m/s from 9 m that brakes at 3 m/s2 and stops 4.5 m away."""
    half = np.array([0.4, 0.3, 0.45])
    cam = np.array([0.0, 0.0, 1.0])

    def front(t):
        if t < 1.0:
            return 9.0 - 3.0 * t
        tb = min(t - 1.0, 1.0)
        return 6.0 - 3.0 * tb + 1.5 * tb * tb

    bodies = (f'<body name="obj" mocap="true"><geom type="box" size="{half[0]} {half[1]} '
              f'{half[2]}" rgba=".8 .1 .1 1"/></body>')
    times = stamps(3.0)
    frames = [{'t': t, 'cam': cam, 'obj': np.array([front(t) + half[0], 0.2, 0.1 + half[2]])}
              for t in times]
    return bodies, 0.0, frames, _truth(times, front), {}, \
        'cart approaching at 3 m/s, braking at 3 m/s2 from 6 m, stopping at 4.5 m'


def pedestrian_crossing():
    """Walk a pedestrian across the view 3.5 m ahead at 1.4 m/s, left to right."""
    cam = np.array([0.0, 0.0, 1.5])
    bodies = ('<body name="obj" mocap="true">'
              '<geom type="capsule" fromto="0 0 0.3 0 0 1.35" size="0.22" rgba=".2 .5 .2 1"/>'
              '<geom type="sphere" pos="0 0 1.6" size="0.12" rgba=".9 .7 .6 1"/></body>')
    times = stamps(4.0)
    frames = [{'t': t, 'cam': cam, 'obj': np.array([3.5, 2.8 - 1.4 * t, 0.0])} for t in times]
    return bodies, 0.0, frames, _truth(times, lambda t: 3.5 - 0.22, moving=False), {}, \
        'pedestrian crossing 3.5 m ahead at 1.4 m/s'


def near_pass():
    """Fly a 0.3 m ball at 5 m/s straight past the camera, 0.8 m to its side, from 10 m."""
    radius = 0.15
    cam = np.array([0.0, 0.0, 1.5])
    bodies = (f'<body name="obj" mocap="true"><geom type="sphere" size="{radius}" '
              f'rgba=".9 .9 .1 1"/></body>')

    def ahead(t):                       # still for 0.5 s, then at 5 m/s
        return 10.0 - 5.0 * max(t - 0.5, 0.0)
    times = stamps(2.2)
    frames = [{'t': t, 'cam': cam, 'obj': np.array([ahead(t), -0.8, 1.6])} for t in times]
    return bodies, 0.0, frames, _truth(times, lambda t: ahead(t) - radius), {}, \
        'ball hovering at 10 m for 0.5 s, then flying at 5 m/s past the camera, 0.8 m aside'


def two_drones():
    """Approach a drone head-on at 3.5 m/s from 10 m while a nearer one crosses at 4 m."""
    half = (0.25, 0.25, 0.06)
    cam = np.array([0.0, 0.0, 1.5])

    def drone(name):
        return (f'<body name="{name}" mocap="true"><geom type="box" size="{half[0]} {half[1]} '
                f'{half[2]}" rgba=".2 .2 .2 1"/></body>')

    def ahead(t):                       # hovering for 0.5 s, then at 3.5 m/s
        return 10.0 - 3.5 * max(t - 0.5, 0.0)
    times = stamps(2.7)
    frames = [{'t': t, 'cam': cam, 'obj': np.array([ahead(t), 0.3, 1.6]),
               'obj2': np.array([4.0, 3.0 - 2.5 * t, 1.5])} for t in times]
    return drone('obj') + drone('obj2'), 0.0, frames, \
        _truth(times, lambda t: ahead(t) - half[0]), {}, \
        'drone hovering at 10 m, then approaching at 3.5 m/s, while another crosses 4 m ahead'


def _truth(times, depth_of, moving=True):
    """Ground truth per frame from the optical-axis depth of the object that matters."""
    out = []
    for t in times:
        d = depth_of(t)
        speed = (depth_of(t + 1e-4) - depth_of(t - 1e-4)) / 2e-4 if moving else 0.0
        if abs(speed) < 1e-6:
            speed = 0.0
        tti = d / -speed if speed < 0 else math.inf
        alert = speed < -2.2 and tti < 3.0
        out.append({'stamp_s': round(float(t), 6), 'distance_m': round(d, 4),
                    'speed_mps': round(speed, 4),
                    'tti_s': round(tti, 4) if math.isfinite(tti) else None,
                    'expect_alert': bool(alert)})
    return out


SCENES = {'thrown_ball': thrown_ball, 'drone_cross_turn': drone_cross_turn,
          'wall_fly': wall_fly, 'cart_stops': cart_stops,
          'pedestrian_crossing': pedestrian_crossing, 'near_pass': near_pass,
          'two_drones': two_drones}

_CAMERA_MOVES = {'wall_fly'}


def render(name, out_dir):
    """Render one scene to out_dir/name: NNNN.png (uint16 mm) and scene.json."""
    import mujoco
    from PIL import Image

    bodies, pitch, frames, truth, meta, description = SCENES[name]()
    static = _STATIC + ('' if name in _CAMERA_MOVES else _CLUTTER)
    xml = _WORLD.format(name=name, w=WIDTH, h=HEIGHT, fovy=FOVY_DEG, static=static,
                        bodies=bodies)
    model = mujoco.MjModel.from_xml_string(xml)
    data = mujoco.MjData(model)
    renderer = mujoco.Renderer(model, HEIGHT, WIDTH)
    renderer.enable_depth_rendering()
    forward, right, up = camera_axes(pitch)
    cam_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, 'cam')
    # Camera axes in the rig body: x = right, y = up, z = -forward (MuJoCo looks along -z).
    rot = np.stack([right, up, -forward], axis=1)
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, rot.reshape(-1))
    model.cam_quat[cam_id] = quat
    target = Path(out_dir) / name
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob('*.png'):
        old.unlink()
    for i, frame in enumerate(frames):
        data.mocap_pos[0] = frame['cam']
        if frame['obj'] is not None:
            data.mocap_pos[1] = frame['obj']
        if 'obj2' in frame:
            data.mocap_pos[2] = frame['obj2']
        mujoco.mj_forward(model, data)
        renderer.update_scene(data, camera='cam')
        depth = renderer.render()
        mm = np.where((depth > 0) & (depth < FAR_M), np.round(depth * 1000.0), 0)
        Image.fromarray(mm.astype(np.uint16)).save(target / f'{i:04d}.png', optimize=True)
    scene = {'name': name, 'description': description,
             'renderer': f'mujoco {mujoco.__version__}', 'width': WIDTH, 'height': HEIGHT,
             'fx': FX, 'fy': FX, 'cx': (WIDTH - 1) / 2, 'cy': (HEIGHT - 1) / 2,
             'rate_hz': RATE_HZ, 'depth_unit': 'mm, 0 = invalid',
             'camera_pitch_deg': round(math.degrees(pitch), 3), 'meta': meta, 'frames': truth}
    (target / 'scene.json').write_text(json.dumps(scene, indent=1))
    return len(frames)


def main(argv=None):
    """Render the scenes (all by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(__file__).resolve().parents[1] / 'src' / 'edge_perception' / 'data'
    parser.add_argument('--out', default=str(default_out / 'rendered'))
    parser.add_argument('--scenes', nargs='*', default=list(SCENES), choices=list(SCENES))
    args = parser.parse_args(argv)
    os.environ.setdefault('MUJOCO_GL', 'egl')
    try:
        import mujoco  # noqa: F401
    except ImportError:
        print('render_scenes: mujoco is not installed (pip install mujoco); the committed '
              'scenes are used as they are', file=sys.stderr)
        return 1
    for name in args.scenes:
        print(f'{name}: {render(name, args.out)} frames')
    return 0


if __name__ == '__main__':
    sys.exit(main())
