//! Cutover on a MySQL / MariaDB source or target: freezing writes and
//! moving AUTO_INCREMENT counters.

use super::{classify, connect, quote, quote_table};
use crate::engine::ConnectorError;
use ferry_common::endpoint::Endpoint;
use ferry_common::schema::TableSchema;
use mysql_async::prelude::Queryable;

/// Freezes writes server-wide with `read_only` (and MySQL 8's
/// `super_read_only` where it exists): accounts without SUPER / READ ONLY
/// ADMIN can no longer write; replication is unaffected.
pub async fn freeze(ep: &Endpoint, freeze: bool) -> Result<(), ConnectorError> {
    let what = format!("setting read_only = {freeze} on {ep}");
    let mut c = connect(ep).await?;
    let on = if freeze { "ON" } else { "OFF" };
    c.query_drop(format!("SET GLOBAL read_only = {on}"))
        .await
        .map_err(|e| classify(&what, e))?;
    let has_super: Option<String> = c.query_first("SELECT @@GLOBAL.super_read_only").await.unwrap_or(None);
    if has_super.is_some() {
        c.query_drop(format!("SET GLOBAL super_read_only = {on}"))
            .await
            .map_err(|e| classify(&what, e))?;
    }
    Ok(())
}

/// Moves each AUTO_INCREMENT counter of the tables (as the target names
/// them) past the largest value loaded.
pub async fn sync_auto_increment(target: &Endpoint, tables: &[TableSchema]) -> Result<(), ConnectorError> {
    let mut c = connect(target).await?;
    for t in tables.iter().filter(|t| !t.sequences.is_empty()) {
        let t = crate::engine::on_target(t, ferry_common::endpoint::Engine::Mysql)?;
        let name = quote_table(&t);
        for seq in &t.sequences {
            let what = format!("setting AUTO_INCREMENT of {}", t.display_name());
            let next: Option<u64> = c
                .query_first(format!(
                    "SELECT COALESCE(MAX({}), 0) + 1 FROM {name}",
                    quote(&seq.column)
                ))
                .await
                .map_err(|e| classify(&what, e))?;
            c.query_drop(format!("ALTER TABLE {name} AUTO_INCREMENT = {}", next.unwrap_or(1)))
                .await
                .map_err(|e| classify(&what, e))?;
        }
    }
    Ok(())
}
