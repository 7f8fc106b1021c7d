#!/usr/bin/env bash
# Full-load benchmark: Ferry (3 workers) vs pg_dump -Fc | pg_restore vs
# pgcopydb clone, on the same two throwaway PostgreSQL servers in one run.
#   bench/full_load_pg.sh SCALE        (pgbench scale; 100 = 10M accounts rows)
# Needs: a release build (cargo build --release --bins), pgbench, pgcopydb
# (apt-get install pgcopydb). Prints wall time, rows/s and Ferry's ratios.
set -euo pipefail
SCALE=${1:?usage: bench/full_load_pg.sh SCALE}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${FERRY_BIN:-$ROOT/target/release}
PGBIN=$(pg_config --bindir)
command -v pgcopydb >/dev/null || { echo "error: pgcopydb not installed (apt-get install pgcopydb)" >&2; exit 1; }
[ -x "$BIN/ferry" ] || { echo "error: $BIN/ferry missing (cargo build --release --bins)" >&2; exit 1; }
WORK=$(mktemp -d /tmp/ferry-bench-XXXX)
chown postgres:postgres "$WORK" 2>/dev/null || true
AS_PG=""; [ "$(id -u)" = 0 ] && AS_PG="runuser -u postgres --"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SRC_PORT=$(free_port); DST_PORT=$(free_port); FERRY_PORT=$(free_port)
start_pg() { # dir port
  $AS_PG "$PGBIN/initdb" --no-sync -A trust -U postgres -D "$1" >/dev/null
  $AS_PG "$PGBIN/pg_ctl" -D "$1" -l "$1.log" -w start \
    -o "-p $2 -k $WORK -c listen_addresses=127.0.0.1 -c wal_level=logical -c max_wal_size=8GB -c shared_buffers=1GB -c maintenance_work_mem=512MB -c max_wal_senders=10 -c max_replication_slots=10" >/dev/null
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
SRC="postgres://postgres@127.0.0.1:$SRC_PORT/bench"; DST="postgres://postgres@127.0.0.1:$DST_PORT/bench"
psql -q -h 127.0.0.1 -p "$SRC_PORT" -U postgres -c "CREATE DATABASE bench"
echo "loading pgbench scale $SCALE into the source..."
pgbench -q -i -s "$SCALE" -h 127.0.0.1 -p "$SRC_PORT" -U postgres bench >/dev/null 2>&1
ROWS=$(psql -tAq -h 127.0.0.1 -p "$SRC_PORT" -U postgres bench -c "SELECT (SELECT count(*) FROM pgbench_accounts)+(SELECT count(*) FROM pgbench_branches)+(SELECT count(*) FROM pgbench_tellers)+(SELECT count(*) FROM pgbench_history)")
fresh_target() {
  psql -q -h 127.0.0.1 -p "$DST_PORT" -U postgres -c "DROP DATABASE IF EXISTS bench" -c "CREATE DATABASE bench"
}
now() { date +%s.%N; }

fresh_target
"$BIN/ferry" coordinator --data-dir "$WORK/ferry" --listen "127.0.0.1:$FERRY_PORT" 2>"$WORK/coord.log" & COORD=$!
for _ in 1 2 3; do "$BIN/ferry-worker" --coordinator "http://127.0.0.1:$FERRY_PORT" 2>>"$WORK/workers.log" & done
export FERRY_COORDINATOR="http://127.0.0.1:$FERRY_PORT"
for _ in $(seq 50); do "$BIN/ferry" task list >/dev/null 2>&1 && break; sleep 0.2; done
T0=$(now)
"$BIN/ferry" task create bench --source "$SRC" --target "$DST" --type full-load >/dev/null
"$BIN/ferry" task start bench >/dev/null
"$BIN/ferry" task wait bench --for full-load >/dev/null
T_FERRY=$(echo "$(now) - $T0" | bc)

fresh_target
T0=$(now)
pg_dump -Fc -h 127.0.0.1 -p "$SRC_PORT" -U postgres bench | pg_restore -h 127.0.0.1 -p "$DST_PORT" -U postgres -d bench
T_DUMP=$(echo "$(now) - $T0" | bc)

fresh_target
T0=$(now)
pgcopydb clone --source "$SRC" --target "$DST" --dir "$WORK/pgcopydb" --no-owner --no-acl >"$WORK/pgcopydb.log" 2>&1
T_COPYDB=$(echo "$(now) - $T0" | bc)

rate() { printf "%.0f" "$(echo "$ROWS / $1" | bc -l)"; }
printf "pgbench scale %s: %s rows\n" "$SCALE" "$ROWS"
printf "%-28s %9.1f s %12s rows/s\n" "ferry (3 workers)" "$T_FERRY" "$(rate "$T_FERRY")"
printf "%-28s %9.1f s %12s rows/s\n" "pg_dump -Fc | pg_restore" "$T_DUMP" "$(rate "$T_DUMP")"
printf "%-28s %9.1f s %12s rows/s\n" "pgcopydb clone" "$T_COPYDB" "$(rate "$T_COPYDB")"
printf "ferry time / pg_dump time:  %.2f\n" "$(echo "$T_FERRY / $T_DUMP" | bc -l)"
printf "ferry time / pgcopydb time: %.2f\n" "$(echo "$T_FERRY / $T_COPYDB" | bc -l)"
