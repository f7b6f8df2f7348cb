#!/usr/bin/env bash
# Builds/downloads the local control plane's tools into the cache, keyed by version:
#   $LOCKSTEP_CACHE/tools/kube/<v>/{kube-apiserver,kube-controller-manager,kubectl}
#   $LOCKSTEP_CACHE/tools/etcd/<v>/etcd
#   $LOCKSTEP_CACHE/tools/helm/<v>/helm
# Idempotent: a tool whose directory is complete is skipped. Go
# downloads also land under $LOCKSTEP_CACHE (go/mod, go/build), never in
# the checkout, so a fresh clone on the same machine reuses everything.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOCKSTEP_CACHE=${LOCKSTEP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lockstep}
TOOLS=$LOCKSTEP_CACHE/tools

KUBE_VERSION=v1.37.2      # must match tests/cluster/kube/go.mod
ETCD_VERSION=v3.6.16      # must match tests/cluster/etcd/go.mod
HELM_VERSION=v4.3.2       # must match tests/cluster/helm/go.mod (its k8s.io/* = the control plane's)

export GOMODCACHE=$LOCKSTEP_CACHE/go/mod
export GOCACHE=$LOCKSTEP_CACHE/go/build
export GOFLAGS=-buildvcs=false
export GOTOOLCHAIN=local
export GOWORK=off
export CGO_ENABLED=0

log() { printf '==> [tools] %s\n' "$*"; }

# Runs "$@" building into DIR.tmp, then renames it to DIR, so an interrupted
# build never leaves a directory that looks complete.
publish() { rm -rf "$1"; mv "$1.tmp" "$1"; }

build_kube() {
  local out=$TOOLS/kube/$KUBE_VERSION minor
  if [[ -x $out/kube-apiserver && -x $out/kube-controller-manager && -x $out/kubectl ]]; then
    log "kube $KUBE_VERSION: cached in $out"; return
  fi
  minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  # Without these the binaries report v0.0.0-master and version skew checks misfire.
  local ld="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  log "kube $KUBE_VERSION: building kube-apiserver, kube-controller-manager, kubectl (cold: 15-30 min on 2 cores)"
  rm -rf "$out.tmp"; mkdir -p "$out.tmp"
  local t0=$SECONDS
  (cd "$HERE/kube" && go build -mod=readonly -trimpath -ldflags "$ld" -o "$out.tmp/" \
      k8s.io/kubernetes/cmd/kube-apiserver \
      k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kubectl)
  publish "$out"
  log "kube $KUBE_VERSION: built in $((SECONDS - t0)) s -> $out ($("$out/kube-apiserver" --version))"
}

build_etcd() {
  local out=$TOOLS/etcd/$ETCD_VERSION
  if [[ -x $out/etcd ]]; then log "etcd $ETCD_VERSION: cached in $out"; return; fi
  log "etcd $ETCD_VERSION: building"
  rm -rf "$out.tmp"; mkdir -p "$out.tmp"
  local t0=$SECONDS
  (cd "$HERE/etcd" && go build -mod=readonly -trimpath -ldflags "-s -w" -o "$out.tmp/etcd" .)
  publish "$out"
  log "etcd $ETCD_VERSION: built in $((SECONDS - t0)) s -> $out ($("$out/etcd" --version | head -1))"
}

build_helm() {
  local out=$TOOLS/helm/$HELM_VERSION
  if [[ -x $out/helm ]]; then log "helm $HELM_VERSION: cached in $out"; return; fi
  log "helm $HELM_VERSION: building (cold: a few minutes)"
  rm -rf "$out.tmp"; mkdir -p "$out.tmp"
  local t0=$SECONDS
  (cd "$HERE/helm" && go build -mod=readonly -trimpath \
      -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
      -o "$out.tmp/helm" helm.sh/helm/v4/cmd/helm)
  publish "$out"
  log "helm $HELM_VERSION: built in $((SECONDS - t0)) s -> $out ($("$out/helm" version --short))"
}

# A manifest the Rust harness reads to find the binaries (no version logic duplicated in Rust).
write_manifest() {
  cat > "$TOOLS/manifest.env.tmp" <<EOF
LOCKSTEP_KUBE_APISERVER=$TOOLS/kube/$KUBE_VERSION/kube-apiserver
LOCKSTEP_KUBE_CONTROLLER_MANAGER=$TOOLS/kube/$KUBE_VERSION/kube-controller-manager
LOCKSTEP_KUBECTL=$TOOLS/kube/$KUBE_VERSION/kubectl
LOCKSTEP_ETCD=$TOOLS/etcd/$ETCD_VERSION/etcd
LOCKSTEP_HELM=$TOOLS/helm/$HELM_VERSION/helm
EOF
  mv "$TOOLS/manifest.env.tmp" "$TOOLS/manifest.env"
  log "manifest: $TOOLS/manifest.env"
}

mkdir -p "$TOOLS"
t_start=$SECONDS
build_etcd
build_kube
build_helm
write_manifest
log "done in $((SECONDS - t_start)) s"
