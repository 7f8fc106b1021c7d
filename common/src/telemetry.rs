//! Logging and tracing shared by the binaries: `tracing` to stderr,
//! filtered by `FERRY_LOG` (falling back to `RUST_LOG`, then the binary's
//! default), and, when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, the same spans exported
//! over OTLP/gRPC (`OTEL_SERVICE_NAME` and the other standard variables
//! apply).
//!
//! A trace crosses processes with its W3C `traceparent`: the coordinator
//! puts the grant's into the assignment ([`traceparent`]), the worker makes
//! its assignment span a child of it ([`follow`]), so one segment's life —
//! grant, read, write, commit, report — is one trace.

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::collections::HashMap;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Keeps the OTLP pipeline while it lives; dropping it sends the spans
/// not sent yet. Drop it inside the Tokio runtime it was made in.
#[must_use = "dropping it stops exporting traces"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            if let Err(e) = p.shutdown() {
                eprintln!("warning: flushing traces: {e}");
            }
        }
    }
}

/// Whether the environment asks for OTLP export.
fn otlp_wanted() -> bool {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.trim().is_empty());
    (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        && !std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Installs the subscriber: logs at `default_level`, and spans over OTLP
/// as `service` when the environment asks. With OTLP, call it inside a
/// Tokio runtime (the exporter's gRPC client runs on it).
pub fn init(default_level: &str, service: &str) -> Telemetry {
    let filter = std::env::var("FERRY_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default_level.to_string());
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let mut provider = None;
    let traces = if otlp_wanted() {
        match opentelemetry_otlp::SpanExporter::builder().with_tonic().build() {
            Ok(exporter) => {
                let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service.to_string());
                let p = SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(
                        opentelemetry_sdk::Resource::builder()
                            .with_service_name(service)
                            .build(),
                    )
                    .build();
                let tracer = p.tracer("ferry");
                provider = Some(p);
                Some(tracing_opentelemetry::layer().with_tracer(tracer))
            }
            Err(e) => {
                eprintln!("warning: OTLP trace export is off: {e}");
                None
            }
        }
    } else {
        None
    };
    let _ = tracing_subscriber::registry()
        .with(EnvFilter::new(filter))
        .with(logs)
        .with(traces)
        .try_init();
    Telemetry { provider }
}

/// The current span's trace context as a W3C `traceparent` header value
/// (empty when no trace is being exported).
pub fn traceparent() -> String {
    let cx = tracing::Span::current().context();
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent").unwrap_or_default()
}

/// Makes `span` a child of the span `traceparent` names (another
/// process's); nothing when it is empty or malformed.
pub fn follow(span: &tracing::Span, traceparent: &str) {
    if traceparent.is_empty() {
        return;
    }
    let carrier: HashMap<String, String> = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    let _ = span.set_parent(cx);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_context_no_traceparent() {
        // Without an exporting subscriber there is no trace to carry on.
        assert_eq!(traceparent(), "");
        follow(&tracing::Span::none(), "not a traceparent");
    }
}
