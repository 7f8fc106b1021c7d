#!/usr/bin/env bash
# Full-load benchmark: Ferry (3 workers) vs pg_dump -Fc | pg_restore vs
# pgcopydb clone, on the same two throwaway PostgreSQL servers in one run.
#   [ORDER="pgcopydb dump ferry"] bench/full_load_pg.sh SCALE   (pgbench scale; 100 = 10M accounts rows)
# Needs: a release build (cargo build --release --bins), pgbench, pgcopydb
# (apt-get install pgcopydb). Prints wall time, rows/s and Ferry's ratios.
set -euo pipefail
SCALE=${1:?usage: bench/full_load_pg.sh SCALE}
command -v pgcopydb >/dev/null || { echo "error: pgcopydb not installed (apt-get install pgcopydb)" >&2; exit 1; }
PG_OPTS="-c shared_buffers=1GB -c maintenance_work_mem=512MB -c max_wal_senders=10 -c max_replication_slots=10"
. "$(dirname "$0")/lib.sh"
SRC="postgres://postgres@127.0.0.1:$SRC_PORT/bench"; DST="postgres://postgres@127.0.0.1:$DST_PORT/bench"
psql -q -h 127.0.0.1 -p "$SRC_PORT" -U postgres -c "CREATE DATABASE bench"
echo "loading pgbench scale $SCALE into the source..."
pgbench -q -i -s "$SCALE" -h 127.0.0.1 -p "$SRC_PORT" -U postgres bench >/dev/null 2>&1
ROWS=$(psql -tAq -h 127.0.0.1 -p "$SRC_PORT" -U postgres bench -c "SELECT (SELECT count(*) FROM pgbench_accounts)+(SELECT count(*) FROM pgbench_branches)+(SELECT count(*) FROM pgbench_tellers)+(SELECT count(*) FROM pgbench_history)")
# Each tool starts with both servers' dirty pages written out (the init's on
# the source, the previous tool's on the target), so none pays for another's
# background writes.
fresh_target() {
  psql -q -h 127.0.0.1 -p "$DST_PORT" -U postgres -c "DROP DATABASE IF EXISTS bench" -c "CREATE DATABASE bench" -c "CHECKPOINT"
  psql -q -h 127.0.0.1 -p "$SRC_PORT" -U postgres -c "CHECKPOINT"
}

ferry_load() {
  fresh_target
  start_ferry
  T0=$(now)
  "$BIN/ferry" task create bench --source "$SRC" --target "$DST" --type full-load >/dev/null
  "$BIN/ferry" task start bench >/dev/null
  "$BIN/ferry" task wait bench --for full-load >/dev/null
  T_FERRY=$(echo "$(now) - $T0" | bc)
}
dump_load() {
  fresh_target
  T0=$(now)
  pg_dump -Fc -h 127.0.0.1 -p "$SRC_PORT" -U postgres bench | pg_restore -h 127.0.0.1 -p "$DST_PORT" -U postgres -d bench
  T_DUMP=$(echo "$(now) - $T0" | bc)
}
pgcopydb_load() {
  fresh_target
  rm -rf "$WORK/pgcopydb"
  T0=$(now)
  pgcopydb clone --source "$SRC" --target "$DST" --dir "$WORK/pgcopydb" --no-owner --no-acl >"$WORK/pgcopydb.log" 2>&1
  T_COPYDB=$(echo "$(now) - $T0" | bc)
}
# ORDER rotates the tools between runs (the first one after pgbench -i
# pays for the source's cold cache and background writes).
for tool in ${ORDER:-ferry dump pgcopydb}; do "${tool}_load"; done

rate() { printf "%.0f" "$(echo "$ROWS / $1" | bc -l)"; }
printf "pgbench scale %s: %s rows (order: %s)\n" "$SCALE" "$ROWS" "${ORDER:-ferry dump pgcopydb}"
printf "%-28s %9.1f s %12s rows/s\n" "ferry (3 workers)" "$T_FERRY" "$(rate "$T_FERRY")"
printf "%-28s %9.1f s %12s rows/s\n" "pg_dump -Fc | pg_restore" "$T_DUMP" "$(rate "$T_DUMP")"
printf "%-28s %9.1f s %12s rows/s\n" "pgcopydb clone" "$T_COPYDB" "$(rate "$T_COPYDB")"
printf "ferry time / pg_dump time:  %.2f\n" "$(echo "$T_FERRY / $T_DUMP" | bc -l)"
printf "ferry time / pgcopydb time: %.2f\n" "$(echo "$T_FERRY / $T_COPYDB" | bc -l)"
