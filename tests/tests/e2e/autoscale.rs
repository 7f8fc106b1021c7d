//! `ferry up --autoscale --min-workers 1 --max-workers 4`: a full load of
//! several tables cut into many segments raises the workers to the
//! maximum; a quiet CDC tail lets them fall back to the minimum after the
//! cooldown (drained, not killed); the target stays identical row for row.
use ferry_tests::*;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `ferry-worker` children of `pid`.
fn workers_of(pid: u32) -> Vec<u32> {
    children(pid, "ferry-worker")
}

#[tokio::test(flavor = "multi_thread")]
async fn workers_follow_the_desired_capacity() -> anyhow::Result<()> {
    let pair = PgbenchPair::new(6)?;
    // A second large table, so the load spans several big tables.
    pair.src
        .client("postgres")
        .await?
        .batch_execute(
            "CREATE TABLE accounts_copy AS SELECT * FROM pgbench_accounts;
             ALTER TABLE accounts_copy ADD PRIMARY KEY (aid); ANALYZE accounts_copy;",
        )
        .await?;
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let log_path = dir.path().join("up.log");
    let log = std::fs::File::create(&log_path)?;
    let mut up = Command::new(bin_dir().join("ferry"))
        .args(["up", "--autoscale", "--min-workers", "1", "--max-workers", "4"])
        .args(["--scale-down-cooldown", "3", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let up_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let ferry = |args: &[&str]| {
        let (ok, text) = ferry_at(&url, &[], args);
        assert!(ok, "ferry {args:?}: {text}\n--- ferry up:\n{}", up_log());
        text
    };
    let wait = |what: &str, limit: Duration, f: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !f() {
            assert!(start.elapsed() < limit, "timed out waiting for {what}:\n{}", up_log());
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let up_pid = up.id();
    wait("the coordinator to answer", Duration::from_secs(30), &|| {
        ferry_at(&url, &[], &["capacity"]).0
    });
    wait("the minimum of one worker", Duration::from_secs(30), &|| {
        workers_of(up_pid).len() == 1
    });

    // Sample the number of workers throughout.
    let samples: Arc<Mutex<Vec<(Instant, usize)>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (samples, done) = (samples.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                samples.lock().unwrap().push((Instant::now(), workers_of(up_pid).len()));
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let most = |since: Instant| {
        samples
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| *t >= since)
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(0)
    };

    let t0 = Instant::now();
    ferry(&[
        "task",
        "create",
        "scale",
        "--source",
        &pair.src.url("postgres"),
        "--target",
        &pair.dst.url("postgres"),
        "--type",
        "full-load-and-cdc",
        "--settings",
        pair.settings.to_str().unwrap(),
    ]);
    ferry(&["task", "start", "scale"]);
    wait("workers to rise to the maximum", Duration::from_secs(120), &|| {
        workers_of(up_pid).len() == 4
    });
    let rose = t0.elapsed();
    println!("workers rose to 4 {rose:?} after the task started");
    println!("{}", ferry(&["capacity"]));
    ferry(&["task", "wait", "scale", "--for", "full-load", "--timeout", "600"]);
    let loaded = t0.elapsed();
    assert_eq!(most(t0), 4, "never more than --max-workers");

    // A quiet CDC tail: a few changes, then nothing. One unit (the stream)
    // is desired; after the 3 s cooldown the others drain.
    let writes = pair.write_load(1, 3)?;
    finish(writes);
    ferry(&["task", "wait", "scale", "--for", "caught-up", "--timeout", "300"]);
    wait("workers to fall back to the minimum", Duration::from_secs(60), &|| {
        workers_of(up_pid).len() == 1
    });
    let fell = t0.elapsed();
    println!("full load done at {loaded:?}; workers back to 1 at {fell:?}");
    assert!(
        up_log().contains("drained and exited"),
        "scale-down drains workers:\n{}",
        up_log()
    );

    // The one worker left carries the stream on.
    let writes = pair.write_load(2, 5)?;
    finish(writes);
    ferry(&["task", "wait", "scale", "--for", "caught-up", "--timeout", "300"]);
    pair.assert_identical().await?;
    assert_tables_identical(&pair.src, &pair.dst, &["accounts_copy"]).await?;
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();

    // SIGTERM: the workers drain, then ferry up exits cleanly.
    let kids = workers_of(up_pid);
    assert!(Command::new("kill")
        .args(["-TERM", &up_pid.to_string()])
        .status()?
        .success());
    let st = up.wait()?;
    assert!(st.success(), "ferry up exited {st}:\n{}", up_log());
    for k in kids {
        assert!(
            std::fs::read_to_string(format!("/proc/{k}/stat")).map_or(true, |s| s.contains(") Z ")),
            "worker {k} outlived ferry up"
        );
    }
    Ok(())
}
