#!/usr/bin/env bash
# Idempotent set-up of everything edge_perception needs, from nothing:
#   1. .venv with ROS 2 Kilted (rclpy, Fast DDS, message build tools) and the ML stack from PyPI,
#   2. the interfaces package edge_perception_msgs built from msg/ with colcon (ros2_ws/install),
#   3. edge_perception itself, installed editable.
# Each step is skipped when its inputs have not changed since it last succeeded (stamp files in
# .venv/.stamps), so a second run takes about a second.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMPS="$VENV/.stamps"
PYTHON_BIN="${PYTHON:-python3}"
cd "$ROOT"

log() { printf '[bootstrap] %s\n' "$*" >&2; }
hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }
stamp_ok() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV with $($PYTHON_BIN --version)"
  "$PYTHON_BIN" -m venv "$VENV"
fi
mkdir -p "$STAMPS"
VPY="$VENV/bin/python"

# 1. Python packages.
req_hash=$(hash_of requirements/ros.txt requirements/python.txt)
if ! stamp_ok requirements "$req_hash"; then
  log "installing ROS 2 Kilted wheels and Python dependencies (first run: a few minutes)"
  "$VPY" -m pip install --disable-pip-version-check -q -r requirements/ros.txt -r requirements/python.txt 2>&1 \
    | { grep -v "^WARNING: Location .* is ignored" || true; }
  # The wheels' CMake export files name include dirs of the machine they were built on; point them
  # at this interpreter's (otherwise CMake stops with 'includes non-existent path').
  "$VPY" - <<'PY'
import pathlib, sys, sysconfig
import numpy
prefix = pathlib.Path(sys.prefix)
py_inc = sysconfig.get_paths()['include']
np_inc = numpy.get_include()
fixed = 0
for f in (prefix / 'share').rglob('*.cmake'):
    text = f.read_text(errors='surrogateescape')
    new = (text.replace('/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include', np_inc)
               .replace('/opt/python/cp311-cp311/include/python3.11', py_inc))
    if new != text:
        f.write_text(new, errors='surrogateescape')
        fixed += 1
print(f'[bootstrap] rewrote build-machine include paths in {fixed} CMake files', file=sys.stderr)
PY
  echo "$req_hash" > "$STAMPS/requirements"
  rm -f "$STAMPS/msgs" "$STAMPS/package"
fi

# 2. Messages: colcon build of ros2_ws (edge_perception_msgs generated from msg/).
msg_hash=$(hash_of msg/*.msg ros2_ws/src/edge_perception_msgs/CMakeLists.txt ros2_ws/src/edge_perception_msgs/package.xml)
if ! stamp_ok msgs "$msg_hash" || [ ! -f ros2_ws/install/setup.bash ]; then
  log "building edge_perception_msgs with colcon"
  (
    cd ros2_ws
    export VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH"
    export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
    rm -rf build install log
    "$VENV/bin/colcon" build --event-handlers console_direct- \
      --cmake-args -DPython3_EXECUTABLE="$VPY" -DBUILD_TESTING=OFF > "$STAMPS/colcon.log" 2>&1 \
      || { cat "$STAMPS/colcon.log" >&2; exit 1; }
  )
  echo "$msg_hash" > "$STAMPS/msgs"
fi

# 3. The package itself (editable: src/ is what runs).
pkg_hash=$(hash_of setup.py package.xml setup.cfg)
if ! stamp_ok package "$pkg_hash"; then
  log "installing edge_perception (editable)"
  "$VPY" -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
  echo "$pkg_hash" > "$STAMPS/package"
fi
log "ready"
