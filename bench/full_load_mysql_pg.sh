#!/usr/bin/env bash
# MySQL → PostgreSQL full-load benchmark: `sysbench oltp_read_write prepare
# --tables=4 --table-size=SIZE` into a throwaway MariaDB, then Ferry
# (3 workers) and pgloader each load it into a fresh database of the same
# throwaway PostgreSQL server, in one run. Prints wall times, rows/s and the
# ratio pgloader / Ferry.
#   bench/full_load_mysql_pg.sh [SIZE=1000000]
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

dst -c "CREATE DATABASE ferry"
start_ferry
T0=$(now)
"$BIN/ferry" task create bench --source "$SRC" --target "postgres://postgres@127.0.0.1:$DST_PORT/ferry" --type full-load >/dev/null
"$BIN/ferry" task start bench >/dev/null
"$BIN/ferry" task wait bench --for full-load >/dev/null
T_FERRY=$(echo "$(now) - $T0" | bc)
N_FERRY=$(dst ferry -c "SELECT (SELECT count(*) FROM sbtest.sbtest1)+(SELECT count(*) FROM sbtest.sbtest2)+(SELECT count(*) FROM sbtest.sbtest3)+(SELECT count(*) FROM sbtest.sbtest4)")

dst -c "CREATE DATABASE pgloader"
T0=$(now)
pgloader --no-ssl-cert-verification --with "prefetch rows = 10000" --with "batch rows = 10000" \
  "$SRC" "postgresql://postgres@127.0.0.1:$DST_PORT/pgloader" >"$WORK/pgloader.log" 2>&1 \
  || { echo "pgloader failed:"; tail -20 "$WORK/pgloader.log"; exit 1; }
T_PGLOADER=$(echo "$(now) - $T0" | bc)
N_PGLOADER=$(dst pgloader -c "SELECT (SELECT count(*) FROM sbtest.sbtest1)+(SELECT count(*) FROM sbtest.sbtest2)+(SELECT count(*) FROM sbtest.sbtest3)+(SELECT count(*) FROM sbtest.sbtest4)")

rate() { printf "%.0f" "$(echo "$ROWS / $1" | bc -l)"; }
printf "sysbench 4 x %s rows (%s rows on the target: ferry %s, pgloader %s)\n" "$SIZE" "$ROWS" "$N_FERRY" "$N_PGLOADER"
printf "%-20s %9.1f s %12s rows/s\n" "ferry (3 workers)" "$T_FERRY" "$(rate "$T_FERRY")"
printf "%-20s %9.1f s %12s rows/s\n" "pgloader" "$T_PGLOADER" "$(rate "$T_PGLOADER")"
printf "pgloader time / ferry time: %.2f (target >= 3)\n" "$(echo "$T_PGLOADER / $T_FERRY" | bc -l)"
