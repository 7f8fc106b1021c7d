//! CDC value fidelity: TOASTed values left alone by updates of other
//! columns, NULL <-> value, primary-key updates, deletes, truncate, a table
//! without a key (inserts only, flagged in status) and one with REPLICA
//! IDENTITY FULL (every change, duplicates included), a 200 MB transaction,
//! and stop/start resuming without a reload.
use ferry_tests::*;
use std::time::Duration;

const SCHEMA: &str = r#"
CREATE SCHEMA app;
CREATE TABLE app.docs (id integer PRIMARY KEY, title text, body text, n numeric, tags text[]);
INSERT INTO app.docs SELECT i, 't' || i, (SELECT string_agg(md5(i::text || g::text), '') FROM generate_series(1, 400) g), i, ARRAY['a', 'b'] FROM generate_series(1, 200) i;
CREATE TABLE app.pk (id integer PRIMARY KEY, v text);
INSERT INTO app.pk SELECT i, 'v' || i FROM generate_series(1, 1000) i;
CREATE TABLE app.gone (id integer PRIMARY KEY, v text);
INSERT INTO app.gone SELECT i, 'g' FROM generate_series(1, 500) i;
CREATE TABLE app.loose (a integer, b text);
INSERT INTO app.loose SELECT i % 10, 'l' FROM generate_series(1, 100) i;
CREATE TABLE app.full_ident (a integer, b text);
ALTER TABLE app.full_ident REPLICA IDENTITY FULL;
INSERT INTO app.full_ident SELECT i % 5, 'f' FROM generate_series(1, 50) i;
CREATE TABLE app.bulk (id bigint PRIMARY KEY, pad text);
"#;

const TABLES: &[&str] = &[
    "app.docs",
    "app.pk",
    "app.gone",
    "app.loose",
    "app.full_ident",
    "app.bulk",
];

async fn assert_same(p: &PgbenchPair) -> anyhow::Result<()> {
    assert_tables_identical(&p.src, &p.dst, TABLES).await
}

#[tokio::test(flavor = "multi_thread")]
async fn cdc_applies_every_kind_of_change_exactly() -> anyhow::Result<()> {
    let p = PgbenchPair::new(1)?;
    let src = p.src.client("postgres").await?;
    src.batch_execute(SCHEMA).await?;
    let f = Ferry::start(2, 3000, &[])?;
    p.create_task(&f, "vals", "full-load-and-cdc");
    f.ok(&["task", "start", "vals"]);
    let (ok, out, err) = f.ferry(&["task", "wait", "vals", "--for", "full-load", "--timeout", "600"]);
    assert!(ok, "full-load wait failed: {out}{err}");

    src.batch_execute(
        r#"
        UPDATE app.docs SET title = 'retitled' WHERE id <= 50;            -- body is TOASTed and unchanged
        UPDATE app.docs SET n = NULL, tags = NULL WHERE id BETWEEN 51 AND 60;
        UPDATE app.docs SET title = NULL WHERE id = 61;
        UPDATE app.docs SET n = 'NaN', title = 'back' WHERE id = 61;
        UPDATE app.pk SET id = id + 100000 WHERE id <= 100;                -- key changes
        UPDATE app.pk SET id = id - 100000, v = 'moved back' WHERE id > 100000 AND id <= 100010;
        DELETE FROM app.pk WHERE id BETWEEN 500 AND 600;
        INSERT INTO app.pk VALUES (5000, E'quote '' and backslash \\ and 🚀');
        TRUNCATE app.gone;
        INSERT INTO app.gone VALUES (1, 'after truncate');
        INSERT INTO app.loose VALUES (42, 'new'), (NULL, NULL);
        UPDATE app.full_ident SET b = 'changed' WHERE a = 1;
        DELETE FROM app.full_ident WHERE a = 2;
        "#,
    )
    .await?;
    wait_caught_up(&f, "vals");
    assert_same(&p).await?;

    let st = f.status("vals").unwrap();
    let loose = table_status(&st, "loose");
    assert!(
        loose["cdc_note"]
            .as_str()
            .unwrap_or("")
            .contains("updates and deletes are not"),
        "key-less table not flagged: {loose}"
    );

    // Stop, change, start: resumes from the checkpoint, no reload.
    let dst = p.dst.client("postgres").await?;
    let loaded_before: String = dst
        .query_one("SELECT max(loaded_at)::text FROM ferry.segment_loads", &[])
        .await?
        .get(0);
    f.ok(&["task", "stop", "vals"]);
    src.batch_execute("UPDATE app.pk SET v = 'while stopped' WHERE id < 300; DELETE FROM app.docs WHERE id > 190")
        .await?;
    std::thread::sleep(Duration::from_secs(1));
    f.ok(&["task", "start", "vals"]);

    // A 200 MB transaction (200,000 rows of 1 kB).
    src.batch_execute("INSERT INTO app.bulk SELECT i, repeat(md5(i::text), 32) FROM generate_series(1, 200000) i")
        .await?;
    wait_caught_up(&f, "vals");
    assert_same(&p).await?;
    let loaded_after: String = dst
        .query_one("SELECT max(loaded_at)::text FROM ferry.segment_loads", &[])
        .await?
        .get(0);
    assert_eq!(loaded_before, loaded_after, "stop/start reloaded segments");
    let bulk: i64 = dst.query_one("SELECT count(*) FROM app.bulk", &[]).await?.get(0);
    assert_eq!(bulk, 200000);
    Ok(())
}
