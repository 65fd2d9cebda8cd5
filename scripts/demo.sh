#!/usr/bin/env bash
# The main job on the bundled default: sets everything up (idempotent), then runs the demo
# scenarios through the real node graph and writes a report to out/demo/.
#   bash scripts/demo.sh [edge-perception demo args...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
source scripts/env.sh
# IDs above 101 put DDS ports into the Linux ephemeral port range (ROS 2 docs): use 10..99.
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( ($$ % 90) + 10 ))}"
exec edge-perception demo "$@"
