#!/usr/bin/env bash
# The image's base, made offline: the official python:3.11-slim-bookworm cannot be pulled on machines
# that reach only Debian's and PyPI's package mirrors, so `make image` builds from a Debian bookworm
# root filesystem (whose python3 is 3.11) made by mmdebstrap from this machine's own Debian mirror.
#
#   platform/image/base.sh [TAG]      (default localhost/leasehold-base:bookworm; prints the tag)
#
# Rebuilt only when the tag is missing; LEASEHOLD_BASE_REBUILD=1 makes it again (security updates).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tag="${1:-localhost/leasehold-base:bookworm}"
log() { echo "image-base: $*" >&2; }

"$here/../ensure-packages.sh" buildah mmdebstrap
buildah_opts=(${LEASEHOLD_BUILDAH_OPTS:-})
if [[ "${LEASEHOLD_BASE_REBUILD:-0}" != 1 ]] && buildah "${buildah_opts[@]}" inspect --type image "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi

# The machine's Debian sources (bookworm, bookworm-updates, bookworm-security), not its third-party ones.
sources=()
for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list; do
  [[ -f "$f" ]] && grep -qE '(^|[[:space:]])bookworm' "$f" && grep -qE 'debian' "$f" && sources+=("$f")
done
[[ ${#sources[@]} -gt 0 ]] || sources=(http://deb.debian.org/debian)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
log "making a bookworm root filesystem with python3 from ${sources[*]}"
# minbase: apt, dpkg and the essential packages; python3-venv for the application's virtualenv.
mmdebstrap --variant=minbase --components=main --include=python3,python3-venv,ca-certificates \
  --aptopt='Acquire::Retries "3"' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
  bookworm "$work/rootfs.tar" "${sources[@]}" >&2
cat > "$work/Containerfile" <<'CF'
FROM scratch
ADD rootfs.tar /
ENV LANG=C.UTF-8
CMD ["/usr/bin/python3"]
CF
log "importing it as $tag"
buildah "${buildah_opts[@]}" build --isolation chroot --layers=false -f "$work/Containerfile" -t "$tag" "$work" >&2
echo "$tag"
