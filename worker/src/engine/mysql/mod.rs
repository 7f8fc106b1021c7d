//! MySQL / MariaDB connector: connections, introspection from
//! information_schema, and segment reads into the common value model.

pub(crate) mod binlog;
pub(crate) mod catalog;
pub(crate) mod charset;
pub(crate) mod cutover;
pub(crate) mod encode;
mod introspect;
pub(crate) mod position;
pub(crate) mod read;
pub(crate) mod tablemap;
pub(crate) mod target;
pub(crate) mod validate;
pub(crate) mod write;

use super::ConnectorError;
use ferry_common::endpoint::Endpoint;
use mysql_async::prelude::Queryable;

/// Opens a session that reads values the way the value model wants them:
/// utf8mb4 text and TIMESTAMP in UTC (so full-load rows and binlog rows,
/// which carry UTC seconds, agree).
pub async fn connect(ep: &Endpoint) -> Result<mysql_async::Conn, ConnectorError> {
    let password = crate::engine::credentials::password(ep, || std::env::var("MYSQL_PWD").ok())?;
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(ep.host.clone())
        .tcp_port(ep.port)
        .user(Some(ep.user.clone()))
        .pass(password)
        .db_name(Some(ep.dbname.clone()))
        .prefer_socket(false)
        .init(vec!["SET NAMES utf8mb4", "SET time_zone = '+00:00'"]);
    mysql_async::Conn::new(opts)
        .await
        .map_err(|e| classify(format!("connecting to {ep}"), e))
}

/// Server errors that pass with time are transient: lock wait timeout
/// (1205), deadlock (1213), too many connections (1040), shutdown in
/// progress (1053), server gone (2006, 2013); so is any I/O error.
pub(crate) fn classify(context: impl std::fmt::Display, e: mysql_async::Error) -> ConnectorError {
    match &e {
        mysql_async::Error::Server(s) => {
            let msg = format!("{context}: {} (MySQL error {})", s.message, s.code);
            if matches!(s.code, 1205 | 1213 | 1040 | 1053 | 2006 | 2013 | 1927) {
                ConnectorError::Transient(msg)
            } else {
                ConnectorError::Definite(msg)
            }
        }
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => {
            ConnectorError::Transient(format!("{context}: {e}"))
        }
        _ => ConnectorError::Definite(format!("{context}: {e}")),
    }
}

/// Quotes a MySQL identifier with backticks.
pub(crate) fn quote(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

/// Runs a prepared statement and returns its rows as text.
pub(crate) async fn query_text<P: Into<mysql_async::Params> + Send>(
    c: &mut mysql_async::Conn,
    sql: &str,
    params: P,
    what: &str,
) -> Result<Vec<Vec<Option<String>>>, ConnectorError> {
    let rows: Vec<mysql_async::Row> = c.exec(sql, params).await.map_err(|e| classify(what, e))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            r.unwrap_raw()
                .into_iter()
                .map(|v| match v {
                    Some(mysql_async::Value::Bytes(b)) => Some(String::from_utf8_lossy(&b).into_owned()),
                    Some(mysql_async::Value::NULL) | None => None,
                    Some(mysql_async::Value::Int(i)) => Some(i.to_string()),
                    Some(mysql_async::Value::UInt(u)) => Some(u.to_string()),
                    Some(v) => Some(v.as_sql(true).trim_matches('\'').to_string()),
                })
                .collect()
        })
        .collect())
}

pub use introspect::introspect;
