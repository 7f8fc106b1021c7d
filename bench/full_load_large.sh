#!/usr/bin/env bash
# Large-table full load: one pgbench database at SCALE (1000 = 100M
# pgbench_accounts rows, ~13 GB) loaded by Ferry with 1, 2 and 4 one-slot
# workers and by `pgcopydb clone --split-tables-larger-than 1GB`, on the same
# two throwaway PostgreSQL servers in one run. Ferry cuts the accounts table
# by key ranges (ferryN) or, with `Ferry.SplitLargeTablesBy: block`, by CTID
# block ranges read in one exported snapshot (ferryNblock).
#   [RUNS=1] [TOOLS="ferry1 ferry2 ferry4 pgcopydb"] bench/full_load_large.sh SCALE
#   TOOLS="ferry4 ferry4block ferry2block pgcopydb" ... (any of ferry{1,2,4}[block])
# Runs rotate (lib.sh); before each, both servers' dirty pages are written
# out and the source's tables read once. Prints each run's wall time, rows/s
# and (Ferry) every worker's peak RSS (VmHWM), then medians with spread and
# the ratios to pgcopydb. A run that leaves a row count different from the
# source's fails the script.
# Needs: cargo build --release --bins, pgbench, pgcopydb.
set -euo pipefail
SCALE=${1:?usage: bench/full_load_large.sh SCALE}
command -v pgcopydb >/dev/null || { echo "error: pgcopydb not installed (apt-get install pgcopydb)" >&2; exit 1; }
PG_OPTS="-c shared_buffers=2GB -c maintenance_work_mem=1GB -c max_wal_senders=10 -c max_replication_slots=10"
RUNS=${RUNS:-1}
. "$(dirname "$0")/lib.sh"
SRC="postgres://postgres@127.0.0.1:$SRC_PORT/bench"; DST="postgres://postgres@127.0.0.1:$DST_PORT/bench"
src -c "CREATE DATABASE bench"
echo "pgbench -i -s $SCALE on the source (this takes a while)..."
T0=$(now)
pgbench -q -i -s "$SCALE" -h 127.0.0.1 -p "$SRC_PORT" -U postgres bench >/dev/null 2>&1
printf "source loaded in %.0f s: %s\n" "$(echo "$(now) - $T0" | bc)" "$(src bench -c "SELECT pg_size_pretty(pg_database_size('bench'))")"
ROWS=$(src bench -c "SELECT (SELECT count(*) FROM pgbench_accounts)+(SELECT count(*) FROM pgbench_branches)+(SELECT count(*) FROM pgbench_tellers)+(SELECT count(*) FROM pgbench_history)")
fresh_target() {
  dst -c "DROP DATABASE IF EXISTS bench" -c "CREATE DATABASE bench" -c "CHECKPOINT"
  src -c "CHECKPOINT"
  src bench -c "SELECT count(*) FROM pgbench_accounts" >/dev/null
}
loaded() {
  local n
  n=$(dst bench -c "SELECT (SELECT count(*) FROM pgbench_accounts)+(SELECT count(*) FROM pgbench_branches)+(SELECT count(*) FROM pgbench_tellers)+(SELECT count(*) FROM pgbench_history)")
  [ "$n" = "$ROWS" ] || { echo "error: $1 left $n rows on the target, the source has $ROWS" >&2; exit 1; }
}
RSS=""
ferry_n() { # workers [key|block]
  fresh_target
  echo "{\"Ferry\":{\"SplitLargeTablesBy\":\"${2:-key}\"}}" >"$WORK/settings.json"
  FERRY_WORKERS=$1 start_ferry
  local t0; t0=$(now)
  "$BIN/ferry" task create bench --source "$SRC" --target "$DST" --type full-load \
    --settings "$WORK/settings.json" >/dev/null
  "$BIN/ferry" task start bench >/dev/null
  "$BIN/ferry" task wait bench --for full-load --timeout 7200 >/dev/null
  T=$(echo "$(now) - $t0" | bc)
  SEGMENTS=$("$BIN/ferry" task status bench --output json | python3 -c 'import json,sys; print(sum(t["segments_total"] for t in json.load(sys.stdin)["tables"]))')
  RSS=""
  for pid in "${FERRY_PIDS[@]:1}"; do
    RSS+="$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$pid/status")MiB "
  done
  stop_ferry
  loaded "ferry x$1"
}
ferry1_run() { ferry_n 1; }
ferry2_run() { ferry_n 2; }
ferry4_run() { ferry_n 4; }
ferry1block_run() { ferry_n 1 block; }
ferry2block_run() { ferry_n 2 block; }
ferry4block_run() { ferry_n 4 block; }
pgcopydb_run() {
  fresh_target
  rm -rf "$WORK/pgcopydb"
  local t0; t0=$(now)
  pgcopydb clone --source "$SRC" --target "$DST" --dir "$WORK/pgcopydb" --no-owner --no-acl \
    --split-tables-larger-than 1GB >"$WORK/pgcopydb.log" 2>&1
  T=$(echo "$(now) - $t0" | bc)
  RSS=""
  loaded pgcopydb
}
rate() { printf "%.0f" "$(echo "$ROWS / $1" | bc -l)"; }
after_run() {
  printf "run %d %-10s %9.1f s %12s rows/s" "$1" "$2" "$T" "$(rate "$T")"
  [ -n "$RSS" ] && printf "  %s segments, worker peak RSS %s" "$SEGMENTS" "$RSS"
  echo
}
read -r -a TOOLS <<<"${TOOLS:-ferry1 ferry2 ferry4 pgcopydb}"
rotate "${TOOLS[@]}"

echo
printf "pgbench scale %s: %s rows, %s run(s) per tool (rotated)\n" "$SCALE" "$ROWS" "$RUNS"
for tool in "${TOOLS[@]}"; do
  # shellcheck disable=SC2086
  printf "%-10s wall s median %s   rows/s median %s\n" "$tool" "$(stats ${TIMES[$tool]})" "$(rate "$(median ${TIMES[$tool]})")"
done
[ -n "${TIMES[pgcopydb]:-}" ] && for tool in "${TOOLS[@]}"; do
  [ "$tool" = pgcopydb ] && continue
  printf "%s time / pgcopydb time (medians): %s\n" "$tool" "$(ratio "$tool" pgcopydb)"
done
