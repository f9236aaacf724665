#!/usr/bin/env bash
# `make image`: builds Containerfile with buildah, from a base made offline (platform/image/base.sh).
#
#   platform/image/build.sh [TAG]          default localhost/leasehold:dev
#   BASE_IMAGE=python:3.11-slim-bookworm platform/image/build.sh    where the official image can be pulled
#
# Isolation `chroot` (LEASEHOLD_BUILDAH_ISOLATION): builds need no user namespaces and no runtime beyond
# buildah itself, so they run as root on a plain VM or inside a container. LEASEHOLD_BUILDAH_OPTS passes
# global options, e.g. `--storage-driver vfs` where overlay mounts are not allowed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
tag="${1:-localhost/leasehold:dev}"
buildah_opts=(${LEASEHOLD_BUILDAH_OPTS:-})
base="${BASE_IMAGE:-$("$here/base.sh")}"
# A TLS-inspecting proxy between this machine and PyPI: its CA is in the machine's bundle, and the build
# gets that bundle as a secret for its pip step only (Containerfile).
secret=()
for bundle in "${PIP_CERT:-}" /etc/ssl/certs/ca-certificates.crt; do
  if [[ -n "$bundle" && -s "$bundle" ]]; then secret=(--secret "id=ca-certificates,src=$bundle"); break; fi
done
echo "image: building $tag from $base" >&2
buildah "${buildah_opts[@]}" build --isolation "${LEASEHOLD_BUILDAH_ISOLATION:-chroot}" --layers \
  "${secret[@]}" --build-arg "BASE_IMAGE=$base" -f "$root/Containerfile" -t "$tag" "$root" >&2
echo "$tag"
