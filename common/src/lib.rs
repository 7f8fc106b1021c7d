//! Types shared by Ferry's coordinator and workers: the generated gRPC code,
//! endpoints, DMS table mappings and task settings, the schema model that
//! introspection produces, segment plans, and the units of work.

pub mod convert;
pub mod endpoint;
pub mod mapping;
pub mod plan;
pub mod position;
pub mod schema;
pub mod settings;
pub mod telemetry;
pub mod typemap;
pub mod value;
pub mod work;

/// Generated protobuf and gRPC code for `proto/ferry.proto`.
pub mod proto {
    #![allow(clippy::all)]
    tonic::include_proto!("ferry.v1");
}

/// Default address of the coordinator's gRPC listener.
pub const DEFAULT_COORDINATOR: &str = "http://127.0.0.1:7400";

/// Milliseconds since the Unix epoch, the coordinator's clock for leases.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
