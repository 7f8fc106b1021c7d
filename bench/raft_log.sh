#!/usr/bin/env bash
# Raft log bound under a long CDC run: three coordinator nodes, a
# full-load-and-cdc pgbench task, pgbench writing for SECS seconds (3600).
# Every SAMPLE seconds (30) prints, per node: its last log index, the index
# its log is purged up to, the entries on disk (their difference) and the
# size of its RocksDB directory; at the end the largest of each, and the
# bound the configuration promises (about 1.2 x SNAPSHOT_LOGS entries,
# plus those not yet applied). Exits non-zero if a node's log grew past
# twice SNAPSHOT_LOGS entries.
#   [SCALE=10] [CLIENTS=2] [RATE=200] [SAMPLE=30] [SNAPSHOT_LOGS=5000] bench/raft_log.sh [SECS=3600]
# RATE is pgbench's transactions per second (-R): a steady production-like
# write load, not a flood. FERRY_BIN=target/debug uses the debug build.
set -euo pipefail
SECS=${1:-3600}; SCALE=${SCALE:-10}; CLIENTS=${CLIENTS:-2}; RATE=${RATE:-200}
SAMPLE=${SAMPLE:-30}; SNAPSHOT_LOGS=${SNAPSHOT_LOGS:-5000}
. "$(dirname "$0")/lib.sh"
pgbench_source "$SCALE"
dst -c "CREATE DATABASE bench"
P2=$(free_port); P3=$(free_port)
URLS="http://127.0.0.1:$FERRY_PORT,http://127.0.0.1:$P2,http://127.0.0.1:$P3"
NODE_PIDS=()
"$BIN/ferry" coordinator --node-id 1 --data-dir "$WORK/n1" --listen "127.0.0.1:$FERRY_PORT" \
  --snapshot-logs "$SNAPSHOT_LOGS" 2>"$WORK/n1.log" & NODE_PIDS+=($!)
for n in 2 3; do
  port=$([ $n = 2 ] && echo "$P2" || echo "$P3")
  "$BIN/ferry" coordinator --node-id $n --data-dir "$WORK/n$n" --listen "127.0.0.1:$port" \
    --join "http://127.0.0.1:$FERRY_PORT" --snapshot-logs "$SNAPSHOT_LOGS" 2>"$WORK/n$n.log" & NODE_PIDS+=($!)
done
for _ in $(seq 3); do
  "$BIN/ferry-worker" --coordinator "$URLS" 2>>"$WORK/workers.log" & NODE_PIDS+=($!)
done
trap 'kill "${NODE_PIDS[@]}" 2>/dev/null || true; cleanup' EXIT
export FERRY_COORDINATOR=$URLS
for _ in $(seq 100); do "$BIN/ferry" task list >/dev/null 2>&1 && break; sleep 0.2; done
"$BIN/ferry" task create raftlog --type full-load-and-cdc \
  --source "postgres://postgres@127.0.0.1:$SRC_PORT/bench" \
  --target "postgres://postgres@127.0.0.1:$DST_PORT/bench" >/dev/null
"$BIN/ferry" task start raftlog >/dev/null
"$BIN/ferry" task wait raftlog --for full-load --timeout 3600 >/dev/null
echo "full load done; pgbench -R $RATE for $SECS s"
pgbench -n -c "$CLIENTS" -j "$CLIENTS" -R "$RATE" -T "$SECS" -h 127.0.0.1 -p "$SRC_PORT" -U postgres bench \
  >"$WORK/pgbench.log" 2>&1 & LOAD=$!
MAX_ENTRIES=0; MAX_KB=0
printf "%8s %5s %10s %10s %8s %8s\n" SECONDS NODE LAST PURGED ENTRIES KB
t0=$(date +%s)
sample() {
  local el; el=$(($(date +%s) - t0))
  for n in 1 2 3; do
    port=$([ $n = 1 ] && echo "$FERRY_PORT" || { [ $n = 2 ] && echo "$P2" || echo "$P3"; })
    json=$("$BIN/ferry" cluster status --output json --coordinator "http://127.0.0.1:$port" 2>/dev/null) || continue
    last=$(echo "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["last_log_index"] or 0)')
    purged=$(echo "$json" | python3 -c 'import json,sys; p=json.load(sys.stdin)["purged_index"]; print(-1 if p is None else p)')
    entries=$((last - purged))
    kb=$(du -sk "$WORK/n$n/raft" | cut -f1)
    printf "%8s %5s %10s %10s %8s %8s\n" "$el" "$n" "$last" "$purged" "$entries" "$kb"
    if [ "$entries" -gt "$MAX_ENTRIES" ]; then MAX_ENTRIES=$entries; fi
    if [ "$kb" -gt "$MAX_KB" ]; then MAX_KB=$kb; fi
  done
}
while kill -0 "$LOAD" 2>/dev/null; do sample; sleep "$SAMPLE"; done
sample
"$BIN/ferry" task wait raftlog --for caught-up --timeout 600 >/dev/null
echo "pgbench: $(grep -E '^tps' "$WORK/pgbench.log" | head -1)"
echo "largest log on disk: $MAX_ENTRIES entries, RocksDB dir $MAX_KB KiB (bound: about $((SNAPSHOT_LOGS * 6 / 5)) entries plus unapplied)"
[ "$MAX_ENTRIES" -le $((SNAPSHOT_LOGS * 2)) ] || { echo "error: the log grew past twice --snapshot-logs" >&2; exit 1; }
