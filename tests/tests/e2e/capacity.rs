//! Capacity units: KEDA's external scaler API follows a task's backlog
//! (driven with a real gRPC client), `ferry capacity` explains the figure,
//! and MaxCapacityUnits caps what a task runs at once.
use ferry_common::externalscaler::{external_scaler_client::ExternalScalerClient, GetMetricsRequest, ScaledObjectRef};
use ferry_tests::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn scaled(meta: &[(&str, &str)]) -> ScaledObjectRef {
    ScaledObjectRef {
        name: "ferry-worker".into(),
        namespace: "ferry".into(),
        scaler_metadata: meta
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
    }
}

async fn metric(c: &mut ExternalScalerClient<tonic::transport::Channel>, meta: &[(&str, &str)]) -> i64 {
    let r = c
        .get_metrics(GetMetricsRequest {
            scaled_object_ref: Some(scaled(meta)),
            metric_name: "ferry_desired_capacity".into(),
        })
        .await
        .expect("GetMetrics")
        .into_inner();
    assert_eq!(r.metric_values.len(), 1);
    assert_eq!(r.metric_values[0].metric_name, "ferry_desired_capacity");
    r.metric_values[0].metric_value
}

/// Small segments, and no whole-table copies (a full load into tables it
/// creates would copy pgbench_accounts whole): many segments to wait.
fn segmented(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let p = dir.path().join("settings.json");
    std::fs::write(
        &p,
        r#"{"Ferry": {"SegmentTargetBytes": 4000000, "SplitTablesLargerThan": 0}}"#,
    )
    .unwrap();
    p
}

fn capacity(f: &Ferry) -> serde_json::Value {
    serde_json::from_str(&f.ok(&["capacity", "--output", "json"])).expect("capacity JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_keda_scaler_follows_the_backlog() -> anyhow::Result<()> {
    let pair = PgbenchPair::new(4)?;
    // No workers yet: the work waits, and the figure says so.
    let mut f = Ferry::start_args(0, 3000, &["--scale-down-cooldown", "6"])?;
    let channel = tonic::transport::Endpoint::from_shared(f.url())?.connect().await?;
    let mut keda = ExternalScalerClient::new(channel);

    let active = keda.is_active(scaled(&[])).await?.into_inner().result;
    assert!(!active, "no task: nothing to scale for");
    assert_eq!(metric(&mut keda, &[]).await, 0);
    let spec = keda.get_metric_spec(scaled(&[])).await?.into_inner();
    assert_eq!(
        spec.metric_specs[0].target_size, 1,
        "one capacity unit per worker pod by default"
    );
    let spec = keda
        .get_metric_spec(scaled(&[("unitsPerReplica", "2")]))
        .await?
        .into_inner();
    assert_eq!(spec.metric_specs[0].target_size, 2);
    let bad = keda
        .get_metric_spec(scaled(&[("unitsPerReplica", "zero")]))
        .await
        .expect_err("a bad unitsPerReplica is refused");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{bad:?}");

    let dir = tempfile::tempdir()?;
    create_task(&f, "load", &pair.src, &pair.dst, "full-load", &segmented(&dir));
    f.ok(&["task", "start", "load"]);
    let mut stream = keda.stream_is_active(scaled(&[])).await?.into_inner();
    assert_eq!(
        stream.message().await?.map(|m| m.result),
        Some(true),
        "active once a task waits"
    );
    assert!(keda.is_active(scaled(&[])).await?.into_inner().result);
    assert_eq!(metric(&mut keda, &[("task", "load")]).await, 1, "introspection waits");
    let missing = keda
        .get_metrics(GetMetricsRequest {
            scaled_object_ref: Some(scaled(&[("task", "nope")])),
            metric_name: "ferry_desired_capacity".into(),
        })
        .await
        .expect_err("an unknown task is refused");
    assert_eq!(missing.code(), tonic::Code::NotFound, "{missing:?}");

    // One worker introspects: the segments appear, and the figure rises to
    // MaxFullLoadSubTasks (8, plus any post-data step that can run) while
    // one unit is granted.
    f.add_worker(&[])?;
    let start = Instant::now();
    loop {
        if metric(&mut keda, &[]).await >= 8 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the figure never rose to 8: {}",
            capacity(&f)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let c = capacity(&f);
    let t = &c["tasks"][0];
    assert_eq!(t["task"], "load");
    assert!(t["desired"].as_u64().unwrap() >= 8, "{c}");
    assert!(t["granted"].as_u64().unwrap() <= 1, "{c}");
    assert!(t["reason"].as_str().unwrap().contains("segments waiting"), "{c}");
    assert!(t["reason"].as_str().unwrap().contains("rows to load"), "{c}");
    let status = f.status("load").expect("status");
    assert!(
        status["capacity"]["desired"].as_u64().unwrap() >= 8,
        "task status JSON carries the figure: {status}"
    );
    println!("ferry capacity during the load:\n{}", f.ok(&["capacity"]));

    // More workers finish the load; the figure is held through the
    // cooldown, then falls to 0 and the scaler goes inactive.
    f.add_worker(&[])?;
    f.add_worker(&[])?;
    f.ok(&["task", "wait", "load", "--for", "completed", "--timeout", "300"]);
    let c = capacity(&f);
    assert_eq!(c["desired_now"], 0, "{c}");
    assert!(c["desired"].as_u64().unwrap() > 0, "held through the cooldown: {c}");
    let start = Instant::now();
    while metric(&mut keda, &[]).await > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the figure never fell: {}",
            capacity(&f)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let fell = start.elapsed();
    println!("desired capacity fell to 0 {fell:?} after the task completed (cooldown 6 s)");
    assert!(
        fell > Duration::from_secs(2),
        "scale-down did not wait for the cooldown ({fell:?})"
    );
    assert!(!keda.is_active(scaled(&[])).await?.into_inner().result);
    let next = tokio::time::timeout(Duration::from_secs(5), stream.message()).await??;
    assert_eq!(next.map(|m| m.result), Some(false), "the stream reports the change");
    pair.assert_identical().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn max_capacity_caps_what_a_task_runs() -> anyhow::Result<()> {
    let pair = PgbenchPair::new(3)?;
    let f = Ferry::start(4, 3000, &[])?;
    let dir = tempfile::tempdir()?;
    let settings = segmented(&dir);
    let settings = settings.to_str().unwrap();
    let (src, dst) = (pair.src.url("postgres"), pair.dst.url("postgres"));
    let create = |extra: &[&str]| {
        let mut args = vec![
            "task",
            "create",
            "capped",
            "--source",
            &src,
            "--target",
            &dst,
            "--settings",
            settings,
        ];
        args.extend_from_slice(extra);
        f.ferry(&args)
    };
    let (ok, out, err) = create(&["--max-capacity", "0"]);
    assert!(!ok && err.lines().count() == 1, "{out}{err}");
    assert!(err.contains("$.ComputeConfig.MaxCapacityUnits"), "{err}");
    let (ok, _, err) = create(&["--min-capacity", "3", "--max-capacity", "2"]);
    assert!(!ok && err.contains("$.ComputeConfig.MinCapacityUnits"), "{err}");

    let (ok, out, err) = create(&["--max-capacity", "2"]);
    assert!(ok, "{out}{err}");
    f.ok(&["task", "start", "capped"]);
    let (mut most_granted, mut most_desired) = (0, 0);
    let start = Instant::now();
    loop {
        let c = capacity(&f);
        let t = &c["tasks"][0];
        assert_eq!(t["max"], 2, "{c}");
        most_granted = most_granted.max(t["granted"].as_u64().unwrap());
        most_desired = most_desired.max(t["desired"].as_u64().unwrap());
        assert!(
            most_granted <= 2 && most_desired <= 2,
            "over MaxCapacityUnits 2 with 4 workers: {c}"
        );
        if f.status("capped").is_some_and(|s| s["state"] == "completed") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the capped task never completed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(most_granted, 2, "two segments ran at once");
    pair.assert_identical().await?;
    Ok(())
}
