#!/usr/bin/env bash
# Full-load benchmark: Ferry (3 workers) vs pg_dump -Fc | pg_restore vs
# pgcopydb clone, on the same two throwaway PostgreSQL servers in one run.
#   [RUNS=3] [TOOLS="ferry dump pgcopydb"] bench/full_load_pg.sh SCALE   (pgbench scale; 100 = 10M accounts rows)
# Each tool runs RUNS times in rotating order (the first tool after
# pgbench -i pays for the source's cold cache and background writes, so no
# tool may always be first); before each run both servers' dirty pages are
# written out and the source's tables read once. Prints each run, then per
# tool the median wall time with its spread (min-max) and rows/s, and
# Ferry's ratios of medians.
# Needs: a release build (cargo build --release --bins), pgbench, pgcopydb
# (apt-get install pgcopydb).
set -euo pipefail
SCALE=${1:?usage: bench/full_load_pg.sh SCALE}
command -v pgcopydb >/dev/null || { echo "error: pgcopydb not installed (apt-get install pgcopydb)" >&2; exit 1; }
PG_OPTS="-c shared_buffers=1GB -c maintenance_work_mem=512MB -c max_wal_senders=10 -c max_replication_slots=10"
. "$(dirname "$0")/lib.sh"
SRC="postgres://postgres@127.0.0.1:$SRC_PORT/bench"; DST="postgres://postgres@127.0.0.1:$DST_PORT/bench"
src -c "CREATE DATABASE bench"
echo "loading pgbench scale $SCALE into the source..."
pgbench -q -i -s "$SCALE" -h 127.0.0.1 -p "$SRC_PORT" -U postgres bench >/dev/null 2>&1
ROWS=$(src bench -c "SELECT (SELECT count(*) FROM pgbench_accounts)+(SELECT count(*) FROM pgbench_branches)+(SELECT count(*) FROM pgbench_tellers)+(SELECT count(*) FROM pgbench_history)")
# Each run starts with both servers' dirty pages written out (the init's on
# the source, the previous run's on the target), so none pays for another's
# background writes, and with the source's tables read once.
fresh_target() {
  dst -c "DROP DATABASE IF EXISTS bench" -c "CREATE DATABASE bench" -c "CHECKPOINT"
  src -c "CHECKPOINT"
  src bench -c "SELECT count(*) FROM pgbench_accounts" -c "SELECT count(*) FROM pgbench_history" >/dev/null
}
loaded() { # rows the target holds after a run: a run that lost rows does not count
  local n
  n=$(dst bench -c "SELECT (SELECT count(*) FROM pgbench_accounts)+(SELECT count(*) FROM pgbench_branches)+(SELECT count(*) FROM pgbench_tellers)+(SELECT count(*) FROM pgbench_history)")
  [ "$n" = "$ROWS" ] || { echo "error: $1 left $n rows on the target, the source has $ROWS" >&2; exit 1; }
}

ferry_run() {
  fresh_target
  ferry_full_load "$SRC" "$DST"
  loaded ferry
}
dump_run() {
  fresh_target
  T0=$(now)
  pg_dump -Fc -h 127.0.0.1 -p "$SRC_PORT" -U postgres bench | pg_restore -h 127.0.0.1 -p "$DST_PORT" -U postgres -d bench
  T=$(echo "$(now) - $T0" | bc)
  loaded dump
}
pgcopydb_run() {
  fresh_target
  rm -rf "$WORK/pgcopydb"
  T0=$(now)
  pgcopydb clone --source "$SRC" --target "$DST" --dir "$WORK/pgcopydb" --no-owner --no-acl >"$WORK/pgcopydb.log" 2>&1
  T=$(echo "$(now) - $T0" | bc)
  loaded pgcopydb
}
rate() { printf "%.0f" "$(echo "$ROWS / $1" | bc -l)"; }
after_run() { printf "run %d %-9s %9.1f s %12s rows/s\n" "$1" "$2" "$T" "$(rate "$T")"; }
read -r -a TOOLS <<<"${TOOLS:-ferry dump pgcopydb}"
rotate "${TOOLS[@]}"

echo
printf "pgbench scale %s: %s rows, %s runs per tool (rotated)\n" "$SCALE" "$ROWS" "${RUNS:-3}"
for tool in "${TOOLS[@]}"; do
  # shellcheck disable=SC2086
  printf "%-9s wall s median %s   rows/s median %s\n" "$tool" "$(stats ${TIMES[$tool]})" "$(rate "$(median ${TIMES[$tool]})")"
done
for tool in "${TOOLS[@]}"; do
  [ "$tool" = ferry ] || [ -z "${TIMES[ferry]:-}" ] && continue
  printf "ferry time / %s time (medians): %s\n" "$tool" "$(ratio ferry "$tool")"
done
