//! Turns an [`Endpoint`] into a live connection, resolving the password on
//! the worker (`engine::credentials`): `password_env`, `password_file`, else
//! PGPASSWORD, else ~/.pgpass.

use crate::engine::ConnectorError;
use ferry_common::endpoint::Endpoint;

fn pgpass(ep: &Endpoint) -> Option<String> {
    let path = std::env::var("PGPASSFILE")
        .ok()
        .or_else(|| std::env::var("HOME").ok().map(|h| format!("{h}/.pgpass")))?;
    let text = std::fs::read_to_string(path).ok()?;
    let port = ep.port.to_string();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        // host:port:db:user:password, with \: and \\ escapes.
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => cur.extend(chars.next()),
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        fields.push(cur);
        if fields.len() != 5 {
            continue;
        }
        let m = |f: &str, v: &str| f == "*" || f == v;
        if m(&fields[0], &ep.host) && m(&fields[1], &port) && m(&fields[2], &ep.dbname) && m(&fields[3], &ep.user) {
            return Some(fields[4].clone());
        }
    }
    None
}

/// The endpoint's password: its own source, else PGPASSWORD, else ~/.pgpass.
pub(crate) fn password(ep: &Endpoint) -> Result<Option<String>, ConnectorError> {
    crate::engine::credentials::password(ep, || std::env::var("PGPASSWORD").ok().or_else(|| pgpass(ep)))
}

pub async fn connect(ep: &Endpoint) -> Result<tokio_postgres::Client, ConnectorError> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&ep.host)
        .port(ep.port)
        .user(&ep.user)
        .dbname(&ep.dbname)
        .application_name(ep.application_name.as_deref().unwrap_or("ferry"))
        // A database frozen by a cutover (`cutover::freeze`) refuses its
        // applications' writes, not Ferry's: the reverse stream, its target
        // preparation and the freeze's own undo write there.
        .options("-c default_transaction_read_only=off")
        .connect_timeout(std::time::Duration::from_secs(10));
    if let Some(p) = password(ep)? {
        cfg.password(p);
    }
    if let Some(mode) = &ep.sslmode {
        if mode != "disable" && mode != "prefer" && mode != "allow" {
            return Err(ConnectorError::Definite(format!(
                "{ep}: sslmode={mode} is not supported yet"
            )));
        }
    }
    let (client, conn) = cfg
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| super::classify(format!("connecting to {ep}"), e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "postgres connection closed");
        }
    });
    Ok(client)
}
