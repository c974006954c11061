#!/usr/bin/env bash
# setup.sh: install everything kuik's local run and tests need, idempotently, on a fresh Debian machine:
#   - Debian packages: skopeo, docker-registry (distribution 2.8), containerd, htpasswd, python3-grpcio, openssl…
#   - npm ci (Node 24 comes with the node@24 devDependency; never --ignore-scripts, it would drop Node 24)
#   - real Kubernetes/etcd/registry/crane/helm/MinIO binaries built from their Go modules into ~/.cache/kuik/bin
# Re-running it is cheap: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

# util-linux: setpriv (test processes die with their parent), unshare, flock.
# containerd (Debian's 1.6, with runc) is the local node's runtime too; iptables for kube-proxy and portmap;
# busybox-static: the shell of the mirror's registry image (test/harness/node-images.ts); gcc + libc6-dev: the static pause binary.
APT_PACKAGES=(skopeo docker-registry containerd apache2-utils python3-grpcio openssl curl ca-certificates tinyproxy util-linux iptables iproute2 busybox-static gcc libc6-dev)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp=node_modules/.kuik-npm-ci
if [ ! -x node_modules/.bin/node ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$(sha256sum package-lock.json | cut -d' ' -f1)" ]; then
  log "npm ci"
  npm ci --no-audit --no-fund
  sha256sum package-lock.json | cut -d' ' -f1 > "$stamp"
fi
log "node $(node_modules/.bin/node --version) (pinned by the node@24 devDependency)"
# The proxy bundle and what ships it (git-ignored; package.json `prepare` writes them at `npm ci`): rewritten
# when the proxy's sources changed since, e.g. after a pull on a checkout whose node_modules is current.
if ! PATH="$PWD/node_modules/.bin:$PATH" tsx scripts/generate-proxy-bundle.ts --check >/dev/null 2>&1; then
  log "proxy bundle"
  PATH="$PWD/node_modules/.bin:$PATH" tsx scripts/generate-proxy-bundle.ts
fi

if [ -x scripts/build-components.sh ]; then
  bash scripts/build-components.sh
fi
