//! A worker resolves an endpoint's password itself, at connect time:
//! `password_env`, `password_file`, else the engine's own convention (each
//! engine's connect module passes it). The password never leaves the
//! connecting function: not in the task, the Raft log, RocksDB or errors.

use crate::engine::ConnectorError;
use ferry_common::endpoint::{Endpoint, PasswordSource};

/// The password for `ep`; `default` is the engine's convention when the
/// endpoint names no source (PGPASSWORD and ~/.pgpass, MYSQL_PWD).
pub(crate) fn password(
    ep: &Endpoint,
    default: impl FnOnce() -> Option<String>,
) -> Result<Option<String>, ConnectorError> {
    match &ep.password {
        PasswordSource::Env(var) => std::env::var(var).map(Some).map_err(|_| {
            ConnectorError::Definite(format!(
                "{ep}: password_env={var} but that variable is not set on this worker"
            ))
        }),
        PasswordSource::File(path) => std::fs::read_to_string(path)
            .map(|s| Some(s.trim_end_matches(['\n', '\r']).to_string()))
            .map_err(|e| ConnectorError::Definite(format!("{ep}: reading password_file {path}: {e}"))),
        PasswordSource::Default => Ok(default()),
    }
}
