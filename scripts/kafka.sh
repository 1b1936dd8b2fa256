#!/usr/bin/env bash
# Runs a single-node Apache Kafka broker (KRaft, combined broker + controller) for customer-registry.
#
#   scripts/kafka.sh start    install on first use, format storage on first start, start, wait until ready
#   scripts/kafka.sh stop     stop the broker this data dir's pid file names, and wait for it to exit
#   scripts/kafka.sh status   exit 0 when that broker runs and answers, 3 when it does not
#
# Settings (environment):
#   KAFKA_PORT             client listener port              (default 9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller listener port    (default 9093)
#   KAFKA_DATA_DIR         storage, config, pid file and log (default .kafka/ in the repo)
#   KAFKA_VERSION          broker version from Maven Central (default 4.1.1)
#   KAFKA_HEAP_OPTS        JVM heap                          (default -Xms256m -Xmx1g)
#
# The jars come from Maven Central through Maven (scripts/kafka/pom.xml) and are cached in
# ${XDG_CACHE_HOME:-$HOME/.cache}/customer-registry/kafka-<version>, so only the first start downloads.
set -euo pipefail

repo_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kafka_version=${KAFKA_VERSION:-4.1.1}
client_port=${KAFKA_PORT:-9092}
controller_port=${KAFKA_CONTROLLER_PORT:-9093}
data_dir=${KAFKA_DATA_DIR:-$repo_dir/.kafka}
heap_opts=${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}
cache_dir=${XDG_CACHE_HOME:-$HOME/.cache}/customer-registry/kafka-$kafka_version
ready_timeout_secs=120
stop_timeout_secs=60

mkdir -p "$data_dir"
data_dir=$(cd "$data_dir" && pwd)
properties_file=$data_dir/server.properties
pid_file=$data_dir/kafka.pid
log_file=$data_dir/kafka.log
storage_dir=$data_dir/storage

say() { printf 'kafka.sh: %s\n' "$*" >&2; }

# The pid in the pid file, when that process is alive and is the broker started with this data dir's
# config (a recycled pid belonging to something else does not count).
running_pid() {
  [ -f "$pid_file" ] || return 1
  local pid
  pid=$(cat "$pid_file")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "kafka.Kafka $properties_file" || return 1
  echo "$pid"
}

port_answers() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

install_jars() {
  [ -f "$cache_dir/.complete" ] && return 0
  command -v java >/dev/null || { say "java is not installed (Kafka $kafka_version needs Java 17+)"; exit 1; }
  command -v mvn >/dev/null || { say "mvn is not installed (it fetches Kafka's jars from Maven Central)"; exit 1; }
  say "installing Apache Kafka $kafka_version from Maven Central into $cache_dir"
  mkdir -p "$cache_dir"
  local staging
  staging=$(mktemp -d "$cache_dir/libs.XXXXXX")
  if ! mvn -q -B -f "$repo_dir/scripts/kafka/pom.xml" -Dkafka.version="$kafka_version" \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$staging" >"$cache_dir/install.log" 2>&1; then
    tail -n 30 "$cache_dir/install.log" >&2
    rm -rf "$staging"
    say "could not fetch Kafka $kafka_version with Maven (full log: $cache_dir/install.log)"
    exit 1
  fi
  rm -rf "$cache_dir/libs"
  mv "$staging" "$cache_dir/libs"
  cp "$repo_dir/scripts/kafka/log4j2.yaml" "$cache_dir/log4j2.yaml"
  touch "$cache_dir/.complete"
}

# The JVM command line shared by the storage tool and the broker.
java_command() {
  # shellcheck disable=SC2206 # heap_opts holds several JVM flags
  java_cmd=(java $heap_opts -XX:+UseG1GC -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$cache_dir/log4j2.yaml" -cp "$cache_dir/libs/*")
}

write_properties() {
  cat >"$properties_file" <<EOF
# Written by scripts/kafka.sh on every start; edits are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$client_port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$client_port
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$storage_dir
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Topics are created deliberately (the registry creates its own with unlimited retention); a typo in a
# client must not silently create a topic with the broker's default seven-day retention.
auto.create.topics.enable=false
EOF
}

start() {
  local pid
  if pid=$(running_pid); then
    say "already running (pid $pid, port $client_port)"
    return 0
  fi
  if port_answers "$client_port"; then
    say "port $client_port is already taken by another process; set KAFKA_PORT to run beside it"
    exit 1
  fi
  if port_answers "$controller_port"; then
    say "port $controller_port is already taken by another process; set KAFKA_CONTROLLER_PORT to run beside it"
    exit 1
  fi
  install_jars
  java_command
  write_properties
  if [ ! -f "$storage_dir/meta.properties" ]; then
    local cluster_id
    cluster_id=$("${java_cmd[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null)
    "${java_cmd[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$properties_file" >>"$log_file" 2>&1 || {
      tail -n 20 "$log_file" >&2
      say "formatting KRaft storage in $storage_dir failed"
      exit 1
    }
  fi
  # The log is appended to across starts: readiness is judged on what this start writes.
  touch "$log_file"
  local log_start
  log_start=$(($(stat -c %s "$log_file") + 1))
  # nohup execs java, so $! is the JVM's own pid.
  nohup "${java_cmd[@]}" kafka.Kafka "$properties_file" >>"$log_file" 2>&1 </dev/null &
  local jvm_pid=$! deadline=$((SECONDS + ready_timeout_secs))
  echo "$jvm_pid" >"$pid_file"
  while [ $SECONDS -lt $deadline ]; do
    if ! kill -0 "$jvm_pid" 2>/dev/null; then
      tail -n 40 "$log_file" >&2
      say "the broker exited during start-up (log: $log_file)"
      rm -f "$pid_file"
      exit 1
    fi
    # grep -c reads all its input: with -q, tail could die of SIGPIPE and fail the pipeline.
    if port_answers "$client_port" && tail -c +"$log_start" "$log_file" | grep -cF "Kafka Server started" >/dev/null; then
      say "started Kafka $kafka_version (pid $jvm_pid) on 127.0.0.1:$client_port, data in $data_dir"
      return 0
    fi
    sleep 0.5
  done
  tail -n 40 "$log_file" >&2
  say "the broker did not answer on port $client_port within ${ready_timeout_secs}s; stopping it (log: $log_file)"
  stop
  exit 1
}

stop() {
  local pid
  if ! pid=$(running_pid); then
    say "not running (no live broker for $data_dir)"
    rm -f "$pid_file"
    return 0
  fi
  kill -TERM "$pid"
  local deadline=$((SECONDS + stop_timeout_secs))
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "broker (pid $pid) ignored SIGTERM for ${stop_timeout_secs}s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$pid_file"
  say "stopped (pid $pid)"
}

status() {
  local pid
  if pid=$(running_pid) && port_answers "$client_port"; then
    echo "running (pid $pid) on 127.0.0.1:$client_port, data in $data_dir"
    return 0
  fi
  echo "not running (data dir $data_dir)"
  return 3
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
