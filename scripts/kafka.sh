#!/usr/bin/env bash
# Runs Apache Kafka in KRaft mode for customer-registry: by default a single node (combined broker +
# controller); with KAFKA_BROKERS=3, a cluster of three such nodes on this machine, for fault tests.
#
#   scripts/kafka.sh start                   install on first use, format storage on first start, start, wait until ready
#   scripts/kafka.sh stop                    stop the node(s) this data dir's pid files name, and wait for them to exit
#   scripts/kafka.sh status                  one line per node; exit 0 when every node runs and answers, 3 when one does not
#   scripts/kafka.sh stop-broker N [--kill]  stop node N (1-3) with SIGTERM (SIGKILL with --kill) and wait for it to exit
#   scripts/kafka.sh start-broker N          start node N again; return once it answers and has logged that it started
#
# Settings (environment):
#   KAFKA_BROKERS          nodes, 1 or 3 (default: what start recorded in the data dir, else 1)
#   KAFKA_PORT             client listener port              (default 9092; a cluster's node N: +2(N-1))
#   KAFKA_CONTROLLER_PORT  KRaft controller listener port    (default 9093; a cluster's node N: +2(N-1))
#   KAFKA_DATA_DIR         storage, config, pid file and log (default .kafka/ in the repo; a cluster's node N: node-N/ in it)
#   KAFKA_VERSION          broker version from Maven Central (default 4.1.1)
#   KAFKA_HEAP_OPTS        JVM heap, per node                (default -Xms256m -Xmx1g; in a cluster -Xms256m -Xmx768m)
#
# The jars come from Maven Central through Maven (scripts/kafka/pom.xml) and are cached in
# ${XDG_CACHE_HOME:-$HOME/.cache}/customer-registry/kafka-<version>, so only the first start downloads.
set -euo pipefail

repo_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kafka_version=${KAFKA_VERSION:-4.1.1}
client_port=${KAFKA_PORT:-9092}
controller_port=${KAFKA_CONTROLLER_PORT:-9093}
data_dir=${KAFKA_DATA_DIR:-$repo_dir/.kafka}
cache_dir=${XDG_CACHE_HOME:-$HOME/.cache}/customer-registry/kafka-$kafka_version
ready_timeout_secs=120
stop_timeout_secs=60

mkdir -p "$data_dir"
data_dir=$(cd "$data_dir" && pwd)
# A cluster's data dir says how many nodes it holds, and which KRaft cluster id all their storages
# were formatted with; a single node's data dir holds neither file.
brokers_file=$data_dir/brokers
cluster_id_file=$data_dir/cluster.id

say() { printf 'kafka.sh: %s\n' "$*" >&2; }

if [ -n "${KAFKA_BROKERS:-}" ]; then
  brokers=$KAFKA_BROKERS
elif [ -f "$brokers_file" ]; then
  brokers=$(cat "$brokers_file")
else
  brokers=1
fi
# Three is the smallest quorum that survives losing a node, and the replication settings below are
# chosen for it; more JVMs than that do not fit a two-core machine.
case "$brokers" in
  1) heap_opts=${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g} ;;
  3) heap_opts=${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m} ;;
  *)
    say "KAFKA_BROKERS must be 1 or 3, not '$brokers'"
    exit 2
    ;;
esac

# Points the per-node variables at node $1. A single node keeps everything in the data dir itself
# (the layout from before clusters existed); a cluster's node N lives in node-N/, on ports 2(N-1)
# above the base ones, so that KAFKA_PORT + 1 stays free for the first node's controller.
select_node() {
  node=$1
  node_client_port=$((client_port + 2 * (node - 1)))
  node_controller_port=$((controller_port + 2 * (node - 1)))
  if [ "$brokers" = 1 ]; then
    node_dir=$data_dir
    label=
  else
    node_dir=$data_dir/node-$node
    label="node $node: "
  fi
  properties_file=$node_dir/server.properties
  pid_file=$node_dir/kafka.pid
  log_file=$node_dir/kafka.log
  storage_dir=$node_dir/storage
}

# The pid in the selected node's pid file, when that process is alive and is the broker started with
# this node's config (a recycled pid belonging to something else does not count).
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

# The selected node's server.properties.
write_properties() {
  local voters=1@127.0.0.1:$controller_port replicas=1 min_isr=1 voter
  if [ "$brokers" = 3 ]; then
    voters=
    for voter in 1 2 3; do
      voters=$voters${voters:+,}$voter@127.0.0.1:$((controller_port + 2 * (voter - 1)))
    done
    replicas=3 min_isr=2
  fi
  cat >"$properties_file" <<EOF
# Written by scripts/kafka.sh on every start; edits are overwritten.
process.roles=broker,controller
node.id=$node
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$node_client_port,CONTROLLER://127.0.0.1:$node_controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$node_client_port
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$storage_dir
num.partitions=1
default.replication.factor=$replicas
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$replicas
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=$min_isr
share.coordinator.state.topic.replication.factor=$replicas
share.coordinator.state.topic.min.isr=$min_isr
group.initial.rebalance.delay.ms=0
# Topics are created deliberately (the registry creates its own with unlimited retention); a typo in a
# client must not silently create a topic with the broker's default seven-day retention.
auto.create.topics.enable=false
EOF
  if [ "$brokers" = 3 ]; then
    cat >>"$properties_file" <<EOF
# An acknowledged write is on at least two nodes, and only an in-sync replica may lead: losing one
# node loses nothing, losing two stops writes rather than losing some.
unclean.leader.election.enable=false
# A killed node stays in the ISR of every partition it replicates until the controller fences it, a
# session timeout after its last heartbeat, and acks=all writes to all partitions wait for it. With
# Kafka's defaults (9 s, heartbeats every 2 s) a SIGKILL stalled writes for 9-11 s on this two-core
# machine (12 s when the node was the active controller), longer than the registry's 10 s delivery
# timeout; with these, for 3-4.5 s (5.5-7.5 s), and six busy CPU hogs for 90 s fenced no live node.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000
EOF
  fi
}

# Formats the selected node's storage on its first start. A cluster's nodes share one KRaft cluster
# id, drawn when the first of them is formatted and kept in the data dir for the others.
format_storage() {
  [ -f "$storage_dir/meta.properties" ] && return 0
  local cluster_id
  if [ -f "$cluster_id_file" ]; then
    cluster_id=$(cat "$cluster_id_file")
  else
    # The id is the tool's last line: log4j writes a line of its own to stdout before it.
    cluster_id=$("${java_cmd[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    [ "$brokers" = 1 ] || echo "$cluster_id" >"$cluster_id_file"
  fi
  "${java_cmd[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$properties_file" >>"$log_file" 2>&1 || {
    tail -n 20 "$log_file" >&2
    say "${label}formatting KRaft storage in $storage_dir failed"
    exit 1
  }
}

# Starts each given node that does not run yet, all at once (a node only reports started once the
# controller quorum has formed, so the nodes of a cluster cannot be started one after another), then
# waits until each answers and has logged that it started. A start that fails stops the nodes it
# started.
start_nodes() {
  local node pid
  if [ "$brokers" = 3 ] && [ -f "$data_dir/storage/meta.properties" ]; then
    say "$data_dir holds a single broker's storage; give the cluster a KAFKA_DATA_DIR of its own"
    exit 1
  fi
  if [ "$brokers" = 1 ] && [ -f "$brokers_file" ]; then
    say "$data_dir holds a cluster of $(cat "$brokers_file") nodes; give a single broker a KAFKA_DATA_DIR of its own"
    exit 1
  fi
  local to_start=()
  for node in "$@"; do
    select_node "$node"
    if pid=$(running_pid); then
      say "${label}already running (pid $pid, port $node_client_port)"
      continue
    fi
    if port_answers "$node_client_port"; then
      say "${label}port $node_client_port is already taken by another process; set KAFKA_PORT to run beside it"
      exit 1
    fi
    if port_answers "$node_controller_port"; then
      say "${label}port $node_controller_port is already taken by another process; set KAFKA_CONTROLLER_PORT to run beside it"
      exit 1
    fi
    to_start+=("$node")
  done
  [ ${#to_start[@]} -gt 0 ] || return 0
  install_jars
  java_command
  [ "$brokers" = 1 ] || echo "$brokers" >"$brokers_file"
  local -A jvm_pids log_starts
  for node in "${to_start[@]}"; do
    select_node "$node"
    mkdir -p "$node_dir"
    write_properties
    format_storage
    # The log is appended to across starts: readiness is judged on what this start writes.
    touch "$log_file"
    log_starts[$node]=$(($(stat -c %s "$log_file") + 1))
    # nohup execs java, so $! is the JVM's own pid.
    nohup "${java_cmd[@]}" kafka.Kafka "$properties_file" >>"$log_file" 2>&1 </dev/null &
    jvm_pids[$node]=$!
    echo "$!" >"$pid_file"
  done
  local waiting=("${to_start[@]}") deadline=$((SECONDS + ready_timeout_secs))
  while [ ${#waiting[@]} -gt 0 ] && [ $SECONDS -lt $deadline ]; do
    local still=()
    for node in "${waiting[@]}"; do
      select_node "$node"
      if ! kill -0 "${jvm_pids[$node]}" 2>/dev/null; then
        tail -n 40 "$log_file" >&2
        say "${label}the broker exited during start-up (log: $log_file)"
        rm -f "$pid_file"
        [ "$brokers" = 1 ] || stop_nodes TERM "${to_start[@]}"
        exit 1
      fi
      # grep -c reads all its input: with -q, tail could die of SIGPIPE and fail the pipeline.
      if port_answers "$node_client_port" && tail -c +"${log_starts[$node]}" "$log_file" | grep -cF "Kafka Server started" >/dev/null; then
        say "${label}started Kafka $kafka_version (pid ${jvm_pids[$node]}) on 127.0.0.1:$node_client_port, data in $node_dir"
      else
        still+=("$node")
      fi
    done
    waiting=("${still[@]}")
    [ ${#waiting[@]} -eq 0 ] || sleep 0.5
  done
  [ ${#waiting[@]} -gt 0 ] || return 0
  for node in "${waiting[@]}"; do
    select_node "$node"
    tail -n 40 "$log_file" >&2
    say "${label}the broker did not answer on port $node_client_port within ${ready_timeout_secs}s; stopping it (log: $log_file)"
  done
  stop_nodes TERM "${to_start[@]}"
  exit 1
}

# Sends SIG$1 (TERM or KILL) to each given node that runs, all at once, then waits for each to exit.
# A node that ignores SIGTERM for stop_timeout_secs is killed: so ends the last running node of a
# cluster, whose controlled shutdown waits for a controller quorum that cannot form without a second
# node.
stop_nodes() {
  local signal=$1 node pid
  shift
  local nodes=() pids=()
  for node in "$@"; do
    select_node "$node"
    if pid=$(running_pid); then
      kill -"$signal" "$pid"
      nodes+=("$node")
      pids+=("$pid")
    else
      say "${label}not running (no live broker for $node_dir)"
      rm -f "$pid_file"
    fi
  done
  local deadline=$((SECONDS + stop_timeout_secs)) i
  for i in "${!nodes[@]}"; do
    select_node "${nodes[$i]}"
    pid=${pids[$i]}
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "${label}broker (pid $pid) ignored SIGTERM for ${stop_timeout_secs}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$pid_file"
    if [ "$signal" = KILL ]; then
      say "${label}killed (pid $pid)"
    else
      say "${label}stopped (pid $pid)"
    fi
  done
}

status() {
  local node pid code=0
  for node in $(seq "$brokers"); do
    select_node "$node"
    if pid=$(running_pid) && port_answers "$node_client_port"; then
      echo "${label}running (pid $pid) on 127.0.0.1:$node_client_port, data in $node_dir"
    else
      echo "${label}not running (data dir $node_dir)"
      code=3
    fi
  done
  return $code
}

usage() {
  echo "usage: $0 start|stop|status|stop-broker N [--kill]|start-broker N" >&2
  exit 2
}

# The node number argument of stop-broker and start-broker.
node_argument() {
  [[ "${1:-}" =~ ^[1-9]$ ]] && [ "$1" -le "$brokers" ] && return 0
  say "no node '${1:-}' here: the nodes of $data_dir are numbered 1 to $brokers"
  usage
}

case "${1:-}" in
  start) start_nodes $(seq "$brokers") ;;
  stop) stop_nodes TERM $(seq "$brokers") ;;
  status) status ;;
  stop-broker)
    node_argument "${2:-}"
    [ $# -le 3 ] || usage
    case "${3:-}" in
      "") stop_nodes TERM "$2" ;;
      --kill) stop_nodes KILL "$2" ;;
      *) usage ;;
    esac
    ;;
  start-broker)
    node_argument "${2:-}"
    [ $# -eq 2 ] || usage
    start_nodes "$2"
    ;;
  *) usage ;;
esac
