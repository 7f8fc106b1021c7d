//! Sessions on a MySQL or MariaDB server: one for reading into the value
//! model, one for writing as a target.

use super::classify;
use crate::engine::ConnectorError;
use ferry_common::endpoint::{Endpoint, TlsMode};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// Opens a session that reads values the way the value model wants them:
/// utf8mb4 text and TIMESTAMP in UTC (so full-load rows and binlog rows,
/// which carry UTC seconds, agree).
pub async fn connect(ep: &Endpoint) -> Result<mysql_async::Conn, ConnectorError> {
    let password = crate::engine::credentials::password(ep, "MYSQL_PWD", || None)?;
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(ep.host.clone())
        .tcp_port(ep.port)
        .user(Some(ep.user.clone()))
        .pass(password)
        .db_name(Some(ep.dbname.clone()))
        .prefer_socket(false)
        // mysql_clear_password sends the password as it is; only on the
        // endpoint's say-so (`plaintext_password=allow`).
        .enable_cleartext_plugin(ep.plaintext_password)
        .init(vec!["SET NAMES utf8mb4", "SET time_zone = '+00:00'"]);
    let what = || format!("connecting to {ep} (ssl-mode={})", ep.tls.mode.name(ep.engine));
    let fail = |e: mysql_async::Error| {
        if matches!(
            e,
            mysql_async::Error::Driver(mysql_async::DriverError::CleartextPluginDisabled)
        ) {
            ConnectorError::Definite(format!(
                "{}: the server asked for the password in cleartext (mysql_clear_password); Ferry refused to send it \
                 (add plaintext_password=allow to the endpoint if the connection is trusted)",
                what()
            ))
        } else if is_tls_failure(&e) {
            ConnectorError::Definite(format!("{}: {e}", what()))
        } else {
            classify(what(), e)
        }
    };
    if ep.tls.mode == TlsMode::Disable {
        return mysql_async::Conn::new(opts).await.map_err(fail);
    }
    let ssl = ssl_opts(ep)?;
    let first = match mysql_async::Conn::new(opts.clone().ssl_opts(ssl.clone())).await {
        // VERIFY_CA: the driver cannot skip only the name check (its switch
        // for that matches an error text rustls no longer writes), so the
        // name is checked and, where only it failed, the connection is made
        // again checking a name the certificate carries: rustls checks the
        // chain before the name, so the chain held.
        Err(e) if ep.tls.verifies_chain() && ep.tls.mode != TlsMode::VerifyFull => match name_presented(&e) {
            Some(name) => {
                mysql_async::Conn::new(opts.clone().ssl_opts(ssl.with_danger_tls_hostname_override(Some(name)))).await
            }
            None => Err(e),
        },
        other => other,
    };
    match first {
        // PREFERRED: a server without TLS is used in plaintext.
        Err(mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer))
            if !ep.tls.mode.required() =>
        {
            mysql_async::Conn::new(opts).await.map_err(fail)
        }
        Err(mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer)) => Err(
            ConnectorError::Definite(format!("{}: the server does not support TLS", what())),
        ),
        other => other.map_err(fail),
    }
}

/// When a connection failed only because the server's certificate does not
/// name the host connected to: a DNS name it does carry (a wildcard's
/// first label filled in).
fn name_presented(e: &mysql_async::Error) -> Option<String> {
    let rustls_error = match e {
        mysql_async::Error::Io(mysql_async::IoError::Io(io)) => io.get_ref()?.downcast_ref::<rustls::Error>()?,
        _ => return None,
    };
    let rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { presented, .. }) =
        rustls_error
    else {
        return None;
    };
    // webpki writes each presented name as `DnsName("host")`.
    presented.iter().find_map(|p| {
        let name = p.strip_prefix("DnsName(\"")?.strip_suffix("\")")?;
        Some(name.replacen("*.", "ferry-verify-ca.", 1))
    })
}

/// The driver's TLS options for the endpoint's settings, with the meaning
/// `engine::tls` gives each mode. The driver builds its rustls
/// configuration from the process's default provider, which `tls::provider`
/// installs.
fn ssl_opts(ep: &Endpoint) -> Result<mysql_async::SslOpts, ConnectorError> {
    crate::engine::tls::provider();
    let mut o = mysql_async::SslOpts::default();
    if let Some(ca) = &ep.tls.root_cert {
        o = o
            .with_root_certs(vec![std::path::PathBuf::from(ca).into()])
            .with_disable_built_in_roots(true);
    }
    if !ep.tls.verifies_chain() {
        o = o.with_danger_accept_invalid_certs(true);
    }
    if let (Some(cert), Some(key)) = (&ep.tls.cert, &ep.tls.key) {
        // Read here, so that a missing file is named as the endpoint's.
        crate::engine::tls::client_identity(ep, ("ssl-cert", "ssl-key"))?;
        o = o.with_client_identity(Some(mysql_async::ClientIdentity::new(
            std::path::PathBuf::from(cert).into(),
            std::path::PathBuf::from(key).into(),
        )));
    }
    Ok(o)
}

/// A TLS failure (a handshake or certificate error), which no retry mends.
fn is_tls_failure(e: &mysql_async::Error) -> bool {
    match e {
        mysql_async::Error::Io(mysql_async::IoError::Tls(_)) => true,
        mysql_async::Error::Io(mysql_async::IoError::Io(io)) => crate::engine::tls::is_tls_failure(io),
        _ => false,
    }
}

/// How long a server waits on a stream of Ferry's that stalls — the worker
/// not reading a segment's rows (net_write_timeout, 60 s by default), or
/// not sending the next piece of a LOAD DATA LOCAL (net_read_timeout, 30 s)
/// — before it drops the connection, in seconds. Ferry stalls longer on
/// purpose: backpressure from a target that is slow for a while (a server
/// takes over a minute to store a 1 GB row), a large value read and
/// encoded (a minute for 1 GB in a debug build). A worker that dies closes
/// its connections; a partitioned one is left to its lease and the probes,
/// and the server lets its connection go after this long.
pub(crate) const STREAM_STALL_S: u32 = 600;

/// A target session: identifiers in ANSI double quotes (the form the
/// converted DDL uses), strict values, an explicit 0 kept in an
/// AUTO_INCREMENT column, foreign keys checked only once they exist, and
/// READ COMMITTED: under REPEATABLE READ a segment's range delete takes
/// next-key locks that reach into the neighbouring segment's uncommitted
/// rows, so parallel segments of one table would wait on each other.
pub(crate) async fn target_session(ep: &Endpoint) -> Result<Conn, ConnectorError> {
    let mut c = connect(ep).await?;
    c.query_drop(
        "SET SESSION sql_mode = 'ANSI_QUOTES,STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION', foreign_key_checks = 0;
         SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    )
    .await
    .map_err(|e| classify(format!("setting up a session on {ep}"), e))?;
    Ok(c)
}

pub(crate) async fn exec(c: &mut Conn, sql: &str, what: &str) -> Result<(), ConnectorError> {
    c.query_drop(sql).await.map_err(|e| classify(what, e))
}
