#!/usr/bin/env bash
# build-chart.sh: assemble kuik's installable Helm chart in dist/chart/kube-image-keeper/ (docs/install.md "Helm"):
#   deploy/chart/ (registry, proxy, GC, policies, monitors, UI; values compatible with kube-image-keeper v1)
#   + the Pepr module's generated chart dist/kuik-chart/ (admission/watcher Deployments, RBAC, webhook, Secrets),
#     its templates patched to read kuik's values and its webhook freed of docs/limitations.md B1 (scripts/assemble-chart.ts)
#   + deploy/crds/ in crds/ + deploy/components/garbage-collection/garbage-collect.sh and the proxy bundle's sha256 in
#     files/; the bundle's ConfigMap beside the chart, dist/chart/kube-image-keeper-proxy-bundle.yaml (not in the
#     chart: Helm's 1 MiB release Secret cannot hold it next to the Pepr module; apply it before helm install).
# Rebuilds the module first (scripts/build-module.sh) when dist/ is older than its inputs.
# Usage: scripts/build-chart.sh [--package]   (--package also writes dist/chart/kube-image-keeper-<version>.tgz)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
out=dist/chart/kube-image-keeper
helm=${KUIK_HELM_BIN:-$(bash scripts/build-components.sh --print-dir)/helm}
[ -x "$helm" ] || helm=$(command -v helm || true)
[ -n "$helm" ] || { echo "build-chart: helm not found: run scripts/build-components.sh helm" >&2; exit 1; }

# The module bundle and its chart are stale when any input is newer than the generated webhook template.
webhook=dist/kuik-chart/templates/mutation-webhook.yaml
stale=0
if [ ! -f "$webhook" ] || [ ! -f dist/pepr-module-kuik.yaml ]; then
  stale=1
elif [ -n "$(find pepr.ts package.json scripts/build-module.sh scripts/webhook-config.ts capabilities registry-client/src \
  proxy/src proxy/build.mjs proxy/undici-slim.mjs -newer "$webhook" -type f \
  \( -name '*.ts' -o -name '*.mjs' -o -name '*.json' -o -name '*.sh' \) ! -name '*.test.ts' -print -quit)" ]; then
  stale=1
fi
if [ "$stale" = 1 ]; then
  echo "build-chart: module bundle missing or stale: scripts/build-module.sh" >&2
  bash scripts/build-module.sh >&2
fi

# The proxy bundle (its sha256 goes into the chart, its ConfigMap beside it), when build-module.sh did not write it.
[ -f proxy/dist/kuik-proxy.mjs ] || npx tsx scripts/generate-proxy-bundle.ts >&2
npx tsx scripts/assemble-chart.ts dist/kuik-chart "$out"
"$helm" lint "$out" >&2
if [ "${1:-}" = --package ]; then
  "$helm" package "$out" -d dist/chart >&2
fi
echo "$out"
