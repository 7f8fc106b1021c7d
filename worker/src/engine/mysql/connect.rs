//! Sessions on a MySQL or MariaDB server: one for reading into the value
//! model, one for writing as a target.

use super::classify;
use crate::engine::ConnectorError;
use ferry_common::endpoint::Endpoint;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

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
