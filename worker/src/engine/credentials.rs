//! A worker resolves an endpoint's password itself, at connect time:
//! `password_env`, `password_file`, else the engine's own convention (each
//! engine's connect module passes it). The password never leaves the
//! connecting function: not in the task, the Raft log, RocksDB or errors.
//!
//! Which secrets a worker reads is its own configuration's decision
//! (`--allow-secret`), not the task's: the coordinator refuses tasks that
//! would send a secret to a server its endpoint does not name, and a worker
//! additionally reads only the variables and files it was told it may — so
//! neither a task nor a compromised coordinator can make it read, say,
//! `/etc/shadow` as a "password file" or another service's variable.

use crate::engine::ConnectorError;
use ferry_common::endpoint::{Endpoint, PasswordSource};
use std::sync::OnceLock;

/// The secrets this worker may read, set once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretPolicy {
    /// Any variable or file (laptop mode: one user owns every process).
    Any,
    /// Only these `env:NAME` / `file:PATH` entries.
    Only(Vec<PasswordSource>),
}

static POLICY: OnceLock<SecretPolicy> = OnceLock::new();

impl SecretPolicy {
    /// `--allow-secret` values: `env:NAME`, `file:PATH`, or `*` for any.
    pub fn parse(specs: &[String]) -> Result<SecretPolicy, String> {
        let mut only = vec![];
        for spec in specs {
            match spec.split_once(':') {
                _ if spec == "*" => return Ok(SecretPolicy::Any),
                Some(("env", name)) if !name.is_empty() => only.push(PasswordSource::Env(name.into())),
                Some(("file", path)) if !path.is_empty() => only.push(PasswordSource::File(path.into())),
                _ => return Err(format!("--allow-secret '{spec}': expected env:NAME, file:PATH or '*'")),
            }
        }
        Ok(SecretPolicy::Only(only))
    }

    /// Makes `self` the process's policy; the first call wins.
    pub fn install(self) {
        let _ = POLICY.set(self);
    }

    fn allows(&self, s: &PasswordSource) -> bool {
        match self {
            SecretPolicy::Any => true,
            SecretPolicy::Only(list) => list.contains(s),
        }
    }
}

fn allowed(s: &PasswordSource) -> bool {
    POLICY.get().unwrap_or(&SecretPolicy::Any).allows(s)
}

/// The password for `ep`. Without a source named by the endpoint: the
/// engine's variable `default_env` (PGPASSWORD, MYSQL_PWD) where this
/// worker allows it, else `bound` — a password the client binds to the
/// server itself (`~/.pgpass`, matched by host, port, database and user).
pub(crate) fn password(
    ep: &Endpoint,
    default_env: &str,
    bound: impl FnOnce() -> Option<String>,
) -> Result<Option<String>, ConnectorError> {
    if ep.password != PasswordSource::Default && !allowed(&ep.password) {
        let (kind, name) = match &ep.password {
            PasswordSource::Env(v) => ("env", v),
            PasswordSource::File(p) => ("file", p),
            PasswordSource::Default => unreachable!("checked above"),
        };
        return Err(ConnectorError::Definite(format!(
            "{ep}: this worker may not read the secret {kind}:{name} (its --allow-secret / FERRY_ALLOW_SECRETS does not list it)"
        )));
    }
    match &ep.password {
        PasswordSource::Env(var) => std::env::var(var).map(Some).map_err(|_| {
            ConnectorError::Definite(format!(
                "{ep}: password_env={var} but that variable is not set on this worker"
            ))
        }),
        PasswordSource::File(path) => std::fs::read_to_string(path)
            .map(|s| Some(s.trim_end_matches(['\n', '\r']).to_string()))
            .map_err(|e| ConnectorError::Definite(format!("{ep}: reading password_file {path}: {e}"))),
        PasswordSource::Default => Ok(allowed(&PasswordSource::Env(default_env.into()))
            .then(|| std::env::var(default_env).ok())
            .flatten()
            .or_else(bound)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_specs() {
        assert_eq!(SecretPolicy::parse(&["*".into()]).unwrap(), SecretPolicy::Any);
        let p = SecretPolicy::parse(&["env:SRC_PW".into(), "file:/run/secrets/pw".into()]).unwrap();
        assert!(p.allows(&PasswordSource::Env("SRC_PW".into())));
        assert!(p.allows(&PasswordSource::File("/run/secrets/pw".into())));
        assert!(!p.allows(&PasswordSource::Env("HOME".into())));
        assert!(!p.allows(&PasswordSource::File("/etc/shadow".into())));
        assert!(!SecretPolicy::parse(&[])
            .unwrap()
            .allows(&PasswordSource::Env("PGPASSWORD".into())));
        for bad in ["SRC_PW", "env:", "vault:x"] {
            let e = SecretPolicy::parse(&[bad.into()]).unwrap_err();
            assert!(e.contains("expected env:NAME"), "{e}");
        }
    }
}
