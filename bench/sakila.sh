#!/usr/bin/env bash
# Outside data through both paths: the Sakila sample database (jOOQ's
# PostgreSQL port: enums, domains, tsvector with its trigger, bytea,
# inheritance-partitioned payments, ON UPDATE CASCADE keys) migrated by a
# full-load-and-cdc task from PostgreSQL to PostgreSQL and to MariaDB while
# writes run on every table, the draining worker killed once. Every table is
# then compared independently (PostgreSQL target: an md5 of every row's
# text, table by table; MariaDB target: row counts, the `public` schema
# becoming database `public`) and by `ferry validate`. Inserts are checked
# (ApplyErrorInsertPolicy LOG_ERROR) as updates and deletes are: no change
# may be recorded as a conflict, since nothing else writes the target.
#
#   bench/sakila.sh SAKILA_DIR
#
# SAKILA_DIR holds postgres-sakila-schema.sql and
# postgres-sakila-insert-data-using-copy.sql (github.com/jOOQ/sakila,
# postgres-sakila-db/). Not a CI test: the data is not part of Ferry.
set -euo pipefail
DIR=${1:?usage: bench/sakila.sh SAKILA_DIR}
DIR=$(cd "$DIR" && pwd)
for f in postgres-sakila-schema.sql postgres-sakila-insert-data-using-copy.sql; do
  [ -r "$DIR/$f" ] || { echo "error: $DIR/$f is missing" >&2; exit 2; }
done
source "$(dirname "$0")/lib.sh"

src -c "CREATE DATABASE sakila"; dst -c "CREATE DATABASE sakila"
src sakila -v ON_ERROR_STOP=1 -f "$DIR/postgres-sakila-schema.sql" >/dev/null
src sakila -v ON_ERROR_STOP=1 -f "$DIR/postgres-sakila-insert-data-using-copy.sql" >/dev/null
# Keyless tables (the payment children: INHERITS copies no key) publish
# their updates only with a replica identity, as docs/cli.md tells users.
for t in $(src sakila -c "SELECT c.oid::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind = 'r'
      AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)"); do
  src sakila -c "ALTER TABLE $t REPLICA IDENTITY FULL"
done
TABLES=$(src sakila -c "SELECT string_agg(relname, ' ' ORDER BY relname) FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND relkind = 'r'")
echo "source: $(echo "$TABLES" | wc -w) tables"

# Round $1 of writes touching every table: inserts with non-ASCII text,
# updates (fulltext recomputed by the source's trigger, a bytea picture,
# amounts), primary-key changes cascading to referencing rows, deletes.
writes() {
  local r=$1
  src sakila -v ON_ERROR_STOP=1 >/dev/null <<SQL
BEGIN;
INSERT INTO actor (first_name, last_name) VALUES ('ZOË $r', 'NAÏVE ''q'' \\ $r');
UPDATE actor SET actor_id = actor_id + 100000 WHERE actor_id = (SELECT min(actor_id) FROM actor WHERE actor_id < 100000 AND actor_id % 7 = $r % 7);
UPDATE film SET description = description || ' — re-cut $r', rental_rate = rental_rate + 0.01, special_features = special_features || '{Director''s Cut}'::text[] WHERE film_id % 50 = $r % 50;
INSERT INTO film_actor (actor_id, film_id) SELECT (SELECT max(actor_id) FROM actor), film_id FROM film WHERE film_id % 97 = $r % 97 ON CONFLICT DO NOTHING;
DELETE FROM film_category WHERE film_id = (SELECT min(film_id) FROM film_category WHERE film_id % 11 = $r % 11);
UPDATE customer SET email = 'u$r@例え.jp', activebool = NOT activebool WHERE customer_id % 40 = $r % 40;
UPDATE staff SET picture = decode(repeat('00ff7f80', $r % 50 + 1), 'hex') WHERE staff_id = 1 + $r % 2;
INSERT INTO rental (rental_date, inventory_id, customer_id, staff_id) VALUES (now() + interval '$r seconds', (SELECT min(inventory_id) FROM inventory WHERE inventory_id >= 1 + $r % 4000), 1 + $r % 500, 1 + $r % 2);
UPDATE rental SET return_date = now() WHERE rental_id % 300 = $r % 300 AND return_date IS NULL;
INSERT INTO payment (customer_id, staff_id, rental_id, amount, payment_date) VALUES (1 + $r % 500, 1, (SELECT min(rental_id) FROM rental WHERE rental_id >= 1 + $r % 16000), $r % 12 + 0.99, '2007-0$((r % 6 + 1))-15 12:00:00');
UPDATE payment_p2007_0$((r % 6 + 1)) SET amount = amount + 1 WHERE payment_id % 500 = $r % 500;
DELETE FROM payment_p2007_0$((r % 6 + 1)) WHERE payment_id = (SELECT min(payment_id) FROM payment_p2007_0$((r % 6 + 1)) WHERE payment_id % 13 = $r % 13);
UPDATE address SET phone = '+1 $r', address2 = NULL WHERE address_id % 60 = $r % 60;
UPDATE city SET city = city || ' ✓' WHERE city_id = 1 + $r % 600;
UPDATE inventory SET store_id = 3 - store_id WHERE inventory_id % 900 = $r % 900;
COMMIT;
SQL
}

digest() { # side table -> md5 of every row's text form
  "$1" sakila -c "SELECT count(*) || ' ' || coalesce(md5(string_agg(t::text, E'\n' ORDER BY t::text)), '') FROM ONLY public.\"$2\" t"
}

run() { # name target-url
  local name=$1 target=$2
  cat > "$WORK/settings.json" <<'JSON'
{"ValidationSettings": {"EnableValidation": true}, "Ferry": {"SegmentTargetBytes": 1048576},
 "ErrorBehavior": {"ApplyErrorInsertPolicy": "LOG_ERROR"}}
JSON
  "$BIN/ferry" task create "$name" --source "postgresql://postgres@127.0.0.1:$SRC_PORT/sakila" \
    --target "$target" --type full-load-and-cdc --settings "$WORK/settings.json" >/dev/null
  "$BIN/ferry" task start "$name" >/dev/null
  local r=$((RANDOM))
  for i in $(seq 20); do writes $((r + i)); done    # during the full load
  "$BIN/ferry" task wait "$name" --for caught-up --timeout 600 >/dev/null
  "$BIN/ferry" task stop "$name" >/dev/null
  for i in $(seq 21 120); do writes $((r + i)); done # a backlog
  "$BIN/ferry" task start "$name" >/dev/null
  sleep 1
  # Every worker killed while the backlog drains; fresh ones resume (more
  # than one: the stream holds a slot, validation needs others).
  kill -9 "${FERRY_PIDS[@]:1}" 2>/dev/null || true
  for _ in 1 2 3; do
    "$BIN/ferry-worker" --coordinator "$FERRY_COORDINATOR" 2>>"$WORK/workers.log" & FERRY_PIDS+=($!)
  done
  for i in $(seq 121 160); do writes $((r + i)); done
  "$BIN/ferry" task wait "$name" --for caught-up --timeout 600 >/dev/null
  # Validation compares while the stream runs; wait for its verdict.
  local out
  for _ in $(seq 300); do
    out=$("$BIN/ferry" validate "$name" 2>&1) && break
    case $out in *"still running"*) sleep 1 ;; *) break ;; esac
  done
  "$BIN/ferry" task status "$name" >"$WORK/status.txt"
  head -3 "$WORK/status.txt"
  echo "$out"
}

start_ferry
echo "== PostgreSQL -> PostgreSQL"
run sakila_pg "postgresql://postgres@127.0.0.1:$DST_PORT/sakila"
bad=0
for t in $TABLES; do
  a=$(digest src "$t"); b=$(digest dst "$t")
  if [ "$a" = "$b" ]; then echo "  $t: identical (${a%% *} rows)"; else echo "  $t: DIFFERS source $a target $b"; bad=1; fi
done
# Nobody writes the target: every checked insert, update and delete must
# find the row as the source left it (a conflict here is a false one).
n=$(dst sakila -c "SELECT count(*) FROM ferry.apply_exceptions WHERE phase = 'cdc'")
echo "  apply conflicts recorded: $n"; [ "$n" = 0 ] || bad=1
"$BIN/ferry" task delete sakila_pg >/dev/null

start_mariadb
echo "== PostgreSQL -> MariaDB"
mariadb -h 127.0.0.1 -P "$MY_PORT" -u root -e "CREATE DATABASE landing"
run sakila_my "mysql://root@127.0.0.1:$MY_PORT/landing"
for t in $TABLES; do
  a=$(src sakila -c "SELECT count(*) FROM ONLY public.\"$t\"")
  b=$(mariadb -N -h 127.0.0.1 -P "$MY_PORT" -u root -e "SELECT count(*) FROM public.\`$t\`" 2>&1 || true)
  if [ "$a" = "$b" ]; then echo "  $t: $a rows on both"; else echo "  $t: DIFFERS source $a target $b"; bad=1; fi
done
n=$(mariadb -N -h 127.0.0.1 -P "$MY_PORT" -u root -e "SELECT count(*) FROM ferry.apply_exceptions WHERE phase = 'cdc'")
echo "  apply conflicts recorded: $n"; [ "$n" = 0 ] || bad=1
stop_ferry
exit $bad
