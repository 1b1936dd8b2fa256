#!/usr/bin/env bash
# The whole test suite, against a real Kafka broker and a three-node Kafka cluster (for the tests of
# node failures): starts each with scripts/kafka.sh when it is not running (and stops it again
# afterwards), then runs every unit, property and integration test. Extra arguments go to
# `cargo test` (e.g. `scripts/test.sh --test it api::`: the integration tests are one binary, `it`,
# one module per file in tests/it/).
#
# The cluster's settings, exported to the tests (tests/it/common/cluster.rs):
#   KAFKA_CLUSTER_PORT             first node's client port     (default 9192; the nodes 9192, 9194, 9196)
#   KAFKA_CLUSTER_CONTROLLER_PORT  first node's controller port (default 9193; the nodes 9193, 9195, 9197)
#   KAFKA_CLUSTER_DATA_DIR         its data dir                 (default .kafka-cluster/ in the repo)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export KAFKA_CLUSTER_PORT=${KAFKA_CLUSTER_PORT:-9192}
export KAFKA_CLUSTER_CONTROLLER_PORT=${KAFKA_CLUSTER_CONTROLLER_PORT:-9193}
export KAFKA_CLUSTER_DATA_DIR=${KAFKA_CLUSTER_DATA_DIR:-$PWD/.kafka-cluster}

cluster_kafka_sh() {
  KAFKA_BROKERS=3 KAFKA_PORT=$KAFKA_CLUSTER_PORT KAFKA_CONTROLLER_PORT=$KAFKA_CLUSTER_CONTROLLER_PORT \
    KAFKA_DATA_DIR=$KAFKA_CLUSTER_DATA_DIR scripts/kafka.sh "$@"
}

started_broker=0
started_cluster=0
stop_started() {
  if [ "$started_cluster" = 1 ]; then
    cluster_kafka_sh stop
  fi
  if [ "$started_broker" = 1 ]; then
    scripts/kafka.sh stop
  fi
}
trap stop_started EXIT

# Each is marked as started before its start, whose JVMs would outlive an interrupted start.
if ! scripts/kafka.sh status >/dev/null; then
  started_broker=1
  scripts/kafka.sh start
fi
if ! cluster_kafka_sh status >/dev/null; then
  started_cluster=1
  cluster_kafka_sh start
fi
cargo test --locked "$@"
