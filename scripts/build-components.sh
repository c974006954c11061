#!/usr/bin/env bash
# Build the real third-party components kuik's tests run against
# (kube-apiserver, kube-controller-manager, kubectl, etcd, crane, registry, helm, MinIO) and the local node's
# (kubelet, kube-scheduler, kube-proxy, CoreDNS, the CNI plugins, the pause binary, the registry of the mirror's
# registry image) from their Go modules (pause: from its C source in the Kubernetes module) into
# ${KUIK_CACHE:-$HOME/.cache/kuik}/bin (CNI plugins in bin/cni/).
#
# Versions are pinned by the Go modules under scripts/components/ (see
# docs/components.md). Each binary gets a stamp keyed on its module's
# go.mod/go.sum, the Go version and the build flags; a binary is rebuilt only
# when that key changes or the binary is missing. Go's own build and module
# caches stay in their default places under $HOME, so a rebuild after a bump
# only recompiles what changed.
#
# Usage:
#   scripts/build-components.sh [--force] [NAME...]   build NAMEs (default: all)
#   scripts/build-components.sh --print-dir            print the bin dir and exit
#   scripts/build-components.sh --list                 print the component names
#
# Needs only Go (>= the go directive in scripts/components/*/go.mod) and
# access to the Go module proxy on a cold machine.
set -euo pipefail

# Bump to force every binary to rebuild when the build recipe below changes in
# a way the stamp key would not notice.
RECIPE=1

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
COMP_DIR="$SCRIPT_DIR/components"
CACHE_DIR=${KUIK_CACHE:-$HOME/.cache/kuik}
BIN_DIR="$CACHE_DIR/bin"
STAMP_DIR="$BIN_DIR/.stamps"

ALL=(etcd kube-apiserver kube-controller-manager kubectl crane registry helm)
# S3 server for the registry's S3 storage mode (test/integration/registry-s3.test.ts); pinned by commit.
ALL+=(minio)
# The local node (docs/local-cluster.md): kubelet, scheduler, kube-proxy, cluster DNS, CNI plugins, the pause
# binary of the sandbox image, and distribution v3.0.0 for the mirror's registry:3.0.0 image.
ALL+=(kubelet kube-scheduler kube-proxy coredns cni-bridge cni-host-local cni-loopback cni-portmap pause registry-v3.0)

# name -> "module dir (relative to COMP_DIR)|main package|versioned module[|output path under bin/]"
spec() {
  local cni=github.com/containernetworking/plugins
  case "$1" in
    etcd)           echo ".|go.etcd.io/etcd/server/v3|go.etcd.io/etcd/server/v3" ;;
    kube-apiserver) echo ".|k8s.io/kubernetes/cmd/kube-apiserver|k8s.io/kubernetes" ;;
    kube-controller-manager) echo ".|k8s.io/kubernetes/cmd/kube-controller-manager|k8s.io/kubernetes" ;;
    kubectl)        echo ".|k8s.io/kubernetes/cmd/kubectl|k8s.io/kubernetes" ;;
    crane)          echo "crane|github.com/google/go-containerregistry/cmd/crane|github.com/google/go-containerregistry" ;;
    registry)       echo "registry|github.com/distribution/distribution/v3/cmd/registry|github.com/distribution/distribution/v3" ;;
    minio)          echo "minio|github.com/minio/minio|github.com/minio/minio" ;;
    helm)           echo "helm|helm.sh/helm/v3/cmd/helm|helm.sh/helm/v3" ;;
    kubelet)        echo ".|k8s.io/kubernetes/cmd/kubelet|k8s.io/kubernetes" ;;
    kube-scheduler) echo ".|k8s.io/kubernetes/cmd/kube-scheduler|k8s.io/kubernetes" ;;
    kube-proxy)     echo ".|k8s.io/kubernetes/cmd/kube-proxy|k8s.io/kubernetes" ;;
    coredns)        echo "coredns|github.com/coredns/coredns|github.com/coredns/coredns" ;;
    cni-bridge)     echo "cni-plugins|$cni/plugins/main/bridge|$cni|cni/bridge" ;;
    cni-host-local) echo "cni-plugins|$cni/plugins/ipam/host-local|$cni|cni/host-local" ;;
    cni-loopback)   echo "cni-plugins|$cni/plugins/main/loopback|$cni|cni/loopback" ;;
    cni-portmap)    echo "cni-plugins|$cni/plugins/meta/portmap|$cni|cni/portmap" ;;
    # registry.k8s.io/pause: build/pause/linux/pause.c of the Kubernetes module, compiled as its Makefile does
    pause)          echo ".|build/pause/linux/pause.c|k8s.io/kubernetes" ;;
    registry-v3.0)  echo "registry-v3.0|github.com/distribution/distribution/v3/cmd/registry|github.com/distribution/distribution/v3" ;;
    *) return 1 ;;
  esac
}

die() { echo "build-components: error: $*" >&2; exit 1; }
log() { echo "build-components: $*" >&2; }

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

force=0
names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --print-dir) echo "$BIN_DIR"; exit 0 ;;
    --list) printf '%s\n' "${ALL[@]}"; exit 0 ;;
    --force) force=1 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "build-components: unknown option: $1" >&2; usage >&2; exit 2 ;;
    *)
      spec "$1" >/dev/null || { echo "build-components: unknown component: $1 (known: ${ALL[*]})" >&2; exit 2; }
      names+=("$1") ;;
  esac
  shift
done
[ ${#names[@]} -gt 0 ] || names=("${ALL[@]}")

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null 2>&1 || die "go not found in PATH (install Go >= 1.26; /usr/local/go/bin is a common place)"

export CGO_ENABLED=0
export GOFLAGS="-mod=mod -buildvcs=false"

mkdir -p "$STAMP_DIR"

# One builder at a time per cache dir (parallel test jobs may all call this).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE_DIR/.build.lock"
  if ! flock -n 9; then
    log "another build holds $CACHE_DIR/.build.lock; waiting"
    flock 9
  fi
fi

GO_ID=$(go env GOVERSION GOOS GOARCH | tr '\n' ' ') || die "'go env' failed"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# module version and its publication time (for a reproducible buildDate)
mod_info() { # moddir module
  (cd "$COMP_DIR/$1" && go list -m -f '{{.Version}} {{if .Time}}{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' "$2")
}

ldflags_for() { # name version time
  local name=$1 v=$2 t=${3:-1970-01-01T00:00:00Z} f="-s -w"
  case "$name" in
    kube-apiserver|kube-controller-manager|kubectl|kubelet|kube-scheduler|kube-proxy)
      # what kubernetes' hack/lib/version.sh sets for a source-archive build
      local major minor pkg
      major=${v#v}; major=${major%%.*}
      minor=${v#v*.}; minor=${minor%%.*}
      for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
        f+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
        f+=" -X $pkg.gitTreeState=archive -X $pkg.buildDate=$t"
      done ;;
    # etcd's version is a constant; only the commit is stamped by its release
    # build, and a module build has none.
    etcd) f+=" -X go.etcd.io/etcd/api/v3/version.GitSHA=none" ;;
    crane) f+=" -X github.com/google/go-containerregistry/cmd/crane/cmd.Version=$v" ;;
    # CoreDNS's version is a constant; its release build stamps the commit, a module build has none.
    coredns) f+=" -X github.com/coredns/coredns/coremain.GitCommit=none" ;;
    # the sandbox image's tag, as kubeadm 1.36 pins it (constants.PauseVersion)
    pause) f="-DVERSION=v3.10.2" ;;
    # plugins print it with `--version` (what their release build stamps)
    cni-*) f+=" -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$v" ;;
    registry|registry-v3.0) f+=" -X github.com/distribution/distribution/v3/version.version=$v" ;;
    # what helm's Makefile stamps (`helm version` prints it; the chart tests check it)
    helm) f+=" -X helm.sh/helm/v3/internal/version.version=$v -X helm.sh/helm/v3/internal/version.gitTreeState=archive" ;;
  esac
  echo "$f"
}

total_start=$(now)
built=0
for name in "${names[@]}"; do
  IFS='|' read -r moddir pkg vmod outpath < <(spec "$name")
  dir="$COMP_DIR/$moddir"
  [ -f "$dir/go.mod" ] || die "$dir/go.mod missing"
  [ -f "$dir/go.sum" ] || die "$dir/go.sum missing (run 'go mod tidy' in $dir)"

  info=$(mod_info "$moddir" "$vmod" 2>&1) || die "$name: cannot resolve $vmod in $dir/go.mod: $info"
  read -r version modtime <<<"$info"
  ldflags=$(ldflags_for "$name" "$version" "$modtime")

  key=$( {
    echo "recipe=$RECIPE go=$GO_ID cgo=$CGO_ENABLED goflags=$GOFLAGS"
    echo "pkg=$pkg version=$version ldflags=$ldflags"
    cat "$dir/go.mod" "$dir/go.sum"
  } | sha256sum | cut -d' ' -f1)

  out="$BIN_DIR/${outpath:-$name}"
  mkdir -p "$(dirname "$out")"
  stamp="$STAMP_DIR/$name"
  if [ "$force" = 0 ] && [ -x "$out" ] && [ -f "$stamp" ] && [ "$(head -n1 "$stamp")" = "$key" ]; then
    log "$name $version: up to date ($out)"
    continue
  fi

  log "$name $version: building $pkg ..."
  start=$(now)
  tmp="$BIN_DIR/.$name.tmp.$$"
  rm -f "$stamp"
  if [ "$name" = pause ]; then
    command -v cc >/dev/null 2>&1 || die "pause: a C compiler (cc) is needed"
    src="$(cd "$dir" && go list -m -f '{{.Dir}}' "$vmod")/$pkg"
    [ -f "$src" ] || (cd "$dir" && go mod download "$vmod") || die "pause: cannot download $vmod"
    cc -Os -Wall -Werror -static $ldflags -o "$tmp" "$src" || { rm -f "$tmp"; die "pause: cc $src failed"; }
  elif ! (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$tmp" "$pkg"); then
    rm -f "$tmp"
    die "$name: 'go build $pkg' failed in $dir (see output above)"
  fi
  mv -f "$tmp" "$out"
  printf '%s\n%s %s\n' "$key" "$name" "$version" >"$stamp"
  log "$name $version: built in $(elapsed "$start" "$(now)")s -> $out"
  built=$((built + 1))
done

log "done: $built built, $(( ${#names[@]} - built )) up to date, $(elapsed "$total_start" "$(now)")s total; bin dir: $BIN_DIR"
