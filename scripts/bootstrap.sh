#!/usr/bin/env bash
# Idempotent set-up of everything edge_perception needs, from nothing:
#   1. .venv with ROS 2 Kilted (rclpy, Fast DDS, message build tools) and the ML stack from PyPI,
#   2. when ../shared/ros2-extra is beside the repository (development, CI): the real launch,
#      launch_ros and ros2cli wheels, and the vision_msgs/composition_interfaces sources,
#   3. a colcon build of ros2_ws: this package (interfaces from msg/, executables, launch and
#      config in the install space) and the ros2-extra interfaces (ros2_ws/install),
#   4. edge_perception itself, installed editable (the `edge-perception` command).
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
req_hash=$(hash_of requirements/ros.txt requirements/python.txt requirements/runtime.txt)
if ! stamp_ok requirements "$req_hash"; then
  log "installing ROS 2 Kilted wheels and Python dependencies (first run: a few minutes)"
  "$VPY" -m pip install --disable-pip-version-check -q -r requirements/ros.txt -r requirements/runtime.txt -r requirements/python.txt 2>&1 \
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
  rm -f "$STAMPS/build" "$STAMPS/package" "$STAMPS/ros2extra"
fi

# 2. ROS pieces the package index lacks, when ../shared/ros2-extra is beside the repository
#    (development and CI; on a full ROS install they come from the distribution): the real
#    launch, launch_ros, ros2launch and ros2cli as wheels, and the vision_msgs and
#    composition_interfaces sources, built in step 3 with the package.
EXTRA="$(cd "$ROOT/.." && pwd)/shared/ros2-extra"
EXTRA_LINK="ros2_ws/src/ros2-extra"
extra_state=absent
if [ -d "$EXTRA/wheels" ] && [ -d "$EXTRA/src" ]; then
  extra_state=$(ls -l "$EXTRA/wheels" "$EXTRA/src" | sha256sum | cut -d' ' -f1)
  if ! stamp_ok ros2extra "$extra_state"; then
    log "installing launch, launch_ros and ros2cli from $EXTRA"
    "$VPY" -m pip install --disable-pip-version-check -q --no-deps --no-index "$EXTRA"/wheels/*.whl
    echo "$extra_state" > "$STAMPS/ros2extra"
  fi
  ln -sfn "$EXTRA/src" "$EXTRA_LINK"
else
  rm -f "$EXTRA_LINK"
fi

# 3. colcon build of ros2_ws: src/edge_perception is a link to this repository (the package
#    generates its interfaces from msg/ and installs launch/, config/ and the executables), plus
#    the ros2-extra interfaces when present. --symlink-install: launch and config files in the
#    install space are links to the sources, so edits need no rebuild; env.sh puts src/ first on
#    PYTHONPATH so Python edits need none either.
build_hash=$({ cat msg/*.msg CMakeLists.txt package.xml; ls launch config config/profiles;
               echo "$extra_state"; } | sha256sum | cut -d' ' -f1)
if ! stamp_ok build "$build_hash" || [ ! -f ros2_ws/install/setup.bash ]; then
  log "building edge_perception (interfaces, executables, launch) with colcon"
  (
    cd ros2_ws
    export VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH"
    export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
    # Incremental when this layout was built before; from scratch otherwise (e.g. a checkout
    # that still holds the old separate edge_perception_msgs build).
    [ -f "$STAMPS/build" ] || rm -rf build install log
    "$VENV/bin/colcon" build --symlink-install --event-handlers console_direct- \
      --cmake-args -DPython3_EXECUTABLE="$VPY" -DBUILD_TESTING=OFF > "$STAMPS/colcon.log" 2>&1 \
      || { cat "$STAMPS/colcon.log" >&2; exit 1; }
  )
  echo "$build_hash" > "$STAMPS/build"
fi

# 4. The package itself (editable: src/ is what runs).
pkg_hash=$(hash_of setup.py package.xml setup.cfg)
if ! stamp_ok package "$pkg_hash"; then
  log "installing edge_perception (editable)"
  "$VPY" -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
  echo "$pkg_hash" > "$STAMPS/package"
fi
log "ready"
