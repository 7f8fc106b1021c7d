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

/// GET over HTTP/1.0 (so that the answer is never chunked): (status, body).
fn get10(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, out.split_once("\r\n\r\n")?.1.to_string()))
}

/// `s` percent-encoded for a URL's query string.
fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Prometheus server (Debian's `prometheus`) scraping `coordinator` and
/// `worker` every second and evaluating deploy/'s alert rules; killed on
/// drop.
struct Prometheus {
    addr: String,
    _dir: tempfile::TempDir,
    child: std::process::Child,
}

impl Prometheus {
    fn start(coordinator: &str, worker: &str) -> anyhow::Result<Prometheus> {
        let dir = tempfile::tempdir()?;
        let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/prometheus/ferry-alerts.yml");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
                 rule_files: ['{rules}']\n\
                 scrape_configs:\n\
                 - job_name: ferry-coordinator\n  static_configs: [{{targets: ['{coordinator}']}}]\n\
                 - job_name: ferry-worker\n  static_configs: [{{targets: ['{worker}']}}]\n"
            ),
        )?;
        let addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.path().join("prometheus.log"))?;
        let child = std::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting prometheus (apt-get install prometheus): {e}"))?;
        let p = Prometheus { addr, _dir: dir, child };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while get10(&p.addr, "/-/ready").map(|(s, _)| s) != Some(200) {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "prometheus did not become ready: {}",
                std::fs::read_to_string(p._dir.path().join("prometheus.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(p)
    }

    /// The API's answer to `path` (its `data`), failing on an error status.
    fn api(&self, path: &str) -> serde_json::Value {
        let (status, body) = get10(&self.addr, path).unwrap_or_else(|| panic!("prometheus did not answer {path}"));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        assert!(status == 200 && v["status"] == "success", "{path}: {status} {body}");
        v["data"].clone()
    }

    /// An instant query's samples: (labels, value).
    fn query(&self, promql: &str) -> Vec<(serde_json::Value, f64)> {
        let data = self.api(&format!("/api/v1/query?query={}", query_escape(promql)));
        data["result"]
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|s| {
                        (
                            s["metric"].clone(),
                            s["value"][1].as_str().unwrap_or("NaN").parse().unwrap_or(f64::NAN),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until `promql` has one sample satisfying `ok`, and returns it.
    fn wait_for(&self, promql: &str, ok: impl Fn(f64) -> bool) -> f64 {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let r = self.query(promql);
            if let [(_, v)] = r.as_slice() {
                if ok(*v) {
                    return *v;
                }
            }
            assert!(std::time::Instant::now() < deadline, "{promql}: {r:?}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `ferry_*` metric names an expression uses.
fn ferry_names(expr: &str) -> Vec<String> {
    let mut names = vec![];
    let mut rest = expr;
    while let Some(i) = rest.find("ferry_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// A real Prometheus scrapes the coordinator and a worker during a
/// full-load-and-cdc task: its queries return the series with the values
/// the test expects, deploy/'s alert rules evaluate without error and fire
/// for a failed task, and every expression of deploy/'s Grafana dashboard
/// is valid PromQL over series Ferry serves.
#[tokio::test(flavor = "multi_thread")]
async fn a_real_prometheus_scrapes_the_series_and_evaluates_the_rules() -> anyhow::Result<()> {
    let pg = PgServer::start()?;
    let s = pg.src_and_dst(5000).await?;
    let coordinator = format!("127.0.0.1:{}", free_port());
    let worker = format!("127.0.0.1:{}", free_port());
    let mut f = Ferry::start_args(0, 3000, &["--metrics-listen", &coordinator])?;
    f.add_worker(&[("FERRY_METRICS_LISTEN", worker.as_str())])?;
    let prom = Prometheus::start(&coordinator, &worker)?;
    create_typed(
        &f,
        "prom",
        &pg.url("src"),
        &pg.url("dst"),
        "full-load-and-cdc",
        "{}",
        &[],
    );
    f.ok(&["task", "start", "prom"]);
    wait_caught_up(&f, "prom");
    s.batch_execute("INSERT INTO public.t SELECT i, 'new' FROM generate_series(5001, 5040) i;")
        .await?;
    wait_caught_up(&f, "prom");

    prom.wait_for(r#"ferry_full_load_rows{task="prom",table="public.t"}"#, |v| v == 5000.0);
    prom.wait_for(r#"ferry_cdc_inserts{task="prom",table="public.t"}"#, |v| v == 40.0);
    let latency = prom.wait_for(r#"ferry_cdc_latency_source_seconds{task="prom"}"#, |v| v < 5.0);
    eprintln!("source latency after catch-up, as Prometheus has it: {latency} s");
    prom.wait_for(r#"ferry_task_info{task="prom",state="running"}"#, |v| v == 1.0);
    prom.wait_for("max(ferry_raft_is_leader)", |v| v == 1.0);
    prom.wait_for("ferry_raft_term", |v| v >= 1.0);
    prom.wait_for("ferry_worker_resident_memory_bytes", |v| v > 1e6);
    prom.wait_for("ferry_worker_cpu_seconds_total", |v| v > 0.0);
    prom.wait_for(r#"up{job="ferry-worker"}"#, |v| v == 1.0);
    // The bytes the worker sent: at least the table's text once.
    prom.wait_for(
        r#"ferry_worker_full_load_bytes_target_total{task="prom",table="public.t"}"#,
        |v| v > 5000.0 * 5.0,
    );
    prom.wait_for(r#"ferry_worker_cdc_bytes_target_total{task="prom"}"#, |v| {
        v > 40.0 * 5.0
    });
    prom.wait_for(
        r#"ferry_worker_full_load_bytes_source_total{task="prom",table="public.t"}"#,
        |v| v > 5000.0 * 5.0,
    );
    prom.wait_for(r#"ferry_worker_cdc_bytes_source_total{task="prom"}"#, |v| {
        v > 40.0 * 5.0
    });

    // A task whose mappings select nothing fails at introspection (on a
    // second worker: the first holds the stream); the FerryTaskFailed
    // rule fires for it (and for nothing else).
    f.add_worker(&[])?;
    let dir = tempfile::tempdir()?;
    let none = mapping_file(
        &dir,
        r#"{"rules": [{"rule-type": "selection", "rule-id": "1", "rule-name": "1",
            "object-locator": {"schema-name": "public", "table-name": "nosuch%"}, "rule-action": "include"}]}"#,
    );
    create_typed(
        &f,
        "broken",
        &pg.url("src"),
        &pg.url("dst"),
        "full-load",
        "{}",
        &["--table-mappings", &none],
    );
    f.ok(&["task", "start", "broken"]);
    wait_failed(&f, "broken", Duration::from_secs(60));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let firing = loop {
        let alerts = prom.api("/api/v1/alerts");
        let firing: Vec<(String, String)> = alerts["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["state"] == "firing")
            .map(|a| {
                (
                    a["labels"]["alertname"].as_str().unwrap_or("").to_string(),
                    a["labels"]["task"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        if !firing.is_empty() || std::time::Instant::now() > deadline {
            break firing;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(firing, vec![("FerryTaskFailed".to_string(), "broken".to_string())]);
    // Every rule evaluated without error.
    let rules = prom.api("/api/v1/rules");
    let mut evaluated = 0;
    for group in rules["groups"].as_array().expect("rule groups") {
        for rule in group["rules"].as_array().expect("rules") {
            assert_eq!(rule["health"], "ok", "{rule}");
            evaluated += 1;
        }
    }
    assert!(evaluated >= 10, "{rules}");

    // The dashboard: every query is valid PromQL (a query error fails
    // `api`), and every ferry_ series it reads is one Ferry serves.
    let served: Vec<String> = prom
        .api("/api/v1/label/__name__/values")
        .as_array()
        .expect("metric names")
        .iter()
        .filter_map(|n| n.as_str().map(String::from))
        .collect();
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana/ferry-dashboard.json"
    ))?)?;
    let mut exprs = vec![];
    for p in dashboard["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().expect("expr").replace("$task", ".*"));
        }
    }
    assert!(exprs.len() >= 20, "{exprs:?}");
    let mut empty = vec![];
    for e in &exprs {
        for name in ferry_names(e) {
            assert!(
                served.contains(&name),
                "the dashboard reads {name}, which Ferry does not serve ({e})"
            );
        }
        if prom.query(e).is_empty() {
            empty.push(e.clone());
        }
    }
    eprintln!("dashboard queries with no sample at this moment: {empty:?}");
    // The rules read only series Ferry serves (or Prometheus's own `up`).
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/prometheus/ferry-alerts.yml"
    ))?;
    for line in text.lines().filter(|l| l.trim_start().starts_with("expr:")) {
        for name in ferry_names(line) {
            assert!(
                served.contains(&name),
                "an alert reads {name}, which Ferry does not serve ({line})"
            );
        }
    }
    Ok(())
}

/// `ferry task wait` shows its progress on stderr: bars (the task's rows,
/// the table loading, redrawn in place) when stderr is a terminal — here
/// a pseudo-terminal from `script` — and plain lines otherwise; stdout
/// keeps only the result line either way.
#[tokio::test(flavor = "multi_thread")]
async fn task_wait_shows_progress_bars_on_a_terminal_and_lines_elsewhere() -> anyhow::Result<()> {
    let pg = PgServer::start()?;
    pg.src_and_dst(1000).await?;
    pg.client("postgres")
        .await?
        .batch_execute("CREATE DATABASE plain")
        .await?;
    // The segment pauses 7 s before it commits: the wait sees it loading,
    // and lasts past the 5 s before a plain line.
    let f = Ferry::start(1, 10000, &[("FERRY_FAILPOINT", "before-commit:7000")])?;
    for (task, db) in [("tty", "dst"), ("plain", "plain")] {
        create_typed(&f, task, &pg.url("src"), &pg.url(db), "full-load", "{}", &[]);
    }

    f.ok(&["task", "start", "tty"]);
    let cmd = format!(
        "FERRY_COORDINATOR={} {} task wait tty --for full-load --timeout 120",
        f.url(),
        bin_dir().join("ferry").display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()?;
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("task tty") && shown.contains("public.t"), "{shown}");
    assert!(
        shown.contains("/1000 rows") && shown.contains("[="),
        "no bar drawn: {shown}"
    );
    assert!(shown.contains("task tty: full load complete (1000 rows)"), "{shown}");

    f.ok(&["task", "start", "plain"]);
    let (ok, stdout, stderr) = f.ferry(&["task", "wait", "plain", "--for", "full-load", "--timeout", "120"]);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(stdout, "task plain: full load complete (1000 rows)\n");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("task plain: ") && l.contains(" complete, rows ")),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "terminal codes in a pipe: {stderr:?}");
    Ok(())
}
