//! MariaDB → PostgreSQL full load: a column of every MySQL type family with
//! edge values, a 60,000-row table and a composite-key table cut into
//! several segments, loaded by 2 workers; then every value is compared with
//! the source through the documented type mapping (docs/type-mapping.md).
use ferry_tests::compare::*;
use ferry_tests::mariadb::{create_sample, MariaDbServer};
use ferry_tests::*;
use mysql_async::prelude::Queryable;

/// Each column of `kinds` as text that both engines produce for the same
/// value under the mapping, and how to compare it.
const KIND_COLUMNS: &[(&str, &str, &str, Cmp)] = &[
    ("id", "CAST(id AS CHAR)", "id::text", Cmp::Text),
    ("i8", "CAST(i8 AS CHAR)", "i8::text", Cmp::Text),
    ("u8", "CAST(u8 AS CHAR)", "u8::text", Cmp::Text),
    ("i16", "CAST(i16 AS CHAR)", "i16::text", Cmp::Text),
    ("u16", "CAST(u16 AS CHAR)", "u16::text", Cmp::Text),
    ("u24", "CAST(u24 AS CHAR)", "u24::text", Cmp::Text),
    ("i32", "CAST(i32 AS CHAR)", "i32::text", Cmp::Text),
    ("u32", "CAST(u32 AS CHAR)", "u32::text", Cmp::Text),
    ("i64", "CAST(i64 AS CHAR)", "i64::text", Cmp::Text),
    ("u64", "CAST(u64 AS CHAR)", "u64::text", Cmp::Text),
    ("dec65", "CAST(dec65 AS CHAR)", "dec65::text", Cmp::Text),
    ("money", "CAST(money AS CHAR)", "money::text", Cmp::Text),
    ("f", "CAST(CAST(f AS DOUBLE) AS CHAR)", "f::float8::text", Cmp::Float),
    ("d", "CAST(d AS CHAR)", "d::text", Cmp::Float),
    (
        "dt",
        "DATE_FORMAT(dt, '%Y-%m-%d %H:%i:%s.%f')",
        "to_char(dt, 'YYYY-MM-DD HH24:MI:SS.US')",
        Cmp::Text,
    ),
    (
        "ts",
        "DATE_FORMAT(ts, '%Y-%m-%d %H:%i:%s.%f')",
        "to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')",
        Cmp::Text,
    ),
    // The zero date's policy is NULL.
    (
        "dd",
        "IF(dd = '0000-00-00', NULL, CAST(dd AS CHAR))",
        "dd::text",
        Cmp::Text,
    ),
    (
        "tm",
        "CAST(TIME_TO_SEC(tm) AS CHAR)",
        "extract(epoch FROM tm)::text",
        Cmp::Float,
    ),
    ("yr", "CAST(yr AS CHAR)", "yr::text", Cmp::Text),
    ("b", "LPAD(BIN(b), 12, '0')", "b::text", Cmp::Text),
    ("e", "e", "e", Cmp::Text),
    ("s", "s", "s", Cmp::Text),
    ("j", "j", "j::text", Cmp::Json),
    ("bl", "LOWER(HEX(bl))", "encode(bl, 'hex')", Cmp::Text),
    ("vb", "LOWER(HEX(vb))", "encode(vb, 'hex')", Cmp::Text),
    ("c", "c", "c", Cmp::Text),
    ("vc", "vc", "vc", Cmp::Text),
    ("tx", "tx", "tx", Cmp::Text),
];

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
        r#"{"Ferry": {"SegmentTargetBytes": 262144}}"#,
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
    let my_sql: Vec<&str> = KIND_COLUMNS.iter().map(|c| c.1).collect();
    let pg_sql: Vec<&str> = KIND_COLUMNS.iter().map(|c| c.2).collect();
    let a = mysql_rows(&mut m, &format!("SELECT {} FROM kinds ORDER BY id", my_sql.join(", "))).await?;
    let b = pg_rows(
        &p,
        &format!("SELECT {} FROM shop.kinds ORDER BY kinds.id", pg_sql.join(", ")),
    )
    .await?;
    assert_eq!(a.len(), 4);
    assert_eq!(a.len(), b.len());
    let names: Vec<(&str, Cmp)> = KIND_COLUMNS.iter().map(|c| (c.0, c.3)).collect();
    assert_same_rows(&a, &b, &names);
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

    // The other tables row for row.
    for (my_q, pg_q) in [
        (
            "SELECT CAST(id AS CHAR), CAST(k AS CHAR), label, DATE_FORMAT(at, '%Y-%m-%d %H:%i:%s.%f') FROM big ORDER BY id",
            "SELECT id::text, k::text, label, to_char(at, 'YYYY-MM-DD HH24:MI:SS.US') FROM shop.big ORDER BY big.id",
        ),
        (
            "SELECT region, CAST(n AS CHAR), payload FROM pairs ORDER BY region, n",
            "SELECT region, n::text, payload FROM shop.pairs ORDER BY region COLLATE \"C\", pairs.n",
        ),
        (
            "SELECT CAST(a AS CHAR), b FROM loose ORDER BY a, b",
            "SELECT a::text, b FROM shop.loose ORDER BY loose.a NULLS FIRST, b",
        ),
        (
            "SELECT CAST(id AS CHAR), CAST(parent_id AS CHAR) FROM child ORDER BY id",
            "SELECT id::text, parent_id::text FROM shop.child ORDER BY child.id",
        ),
    ] {
        let a = mysql_rows(&mut m, my_q).await?;
        let b = pg_rows(&p, pg_q).await?;
        assert!(!a.is_empty());
        let diff = a.iter().zip(&b).position(|(x, y)| x != y);
        assert!(
            a.len() == b.len() && diff.is_none(),
            "{pg_q}: {} source rows, {} target rows; first difference: {:?}",
            a.len(),
            b.len(),
            diff.map(|i| (&a[i], &b[i]))
        );
    }
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
    assert!(ex.iter().all(|r| r[0].as_deref() == Some("\"shop\".\"odd\"")), "{ex:?}");
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
async fn unsupported_pairs_are_refused_at_create() -> anyhow::Result<()> {
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
    ]);
    assert!(!ok && err.contains("not supported yet"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    Ok(())
}
