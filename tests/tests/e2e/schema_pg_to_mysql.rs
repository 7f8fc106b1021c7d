//! Schema conversion PostgreSQL → MariaDB on a schema with every object kind
//! PostgreSQL has (enums, domains, composite types, arrays, identity and
//! serial columns, a free sequence, expression / partial / GIN indexes,
//! checks, foreign keys, partitioning, views, a materialized view, a
//! PL/pgSQL trigger, SQL and PL/pgSQL functions, a procedure, comments,
//! collations): `ferry assess` reports it, `ferry schema convert` writes the
//! DDL, and a full-load task with `--schema-dir` creates it on MariaDB,
//! loads the rows, and the converted views, function, triggers and
//! constraints behave as on the source.
use ferry_tests::ddl::*;
use ferry_tests::mariadb::MariaDbServer;
use ferry_tests::samples::POSTGRES_SCHEMA as SCHEMA;
use ferry_tests::*;
use mysql_async::prelude::Queryable;

async fn one(m: &mut mysql_async::Conn, sql: &str) -> String {
    let v: Option<Option<String>> = m.query_first(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    v.flatten().unwrap_or_else(|| "NULL".into())
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_schema_converts_to_mysql() -> anyhow::Result<()> {
    let pg = PgServer::start()?;
    let my = MariaDbServer::start()?;
    let p = pg.client("postgres").await?;
    p.batch_execute(SCHEMA).await?;
    let f = Ferry::start(2, 5000, &[])?;
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("assess");
    let printed = f.ok(&[
        "assess",
        "--source",
        &pg.url("postgres"),
        "--target-engine",
        "mysql",
        "--target",
        &my.url("mysql"),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(printed.contains("premigration checks"), "{printed}");
    // Every converted statement was tried on MariaDB, which took them all,
    // and the trial's database is gone again.
    assert!(printed.contains("0 objects failed there"), "{printed}");
    let left: Vec<String> = my
        .client("mysql")
        .await?
        .query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'app'")
        .await?;
    assert!(left.is_empty(), "the trial left database app behind");
    // A database the target has already is not touched: its objects are
    // said to be untried.
    let mut m = my.client("mysql").await?;
    m.query_drop("CREATE DATABASE app").await?;
    let tried = dir.path().join("tried");
    let printed = f.ok(&[
        "schema",
        "convert",
        "--source",
        &pg.url("postgres"),
        "--target-engine",
        "mysql",
        "--target",
        &my.url("mysql"),
        "--out",
        tried.to_str().unwrap(),
    ]);
    assert!(
        printed.contains("objects not tried") && printed.contains("app.users"),
        "{printed}"
    );
    let tables: Vec<String> = m
        .query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'app'")
        .await?;
    assert!(
        tables.is_empty(),
        "the trial wrote into an existing database: {tables:?}"
    );
    m.query_drop("DROP DATABASE app").await?;
    let report = read_report(&out)?;
    let got = item_ids(&report);
    for id in [
        "TYPE-DOMAIN/app.email",
        "TYPE-ENUM/app.mood",
        "TYPE-COMPOSITE/app.address",
        "TYPE-ARRAY/app.users.tags",
        "COLLATION/app.users.name",
        "SEQUENCE/app.invoice_no",
        "INDEX-KIND/app.users.users_lower_name",
        "INDEX-KIND/app.users.users_active",
        "INDEX-KIND/app.users.users_tags",
        "KEY-LENGTH/app.users.email",
        "KEY-LENGTH/app.settings.key",
        "PARTITION/app.events",
        "VIEW-MATERIALIZED/app.mv_daily",
        "TRIGGER-EVENTS/app.invoices.invoices_touch",
        "ROUTINE-BODY/app.user_count",
        "ROUTINE-BODY/app.archive",
        "GENERATED/app.users.upper_name",
    ] {
        assert!(got.contains(&id.to_string()), "missing {id} in {got:?}");
    }
    assert_categories(
        &report,
        &[
            ("tables", 5, 1),
            ("types", 3, 0),
            ("views", 3, 1),
            ("triggers", 2, 0),
            ("functions", 2, 1),
            ("procedures", 1, 1),
            ("indexes", 4, 3),
            ("columns", 22, 0),
        ],
    );
    let checks = report["premigration_checks"].as_array().unwrap();
    let status = |id: &str| {
        checks
            .iter()
            .find(|c| c["id"] == id)
            .map(|c| c["status"].as_str().unwrap().to_string())
    };
    assert_eq!(status("PG-WAL-LEVEL").as_deref(), Some("passed"));
    assert_eq!(status("TARGET-LOCAL-INFILE").as_deref(), Some("passed"));

    let ddl = dir.path().join("ddl");
    schema_convert(&f, &pg.url("postgres"), "mysql", &ddl);
    // The files run with the mariadb client as they are (DELIMITER blocks included).
    let scratch = MariaDbServer::start()?;
    apply_with_mariadb(&scratch, &ddl);
    drop(scratch);
    create_full_load(
        &f,
        "conv",
        &pg.url("postgres"),
        &my.url("mysql"),
        "{}",
        &["--schema-dir", ddl.to_str().unwrap()],
    );
    f.ok(&["task", "start", "conv"]);
    let (ok, o, e) = f.ferry(&["task", "wait", "conv", "--for", "full-load", "--timeout", "300"]);
    assert!(ok, "wait failed: {o}{e}\nstatus: {:?}", f.status("conv"));

    let mut m = my.client("app").await?;
    for (t, n) in [
        ("users", 3),
        ("events", 3),
        ("invoices", 2),
        ("settings", 2),
        ("metrics", 2),
    ] {
        assert_eq!(
            one(&mut m, &format!("SELECT CAST(count(*) AS CHAR) FROM app.{t}")).await,
            n.to_string(),
            "app.{t}"
        );
    }
    assert_eq!(
        one(
            &mut m,
            "SELECT concat_ws('|', email, mood, home) FROM users WHERE id = 1"
        )
        .await,
        "a@x.io|sad|(\"1 Main St\",Oslo)"
    );
    assert_eq!(one(&mut m, "SELECT mood FROM users WHERE id = 2").await, "happy");
    // A generated column's values are copied (the column is a plain one here).
    assert_eq!(one(&mut m, "SELECT upper_name FROM users WHERE id = 1").await, "ANN");
    // A text primary key, bounded for MySQL's key; the unique email too.
    assert_eq!(
        one(&mut m, "SELECT `value` FROM settings WHERE `key` = 'theme'").await,
        "\"dark\""
    );
    assert!(
        m.query_drop("INSERT INTO users (email) VALUES ('a@x.io')")
            .await
            .is_err(),
        "unique email"
    );
    // Range partitions chained from MINVALUE became RANGE COLUMNS; the
    // foreign-keyed events table stayed whole (PARTITION item above).
    assert_eq!(
        one(
            &mut m,
            "SELECT CAST(count(*) AS CHAR) FROM metrics PARTITION (metrics_old)"
        )
        .await,
        "1"
    );
    assert!(
        m.query_drop("INSERT INTO metrics VALUES ('2027-01-01', 'cpu', 1)")
            .await
            .is_err(),
        "no partition"
    );
    // IF ... RAISE EXCEPTION became IF ... SIGNAL; ELSIF's assignment too.
    let e = m
        .query_drop("UPDATE users SET score = 5000 WHERE id = 1")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("score too high"), "{e}");
    m.query_drop("UPDATE users SET score = NULL WHERE id = 1").await?;
    assert_eq!(
        one(&mut m, "SELECT CAST(score AS CHAR) FROM users WHERE id = 1").await,
        "0.00"
    );
    // Views answer as on the source.
    let src: Vec<(i64, String, String)> = p
        .query(
            "SELECT id, email::text, spent::numeric(12,2)::text FROM app.v_user_totals ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let dst: Vec<(i64, String, String)> = m
        .query("SELECT id, email, CAST(CAST(spent AS DECIMAL(12,2)) AS CHAR) FROM v_user_totals ORDER BY id")
        .await?;
    assert_eq!(src, dst);
    let src: Vec<Option<String>> = p
        .query("SELECT label FROM app.v_labels ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let dst: Vec<Option<String>> = m.query("SELECT label FROM v_labels ORDER BY id").await?;
    assert_eq!(src, dst);
    let tax: String = p
        .query_one("SELECT app.add_tax(10)::numeric(12,2)::text", &[])
        .await?
        .get(0);
    assert_eq!(
        one(&mut m, "SELECT CAST(CAST(add_tax(10) AS DECIMAL(12,2)) AS CHAR)").await,
        tax
    );
    // The trigger (one per event), AUTO_INCREMENT past the loaded keys, checks, keys.
    m.query_drop("INSERT INTO invoices (user_id, total) VALUES (3, 1.00)")
        .await?;
    assert_eq!(
        one(
            &mut m,
            "SELECT CAST(updated IS NOT NULL AS CHAR) FROM invoices WHERE user_id = 3"
        )
        .await,
        "1"
    );
    assert_eq!(
        // 1000 and 1001 loaded, 1002..1006 drawn on the source since.
        one(&mut m, "SELECT CAST(max(no) AS CHAR) FROM invoices").await,
        "1007"
    );
    assert!(
        m.query_drop("UPDATE users SET mood = 'angry' WHERE id = 1")
            .await
            .is_err(),
        "enum check"
    );
    assert!(
        m.query_drop("UPDATE users SET score = -1 WHERE id = 1").await.is_err(),
        "check"
    );
    assert!(
        m.query_drop("INSERT INTO invoices (user_id, total) VALUES (999, 1)")
            .await
            .is_err(),
        "foreign key"
    );
    Ok(())
}

/// Same engine: the DDL copies every object as the source defines it, and
/// psql applies both files to an empty database without error.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_schema_copies_to_postgres() -> anyhow::Result<()> {
    let pg = PgServer::start()?;
    let p = pg.client("postgres").await?;
    p.batch_execute(SCHEMA).await?;
    p.batch_execute("CREATE DATABASE copy").await?;
    let f = Ferry::start(1, 5000, &[])?;
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("assess");
    f.ok(&[
        "assess",
        "--source",
        &pg.url("postgres"),
        "--target-engine",
        "postgres",
        "--out",
        out.to_str().unwrap(),
        "--fail-on",
        "high",
    ]);
    let report = read_report(&out)?;
    assert_eq!(report["summary"]["needing_action"], 0, "{}", report["action_items"]);
    let ddl = dir.path().join("ddl");
    schema_convert(&f, &pg.url("postgres"), "postgres", &ddl);
    apply_with_psql(&pg, "copy", &ddl);
    let catalog = "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'app' AND c.relkind IN ('r','p','v','m','S','i'))::text
                        || '/' || (SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal)::text
                        || '/' || (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'app')::text
                        || '/' || (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'app' AND t.typtype IN ('e','d'))::text
                        || '/' || (SELECT count(*) FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace WHERE n.nspname = 'app')::text
                        || '/' || (SELECT count(*) FROM pg_description d JOIN pg_class c ON c.oid = d.objoid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'app')::text";
    let src: String = p.query_one(catalog, &[]).await?.get(0);
    let dst: String = pg.client("copy").await?.query_one(catalog, &[]).await?.get(0);
    assert_eq!(src, dst, "relations/triggers/functions/types/constraints/comments");
    Ok(())
}

/// The data path's own table creation (no --schema-dir) bounds TEXT keys
/// the same way: a text primary key loads into MariaDB.
#[tokio::test(flavor = "multi_thread")]
async fn data_path_bounds_text_keys_for_mysql() -> anyhow::Result<()> {
    let pg = PgServer::start()?;
    let my = MariaDbServer::start()?;
    pg.client("postgres").await?.batch_execute(SCHEMA).await?;
    let f = Ferry::start(1, 5000, &[])?;
    let dir = tempfile::tempdir()?;
    let mappings = dir.path().join("mappings.json");
    std::fs::write(
        &mappings,
        r#"{"rules": [{"rule-type": "selection", "rule-id": "1", "rule-name": "1",
            "object-locator": {"schema-name": "app", "table-name": "settings"}, "rule-action": "include"}]}"#,
    )?;
    create_full_load(
        &f,
        "keys",
        &pg.url("postgres"),
        &my.url("mysql"),
        "{}",
        &["--table-mappings", mappings.to_str().unwrap()],
    );
    f.ok(&["task", "start", "keys"]);
    let (ok, o, e) = f.ferry(&["task", "wait", "keys", "--for", "full-load", "--timeout", "120"]);
    assert!(ok, "wait failed: {o}{e}\nstatus: {:?}", f.status("keys"));
    let mut m = my.client("app").await?;
    assert_eq!(one(&mut m, "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = 'settings' AND COLUMN_NAME = 'key'").await, "varchar(768)");
    assert_eq!(one(&mut m, "SELECT CAST(count(*) AS CHAR) FROM settings").await, "2");
    Ok(())
}
