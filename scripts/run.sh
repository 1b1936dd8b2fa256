#!/usr/bin/env bash
# Starts everything: the Kafka broker (scripts/kafka.sh, installed on first use) and then the
# registry on http://127.0.0.1:8080 in the foreground. Ctrl-C stops the registry; the broker keeps
# running until `scripts/kafka.sh stop`. Extra arguments go to `customer-registry serve`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/kafka.sh start
export REGISTRY_KAFKA_BOOTSTRAP=${REGISTRY_KAFKA_BOOTSTRAP:-127.0.0.1:${KAFKA_PORT:-9092}}
exec cargo run --locked --release -- serve "$@"
