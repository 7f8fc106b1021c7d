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
