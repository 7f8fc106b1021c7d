//! DMS limited LOB mode (`LimitedSizeLobMode` / `LobMaxSize`, a table's
//! `lob-settings`) and `DataTruncationErrorPolicy`, through the full load,
//! CDC and validation: every LOB value above the limit reaches the target cut
//! to it (text at a character boundary), every cut row is counted per table
//! and recorded with its key in `ferry.apply_exceptions`, validation compares
//! through the cut (no false differences), and a policy that stops fails the
//! task or suspends the table; a column added from a LOB column holds the
//! cut value. The expected target values are cut here, by
//! code written for the test, not by Ferry's.
use ferry_tests::mariadb::MariaDbServer;
use ferry_tests::*;
use mysql_async::prelude::Queryable;
use std::time::Duration;

/// 1 KB, the smallest `LobMaxSize`.
const LIMIT: usize = 1024;

/// `s` cut to at most `LIMIT` bytes without splitting a character.
fn expect_text(s: Option<String>) -> Option<String> {
    let s = s?;
    let mut out = String::new();
    for ch in s.chars() {
        if out.len() + ch.len_utf8() > LIMIT {
            break;
        }
        out.push(ch);
    }
    Some(out)
}

fn expect_bytes(b: Option<Vec<u8>>) -> Option<Vec<u8>> {
    b.map(|b| b[..b.len().min(LIMIT)].to_vec())
}

type DocRow = (i64, Option<String>, Option<Vec<u8>>, Option<String>, Option<String>);

async fn pg_docs(c: &tokio_postgres::Client, table: &str) -> anyhow::Result<Vec<DocRow>> {
    Ok(c.query(
        &format!("SELECT id::bigint, body, img, note::text, doc::text FROM {table} ORDER BY id"),
        &[],
    )
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
    .collect())
}

/// The truncations a table's status counts.
fn truncations(f: &Ferry, task: &str, table: &str) -> u64 {
    let st = f.status(task).expect("status");
    table_status(&st, table)["lob_truncations"].as_u64().unwrap_or(0)
}

/// Rows of `table` the target's exceptions table records as cut, by key.
async fn recorded_cuts(c: &tokio_postgres::Client, table: &str) -> anyhow::Result<Vec<String>> {
    Ok(c.query(
        "SELECT row_image FROM ferry.apply_exceptions
          WHERE table_name = $1 AND reason LIKE 'LOB truncated%' ORDER BY row_image",
        &[&table],
    )
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect())
}

/// 3000 bytes of `aé` (so the 1 KB cut falls next to a two-byte character),
/// stored out of line and uncompressed: an update of another column then
/// leaves it out of the change (unchanged TOAST), and the target keeps its
/// cut value.
const DOCS: &str = "CREATE TABLE public.docs (id bigint PRIMARY KEY, body text, img bytea, note varchar(20), doc jsonb,
                                tags int[], n numeric, at timestamptz);
     ALTER TABLE public.docs ALTER COLUMN body SET STORAGE EXTERNAL, ALTER COLUMN img SET STORAGE EXTERNAL;
     INSERT INTO public.docs
       SELECT i,
              CASE WHEN i % 3 = 0 THEN repeat('aé', 1000) ELSE repeat('x', i) END,
              decode(repeat(lpad(to_hex(i % 256), 2, '0'), i * 30), 'hex'),
              'n' || i,
              jsonb_build_object('text', repeat('j', 2000)),
              ARRAY[i, i + 1],
              CASE WHEN i % 5 = 0 THEN 'NaN' ELSE i / 7.0 END,
              CASE WHEN i % 4 = 0 THEN 'infinity' ELSE timestamptz '2024-02-29 12:00:00+05' END
         FROM generate_series(1, 60) i;";

#[tokio::test(flavor = "multi_thread")]
async fn pg_to_pg_cuts_counts_records_and_validates_through_the_limit() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let dst = PgServer::start()?;
    let s = src.client("postgres").await?;
    s.batch_execute(DOCS).await?;
    s.batch_execute(
        "CREATE TABLE public.keep (id int PRIMARY KEY, body text);
         INSERT INTO public.keep VALUES (1, repeat('k', 5000));
         CREATE TABLE public.bare (body text, tag int);
         INSERT INTO public.bare VALUES (repeat('b', 3000), 1), ('short', 2);",
    )
    .await?;
    let loaded_cuts: i64 = s
        .query_one(
            "SELECT count(*) FROM public.docs WHERE octet_length(body) > 1024 OR octet_length(img) > 1024",
            &[],
        )
        .await?
        .get(0);
    assert!(loaded_cuts > 20, "the sample must cut some rows: {loaded_cuts}");

    let dir = tempfile::tempdir()?;
    // `keep` copies whole: its rule says unlimited.
    let mappings = mapping_file(
        &dir,
        r#"{"rules": [
          {"rule-type": "selection", "rule-id": "1", "rule-name": "all", "rule-action": "include",
           "object-locator": {"schema-name": "public", "table-name": "%"}},
          {"rule-type": "table-settings", "rule-id": "2", "rule-name": "keep-whole",
           "object-locator": {"schema-name": "public", "table-name": "keep"},
           "lob-settings": {"mode": "unlimited", "bulk-max-size": "64"}},
          {"rule-type": "transformation", "rule-id": "3", "rule-name": "head", "rule-action": "add-column",
           "rule-target": "column", "object-locator": {"schema-name": "public", "table-name": "docs"},
           "value": "body_head", "expression": "$body", "data-type": {"type": "string"}}]}"#,
    );
    let f = Ferry::start(2, 5000, &[])?;
    create_typed(
        &f,
        "lobs",
        &src.url("postgres"),
        &dst.url("postgres"),
        "full-load-and-cdc",
        r#"{"TargetMetadata": {"SupportLobs": true, "FullLobMode": false, "LimitedSizeLobMode": true,
                               "LobMaxSize": 1, "LobChunkSize": 64},
            "ValidationSettings": {"EnableValidation": true}}"#,
        &["--table-mappings", &mappings],
    );
    f.ok(&["task", "start", "lobs"]);
    wait_caught_up(&f, "lobs");
    assert_eq!(truncations(&f, "lobs", "docs"), loaded_cuts as u64);
    assert_eq!(truncations(&f, "lobs", "bare"), 1);

    // CDC: a new long row, a short value made long (text and binary), a
    // long row whose other column changes (its LOBs are not in the change;
    // the target's row is found by its key and keeps its cut values), a
    // delete of a cut row, a long row into the keyless table.
    s.batch_execute(
        "INSERT INTO public.docs VALUES (100, repeat('é', 900), NULL, 'new', NULL, '{7}', 'NaN', '-infinity');
         UPDATE public.docs SET body = repeat('zé', 700) WHERE id = 1;
         UPDATE public.docs SET img = decode(repeat('ab', 3000), 'hex') WHERE id = 2;
         UPDATE public.docs SET note = 'changed' WHERE id = 3;
         DELETE FROM public.docs WHERE id = 6;
         INSERT INTO public.bare VALUES (repeat('c', 1500), 3);
         UPDATE public.keep SET body = repeat('K', 6000);",
    )
    .await?;
    wait_caught_up(&f, "lobs");

    let d = dst.client("postgres").await?;
    let want: Vec<DocRow> = pg_docs(&s, "public.docs")
        .await?
        .into_iter()
        .map(|(id, body, img, note, doc)| (id, expect_text(body), expect_bytes(img), note, doc))
        .collect();
    let got = pg_docs(&d, "public.docs").await?;
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "row {} differs from the source cut to {LIMIT} bytes", w.0);
    }
    // A column computed from a LOB column sees the cut value, in the load
    // and in CDC alike (and validation agrees, below).
    let apart: i64 = d
        .query_one(
            "SELECT count(*) FROM public.docs WHERE body_head IS DISTINCT FROM body",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(apart, 0);
    // 'zé' * 700 = 2100 bytes: cut after 341 pairs and a 'z'.
    // Values outside the value model (arrays, NaN, infinity) cross exactly:
    // a PostgreSQL target gets the source's own text.
    let exact = "SELECT id, tags::text, n::text, at::text FROM public.docs ORDER BY id";
    type Exact = (i64, Option<String>, Option<String>, Option<String>);
    let text_rows = |rows: Vec<tokio_postgres::Row>| -> Vec<Exact> {
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect()
    };
    assert_eq!(
        text_rows(d.query(exact, &[]).await?),
        text_rows(s.query(exact, &[]).await?)
    );
    let one = got.iter().find(|r| r.0 == 1).unwrap();
    assert_eq!(one.1.as_deref().map(str::len), Some(1024));
    // JSON is never cut; the unlimited table keeps its values whole.
    assert!(got.iter().all(|r| r.4.as_ref().is_none_or(|j| j.len() > 2000)));
    let keep: String = d.query_one("SELECT body FROM public.keep", &[]).await?.get(0);
    assert_eq!(keep, "K".repeat(6000));
    let bare: Vec<(String, i32)> = d
        .query("SELECT body, tag FROM public.bare ORDER BY tag", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        bare,
        [("b".repeat(1024), 1), ("short".to_string(), 2), ("c".repeat(1024), 3)]
    );

    // Counted: the load's cuts plus three changes (insert 100, update 1,
    // update 2); the note-only update sent no LOB and cut nothing.
    f.wait_until("the stream's counts", Duration::from_secs(30), || {
        truncations(&f, "lobs", "docs") == loaded_cuts as u64 + 3 && truncations(&f, "lobs", "bare") == 2
    });
    assert_eq!(truncations(&f, "lobs", "keep"), 0);
    // Recorded once each, with the key.
    let cuts = recorded_cuts(&d, "public.docs").await?;
    assert_eq!(cuts.len() as i64, loaded_cuts + 3, "{cuts:?}");
    for key in ["id=100", "id=1", "id=2", "id=3"] {
        assert!(cuts.iter().any(|c| c == key), "{key} not recorded: {cuts:?}");
    }
    let bare_cuts = recorded_cuts(&d, "public.bare").await?;
    assert_eq!(bare_cuts, ["tag=1", "tag=3"]);
    let reason: String = d
        .query_one(
            "SELECT reason FROM ferry.apply_exceptions WHERE row_image = 'id=100' AND table_name = 'public.docs'",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(
        reason,
        "LOB truncated (LobMaxSize 1 KB): column body cut from 1800 to 1024 bytes"
    );

    // Validation compares through the cut: no false difference.
    f.wait_until("validation to finish", Duration::from_secs(240), || {
        f.status("lobs").is_some_and(|st| {
            let v = &table_status(&st, "docs")["validation"];
            assert_ne!(v["state"], "Mismatched records", "false difference: {st}");
            v["state"] == "Validated" && table_status(&st, "keep")["validation"]["state"] == "Validated"
        })
    });
    let st = f.status("lobs").unwrap();
    assert_eq!(
        table_status(&st, "docs")["exceptions"],
        0,
        "a cut row is stored, not an exception"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cut_under_a_stopping_policy_suspends_the_table_in_cdc() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let dst = PgServer::start()?;
    let s = src.client("postgres").await?;
    s.batch_execute(
        "CREATE TABLE public.t (id int PRIMARY KEY, body text);
         INSERT INTO public.t VALUES (1, 'short');
         CREATE TABLE public.u (id int PRIMARY KEY, body text);
         INSERT INTO public.u VALUES (1, 'short');",
    )
    .await?;
    let dir = tempfile::tempdir()?;
    // Only t is limited (its rule); u is whole (task default: full mode).
    let mappings = mapping_file(
        &dir,
        r#"{"rules": [
          {"rule-type": "selection", "rule-id": "1", "rule-name": "all", "rule-action": "include",
           "object-locator": {"schema-name": "public", "table-name": "%"}},
          {"rule-type": "table-settings", "rule-id": "5", "rule-name": "t-limited",
           "object-locator": {"schema-name": "public", "table-name": "t"},
           "lob-settings": {"mode": "limited", "bulk-max-size": "1"}}]}"#,
    );
    let f = Ferry::start(1, 5000, &[])?;
    create_typed(
        &f,
        "strict",
        &src.url("postgres"),
        &dst.url("postgres"),
        "full-load-and-cdc",
        r#"{"ErrorBehavior": {"DataTruncationErrorPolicy": "SUSPEND_TABLE"}}"#,
        &["--table-mappings", &mappings],
    );
    f.ok(&["task", "start", "strict"]);
    wait_caught_up(&f, "strict");
    s.batch_execute(
        "INSERT INTO public.t VALUES (2, repeat('x', 2000));
         INSERT INTO public.u VALUES (2, repeat('y', 2000));",
    )
    .await?;
    f.wait_until("t to be in Table error", Duration::from_secs(60), || {
        f.status("strict")
            .is_some_and(|st| table_status(&st, "t")["state"] == "Table error")
    });
    let st = f.status("strict").unwrap();
    let error = table_status(&st, "t")["error"].as_str().unwrap_or_default().to_string();
    assert!(
        error.contains("rule 5 lob-settings bulk-max-size 1 KB")
            && error.contains("id=2")
            && error.contains("DataTruncationErrorPolicy SUSPEND_TABLE"),
        "{error}"
    );
    assert_ne!(st["state"], "failed", "{st}");
    // The other table goes on, whole; the cut row was not stored.
    let d = dst.client("postgres").await?;
    let mut waited = 0;
    while d.query_opt("SELECT 1 FROM public.u WHERE id = 2", &[]).await?.is_none() {
        assert!(waited < 600, "u's new row never reached the target");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    let u: String = d.query_one("SELECT body FROM public.u WHERE id = 2", &[]).await?.get(0);
    assert_eq!(u.len(), 2000);
    assert!(d.query_opt("SELECT 1 FROM public.t WHERE id = 2", &[]).await?.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_to_pg_cuts_in_load_and_binlog_and_stop_task_fails_at_the_first() -> anyhow::Result<()> {
    let my = MariaDbServer::start()?;
    let pg = PgServer::start()?;
    let mut m = my.client("mysql").await?;
    m.query_drop("CREATE DATABASE shop CHARACTER SET utf8mb4").await?;
    let mut m = my.client("shop").await?;
    m.query_drop(
        "CREATE TABLE docs (id int PRIMARY KEY, body longtext, img blob, note varchar(20), doc json);
         INSERT INTO docs VALUES
           (1, 'short', x'0102', 'a', NULL),
           (2, REPEAT('aé', 1000), NULL, 'b', NULL),
           (3, NULL, REPEAT(x'00ff10', 700), 'c', NULL);",
    )
    .await?;
    let f = Ferry::start(1, 5000, &[])?;
    let limited = r#""TargetMetadata": {"LimitedSizeLobMode": true, "LobMaxSize": 1}"#;
    create_full_load(
        &f,
        "stop",
        &my.url("shop"),
        &pg.url("postgres"),
        &format!(r#"{{{limited}, "ErrorBehavior": {{"DataTruncationErrorPolicy": "STOP_TASK"}}}}"#),
        &[],
    );
    f.ok(&["task", "start", "stop"]);
    let (ok, out, err) = f.ferry(&["task", "wait", "stop", "--for", "full-load", "--timeout", "120"]);
    assert!(!ok, "a cut under STOP_TASK did not stop the task: {out}");
    assert!(
        err.contains("shop.docs")
            && err.contains("LobMaxSize 1 KB")
            && err.contains("DataTruncationErrorPolicy STOP_TASK"),
        "{err}"
    );

    create_typed(
        &f,
        "cut",
        &my.url("shop"),
        &pg.url("postgres"),
        "full-load-and-cdc",
        &format!("{{{limited}}}"),
        &[],
    );
    f.ok(&["task", "start", "cut"]);
    wait_caught_up(&f, "cut");
    assert_eq!(truncations(&f, "cut", "docs"), 2);
    m.query_drop(
        "INSERT INTO docs VALUES (4, REPEAT('é', 600), NULL, 'd', JSON_OBJECT('k', REPEAT('j', 3000)));
         UPDATE docs SET img = REPEAT(x'ab', 1500) WHERE id = 1;
         UPDATE docs SET note = 'c2' WHERE id = 3;",
    )
    .await?;
    wait_caught_up(&f, "cut");

    type Row = (i64, Option<String>, Option<Vec<u8>>, Option<String>);
    let source: Vec<Row> = m
        .query::<(i64, Option<String>, Option<Vec<u8>>, Option<String>), _>(
            "SELECT id, body, img, note FROM docs ORDER BY id",
        )
        .await?;
    let want: Vec<Row> = source
        .into_iter()
        .map(|(id, body, img, note)| (id, expect_text(body), expect_bytes(img), note))
        .collect();
    let p = pg.client("postgres").await?;
    let got: Vec<Row> = p
        .query(
            "SELECT id::bigint, body, img, note::text FROM shop.docs ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(got, want);
    let doc: String = p
        .query_one("SELECT doc::text FROM shop.docs WHERE id = 4", &[])
        .await?
        .get(0);
    assert!(doc.len() > 3000, "JSON is never cut: {doc}");
    // MySQL's row images carry every column: the note-only update of row 3
    // sends its long img again, which is cut (and counted) again.
    f.wait_until("the stream's counts", Duration::from_secs(30), || {
        truncations(&f, "cut", "docs") == 5
    });
    let keys = recorded_cuts(&p, "shop.docs").await?;
    assert_eq!(keys, ["id=1", "id=2", "id=3", "id=3", "id=4"]);
    Ok(())
}
