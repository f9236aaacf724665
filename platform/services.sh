#!/usr/bin/env bash
# Runs Leasehold's backing services as private, throw-away processes for development and tests:
# nothing is installed as a system service and the machine's own PostgreSQL/Redis/slapd
# configuration is never read or changed. Everything listens on 127.0.0.1 only.
#
#   platform/services.sh up DIR SERVICE...   SERVICE: postgres redis ldap k8s k8s-b (any subset, any order)
#   platform/services.sh down DIR            stop everything started in DIR, then delete DIR
#   platform/services.sh stop DIR k8s|k8s-b  stop one control plane, keeping its data, ports and token
#   platform/services.sh start DIR k8s|k8s-b start it again from them; returns once it answers
#
# `up` creates DIR (or reuses an empty one, or one from an earlier `up` with other services), keeps
# all state, pid files and logs (DIR/logs/*.log) inside it, returns once every service answers, and
# appends `export NAME=value` lines to DIR/env.sh. The lines for this run are also printed on
# stdout, so `eval "$(platform/services.sh up DIR redis)"` works; progress goes to stderr.
#
#   postgres  DATABASE_URL=postgres://leasehold:leasehold@127.0.0.1:PORT/leasehold (role has CREATEDB)
#   redis     REDIS_URL=redis://127.0.0.1:PORT/0
#   ldap      LDAP_URI LDAP_BIND_DN LDAP_BIND_PASSWORD LDAP_USER_BASE LDAP_GROUP_BASE
#             (seeded from platform/ldap/dev-directory.ldif; every demo user's password is `leasehold`)
#   k8s       KUBECONFIG LEASEHOLD_K8S_SERVER LEASEHOLD_K8S_CA_FILE LEASEHOLD_K8S_ADMIN_TOKEN
#             (etcd + kube-apiserver + kube-controller-manager 1.20.2 built by platform/k8s/build.sh)
#   k8s-b     LEASEHOLD_K8S_B_KUBECONFIG LEASEHOLD_K8S_B_SERVER LEASEHOLD_K8S_B_CA_FILE
#             LEASEHOLD_K8S_B_ADMIN_TOKEN: a second, independent control plane (own etcd, PKI, ports,
#             token, DIR/k8s-b/kubeconfig) for multi-cluster tests; it never sets KUBECONFIG.
#
# `stop DIR k8s-b` and `start DIR k8s-b` (or k8s) take a cluster down and bring it back while the
# other services and the tests keep running, to test "one cluster is down". The etcd data stays in
# DIR/NAME, so objects survive, and `start` reuses the same ports, CA and token, so the variables
# above stay valid. `stop` keeps the ports reserved from other `up`s for 10 minutes; a port taken
# by something else after that makes `start` fail with the log's tail. Both are safe to repeat.
#
# If `up` fails it prints the tail of the failing service's log, stops what this run started and
# exits non-zero; DIR stays for inspection and `down DIR` removes it. `down` is safe to repeat and
# after a failed `up`. Ports are random free ones below the kernel's ephemeral range, handed out
# under a per-user lock so that parallel `up`s (e.g. parallel CI jobs) never pick the same one.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
all_services=(postgres redis ldap k8s k8s-b)
marker=.leasehold-services

log() { echo "services: $*" >&2; }
die() { log "error: $*"; exit 1; }
usage() {
  sed -n '6,9p' "${BASH_SOURCE[0]}" | sed 's/^# *//' >&2
  exit 2
}

now_ms() { date +%s%3N; }
log_ready() { # log_ready SERVICE T0_MS
  local ms=$(( $(now_ms) - $2 ))
  log "$1: ready in $(( ms / 1000 )).$(printf '%03d' $(( ms % 1000 )))s"
}

# ------------------------------------------------------------------------------------------------
# Processes. Pid files hold "PID STARTTIME": the start time (field 22 of /proc/PID/stat) guards
# `down` against signalling an unrelated process that reused the pid after ours died.

# proc_starttime PID: prints the start time of a running process; fails for a missing one and for
# a zombie: our daemons are reparented to whatever reaps orphans here, which may take seconds, and
# an exited daemon must count as stopped at once.
proc_starttime() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"          # drop "pid (comm) ", comm may contain spaces
  # shellcheck disable=SC2086  # split the remaining fields on purpose
  set -- $stat
  [[ "$1" != Z && "$1" != X ]] || return 1
  echo "${20}"                 # field 22 counted from the start
}

# pidfile_alive FILE: true when the process recorded in FILE still runs; prints its pid.
pidfile_alive() {
  local pid start
  [[ -s "$1" ]] || return 1
  read -r pid start < "$1" || true
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ "$(proc_starttime "$pid" 2>/dev/null)" == "$start" ]] || return 1
  echo "$pid"
}

record_pid() { # record_pid PIDFILE PID
  local start
  start="$(proc_starttime "$2")" || start=gone
  echo "$2 $start" > "$1"
}

# spawn PIDFILE LOG CMD...: runs CMD in its own session (so a terminal's ^C or the caller's process
# group signals do not reach it), with stdin/stdout/stderr detached from the caller: a caller that
# captures our output (subprocess.run(capture_output=True)) must not wait for the daemons to exit.
spawn() {
  local pidfile="$1" logfile="$2"
  shift 2
  # A background child of a non-interactive shell is not a process-group leader, so setsid execs
  # in place and $! is the daemon's own pid.
  # 8<&-: fd 8 holds DIR's lock (see cmd_up); a daemon inheriting it would block `down` forever.
  setsid "$@" < /dev/null >> "$logfile" 2>&1 8<&- &
  record_pid "$pidfile" "$!"
}

# stop_pidfiles FILE...: TERM every live process, wait up to 10 s for all of them, then KILL.
stop_pidfiles() {
  local f pid pids=() deadline
  for f in "$@"; do
    pid="$(pidfile_alive "$f")" || continue
    kill -TERM "$pid" 2>/dev/null || true
    pids+=("$f")
  done
  [[ ${#pids[@]} -gt 0 ]] || return 0
  deadline=$(( $(now_ms) + 10000 ))
  while (( $(now_ms) < deadline )); do
    local left=()
    for f in "${pids[@]}"; do pidfile_alive "$f" > /dev/null && left+=("$f"); done
    [[ ${#left[@]} -gt 0 ]] || return 0
    pids=("${left[@]}")
    sleep 0.1
  done
  for f in "${pids[@]}"; do
    pid="$(pidfile_alive "$f")" || continue
    log "$(basename "$f" .pid) (pid $pid) ignored TERM for 10 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  done
  sleep 0.2
}

# wait_for DESC TIMEOUT_S PIDFILE CMD...: polls CMD until it succeeds; fails early when the process
# in PIDFILE ("-" for none) has exited, or after TIMEOUT_S seconds.
wait_for() {
  local desc="$1" timeout="$2" pidfile="$3" deadline
  shift 3
  deadline=$(( $(now_ms) + timeout * 1000 ))
  until "$@" > /dev/null 2>&1; do
    if [[ "$pidfile" != - ]] && ! pidfile_alive "$pidfile" > /dev/null; then
      die "$desc exited during start-up"
    fi
    (( $(now_ms) < deadline )) || die "$desc did not become ready within ${timeout}s"
    sleep 0.1
  done
}

# ------------------------------------------------------------------------------------------------
# Ports. A random port below the ephemeral range (so that no outgoing connection is using it or
# takes it a moment later) that nothing is bound to now and that no `up` of this user handed out in
# the last 10 minutes; the lock and the list in $TMPDIR make parallel `up`s pick distinct ports even
# though a port is only bound when the daemon starts a little later.

ports_lock="${TMPDIR:-/tmp}/leasehold-ports-$(id -u).lock"
ports_recent="${TMPDIR:-/tmp}/leasehold-ports-$(id -u).recent"

pick_port() {
  local lock="$ports_lock" recent="$ports_recent"
  (
    flock -w 30 9 || die "could not lock $lock"
    now=$(date +%s)
    touch "$recent"
    awk -v now="$now" '$2 > now - 600' "$recent" > "$recent.tmp" && mv "$recent.tmp" "$recent"
    # shellcheck disable=SC2046  # one argument per recently handed out port
    port="$(python3 -c '
import random, socket, sys
lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
taken = set(sys.argv[1:])
for p in random.sample(range(20000, max(lo, 21000)), 500):
    if str(p) in taken: continue
    with socket.socket() as s:
        try: s.bind(("127.0.0.1", p))
        except OSError: continue
    print(p); break
' $(awk '{print $1}' "$recent"))"
    [[ -n "$port" ]] || die "found no free port"
    echo "$port $now" >> "$recent"
    echo "$port"
  ) 9>> "$lock"
}

# reserve_ports PORT...: marks ports as just handed out, so that no `up` picks them for 10 minutes
# (a stopped control plane keeps its ports for `start`).
reserve_ports() {
  local now p
  (
    flock -w 30 9 || die "could not lock $ports_lock"
    now=$(date +%s)
    for p in "$@"; do echo "$p $now"; done >> "$ports_recent"
  ) 9>> "$ports_lock"
}

# ------------------------------------------------------------------------------------------------
# env.sh. Values are written bare when they are plain (URLs, paths without spaces), so that a
# simple `export NAME=value` line parser works too; anything else is shell-quoted.

env_lines=()
add_env() {
  if [[ "$2" =~ ^[A-Za-z0-9_./:@,=+%-]*$ ]]; then
    env_lines+=("export $1=$2")
  else
    env_lines+=("export $1=$(printf '%q' "$2")")
  fi
}

# ------------------------------------------------------------------------------------------------
# postgres

pg_bindir() {
  local d
  d="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)"
  [[ -n "$d" && -x "$d/initdb" ]] || die "no PostgreSQL server binaries under /usr/lib/postgresql"
  echo "$d"
}

# The directory holding the cluster: DIR/postgres, or, when the postgres system user cannot reach
# into DIR (as root with DIR under a 0700 directory such as pytest's /tmp/pytest-of-root) or the
# socket path would exceed the kernel's 107-byte limit, a private /tmp/leasehold-pg.* directory
# that DIR/postgres links to and `down` removes.
pg_root_for() { # pg_root_for SVCDIR PORT RUNAS...
  local svcdir="$1" port="$2"
  shift 2
  local sock="$svcdir/run/.s.PGSQL.$port"
  mkdir -p "$svcdir"
  if [[ $(id -u) -eq 0 ]]; then chown postgres: "$svcdir"; fi
  if (( ${#sock} <= 100 )) && (cd / && "$@" test -w "$svcdir"); then
    echo "$svcdir"
    return
  fi
  rmdir "$svcdir"
  local alt
  alt="$(mktemp -d "${TMPDIR:-/tmp}/leasehold-pg.XXXXXX")"
  if [[ $(id -u) -eq 0 ]]; then chown postgres: "$alt"; fi
  (cd / && "$@" test -w "$alt") || die "the server user cannot write to $alt either (is ${TMPDIR:-/tmp} reachable for it?)"
  ln -s "$alt" "$svcdir"
  log "postgres: keeping the cluster in $alt (DIR is not reachable for the postgres user or too long a socket path); DIR/postgres links to it"
  echo "$alt"
}

up_postgres() {
  local svcdir="$dir/postgres" bin port runas=() root logfile
  bin="$(pg_bindir)"
  port="$(pick_port)"
  # initdb and postgres refuse to run as root; the Debian package's `postgres` user runs them then.
  if [[ $(id -u) -eq 0 ]]; then
    id postgres > /dev/null 2>&1 || die "the postgres system user is missing (reinstall the postgresql package)"
    runas=(runuser -u postgres --)
    chmod go+x "$dir"
  fi
  root="$(pg_root_for "$svcdir" "$port" "${runas[@]}")"
  logfile="$dir/logs/postgres.log"
  if [[ "$root" != "$svcdir" ]]; then
    ln -sf "$root/postgres.log" "$logfile"
    logfile="$root/postgres.log"
  fi
  current_log="$logfile"
  : > "$logfile"
  mkdir -p "$root/run"
  if [[ $(id -u) -eq 0 ]]; then chown postgres: "$logfile" "$root/run"; fi
  # cd /: the server user may not be allowed into the caller's working directory.
  (cd / && "${runas[@]}" "$bin/initdb" -D "$root/data" -U postgres -E UTF8 --no-locale \
      --auth-local=trust --auth-host=scram-sha-256 --no-sync) >> "$logfile" 2>&1 \
    || die "initdb failed"
  # Durability is worthless for a throw-away test database; these settings make it fast.
  cat >> "$root/data/postgresql.conf" <<EOF

# --- platform/services.sh: private loopback instance for development and tests
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$root/run'
max_connections = 200
shared_buffers = 32MB
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  # shellcheck disable=SC2094  # pg_ctl's own messages go to the server's log on purpose (append)
  (cd / && "${runas[@]}" "$bin/pg_ctl" -D "$root/data" -l "$logfile" -w -t 60 start) >> "$logfile" 2>&1 8<&- \
    || die "the PostgreSQL server did not start"
  record_pid "$svcdir/postmaster.pid" "$(head -n 1 "$root/data/postmaster.pid")"
  # Superuser over the private unix socket (trust); the application role uses TCP + password.
  PGCONNECT_TIMEOUT=10 "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$root/run" -p "$port" -U postgres -d postgres \
      -c "CREATE ROLE leasehold LOGIN CREATEDB PASSWORD 'leasehold'" \
      -c "CREATE DATABASE leasehold OWNER leasehold" >> "$logfile" 2>&1 \
    || die "creating the leasehold role and database failed"
  local url="postgres://leasehold:leasehold@127.0.0.1:$port/leasehold"
  PGCONNECT_TIMEOUT=10 "$bin/psql" -X -q -At -d "$url" -c 'SELECT 1' > /dev/null 2>> "$logfile" \
    || die "cannot connect as leasehold over TCP"
  add_env DATABASE_URL "$url"
}

down_postgres() {
  local svcdir="$dir/postgres" root bin owner runas=()
  [[ -e "$svcdir" ]] || return 0
  root="$(readlink -f "$svcdir")"
  # Our pid file proves the server is ours; without one (up died between pg_ctl start and recording
  # the pid) the server's own postmaster.pid is all there is, and pg_ctl checks that pid itself.
  if [[ -f "$root/data/postmaster.pid" ]] \
     && { pidfile_alive "$svcdir/postmaster.pid" > /dev/null || [[ ! -e "$svcdir/postmaster.pid" ]]; }; then
    bin="$(pg_bindir)"
    owner="$(stat -c %U "$root/data")"
    if [[ $(id -u) -eq 0 && "$owner" != root ]]; then runas=(runuser -u "$owner" --); fi
    (cd / && "${runas[@]}" "$bin/pg_ctl" -D "$root/data" -m fast -w -t 10 stop) > /dev/null 2>&1 \
      || (cd / && "${runas[@]}" "$bin/pg_ctl" -D "$root/data" -m immediate -w -t 5 stop) > /dev/null 2>&1 \
      || true
    stop_pidfiles "$svcdir/postmaster.pid"
  fi
  # The out-of-DIR cluster directory, if one was needed (see pg_root_for).
  if [[ -L "$svcdir" && "$root" == */leasehold-pg.* ]]; then rm -rf "$root"; fi
}

# ------------------------------------------------------------------------------------------------
# redis

up_redis() {
  local svcdir="$dir/redis" port
  mkdir -p "$svcdir"
  port="$(pick_port)"
  current_log="$dir/logs/redis.log"
  # In the foreground (--daemonize no) under spawn, so the pid is ours and the log is in DIR.
  spawn "$svcdir/redis.pid" "$current_log" redis-server --bind 127.0.0.1 --port "$port" \
    --protected-mode yes --save '' --appendonly no --dir "$svcdir" --daemonize no --logfile ''
  wait_for "redis-server" 30 "$svcdir/redis.pid" \
    redis_pong "$port"
  add_env REDIS_URL "redis://127.0.0.1:$port/0"
}

redis_pong() { [[ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" == PONG ]]; }

down_redis() { stop_pidfiles "$dir/redis/redis.pid"; }

# ------------------------------------------------------------------------------------------------
# ldap

ldap_suffix="dc=example,dc=org"
ldap_rootdn="cn=admin,$ldap_suffix"

up_ldap() {
  local svcdir="$dir/ldap" port rootpw hash conf tmpl
  mkdir -p "$svcdir/data"
  current_log="$dir/logs/ldap.log"
  : > "$current_log"
  port="$(pick_port)"
  # A fresh admin password per instance; it only ever travels in env.sh.
  rootpw="$(openssl rand -hex 16)"
  hash="$(slappasswd -n -T <(printf '%s' "$rootpw"))"
  conf="$svcdir/slapd.conf"
  tmpl="$(cat "$here/ldap/slapd.conf.template")"
  tmpl="${tmpl//@STATE_DIR@/"$svcdir"}"
  tmpl="${tmpl//@DATA_DIR@/"$svcdir/data"}"
  tmpl="${tmpl//@ROOTPW@/"$hash"}"
  printf '%s\n' "$tmpl" > "$conf"
  chmod 0600 "$conf"
  # Our client calls must not pick up ~/.ldaprc or /etc/ldap/ldap.conf (e.g. TLS settings).
  export LDAPNOINIT=1
  slaptest -Q -u -f "$conf" >> "$current_log" 2>&1 || die "the generated slapd.conf is invalid ($conf)"
  slapadd -q -f "$conf" -l "$here/ldap/dev-directory.ldif" >> "$current_log" 2>&1 \
    || die "slapadd of platform/ldap/dev-directory.ldif failed"
  local uri="ldap://127.0.0.1:$port/"
  # -d keeps slapd in the foreground (so spawn gets its pid) and sends its log to DIR/logs/ldap.log;
  # `stats` logs connections, binds and searches, which is what one wants when debugging logins.
  spawn "$svcdir/slapd.pid.own" "$current_log" slapd -f "$conf" -h "$uri" -d stats
  wait_for "slapd" 30 "$svcdir/slapd.pid.own" \
    ldapwhoami -x -H "$uri" -D "$ldap_rootdn" -w "$rootpw"
  add_env LDAP_URI "$uri"
  add_env LDAP_BIND_DN "$ldap_rootdn"
  add_env LDAP_BIND_PASSWORD "$rootpw"
  add_env LDAP_USER_BASE "ou=people,$ldap_suffix"
  add_env LDAP_GROUP_BASE "ou=groups,$ldap_suffix"
}

down_ldap() { stop_pidfiles "$dir/ldap/slapd.pid.own"; }

# ------------------------------------------------------------------------------------------------
# k8s: etcd + kube-apiserver + kube-controller-manager, no kubelet/scheduler (no pods ever run).

k8s_binaries() {
  # build.sh has no lock of its own: serialise parallel first-time builds so only one compiles.
  local cache="${LEASEHOLD_CACHE:-$HOME/.cache/leasehold}" bindir
  mkdir -p "$cache"
  if [[ ! -x "$cache/k8s-1.20.2/kube-apiserver" ]]; then
    log "k8s: building kube-apiserver/kube-controller-manager 1.20.2 once (about 8 minutes; log: $current_log)"
  fi
  bindir="$(flock "$cache/k8s-build.lock" "$here/k8s/build.sh" 2>> "$current_log")" \
    || die "platform/k8s/build.sh failed"
  [[ -x "$bindir/kube-apiserver" && -x "$bindir/kube-controller-manager" ]] \
    || die "platform/k8s/build.sh printed '$bindir', which lacks the binaries"
  echo "$bindir"
}

etcd_healthy() { curl -fsS "http://127.0.0.1:$1/health" | grep -q '"health":"true"'; }

# k8s_default_sa_has_token CA TOKEN SERVER
k8s_default_sa_has_token() {
  curl -fsS --cacert "$1" -H "Authorization: Bearer $2" "$3/api/v1/namespaces/default/serviceaccounts/default" \
    | grep -q '"secrets"'
}

# A control plane instance is named after its service: `k8s` (the one the service drives by default)
# and `k8s-b` (a second, independent one for multi-cluster tests). Each has its own directory
# DIR/NAME (etcd data, PKI, tokens, kubeconfig, pid files, its ports in DIR/NAME/ports), its own
# logs DIR/logs/NAME-*.log and its own variables (k8s_env below). `stop`/`start` reuse DIR/NAME as
# it is, so objects survive and the server keeps its address, CA and token.

# k8s_env NAME KUBECONFIG SERVER CA TOKEN: `k8s` keeps its historic variables (and KUBECONFIG, the
# file every Kubernetes client reads); `k8s-b` exports LEASEHOLD_K8S_B_* only, never KUBECONFIG.
k8s_env() {
  local prefix
  if [[ "$1" == k8s ]]; then
    add_env KUBECONFIG "$2"
    prefix=LEASEHOLD_K8S
  else
    prefix="LEASEHOLD_$(tr 'a-z-' 'A-Z_' <<< "$1")"
    add_env "${prefix}_KUBECONFIG" "$2"
  fi
  add_env "${prefix}_SERVER" "$3"
  add_env "${prefix}_CA_FILE" "$4"
  add_env "${prefix}_ADMIN_TOKEN" "$5"
}

# k8s_spawn_etcd NAME: starts etcd on the ports in DIR/NAME/ports (a new member when its data
# directory is empty, the existing one after `stop`: etcd ignores the --initial-* flags then).
k8s_spawn_etcd() {
  local svcdir="$dir/$1" etcd_client etcd_peer api_port
  read -r etcd_client etcd_peer api_port < "$svcdir/ports"
  current_log="$dir/logs/$1-etcd.log"
  spawn "$svcdir/etcd.pid" "$current_log" etcd --name leasehold \
    --data-dir "$svcdir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_client" --advertise-client-urls "http://127.0.0.1:$etcd_client" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "leasehold=http://127.0.0.1:$etcd_peer" --initial-cluster-state new \
    --initial-cluster-token "leasehold-$etcd_peer" --logger zap --log-outputs stderr
}

# k8s_run_control_plane NAME BINDIR: with etcd spawned and the PKI, tokens.csv and kubeconfig in
# place, waits for etcd, then starts the API server and the controller manager and waits for each.
k8s_run_control_plane() {
  local name="$1" bindir="$2" svcdir="$dir/$1" pki="$dir/$1/pki" etcd_client etcd_peer api_port server token
  read -r etcd_client etcd_peer api_port < "$svcdir/ports"
  server="https://127.0.0.1:$api_port"
  token="$(cut -d, -f1 "$pki/tokens.csv")"

  current_log="$dir/logs/$name-etcd.log"
  wait_for "etcd" 30 "$svcdir/etcd.pid" \
    etcd_healthy "$etcd_client"

  current_log="$dir/logs/$name-apiserver.log"
  # --endpoint-reconciler-type=none: the default reconciler publishes the advertise address in the
  # `kubernetes` Endpoints; 127.0.0.1 is rejected there as loopback (an error every 10 s), and without
  # --advertise-address it would publish this machine's outward interface address instead.
  # --cert-dir keeps the apiserver from touching /var/run/kubernetes.
  spawn "$svcdir/kube-apiserver.pid" "$current_log" "$bindir/kube-apiserver" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" --insecure-port=0 \
    --etcd-servers="http://127.0.0.1:$etcd_client" \
    --token-auth-file="$pki/tokens.csv" --authorization-mode=RBAC \
    --client-ca-file="$pki/ca.crt" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" --cert-dir="$pki" \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc --api-audiences=https://kubernetes.default.svc \
    --service-cluster-ip-range=10.0.0.0/24 --endpoint-reconciler-type=none \
    --profiling=false
  wait_for "kube-apiserver" 120 "$svcdir/kube-apiserver.pid" \
    curl -fsS --cacert "$pki/ca.crt" -H "Authorization: Bearer $token" "$server/readyz"

  current_log="$dir/logs/$name-controller-manager.log"
  # No serving ports (--port=0 --secure-port=0): nothing needs its metrics, and the defaults
  # (10252/10257) would collide between parallel instances. Higher client QPS than the default 20
  # keeps namespace deletion quick when tests churn through many namespaces.
  spawn "$svcdir/kube-controller-manager.pid" "$current_log" "$bindir/kube-controller-manager" \
    --kubeconfig="$svcdir/kubeconfig" --leader-elect=false --controllers='*' --use-service-account-credentials=false \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --bind-address=127.0.0.1 --port=0 --secure-port=0 --kube-api-qps=100 --kube-api-burst=200 \
    --profiling=false
  # Ready once its controllers act: the serviceaccount controller creates default/default and the
  # token controller gives it a token secret.
  wait_for "kube-controller-manager" 60 "$svcdir/kube-controller-manager.pid" \
    k8s_default_sa_has_token "$pki/ca.crt" "$token" "$server"
}

# k8s_up NAME: a new control plane in DIR/NAME.
k8s_up() {
  local name="$1" svcdir="$dir/$1" bindir pki token api_port server
  # In the kubeconfig's cluster/user/context names and the CA's: none for k8s, -b for k8s-b, so
  # that merged kubeconfigs keep both.
  local k_suffix="${name#k8s}"
  current_log="$dir/logs/$name-build.log"
  bindir="$(k8s_binaries)"
  pki="$svcdir/pki"
  mkdir -p "$pki" "$svcdir/etcd"
  chmod 0700 "$svcdir/etcd" "$pki"

  # Ports for etcd's client and peer URLs and the API server, kept for `start`.
  echo "$(pick_port) $(pick_port) $(pick_port)" > "$svcdir/ports"
  read -r _ _ api_port < "$svcdir/ports"
  server="https://127.0.0.1:$api_port"
  # etcd first: it needs no certificates, and its ~1 s leader election overlaps the key generation.
  k8s_spawn_etcd "$name"

  current_log="$dir/logs/$name.log"
  local cnf="$here/k8s/openssl.cnf"
  {
    openssl req -x509 -new -nodes -newkey rsa:2048 -keyout "$pki/ca.key" -out "$pki/ca.crt" -days 3650 \
      -config "$cnf" -extensions v3_ca -subj "/CN=leasehold-dev$k_suffix-ca"
    openssl req -new -nodes -newkey rsa:2048 -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" \
      -config "$cnf" -subj "/CN=kube-apiserver"
    openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
      -set_serial "0x$(openssl rand -hex 12)" -days 3650 -extfile "$cnf" -extensions v3_server \
      -out "$pki/apiserver.crt"
    # Service-account tokens: the apiserver signs with the private key (TokenRequest) and verifies
    # with the public one; the controller-manager's token controller signs legacy SA secrets.
    openssl genrsa -out "$pki/sa.key" 2048
    openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
  } >> "$current_log" 2>&1 || die "generating the control plane's certificates failed"

  token="$(openssl rand -hex 32)"
  # token,user,uid,"groups": system:masters is bound to cluster-admin by the bootstrap RBAC policy.
  printf '%s,leasehold-admin,leasehold-admin,"system:masters"\n' "$token" > "$pki/tokens.csv"
  chmod 0600 "$pki/tokens.csv"

  local kubeconfig="$svcdir/kubeconfig"
  cat > "$kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: leasehold-dev$k_suffix
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 < "$pki/ca.crt")
users:
- name: leasehold-admin$k_suffix
  user:
    token: $token
contexts:
- name: leasehold-dev$k_suffix
  context:
    cluster: leasehold-dev$k_suffix
    user: leasehold-admin$k_suffix
current-context: leasehold-dev$k_suffix
KUBECONFIG
  chmod 0600 "$kubeconfig"

  k8s_run_control_plane "$name" "$bindir"
  k8s_env "$name" "$kubeconfig" "$server" "$pki/ca.crt" "$token"
}

# k8s_start NAME: starts a control plane that `stop` stopped, on its old ports and data.
k8s_start() {
  local name="$1" bindir
  current_log="$dir/logs/$name-build.log"
  bindir="$(k8s_binaries)"
  k8s_spawn_etcd "$name"
  k8s_run_control_plane "$name" "$bindir"
}

k8s_down() {
  # The controller-manager first so it does not log the apiserver going away; the apiserver before
  # etcd so it shuts down cleanly. Each step is bounded by stop_pidfiles' 10 s.
  stop_pidfiles "$dir/$1/kube-controller-manager.pid"
  stop_pidfiles "$dir/$1/kube-apiserver.pid"
  stop_pidfiles "$dir/$1/etcd.pid"
}

up_k8s() { k8s_up k8s; }
down_k8s() { k8s_down k8s; }
start_k8s() { k8s_start k8s; }
up_k8s_b() { k8s_up k8s-b; }
down_k8s_b() { k8s_down k8s-b; }
start_k8s_b() { k8s_start k8s-b; }

# ------------------------------------------------------------------------------------------------

packages_for() {
  case "$1" in
    postgres) echo postgresql ;;
    redis) echo redis-server ;;
    ldap) echo slapd ldap-utils openssl ;;
    k8s | k8s-b) echo etcd-server openssl curl ;;
  esac
}

check_dir_name() {
  # The path goes into slapd.conf, postgresql.conf and redis arguments unquoted or single-quoted.
  [[ "$1" =~ ^[A-Za-z0-9_./+@%,=:-]+$ ]] \
    || die "DIR '$1' contains characters these services cannot take in a path (spaces, quotes, ...)"
}

started=()
current_svc=""
current_log=""
on_up_exit() {
  local rc=$?
  [[ $rc -ne 0 ]] || return 0
  if [[ -n "$current_svc" ]]; then
    log "starting $current_svc failed"
    if [[ -n "$current_log" && -s "$current_log" ]]; then
      echo "---- last lines of $current_log ----" >&2
      tail -n 40 "$current_log" >&2 || true
      echo "----" >&2
    fi
  fi
  local s
  for s in "$current_svc" "${started[@]}"; do
    if [[ -n "$s" ]]; then "down_${s//-/_}" || true; fi
  done
  log "$cmd failed; stopped what this run started. Logs stay in $dir/logs; remove DIR with: $0 down $dir"
  exit "$rc"
}

cmd_up() {
  [[ $# -ge 2 ]] || usage
  dir="$1"
  shift
  local s want=()
  for s in "$@"; do
    [[ " ${all_services[*]} " == *" $s "* ]] || die "unknown service '$s' (known: ${all_services[*]})"
    if [[ " ${want[*]} " != *" $s "* ]]; then want+=("$s"); fi
  done
  check_dir_name "$dir"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd -P)"
  check_dir_name "$dir"
  if [[ ! -e "$dir/$marker" && -n "$(ls -A "$dir")" ]]; then
    die "$dir is not empty and was not made by services.sh; give a new or empty directory"
  fi
  touch "$dir/$marker"
  exec 8< "$dir/$marker"
  flock -n 8 || die "another services.sh is working on $dir"
  for s in "${want[@]}"; do
    [[ ! -e "$dir/$s" ]] || die "$s is already set up in $dir (run down first)"
  done
  mkdir -p "$dir/logs"

  local pkgs=() p
  for s in "${want[@]}"; do
    for p in $(packages_for "$s"); do pkgs+=("$p"); done
  done
  "$here/ensure-packages.sh" python3 util-linux "${pkgs[@]}"

  trap on_up_exit EXIT
  local t0
  for s in "${want[@]}"; do
    current_svc="$s"
    current_log="$dir/logs/$s.log"
    t0=$(now_ms)
    log "$s: starting"
    "up_${s//-/_}"
    started+=("$s")
    log_ready "$s" "$t0"
  done
  current_svc=""
  trap - EXIT

  # Holds passwords and the cluster-admin token: readable by the owner only.
  touch "$dir/env.sh"
  chmod 0600 "$dir/env.sh"
  printf '%s\n' "${env_lines[@]}" >> "$dir/env.sh"
  printf '%s\n' "${env_lines[@]}"
  log "all ready: source $dir/env.sh (stop with: $0 down $dir)"
}

cmd_down() {
  [[ $# -eq 1 ]] || usage
  dir="$1"
  if [[ ! -e "$dir" ]]; then
    log "$dir does not exist; nothing to stop"
    return 0
  fi
  dir="$(cd "$dir" && pwd -P)"
  # Refuse to delete a directory that `up` did not make (a typo must not rm -rf something else).
  [[ -f "$dir/$marker" ]] || die "$dir was not created by services.sh up; not touching it"
  exec 8< "$dir/$marker"
  flock -w 60 8 || die "another services.sh is still working on $dir"
  down_k8s
  down_k8s_b
  down_ldap
  down_redis
  down_postgres
  rm -rf "$dir"
  log "stopped everything in $dir and removed it"
}

# cmd_stop_start stop|start DIR SERVICE: stops a control plane that `up` started in DIR, keeping its
# directory, or starts a stopped one again from it.
cmd_stop_start() {
  [[ $# -eq 3 ]] || usage
  local action="$1" s="$3" fn ports
  dir="$2"
  [[ "$s" == k8s || "$s" == k8s-b ]] || die "$action works on the control planes only (k8s, k8s-b), not '$s'"
  [[ -f "$dir/$marker" ]] || die "$dir was not created by services.sh up"
  dir="$(cd "$dir" && pwd -P)"
  [[ -s "$dir/$s/ports" ]] || die "$s was not started in $dir (run: $0 up $dir $s)"
  exec 8< "$dir/$marker"
  flock -w 60 8 || die "another services.sh is still working on $dir"
  fn="${s//-/_}"
  read -r -a ports < "$dir/$s/ports"
  if [[ "$action" == stop ]]; then
    "down_$fn"
    # Keep the ports from being handed to another `up` while stopped (for pick_port's 10 minutes).
    reserve_ports "${ports[@]}"
    log "$s: stopped (data kept in $dir/$s; start it with: $0 start $dir $s)"
    return 0
  fi
  if pidfile_alive "$dir/$s/kube-apiserver.pid" > /dev/null; then
    log "$s: already running"
    return 0
  fi
  # A half-stopped instance (a daemon died) is stopped wholly first, then started afresh.
  "down_$fn"
  trap on_up_exit EXIT
  current_svc="$s"
  local t0
  t0=$(now_ms)
  log "$s: starting again on ports ${ports[*]}"
  "start_$fn"
  current_svc=""
  trap - EXIT
  log_ready "$s" "$t0"
}

[[ $# -ge 1 ]] || usage
cmd="$1"
shift
case "$cmd" in
  up) cmd_up "$@" ;;
  down) cmd_down "$@" ;;
  stop | start) cmd_stop_start "$cmd" "$@" ;;
  *) usage ;;
esac
