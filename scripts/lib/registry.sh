# shellcheck shell=bash
# shellcheck disable=SC2034  # the registry_* variables are set here for the scripts that source this
# Sourced by the scripts that test the API from outside (contract.sh, clients.sh): builds the
# registry with cargo and starts it against a running broker (KAFKA_BOOTSTRAP, or
# 127.0.0.1:KAFKA_PORT, default 9092) with an admin API key, on a free port, with a topic and data
# dir of its own. Its output goes to a file, never to the caller's pipe, so that a pipe closed
# early cannot stop it. The caller stops it from its EXIT trap with stop_registry.

registry=
registry_pid=
registry_address=
registry_key=
registry_log=

# build_registry: the debug binary, built as cargo builds it (CARGO_TARGET_DIR, default target).
build_registry() {
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
  cargo build --locked --quiet --bin customer-registry
  registry=$CARGO_TARGET_DIR/debug/customer-registry
}

# start_registry DIR NAME: serves from DIR (its key file, data dir and log) on a topic named after
# NAME, and returns once its projection is ready. Sets registry_address (host:port), registry_key
# (the admin key), registry_log and registry_pid; on failure prints the log and returns 1.
start_registry() {
  local dir=$1 name=$2
  local bootstrap=${KAFKA_BOOTSTRAP:-127.0.0.1:${KAFKA_PORT:-9092}}
  registry_log=$dir/registry.log
  registry_key=$("$registry" keys add --file "$dir/api-keys.jsonl" --name "$name" --admin | tail -n 1) ||
    return 1
  "$registry" kek add --file "$dir/keks.jsonl" >/dev/null || return 1
  "$registry" serve --listen 127.0.0.1:0 --kafka-bootstrap "$bootstrap" \
    --topic "$name.$(date +%s).$$" --data-dir "$dir/data" --api-keys "$dir/api-keys.jsonl" \
    --kek-file "$dir/keks.jsonl" \
    --projection-wait-ms 1000 >"$registry_log" 2>&1 &
  registry_pid=$!
  for _ in $(seq 1 600); do
    if grep -q "ready: the projection" "$registry_log" 2>/dev/null; then
      registry_address=$(grep -o 'listening on http://[0-9.:]*' "$registry_log" | head -n 1 | cut -d/ -f3)
      return 0
    fi
    kill -0 "$registry_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "$name: the registry did not start" >&2
  cat "$registry_log" >&2
  return 1
}

# stop_registry: stops the registry start_registry started, if it runs, and waits for it.
stop_registry() {
  if [ -n "$registry_pid" ]; then
    kill "$registry_pid" 2>/dev/null || true
    wait "$registry_pid" 2>/dev/null || true
    registry_pid=
  fi
}
