//! Fault injection for the end-to-end tests, in the spirit of TiKV's fail
//! points: `FERRY_FAILPOINT=before-commit:MS` (or `after-commit:MS`) makes a
//! worker pause at that point of every segment load and log that it did, so
//! a test can kill it at a known moment; `validate-settle:MS` makes every
//! validation of a CDC task pause, then wait for the stream, as one that
//! found a difference does. Unset in production.

/// The pause in milliseconds set for `point`, if any.
fn armed(point: &str) -> Option<u64> {
    let spec = std::env::var("FERRY_FAILPOINT").ok()?;
    let (name, ms) = spec.split_once(':')?;
    (name == point).then(|| ms.parse().unwrap_or(0))
}

/// Whether a pause is set for `point` (to log what the test needs to know
/// about the moment it pauses at).
pub fn is_armed(point: &str) -> bool {
    armed(point).is_some()
}

pub async fn pause(point: &str) {
    let Some(ms) = armed(point) else { return };
    tracing::warn!(failpoint = point, ms, "failpoint: pausing");
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}
