#!/usr/bin/env bash
# The test command: sets everything up (idempotent) and runs the whole test suite.
#   bash scripts/test.sh [pytest args...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
source scripts/env.sh
# A DDS domain of its own per run, so parallel runs on one machine never hear each other.
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( ($$ % 100) + 100 ))}"
exec python -m pytest tests "$@"
