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
    crate::engine::credentials::password(ep, "PGPASSWORD", || pgpass(ep))
}

/// Options of every session Ferry opens on a PostgreSQL server (see
/// [`connect`]); the walsender's add its own time zone and bytea form.
pub(crate) const SESSION_OPTIONS: &str = "-c default_transaction_read_only=off -c standard_conforming_strings=on \
     -c DateStyle=ISO,YMD -c IntervalStyle=postgres -c extra_float_digits=1 -c lc_monetary=C";

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
        // Values travel between servers as text (CDC, validation digests):
        // every session reads and writes them in one form, the walsender's
        // (`cdc::replication`), whatever each server's defaults — a money
        // literal in the C form does not parse under another lc_monetary,
        // and float output under extra_float_digits 0 is rounded.
        .options(SESSION_OPTIONS)
        .connect_timeout(std::time::Duration::from_secs(10));
    let password = password(ep)?;
    // A Unix socket has no network path to read.
    let guard = password.is_some() && !ep.tls.mode.required() && !ep.plaintext_password && !ep.host.starts_with('/');
    if let Some(p) = password {
        cfg.password(p);
    }
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(crate::engine::tls::pg_client_config(ep)?);
    let (client, conn) = match ep.tls.mode {
        TlsMode::Disable => open(&cfg.ssl_mode(SslMode::Disable).clone(), ep, tls, guard).await,
        // libpq's allow: plaintext first, TLS only if the server refuses it.
        TlsMode::Allow => match open(&cfg.ssl_mode(SslMode::Disable).clone(), ep, tls.clone(), guard).await {
            Ok(c) => Ok(c),
            Err(OpenError::Pg(e)) if e.as_db_error().is_some() => {
                open(&cfg.ssl_mode(SslMode::Require).clone(), ep, tls, false).await
            }
            Err(e) => Err(e),
        },
        TlsMode::Prefer => open(&cfg.ssl_mode(SslMode::Prefer).clone(), ep, tls, guard).await,
        TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull => {
            open(&cfg.ssl_mode(SslMode::Require).clone(), ep, tls, false).await
        }
    }
    .map_err(|e| match e {
        OpenError::Pg(e) => connect_error(ep, e),
        OpenError::Io(e) => ConnectorError::Transient(format!("connecting to {ep}: {e}")),
    })?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "postgres connection closed");
        }
    });
    Ok(client)
}

/// The connection's driver, whichever socket it runs on.
type Driver = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send>>;

enum OpenError {
    Pg(tokio_postgres::Error),
    /// Opening the socket Ferry wraps itself.
    Io(std::io::Error),
}

/// Connects with `cfg`; with `guard`, on a socket that refuses to let a
/// password go out in cleartext or as MD5 unencrypted (`super::cleartext`).
async fn open(
    cfg: &tokio_postgres::Config,
    ep: &Endpoint,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    guard: bool,
) -> Result<(tokio_postgres::Client, Driver), OpenError> {
    use tokio_postgres::tls::MakeTlsConnect;
    if !guard {
        let (client, conn) = cfg.connect(tls).await.map_err(OpenError::Pg)?;
        return Ok((client, Box::pin(conn)));
    }
    // The socket is ours to wrap: opened as tokio-postgres would (one
    // host, its connect timeout), then handed to it raw.
    let tcp = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::net::TcpStream::connect((ep.host.as_str(), ep.port)),
    )
    .await
    .unwrap_or_else(|_| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")))
    .map_err(OpenError::Io)?;
    let _ = tcp.set_nodelay(true);
    let stream = super::cleartext::Guarded::new(tcp);
    let mut tls = tls;
    let connector =
        <_ as MakeTlsConnect<super::cleartext::Guarded<tokio::net::TcpStream>>>::make_tls_connect(&mut tls, &ep.host)
            .expect("a rustls connector for any host name");
    let (client, conn) = cfg.connect_raw(stream, connector).await.map_err(OpenError::Pg)?;
    Ok((client, Box::pin(conn)))
}

/// A failed connection as one line naming the endpoint and the cause. A TLS
/// failure (the server offers no TLS where it is required, a certificate
/// that does not verify) is definite: retrying cannot change it.
fn connect_error(ep: &Endpoint, e: tokio_postgres::Error) -> ConnectorError {
    let what = format!("connecting to {ep} (sslmode={})", ep.tls.mode.name(ep.engine));
    if let Some(refused) = chain_find::<super::cleartext::Refused>(&e) {
        return ConnectorError::Definite(format!(
            "{what}: {refused} (use sslmode=require or stronger, have the server ask for scram-sha-256, \
             or add plaintext_password=allow to the endpoint)"
        ));
    }
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

/// The first error of type `T` in `e`'s chain (an io::Error's payload included).
fn chain_find<'a, T: std::error::Error + 'static>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a T> {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(t) = c.downcast_ref::<T>() {
            return Some(t);
        }
        if let Some(inner) = c.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            if let Some(t) = inner.downcast_ref::<T>() {
                return Some(t);
            }
        }
        cur = c.source();
    }
    None
}
