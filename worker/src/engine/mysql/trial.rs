//! Trying a conversion on a MySQL target (see `schema::trial`). MySQL
//! commits DDL, so the trial creates only databases that do not exist on the
//! target yet and drops them afterwards; the objects of a database that
//! exists there already are not tried (and said so) rather than touch it.

use super::{classify, connect, quote};
use crate::engine::ConnectorError;
use crate::schema::convert::{Conversion, Ddl};
use crate::schema::script::mysql_statements;
use crate::schema::trial::{in_order, record, Refusal, Trial};
use ferry_common::endpoint::Endpoint;
use mysql_async::prelude::Queryable;

/// `CREATE DATABASE IF NOT EXISTS name ...` → `name`, unquoted.
fn created_database(sql: &str) -> Option<String> {
    let rest = sql.trim().strip_prefix("CREATE DATABASE IF NOT EXISTS ")?;
    let name = rest.split_whitespace().next()?.trim_end_matches(';');
    Some(name.trim_matches('`').replace("``", "`"))
}

pub(crate) async fn run(conv: &Conversion, target: &Endpoint) -> Result<Trial, ConnectorError> {
    let mut c = connect(target).await?;
    let what = format!("trying the conversion on {target}");
    let mut databases = vec![];
    let mut existing = vec![];
    for db in conv.pre_data.iter().filter_map(|d| created_database(&d.sql)) {
        let exists: Option<String> = c
            .exec_first(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
                (&db,),
            )
            .await
            .map_err(|e| classify(&what, e))?;
        if exists.is_some() {
            existing.push(db);
        } else {
            databases.push(db);
        }
    }
    // Objects are named `database` or `database.name...`.
    let in_existing = |d: &Ddl| {
        existing
            .iter()
            .any(|db| d.object == *db || d.object.starts_with(&format!("{db}.")))
    };
    let mut untried: Vec<String> = vec![];
    let mut out: Vec<Refusal> = vec![];
    // cutover.sql runs with ANSI_QUOTES (its foreign keys are written so).
    let cutover_from = conv.pre_data.len() + conv.post_data.len();
    let result = async {
        for (i, d) in in_order(conv).enumerate() {
            if i == cutover_from {
                c.query_drop("SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',ANSI_QUOTES')")
                    .await
                    .map_err(|e| classify(&what, e))?;
            }
            if in_existing(d) {
                if !untried.contains(&d.object) {
                    untried.push(d.object.clone());
                }
                continue;
            }
            if out.iter().any(|r| r.object == d.object) {
                record(&mut out, d, String::new());
                continue;
            }
            for stmt in mysql_statements(&d.sql) {
                if let Err(e) = c.query_drop(&stmt).await {
                    let error = match &e {
                        mysql_async::Error::Server(s) => s.message.clone(),
                        _ => return Err(classify(&what, e)),
                    };
                    record(&mut out, d, error);
                    break;
                }
            }
        }
        Ok(())
    }
    .await;
    for db in &databases {
        c.query_drop(format!("DROP DATABASE IF EXISTS {}", quote(db)))
            .await
            .map_err(|e| classify(format!("{what}: dropping the trial database {db}"), e))?;
    }
    result.map(|_| Trial { refused: out, untried })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names() {
        assert_eq!(
            created_database("CREATE DATABASE IF NOT EXISTS `a``b` CHARACTER SET utf8mb4;").as_deref(),
            Some("a`b")
        );
        assert_eq!(
            created_database("CREATE DATABASE IF NOT EXISTS shop;").as_deref(),
            Some("shop")
        );
        assert_eq!(created_database("CREATE TABLE x (a int);"), None);
    }
}
