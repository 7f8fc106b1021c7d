//! Types shared by Ferry's coordinator and workers: the generated gRPC code,
//! endpoints, DMS table mappings and task settings, the schema model that
//! introspection produces, segment plans, and the units of work.

pub mod access;
pub mod control;
pub mod convert;
pub mod dms_settings;
pub mod endpoint;
pub mod expression;
pub mod filter;
pub mod fuzz;
pub mod leader;
pub mod lob;
pub mod mapping;
pub mod plan;
pub mod position;
pub mod readiness;
pub mod schema;
pub mod settings;
pub mod stop;
pub mod telemetry;
pub mod transform;
pub mod typemap;
pub mod value;
pub mod work;

/// Generated protobuf and gRPC code for `proto/ferry.proto`.
pub mod proto {
    #![allow(clippy::all)]
    tonic::include_proto!("ferry.v1");
}

/// Generated code for KEDA's external scaler API (`proto/externalscaler.proto`).
pub mod externalscaler {
    #![allow(clippy::all)]
    tonic::include_proto!("externalscaler");
}

/// Default address of the coordinator's gRPC listener.
pub const DEFAULT_COORDINATOR: &str = "http://127.0.0.1:7400";

/// An error and its causes on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// Milliseconds since the Unix epoch, the coordinator's clock for leases.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Unix seconds as UTC `YYYY-MM-DD HH:MM:SS` (SQL's date-time text).
pub fn utc_datetime(secs: i64) -> String {
    let (y, mo, d, h, mi, s) = civil_utc(secs);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

/// `(year, month, day, hour, minute, second)` in UTC of Unix seconds
/// (civil date from days since 1970-01-01, H. Hinnant's algorithm).
pub fn civil_utc(secs: i64) -> (i64, i64, i64, i64, i64, i64) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, rem / 3600, rem / 60 % 60, rem % 60)
}
