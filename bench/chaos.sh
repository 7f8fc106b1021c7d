#!/usr/bin/env bash
# Chaos: RUNS iterations of a random schedule of faults during a
# full-load-and-cdc migration under writes, each checked row for row.
#
# One cluster of three coordinator nodes and three workers (every node's
# URL given to each) serves every run. Odd runs migrate PostgreSQL ->
# PostgreSQL under pgbench (scale SCALE), even runs MariaDB -> PostgreSQL
# under sysbench oltp_write_only (4 tables x MY_SIZE rows), into a fresh
# target database each. While the load writes for SECS seconds, FAULTS
# faults (4) are injected at random times, each one of:
#   leader     SIGKILL the Raft leader; restarted on its data dir 3 s later
#   follower   SIGKILL a follower; restarted 3 s later
#   worker     SIGKILL a worker; a new one started 1 s later
#   link       cut a worker's links (one holding work, when any) to every
#              coordinator for 2.5 leases,
#              then restore them: its packets to the coordinator ports are
#              dropped (iptables, matched on the worker's own uid), while
#              its database sessions stay up, so it is a zombie that still
#              holds connections to the target while its lease expires and
#              its work moves to another worker (LINK=stop: SIGSTOP the
#              worker instead, where iptables is not available)
#   source     restart the source server (fast shutdown)
#   target     restart the target server
# After the load ends the task must catch up (`task wait --for caught-up`),
# then every table is dumped sorted from both sides and compared as
# multisets: "lost" counts source rows the target lacks, "doubled" target
# rows the source lacks (pgbench_history has no key: a change applied twice
# is an extra row). Printed per run: the faults with their times, the
# source rows compared, lost, doubled, and for each leader kill the
# failover time (kill to a new leader answering). Exits non-zero on any loss or duplicate, or a run that does
# not catch up.
#   [SCALE=2] [MY_SIZE=20000] [SECS=45] [FAULTS=4] [SEED=$RANDOM] [LINK=cut|stop]
#   [FAULT_KINDS="leader follower worker link source target"] bench/chaos.sh [RUNS=10]
# FERRY_BIN=target/debug uses the debug build. Needs pgbench, mariadbd,
# sysbench; link cuts need root, iptables and setpriv (each worker slot runs
# as its own system user, ferry-chaos-1..3, so that a rule can name it).
set -euo pipefail
RUNS=${1:-10}; SCALE=${SCALE:-2}; MY_SIZE=${MY_SIZE:-20000}; SECS=${SECS:-45}; FAULTS=${FAULTS:-4}
SEED=${SEED:-$RANDOM}; RANDOM=$SEED; LINK=${LINK:-cut}
LEASE_MS=3000
PG_OPTS="-c max_wal_senders=20 -c max_replication_slots=20"
. "$(dirname "$0")/lib.sh"
for t in pgbench mariadbd sysbench; do
  command -v $t >/dev/null || { echo "error: $t not installed" >&2; exit 1; }
done
case $LINK in
  cut)
    [ "$(id -u)" = 0 ] && command -v iptables >/dev/null && command -v setpriv >/dev/null || {
      echo "error: link cuts need root, iptables and setpriv (or LINK=stop)" >&2; exit 1; }
    for w in 1 2 3; do
      id "ferry-chaos-$w" >/dev/null 2>&1 || useradd --system --no-create-home "ferry-chaos-$w"
    done ;;
  stop) ;;
  *) echo "error: LINK must be cut or stop, not $LINK" >&2; exit 1 ;;
esac
# Every rule this run adds carries this comment, so that only they are removed.
RULE_TAG="ferry-chaos-$$"
pgbench_source "$SCALE"
start_mariadb
my() { mariadb -N -B -h 127.0.0.1 -P "$MY_PORT" -u root "$@"; }
my -e "CREATE DATABASE sbtest"
SYSBENCH=(sysbench oltp_write_only --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$MY_PORT"
  --mysql-user=root --mysql-db=sbtest --tables=4 --table-size="$MY_SIZE")
"${SYSBENCH[@]}" prepare >/dev/null

# The cluster: node N listens on PORT[N], data in $WORK/nN; workers by slot.
declare -A PORT NODE WORKER
PORT[1]=$FERRY_PORT; PORT[2]=$(free_port); PORT[3]=$(free_port)
URLS="http://127.0.0.1:${PORT[1]},http://127.0.0.1:${PORT[2]},http://127.0.0.1:${PORT[3]}"
export FERRY_COORDINATOR=$URLS
start_node() { # N
  local join=()
  [ "$1" = 1 ] || join=(--join "http://127.0.0.1:${PORT[1]},http://127.0.0.1:${PORT[2]},http://127.0.0.1:${PORT[3]}")
  "$BIN/ferry" coordinator --node-id "$1" --data-dir "$WORK/n$1" --listen "127.0.0.1:${PORT[$1]}" \
    --lease-ms "$LEASE_MS" "${join[@]}" 2>>"$WORK/n$1.log" & NODE[$1]=$!
}
start_worker() { # SLOT
  local as=()
  [ "$LINK" = cut ] && as=(setpriv --reuid="ferry-chaos-$1" --regid="ferry-chaos-$1" --clear-groups)
  "${as[@]}" "$BIN/ferry-worker" --coordinator "$URLS" 2>>"$WORK/worker$1.log" & WORKER[$1]=$!
}
# The rule that drops worker SLOT's packets to every coordinator port.
link_rule() { # -I|-D SLOT
  iptables "$1" OUTPUT -o lo -p tcp -m owner --uid-owner "ferry-chaos-$2" \
    -m multiport --dports "${PORT[1]},${PORT[2]},${PORT[3]}" \
    -m comment --comment "$RULE_TAG" -j DROP
}
restore_links() {
  [ "$LINK" = cut ] || return 0
  local rules
  rules=$(iptables -S OUTPUT | grep -- "$RULE_TAG" || true)
  while read -r rule; do
    [ -n "$rule" ] && eval "iptables ${rule/#-A/-D}" || true
  done <<<"$rules"
}
busy_slot() { # a worker slot whose process holds a lease, if any
  local pids p w
  pids=$("$BIN/ferry" capacity --output json 2>/dev/null \
    | python3 -c 'import json,sys; print(" ".join(w["name"].rsplit(":",1)[-1] for w in json.load(sys.stdin)["busy_workers"]))' 2>/dev/null) || return 0
  for p in $pids; do
    for w in 1 2 3; do [ "${WORKER[$w]:-}" = "$p" ] && { echo "$w"; return 0; }; done
  done
}
kill9() { # PID: killed and reaped quietly
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
stop_all() {
  # Only these are waited for: a bare `wait` would also wait for mariadbd,
  # which cleanup stops.
  restore_links
  for p in "${NODE[@]}" "${WORKER[@]}"; do kill9 "$p"; done
  cleanup
}
trap stop_all EXIT
start_node 1
for _ in $(seq 100); do "$BIN/ferry" task list >/dev/null 2>&1 && break; sleep 0.2; done
start_node 2; start_node 3
for w in 1 2 3; do start_worker $w; done
leader() { # the leader's node id, as the given URLs (default: all) see it
  "$BIN/ferry" cluster status --output json --coordinator "${1:-$URLS}" 2>/dev/null \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader_id"] or "")' 2>/dev/null || true
}
voters() {
  "$BIN/ferry" cluster status --output json 2>/dev/null \
    | python3 -c 'import json,sys; print(sum(m["voter"] for m in json.load(sys.stdin)["members"]))' 2>/dev/null || echo 0
}
until [ "$(voters)" = 3 ]; do sleep 0.5; done

FAILOVERS=()
fault() { # KIND: inject it; appends to LOG
  local kind=$1 n w t0 others
  case $kind in
    leader|follower)
      n=$(leader)
      [ -n "$n" ] || { LOG+=" $kind(no-leader)"; return; }
      if [ "$kind" = follower ]; then n=$(( (n % 3) + 1 )); fi
      t0=$(now)
      kill9 "${NODE[$n]}"
      if [ "$kind" = leader ]; then
        others=""
        for m in 1 2 3; do [ "$m" = "$n" ] || others+="${others:+,}http://127.0.0.1:${PORT[$m]}"; done
        until l=$(leader "$others") && [ -n "$l" ] && [ "$l" != "$n" ]; do sleep 0.1; done
        FAILOVERS+=("$(printf "%.1f" "$(echo "$(now) - $t0" | bc)")")
      fi
      sleep 3; start_node "$n" ;;
    worker)
      w=$(( (RANDOM % 3) + 1 ))
      kill9 "${WORKER[$w]}"
      sleep 1; start_worker "$w" ;;
    link)
      # A worker holding work when there is one (a zombie with nothing
      # to write proves little), else any.
      w=$(busy_slot); [ -n "$w" ] || w=$(( (RANDOM % 3) + 1 ))
      if [ "$LINK" = cut ]; then
        link_rule -I "$w"
        sleep "$(echo "$LEASE_MS * 2.5 / 1000" | bc -l)"
        link_rule -D "$w"
      else
        kill -STOP "${WORKER[$w]}" 2>/dev/null || true
        sleep "$(echo "$LEASE_MS * 2.5 / 1000" | bc -l)"
        kill -CONT "${WORKER[$w]}" 2>/dev/null || true
      fi ;;
    source)
      if [ "$DIR" = pg ]; then
        $AS_PG "$PGBIN/pg_ctl" -D "$WORK/src" -m fast -w restart >/dev/null
      else
        kill -TERM "$MYSQLD"; wait "$MYSQLD" 2>/dev/null || true; run_mariadb
      fi ;;
    target)
      $AS_PG "$PGBIN/pg_ctl" -D "$WORK/dst" -m fast -w restart >/dev/null ;;
  esac
  LOG+=" ${kind}@$(printf "%.0f" "$(echo "$(now) - $RUN_T0" | bc)")s"
}

# Sorted dumps of both sides, compared as multisets: sets LOST, DOUBLED.
compare() {
  local db=$1 t a b
  LOST=0; DOUBLED=0; ROWS=0
  if [ "$DIR" = pg ]; then
    for t in pgbench_accounts pgbench_branches pgbench_tellers pgbench_history; do
      src bench -c "COPY (SELECT * FROM $t) TO STDOUT" | sort >"$WORK/a"
      dst "$db" -c "COPY (SELECT * FROM $t) TO STDOUT" | sort >"$WORK/b"
      LOST=$((LOST + $(comm -23 "$WORK/a" "$WORK/b" | wc -l)))
      DOUBLED=$((DOUBLED + $(comm -13 "$WORK/a" "$WORK/b" | wc -l)))
      ROWS=$((ROWS + $(wc -l <"$WORK/a")))
    done
  else
    for t in sbtest1 sbtest2 sbtest3 sbtest4; do
      my sbtest -e "SELECT id, k, c, pad FROM $t" | sort >"$WORK/a"
      dst "$db" -F $'\t' -c "SELECT id, k, rtrim(c), rtrim(pad) FROM sbtest.$t" | sort >"$WORK/b"
      LOST=$((LOST + $(comm -23 "$WORK/a" "$WORK/b" | wc -l)))
      DOUBLED=$((DOUBLED + $(comm -13 "$WORK/a" "$WORK/b" | wc -l)))
      ROWS=$((ROWS + $(wc -l <"$WORK/a")))
    done
  fi
}

# FAULT_KINDS="link link leader ..." weights the draw (default: each once).
read -r -a KINDS <<<"${FAULT_KINDS:-leader follower worker link source target}"
BAD=0; ALL_FAILOVERS=()
printf "seed %s; %s runs of %s s with %s faults each; link faults: %s\n" "$SEED" "$RUNS" "$SECS" "$FAULTS" "$LINK"
printf "%-4s %-6s %-64s %8s %6s %8s %s\n" RUN PATH FAULTS ROWS LOST DOUBLED FAILOVER_S
for run in $(seq "$RUNS"); do
  if [ $((run % 2)) = 1 ]; then DIR=pg; else DIR=my; fi
  db=chaos$run
  dst -c "CREATE DATABASE $db"
  if [ "$DIR" = pg ]; then
    source_url="postgres://postgres@127.0.0.1:$SRC_PORT/bench"
    pgbench -n -c 2 -j 2 -T "$SECS" -h 127.0.0.1 -p "$SRC_PORT" -U postgres bench >/dev/null 2>&1 & LOAD=$!
  else
    source_url="mysql://root@127.0.0.1:$MY_PORT/sbtest"
    "${SYSBENCH[@]}" --threads=2 --time="$SECS" --report-interval=0 run >/dev/null 2>&1 & LOAD=$!
  fi
  "$BIN/ferry" task create "$db" --type full-load-and-cdc --source "$source_url" \
    --target "postgres://postgres@127.0.0.1:$DST_PORT/$db" >/dev/null
  "$BIN/ferry" task start "$db" >/dev/null
  RUN_T0=$(now); LOG=""; FAILOVERS=()
  # Fault times: FAULTS distinct-ish seconds in [2, SECS-5], in order.
  times=$(for _ in $(seq "$FAULTS"); do echo $(( 2 + RANDOM % (SECS - 7) )); done | sort -n)
  for at in $times; do
    el=$(printf "%.0f" "$(echo "$(now) - $RUN_T0" | bc)")
    [ "$at" -gt "$el" ] && sleep $((at - el))
    fault "${KINDS[$((RANDOM % ${#KINDS[@]}))]}"
  done
  wait "$LOAD" 2>/dev/null || true
  if "$BIN/ferry" task wait "$db" --for caught-up --timeout 900 >"$WORK/wait.log" 2>&1; then
    compare "$db"
  else
    ROWS=-; LOST=-1; DOUBLED=-1; LOG+=" (did not catch up: $(tail -1 "$WORK/wait.log"))"
  fi
  printf "%-4s %-6s %-64s %8s %6s %8s %s\n" "$run" "$DIR" "${LOG# }" "$ROWS" "$LOST" "$DOUBLED" "${FAILOVERS[*]:--}"
  ALL_FAILOVERS+=("${FAILOVERS[@]}")
  [ "$LOST" = 0 ] && [ "$DOUBLED" = 0 ] || BAD=$((BAD + 1))
  "$BIN/ferry" task delete "$db" >/dev/null 2>&1 || true
done
if [ ${#ALL_FAILOVERS[@]} -gt 0 ]; then
  echo "leader failovers: ${#ALL_FAILOVERS[@]}, seconds $(stats "${ALL_FAILOVERS[@]}") (median (min-max))"
fi
[ "$BAD" = 0 ] || { echo "error: $BAD run(s) lost, doubled or did not catch up" >&2; exit 1; }
echo "no row lost or doubled in $RUNS runs"
