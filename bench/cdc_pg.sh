#!/usr/bin/env bash
# CDC benchmark: pgbench writes to the source at full speed for DURATION
# seconds while (a) PostgreSQL's native logical replication (CREATE
# SUBSCRIPTION) and then (b) Ferry (full-load-and-cdc, 3 workers) replicate
# it to the target, on the same two throwaway servers in one run. After the
# writes stop, a marker row is inserted on the source and the time until it
# is visible on the target is the catch-up time (the same probe for both).
#   [ORDER="ferry native"] bench/cdc_pg.sh [SCALE=10] [DURATION=60] [CLIENTS=4]
# Needs: a release build (cargo build --release --bins), pgbench.
set -euo pipefail
SCALE=${1:-10}; DURATION=${2:-60}; CLIENTS=${3:-4}
PG_OPTS="-c shared_buffers=512MB -c max_wal_senders=20 -c max_replication_slots=20 -c max_logical_replication_workers=8"
. "$(dirname "$0")/lib.sh"
pgbench_source "$SCALE"

run_load() { # prints TPS
  pgbench -n -c "$CLIENTS" -j 2 -T "$DURATION" -h 127.0.0.1 -p "$SRC_PORT" -U postgres bench 2>/dev/null \
    | awk '/^tps/ {print $3; exit}'
}
catch_up() { # db marker-id -> seconds until the marker is on the target
  local t0; t0=$(now)
  src bench -c "INSERT INTO bench_marker VALUES ($2, now())"
  until [ "$(dst "$1" -c "SELECT count(*) FROM bench_marker WHERE id = $2" 2>/dev/null)" = "1" ]; do sleep 0.05; done
  echo "$(now) - $t0" | bc
}

native_run() {
  # (a) native logical replication into db "native" (same initial data).
  dst -c "CREATE DATABASE native"
  pgbench -q -i -s "$SCALE" -h 127.0.0.1 -p "$DST_PORT" -U postgres native >/dev/null 2>&1
  dst native -c "CREATE TABLE bench_marker (id int PRIMARY KEY, at timestamptz)"
  src bench -c "CREATE PUBLICATION native_pub FOR TABLE pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history, bench_marker"
  dst native -c "TRUNCATE pgbench_history" \
    -c "CREATE SUBSCRIPTION native_sub CONNECTION 'host=127.0.0.1 port=$SRC_PORT user=postgres dbname=bench' PUBLICATION native_pub WITH (copy_data = false)"
  sleep 2
  echo "native logical replication: pgbench for ${DURATION}s..."
  TPS_NATIVE=$(run_load)
  T_NATIVE=$(catch_up native 1)
  dst native -c "DROP SUBSCRIPTION native_sub"
  src bench -c "DROP PUBLICATION native_pub"
}
ferry_run() {
  # (b) Ferry into db "ferry": full load of the current source, then CDC.
  dst -c "CREATE DATABASE ferry"
  start_ferry
  "$BIN/ferry" task create cdcbench --type full-load-and-cdc \
    --source "postgres://postgres@127.0.0.1:$SRC_PORT/bench" --target "postgres://postgres@127.0.0.1:$DST_PORT/ferry" >/dev/null
  "$BIN/ferry" task start cdcbench >/dev/null
  "$BIN/ferry" task wait cdcbench --for full-load >/dev/null
  "$BIN/ferry" task wait cdcbench --for caught-up --timeout 600 >/dev/null
  echo "ferry: pgbench for ${DURATION}s..."
  TPS_FERRY=$(run_load)
  T_FERRY=$(catch_up ferry 2)
  "$BIN/ferry" task status cdcbench >"$WORK/status.txt"; sed -n 1,3p "$WORK/status.txt"
  "$BIN/ferry" task delete cdcbench >/dev/null
}
# ORDER rotates the replicators between runs (the second full-loads a
# source that the first one's pgbench writes have grown).
for tool in ${ORDER:-native ferry}; do "${tool}_run"; done

printf "pgbench scale %s, %s clients, %ss of writes (order: %s)\n" "$SCALE" "$CLIENTS" "$DURATION" "${ORDER:-native ferry}"
printf "%-34s source %8.0f tps   catch-up %7.2f s\n" "native logical replication" "$TPS_NATIVE" "$T_NATIVE"
printf "%-34s source %8.0f tps   catch-up %7.2f s\n" "ferry (3 workers)" "$TPS_FERRY" "$T_FERRY"
printf "ferry catch-up / native catch-up: %.2f\n" "$(echo "$T_FERRY / $T_NATIVE" | bc -l)"
