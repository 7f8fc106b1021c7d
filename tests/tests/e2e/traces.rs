//! OTLP traces: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, the coordinator and
//! the workers export their spans to a receiver the test runs (the
//! collector's gRPC TraceService), and one segment's life is one trace
//! across the two processes: the coordinator's `grant` span is the parent
//! of the worker's `assignment` span (its traceparent travels in the
//! assignment), under which the work reads, writes and commits the segment
//! and reports the result. PostgreSQL → PostgreSQL copies (read and write
//! in one `copy` span); MariaDB → PostgreSQL reads and writes apart.
use ferry_tests::mariadb::MariaDbServer;
use ferry_tests::otlp::{Receiver, Span};
use ferry_tests::*;
use mysql_async::prelude::Queryable;
use std::time::Duration;

/// The spans of `spans` whose parent is `parent`.
fn children<'a>(spans: &'a [Span], parent: &Span) -> Vec<&'a Span> {
    spans
        .iter()
        .filter(|s| s.trace_id == parent.trace_id && s.parent_span_id == parent.span_id)
        .collect()
}

/// The names of every span under `root`, depth first.
fn names_under(spans: &[Span], root: &Span) -> Vec<String> {
    let mut out = vec![];
    for c in children(spans, root) {
        out.push(c.name.clone());
        out.extend(names_under(spans, c));
    }
    out
}

/// The worker's `assignment` span of a load of `table` in `task`, with the
/// coordinator's `grant` it continues, once both have arrived.
fn load_trace(receiver: &Receiver, task: &str, table: &str, wants: &[&str]) -> (Span, Span, Vec<String>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let spans = receiver.spans();
        for grant in spans
            .iter()
            .filter(|s| s.name == "grant" && s.service == "ferry-coordinator" && s.attribute("task") == Some(task))
        {
            for a in children(&spans, grant) {
                if a.name != "assignment" || a.service != "ferry-worker" || a.attribute("kind") != Some("LoadSegment") {
                    continue;
                }
                let names = names_under(&spans, a);
                let loads_table = spans
                    .iter()
                    .any(|s| s.trace_id == a.trace_id && s.attribute("table") == Some(table));
                if loads_table && wants.iter().all(|w| names.iter().any(|n| n == w)) {
                    return (grant.clone(), a.clone(), names);
                }
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no whole trace of a {table} load in task {task}; received {} spans: {:?}",
            spans.len(),
            spans.iter().map(|s| (&s.service, &s.name)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_segment_is_one_trace_from_the_grant_to_the_report() -> anyhow::Result<()> {
    let receiver = Receiver::start().await?;

    let pg = PgServer::start()?;
    pg.src_and_dst(3000).await?;
    let my = MariaDbServer::start()?;
    let mut m = my.client("mysql").await?;
    m.query_drop("CREATE DATABASE shop").await?;
    m.query_drop("CREATE TABLE shop.items (id int PRIMARY KEY, name varchar(40))")
        .await?;
    m.query_drop("INSERT INTO shop.items SELECT seq, concat('item ', seq) FROM seq_1_to_2000")
        .await?;
    pg.client("postgres")
        .await?
        .batch_execute("CREATE DATABASE frommy")
        .await?;

    // Every process of this Ferry's exports to the receiver, often.
    let endpoint = receiver.endpoint();
    let f = Ferry::start_env(
        1,
        5000,
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "500"),
        ],
    )?;
    create_full_load(&f, "pg", &pg.url("src"), &pg.url("dst"), "{}", &[]);
    create_full_load(&f, "my", &my.url("shop"), &pg.url("frommy"), "{}", &[]);
    for task in ["pg", "my"] {
        f.ok(&["task", "start", task]);
        f.ok(&["task", "wait", task, "--for", "completed", "--timeout", "120"]);
    }

    let (grant, assignment, names) = load_trace(&receiver, "pg", "public.t", &["work", "copy", "commit", "report"]);
    eprintln!("pg trace: grant → assignment → {names:?}");
    assert_eq!(assignment.attribute("task"), Some("pg"));
    assert_eq!(grant.parent_span_id, Vec::<u8>::new(), "the grant starts the trace");
    let (_, _, names) = load_trace(
        &receiver,
        "my",
        "shop.items",
        &["work", "read", "write", "commit", "report"],
    );
    eprintln!("my trace: grant → assignment → {names:?}");
    Ok(())
}
