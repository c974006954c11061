#!/usr/bin/env bash
# test.sh: set up a fresh machine (scripts/setup.sh) and run every test tier, in order:
#   static (eslint, tsc, pepr build) → unit → integration (real registries, skopeo, crane, containerd)
#   → e2e (a real kube-apiserver + etcd, the built Pepr module, the proxy).
# Ends with one line "N passed, N failed[, N skipped]" over all tiers; exits non-zero if anything failed.
# TIERS="unit integration" limits the run; extra arguments are passed to vitest (e.g. a file filter).
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
  npx vitest run --project "$tier" --reporter=default --reporter=json --outputFile=".kuik/results/$tier.json" "$@" || status=1
done
node - "$failed_static" <<'JS'
const fs = require("node:fs");
let passed = 0, failed = Number(process.argv[2]), skipped = 0;
for (const f of fs.readdirSync(".kuik/results").filter(f => f.endsWith(".json"))) {
  const r = JSON.parse(fs.readFileSync(`.kuik/results/${f}`, "utf8"));
  passed += r.numPassedTests; failed += r.numFailedTests + (r.numFailedTestSuites ?? 0) * 0; skipped += r.numPendingTests + r.numTodoTests;
  for (const s of r.testResults ?? []) if (s.status === "failed" && (s.assertionResults ?? []).length === 0) failed++;
}
console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failed > 0 ? 1 : 0);
JS
rc=$?
[ $status -ne 0 ] && [ $rc -eq 0 ] && rc=1
exit $rc
