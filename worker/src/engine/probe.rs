//! A connection kept for the worker's liveness probes (see `crate::probe`).

use super::{mysql, postgres, ConnectorError};
use ferry_common::endpoint::{Endpoint, Engine};

/// A connection kept for liveness probes (see `crate::probe`), opened on
/// first use.
#[derive(Default)]
pub enum Probe {
    #[default]
    Unopened,
    Postgres(tokio_postgres::Client),
    Mysql(mysql_async::Conn),
}

impl Probe {
    /// Asks the server a trivial question.
    pub async fn ask(&mut self, ep: &Endpoint) -> Result<(), ConnectorError> {
        if matches!(self, Probe::Unopened) {
            *self = match ep.engine {
                Engine::Postgres => Probe::Postgres(postgres::connect(ep).await?),
                Engine::Mysql => Probe::Mysql(mysql::connect(ep).await?),
            };
        }
        match self {
            Probe::Unopened => Ok(()),
            Probe::Postgres(c) => c
                .simple_query("SELECT 1")
                .await
                .map(|_| ())
                .map_err(|e| postgres::classify(format!("liveness probe of {ep}"), e)),
            Probe::Mysql(c) => mysql_async::prelude::Queryable::query_drop(c, "SELECT 1")
                .await
                .map_err(|e| mysql::classify(format!("liveness probe of {ep}"), e)),
        }
    }
}

/// `ferry endpoint test`: connects as a task would and answers what a user
/// checks before creating one, as `(what, answer)` lines: the server, whether
/// the session is encrypted, and whether the server can be a CDC source.
pub async fn describe(ep: &Endpoint) -> Result<Vec<(&'static str, String)>, ConnectorError> {
    match ep.engine {
        Engine::Postgres => {
            let c = postgres::connect(ep).await?;
            let row = c
                .query_one(
                    "SELECT version(), \
                            coalesce((SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl), 'none'), \
                            current_setting('wal_level'), \
                            (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user)",
                    &[],
                )
                .await
                .map_err(|e| postgres::classify(format!("describing {ep}"), e))?;
            let replication = row.get::<_, Option<bool>>(3).unwrap_or(false);
            let mut out = vec![
                ("server", row.get::<_, String>(0)),
                ("tls", row.get::<_, String>(1)),
                ("wal_level", row.get::<_, String>(2)),
                (
                    "replication privilege",
                    if replication { "yes" } else { "no" }.to_string(),
                ),
            ];
            // The CDC stream's own connection authenticates separately.
            if replication {
                let rc = postgres::cdc::replication::ReplicationClient::connect(ep).await;
                out.push(("replication connection", rc.map(|_| "ok".to_string())?));
            }
            Ok(out)
        }
        Engine::Mysql => {
            use mysql_async::prelude::Queryable;
            let mut c = mysql::connect(ep).await?;
            let fail = |e| mysql::classify(format!("describing {ep}"), e);
            let (version, log_bin, format): (String, Option<String>, Option<String>) = c
                .query_first("SELECT VERSION(), CAST(@@log_bin AS CHAR), CAST(@@binlog_format AS CHAR)")
                .await
                .map_err(fail)?
                .unwrap_or_default();
            let cipher: Option<(String, String)> = c
                .query_first("SHOW SESSION STATUS LIKE 'Ssl_version'")
                .await
                .map_err(fail)?;
            let tls = cipher
                .map(|(_, v)| v)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "none".into());
            Ok(vec![
                ("server", version),
                ("tls", tls),
                ("log_bin", log_bin.unwrap_or_default()),
                ("binlog_format", format.unwrap_or_default()),
            ])
        }
    }
}
