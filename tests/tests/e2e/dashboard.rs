//! The coordinator's web dashboard in a real headless browser (Debian's
//! `chromium`): during a running full-load-and-cdc task the page shows the
//! task, its state, each table with a progress bar, the worker holding the
//! stream, and charts with lines drawn (full-load rows/s while the load
//! ran, CDC latency since). The screenshot is kept under the test's output
//! directory for a person to look at.
use ferry_tests::*;
use std::process::Command;
use std::time::Duration;

/// `chromium --headless` on `url`: the DOM after load, and a screenshot
/// written to `png`.
fn browse(url: &str, png: &std::path::Path) -> anyhow::Result<String> {
    let profile = tempfile::tempdir()?;
    let base = |cmd: &mut Command| {
        cmd.args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"])
            .arg(format!("--user-data-dir={}", profile.path().display()));
    };
    let mut dump = Command::new("chromium");
    base(&mut dump);
    let out = dump
        .args(["--dump-dom", url])
        .output()
        .map_err(|e| anyhow::anyhow!("running chromium (apt-get install chromium): {e}"))?;
    anyhow::ensure!(
        out.status.success(),
        "chromium --dump-dom: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut shot = Command::new("chromium");
    base(&mut shot);
    let st = shot
        .arg(format!("--screenshot={}", png.display()))
        .args(["--window-size=1280,1100", url])
        .output()?;
    anyhow::ensure!(
        st.status.success(),
        "chromium --screenshot: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_shows_a_running_task_in_a_real_browser() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let dst = PgServer::start()?;
    let s = src.client("postgres").await?;
    s.batch_execute(
        "CREATE TABLE public.orders (id int PRIMARY KEY, customer int, total numeric(10,2));
         INSERT INTO public.orders SELECT i, i % 97, i * 1.5 FROM generate_series(1, 20000) i;
         CREATE TABLE public.customers (id int PRIMARY KEY, name text);
         INSERT INTO public.customers SELECT i, 'customer ' || i FROM generate_series(1, 97) i;",
    )
    .await?;
    let listen = format!("127.0.0.1:{}", free_port());
    let mut f = Ferry::start_args(0, 3000, &["--metrics-listen", &listen])?;
    // Small segments, each pausing 1.5 s before it commits: the load spans
    // several of the dashboard's samples, so its rate has a shape.
    for _ in 0..2 {
        f.add_worker(&[("FERRY_FAILPOINT", "before-commit:1500")])?;
    }
    create_typed(
        &f,
        "shop",
        &src.url("postgres"),
        &dst.url("postgres"),
        "full-load-and-cdc",
        r#"{"Ferry": {"SegmentTargetBytes": 131072, "SplitTablesLargerThan": 0}}"#,
        &[],
    );
    f.ok(&["task", "start", "shop"]);
    wait_caught_up(&f, "shop");
    // Changes for the CDC side, and time for latency samples.
    for i in 0..5 {
        s.batch_execute(&format!(
            "UPDATE public.orders SET total = total + 1 WHERE id % 50 = {i}"
        ))
        .await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    wait_caught_up(&f, "shop");
    tokio::time::sleep(Duration::from_secs(4)).await;

    let png = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let dom = browse(&format!("http://{listen}/"), &png)?;
    eprintln!("dashboard screenshot: {}", png.display());
    for shown in [
        "<title>Ferry</title>",
        "shop",
        r#"class="badge running""#,
        "public.orders",
        "public.customers",
        "CDC stream",
        "Full-load rows/s (up to the last hour)",
        "CDC latency, seconds (up to the last hour)",
    ] {
        assert!(dom.contains(shown), "{shown} not on the page:\n{dom}");
    }
    // Lines drawn: the load's rate, and both latencies.
    for series in ["rows/s", "source", "target"] {
        assert!(
            dom.contains(&format!(r#"data-series="{series}""#)),
            "no {series} line drawn:\n{dom}"
        );
    }
    // Both tables complete: full bars.
    assert_eq!(dom.matches(r#"style="width:100.0%""#).count(), 2, "{dom}");
    // The load's rate was drawn above zero: its peak is in the line.
    let peak: f64 = dom
        .split(r#"data-series="rows/s" data-max=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|v| v.parse().ok())
        .expect("the rate line's peak");
    assert!(peak > 100.0, "the load's rate peaked at {peak} rows/s");
    let size = std::fs::metadata(&png)?.len();
    assert!(size > 20_000, "a {size}-byte screenshot is too small to show the page");
    Ok(())
}
