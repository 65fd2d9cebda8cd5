# Source this (bash) to get the project's environment: the venv, the built messages, and a
# localhost-only DDS so that tests and demos never talk to other machines' ROS graphs.
_EP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# setup.bash of colcon references unset variables; relax nounset while sourcing it.
_ep_nounset=0; case $- in *u*) _ep_nounset=1; set +u;; esac
. "$_EP_ROOT/.venv/bin/activate"
. "$_EP_ROOT/ros2_ws/install/setup.bash"
# Sources first: the package runs from src/ (edits need no rebuild); its generated interfaces
# (edge_perception.msg) come from the install space through the package's extend_path.
export PYTHONPATH="$_EP_ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
[ "$_ep_nounset" = 1 ] && set -u
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
unset _EP_ROOT _ep_nounset
