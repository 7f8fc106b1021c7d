//! MariaDB → PostgreSQL full load: a column of every MySQL type family with
//! edge values, a 60,000-row table and a composite-key table cut into
//! several segments, loaded by 2 workers; then every value is compared with
//! the source through the documented type mapping (docs/type-mapping.md).
use ferry_tests::compare::*;
use ferry_tests::mariadb::{create_sample, MariaDbServer};
use ferry_tests::*;
use mysql_async::prelude::Queryable;

#[tokio::test(flavor = "multi_thread")]
async fn mysql_full_load_keeps_every_value() -> anyhow::Result<()> {
    let my = MariaDbServer::start()?;
    let pg = PgServer::start()?;
    let mut m = my.client("mysql").await?;
    m.query_drop("CREATE DATABASE shop CHARACTER SET utf8mb4").await?;
    let mut m = my.client("shop").await?;
    create_sample(&mut m).await?;

    // Neither server's zone is UTC, so an hour drift in TIMESTAMP would show.
    pg.client("postgres")
        .await?
        .batch_execute("ALTER DATABASE postgres SET timezone = 'America/New_York'")
        .await?;
    let f = Ferry::start(2, 5000, &[])?;
    // Small segments so big and pairs are cut into several.
    create_full_load(
        &f,
        "my",
        &my.url("shop"),
        &pg.url("postgres"),
        r#"{"Ferry": {"SegmentTargetBytes": 262144, "SplitTablesLargerThan": 0}}"#,
        &[],
    );
    f.ok(&["task", "start", "my"]);
    let (ok, out, err) = f.ferry(&["task", "wait", "my", "--for", "full-load", "--timeout", "300"]);
    let st = f.status("my");
    assert!(
        ok,
        "wait failed: {out}{err}\nstatus: {st:?}\nworkers: {}",
        f.workers[0].log_text()
    );
    let st = st.unwrap();
    for t in st["tables"].as_array().unwrap() {
        assert_eq!(t["state"], "Table completed", "{t}");
    }
    let segs = |n: &str| table_status(&st, n)["segments_total"].as_u64().unwrap();
    assert!(segs("big") >= 3 && segs("pairs") >= 2, "{st}");
    assert_eq!(table_status(&st, "odd")["exceptions"], 2, "{st}");
    assert_eq!(table_status(&st, "kinds")["exceptions"], 0, "{st}");

    let p = pg.client("postgres").await?;
    p.batch_execute("SET TimeZone = 'UTC'").await?;
    // Every value of kinds, through the mapping.
    let my_sql: Vec<&str> = MYSQL_PG_KINDS.iter().map(|c| c.1).collect();
    let a = mysql_rows(&mut m, &format!("SELECT {} FROM kinds", my_sql.join(", "))).await?;
    assert_eq!(a.len(), 4);
    assert_mysql_pg_sample(&mut m, &p).await?;
    // Types on the target are the documented ones.
    let types = pg_rows(
        &p,
        "SELECT column_name::text, format_type(atttypid, atttypmod) FROM information_schema.columns c
           JOIN pg_attribute a ON a.attrelid = 'shop.kinds'::regclass AND a.attname = c.column_name
          WHERE table_schema = 'shop' AND table_name = 'kinds' ORDER BY ordinal_position",
    )
    .await?;
    let ty = |n: &str| {
        types.iter().find(|r| r[0].as_deref() == Some(n)).unwrap()[1]
            .clone()
            .unwrap()
    };
    assert_eq!(ty("u64"), "numeric(20,0)");
    assert_eq!(ty("dec65"), "numeric(65,30)");
    assert_eq!(ty("ts"), "timestamp(6) with time zone");
    assert_eq!(ty("tm"), "interval");
    assert_eq!(ty("j"), "jsonb");
    assert_eq!(ty("b"), "bit(12)");

    // Rows PostgreSQL cannot store went to the exceptions table, with why.
    let odd = pg_rows(&p, "SELECT string_agg(id::text, ',') FROM shop.odd").await?;
    assert_eq!(odd[0][0].as_deref(), Some("1"));
    let ex = pg_rows(
        &p,
        "SELECT table_name, reason, row_image FROM ferry.apply_exceptions WHERE task = 'my' ORDER BY reason",
    )
    .await?;
    assert_eq!(ex.len(), 2, "{ex:?}");
    assert!(ex[0][1].as_deref().unwrap().contains("NUL"), "{ex:?}");
    assert!(ex[1][1].as_deref().unwrap().contains("year 0"), "{ex:?}");
    // Named as the change path names them: schema.table, unquoted.
    assert!(ex.iter().all(|r| r[0].as_deref() == Some("shop.odd")), "{ex:?}");
    // Keys, indexes, the foreign key and the identity came across.
    let defs = pg_rows(
        &p,
        "SELECT string_agg(indexdef, '; ' ORDER BY indexdef) FROM pg_indexes WHERE schemaname = 'shop'",
    )
    .await?;
    let defs = defs[0][0].clone().unwrap();
    for want in ["big_by_k", "parent_name", "big_pkey", "pairs_pkey"] {
        assert!(defs.contains(want), "index {want} missing: {defs}");
    }
    let fk = pg_rows(
        &p,
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'shop.child'::regclass AND contype = 'f'",
    )
    .await?;
    assert!(fk[0][0].as_deref().unwrap().contains("ON DELETE CASCADE"), "{fk:?}");
    let next = pg_rows(&p, "INSERT INTO shop.kinds (i8) VALUES (7) RETURNING id::text").await?;
    assert_eq!(
        next[0][0].as_deref(),
        Some("5"),
        "identity continues past the loaded maximum"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slot_name_for_a_mysql_source_is_refused_at_create() -> anyhow::Result<()> {
    let f = Ferry::start(0, 5000, &[])?;
    let (ok, _, err) = f.ferry(&[
        "task",
        "create",
        "x",
        "--source",
        "mysql://root@127.0.0.1:1/shop",
        "--target",
        "postgres://postgres@127.0.0.1:1/db",
        "--type",
        "full-load-and-cdc",
        "--slot-name",
        "mine",
    ]);
    assert!(!ok && err.contains("no replication slots"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    Ok(())
}
