#!/usr/bin/env bash
# build-module.sh: build kuik's Pepr module, then add what `pepr build` cannot express to its webhook:
#   objectSelector (opt-out label kube-image-keeper.enix.io/image-caching-policy NotIn [ignore]) and
#   reinvocationPolicy: IfNeeded, in the manifest and in the Helm chart template (scripts/webhook-config.ts).
# First it rebuilds the proxy bundle (scripts/generate-proxy-bundle.ts): the module's bootstrap embeds it.
# Usage: scripts/build-module.sh [output dir, default dist] [extra `pepr build` flags...]
# The output directory must be inside the project: the bundle resolves `pepr` from node_modules.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist}
shift || true
marker=$(mktemp)
trap 'rm -f "$marker"' EXIT
# The watcher's bootstrap data from deploy/ is committed (`pepr deploy` builds on its own): fail when it is stale.
npx tsx scripts/generate-bootstrap.ts --check
# The proxy bundle the module embeds for its bootstrap, and deploy/generated/proxy-bundle (git-ignored): rebuilt.
npx tsx scripts/generate-proxy-bundle.ts
npx pepr build -o "$out" "$@"
# `pepr build` exits 0 even when its tsc step fails, leaving the previous bundle in place: insist on a fresh one.
bundle=$(ls -t "$out"/pepr-kuik.cjs "$out"/pepr-kuik.js 2>/dev/null | head -n 1 || true)
if [ -z "$bundle" ] || [ ! "$bundle" -nt "$marker" ]; then
  echo "build-module: pepr build did not write a new bundle in $out (see its output above: a type error?)" >&2
  exit 1
fi
npx tsx scripts/webhook-config.ts "$out/pepr-module-kuik.yaml" "$out/kuik-chart/templates/mutation-webhook.yaml"
echo "webhook post-processed: $out/pepr-module-kuik.yaml, $out/kuik-chart/templates/mutation-webhook.yaml" >&2
