#!/usr/bin/env bash
# `npm test`: installs the system packages the tests need when they are missing (as root, with
# apt) or stops at once saying what to install; then checks the tier direction of gateway/
# (dependency-cruiser, .dependency-cruiser.cjs: one test in the count, failed on any violation),
# runs every test and ends with the line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

need=()
command -v influxd >/dev/null 2>&1 || need+=(influxdb)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v mosquitto >/dev/null 2>&1 || need+=(mosquitto)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing system packages for the tests: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null || { echo "apt-get install ${need[*]} failed"; exit 1; }
  else
    echo "Missing system packages: ${need[*]}. Install them with: sudo apt-get install -y ${need[*]}"
    exit 1
  fi
fi
[ -d node_modules ] || npm ci

mkdir -p .test-results
rm -f .test-results/results.json .test-results/summary.txt
echo "Tier direction (dependency-cruiser):"
if npx depcruise gateway --config .dependency-cruiser.cjs; then dep_failed=0; else dep_failed=1; fi
npx vitest run "$@"
status=$?
vitest_status=$status
[ "$dep_failed" = 0 ] || status=1
summary=$(DEP_FAILED=$dep_failed VITEST_STATUS=$vitest_status node -e '
  const fs = require("fs");
  try {
    const r = JSON.parse(fs.readFileSync(".test-results/results.json", "utf8"));
    const skipped = r.numPendingTests + r.numTodoTests;
    // A failed suite (a file that did not load) counts as a failure even with no test in it.
    const failedSuites = r.testResults.filter((t) => t.status === "failed" && t.assertionResults.every((a) => a.status !== "failed")).length;
    // The dependency check is one more test.
    const dep = process.env.DEP_FAILED === "1" ? 1 : 0;
    // vitest failing with every test passed: errors outside the tests (an unhandled rejection
    // during the run). That is a failure of the run, counted as one, never "0 failed".
    const failed = r.numFailedTests + failedSuites;
    const outside = process.env.VITEST_STATUS !== "0" && failed === 0 ? 1 : 0;
    if (outside) console.error("vitest failed outside the tests (see \"Unhandled Errors\" above): counted as 1 failure");
    console.log(`${r.numPassedTests + 1 - dep} passed, ${failed + dep + outside} failed` + (skipped ? `, ${skipped} skipped` : ""));
  } catch (e) { console.log(`0 passed, ${1 + (process.env.DEP_FAILED === "1" ? 1 : 0)} failed`); }
')
echo "$summary" > .test-results/summary.txt
echo "$summary"
exit $status
