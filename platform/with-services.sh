#!/usr/bin/env bash
# Runs a command with the project's own services (PostgreSQL, Redis, OpenLDAP, Kubernetes) started on
# loopback in a temporary directory, and stops them afterwards, also when the command fails.
#
#   platform/with-services.sh postgres redis ldap k8s -- pytest
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

services=()
while [[ $# -gt 0 && "$1" != "--" ]]; do services+=("$1"); shift; done
[[ $# -gt 0 ]] && shift
if [[ $# -eq 0 ]]; then
  echo "usage: $0 SERVICE... -- COMMAND..." >&2
  exit 2
fi

dir="$(mktemp -d "${TMPDIR:-/tmp}/leasehold-services.XXXXXX")"
child=""
# shellcheck disable=SC2317  # stop runs from the EXIT trap, which shellcheck does not follow
stop() {
  # Once: a second INT or TERM (make forwards the one it got to us, a second Ctrl-C) must not cut the
  # clean-up short and leave the services running.
  trap '' INT TERM
  # The command runs in its own process group (setsid below), so this reaches all of it, including
  # the children it forked (the development server's reloader, a Celery worker started by a test).
  if [[ -n "$child" ]] && kill -0 "$child" 2>/dev/null; then
    kill -TERM -- "-$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  # In a session of its own, so that no signal to our process group interrupts it; waited for (-w).
  setsid -w "$here/services.sh" down "$dir" >&2 || true
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

started=$(date +%s)
"$here/services.sh" up "$dir" "${services[@]}" >/dev/null
echo "services ready in $(( $(date +%s) - started ))s: ${services[*]}" >&2
set -a
# shellcheck disable=SC1091
source "$dir/env.sh"
set +a
# For `platform/services.sh stop|start "$LEASEHOLD_SERVICES_DIR" k8s-b` from the command (a test
# that takes one control plane down).
export LEASEHOLD_SERVICES_DIR="$dir"
# In the background and waited for, so that INT/TERM reach the traps at once rather than after the
# command ends; its exit status is ours.
setsid "$@" &
child=$!
status=0
wait "$child" || status=$?
exit "$status"
