#!/usr/bin/env bash
# up.sh (`npm run up`): install what is missing (scripts/setup.sh), then run kuik on a real local Kubernetes control
# plane in the background: etcd, kube-apiserver, kube-controller-manager, a cache registry, an origin registry with
# a demo image, kuik's admission and watcher processes and the proxy on localhost:7439. Caches the demo image end to
# end and prints what runs. Already up: says so. Stop with `npm run down`. See docs/local-cluster.md.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s.%N)
if [ "${KUIK_UP_SKIP_SETUP:-0}" != 1 ]; then
  bash scripts/setup.sh
fi
rc=0
./node_modules/.bin/node --import tsx scripts/local-cluster.ts up || rc=$?
printf '\033[1m[up]\033[0m npm run up: %.1f s in all (setup included), exit %d\n' \
  "$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')" "$rc"
exit $rc
