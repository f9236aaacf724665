#!/usr/bin/env bash
# `make run`: Leasehold on embedded defaults — SQLite, tasks in-process, local demo accounts and the
# built-in approval policy — against the local Kubernetes control plane (or your cluster when
# KUBECONFIG is set or you run in one).
#
# `make serve` (LEASEHOLD_RUN_SERVER=gunicorn): the same, but with the production web server — gunicorn
# with config/gunicorn.py, static files collected first and served hashed and compressed by WhiteNoise,
# DEBUG off — on plain HTTP on loopback (so the HTTPS redirect and secure cookies are off).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"
py="$root/.venv/bin/python"

server="${LEASEHOLD_RUN_SERVER:-runserver}"
if [[ "$server" == gunicorn ]]; then
  export DEBUG="${DEBUG:-false}" LEASEHOLD_STATIC_MANIFEST=true GUNICORN_HOST="${GUNICORN_HOST:-127.0.0.1}"
  export SECURE_SSL_REDIRECT="${SECURE_SSL_REDIRECT:-false}" SESSION_COOKIE_SECURE="${SESSION_COOKIE_SECURE:-false}"
  export SECURE_HSTS_SECONDS="${SECURE_HSTS_SECONDS:-0}"
fi
export DEBUG="${DEBUG:-true}"
# One key for the whole run, so sessions survive the development server's reloads.
SECRET_KEY="${SECRET_KEY:-$("$py" -c 'import secrets; print(secrets.token_urlsafe(50))')}"
export SECRET_KEY
port="${PORT:-8000}"
export PORT="$port"

# What manage.py needs to act on this run from a second terminal (the README's commands): the secret
# key, the database, the cluster. manage.py reads .run/env only while the process named in it runs, only
# when it is this user's and private, and never over a variable already set (see manage.py). Written
# whole, then renamed; removed when the run ends.
settings_pattern='^(SECRET_KEY|DEBUG|DATABASE_URL|REDIS_URL|KUBECONFIG|EMAIL_[A-Z_]+|LEASE_[A-Z_]+|RECLAIM_[A-Z_]+|LEASEHOLD_[A-Z0-9_]+)$'
write_run_env() {
  local name tmp="$root/.run/env.$$"
  mkdir -p "$root/.run"
  (
    umask 077
    {
      echo "# Written by make run (platform/run.sh, pid $$) for manage.py in a second terminal."
      echo "LEASEHOLD_RUN_PID=$$"
      for name in $(compgen -e | sort); do
        [[ "$name" =~ $settings_pattern && "$name" != LEASEHOLD_RUN_* && ! "$name" =~ ^LEASEHOLD_K8S_(ADMIN_TOKEN|SERVER|CA_FILE)$ && "${!name}" != *$'\n'* ]] || continue
        printf '%s=%s\n' "$name" "${!name}"
      done
    } > "$tmp"
  )
  mv -f "$tmp" "$root/.run/env"
  # The local control plane's kubeconfig where the settings' default (and kubectl --kubeconfig) find it.
  if [[ -n "${LEASEHOLD_LOCAL_KUBECONFIG:-}" ]]; then
    ln -sfn "$LEASEHOLD_LOCAL_KUBECONFIG" "$root/.run/kubeconfig"
  fi
}
remove_run_env() {
  # Only ours: a later run may have replaced them.
  if grep -qx "LEASEHOLD_RUN_PID=$$" "$root/.run/env" 2>/dev/null; then
    rm -f "$root/.run/env"
    [[ -n "${LEASEHOLD_LOCAL_KUBECONFIG:-}" && "$(readlink "$root/.run/kubeconfig" 2>/dev/null)" == "$LEASEHOLD_LOCAL_KUBECONFIG" ]] &&
      rm -f "$root/.run/kubeconfig"
  fi
  return 0
}

serve() {
  periodic=""
  trap 'remove_run_env; [[ -z "$periodic" ]] || kill "$periodic" 2>/dev/null || true' EXIT
  write_run_env
  [[ "$server" == gunicorn ]] && "$py" manage.py collectstatic --no-input -v 0
  "$py" manage.py migrate --no-input -v 0
  if [[ "${LEASEHOLD_CLUSTER:-}" == local ]]; then
    # What the defaults need in the cluster: the namespace and volume claim backup Jobs use
    # (on your own cluster, deploy/ makes them).
    "$py" manage.py ensure_backup_storage > /dev/null
  fi
  # The demo accounts have a known password: seed_demo insists on DEBUG, also under `make serve`.
  DEBUG=true "$py" manage.py seed_demo
  cat <<MSG

  Leasehold ($server) is running at http://127.0.0.1:$port/   (API docs: /api/docs/, admin: /admin/)
  Demo logins, password 'leasehold':
    dana (team atlas, requester)   tom (team atlas)   lena (atlas team lead)
    frank, paula (platform approvers)   sam (security approvers)   olga (team zephyr)   ada (admin)
  Small dev/test namespaces of up to 14 days are approved at once; try a 'medium' plan to see approval.
  In a second terminal, manage.py uses this run's settings (.run/env), e.g.
    .venv/bin/python manage.py reclaim_leases --dry-run
  Stop with Ctrl-C.

MSG
  # Beat's equivalent without a broker: the sweep, the reconcile, reclamation passes and reminders run
  # on the same schedule as in production, in a process of their own.
  "$py" manage.py run_periodic &
  periodic=$!
  if [[ "$server" == gunicorn ]]; then
    "$root/.venv/bin/gunicorn" -c config/gunicorn.py
  else
    "$py" manage.py runserver "127.0.0.1:$port"
  fi
}

if [[ "${1:-}" == "--serve-local" ]]; then
  # Re-entered by with-services.sh below, with the local control plane's KUBECONFIG exported.
  export LEASEHOLD_CLUSTER=local LEASEHOLD_LOCAL_KUBECONFIG="$KUBECONFIG"
  unset KUBECONFIG
  serve
elif [[ -n "${KUBECONFIG:-}" || -n "${KUBERNETES_SERVICE_HOST:-}" || "${LEASEHOLD_CLUSTER:-auto}" =~ ^(kubeconfig|incluster)$ ]]; then
  echo "Using your cluster (KUBECONFIG / in-cluster); no local control plane started." >&2
  serve
else
  exec "$here/with-services.sh" k8s -- "$0" --serve-local
fi
