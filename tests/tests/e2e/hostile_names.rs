//! Names nobody here would choose: a schema, a table and columns whose names
//! hold `"`, `` ` ``, `'`, `;`, `--`, spaces, a backslash and non-ASCII,
//! migrated PostgreSQL → PostgreSQL, PostgreSQL → MariaDB and MariaDB →
//! PostgreSQL with full load and CDC (inserts, updates of the key and of
//! other columns, deletes). Every place that builds SQL from a catalog or a
//! mapping must quote them; the rows must arrive exact.
use ferry_tests::compare::*;
use ferry_tests::mariadb::MariaDbServer;
use ferry_tests::*;
use mysql_async::prelude::Queryable;

const SCHEMA: &str = "Sch \"ema\"; --x";
const TABLE: &str = "Tab`le 'ü'; DROP";
/// (name, PostgreSQL type, MySQL type)
const COLUMNS: [(&str, &str, &str); 5] = [
    ("id \"k\"", "int", "INT"),
    ("back`tick", "text", "TEXT"),
    ("semi;colon --", "numeric(10,2)", "DECIMAL(10,2)"),
    ("spa ce\\ü→", "varchar(20)", "VARCHAR(20)"),
    ("It's", "int", "INT"),
];

fn pg_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn my_ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

fn rows(from: i32, to: i32) -> String {
    (from..to)
        .map(|i| format!("({i}, 'v''{i}'';--', {i}.25, 'ü{i}', {})", i % 3))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every column as text, in column order.
fn select_all(ident: fn(&str) -> String, table: &str) -> String {
    let cols: Vec<String> = COLUMNS
        .iter()
        .map(|c| match ident("x").starts_with('"') {
            true => format!("{}::text", ident(c.0)),
            false => ident(c.0),
        })
        .collect();
    format!("SELECT {} FROM {table} ORDER BY 1", cols.join(", "))
}

/// Changes through CDC: inserts, an update of a non-key column, a key
/// update, deletes.
fn changes(ident: fn(&str) -> String, table: &str) -> Vec<String> {
    let (id, text, num) = (ident(COLUMNS[0].0), ident(COLUMNS[1].0), ident(COLUMNS[2].0));
    vec![
        format!("INSERT INTO {table} VALUES {}", rows(101, 151)),
        format!("UPDATE {table} SET {text} = 'changed \"; --', {num} = {num} + 1 WHERE {id} % 7 = 0"),
        format!("UPDATE {table} SET {id} = {id} + 1000 WHERE {id} = 5"),
        format!("DELETE FROM {table} WHERE {id} % 11 = 0"),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_identifiers_survive_load_and_cdc_on_both_engines() -> anyhow::Result<()> {
    let pg = PgServer::start()?;
    let my = MariaDbServer::start()?;
    let p = pg.client("postgres").await?;
    for db in ["src", "dst", "back"] {
        p.batch_execute(&format!("CREATE DATABASE {db}")).await?;
    }
    let src = pg.client("src").await?;
    let pg_table = format!("{}.{}", pg_ident(SCHEMA), pg_ident(TABLE));
    let cols: Vec<String> = COLUMNS.iter().map(|c| format!("{} {}", pg_ident(c.0), c.1)).collect();
    src.batch_execute(&format!(
        "CREATE SCHEMA {}; CREATE TABLE {pg_table} ({}, PRIMARY KEY ({})); INSERT INTO {pg_table} VALUES {}",
        pg_ident(SCHEMA),
        cols.join(", "),
        pg_ident(COLUMNS[0].0),
        rows(1, 101)
    ))
    .await?;
    // The same table as a MariaDB source (its database is the schema).
    let mut m = my.client("mysql").await?;
    let my_db = "my src; `db`";
    m.query_drop(format!("CREATE DATABASE {} CHARACTER SET utf8mb4", my_ident(my_db)))
        .await?;
    m.query_drop("CREATE DATABASE landing CHARACTER SET utf8mb4").await?;
    let my_table = format!("{}.{}", my_ident(my_db), my_ident(TABLE));
    let my_cols: Vec<String> = COLUMNS.iter().map(|c| format!("{} {}", my_ident(c.0), c.2)).collect();
    m.query_drop(format!(
        "CREATE TABLE {my_table} ({}, PRIMARY KEY ({}))",
        my_cols.join(", "),
        my_ident(COLUMNS[0].0)
    ))
    .await?;
    m.query_drop(format!("INSERT INTO {my_table} VALUES {}", rows(1, 101)))
        .await?;

    let f = Ferry::start(3, 3000, &[])?;
    // A MySQL database name in a URL path: percent-encoded.
    let enc: String = my_db
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let my_src = format!("mysql://root@127.0.0.1:{}/{enc}", my.port);
    for (name, source, target) in [
        ("pg2pg", pg.url("src"), pg.url("dst")),
        ("pg2my", pg.url("src"), my.url("landing")),
        ("my2pg", my_src.clone(), pg.url("back")),
    ] {
        create_typed(&f, name, &source, &target, "full-load-and-cdc", "{}", &[]);
        f.ok(&["task", "start", name]);
    }
    for name in ["pg2pg", "pg2my", "my2pg"] {
        wait_caught_up(&f, name);
    }
    for sql in changes(pg_ident, &pg_table) {
        src.batch_execute(&sql).await?;
    }
    for sql in changes(my_ident, &my_table) {
        m.query_drop(sql).await?;
    }
    for name in ["pg2pg", "pg2my", "my2pg"] {
        wait_caught_up(&f, name);
    }

    // Sorted here: each engine orders its text differently.
    let sorted = |mut rows: Vec<Vec<Option<String>>>| {
        rows.sort();
        rows
    };
    let want = sorted(pg_rows(&src, &select_all(pg_ident, &pg_table)).await?);
    assert_eq!(want.len(), 150 - 150 / 11, "source rows");
    let dst = pg.client("dst").await?;
    assert_eq!(
        pg_rows(&dst, &select_all(pg_ident, &pg_table)).await?,
        want,
        "PostgreSQL → PostgreSQL"
    );
    let landed = mysql_rows(
        &mut m,
        &select_all(my_ident, &format!("{}.{}", my_ident(SCHEMA), my_ident(TABLE))),
    )
    .await?;
    assert_eq!(sorted(landed), want, "PostgreSQL → MariaDB");
    let my_want = sorted(mysql_rows(&mut m, &select_all(my_ident, &my_table)).await?);
    assert_eq!(my_want, want, "both sources hold the same rows");
    let back = pg.client("back").await?;
    let back_table = format!("{}.{}", pg_ident(my_db), pg_ident(TABLE));
    assert_eq!(
        pg_rows(&back, &select_all(pg_ident, &back_table)).await?,
        want,
        "MariaDB → PostgreSQL"
    );
    Ok(())
}
