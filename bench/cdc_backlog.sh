#!/usr/bin/env bash
# CDC backlog benchmark: how fast each replicator drains changes that piled
# up while it was paused — the figure that decides whether a migration under
# heavy writes can ever cut over.
#
# For each tool, on the same two throwaway PostgreSQL servers:
#   native  PostgreSQL logical replication (CREATE SUBSCRIPTION, copy_data
#           off, into a pgbench -i copy); paused with ALTER SUBSCRIPTION
#           DISABLE, resumed with ENABLE.
#   ferry   full-load-and-cdc with FERRY_WORKERS workers (3); paused with
#           `ferry task stop`, resumed with `ferry task start`.
#   ferry_in_order  the same with FERRY_APPLY_IN_ORDER=1 (every change
#           applied in source order, no set-based batches: the baseline).
# TOOLS="native ferry" picks the tools.
# Paused, pgbench writes for SECS seconds; then a marker row is inserted and
# the tool resumed; the drain time is from resuming until the marker is on
# the target. Before each tool the servers are warmed the same way
# (CHECKPOINT on both, the source's tables read once). The tools run RUNS
# times (3) in rotating order; medians and spread (min-max) are printed.
#   [RUNS=3] [SCALE=10] [CLIENTS=4] bench/cdc_backlog.sh [SECS=60]
# PROFILE=dir records each drain with `perf record -a` and writes where the
# CPU went (by process and library, by symbol) into dir.
# Needs: a release build (cargo build --release --bins), pgbench.
set -euo pipefail
SECS=${1:-60}; RUNS=${RUNS:-3}; SCALE=${SCALE:-10}; CLIENTS=${CLIENTS:-4}
PG_OPTS="-c shared_buffers=512MB -c max_wal_senders=20 -c max_replication_slots=20 -c max_logical_replication_workers=8"
. "$(dirname "$0")/lib.sh"
pgbench_source "$SCALE"
MARK=0

paused() { # until no replication slot on the source is streaming
  until [ "$(src -c "SELECT count(*) FROM pg_replication_slots WHERE active")" = "0" ]; do sleep 0.2; done
}
warm() {
  src -c "CHECKPOINT"; dst -c "CHECKPOINT"
  src bench -c "SELECT count(*) FROM pgbench_accounts" -c "SELECT count(*) FROM pgbench_history" >/dev/null
}
backlog() { # writes for SECS while paused; sets TXNS, WAL_BYTES
  local before after
  before=$(src -c "SELECT pg_current_wal_lsn()")
  TXNS=$(pgbench -n -c "$CLIENTS" -j 2 -T "$SECS" -h 127.0.0.1 -p "$SRC_PORT" -U postgres bench 2>/dev/null \
    | awk '/number of transactions actually processed/ {split($0, a, ": "); split(a[2], b, "/"); print b[1]; exit}')
  MARK=$((MARK + 1))
  src bench -c "INSERT INTO bench_marker VALUES ($MARK, now())"
  after=$(src -c "SELECT pg_current_wal_lsn()")
  WAL_BYTES=$(src -c "SELECT pg_wal_lsn_diff('$after', '$before')::bigint")
}
drained() { # db tool -> seconds from now until the current marker is on the target
  local t0 perf=""; t0=$(now)
  if [ -n "${PROFILE:-}" ]; then # where the drain's CPU goes, by process and library
    perf record -a -g -q -o "$WORK/perf.data" >/dev/null 2>&1 & perf=$!
  fi
  until [ "$(dst "$1" -c "SELECT count(*) FROM bench_marker WHERE id = $MARK" 2>/dev/null)" = "1" ]; do sleep 0.05; done
  echo "$(now) - $t0" | bc
  if [ -n "$perf" ]; then
    kill -INT "$perf"; wait "$perf" 2>/dev/null || true
    mkdir -p "$PROFILE"
    perf report -i "$WORK/perf.data" --no-children --sort comm,dso --stdio -g none 2>/dev/null | grep -v '^#' | grep '%' | head -25 >"$PROFILE/$2.$MARK.by-process.txt" || true
    perf report -i "$WORK/perf.data" --no-children --sort comm,sym --stdio -g none 2>/dev/null | grep -v '^#' | grep '%' | head -60 >"$PROFILE/$2.$MARK.by-symbol.txt" || true
  fi
}

native_run() {
  dst -c "DROP DATABASE IF EXISTS native" -c "CREATE DATABASE native"
  pgbench -q -i -s "$SCALE" -h 127.0.0.1 -p "$DST_PORT" -U postgres native >/dev/null 2>&1
  dst native -c "TRUNCATE pgbench_history" -c "CREATE TABLE bench_marker (id int PRIMARY KEY, at timestamptz)"
  src bench -c "CREATE PUBLICATION native_pub FOR TABLE pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history, bench_marker"
  dst native -c "CREATE SUBSCRIPTION native_sub CONNECTION 'host=127.0.0.1 port=$SRC_PORT user=postgres dbname=bench' PUBLICATION native_pub WITH (copy_data = false)"
  sleep 2
  dst native -c "ALTER SUBSCRIPTION native_sub DISABLE"
  paused
  warm
  backlog
  dst native -c "ALTER SUBSCRIPTION native_sub ENABLE"
  T=$(drained native native)
  dst native -c "DROP SUBSCRIPTION native_sub"
  src bench -c "DROP PUBLICATION native_pub"
}
ferry_in_order_run() { FERRY_APPLY_IN_ORDER=1 ferry_run; }
ferry_run() {
  dst -c "DROP DATABASE IF EXISTS ferry" -c "CREATE DATABASE ferry"
  start_ferry
  "$BIN/ferry" task create backlog --type full-load-and-cdc \
    --source "postgres://postgres@127.0.0.1:$SRC_PORT/bench" --target "postgres://postgres@127.0.0.1:$DST_PORT/ferry" >/dev/null
  "$BIN/ferry" task start backlog >/dev/null
  "$BIN/ferry" task wait backlog --for caught-up --timeout 900 >/dev/null
  "$BIN/ferry" task stop backlog >/dev/null
  paused
  warm
  backlog
  "$BIN/ferry" task start backlog >/dev/null
  T=$(drained ferry "ferry${FERRY_APPLY_IN_ORDER:+_in_order}")
  "$BIN/ferry" task delete backlog >/dev/null
  kill "$COORD" 2>/dev/null || true
  pkill -f "ferry-worker --coordinator http://127.0.0.1:$FERRY_PORT" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK/ferry"
}

read -r -a TOOLS <<<"${TOOLS:-native ferry_in_order ferry}"
declare -A TIMES RATES
for run in $(seq "$RUNS"); do
  # Rotate: run r starts with tool (r-1) mod n.
  n=${#TOOLS[@]}; order=()
  for i in $(seq 0 $((n - 1))); do order+=("${TOOLS[$(((run - 1 + i) % n))]}"); done
  for tool in "${order[@]}"; do
    "${tool}_run"
    # pgbench's transaction writes 4 rows (3 updates, 1 insert).
    rate=$(echo "4 * $TXNS / $T" | bc -l)
    printf "run %d %-15s backlog %8d txns %6.0f MB WAL   drain %7.2f s   %9.0f rows/s\n" \
      "$run" "$tool" "$TXNS" "$(echo "$WAL_BYTES / 1048576" | bc -l)" "$T" "$rate"
    TIMES[$tool]+="$T "; RATES[$tool]+="$rate "
  done
done
median() { printf "%s\n" "$@" | sort -g | awk '{v[NR]=$1} END {print NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
stats() { # values... -> "median (min-max)"
  printf "%.2f (%.2f-%.2f)" "$(median "$@")" "$(printf "%s\n" "$@" | sort -g | head -1)" "$(printf "%s\n" "$@" | sort -g | tail -1)"
}
echo
printf "pgbench scale %s, %s clients, %ss of writes paused, %s runs (rotated)\n" "$SCALE" "$CLIENTS" "$SECS" "$RUNS"
for tool in "${TOOLS[@]}"; do
  # shellcheck disable=SC2086
  printf "%-15s drain s median %s   rows/s median %.0f\n" "$tool" "$(stats ${TIMES[$tool]})" "$(median ${RATES[$tool]})"
done
for tool in "${TOOLS[@]}"; do
  [ "$tool" = native ] || [ -z "${TIMES[native]:-}" ] && continue
  # shellcheck disable=SC2086
  printf "%s drain / native drain (medians): %.2f\n" "$tool" "$(echo "$(median ${TIMES[$tool]}) / $(median ${TIMES[native]})" | bc -l)"
done
