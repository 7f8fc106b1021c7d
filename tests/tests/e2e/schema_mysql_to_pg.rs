//! Schema conversion MariaDB → PostgreSQL on a schema with every object kind
//! MySQL has (ENUM, SET, YEAR, GEOMETRY, JSON, generated and ON UPDATE
//! columns, prefix / FULLTEXT / SPATIAL indexes, checks, foreign keys,
//! partitioning, views, triggers, a function and procedures): `ferry assess`
//! reports what the schema holds, `ferry schema convert` writes DDL that
//! psql applies without error, and a full-load task with `--schema-dir`
//! loads the rows into the converted schema, whose views, function,
//! procedure, triggers and constraints then behave as on the source.
use ferry_tests::ddl::*;
use ferry_tests::mariadb::MariaDbServer;
use ferry_tests::*;
use mysql_async::prelude::Queryable;

async fn one(pg: &tokio_postgres::Client, sql: &str) -> String {
    pg.query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_schema_converts_to_postgres() -> anyhow::Result<()> {
    let my = MariaDbServer::start()?;
    let pg = PgServer::start()?;
    let mut m = load_mariadb_sample(&my).await?;
    let f = Ferry::start(2, 5000, &[])?;
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("assess");
    let out_s = out.to_str().unwrap();

    // Assessment.
    let args = [
        "assess",
        "--source",
        &my.url("shop"),
        "--target-engine",
        "postgres",
        "--target",
        &pg.url("postgres"),
        "--out",
        out_s,
        "--fail-on",
        "critical",
    ];
    let printed = f.ok(&args);
    assert!(printed.contains("action items:"), "{printed}");
    let report = read_report(&out)?;
    assert_eq!(report["format"], "ferry-assessment/1");
    assert_eq!(report["summary"]["tables"], 6);
    let notes = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "shop.notes")
        .unwrap();
    assert_eq!(
        (notes["primary_key"].as_bool(), notes["lob_columns"][0].as_str()),
        (Some(false), Some("body"))
    );
    let html = std::fs::read_to_string(out.join("report.html"))?;
    assert!(html.contains("<table") && html.contains("VIEW-SQL/shop.v_sounds"));
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("<script"),
        "not self-contained"
    );
    let got = item_ids(&report);
    for id in [
        "TYPE-SET/shop.customers.tags",
        "TYPE-ENUM/shop.customers.tier",
        "TYPE-SPATIAL/shop.products.location",
        "INDEX-PREFIX/shop.customers.by_name",
        "INDEX-FULLTEXT/shop.products.ft_title",
        "INDEX-SPATIAL/shop.products.sp_location",
        "COLLATION/shop.customers.name",
        "ON-UPDATE/shop.customers_on_update",
        "VIEW-SQL/shop.v_sounds",
        "TRIGGER-BODY/shop.order_items.trg_items_ai",
        "ROUTINE-BODY/shop.close_old",
        "SQL-SEMANTICS/shop.net_price",
        "GENERATED/shop.products.total",
    ] {
        assert!(got.contains(&id.to_string()), "missing {id} in {got:?}");
    }
    assert_eq!(report["summary"]["action_items"]["critical"], 0, "{got:?}");
    // Counts per category against what SCHEMA holds.
    let expect = [
        // (category, total, needing action)
        ("tables", 6, 0),
        ("columns", 32, 1),
        ("views", 4, 1),
        ("triggers", 5, 1),
        ("functions", 1, 0),
        ("procedures", 2, 1),
        ("indexes", 6, 2),
        ("sequences", 4, 0),
    ];
    assert_categories(&report, &expect);
    // 5 primary keys, 2 checks, the enum's check, 1 foreign key (UNIQUE
    // KEY uq_email and the foreign key's own index count as indexes).
    assert_eq!(category(&report, "constraints")["total"], 9);
    assert_eq!(check_status(&report, "MY-LOG-BIN"), "passed");
    assert_eq!(check_status(&report, "MY-BINLOG-FORMAT"), "passed");
    assert_eq!(check_status(&report, "TABLES-WITHOUT-KEY"), "warning");
    assert_eq!(check_status(&report, "LOB-COLUMNS"), "warning");
    assert_eq!(check_status(&report, "UNSUPPORTED-TYPES"), "passed");
    assert_eq!(check_status(&report, "TARGET-TABLES-EXIST"), "passed");
    // Bad input: one line, non-zero, no secret.
    let (ok, _, err) = f.ferry(&[
        "assess",
        "--source",
        &my.url("shop"),
        "--target-engine",
        "oracle",
        "--out",
        out_s,
    ]);
    assert!(
        !ok && err.trim().lines().count() == 1 && err.contains("oracle"),
        "{err}"
    );
    let (ok, _, err) = f.ferry(&[
        "schema",
        "convert",
        "--source",
        "mysql://root:hunter2@127.0.0.1:1/shop",
        "--target-engine",
        "postgres",
        "--out",
        out_s,
    ]);
    assert!(
        !ok && err.trim().lines().count() == 1 && !err.contains("hunter2"),
        "{err}"
    );
    // --fail-on high: the trigger and the procedure are high items.
    let mut high = args.to_vec();
    *high.last_mut().unwrap() = "high";
    let (ok, _, err) = f.ferry(&high);
    assert!(!ok && err.contains("--fail-on"), "{err}");

    // Conversion: the files apply with psql as they are.
    let ddl = dir.path().join("ddl");
    let printed = schema_convert(&f, &my.url("shop"), "postgres", &ddl);
    assert!(printed.contains("need action"), "{printed}");
    pg.client("postgres")
        .await?
        .batch_execute("CREATE DATABASE scratch")
        .await?;
    apply_with_psql(&pg, "scratch", &ddl);

    // A person's edit: the task must run the files as edited.
    let pre = ddl.join("pre-data.sql");
    let text = std::fs::read_to_string(&pre)?;
    assert!(text.contains("  name varchar(80),"), "{text}");
    std::fs::write(&pre, text.replace("  name varchar(80),", "  name varchar(100),"))?;

    // A full load into the converted schema, the task running the files.
    create_full_load(
        &f,
        "conv",
        &my.url("shop"),
        &pg.url("postgres"),
        "{}",
        &["--schema-dir", ddl.to_str().unwrap()],
    );
    f.ok(&["task", "start", "conv"]);
    let (ok, out, err) = f.ferry(&["task", "wait", "conv", "--for", "full-load", "--timeout", "300"]);
    assert!(ok, "wait failed: {out}{err}\nstatus: {:?}", f.status("conv"));
    let p = pg.client("postgres").await?;
    assert_eq!(
        one(&p, "SELECT character_maximum_length::text FROM information_schema.columns WHERE table_schema = 'shop' AND table_name = 'customers' AND column_name = 'name'").await,
        "100",
        "the edited pre-data.sql"
    );
    for (t, n) in [
        ("customers", 3),
        ("products", 2),
        ("orders", 3),
        ("order_items", 2),
        ("audit_log", 3),
        ("notes", 2),
    ] {
        let count: i64 = p
            .query_one(&format!("SELECT count(*) FROM shop.{t}"), &[])
            .await?
            .get(0);
        assert_eq!(count, n, "shop.{t}");
    }
    assert_eq!(one(&p, "SELECT count(*)::text FROM shop.orders_p2023").await, "1");
    assert_eq!(
        one(&p, "SELECT total::text FROM shop.products WHERE id = 1").await,
        "99.50"
    );
    assert_eq!(
        one(
            &p,
            "SELECT concat_ws('|', tier, tags, born, name) FROM shop.customers WHERE id = 1"
        )
        .await,
        "pro|news,vip|1990|Åsa"
    );
    // Views answer as on the source.
    let src: Vec<(u32, String, i64, String)> = m
        .query("SELECT id, email, orders, CAST(spent AS CHAR) FROM v_customer_orders ORDER BY id")
        .await?;
    let dst: Vec<(i64, String, i64, String)> = p
        .query(
            "SELECT id, email::text, orders, spent::numeric(12,2)::text FROM shop.v_customer_orders ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(src.len(), dst.len());
    for (s, d) in src.iter().zip(&dst) {
        assert_eq!((s.0 as i64, &s.1, s.2, &s.3), (d.0, &d.1, d.2, &d.3));
    }
    let src: Vec<(String, String)> = m
        .query("SELECT label, availability FROM v_product_labels ORDER BY id")
        .await?;
    let dst: Vec<(String, String)> = p
        .query("SELECT label, availability FROM shop.v_product_labels ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(src, dst);
    // DATE_FORMAT became to_char.
    assert_eq!(
        one(
            &p,
            "SELECT count(*)::text FROM shop.v_months WHERE ym ~ '^[0-9]{4}-[0-9]{2}$'"
        )
        .await,
        "3"
    );
    let net: String = m.query_first("SELECT CAST(net_price(100, 10) AS CHAR)").await?.unwrap();
    assert_eq!(
        one(&p, "SELECT shop.net_price(100, 10)::numeric(10,2)::text").await,
        net
    );
    // Triggers, identity past the loaded keys, the procedure, constraints.
    p.batch_execute(
        "INSERT INTO shop.products (sku, title, price, qty, location) VALUES ('zz-9', 'Lamp', 1, 1, '\\x00');
         UPDATE shop.products SET qty = 2 WHERE sku = 'ZZ-9';
         CALL shop.restock(2, 4);",
    )
    .await?;
    // A customer was added and deleted on the source: id 4 is taken.
    p.batch_execute("INSERT INTO shop.customers (email) VALUES ('d@x.io')")
        .await?;
    assert_eq!(
        one(&p, "SELECT id::text FROM shop.customers WHERE email = 'd@x.io'").await,
        "5"
    );
    assert_eq!(
        one(&p, "SELECT id::text FROM shop.products WHERE sku = 'ZZ-9'").await,
        "3"
    );
    assert_eq!(one(&p, "SELECT count(*)::text FROM shop.audit_log").await, "5");
    assert_eq!(one(&p, "SELECT qty::text FROM shop.products WHERE id = 2").await, "4");
    let before = one(&p, "SELECT updated_at::text FROM shop.customers WHERE id = 2").await;
    p.batch_execute("UPDATE shop.customers SET name = 'Bob' WHERE id = 2")
        .await?;
    assert_ne!(
        one(&p, "SELECT updated_at::text FROM shop.customers WHERE id = 2").await,
        before
    );
    // IF ... SIGNAL became IF ... RAISE EXCEPTION.
    let e = p
        .batch_execute("INSERT INTO shop.orders (customer_id, placed, amount) VALUES (1, '2024-06-01', -1)")
        .await
        .unwrap_err();
    assert!(format!("{e:?}").contains("negative amount"), "{e:?}");
    assert!(
        p.batch_execute("INSERT INTO shop.order_items VALUES (9, 1, 999, 1)")
            .await
            .is_err(),
        "foreign key"
    );
    assert!(
        p.batch_execute("UPDATE shop.customers SET tier = 'gold' WHERE id = 1")
            .await
            .is_err(),
        "enum check"
    );
    assert!(
        p.batch_execute("UPDATE shop.products SET qty = -1 WHERE id = 1")
            .await
            .is_err(),
        "check"
    );
    assert!(
        p.batch_execute("INSERT INTO shop.customers (email) VALUES ('a@x.io')")
            .await
            .is_err(),
        "unique"
    );
    Ok(())
}

/// With CDC, the task leaves foreign keys and triggers to the cutover:
/// the source's triggers already wrote their rows, which CDC brings over, so
/// triggers firing on applied changes would write them twice. `ferry
/// cutover --hook` runs cutover.sql once the target has caught up.
#[tokio::test(flavor = "multi_thread")]
async fn schema_files_with_cdc_create_triggers_at_cutover() -> anyhow::Result<()> {
    let my = MariaDbServer::start()?;
    let pg = PgServer::start()?;
    let mut m = load_mariadb_sample(&my).await?;
    let f = Ferry::start(2, 5000, &[])?;
    let dir = tempfile::tempdir()?;
    let ddl = dir.path().join("ddl");
    schema_convert(&f, &my.url("shop"), "postgres", &ddl);
    create_typed(
        &f,
        "live",
        &my.url("shop"),
        &pg.url("postgres"),
        "full-load-and-cdc",
        "{}",
        &["--schema-dir", ddl.to_str().unwrap()],
    );
    f.ok(&["task", "start", "live"]);
    wait_caught_up(&f, "live");
    // Writes during CDC; the source's triggers add audit rows and upper-case the sku.
    m.query_drop("UPDATE products SET qty = qty + 1").await?;
    m.query_drop(
        "INSERT INTO products (sku, title, price, qty, location) VALUES ('ef-3', 'Desk', 50, 1, ST_GeomFromText('POINT(0 0)'))",
    )
    .await?;
    wait_caught_up(&f, "live");
    let p = pg.client("postgres").await?;
    let triggers = "SELECT count(*)::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'shop' AND NOT t.tgisinternal AND t.tgparentid = 0";
    let fks = "SELECT count(*)::text FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace WHERE n.nspname = 'shop' AND k.contype = 'f'";
    assert_eq!(one(&p, triggers).await, "0", "no trigger while CDC applies");
    assert_eq!(one(&p, fks).await, "0", "no foreign key while CDC applies");
    let audit: String = m
        .query_first("SELECT CAST(count(*) AS CHAR) FROM audit_log")
        .await?
        .unwrap();
    assert_eq!(one(&p, "SELECT count(*)::text FROM shop.audit_log").await, audit);
    assert_eq!(audit, "5");
    assert_eq!(
        one(&p, "SELECT sku FROM shop.products WHERE title = 'Desk'").await,
        "EF-3"
    );
    // Indexes and checks came with post-data.sql.
    assert!(
        p.batch_execute("UPDATE shop.products SET qty = -1 WHERE id = 1")
            .await
            .is_err(),
        "check"
    );

    let hook = format!("{} -f {}", psql(&pg, "postgres"), ddl.join("cutover.sql").display());
    let printed = f.ok(&["cutover", "live", "--hook", &hook]);
    assert!(printed.contains("hook"), "{printed}");
    // The three converted triggers and the ON UPDATE one; the foreign key.
    assert_eq!(one(&p, triggers).await, "4");
    assert_eq!(one(&p, fks).await, "1");
    Ok(())
}

/// Sakila's `customer_list` puts a TINYINT(1) in `CASE WHEN`, which
/// PostgreSQL refuses unless it becomes a comparison; a view over a text
/// column in the same place converts to SQL PostgreSQL refuses. Tried on a
/// target, the first counts as converted and the second does not; run by a
/// task from unreviewed files, the second is reported and the rows stay.
#[tokio::test(flavor = "multi_thread")]
async fn converted_objects_count_only_once_they_apply() -> anyhow::Result<()> {
    let my = MariaDbServer::start()?;
    let pg = PgServer::start()?;
    let mut m = my.client("mysql").await?;
    m.query_drop("CREATE DATABASE shop").await?;
    let mut m = my.client("shop").await?;
    m.query_drop(
        "CREATE TABLE customer (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, active TINYINT(1) NOT NULL);
         INSERT INTO customer VALUES (1, 'ann', 1), (2, 'bob', 0), (3, '7', 1);
         CREATE VIEW customer_list AS SELECT cu.id AS id, CASE WHEN cu.active THEN 'active' ELSE '' END AS notes FROM customer cu;
         CREATE VIEW name_flag AS SELECT id, CASE WHEN name THEN 1 ELSE 0 END AS flagged FROM customer",
    )
    .await?;
    let f = Ferry::start(1, 5000, &[])?;
    let dir = tempfile::tempdir()?;

    // Tried on the target: name_flag fails there and leaves the files.
    let tried = dir.path().join("tried");
    let printed = f.ok(&[
        "schema",
        "convert",
        "--source",
        &my.url("shop"),
        "--target-engine",
        "postgres",
        "--target",
        &pg.url("postgres"),
        "--out",
        tried.to_str().unwrap(),
    ]);
    assert!(
        printed.contains("1 objects failed there") && printed.contains("shop.name_flag"),
        "{printed}"
    );
    let post = std::fs::read_to_string(tried.join("post-data.sql"))?;
    assert!(post.contains("customer_list") && !post.contains("name_flag"), "{post}");
    let items = std::fs::read_to_string(tried.join("action-items.txt"))?;
    assert!(
        items.contains("APPLY-FAILED/shop.name_flag") && items.contains("boolean"),
        "{items}"
    );
    // Nothing of the trial stayed on the target.
    let p = pg.client("postgres").await?;
    let left = p
        .query_one("SELECT count(*) FROM pg_namespace WHERE nspname = 'shop'", &[])
        .await?
        .get::<_, i64>(0);
    assert_eq!(left, 0, "the trial left the schema behind");
    // The reviewed files apply as they are.
    apply_with_psql(&pg, "postgres", &tried);
    p.batch_execute("DROP SCHEMA shop CASCADE").await?;

    // The assessment counts it the same way.
    let out = dir.path().join("assess");
    f.ok(&[
        "assess",
        "--source",
        &my.url("shop"),
        "--target-engine",
        "postgres",
        "--target",
        &pg.url("postgres"),
        "--out",
        out.to_str().unwrap(),
    ]);
    let report = read_report(&out)?;
    let ids = item_ids(&report);
    assert!(ids.iter().any(|i| i == "APPLY-FAILED/shop.name_flag"), "{ids:?}");
    assert!(!ids.iter().any(|i| i.ends_with("/shop.customer_list")), "{ids:?}");

    // Unreviewed files (no trial): the task loads every row, and the view
    // the target refuses is reported, not fatal.
    let raw = dir.path().join("raw");
    schema_convert(&f, &my.url("shop"), "postgres", &raw);
    create_full_load(
        &f,
        "views",
        &my.url("shop"),
        &pg.url("postgres"),
        "{}",
        &["--schema-dir", raw.to_str().unwrap()],
    );
    f.ok(&["task", "start", "views"]);
    let (ok, out, err) = f.ferry(&["task", "wait", "views", "--for", "full-load", "--timeout", "300"]);
    assert!(ok, "wait failed: {out}{err}\nstatus: {:?}", f.status("views"));
    assert!(
        out.contains("shop.name_flag") && out.contains("failed on the target"),
        "{out}"
    );
    let st = f.status("views").unwrap();
    assert_eq!(st["failed_objects"][0]["object"], "shop.name_flag", "{st}");
    let rows = p
        .query_one("SELECT count(*) FROM shop.customer", &[])
        .await?
        .get::<_, i64>(0);
    assert_eq!(rows, 3);
    let notes: Vec<String> = p
        .query("SELECT notes FROM shop.customer_list ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(notes, ["active", "", "active"]);
    let recorded = p
        .query_one(
            "SELECT count(*) FROM ferry.apply_exceptions WHERE task = 'views' AND phase = 'post-data' AND table_name = 'shop.name_flag'",
            &[],
        )
        .await?
        .get::<_, i64>(0);
    assert_eq!(recorded, 1);
    Ok(())
}
