#!/usr/bin/env bash
# CDC benchmark: pgbench writes to the source at full speed for DURATION
# seconds while (a) PostgreSQL's native logical replication (CREATE
# SUBSCRIPTION) and then (b) Ferry (full-load-and-cdc, 3 workers) replicate
# it to the target, on the same two throwaway servers in one run. After the
# writes stop, a marker row is inserted on the source and the time until it
# is visible on the target is the catch-up time (the same probe for both).
# Each replicator runs RUNS times (3) in rotating order, into a fresh target
# database, with both servers checkpointed and the source's tables read once
# before its writes; medians and spread (min-max) are printed.
#   [RUNS=3] bench/cdc_pg.sh [SCALE=10] [DURATION=60] [CLIENTS=4]
# Needs: a release build (cargo build --release --bins), pgbench.
set -euo pipefail
SCALE=${1:-10}; DURATION=${2:-60}; CLIENTS=${3:-4}
PG_OPTS="-c shared_buffers=512MB -c max_wal_senders=20 -c max_replication_slots=20 -c max_logical_replication_workers=8"
. "$(dirname "$0")/lib.sh"
pgbench_source "$SCALE"

MARK=0
declare -A TPS
run_load() { # sets TPS of this run
  src -c "CHECKPOINT"; dst -c "CHECKPOINT"
  src bench -c "SELECT count(*) FROM pgbench_accounts" -c "SELECT count(*) FROM pgbench_history" >/dev/null
  RUN_TPS=$(pgbench -n -c "$CLIENTS" -j 2 -T "$DURATION" -h 127.0.0.1 -p "$SRC_PORT" -U postgres bench 2>/dev/null \
    | awk '/^tps/ {print $3; exit}')
}
catch_up() { # db -> seconds until marker MARK (new) is on the target
  local t0; t0=$(now)
  src bench -c "INSERT INTO bench_marker VALUES ($MARK, now())"
  until [ "$(dst "$1" -c "SELECT count(*) FROM bench_marker WHERE id = $MARK" 2>/dev/null)" = "1" ]; do sleep 0.05; done
  echo "$(now) - $t0" | bc
}

native_run() {
  # Native logical replication into db "native" (same initial data).
  dst -c "DROP DATABASE IF EXISTS native" -c "CREATE DATABASE native"
  pgbench -q -i -s "$SCALE" -h 127.0.0.1 -p "$DST_PORT" -U postgres native >/dev/null 2>&1
  dst native -c "CREATE TABLE bench_marker (id int PRIMARY KEY, at timestamptz)"
  src bench -c "CREATE PUBLICATION native_pub FOR TABLE pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history, bench_marker"
  dst native -c "TRUNCATE pgbench_history" \
    -c "CREATE SUBSCRIPTION native_sub CONNECTION 'host=127.0.0.1 port=$SRC_PORT user=postgres dbname=bench' PUBLICATION native_pub WITH (copy_data = false)"
  sleep 2
  run_load
  MARK=$((MARK + 1)); T=$(catch_up native)
  dst native -c "DROP SUBSCRIPTION native_sub"
  src bench -c "DROP PUBLICATION native_pub"
}
ferry_run() {
  # Ferry into db "ferry": full load of the current source, then CDC.
  dst -c "DROP DATABASE IF EXISTS ferry" -c "CREATE DATABASE ferry"
  start_ferry
  "$BIN/ferry" task create cdcbench --type full-load-and-cdc \
    --source "postgres://postgres@127.0.0.1:$SRC_PORT/bench" --target "postgres://postgres@127.0.0.1:$DST_PORT/ferry" >/dev/null
  "$BIN/ferry" task start cdcbench >/dev/null
  "$BIN/ferry" task wait cdcbench --for full-load >/dev/null
  "$BIN/ferry" task wait cdcbench --for caught-up --timeout 600 >/dev/null
  run_load
  MARK=$((MARK + 1)); T=$(catch_up ferry)
  "$BIN/ferry" task delete cdcbench >/dev/null
  stop_ferry
}
after_run() {
  printf "run %d %-7s source %8.0f tps   catch-up %7.2f s\n" "$1" "$2" "$RUN_TPS" "$T"
  TPS[$2]+="$RUN_TPS "
}
rotate native ferry

echo
printf "pgbench scale %s, %s clients, %ss of writes, %s runs per replicator (rotated)\n" "$SCALE" "$CLIENTS" "$DURATION" "${RUNS:-3}"
for tool in native ferry; do
  # shellcheck disable=SC2086
  printf "%-7s source tps median %.0f   catch-up s median %s\n" "$tool" "$(median ${TPS[$tool]})" "$(stats ${TIMES[$tool]})"
done
printf "ferry catch-up / native catch-up (medians): %s\n" "$(ratio ferry native)"
