#!/usr/bin/env bash
# A long fault campaign (tests/it/fault_campaign.rs): a seeded mixed workload against two registry
# replicas on a three-node Kafka cluster of its own, one fault per round (registry kill -9, failed
# and slow flushes, broker stop and kill, a replica killed mid-catch-up, failures at the storage and
# log boundaries), an oracle after each recovery. Prints the seed first and a report at the end;
# a failing seed runs again with the same faults in the same order.
#
#   scripts/faults.sh [SEED] [DURATION_SECONDS]    (defaults: a seed from the clock, 1800 s)
#
# The cluster gets its own ports (FAULTS_KAFKA_PORT, default 39192, nodes on +0/+2/+4; controllers
# on FAULTS_KAFKA_CONTROLLER_PORT, default 39193) and a fresh data dir, and is stopped however this
# ends. The campaign's replicas log to files in a temporary directory, kept when a check fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seed=${1:-$(( $(date +%s%N) % 1000000007 + 1 ))}
duration=${2:-1800}
case "$seed$duration" in
  *[!0-9]*) echo "usage: scripts/faults.sh [SEED] [DURATION_SECONDS] (whole numbers)" >&2; exit 2 ;;
esac

export KAFKA_CLUSTER_PORT=${FAULTS_KAFKA_PORT:-39192}
export KAFKA_CLUSTER_CONTROLLER_PORT=${FAULTS_KAFKA_CONTROLLER_PORT:-39193}
data=$(mktemp -d)
export KAFKA_CLUSTER_DATA_DIR=$data/kafka-cluster
cluster_kafka_sh() {
  KAFKA_BROKERS=3 KAFKA_PORT=$KAFKA_CLUSTER_PORT KAFKA_CONTROLLER_PORT=$KAFKA_CLUSTER_CONTROLLER_PORT \
    KAFKA_DATA_DIR=$KAFKA_CLUSTER_DATA_DIR scripts/kafka.sh "$@"
}
finish() {
  cluster_kafka_sh stop >/dev/null 2>&1 || true
  rm -rf "$data"
}
trap finish EXIT
cluster_kafka_sh start

echo "fault campaign: seed $seed, $duration s"
FAULT_SEED=$seed FAULT_DURATION_SECS=$duration \
  cargo test --locked --test it fault_campaign:: -- --nocapture --test-threads 1
