# Shared setup of the benchmark scripts (sourced, not run): two throwaway
# PostgreSQL servers (source and target) in a temp dir, stopped and removed
# on exit, and a Ferry coordinator with 3 workers on demand.
# Set PG_OPTS (extra server settings) before sourcing.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${FERRY_BIN:-$ROOT/target/release}
PGBIN=$(pg_config --bindir)
[ -x "$BIN/ferry" ] || { echo "error: $BIN/ferry missing (cargo build --release --bins)" >&2; exit 1; }
WORK=$(mktemp -d /tmp/ferry-bench-XXXX)
chown postgres:postgres "$WORK" 2>/dev/null || true
AS_PG=""; [ "$(id -u)" = 0 ] && AS_PG="runuser -u postgres --"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SRC_PORT=$(free_port); DST_PORT=$(free_port); FERRY_PORT=$(free_port)
start_pg() { # dir port
  $AS_PG "$PGBIN/initdb" --no-sync -A trust -U postgres -D "$1" >/dev/null
  $AS_PG "$PGBIN/pg_ctl" -D "$1" -l "$1.log" -w start \
    -o "-p $2 -k $WORK -c listen_addresses=127.0.0.1 -c wal_level=logical -c max_wal_size=8GB ${PG_OPTS:-}" >/dev/null
}
MY_PORT=$(free_port)
start_mariadb() { # a throwaway MariaDB with ROW binlog, on $MY_PORT
  mariadb-install-db --no-defaults --datadir="$WORK/my" --user=root \
    --auth-root-authentication-method=normal --skip-test-db >/dev/null 2>&1
  run_mariadb
}
run_mariadb() { # (again) on its data dir; sets MYSQLD
  mariadbd --no-defaults --user=root --datadir="$WORK/my" --port="$MY_PORT" \
    --socket="$WORK/my.sock" --pid-file="$WORK/my.pid" --log-error="$WORK/my.log" \
    --bind-address=127.0.0.1 --skip-name-resolve --server-id=1 --log-bin=binlog \
    --binlog-format=ROW --binlog-row-image=FULL --binlog-row-metadata=FULL \
    --innodb-buffer-pool-size=1G --innodb-flush-log-at-trx-commit=2 --local-infile=1 \
    --character-set-server=utf8mb4 --max-connections=300 & MYSQLD=$!
  for _ in $(seq 100); do mariadb -h 127.0.0.1 -P "$MY_PORT" -u root -e "SELECT 1" >/dev/null 2>&1 && return; sleep 0.2; done
  echo "error: mariadbd did not start (see $WORK/my.log)" >&2; exit 1
}
cleanup() {
  # Waited for with stderr closed: bash would report the kill.
  [ -n "${MYSQLD:-}" ] && { kill -9 "$MYSQLD"; wait "$MYSQLD"; } 2>/dev/null || true
  [ -n "${COORD:-}" ] && kill "$COORD" 2>/dev/null || true
  pkill -f "ferry-worker --coordinator http://127.0.0.1:$FERRY_PORT" 2>/dev/null || true
  $AS_PG "$PGBIN/pg_ctl" -D "$WORK/src" -m immediate stop >/dev/null 2>&1 || true
  $AS_PG "$PGBIN/pg_ctl" -D "$WORK/dst" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
start_pg "$WORK/src" "$SRC_PORT"; start_pg "$WORK/dst" "$DST_PORT"
now() { date +%s.%N; }
src() { "$PGBIN/psql" -X -tAq -h 127.0.0.1 -p "$SRC_PORT" -U postgres "$@"; }
dst() { "$PGBIN/psql" -X -tAq -h 127.0.0.1 -p "$DST_PORT" -U postgres "$@"; }
pgbench_source() { # scale: database "bench" on the source, with a marker table
  src -c "CREATE DATABASE bench"
  echo "pgbench -i -s $1 on the source..."
  pgbench -q -i -s "$1" -h 127.0.0.1 -p "$SRC_PORT" -U postgres bench >/dev/null 2>&1
  src bench -c "CREATE TABLE bench_marker (id int PRIMARY KEY, at timestamptz)"
}
start_ferry() { # coordinator + 3 workers; sets FERRY_COORDINATOR
  "$BIN/ferry" coordinator --data-dir "$WORK/ferry" --listen "127.0.0.1:$FERRY_PORT" 2>"$WORK/coord.log" & COORD=$!
  FERRY_PIDS=("$COORD")
  for _ in $(seq "${FERRY_WORKERS:-3}"); do
    "$BIN/ferry-worker" --coordinator "http://127.0.0.1:$FERRY_PORT" --slots 1 2>>"$WORK/workers.log" & FERRY_PIDS+=($!)
  done
  export FERRY_COORDINATOR="http://127.0.0.1:$FERRY_PORT"
  for _ in $(seq 50); do "$BIN/ferry" task list >/dev/null 2>&1 && break; sleep 0.2; done
}

# Runs of several tools, rotated: `rotate TOOL...` calls ${tool}_run RUNS
# times (3) per tool, run r starting with tool r-1 mod n, so that no tool
# always runs first (after setup) or after the same neighbour. Each _run
# sets T (seconds); they are collected in TIMES[tool]. A script may define
# after_run RUN TOOL to print or collect more per run.
declare -A TIMES
after_run() { :; }
rotate() {
  local tools=("$@") n=$# run i tool order
  for run in $(seq "${RUNS:-3}"); do
    order=()
    for i in $(seq 0 $((n - 1))); do order+=("${tools[$(((run - 1 + i) % n))]}"); done
    for tool in "${order[@]}"; do
      "${tool}_run"
      TIMES[$tool]+="$T "
      after_run "$run" "$tool"
    done
  done
}
median() { printf "%s\n" "$@" | sort -g | awk '{v[NR]=$1} END {print NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
stats() { # values... -> "median (min-max)"
  printf "%.2f (%.2f-%.2f)" "$(median "$@")" "$(printf "%s\n" "$@" | sort -g | head -1)" "$(printf "%s\n" "$@" | sort -g | tail -1)"
}
ratio() { # tool_a tool_b -> median time of a / median time of b
  # shellcheck disable=SC2086
  printf "%.2f" "$(echo "$(median ${TIMES[$1]}) / $(median ${TIMES[$2]})" | bc -l)"
}
ferry_full_load() { # source-url target-url: a full load by a fresh Ferry; sets T (seconds)
  start_ferry
  local t0; t0=$(now)
  "$BIN/ferry" task create bench --source "$1" --target "$2" --type full-load >/dev/null
  "$BIN/ferry" task start bench >/dev/null
  "$BIN/ferry" task wait bench --for full-load >/dev/null
  T=$(echo "$(now) - $t0" | bc)
  stop_ferry
}
stop_ferry() { # the coordinator and workers start_ferry began, and its data
  kill "${FERRY_PIDS[@]}" 2>/dev/null || true
  wait "${FERRY_PIDS[@]}" 2>/dev/null || true
  rm -rf "$WORK/ferry"
}
