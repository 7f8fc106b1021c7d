//! Turns an [`Endpoint`] into a live connection, resolving the password on
//! the worker (`engine::credentials`): `password_env`, `password_file`, else
//! PGPASSWORD, else ~/.pgpass.

use crate::engine::ConnectorError;
use ferry_common::endpoint::{Endpoint, TlsMode};
use tokio_postgres::config::SslMode;

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
        // Quoted literals Ferry builds double single quotes and nothing
        // else: backslashes must be plain characters in every session.
        .options("-c default_transaction_read_only=off -c standard_conforming_strings=on")
        .connect_timeout(std::time::Duration::from_secs(10));
    if let Some(p) = password(ep)? {
        cfg.password(p);
    }
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(crate::engine::tls::pg_client_config(ep)?);
    let (client, conn) = match ep.tls.mode {
        TlsMode::Disable => cfg.ssl_mode(SslMode::Disable).connect(tls).await,
        // libpq's allow: plaintext first, TLS only if the server refuses it.
        TlsMode::Allow => match cfg.ssl_mode(SslMode::Disable).connect(tls.clone()).await {
            Ok(c) => Ok(c),
            Err(e) if e.as_db_error().is_some() => cfg.ssl_mode(SslMode::Require).connect(tls).await,
            Err(e) => Err(e),
        },
        TlsMode::Prefer => cfg.ssl_mode(SslMode::Prefer).connect(tls).await,
        TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull => cfg.ssl_mode(SslMode::Require).connect(tls).await,
    }
    .map_err(|e| connect_error(ep, e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "postgres connection closed");
        }
    });
    Ok(client)
}

/// A failed connection as one line naming the endpoint and the cause. A TLS
/// failure (the server offers no TLS where it is required, a certificate
/// that does not verify) is definite: retrying cannot change it.
fn connect_error(ep: &Endpoint, e: tokio_postgres::Error) -> ConnectorError {
    let what = format!("connecting to {ep} (sslmode={})", ep.tls.mode.name(ep.engine));
    if crate::engine::tls::is_tls_failure(&e) {
        let mut msg = format!("{what}: {e}");
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            msg.push_str(&format!(": {s}"));
            source = s.source();
        }
        return ConnectorError::Definite(msg);
    }
    super::classify(what, e)
}
