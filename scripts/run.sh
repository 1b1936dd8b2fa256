#!/usr/bin/env bash
# Starts everything: the Kafka broker (scripts/kafka.sh, installed on first use) and then the
# registry on http://127.0.0.1:8080 in the foreground. Ctrl-C stops the registry; the broker keeps
# running until `scripts/kafka.sh stop`. Extra arguments go to `customer-registry serve`.
#
# Requests need an API key. On first use this creates a local key file, .local/api-keys.jsonl,
# with one admin key, `local-admin`, and keeps a copy of that key in .local/local-admin.key
# (both readable by you only) so that it can print it and a curl example on every start.
# REGISTRY_API_KEYS names another key file; `--no-auth` (or REGISTRY_NO_AUTH=1) serves without.
#
# Events carry personal data sealed under per-customer keys, which a key-encryption key (KEK)
# wraps. On first use this creates a local KEK file, .local/keks.jsonl (readable by you only).
# REGISTRY_KEK_FILE names another; `--no-encryption` (or REGISTRY_NO_ENCRYPTION=1) writes plain text.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/kafka.sh start
export REGISTRY_KAFKA_BOOTSTRAP=${REGISTRY_KAFKA_BOOTSTRAP:-127.0.0.1:${KAFKA_PORT:-9092}}
cargo build --locked --release --bin customer-registry
registry=${CARGO_TARGET_DIR:-target}/release/customer-registry

# REGISTRY_NO_AUTH is read as serve reads it: 1/true/yes/on serve without keys.
no_auth=0
case "$(printf '%s' "${REGISTRY_NO_AUTH:-}" | tr '[:upper:]' '[:lower:]')" in
  1 | true | yes | on | y | t) no_auth=1 ;;
esac
for argument in "$@"; do
  [ "$argument" = --no-auth ] && no_auth=1
done
if [ "$no_auth" = 0 ]; then
  if [ -z "${REGISTRY_API_KEYS:-}" ]; then
    export REGISTRY_API_KEYS=.local/api-keys.jsonl
    if [ ! -f "$REGISTRY_API_KEYS" ]; then
      mkdir -p .local
      (umask 077 && "$registry" keys add --file "$REGISTRY_API_KEYS" --name local-admin --admin |
        tail -n 1 >.local/local-admin.key)
      echo "run.sh: created $REGISTRY_API_KEYS with the admin key local-admin" >&2
    fi
  fi
  if [ -f .local/local-admin.key ] && [ "$REGISTRY_API_KEYS" = .local/api-keys.jsonl ]; then
    key=$(cat .local/local-admin.key)
    cat >&2 <<USAGE
run.sh: API key (admin, from .local/local-admin.key): $key
run.sh: try  curl -s -H "Authorization: Bearer $key" 'http://127.0.0.1:8080/api/v01/customers?limit=5'
USAGE
  fi
fi

# REGISTRY_NO_ENCRYPTION is read as serve reads it, as REGISTRY_NO_AUTH is.
no_encryption=0
case "$(printf '%s' "${REGISTRY_NO_ENCRYPTION:-}" | tr '[:upper:]' '[:lower:]')" in
  1 | true | yes | on | y | t) no_encryption=1 ;;
esac
for argument in "$@"; do
  case "$argument" in --no-encryption | --kek-file | --kek-file=*) no_encryption=1 ;; esac
done
if [ "$no_encryption" = 0 ] && [ -z "${REGISTRY_KEK_FILE:-}" ]; then
  export REGISTRY_KEK_FILE=.local/keks.jsonl
  if [ ! -f "$REGISTRY_KEK_FILE" ]; then
    mkdir -p .local
    "$registry" kek add --file "$REGISTRY_KEK_FILE" >/dev/null
    echo "run.sh: created $REGISTRY_KEK_FILE, the key-encryption key of this registry's data keys" >&2
  fi
fi
exec "$registry" serve "$@"
