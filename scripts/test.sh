#!/usr/bin/env bash
# Runs every test project in the solution and ends with one line "N passed, N failed"
# (the .NET runners print per-project summaries only).
set -uo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp)
trap 'rm -f "$log"' EXIT

dotnet test Morphisms.slnx "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

# VSTest prints, per test assembly: "Passed!  - Failed: 0, Passed: 12, Skipped: 0, Total: 12, ..."
read -r passed failed skipped < <(awk '
  /(Passed|Failed)! +- +Failed: +[0-9]+, +Passed: +[0-9]+, +Skipped: +[0-9]+/ {
    for (i = 1; i <= NF; i++) {
      if ($i == "Failed:")  { f += $(i+1) + 0 }
      if ($i == "Passed:")  { p += $(i+1) + 0 }
      if ($i == "Skipped:") { s += $(i+1) + 0 }
    }
  }
  END { printf "%d %d %d\n", p, f, s }' "$log")

# A crashed test host or a build failure prints no summary: never report that as green.
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1
fi

echo "${passed} passed, ${failed} failed, ${skipped} skipped"
exit "$status"
