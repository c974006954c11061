#!/usr/bin/env bash
# build-module.sh: build kuik's Pepr module, then add what `pepr build` cannot express to its webhook:
#   objectSelector (opt-out label kube-image-keeper.enix.io/image-caching-policy NotIn [ignore]) and
#   reinvocationPolicy: IfNeeded, in the manifest and in the Helm chart template (scripts/webhook-config.ts).
# Usage: scripts/build-module.sh [output dir, default dist] [extra `pepr build` flags...]
# The output directory must be inside the project: the bundle resolves `pepr` from node_modules.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist}
shift || true
npx pepr build -o "$out" "$@"
npx tsx scripts/webhook-config.ts "$out/pepr-module-kuik.yaml" "$out/kuik-chart/templates/mutation-webhook.yaml"
echo "webhook post-processed: $out/pepr-module-kuik.yaml, $out/kuik-chart/templates/mutation-webhook.yaml" >&2
