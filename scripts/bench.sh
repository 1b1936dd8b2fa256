#!/usr/bin/env bash
# The benchmark of issue 6, in one run: builds in release mode, starts a Kafka broker of its own
# (scripts/kafka.sh, separate ports and data dir), loads BENCH_CUSTOMERS generated customers over
# HTTP, and measures every scenario (creates, finds, gets, updates, rebuild) side by side with its
# ceiling (Kafka's, and the HTTP stack's: GET /healthz) and with PostgreSQL, then the latency of
# each in an open loop at 25, 50 and 80 % of its peak. PostgreSQL is measured twice: by pgbench
# (its binary protocol, no HTTP) and through the HTTP opponent (examples/opponent: a plain axum
# service on it, the same routes and JSON, driven by the same load generator, closed and open
# loop). Prints the Markdown tables and writes the figures to target/bench/results.json.
#
#   BENCH_CUSTOMERS     customers to load               (default 1000000; CI-sized smoke: 10000)
#   BENCH_SECONDS       duration of each query scenario (default 10)
#   BENCH_WORK_DIR      scratch space                   (default a new temp dir, removed at the end)
#   BENCH_REBUILD_ONLY  1: only the rebuild, of events the load generator writes straight to Kafka
#                       (no HTTP), with its peak RSS and disk per customer (e.g. at 10,000,000),
#                       and a new replica's time to ready from a snapshot against from offset 0
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

customers=${BENCH_CUSTOMERS:-1000000}
seconds=${BENCH_SECONDS:-10}
work=${BENCH_WORK_DIR:-$(mktemp -d /tmp/customer-registry-bench.XXXXXX)}
mkdir -p "$work" target/bench
results=$work/results
mkdir -p "$results"

export KAFKA_PORT=${BENCH_KAFKA_PORT:-29092}
export KAFKA_CONTROLLER_PORT=${BENCH_KAFKA_CONTROLLER_PORT:-29093}
export KAFKA_DATA_DIR=$work/kafka
export KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms512m -Xmx2g}
bootstrap=127.0.0.1:$KAFKA_PORT
topic=bench.customers
ceiling_topic=bench.ceiling
http_port=${BENCH_HTTP_PORT:-28080}
url=http://127.0.0.1:$http_port
pg_port=${BENCH_PG_PORT:-25432}
registry_pid=""
opponent_pid=""

say() { printf 'bench: %s\n' "$*" >&2; }

# PostgreSQL refuses to run as root: as root, its commands run as the postgres user.
pg_user=$(id -un)
run_pg() { if [ "$pg_user" = root ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

cleanup() {
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null && wait "$registry_pid" 2>/dev/null || true
  [ -n "$opponent_pid" ] && kill "$opponent_pid" 2>/dev/null && wait "$opponent_pid" 2>/dev/null || true
  if [ -x "${pg_bin:-}/pg_ctl" ] && [ -d "$work/pg" ]; then
    run_pg "$pg_bin/pg_ctl" -D "$work/pg" -m fast stop >/dev/null 2>&1 || true
  fi
  scripts/kafka.sh stop >/dev/null 2>&1 || true
  if [ -z "${BENCH_WORK_DIR:-}" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT

# Runs a command and writes its peak RSS (KiB) to the file named first.
with_peak_rss() {
  local out=$1
  shift
  python3 - "$out" "$@" <<'PY'
import resource, subprocess, sys
out, command = sys.argv[1], sys.argv[2:]
code = subprocess.run(command).returncode
with open(out, "w") as handle:
    handle.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
PY
}

if [ "${BENCH_POSTGRES_ONLY:-0}" = 1 ]; then
  # Resume a run whose PostgreSQL phase failed: reuse BENCH_WORK_DIR's export and results.
  [ -f "$work/export.csv" ] || { say "BENCH_POSTGRES_ONLY needs BENCH_WORK_DIR from an earlier run"; exit 1; }
fi

say "building (release)"
cargo build --locked --release --bin customer-registry --example loadgen --example opponent >&2
target_dir=${CARGO_TARGET_DIR:-$repo/target}
registry=$target_dir/release/customer-registry
loadgen=$target_dir/release/examples/loadgen
opponent=$target_dir/release/examples/opponent

# A new replica's time to ready (its /readyz 200): started on an empty data dir with the
# arguments given (`--restore-from FILE`, or none to replay the log from offset 0), timed from its
# start; written to results/replica-NAME.json.
replica_time_to_ready() {
  local name=$1
  shift
  local port=$((http_port + 1)) log=$work/replica-$name.log data=$work/replica-$name
  local started ready pid
  started=$(date +%s.%N)
  "$registry" serve --listen "127.0.0.1:$port" --kafka-bootstrap "$bootstrap" --topic "$topic" \
    --data-dir "$data" --no-auth "$@" >"$log" 2>&1 &
  pid=$!
  until curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$log" >&2; say "the new replica ($name) exited"; exit 1; }
    sleep 0.05
  done
  ready=$(date +%s.%N)
  kill "$pid"
  wait "$pid" || true
  printf '{"seconds": %s, "dataBytes": %s}\n' "$(python3 -c "print(round($ready - $started, 3))")" \
    "$(du -sb "$data" | cut -f1)" >"$results/replica-$name.json"
  rm -rf "$data"
}

# A snapshot of the read model in $1 (a running serve's, through its control socket, or a stopped
# one's), then a new replica from it against a new replica from offset 0.
new_replicas() {
  say "snapshot: the read model of $1"
  "$registry" snapshot --data-dir "$1" --out "$work/replica.snapshot" --json >"$results/snapshot.json"
  say "new replica: from the snapshot, then from offset 0"
  replica_time_to_ready from-snapshot --restore-from "$work/replica.snapshot"
  replica_time_to_ready from-zero
  rm -f "$work/replica.snapshot"
}

if [ "${BENCH_REBUILD_ONLY:-0}" = 1 ]; then
  scripts/kafka.sh start >&2
  say "produce: $customers customers' events straight to Kafka, 64 clients"
  "$loadgen" produce --bootstrap "$bootstrap" --topic "$topic" --customers "$customers" \
    --concurrency 64 >"$results/produce.json"
  say "rebuild: project every event from offset 0 into an empty data dir"
  with_peak_rss "$results/rebuild-rss-kib" "$registry" rebuild --kafka-bootstrap "$bootstrap" \
    --topic "$topic" --data-dir "$work/rebuilt" --json >"$results/rebuild.json"
  say "ceiling: a bare consumer reading the same topic"
  "$loadgen" consume --bootstrap "$bootstrap" --topic "$topic" >"$results/consume.json"
  printf '{"peakRssKib": %s, "dataBytes": %s}\n' "$(cat "$results/rebuild-rss-kib")" \
    "$(du -sb "$work/rebuilt" | cut -f1)" >"$results/rebuild-footprint.json"
  # The load generator writes plain events (it holds no KEK), so the replicas read them so.
  REGISTRY_NO_ENCRYPTION=1 new_replicas "$work/rebuilt"
  python3 "$repo/scripts/bench_report.py" --rebuild-only "$results" "$customers" >target/bench/results.md
  cat target/bench/results.md
  exit 0
fi

# Open loop: each read at a constant arrival rate of 25, 50 and 80 % of the peak its closed-loop
# run measured (results/PREFIXquery-KIND.json), latency counted from each request's intended start
# (no coordinated omission). $1: the service's URL; $2: the results' prefix ("" for the registry,
# "opponent-" for the HTTP opponent).
share_of() { python3 -c "import json; print(max(1.0, json.load(open('$1'))['perSecond'] * $2 / 100))"; }
open_reads() {
  local kinds="get email lastname citystate"
  [ -z "$2" ] && kinds="$kinds healthz"
  for kind in $kinds; do
    for share in 25 50 80; do
      rate=$(share_of "$results/$2query-$kind.json" "$share")
      say "open loop: ${2}$kind at $share % of its peak (${rate%.*}/s), ${seconds}s"
      "$loadgen" open --url "$1" --export "$work/export.jsonl" --kind "$kind" --rate "$rate" \
        --seconds "$seconds" >"$results/${2}open-$kind-$share.json"
    done
  done
}

# Open loop for writes, run last, so that the customers they add change no figure before them:
# creates (new customers, numbered on from $3) at shares of the create peak, unconditional
# updates at shares of theirs. $1, $2: as open_reads'.
open_writes() {
  local first=$3
  for share in 25 50 80; do
    rate=$(share_of "$results/${2}create.json" "$share")
    say "open loop: ${2}create at $share % of its peak (${rate%.*}/s), ${seconds}s"
    "$loadgen" open --url "$1" --kind create --first "$first" --rate "$rate" --seconds "$seconds" \
      >"$results/${2}open-create-$share.json"
    first=$(python3 -c "import json; print($first + json.load(open('$results/${2}open-create-$share.json'))['sent'])")
    rate=$(share_of "$results/${2}update-unconditional.json" "$share")
    say "open loop: ${2}update at $share % of its peak (${rate%.*}/s), ${seconds}s"
    # A seed per share: the same seed would send the same updates again, answered as no-ops.
    "$loadgen" open --url "$1" --export "$work/export.jsonl" --kind update --rate "$rate" \
      --seed $((share * 100000000)) --seconds "$seconds" >"$results/${2}open-update-$share.json"
  done
}

# The admin API key of the registry and of the HTTP opponent (which reads the same key file).
api_keys=$work/api-keys.jsonl
if [ "${BENCH_POSTGRES_ONLY:-0}" = 1 ]; then
  export LOADGEN_API_KEY
  LOADGEN_API_KEY=$(cat "$work/api-key")
fi

if [ "${BENCH_POSTGRES_ONLY:-0}" != 1 ]; then
# A full run starts from an empty log and read model, even in a kept BENCH_WORK_DIR: an earlier
# run's events are sealed under a KEK this run replaces, and would stall every replay.
rm -rf "$work/kafka" "$work/data" "$work/rebuilt" "$work"/replica-*
scripts/kafka.sh start >&2

# Requests carry an admin API key, as production's would (a key lookup costs a SHA-256).
# Events are sealed as in production (one KEK file for the registry, its replicas and the rebuild).
export REGISTRY_KEK_FILE=$work/keks.jsonl
rm -f "$REGISTRY_KEK_FILE"
"$registry" kek add --file "$REGISTRY_KEK_FILE" >/dev/null
rm -f "$api_keys"
"$registry" keys add --file "$api_keys" --name bench --admin | tail -n 1 >"$work/api-key"
export LOADGEN_API_KEY
LOADGEN_API_KEY=$(cat "$work/api-key")

start_registry() {
  "$registry" serve --listen "127.0.0.1:$http_port" --kafka-bootstrap "$bootstrap" --topic "$topic" \
    --data-dir "$1" --api-keys "$api_keys" >"$work/registry.log" 2>&1 &
  registry_pid=$!
  for _ in $(seq 1 600); do
    grep -q "listening on" "$work/registry.log" && return 0
    kill -0 "$registry_pid" 2>/dev/null || { tail -n 20 "$work/registry.log" >&2; exit 1; }
    sleep 0.1
  done
  say "the registry did not start"; exit 1
}

stop_registry() {
  kill "$registry_pid"
  wait "$registry_pid" || true
  registry_pid=""
}

say "create: $customers customers over HTTP, 64 clients"
start_registry "$work/data"
"$loadgen" create --url "$url" --customers "$customers" --concurrency 64 >"$results/create.json"

say "ceiling: the same events produced straight to Kafka"
"$loadgen" produce --bootstrap "$bootstrap" --topic "$ceiling_topic" --customers "$customers" \
  --concurrency 64 >"$results/produce.json"

say "footprint and export"
sleep 2
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$registry_pid/status")
"$registry" export --kafka-bootstrap "$bootstrap" --topic "$topic" --output "$work/export.jsonl" >&2
"$registry" export --kafka-bootstrap "$bootstrap" --topic "$topic" --format csv --output "$work/export.csv" >&2

for kind in lastname email citystate get code; do
  say "query: $kind, 32 clients, ${seconds}s (after 3 s of warm-up)"
  "$loadgen" query --url "$url" --export "$work/export.jsonl" --kind "$kind" --concurrency 32 \
    --seconds "$seconds" >"$results/query-$kind.json"
done
say "ceiling: GET /healthz (the HTTP stack's cheapest answer), 32 clients, ${seconds}s"
"$loadgen" query --url "$url" --kind healthz --concurrency 32 --seconds "$seconds" \
  >"$results/query-healthz.json"
open_reads "$url" ""
for mode in unconditional conditional keyed; do
  say "update: $mode, 64 clients, ${seconds}s, random customers"
  "$loadgen" update --url "$url" --export "$work/export.jsonl" --mode "$mode" --concurrency 64 \
    --seconds "$seconds" >"$results/update-$mode.json"
done
new_replicas "$work/data"
stop_registry
data_bytes=$(du -sb "$work/data" | cut -f1)
raw_bytes=$(wc -c <"$work/export.jsonl")
printf '{"rssKib": %s, "dataBytes": %s, "rawJsonBytes": %s}\n' "$rss_kib" "$data_bytes" "$raw_bytes" \
  >"$results/footprint.json"

say "rebuild: project every event from offset 0 into an empty data dir"
with_peak_rss "$results/rebuild-rss-kib" "$registry" rebuild --kafka-bootstrap "$bootstrap" \
  --topic "$topic" --data-dir "$work/rebuilt" --json >"$results/rebuild.json"
printf '{"peakRssKib": %s, "dataBytes": %s}\n' "$(cat "$results/rebuild-rss-kib")" \
  "$(du -sb "$work/rebuilt" | cut -f1)" >"$results/rebuild-footprint.json"
say "ceiling: a bare consumer reading the same topic"
"$loadgen" consume --bootstrap "$bootstrap" --topic "$topic" >"$results/consume.json"

start_registry "$work/data"
for _ in $(seq 1 600); do curl -fsS "$url/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
open_writes "$url" "" "$customers"
stop_registry

fi

say "PostgreSQL: the same finds on the same data"
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pg_bin" ]; then
  apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
rm -rf "$work/pg" && mkdir -p "$work/pg" && chmod 777 "$work" "$work/pg"
[ "$pg_user" = root ] && chown postgres "$work/pg"
run_pg "$pg_bin/initdb" -D "$work/pg" -A trust -U bench >/dev/null
run_pg "$pg_bin/pg_ctl" -D "$work/pg" -o "-p $pg_port -k /tmp -c shared_buffers=512MB" -l "$work/pg.log" -w start >&2
psql_bench() { psql -h /tmp -p "$pg_port" -U bench -d postgres -v ON_ERROR_STOP=1 -q "$@"; }
"$loadgen" params --export "$work/export.jsonl" >"$work/params.tsv"
chmod 644 "$work/export.csv" "$work/params.tsv"
psql_bench <<SQL >&2
CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE FUNCTION f_unaccent(text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
  AS \$\$ SELECT public.unaccent('public.unaccent', \$1) \$\$;
CREATE TABLE customers (
  id uuid PRIMARY KEY, code text NOT NULL, account_id int NOT NULL, first_name text, last_name text,
  organization_name text, email text, phone text, street text, city text, state text,
  zip_code text, country_code text, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
  version bigint NOT NULL);
\copy customers FROM '$work/export.csv' WITH (FORMAT csv, HEADER true)
CREATE UNIQUE INDEX ON customers (account_id, code);
CREATE INDEX ON customers (account_id, lower(f_unaccent(last_name)) text_pattern_ops);
CREATE INDEX ON customers (account_id, lower(email) text_pattern_ops);
CREATE INDEX ON customers (account_id, lower(f_unaccent(city)) text_pattern_ops, upper(state));
CREATE INDEX ON customers (account_id, created_at, id);
CREATE TABLE bench_params (n int PRIMARY KEY, account int, last3 text, email text, city text, state text, id uuid, code text);
\copy bench_params FROM '$work/params.tsv'
-- One parameter table per query, numbered from 1, holding only customers that have the fields it
-- filters on (the load generator picks its customers the same way). A prefix is the range
-- [lo, lo || U+10FFFF) under text_pattern_ops: what PostgreSQL derives from LIKE 'abc%' with a
-- constant pattern, and here usable with parameters in a prepared, generic plan too.
CREATE TABLE p_lastname AS SELECT row_number() OVER (ORDER BY n)::int AS n, account,
  lower(f_unaccent(last3)) AS lo, lower(f_unaccent(last3)) || chr(1114111) AS hi
  FROM bench_params WHERE last3 IS NOT NULL;
CREATE TABLE p_email AS SELECT row_number() OVER (ORDER BY n)::int AS n, account,
  lower(email) AS lo, lower(email) || chr(1114111) AS hi
  FROM bench_params WHERE email IS NOT NULL;
CREATE TABLE p_citystate AS SELECT row_number() OVER (ORDER BY n)::int AS n, account,
  lower(f_unaccent(city)) AS lo, lower(f_unaccent(city)) || chr(1114111) AS hi, upper(state) AS state
  FROM bench_params WHERE city IS NOT NULL AND state IS NOT NULL;
CREATE TABLE p_get AS SELECT n, id FROM bench_params;
CREATE TABLE p_code AS SELECT n, account, code FROM bench_params;
ALTER TABLE p_lastname ADD PRIMARY KEY (n);
ALTER TABLE p_email ADD PRIMARY KEY (n);
ALTER TABLE p_citystate ADD PRIMARY KEY (n);
ALTER TABLE p_get ADD PRIMARY KEY (n);
ALTER TABLE p_code ADD PRIMARY KEY (n);
VACUUM ANALYZE;
SQL
pg_rows() { psql_bench -t -A -c "SELECT count(*) FROM p_$1"; }
cat >"$work/lastname.sql" <<SQL
\set n random(1, $(pg_rows lastname))
SELECT c.* FROM p_lastname p JOIN customers c ON c.account_id = p.account
 AND lower(f_unaccent(c.last_name)) ~>=~ p.lo AND lower(f_unaccent(c.last_name)) ~<~ p.hi
 WHERE p.n = :n ORDER BY c.created_at, c.id LIMIT 100;
SQL
cat >"$work/email.sql" <<SQL
\set n random(1, $(pg_rows email))
SELECT c.* FROM p_email p JOIN customers c ON c.account_id = p.account
 AND lower(c.email) ~>=~ p.lo AND lower(c.email) ~<~ p.hi
 WHERE p.n = :n ORDER BY c.created_at, c.id LIMIT 100;
SQL
cat >"$work/citystate.sql" <<SQL
\set n random(1, $(pg_rows citystate))
SELECT c.* FROM p_citystate p JOIN customers c ON c.account_id = p.account
 AND lower(f_unaccent(c.city)) ~>=~ p.lo AND lower(f_unaccent(c.city)) ~<~ p.hi
 AND upper(c.state) = p.state
 WHERE p.n = :n ORDER BY c.created_at, c.id LIMIT 100;
SQL
cat >"$work/get.sql" <<SQL
\set n random(1, $(pg_rows get))
SELECT c.* FROM p_get p JOIN customers c ON c.id = p.id WHERE p.n = :n;
SQL
# find by code: the (account_id, code) unique index.
cat >"$work/code.sql" <<SQL
\set n random(1, $(pg_rows code))
SELECT c.* FROM p_code p JOIN customers c ON c.account_id = p.account AND c.code = p.code
 WHERE p.n = :n;
SQL
# The update scenario's counterpart: a new email and phone for a random customer, its version and
# updatedAt moved on, the whole row returned (PostgreSQL's defaults: every commit flushed to disk).
cat >"$work/update.sql" <<SQL
\set n random(1, $(pg_rows get))
\set number random(0, 9999999)
UPDATE customers c SET email = 'updated' || :number || '@example.com',
 phone = '+1 (646) ' || lpad((:number / 10000 % 1000)::text, 3, '0') || '-' || lpad((:number % 10000)::text, 4, '0'),
 version = c.version + 1, updated_at = now()
 FROM p_get p WHERE p.n = :n AND c.id = p.id RETURNING c.*;
SQL
# The plans, kept with the results: every find must use its (account_id, ...) index.
for kind in lastname email citystate get code; do
  sed -e 's/^\\set n .*//' -e 's/:n/1/' "$work/$kind.sql" | sed '1s/^/EXPLAIN ANALYZE /; /^$/d' \
    | psql_bench >"$results/pg-plan-$kind.txt"
done
for kind in lastname email citystate get code; do
  say "pgbench: $kind, 32 clients, ${seconds}s (after 3 s of warm-up, as the load generator's)"
  pgbench -h /tmp -p "$pg_port" -U bench -n -M prepared -c 32 -j 2 -T 3 -f "$work/$kind.sql" \
    postgres >/dev/null 2>&1
  pgbench -h /tmp -p "$pg_port" -U bench -n -M prepared -c 32 -j 2 -T "$seconds" \
    -f "$work/$kind.sql" postgres \
    >"$work/pgbench-$kind.txt" 2>&1
  tps=$(awk '/^tps = / {print $3; exit}' "$work/pgbench-$kind.txt")
  latency=$(awk '/^latency average = / {print $4; exit}' "$work/pgbench-$kind.txt")
  printf '{"perSecond": %s, "latencyAverageMs": %s}\n' "${tps:-0}" "${latency:-0}" >"$results/pg-$kind.json"
done
say "pgbench: update, 64 clients, ${seconds}s"
pgbench -h /tmp -p "$pg_port" -U bench -n -M prepared -c 64 -j 2 -T "$seconds" \
  -f "$work/update.sql" postgres >"$work/pgbench-update.txt" 2>&1
tps=$(awk '/^tps = / {print $3; exit}' "$work/pgbench-update.txt")
latency=$(awk '/^latency average = / {print $4; exit}' "$work/pgbench-update.txt")
printf '{"perSecond": %s, "latencyAverageMs": %s}\n' "${tps:-0}" "${latency:-0}" >"$results/pg-update.json"

say "HTTP opponent: a plain axum service on the same PostgreSQL (examples/opponent)"
opponent_url=http://127.0.0.1:$((http_port + 2))
"$opponent" --listen "127.0.0.1:$((http_port + 2))" --api-keys "$api_keys" \
  --database "host=/tmp port=$pg_port user=bench dbname=postgres" >"$work/opponent.log" 2>&1 &
opponent_pid=$!
until curl -fsS "$opponent_url/healthz" >/dev/null 2>&1; do
  kill -0 "$opponent_pid" 2>/dev/null || { tail -n 20 "$work/opponent.log" >&2; say "the opponent exited"; exit 1; }
  sleep 0.1
done
for kind in lastname email citystate get code; do
  say "opponent query: $kind, 32 clients, ${seconds}s (after 3 s of warm-up)"
  "$loadgen" query --url "$opponent_url" --export "$work/export.jsonl" --kind "$kind" \
    --concurrency 32 --seconds "$seconds" >"$results/opponent-query-$kind.json"
done
open_reads "$opponent_url" opponent-
say "opponent update: unconditional, 64 clients, ${seconds}s, random customers"
"$loadgen" update --url "$opponent_url" --export "$work/export.jsonl" --mode unconditional \
  --concurrency 64 --seconds "$seconds" >"$results/opponent-update-unconditional.json"
# Creates of customers the registry's open loop did not reach (numbered from twice the load), as
# many as a tenth of the load: a table that already holds the load's customers and indexes.
say "opponent create: $((customers / 10)) new customers, 64 clients"
"$loadgen" create --url "$opponent_url" --first $((customers * 2)) --customers $((customers / 10)) \
  --concurrency 64 >"$results/opponent-create.json"
open_writes "$opponent_url" opponent- $((customers * 2 + customers / 10))
kill "$opponent_pid"
wait "$opponent_pid" || true
opponent_pid=""

python3 "$repo/scripts/bench_report.py" "$results" "$customers" "$seconds" >target/bench/results.md
cat target/bench/results.md
