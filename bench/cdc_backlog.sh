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
#   ferry_1lane  the same with TargetMetadata.ParallelApplyThreads 1 (set-based
#           batches on one target session; ferry uses 4).
#   ferry_in_order  the same with FERRY_APPLY_IN_ORDER=1 (every change
#           applied in source order, no set-based batches: the baseline).
# TOOLS="native ferry" picks the tools.
# Paused, pgbench writes for SECS seconds; then a marker row is inserted and
# the tool resumed; the drain time is from resuming until the marker is on
# the target. Before each tool the servers are warmed the same way
# (CHECKPOINT on both, the source's tables read once). The tools run RUNS
# times (3) in rotating order; medians and spread (min-max) are printed.
#
# Then the same for MariaDB -> PostgreSQL: sysbench oltp_write_only (4 tables
# of MY_SIZE rows, CLIENTS threads) writes into a throwaway MariaDB (ROW
# binlog) for SECS while each tool is paused:
#   my_ferry      Ferry full-load-and-cdc; paused with `ferry task stop`.
#   my_chameleon  pg_chameleon 2 (init_replica, then start_replica; paused
#                 with stop_replica), run as the unprivileged user
#                 CHAMELEON_USER (bench), from CHAMELEON (its chameleon
#                 executable; default /home/$CHAMELEON_USER/venv/bin/chameleon).
# MY_TOOLS="my_ferry my_chameleon" picks them; MY_TOOLS= skips the part.
# MY_SECS (default SECS) is this part's writing time: pg_chameleon drains
# a few thousand rows/s, so a long backlog makes its runs long.
#
# Then PostgreSQL -> MariaDB (InnoDB target: lanes keep the fenced session
# off spread tables, deadlocked lanes run again), the pgbench backlog of
# PM_SECS (default MY_SECS):
#   pm_ferry_1lane  Ferry with ParallelApplyThreads 1.
#   pm_ferry        Ferry with the default 4 lanes.
# PM_TOOLS="pm_ferry_1lane pm_ferry" picks them; PM_TOOLS= skips the part.
#   [RUNS=3] [SCALE=10] [CLIENTS=4] [MY_SIZE=100000] [MY_SECS=SECS] [PM_SECS=MY_SECS] bench/cdc_backlog.sh [SECS=60]
# PROFILE=dir records each drain with `perf record -a` and writes where the
# CPU went (by process and library, by symbol) into dir.
# Needs: a release build (cargo build --release --bins), pgbench; for the
# MariaDB part mariadbd, sysbench and pg_chameleon (as root: useradd -m
# bench; runuser -u bench -- python3 -m venv ~bench/venv; runuser -u bench
# -- ~bench/venv/bin/pip install pg_chameleon).
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
drained() { # db tool [marker table] -> seconds from now until the current marker is on the target
  local t0 perf="" table=${3:-bench_marker}; t0=$(now)
  if [ -n "${PROFILE:-}" ]; then # where the drain's CPU goes, by process and library
    perf record -a -g -q -o "$WORK/perf.data" >/dev/null 2>&1 & perf=$!
  fi
  until [ "$(dst "$1" -c "SELECT count(*) FROM $table WHERE id = $MARK" 2>/dev/null)" = "1" ]; do sleep 0.05; done
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
ferry_1lane_run() { LANES=1 ferry_run; }
ferry_run() {
  dst -c "DROP DATABASE IF EXISTS ferry" -c "CREATE DATABASE ferry"
  start_ferry
  echo "{\"TargetMetadata\": {\"ParallelApplyThreads\": ${LANES:-4}}}" >"$WORK/settings.json"
  "$BIN/ferry" task create backlog --type full-load-and-cdc --settings "$WORK/settings.json" \
    --source "postgres://postgres@127.0.0.1:$SRC_PORT/bench" --target "postgres://postgres@127.0.0.1:$DST_PORT/ferry" >/dev/null
  "$BIN/ferry" task start backlog >/dev/null
  "$BIN/ferry" task wait backlog --for caught-up --timeout 900 >/dev/null
  "$BIN/ferry" task stop backlog >/dev/null
  paused
  warm
  backlog
  "$BIN/ferry" task start backlog >/dev/null
  T=$(drained ferry "ferry${FERRY_APPLY_IN_ORDER:+_in_order}${LANES:+_${LANES}lane}")
  "$BIN/ferry" task delete backlog >/dev/null
  stop_ferry
}

declare -A RATES
LOG=WAL
after_run() { # run tool
  # Both workloads' transactions change 4 rows (pgbench: 3 updates and an
  # insert; sysbench oltp_write_only: 2 updates, a delete and an insert).
  local rate; rate=$(echo "4 * $TXNS / $T" | bc -l)
  printf "run %d %-15s backlog %8d txns %6.0f MB %s   drain %7.2f s   %9.0f rows/s\n" \
    "$1" "$2" "$TXNS" "$(echo "$WAL_BYTES / 1048576" | bc -l)" "$LOG" "$T" "$rate"
  RATES[$2]+="$rate "
}
summary() { # tools...: median drain with spread, median rate
  local tool
  for tool in "$@"; do
    # shellcheck disable=SC2086
    printf "%-15s drain s median %s   rows/s median %.0f\n" "$tool" "$(stats ${TIMES[$tool]})" "$(median ${RATES[$tool]})"
  done
}
read -r -a TOOLS <<<"${TOOLS-native ferry_in_order ferry}"
rotate "${TOOLS[@]}"
echo
printf "pgbench scale %s, %s clients, %ss of writes paused, %s runs (rotated)\n" "$SCALE" "$CLIENTS" "$SECS" "$RUNS"
summary "${TOOLS[@]}"
for tool in "${TOOLS[@]}"; do
  [ "$tool" = native ] || [ -z "${TIMES[native]:-}" ] && continue
  printf "%s drain / native drain (medians): %s\n" "$tool" "$(ratio "$tool" native)"
done

# ---- MariaDB -> PostgreSQL ----
read -r -a MY_TOOLS <<<"${MY_TOOLS-my_ferry my_chameleon}"
read -r -a PM_TOOLS <<<"${PM_TOOLS-pm_ferry_1lane pm_ferry}"
[ ${#MY_TOOLS[@]} -gt 0 ] || [ ${#PM_TOOLS[@]} -gt 0 ] || exit 0
MY_SIZE=${MY_SIZE:-100000}; MY_SECS=${MY_SECS:-$SECS}
CHAMELEON_USER=${CHAMELEON_USER:-bench}
CHAMELEON=${CHAMELEON:-/home/$CHAMELEON_USER/venv/bin/chameleon}
for t in mariadbd sysbench; do
  command -v $t >/dev/null || { echo "error: $t not installed (apt-get install mariadb-server sysbench)" >&2; exit 1; }
done
start_mariadb
my() { mariadb -N -h 127.0.0.1 -P "$MY_PORT" -u root "$@"; }
my -e "CREATE DATABASE sbtest"
echo "sysbench prepare: 4 tables x $MY_SIZE rows into MariaDB..."
SYSBENCH=(sysbench oltp_write_only --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$MY_PORT"
  --mysql-user=root --mysql-db=sbtest --tables=4 --table-size="$MY_SIZE")
"${SYSBENCH[@]}" prepare >/dev/null
my sbtest -e "CREATE TABLE bench_marker (id INT PRIMARY KEY, at DATETIME(6))"
MY_SRC="mysql://root@127.0.0.1:$MY_PORT/sbtest"

my_warm() {
  dst -c "CHECKPOINT"
  my sbtest -e "SELECT count(*) FROM sbtest1; SELECT count(*) FROM sbtest2; SELECT count(*) FROM sbtest3; SELECT count(*) FROM sbtest4" >/dev/null
}
my_backlog() { # sysbench writes for MY_SECS while paused; sets TXNS, WAL_BYTES (binlog bytes)
  local before after
  before=$(my -e "SHOW MASTER STATUS" | awk '{print $2}')
  TXNS=$("${SYSBENCH[@]}" --threads="$CLIENTS" --time="$MY_SECS" --report-interval=0 run 2>/dev/null \
    | awk '/transactions:/ {print $2; exit}')
  MARK=$((MARK + 1))
  my sbtest -e "INSERT INTO bench_marker VALUES ($MARK, now(6))"
  after=$(my -e "SHOW MASTER STATUS" | awk '{print $2}')
  # Within one binlog file (max_binlog_size 1 GiB) the offsets' difference.
  WAL_BYTES=$((after > before ? after - before : after))
}
my_ferry_run() {
  dst -c "DROP DATABASE IF EXISTS ferry_my" -c "CREATE DATABASE ferry_my"
  start_ferry
  "$BIN/ferry" task create mybacklog --type full-load-and-cdc --source "$MY_SRC" \
    --target "postgres://postgres@127.0.0.1:$DST_PORT/ferry_my" >/dev/null
  "$BIN/ferry" task start mybacklog >/dev/null
  "$BIN/ferry" task wait mybacklog --for caught-up --timeout 900 >/dev/null
  "$BIN/ferry" task stop mybacklog >/dev/null
  until "$BIN/ferry" task status mybacklog --output json | grep -q '"streaming": *false'; do sleep 0.2; done
  my_warm
  my_backlog
  "$BIN/ferry" task start mybacklog >/dev/null
  T=$(drained ferry_my my_ferry sbtest.bench_marker)
  "$BIN/ferry" task delete mybacklog >/dev/null
  stop_ferry
}
as_chameleon() {
  (cd / && runuser -u "$CHAMELEON_USER" -- "$CHAMELEON" "$@" --config ferrybench >>"$WORK/chameleon.log" 2>&1) \
    || { echo "error: chameleon $* failed:" >&2; tail -20 "$WORK/chameleon.log" >&2; exit 1; }
}
my_chameleon_run() {
  [ -x "$CHAMELEON" ] || { echo "error: pg_chameleon not found at $CHAMELEON (see the header)" >&2; exit 1; }
  local home; home=$(getent passwd "$CHAMELEON_USER" | cut -d: -f6)
  dst -c "DROP DATABASE IF EXISTS chameleon" -c "CREATE DATABASE chameleon"
  mkdir -p "$home/.pg_chameleon/configuration" "$home/.pg_chameleon/logs" "$home/.pg_chameleon/pid" "$home/chameleon_out"
  cat >"$home/.pg_chameleon/configuration/ferrybench.yml" <<YML
---
pid_dir: '~/.pg_chameleon/pid/'
log_dir: '~/.pg_chameleon/logs/'
log_dest: file
log_level: info
log_days_keep: 1
rollbar_key: ''
rollbar_env: ''
type_override: {}
pg_conn:
  host: "127.0.0.1"
  port: "$DST_PORT"
  user: "postgres"
  password: "unused-trust-auth"
  database: "chameleon"
  charset: "utf8"
sources:
  mysql:
    db_conn:
      host: "127.0.0.1"
      port: "$MY_PORT"
      user: "root"
      password: ""
      charset: 'utf8'
      connect_timeout: 10
    schema_mappings:
      sbtest: sbtest
    limit_tables:
    skip_tables:
    grant_select_to:
    lock_timeout: "120s"
    my_server_id: 100
    replica_batch_size: 10000
    replay_max_rows: 10000
    batch_retention: '1 day'
    copy_max_memory: "300M"
    copy_mode: 'file'
    out_dir: $home/chameleon_out
    sleep_loop: 1
    on_error_replay: continue
    on_error_read: continue
    auto_maintenance: "disabled"
    gtid_enable: false
    type: mysql
    skip_events:
      insert:
      delete:
      update:
    keep_existing_schema: No
    net_read_timeout: 600
YML
  chown -R "$CHAMELEON_USER" "$home/.pg_chameleon" "$home/chameleon_out"
  as_chameleon create_replica_schema
  as_chameleon add_source --source mysql
  as_chameleon init_replica --source mysql --debug
  as_chameleon start_replica --source mysql
  # Running: a marker inserted now arrives.
  MARK=$((MARK + 1))
  my sbtest -e "INSERT INTO bench_marker VALUES ($MARK, now(6))"
  drained chameleon my_chameleon_start sbtest.bench_marker >/dev/null
  as_chameleon stop_replica --source mysql
  my_warm
  my_backlog
  as_chameleon start_replica --source mysql
  T=$(drained chameleon my_chameleon sbtest.bench_marker)
  as_chameleon stop_replica --source mysql
  as_chameleon drop_replica_schema || true
}
if [ ${#MY_TOOLS[@]} -gt 0 ]; then
  LOG=binlog
  rotate "${MY_TOOLS[@]}"
  echo
  printf "MariaDB -> PostgreSQL: sysbench oltp_write_only 4 x %s rows, %s threads, %ss of writes paused, %s runs (rotated)\n" \
    "$MY_SIZE" "$CLIENTS" "$MY_SECS" "$RUNS"
  summary "${MY_TOOLS[@]}"
  if [ -n "${TIMES[my_ferry]:-}" ] && [ -n "${TIMES[my_chameleon]:-}" ]; then
    printf "my_ferry drain / my_chameleon drain (medians): %s\n" "$(ratio my_ferry my_chameleon)"
  fi
fi

# ---- PostgreSQL -> MariaDB ----
[ ${#PM_TOOLS[@]} -gt 0 ] || exit 0
PM_SECS=${PM_SECS:-$MY_SECS}
pm_drained() { # tool -> seconds from now until the current marker is in MariaDB
  local t0; t0=$(now)
  until [ "$(my -e "SELECT count(*) FROM public.bench_marker WHERE id = $MARK" 2>/dev/null)" = "1" ]; do sleep 0.05; done
  echo "$(now) - $t0" | bc
}
pm_ferry_1lane_run() { LANES=1 pm_ferry_run; }
pm_ferry_run() {
  my -e "DROP DATABASE IF EXISTS public; DROP DATABASE IF EXISTS ferry; DROP DATABASE IF EXISTS landing; CREATE DATABASE landing"
  start_ferry
  echo "{\"TargetMetadata\": {\"ParallelApplyThreads\": ${LANES:-4}}}" >"$WORK/settings.json"
  "$BIN/ferry" task create pmbacklog --type full-load-and-cdc --settings "$WORK/settings.json" \
    --source "postgres://postgres@127.0.0.1:$SRC_PORT/bench" --target "mysql://root@127.0.0.1:$MY_PORT/landing" >/dev/null
  "$BIN/ferry" task start pmbacklog >/dev/null
  "$BIN/ferry" task wait pmbacklog --for caught-up --timeout 900 >/dev/null
  "$BIN/ferry" task stop pmbacklog >/dev/null
  paused
  src -c "CHECKPOINT"; my -e "FLUSH TABLES" >/dev/null
  src bench -c "SELECT count(*) FROM pgbench_accounts" >/dev/null
  SECS=$PM_SECS backlog
  "$BIN/ferry" task start pmbacklog >/dev/null
  T=$(pm_drained)
  "$BIN/ferry" task delete pmbacklog >/dev/null
  stop_ferry
}
LOG=WAL
rotate "${PM_TOOLS[@]}"
echo
printf "PostgreSQL -> MariaDB: pgbench scale %s, %s clients, %ss of writes paused, %s runs (rotated)\n" \
  "$SCALE" "$CLIENTS" "$PM_SECS" "$RUNS"
summary "${PM_TOOLS[@]}"
if [ -n "${TIMES[pm_ferry]:-}" ] && [ -n "${TIMES[pm_ferry_1lane]:-}" ]; then
  printf "pm_ferry drain / pm_ferry_1lane drain (medians): %s\n" "$(ratio pm_ferry pm_ferry_1lane)"
fi
