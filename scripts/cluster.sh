#!/usr/bin/env bash
# Runs several registry replicas behind HAProxy on one machine: the topology of docker-compose.yml
# and deploy/kubernetes/, without containers.
#
#   scripts/cluster.sh start [--replicas N] [-- SERVE_ARGS...]
#                             build (unless REGISTRY_BIN), start N replicas and the balancer, and
#                             return once the balancer answers and every replica's /readyz is 200
#   scripts/cluster.sh stop   stop the balancer and every replica of CLUSTER_DIR, and wait for them
#   scripts/cluster.sh status exit 0 when the balancer and every replica run, 3 when not
#
# Each replica is a `customer-registry serve` with its own data dir (its own sled projection of
# the one topic) on 127.0.0.1; HAProxy balances each request on its own, round-robin over the
# replicas whose GET /readyz answers 200 (checked every 500 ms; over all of them while none is,
# as in an outage of Kafka), says which answered in X-Served-By, and never forwards /metrics (on
# loopback the registry serves it without a key: ask a replica directly, at the address listed
# in CLUSTER_DIR/replicas). Send a write's X-Log-Position back as X-Min-Log-Position on the reads
# and changes that must see it, whichever replica answers (README, "Read-your-writes"). Needs a
# broker: scripts/kafka.sh start.
#
# Settings (environment):
#   REGISTRY_REPLICAS          replicas (default 2; or --replicas N)
#   REGISTRY_KAFKA_BOOTSTRAP   Kafka bootstrap servers (default 127.0.0.1:${KAFKA_PORT:-9092}); for
#                              scripts/kafka.sh's three brokers: 127.0.0.1:9192,127.0.0.1:9194,127.0.0.1:9196
#   REGISTRY_BIN               the registry binary (default: cargo build --locked --release)
#   CLUSTER_PORT               the balancer's port on 127.0.0.1 (default 8080)
#   CLUSTER_REPLICA_BASE_PORT  replica i listens on this + i (default CLUSTER_PORT); 0: free ports
#   CLUSTER_DIR                data dirs, haproxy.cfg, pid files, logs (default .cluster/ in the repo)
#   CLUSTER_START_TIMEOUT      seconds `start` waits for readiness (default 120)
# Every other REGISTRY_* setting (REGISTRY_TOPIC, REGISTRY_API_KEYS, REGISTRY_NO_AUTH, ...) reaches
# every replica, but REGISTRY_LISTEN and REGISTRY_DATA_DIR (set here, per replica) and
# REGISTRY_METRICS_LISTEN (one address cannot serve several replicas). Authentication as in scripts/run.sh: without REGISTRY_API_KEYS or
# REGISTRY_NO_AUTH=1, the replicas share .local/api-keys.jsonl, created on first use with the
# admin key local-admin (a copy in .local/local-admin.key).
#
# HAProxy comes from Debian's package `haproxy`, installed with apt-get when missing.
# Every process writes to its own log file in CLUSTER_DIR, never to the caller's terminal or pipe.
set -euo pipefail

repo_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_dir"

say() { printf 'cluster.sh: %s\n' "$*" >&2; }

usage() {
  echo "usage: $0 start [--replicas N] [-- SERVE_ARGS...] | stop | status" >&2
  exit 2
}

command=${1:-}
[ $# -gt 0 ] && shift
replicas=${REGISTRY_REPLICAS:-2}
serve_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --replicas) [ $# -ge 2 ] || usage; replicas=$2; shift 2 ;;
    --replicas=*) replicas=${1#--replicas=}; shift ;;
    --) shift; serve_args=("$@"); break ;;
    *) usage ;;
  esac
done
case "$replicas" in
  '' | *[!0-9]* | 0) say "the number of replicas must be a positive integer, not '$replicas'"; exit 2 ;;
esac

cluster_port=${CLUSTER_PORT:-8080}
replica_base_port=${CLUSTER_REPLICA_BASE_PORT:-$cluster_port}
start_timeout_secs=${CLUSTER_START_TIMEOUT:-120}
stop_timeout_secs=30
cluster_dir=$(realpath -m "${CLUSTER_DIR:-$repo_dir/.cluster}")
haproxy_cfg=$cluster_dir/haproxy.cfg
haproxy_pid_file=$cluster_dir/haproxy.pid
haproxy_log=$cluster_dir/haproxy.log
# One line per replica, "name http://address", for tools and tests that ask a replica directly.
replicas_file=$cluster_dir/replicas

port_answers() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The pid in pid file $1, when that process is alive and its command line holds $2 (this
# cluster's data dir or config: a recycled pid belonging to something else does not count).
running_pid() {
  [ -f "$1" ] || return 1
  local pid
  pid=$(cat "$1")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$2" || return 1
  echo "$pid"
}


# The HTTP status of GET $1 (000 when nothing answers).
http_status() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true
}

find_haproxy() {
  haproxy_bin=$(command -v haproxy || true)
  [ -z "$haproxy_bin" ] && [ -x /usr/sbin/haproxy ] && haproxy_bin=/usr/sbin/haproxy
  [ -n "$haproxy_bin" ]
}

install_haproxy() {
  find_haproxy && return 0
  local hint="install Debian's package: sudo apt-get update && sudo apt-get install -y haproxy"
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    say "HAProxy is not installed and this user cannot install it; $hint"
    exit 1
  fi
  say "installing HAProxy (Debian's package haproxy) with apt-get"
  if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy; } \
    >"$cluster_dir/install.log" 2>&1; then
    tail -n 20 "$cluster_dir/install.log" >&2
    say "could not install HAProxy (log: $cluster_dir/install.log); $hint"
    exit 1
  fi
  find_haproxy || { say "apt-get installed haproxy, but no haproxy binary is found; $hint"; exit 1; }
}

registry_binary() {
  if [ -n "${REGISTRY_BIN:-}" ]; then
    registry=$REGISTRY_BIN
  else
    cargo build --locked --release --bin customer-registry
    registry=${CARGO_TARGET_DIR:-target}/release/customer-registry
  fi
  [ -x "$registry" ] || { say "no registry binary at $registry"; exit 1; }
  registry=$(cd "$(dirname "$registry")" && pwd)/$(basename "$registry")
}

# Authentication as scripts/run.sh sets it up; REGISTRY_NO_AUTH is read as serve reads it.
choose_auth() {
  local no_auth=0 argument
  case "$(printf '%s' "${REGISTRY_NO_AUTH:-}" | tr '[:upper:]' '[:lower:]')" in
    1 | true | yes | on | y | t) no_auth=1 ;;
  esac
  for argument in "${serve_args[@]}"; do
    case "$argument" in --no-auth | --api-keys | --api-keys=*) no_auth=1 ;; esac
  done
  [ "$no_auth" = 1 ] && return 0
  if [ -z "${REGISTRY_API_KEYS:-}" ]; then
    export REGISTRY_API_KEYS=$repo_dir/.local/api-keys.jsonl
    if [ ! -f "$REGISTRY_API_KEYS" ]; then
      mkdir -p .local
      (umask 077 && "$registry" keys add --file "$REGISTRY_API_KEYS" --name local-admin --admin |
        tail -n 1 >.local/local-admin.key)
      say "created .local/api-keys.jsonl with the admin key local-admin"
    fi
  fi
  if [ -f .local/local-admin.key ] && [ "$REGISTRY_API_KEYS" -ef .local/api-keys.jsonl ]; then
    local key
    key=$(cat .local/local-admin.key)
    say "API key (admin, from .local/local-admin.key): $key"
    say "try  curl -s -H \"Authorization: Bearer $key\" 'http://127.0.0.1:$cluster_port/api/v01/customers?limit=5'"
  fi
}

# Encryption as scripts/run.sh sets it up: every replica shares one KEK file, .local/keks.jsonl,
# created on first use, unless REGISTRY_KEK_FILE names another or REGISTRY_NO_ENCRYPTION=1.
choose_encryption() {
  local argument
  case "$(printf '%s' "${REGISTRY_NO_ENCRYPTION:-}" | tr '[:upper:]' '[:lower:]')" in
    1 | true | yes | on | y | t) return 0 ;;
  esac
  for argument in "${serve_args[@]}"; do
    case "$argument" in --no-encryption | --kek-file | --kek-file=*) return 0 ;; esac
  done
  if [ -z "${REGISTRY_KEK_FILE:-}" ]; then
    export REGISTRY_KEK_FILE=$repo_dir/.local/keks.jsonl
    if [ ! -f "$REGISTRY_KEK_FILE" ]; then
      mkdir -p .local
      "$registry" kek add --file "$REGISTRY_KEK_FILE" >/dev/null
      say "created .local/keks.jsonl, the key-encryption key the replicas share"
    fi
  fi
}

# The replica's address from its log ("listening on http://127.0.0.1:PORT"), once it listens.
replica_address() {
  { grep -o 'listening on http://[0-9.:]*' "$1/registry.log" 2>/dev/null || true; } | head -n 1 | cut -d/ -f3
}

# deploy/haproxy/haproxy.cfg made local: without Docker's resolvers (and the comments just above
# what is dropped), bound to 127.0.0.1, and with this cluster's replicas as servers.
write_haproxy_cfg() {
  local name address
  echo "# Written by scripts/cluster.sh on every start from deploy/haproxy/haproxy.cfg: edit that." \
    >"$haproxy_cfg"
  awk -v bind="127.0.0.1:$cluster_port" '
      /^[ \t]*#/ { pending = pending $0 "\n"; next }
      /^resolvers / { skipping = 1 }
      skipping { if ($0 == "") skipping = 0; pending = ""; next }
      /^[ \t]*default-server .*resolvers / || /^[ \t]*server / { pending = ""; next }
      /^[a-z]/ { section = $0 }
      /^[ \t]*bind :8080$/ { $0 = "    bind " bind; bound = 1 }
      { printf "%s%s\n", pending, $0; pending = "" }
      END {
        if (!bound || section != "backend registries") {
          print "deploy/haproxy/haproxy.cfg no longer has `bind :8080` and `backend registries` last" >"/dev/stderr"
          exit 1
        }
      }' "$repo_dir/deploy/haproxy/haproxy.cfg" >>"$haproxy_cfg" || return 1
  {
    echo "    # Which replica answered, for people and tests reading answers (scripts/cluster.sh only)."
    echo "    http-response set-header X-Served-By %[srv_name]"
    while read -r name address; do
      echo "    server $name $address"
    done <"$replicas_file"
    while read -r name address; do
      echo "    server $name-unready $address backup no-check"
    done <"$replicas_file"
  } >>"$haproxy_cfg"
}

start() {
  if status >/dev/null 2>&1; then
    say "already running: $(wc -l <"$replicas_file") replicas behind http://127.0.0.1:$cluster_port (CLUSTER_DIR $cluster_dir)"
    return 0
  fi
  # Leftovers of a cluster that lost a process.
  stop 2>/dev/null
  mkdir -p "$cluster_dir"
  command -v curl >/dev/null || { say "curl is not installed (sudo apt-get install -y curl)"; exit 1; }
  if port_answers "$cluster_port"; then
    say "port $cluster_port is already taken by another process; set CLUSTER_PORT to run beside it"
    exit 1
  fi
  install_haproxy
  registry_binary
  choose_auth
  choose_encryption
  # Per replica, set below; one metrics address cannot serve several replicas.
  unset REGISTRY_LISTEN REGISTRY_DATA_DIR REGISTRY_METRICS_LISTEN
  export REGISTRY_KAFKA_BOOTSTRAP=${REGISTRY_KAFKA_BOOTSTRAP:-127.0.0.1:${KAFKA_PORT:-9092}}

  # Whatever ends start before the cluster is up (a failure, an unexpected error, Ctrl-C) stops
  # what it started.
  trap 'stop >/dev/null 2>&1; rm -f "$replicas_file.new"' EXIT
  local i dir port pid
  for i in $(seq 1 "$replicas"); do
    dir=$cluster_dir/registry-$i
    mkdir -p "$dir"
    port=0
    if [ "$replica_base_port" != 0 ]; then
      port=$((replica_base_port + i))
      port_answers "$port" &&
        fail "port $port (replica $i) is already taken; set CLUSTER_REPLICA_BASE_PORT (0: free ports)"
    fi
    nohup "$registry" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" "${serve_args[@]}" \
      >"$dir/registry.log" 2>&1 </dev/null &
    echo $! >"$dir/registry.pid"
  done

  local deadline=$((SECONDS + start_timeout_secs)) waiting address
  while :; do
    waiting=0
    : >"$replicas_file.new"
    for i in $(seq 1 "$replicas"); do
      dir=$cluster_dir/registry-$i
      pid=$(cat "$dir/registry.pid")
      if ! kill -0 "$pid" 2>/dev/null; then
        tail -n 30 "$dir/registry.log" >&2
        fail "replica $i exited during start-up (log: $dir/registry.log)"
      fi
      address=$(replica_address "$dir")
      if [ -z "$address" ] || [ "$(http_status "http://$address/readyz")" != 200 ]; then
        waiting=$((waiting + 1))
      fi
      echo "registry-$i $address" >>"$replicas_file.new"
    done
    [ "$waiting" = 0 ] && break
    if [ $SECONDS -ge $deadline ]; then
      for i in $(seq 1 "$replicas"); do
        dir=$cluster_dir/registry-$i
        echo "--- replica $i ($dir/registry.log):" >&2
        tail -n 15 "$dir/registry.log" >&2
      done
      fail "$waiting of $replicas replicas not ready (GET /readyz) within ${start_timeout_secs}s"
    fi
    sleep 0.2
  done
  mv "$replicas_file.new" "$replicas_file"

  write_haproxy_cfg || fail "cannot derive $haproxy_cfg from deploy/haproxy/haproxy.cfg"
  if ! "$haproxy_bin" -c -q -f "$haproxy_cfg" >"$haproxy_log" 2>&1; then
    cat "$haproxy_log" >&2
    fail "HAProxy refused $haproxy_cfg"
  fi
  nohup "$haproxy_bin" -db -f "$haproxy_cfg" >"$haproxy_log" 2>&1 </dev/null &
  echo $! >"$haproxy_pid_file"
  while [ "$(http_status "http://127.0.0.1:$cluster_port/readyz")" != 200 ]; do
    if ! kill -0 "$(cat "$haproxy_pid_file")" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
      tail -n 30 "$haproxy_log" >&2
      fail "the balancer did not answer on port $cluster_port within ${start_timeout_secs}s (log: $haproxy_log)"
    fi
    sleep 0.2
  done
  trap - EXIT
  say "$replicas replicas behind http://127.0.0.1:$cluster_port ($(cut -d' ' -f2 "$replicas_file" | paste -sd' ')), logs in $cluster_dir"
}

# A failed start: says why and exits 1 (start's EXIT trap stops what it started; logs are kept).
fail() {
  say "$*"
  exit 1
}

# Sends SIGTERM to each pid given, waits for all to exit, and SIGKILLs what outlives the timeout.
terminate() {
  local pid
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  local deadline=$((SECONDS + stop_timeout_secs))
  for pid in "$@"; do
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "pid $pid ignored SIGTERM for ${stop_timeout_secs}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
  done
}

stop() {
  local pid pid_file pids=()
  # The balancer first, so that no request is sent to a replica that is stopping.
  if pid=$(running_pid "$haproxy_pid_file" "$haproxy_cfg"); then
    terminate "$pid"
    say "stopped the balancer (pid $pid)"
  fi
  rm -f "$haproxy_pid_file"
  for pid_file in "$cluster_dir"/registry-*/registry.pid; do
    [ -f "$pid_file" ] || continue
    if pid=$(running_pid "$pid_file" "$(dirname "$pid_file")/data"); then
      pids+=("$pid")
    fi
    rm -f "$pid_file"
  done
  terminate "${pids[@]}"
  [ ${#pids[@]} -gt 0 ] && say "stopped ${#pids[@]} replicas (pids ${pids[*]})"
  return 0
}

status() {
  local all=0 dir pid name address
  if pid=$(running_pid "$haproxy_pid_file" "$haproxy_cfg") && port_answers "$cluster_port"; then
    echo "balancer: running (pid $pid) on http://127.0.0.1:$cluster_port"
  else
    echo "balancer: not running (CLUSTER_DIR $cluster_dir)"
    all=3
  fi
  [ -f "$replicas_file" ] || { echo "replicas: none started"; return 3; }
  while read -r name address; do
    dir=$cluster_dir/$name
    if pid=$(running_pid "$dir/registry.pid" "$dir/data"); then
      echo "$name: running (pid $pid) on http://$address, /readyz $(http_status "http://$address/readyz")"
    else
      echo "$name: not running (log: $dir/registry.log)"
      all=3
    fi
  done <"$replicas_file"
  return "$all"
}

case "$command" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) usage ;;
esac
