#!/usr/bin/env bash
# MySQL → PostgreSQL full-load benchmark: `sysbench oltp_read_write prepare
# --tables=4 --table-size=SIZE` into a throwaway MariaDB, then Ferry
# (3 workers) and pgloader each load it into a fresh database of the same
# throwaway PostgreSQL server, in one run: each RUNS times (3) in rotating
# order, the target database fresh and checkpointed and the source's tables
# read once before each run. Prints each run, then per tool the median wall
# time with its spread (min-max) and rows/s, and the ratio of medians
# pgloader / Ferry.
#   [RUNS=3] bench/full_load_mysql_pg.sh [SIZE=1000000]
# Needs: a release build (cargo build --release --bins), sysbench, pgloader
# (apt-get install sysbench pgloader), mariadb-server.
set -euo pipefail
SIZE=${1:-1000000}
for t in sysbench pgloader mariadbd; do
  command -v $t >/dev/null || { echo "error: $t not installed (apt-get install sysbench pgloader mariadb-server)" >&2; exit 1; }
done
PG_OPTS="-c shared_buffers=1GB -c maintenance_work_mem=512MB"
. "$(dirname "$0")/lib.sh"
start_mariadb
mariadb -h 127.0.0.1 -P "$MY_PORT" -u root -e "CREATE DATABASE sbtest"
echo "sysbench prepare: 4 tables x $SIZE rows into MariaDB..."
sysbench oltp_read_write --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$MY_PORT" \
  --mysql-user=root --mysql-db=sbtest --tables=4 --table-size="$SIZE" prepare >/dev/null
mariadb -h 127.0.0.1 -P "$MY_PORT" -u root sbtest -e "ANALYZE TABLE sbtest1, sbtest2, sbtest3, sbtest4" >/dev/null
# Let InnoDB write back the prepare's dirty pages first, so neither tool
# competes with that background flushing.
my() { mariadb -N -h 127.0.0.1 -P "$MY_PORT" -u root "$@"; }
my -e "SET GLOBAL innodb_max_dirty_pages_pct = 0"
for _ in $(seq 300); do
  [ "$(my -e "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'INNODB_BUFFER_POOL_PAGES_DIRTY'")" -lt 100 ] && break
  sleep 1
done
ROWS=$((4 * SIZE))
SRC="mysql://root@127.0.0.1:$MY_PORT/sbtest"

COUNT="SELECT (SELECT count(*) FROM sbtest.sbtest1)+(SELECT count(*) FROM sbtest.sbtest2)+(SELECT count(*) FROM sbtest.sbtest3)+(SELECT count(*) FROM sbtest.sbtest4)"
fresh() { # database $1 on the target, empty; both servers warmed the same way
  dst -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" -c "CHECKPOINT"
  my sbtest -e "SELECT count(*) FROM sbtest1; SELECT count(*) FROM sbtest2; SELECT count(*) FROM sbtest3; SELECT count(*) FROM sbtest4" >/dev/null
}
loaded() { # a run that left other than every row does not count
  local n; n=$(dst "$1" -c "$COUNT")
  [ "$n" = "$ROWS" ] || { echo "error: $1 left $n rows on the target, the source has $ROWS" >&2; exit 1; }
}
ferry_run() {
  fresh ferry
  ferry_full_load "$SRC" "postgres://postgres@127.0.0.1:$DST_PORT/ferry"
  loaded ferry
}
pgloader_run() {
  fresh pgloader
  T0=$(now)
  pgloader --no-ssl-cert-verification --with "prefetch rows = 10000" --with "batch rows = 10000" \
    "$SRC" "postgresql://postgres@127.0.0.1:$DST_PORT/pgloader" >"$WORK/pgloader.log" 2>&1 \
    || { echo "pgloader failed:"; tail -20 "$WORK/pgloader.log"; exit 1; }
  T=$(echo "$(now) - $T0" | bc)
  loaded pgloader
}
rate() { printf "%.0f" "$(echo "$ROWS / $1" | bc -l)"; }
after_run() { printf "run %d %-9s %9.1f s %12s rows/s\n" "$1" "$2" "$T" "$(rate "$T")"; }
rotate ferry pgloader

echo
printf "sysbench 4 x %s rows = %s rows, %s runs per tool (rotated)\n" "$SIZE" "$ROWS" "${RUNS:-3}"
for tool in ferry pgloader; do
  # shellcheck disable=SC2086
  printf "%-9s wall s median %s   rows/s median %s\n" "$tool" "$(stats ${TIMES[$tool]})" "$(rate "$(median ${TIMES[$tool]})")"
done
printf "pgloader time / ferry time (medians): %s (target >= 3)\n" "$(ratio pgloader ferry)"
