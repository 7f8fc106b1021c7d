//! Same-engine schema copy MariaDB → MariaDB: nothing needs action, the
//! `mariadb` client applies both files (DELIMITER blocks included) to an
//! empty server whose catalog then matches the source's object for object,
//! and a full-load task with `--schema-dir` loads the rows into another.
use ferry_tests::ddl::*;
use ferry_tests::mariadb::MariaDbServer;
use ferry_tests::*;
use mysql_async::prelude::Queryable;

/// Object counts of database `shop` by kind.
const CATALOG: &str = "SELECT CONCAT_WS('/',
    (SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop' AND TABLE_TYPE = 'BASE TABLE'),
    (SELECT count(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = 'shop'),
    (SELECT count(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'shop'),
    (SELECT count(DISTINCT TABLE_NAME, INDEX_NAME) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = 'shop'),
    (SELECT count(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'shop'),
    (SELECT count(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'shop'),
    (SELECT count(*) FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = 'shop'),
    (SELECT count(*) FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = 'shop' AND PARTITION_NAME IS NOT NULL),
    (SELECT count(*) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = 'shop'),
    (SELECT count(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'shop' AND COLUMN_COMMENT <> ''),
    (SELECT count(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'shop' AND EXTRA LIKE '%on update%'),
    (SELECT count(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'shop' AND GENERATION_EXPRESSION IS NOT NULL AND GENERATION_EXPRESSION <> ''),
    (SELECT GROUP_CONCAT(COLUMN_NAME, ':', COLLATION_NAME ORDER BY COLUMN_NAME) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'shop' AND COLLATION_NAME LIKE 'latin1%'))";

#[tokio::test(flavor = "multi_thread")]
async fn mysql_schema_copies_to_mysql() -> anyhow::Result<()> {
    let src = MariaDbServer::start()?;
    let copy = MariaDbServer::start()?;
    let dst = MariaDbServer::start()?;
    let mut m = load_mariadb_sample(&src).await?;
    let f = Ferry::start(2, 5000, &[])?;
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("assess");
    f.ok(&[
        "assess",
        "--source",
        &src.url("shop"),
        "--target-engine",
        "mysql",
        "--out",
        out.to_str().unwrap(),
        "--type",
        "full-load",
        "--fail-on",
        "high",
    ]);
    let report = read_report(&out)?;
    assert_eq!(report["summary"]["needing_action"], 0, "{}", report["action_items"]);
    let ddl = dir.path().join("ddl");
    schema_convert(&f, &src.url("shop"), "mysql", &ddl);

    // The mysql client runs the files as they are.
    apply_with_mariadb(&copy, &ddl);
    let want: Option<String> = m.query_first(CATALOG).await?;
    let got: Option<String> = copy.client("mysql").await?.query_first(CATALOG).await?;
    assert_eq!(
        want, got,
        "tables/views/columns/indexes/triggers/routines/checks/partitions/fks/comments/on-update/generated/collations"
    );

    // A task loads into the files' schema.
    create_full_load(
        &f,
        "copy",
        &src.url("shop"),
        &dst.url("mysql"),
        "{}",
        &["--schema-dir", ddl.to_str().unwrap()],
    );
    f.ok(&["task", "start", "copy"]);
    let (ok, o, e) = f.ferry(&["task", "wait", "copy", "--for", "full-load", "--timeout", "300"]);
    assert!(ok, "wait failed: {o}{e}\nstatus: {:?}", f.status("copy"));
    let mut d = dst.client("shop").await?;
    assert_eq!(d.query_first::<String, _>(CATALOG).await?, want);
    for t in ["customers", "products", "orders", "order_items", "audit_log", "notes"] {
        let sql = format!("SELECT CAST(count(*) AS CHAR), CAST(COALESCE(BIT_XOR(CRC32(CONCAT_WS('|', t.*))), 0) AS CHAR) FROM shop.{t} t");
        let sql = sql.replace("t.*", &columns(&mut m, t).await?);
        let a: Option<(String, String)> = m.query_first(&sql).await?;
        let b: Option<(String, String)> = d.query_first(&sql).await?;
        if a != b {
            let rows = format!("SELECT CONCAT_WS('|', {}) FROM shop.{t} t", columns(&mut m, t).await?);
            let x: Vec<String> = m.query(&rows).await?;
            let y: Vec<String> = d.query(&rows).await?;
            panic!("shop.{t}: {x:?} vs {y:?}");
        }
    }
    Ok(())
}

/// A table's columns, for CONCAT_WS.
async fn columns(m: &mut mysql_async::Conn, table: &str) -> anyhow::Result<String> {
    let cols: Vec<String> = m
        .exec(
            "SELECT CONCAT('t.`', COLUMN_NAME, '`') FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'shop' AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (table,),
        )
        .await?;
    Ok(cols.join(", "))
}
