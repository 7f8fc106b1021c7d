//! Fault injection for the end-to-end tests, in the spirit of TiKV's fail
//! points: `FERRY_FAILPOINT=before-commit:MS` (or `after-commit:MS`) makes a
//! worker pause at that point of every segment load and log that it did, so
//! a test can kill it at a known moment. Unset in production.

pub async fn pause(point: &str) {
    let Ok(spec) = std::env::var("FERRY_FAILPOINT") else {
        return;
    };
    let Some((name, ms)) = spec.split_once(':') else { return };
    if name != point {
        return;
    }
    let ms: u64 = ms.parse().unwrap_or(0);
    tracing::warn!(failpoint = point, ms, "failpoint: pausing");
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}
