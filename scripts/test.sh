#!/usr/bin/env bash
# The test command: sets everything up (idempotent) and runs the whole test suite.
#   bash scripts/test.sh [pytest args...]
# Unit and package tests run in one pytest process; each integration test file (real nodes over
# DDS) runs in a process of its own, so DDS participants, executor threads and model runtimes of
# one file can never slow or disturb another. The last line sums up all runs.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh" || exit 1
cd "$ROOT"
source scripts/env.sh
# A DDS domain of its own per run, so parallel runs on one machine never hear each other.
# IDs above 101 put DDS ports into the Linux ephemeral port range (ROS 2 docs): use 10..99.
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( ($$ % 90) + 10 ))}"

reports="$(mktemp -d)"
trap 'rm -rf "$reports"' EXIT
status=0
run() {   # run NAME PATHS...: one pytest process, its JUnit report in $reports
    local name="$1"; shift
    python -m pytest "$@" --junitxml="$reports/$name.xml" "${PYTEST_ARGS[@]}"
    local rc=$?
    # 5 = nothing collected (e.g. a -k filter that selects nothing in this file): not a failure.
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then status=1; fi
}
PYTEST_ARGS=("$@")
run unit tests/core tests/drivers tests/harness tests/test_*.py
for file in tests/integration/test_*.py; do
    run "$(basename "$file" .py)" "$file"
done
python - "$reports" <<'PY'
import pathlib, sys
import xml.etree.ElementTree as ET
totals = dict(tests=0, failures=0, errors=0, skipped=0)
for report in sorted(pathlib.Path(sys.argv[1]).glob('*.xml')):
    for suite in ET.parse(report).getroot().iter('testsuite'):
        for key in totals:
            totals[key] += int(suite.get(key, 0))
failed = totals['failures'] + totals['errors']
passed = totals['tests'] - failed - totals['skipped']
print(f"total: {passed} passed, {failed} failed, {totals['skipped']} skipped")
PY
exit $status
