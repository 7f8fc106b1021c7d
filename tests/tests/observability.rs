//! The coordinator's `/metrics` (`--metrics-listen`): the DMS-named task
//! and table series during a full-load-and-cdc task, PostgreSQL →
//! PostgreSQL, checked against what the test itself did: the rows the full
//! load copied equal the table's rows, the inserts and deletes CDC applied
//! equal the ones the test made, and the source latency is near zero once
//! the stream has caught up.
use ferry_tests::*;
use std::time::Duration;

/// The value of the series `name{labels}` (labels as the exposition writes
/// them), if present.
fn sample(body: &str, name: &str, labels: &str) -> Option<f64> {
    let head = format!("{name}{{{labels}}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&head))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn task_series_follow_the_load_and_the_changes() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let dst = PgServer::start()?;
    let s = src.client("postgres").await?;
    s.batch_execute(
        "CREATE TABLE public.t (id int PRIMARY KEY, v text);
         INSERT INTO public.t SELECT i, 'v' || i FROM generate_series(1, 5000) i;",
    )
    .await?;
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let f = Ferry::start_args(1, 3000, &["--metrics-listen", &listen])?;
    create_typed(
        &f,
        "obs",
        &src.url("postgres"),
        &dst.url("postgres"),
        "full-load-and-cdc",
        "{}",
        &[],
    );
    f.ok(&["task", "start", "obs"]);
    wait_caught_up(&f, "obs");
    s.batch_execute(
        "INSERT INTO public.t SELECT i, 'new' FROM generate_series(5001, 5040) i;
         DELETE FROM public.t WHERE id <= 7;",
    )
    .await?;
    wait_caught_up(&f, "obs");
    // The per-table counters arrive with the stream's next report.
    let table = r#"task="obs",table="public.t""#;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let body = loop {
        let body = http_get(&listen, "/metrics").map(|(_, b)| b).unwrap_or_default();
        if sample(&body, "ferry_cdc_inserts", table) == Some(40.0) {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the changes were not counted:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(sample(&body, "ferry_full_load_rows", table), Some(5000.0), "{body}");
    assert_eq!(sample(&body, "ferry_full_load_error_rows", table), Some(0.0), "{body}");
    assert_eq!(sample(&body, "ferry_cdc_deletes", table), Some(7.0), "{body}");
    assert_eq!(sample(&body, "ferry_cdc_updates", table), Some(0.0), "{body}");
    assert_eq!(
        sample(&body, "ferry_full_load_segments", r#"task="obs",state="done""#).map(|n| n >= 1.0),
        Some(true),
        "{body}"
    );
    assert_eq!(
        sample(&body, "ferry_full_load_segments", r#"task="obs",state="failed""#),
        Some(0.0),
        "{body}"
    );
    assert_eq!(
        sample(
            &body,
            "ferry_task_info",
            r#"task="obs",type="full-load-and-cdc",state="running""#
        ),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, "ferry_tables_errored", r#"task="obs""#),
        Some(0.0),
        "{body}"
    );
    let latency = sample(&body, "ferry_cdc_latency_source_seconds", r#"task="obs""#).expect("latency");
    assert!(
        (0.0..5.0).contains(&latency),
        "caught up, yet {latency} s behind:\n{body}"
    );
    let age = sample(&body, "ferry_cdc_report_age_seconds", r#"task="obs""#).expect("report age");
    assert!(age < 10.0, "the stream last reported {age} s ago:\n{body}");
    // Every metric has its help line (the exposition is a library's).
    assert!(body.contains("# HELP ferry_cdc_latency_target_seconds"), "{body}");
    Ok(())
}
