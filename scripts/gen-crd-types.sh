#!/usr/bin/env bash
# Regenerates the TypeScript types of kuik's CRDs from deploy/crds/*.yaml with kubernetes-fluent-client.
# Usage: scripts/gen-crd-types.sh [output-dir]   (default: capabilities/crd/generated)
# The output is committed; capabilities/crd/generated.test.ts fails when it is stale.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-capabilities/crd/generated}"
case "$out" in /*) ;; *) out="$root/$out" ;; esac

cd "$root"
# node_modules/.bin first: the generator then runs on the pinned Node (the `node` devDependency), without npx.
export PATH="$root/node_modules/.bin:$PATH"
mkdir -p "$out"
# Only the generator's own files are removed, so a stale type never survives a CRD rename.
find "$out" -maxdepth 1 -name '*-v*.ts' -type f -delete
for crd in deploy/crds/*.yaml; do
  kubernetes-fluent-client crd "$crd" "$out" >/dev/null
done
