//! Cutover on a PostgreSQL database: freezing and thawing its writes.

use super::{classify, connect};
use crate::engine::ConnectorError;
use ferry_common::endpoint::Endpoint;
use ferry_common::schema::quote_ident;

/// Freezes writes to the source database: new sessions start read-only
/// (`default_transaction_read_only`) and every open client session of the
/// database is ended, so none keeps writing with its old setting. Ferry's
/// own replication connections are walsenders and are left alone. A client
/// may still `SET transaction_read_only = off` explicitly: this stops
/// applications, not a determined superuser. `freeze = false` undoes it
/// for new sessions.
pub async fn freeze(ep: &Endpoint, freeze: bool) -> Result<(), ConnectorError> {
    let what = if freeze {
        format!("freezing writes on {ep}")
    } else {
        format!("allowing writes on {ep} again")
    };
    let c = connect(ep).await?;
    let db = quote_ident(&ep.dbname);
    let sql = if freeze {
        format!("ALTER DATABASE {db} SET default_transaction_read_only = on")
    } else {
        format!("ALTER DATABASE {db} RESET default_transaction_read_only")
    };
    // Ferry's sessions are writable even while frozen (see `connect`).
    c.batch_execute(&sql).await.map_err(|e| classify(&what, e))?;
    if freeze {
        let ended: i64 = c
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
                &[],
            )
            .await
            .map_err(|e| classify(&what, e))?
            .get(0);
        tracing::info!(
            sessions = ended,
            "source frozen: new sessions are read-only, open ones ended"
        );
    }
    Ok(())
}
