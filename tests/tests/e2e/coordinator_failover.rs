//! Three coordinators run a full-load-and-cdc task under pgbench; the
//! leader is SIGKILLed in the middle of the full load, and the next leader
//! again during CDC (each restarted on its data dir afterwards). The task
//! finishes with every pgbench table identical, `pgbench_history` (no key)
//! included, so nothing was lost or applied twice. Printed: the time from
//! each kill to the next assignment a worker started (the full load's next
//! segment) and to the next leader answering.
use ferry_tests::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

fn leader(f: &Ferry, coordinator: &str) -> Option<u64> {
    f.cluster_status(coordinator).and_then(|s| s["leader_id"].as_u64())
}

/// Milliseconds since the epoch of a log line's leading RFC 3339 UTC
/// timestamp (`2026-12-02T22:49:34.123456Z ...`).
fn line_ms(line: &str) -> Option<u64> {
    // Log files keep the terminal colours: ESC [ ... m around the stamp.
    let mut plain = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| *c == 'm');
        } else {
            plain.push(c);
        }
    }
    let ts = plain.split_whitespace().next()?;
    let (date, time) = ts.strip_suffix('Z')?.split_once('T')?;
    let d: Vec<i64> = date.split('-').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    let (y, m, day) = (d[0] - i64::from(d[1] <= 2), d[1], d[2]);
    // Days from civil (Howard Hinnant's algorithm).
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ms: i64 = format!("{:0<3}", &frac[..frac.len().min(3)]).parse().ok()?;
    Some((days * 86_400_000 + (t[0] * 3600 + t[1] * 60 + t[2]) * 1000 + ms) as u64)
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// The first assignment a worker started after `since` (a log line
/// "loading segment" or "starting").
fn first_start_after(f: &Ferry, since: SystemTime) -> Option<u64> {
    let since = epoch_ms(since);
    f.workers
        .iter()
        .flat_map(|w| {
            w.log_text()
                .lines()
                .filter(|l| l.contains("loading segment") || l.contains(" starting"))
                .filter_map(line_ms)
                .collect::<Vec<_>>()
        })
        .filter(|ms| *ms >= since)
        .min()
        .map(|ms| ms - since)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_leader_killed_mid_load_and_during_cdc_loses_and_doubles_nothing() -> anyhow::Result<()> {
    let p = PgbenchPair::new(3)?;
    let mut f = Ferry::start(0, 3000, &[])?;
    let (started, all) = f.start_cluster(3)?;
    let mut ports = BTreeMap::from([(1, f.port)]);
    let mut nodes = BTreeMap::new();
    for (n, (port, proc)) in (2..).zip(started) {
        ports.insert(n, port);
        nodes.insert(n, proc);
    }
    let url = |p: u16| format!("http://127.0.0.1:{p}");
    // One slot each (the default): one worker holds the load's snapshot,
    // the other loads segments one after another, so the load is in the
    // middle of them for a while.
    f.add_worker_at(&all, &[])?;
    f.add_worker_at(&all, &[])?;
    std::fs::write(&p.settings, r#"{"Ferry": {"SegmentTargetBytes": 1000000}}"#)?;
    p.create_task(&f, "ha", "full-load-and-cdc");
    let load = p.write_load(2, 90)?;
    f.ok(&["task", "start", "ha"]);

    let status = |f: &Ferry| {
        let (ok, out, _) = f.ferry(&["task", "status", "ha", "--output", "json", "--coordinator", &all]);
        ok.then(|| serde_json::from_str::<serde_json::Value>(&out).ok())
            .flatten()
    };
    let kill = |f: &mut Ferry, nodes: &mut BTreeMap<u64, Proc>, n: u64| {
        if n == 1 {
            f.coordinator.as_mut().unwrap().kill9();
        } else {
            nodes.get_mut(&n).unwrap().kill9();
        }
    };

    // 1. Mid full load: some segments of pgbench_accounts done, not all.
    f.wait_until("the full load to be under way", Duration::from_secs(300), || {
        status(&f).is_some_and(|s| {
            s["tables"].as_array().is_some_and(|t| {
                t.iter().any(|t| {
                    t["name"] == "pgbench_accounts"
                        && t["segments_done"].as_u64() >= Some(2)
                        && t["segments_done"].as_u64() < t["segments_total"].as_u64().map(|n| n - 2)
                })
            })
        })
    });
    let first = leader(&f, &all).expect("a leader");
    let at = SystemTime::now();
    let killed = Instant::now();
    kill(&mut f, &mut nodes, first);
    let others: Vec<String> = ports
        .iter()
        .filter(|(n, _)| **n != first)
        .map(|(_, p)| url(*p))
        .collect();
    let others = others.join(",");
    f.wait_until("a new leader", Duration::from_secs(30), || {
        leader(&f, &others).is_some_and(|l| l != first)
    });
    let elected = killed.elapsed();
    f.wait_until("a worker to start the next segment", Duration::from_secs(60), || {
        first_start_after(&f, at).is_some()
    });
    let granted = first_start_after(&f, at).unwrap();
    eprintln!(
        "kill mid full load (node {first}): new leader answered after {elected:?}, next assignment started {granted} ms after the kill"
    );
    let restarted = f.coordinator_node(first, ports[&first], &others)?;
    if first == 1 {
        f.coordinator = Some(restarted);
    } else {
        nodes.insert(first, restarted);
    }
    let (ok, out, err) = f.ferry(&[
        "task",
        "wait",
        "ha",
        "--for",
        "full-load",
        "--timeout",
        "600",
        "--coordinator",
        &all,
    ]);
    assert!(ok, "full-load wait failed: {out}{err}");

    // 2. During CDC, under the same pgbench run.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let second = leader(&f, &all).expect("a leader");
    let killed = Instant::now();
    kill(&mut f, &mut nodes, second);
    let others: Vec<String> = ports
        .iter()
        .filter(|(n, _)| **n != second)
        .map(|(_, p)| url(*p))
        .collect();
    let others = others.join(",");
    f.wait_until("a new leader", Duration::from_secs(30), || {
        leader(&f, &others).is_some_and(|l| l != second)
    });
    eprintln!(
        "kill during CDC (node {second}): new leader answered after {:?}",
        killed.elapsed()
    );
    let restarted = f.coordinator_node(second, ports[&second], &others)?;
    if second == 1 {
        f.coordinator = Some(restarted);
    } else {
        nodes.insert(second, restarted);
    }

    finish(load);
    f.wait_caught_up_at("ha", &all);
    p.assert_identical().await?;
    let st = status(&f).unwrap();
    assert_eq!(st["state"], "running", "{st}");
    Ok(())
}
