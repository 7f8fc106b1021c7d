#!/usr/bin/env bash
# What the apply-conflict checks (worker/src/pipeline/conflict.rs) cost the
# target: the same set-based CDC batches applied to a throwaway PostgreSQL
# server in three forms, as the applier writes them:
#   plain     UPDATE ... FROM (VALUES ...): no check (before the checks).
#   returning WITH ferry_u AS (UPDATE ... RETURNING ferry_n) SELECT the rows
#             it did not update: the form the PostgreSQL dialect uses.
#   antijoin  a separate SELECT ... WHERE NOT EXISTS of the keys, then the
#             plain UPDATE: the generic form (and MySQL's shape).
# Each batch updates BATCH keys of pgbench_accounts (scale SCALE) in one
# transaction, BATCHES batches per run, literals quoted and cast as the
# applier's are. Before each form the server is warmed the same way
# (CHECKPOINT, the table read once); the forms run RUNS times in rotating
# order; medians and spread (min-max) of the wall time are printed.
#   [RUNS=3] [SCALE=10] [BATCH=500] [BATCHES=200] bench/apply_checks.sh
set -euo pipefail
RUNS=${RUNS:-3}; SCALE=${SCALE:-10}; BATCH=${BATCH:-500}; BATCHES=${BATCHES:-200}
PGBIN=$(pg_config --bindir)
work=$(mktemp -d /tmp/ferry-bench-checks.XXXX)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$work"
port=$((20000 + RANDOM % 20000))
cleanup() { as_pg "$PGBIN/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
as_pg "$PGBIN/initdb" --no-sync -A trust -U postgres -D "$work/data" >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$work/data" -l "$work/log" -w \
  -o "-p $port -k $work -c listen_addresses=127.0.0.1 -c shared_buffers=512MB -c synchronous_commit=off" start >/dev/null
psql=("$PGBIN/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1)
"$PGBIN/pgbench" -i -q -s "$SCALE" -h 127.0.0.1 -p "$port" -U postgres postgres >/dev/null 2>&1

# One SQL file per form: the same keys and values in each.
python3 - "$work" "$SCALE" "$BATCH" "$BATCHES" <<'EOF'
import random, sys
work, scale, batch, batches = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rnd = random.Random(7)
t = '"public"."pgbench_accounts"'
forms = {"plain": [], "returning": [], "antijoin": []}
for b in range(batches):
    keys = rnd.sample(range(1, scale * 100000 + 1), batch)
    rows = [(k, rnd.randint(-5000, 5000)) for k in keys]
    vals = ", ".join(f"('{k}', '{v}')" for k, v in rows)
    numbered = ", ".join(f"({i}, '{k}', '{v}')" for i, (k, v) in enumerate(rows))
    plain = (f'UPDATE {t} AS ferry_t SET "abalance" = ferry_v."abalance"::integer FROM (VALUES {vals}) '
             f'AS ferry_v ("aid", "abalance") WHERE ferry_t."aid" = ferry_v."aid"::integer;')
    returning = (f'WITH ferry_u AS (UPDATE {t} AS ferry_t SET "abalance" = ferry_v."abalance"::integer '
                 f'FROM (VALUES {numbered}) AS ferry_v (ferry_n, "aid", "abalance") '
                 f'WHERE ferry_t."aid" = ferry_v."aid"::integer RETURNING ferry_v.ferry_n) '
                 f'SELECT {b}::int8, ferry_i FROM generate_series(0, {batch - 1}) AS ferry_i '
                 f'WHERE ferry_i NOT IN (SELECT ferry_n FROM ferry_u);')
    keylist = ", ".join(f"({i}, '{k}')" for i, (k, _) in enumerate(rows))
    antijoin = (f'SELECT {b}::int8, ferry_v.ferry_n FROM (VALUES {keylist}) AS ferry_v (ferry_n, "aid") '
                f'WHERE NOT EXISTS (SELECT 1 FROM {t} AS ferry_t WHERE ferry_t."aid" = ferry_v."aid"::integer); ' + plain)
    for name, sql in (("plain", plain), ("returning", returning), ("antijoin", antijoin)):
        forms[name].append(f"BEGIN; {sql} COMMIT;")
for name, stmts in forms.items():
    with open(f"{work}/{name}.sql", "w") as f:
        f.write("\n".join(stmts) + "\n")
EOF

forms=(plain returning antijoin)
declare -A times
for run in $(seq 1 "$RUNS"); do
  order=("${forms[@]:$(( (run - 1) % 3 ))}" "${forms[@]:0:$(( (run - 1) % 3 ))}")
  for form in "${order[@]}"; do
    "${psql[@]}" -c "CHECKPOINT" -c "SELECT sum(abalance) FROM pgbench_accounts" >/dev/null
    start=$(date +%s.%N)
    "${psql[@]}" -o /dev/null -f "$work/$form.sql"
    end=$(date +%s.%N)
    t=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
    times[$form]+="$t "
    printf 'run %d %-9s %6.2f s\n' "$run" "$form" "$t"
  done
done
echo "form       median   spread        rows/s (median)"
for form in "${forms[@]}"; do
  read -r -a ts <<<"${times[$form]}"
  sorted=$(printf '%s\n' "${ts[@]}" | sort -n)
  median=$(echo "$sorted" | sed -n "$(( (${#ts[@]} + 1) / 2 ))p")
  printf '%-9s %7.2f s  %s-%s s  %8.0f\n' "$form" "$median" "$(echo "$sorted" | head -1)" "$(echo "$sorted" | tail -1)" \
    "$(awk -v n=$((BATCH * BATCHES)) -v t="$median" 'BEGIN { print n / t }')"
done
