#!/usr/bin/env bash
# The whole test suite, against a real Kafka broker: starts one with scripts/kafka.sh when none is
# running (and stops it again afterwards), then runs every unit, property and integration test.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh --test api`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

started_broker=0
stop_broker() {
  if [ "$started_broker" = 1 ]; then
    scripts/kafka.sh stop
  fi
}
trap stop_broker EXIT

if ! scripts/kafka.sh status >/dev/null; then
  scripts/kafka.sh start
  started_broker=1
fi
cargo test --locked "$@"
