#!/usr/bin/env bash
# CDC benchmark: pgbench writes to the source at full speed for DURATION
# seconds while (a) PostgreSQL's native logical replication (CREATE
# SUBSCRIPTION) and then (b) Ferry (full-load-and-cdc, 3 workers) replicate
# it to the target, on the same two throwaway servers in one run. After the
# writes stop, a marker row is inserted on the source and the time until it
# is visible on the target is the catch-up time (the same probe for both).
#   bench/cdc_pg.sh [SCALE=10] [DURATION=60] [CLIENTS=4]
# Needs: a release build (cargo build --release --bins), pgbench.
set -euo pipefail
SCALE=${1:-10}; DURATION=${2:-60}; CLIENTS=${3:-4}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${FERRY_BIN:-$ROOT/target/release}
PGBIN=$(pg_config --bindir)
[ -x "$BIN/ferry" ] || { echo "error: $BIN/ferry missing (cargo build --release --bins)" >&2; exit 1; }
WORK=$(mktemp -d /tmp/ferry-cdc-bench-XXXX)
chown postgres:postgres "$WORK" 2>/dev/null || true
AS_PG=""; [ "$(id -u)" = 0 ] && AS_PG="runuser -u postgres --"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SRC_PORT=$(free_port); DST_PORT=$(free_port); FERRY_PORT=$(free_port)
start_pg() { # dir port
  $AS_PG "$PGBIN/initdb" --no-sync -A trust -U postgres -D "$1" >/dev/null
  $AS_PG "$PGBIN/pg_ctl" -D "$1" -l "$1.log" -w start \
    -o "-p $2 -k $WORK -c listen_addresses=127.0.0.1 -c wal_level=logical -c max_wal_size=8GB -c shared_buffers=512MB -c max_wal_senders=20 -c max_replication_slots=20 -c max_logical_replication_workers=8" >/dev/null
}
cleanup() {
  [ -n "${COORD:-}" ] && kill "$COORD" 2>/dev/null || true
  pkill -f "ferry-worker --coordinator http://127.0.0.1:$FERRY_PORT" 2>/dev/null || true
  $AS_PG "$PGBIN/pg_ctl" -D "$WORK/src" -m immediate stop >/dev/null 2>&1 || true
  $AS_PG "$PGBIN/pg_ctl" -D "$WORK/dst" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
start_pg "$WORK/src" "$SRC_PORT"; start_pg "$WORK/dst" "$DST_PORT"
src() { psql -X -tAq -h 127.0.0.1 -p "$SRC_PORT" -U postgres "$@"; }
dst() { psql -X -tAq -h 127.0.0.1 -p "$DST_PORT" -U postgres "$@"; }
now() { date +%s.%N; }
src -c "CREATE DATABASE bench"
echo "pgbench -i -s $SCALE on the source..."
pgbench -q -i -s "$SCALE" -h 127.0.0.1 -p "$SRC_PORT" -U postgres bench >/dev/null 2>&1
src bench -c "CREATE TABLE bench_marker (id int PRIMARY KEY, at timestamptz)"

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

# (b) Ferry into db "ferry": full load of the current source, then CDC.
dst -c "CREATE DATABASE ferry"
"$BIN/ferry" coordinator --data-dir "$WORK/ferry" --listen "127.0.0.1:$FERRY_PORT" 2>"$WORK/coord.log" & COORD=$!
for _ in 1 2 3; do "$BIN/ferry-worker" --coordinator "http://127.0.0.1:$FERRY_PORT" 2>>"$WORK/workers.log" & done
export FERRY_COORDINATOR="http://127.0.0.1:$FERRY_PORT"
for _ in $(seq 50); do "$BIN/ferry" task list >/dev/null 2>&1 && break; sleep 0.2; done
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

printf "pgbench scale %s, %s clients, %ss of writes\n" "$SCALE" "$CLIENTS" "$DURATION"
printf "%-34s source %8.0f tps   catch-up %7.2f s\n" "native logical replication" "$TPS_NATIVE" "$T_NATIVE"
printf "%-34s source %8.0f tps   catch-up %7.2f s\n" "ferry (3 workers)" "$TPS_FERRY" "$T_FERRY"
printf "ferry catch-up / native catch-up: %.2f\n" "$(echo "$T_FERRY / $T_NATIVE" | bc -l)"
