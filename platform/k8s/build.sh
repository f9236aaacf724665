#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager 1.20.2 from Debian bookworm's `kubernetes` source
# package, once, into a cache outside the work tree. No registry ships these as binaries; Debian ships
# the source with its vendor/ tree, a Go toolchain and etcd. See README.md "The local control plane".
#
#   platform/k8s/build.sh            build if the cache is empty, then print the binaries' directory
#
# LEASEHOLD_CACHE (default ~/.cache/leasehold) chooses the cache.
set -euo pipefail

version=1.20.2
cache="${LEASEHOLD_CACHE:-$HOME/.cache/leasehold}/k8s-$version"
if [[ -x "$cache/kube-apiserver" && -x "$cache/kube-controller-manager" ]]; then
  echo "$cache"
  exit 0
fi

here="$(cd "$(dirname "$0")" && pwd)"
"$here/../ensure-packages.sh" golang-1.19-go etcd-server golang-github-modern-go-reflect2-dev dpkg-dev rsync make >&2

work="$(mktemp -d "${TMPDIR:-/tmp}/leasehold-k8s-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
log() { echo "k8s-build: $*" >&2; }

# A private apt configuration with deb-src entries derived from the machine's own sources, so that
# `apt-get source` works without touching /etc/apt.
mkdir -p "$work/apt/parts" "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/src"
: > "$work/apt/sources.list"
for f in /etc/apt/sources.list.d/*.sources; do
  [[ -e "$f" ]] || continue
  sed -E 's/^Types:[[:space:]]*deb[[:space:]]*$/Types: deb deb-src/' "$f" > "$work/apt/parts/$(basename "$f")"
done
if [[ -f /etc/apt/sources.list ]]; then
  grep -E '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list | sed -E 's/^([[:space:]]*)deb([[:space:]])/\1deb-src\2/' \
    >> "$work/apt/sources.list" || true
fi
apt_opts=(-o "Dir::Etc::SourceList=$work/apt/sources.list" -o "Dir::Etc::SourceParts=$work/apt/parts"
          -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache" -o "APT::Sandbox::User=root")
log "fetching the kubernetes source package (private apt state in $work/apt)"
apt-get "${apt_opts[@]}" -q update >&2
(cd "$work/src" && apt-get "${apt_opts[@]}" -q source "kubernetes" >&2)
tree="$(find "$work/src" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -n 1)"
[[ -n "$tree" && -d "$tree/vendor" ]] || { log "no kubernetes source tree with vendor/ was unpacked"; exit 1; }

# The vendored reflect2 v1.0.1 crashes under Go >= 1.18 when a custom resource is written; Debian's
# packaged reflect2 (1.0.2) is the fixed release.
rm -rf "$tree/vendor/github.com/modern-go/reflect2"
cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$tree/vendor/github.com/modern-go/reflect2"

mkdir -p "$work/gopath/src/k8s.io"
ln -s "$tree" "$work/gopath/src/k8s.io/kubernetes"
log "building kube-apiserver and kube-controller-manager (several minutes, only once)"
(
  cd "$work/gopath/src/k8s.io/kubernetes"
  export PATH="/usr/lib/go-1.19/bin:$PATH" GOPATH="$work/gopath" GOPROXY=off GOFLAGS=-mod=vendor \
         CGO_ENABLED=0 GOCACHE="$work/gocache" KUBE_GIT_VERSION="v$version" KUBE_GIT_TREE_STATE=clean
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >&2
)
out="$work/gopath/src/k8s.io/kubernetes/_output/bin"
[[ -x "$out/kube-apiserver" ]] || out="$(dirname "$(find "$tree/_output" -type f -name kube-apiserver | head -n 1)")"
mkdir -p "$cache.partial"
cp "$out/kube-apiserver" "$out/kube-controller-manager" "$cache.partial/"
rm -rf "$cache" && mv "$cache.partial" "$cache"
log "built into $cache"
echo "$cache"
