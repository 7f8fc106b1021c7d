//! Logging setup shared by the binaries: `tracing` to stderr, filtered by
//! `FERRY_LOG` (falling back to `RUST_LOG`, then `info`).
use tracing_subscriber::EnvFilter;

pub fn init(default_level: &str) {
    let filter = std::env::var("FERRY_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default_level.to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
