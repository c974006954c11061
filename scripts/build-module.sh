#!/usr/bin/env bash
# build-module.sh: build kuik's Pepr module, then add what `pepr build` cannot express to its webhook:
#   objectSelector (opt-out label kube-image-keeper.enix.io/image-caching-policy NotIn [ignore]) and
#   reinvocationPolicy: IfNeeded, in the manifest and in the Helm chart template (scripts/webhook-config.ts).
# First it rebuilds the proxy bundle (scripts/generate-proxy-bundle.ts), which the module it builds leaves out.
# Usage: scripts/build-module.sh [output dir, default dist] [extra `pepr build` flags...]
# The output directory must be inside the project: the bundle resolves `pepr` from node_modules.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist}
shift || true
marker=$(mktemp)
json=capabilities/bootstrap/proxy-bundle.generated.json
trap 'if [ -f "$marker.json" ]; then mv "$marker.json" "$json"; fi; rm -f "$marker"' EXIT
# The watcher's bootstrap data from deploy/ is committed (`pepr deploy` builds on its own): fail when it is stale.
npx tsx scripts/generate-bootstrap.ts --check
# The proxy bundle and deploy/generated/proxy-bundle (git-ignored): rebuilt. The module itself is built with an empty
# bundle, put back afterwards: only `npx pepr deploy`'s bootstrap needs it (its own pepr build reads the real one),
# the kustomize and Helm installs never bootstrap, and Helm's release Secret (1 MiB) cannot hold a module carrying it
# (capabilities/bootstrap/data-plane.ts).
npx tsx scripts/generate-proxy-bundle.ts
cp "$json" "$marker.json"
printf '{"name":"","sha256":"","source":""}\n' > "$json"
npx pepr build -o "$out" "$@"
# `pepr build` exits 0 even when its tsc step fails, leaving the previous bundle in place: insist on a fresh one.
bundle=$(ls -t "$out"/pepr-kuik.cjs "$out"/pepr-kuik.js 2>/dev/null | head -n 1 || true)
if [ -z "$bundle" ] || [ ! "$bundle" -nt "$marker" ]; then
  echo "build-module: pepr build did not write a new bundle in $out (see its output above: a type error?)" >&2
  exit 1
fi
npx tsx scripts/webhook-config.ts "$out/pepr-module-kuik.yaml" "$out/kuik-chart/templates/mutation-webhook.yaml"
npx tsx scripts/rbac-split.ts "$out/pepr-module-kuik.yaml"
echo "webhook and RBAC post-processed: $out/pepr-module-kuik.yaml, $out/kuik-chart/templates/mutation-webhook.yaml" >&2
