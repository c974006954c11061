#!/usr/bin/env bash
# test.sh: set up a fresh machine (scripts/setup.sh) and run every test tier, in order:
#   static (eslint, tsc, pepr build) → unit → integration (real registries, skopeo, crane, containerd)
#   → e2e (a real kube-apiserver + etcd, the built Pepr module, the proxy).
# Ends with one line "N passed, N failed[, N skipped]" over all tiers; exits non-zero if anything failed.
# TIERS="unit integration" limits the run; extra arguments are passed to vitest (e.g. a file filter).
# KUIK_REQUIRE_ALL=1 (set by .ci/run) counts skipped tests as failures: a missing tool must not pass silently.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
export PATH="$PWD/node_modules/.bin:$PATH"
TIERS=${TIERS:-static unit integration e2e}
mkdir -p .kuik/results
rm -f .kuik/results/*.json
failed_static=0
status=0
for tier in $TIERS; do
  printf '\n\033[1m== %s ==\033[0m\n' "$tier"
  if [ "$tier" = static ]; then
    npm run --silent lint || failed_static=$((failed_static + 1))
    npm run --silent typecheck || failed_static=$((failed_static + 1))
    bash scripts/build-module.sh >.kuik/results/pepr-build.log 2>&1 || { cat .kuik/results/pepr-build.log; failed_static=$((failed_static + 1)); }
    continue
  fi
  # With a file filter, a tier may have nothing to run: that is not a failure.
  no_tests=(); [ $# -gt 0 ] && no_tests=(--passWithNoTests)
  npx vitest run --project "$tier" "${no_tests[@]}" --reporter=default --reporter=json --outputFile=".kuik/results/$tier.json" "$@" || status=1
done
node - "$failed_static" $TIERS <<'JS'
const fs = require("node:fs");
const [staticFailures, ...tiers] = process.argv.slice(2);
let passed = 0, failed = Number(staticFailures), skipped = 0;
for (const tier of tiers.filter(t => t !== "static")) {
  const file = `.kuik/results/${tier}.json`;
  // vitest died before reporting (e.g. a global setup found a tool missing): that is a failure, not zero tests.
  if (!fs.existsSync(file)) { console.error(`no results for the ${tier} tier`); failed++; continue; }
  const r = JSON.parse(fs.readFileSync(file, "utf8"));
  passed += r.numPassedTests; failed += r.numFailedTests; skipped += r.numPendingTests + r.numTodoTests;
  // A file that failed without a failed test (it did not load, or a beforeAll/afterAll hook threw, which vitest
  // reports as skipped tests) counts as one failure, and its tests as not skipped: they did not run for a reason.
  for (const s of r.testResults ?? []) {
    const results = s.assertionResults ?? [];
    if (s.status !== "failed" || results.some(a => a.status === "failed")) continue;
    failed++;
    skipped -= results.filter(a => a.status === "skipped" || a.status === "pending" || a.status === "todo").length;
  }
}
if (skipped > 0 && process.env.KUIK_REQUIRE_ALL === "1") {
  console.error(`${skipped} skipped test(s) with KUIK_REQUIRE_ALL=1: every tool must be there`);
  failed += skipped;
}
console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failed > 0 ? 1 : 0);
JS
rc=$?
[ $status -ne 0 ] && [ $rc -eq 0 ] && rc=1
exit $rc
