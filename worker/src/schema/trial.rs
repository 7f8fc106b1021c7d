//! Trying a conversion on a real target (`--target` of `ferry schema
//! convert` and `ferry assess`): an object counts as converted only once its
//! statements ran there. A translation that parses can still fail on the
//! server (a type the expression does not accept, a missing function), and
//! a DDL file that fails at its first bad view would stop a task after every
//! row was loaded.
//!
//! Nothing of the trial stays on the target:
//! - PostgreSQL runs every statement in one transaction, each object in a
//!   savepoint (a failure undoes only that object), and rolls it back.
//! - MySQL commits DDL, so the trial creates only databases that do not
//!   exist on the target yet and drops them afterwards; the objects of a
//!   database that exists there already are not tried (and said so) rather
//!   than touch it.
//!
//! Objects are tried in file order (pre-data, post-data, cutover), so an
//! object sees the ones it depends on — unless those failed, which its own
//! error then shows.

use super::assessment::{ActionItem, Category, Effort, Outcome, Severity};
use super::convert::{Conversion, Ddl};
use super::script::mysql_statements;
use crate::engine::{mysql, postgres, ConnectorError};
use ferry_common::endpoint::{Endpoint, Engine};
use mysql_async::prelude::Queryable;

/// An object whose statements the target refused.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub object: String,
    pub error: String,
    pub sql: String,
}

/// Every DDL of the conversion in the order the files run.
fn in_order(conv: &Conversion) -> impl Iterator<Item = &Ddl> {
    conv.pre_data
        .iter()
        .chain(&conv.post_data)
        .chain(&conv.foreign_keys)
        .chain(&conv.triggers)
}

/// What a trial found.
#[derive(Debug, Default)]
pub struct Trial {
    /// Objects that failed, each with its first error.
    pub refused: Vec<Refusal>,
    /// Objects not tried (MySQL: their database exists on the target).
    pub untried: Vec<String>,
}

/// Runs the conversion on the target as described above.
pub async fn run(conv: &Conversion, target: &Endpoint) -> Result<Trial, ConnectorError> {
    match target.engine {
        Engine::Postgres => Ok(Trial {
            refused: on_postgres(conv, target).await?,
            untried: vec![],
        }),
        Engine::Mysql => on_mysql(conv, target).await,
    }
}

fn record(out: &mut Vec<Refusal>, d: &Ddl, error: String) {
    if let Some(r) = out.iter_mut().find(|r| r.object == d.object) {
        r.sql.push('\n');
        r.sql.push_str(&d.sql);
    } else {
        out.push(Refusal {
            object: d.object.clone(),
            error,
            sql: d.sql.clone(),
        });
    }
}

async fn on_postgres(conv: &Conversion, target: &Endpoint) -> Result<Vec<Refusal>, ConnectorError> {
    let c = postgres::connect(target).await?;
    let fail = |what: &str, e| postgres::classify(format!("trying the conversion on {target}: {what}"), e);
    c.batch_execute("BEGIN").await.map_err(|e| fail("BEGIN", e))?;
    let mut out: Vec<Refusal> = vec![];
    for d in in_order(conv) {
        // The rest of an object whose first statement failed is not tried.
        if out.iter().any(|r| r.object == d.object) {
            record(&mut out, d, String::new());
            continue;
        }
        c.batch_execute("SAVEPOINT ferry_trial")
            .await
            .map_err(|e| fail("SAVEPOINT", e))?;
        if let Err(e) = c.batch_execute(&d.sql).await {
            let error = e.as_db_error().map_or(e.to_string(), |db| db.message().to_string());
            c.batch_execute("ROLLBACK TO SAVEPOINT ferry_trial")
                .await
                .map_err(|e| fail("ROLLBACK TO SAVEPOINT", e))?;
            record(&mut out, d, error);
        }
    }
    c.batch_execute("ROLLBACK").await.map_err(|e| fail("ROLLBACK", e))?;
    Ok(out)
}

/// `CREATE DATABASE IF NOT EXISTS name ...` → `name`, unquoted.
fn created_database(sql: &str) -> Option<String> {
    let rest = sql.trim().strip_prefix("CREATE DATABASE IF NOT EXISTS ")?;
    let name = rest.split_whitespace().next()?.trim_end_matches(';');
    Some(name.trim_matches('`').replace("``", "`"))
}

async fn on_mysql(conv: &Conversion, target: &Endpoint) -> Result<Trial, ConnectorError> {
    let mut c = mysql::connect(target).await?;
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
            .map_err(|e| mysql::classify(&what, e))?;
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
                    .map_err(|e| mysql::classify(&what, e))?;
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
                        _ => return Err(mysql::classify(&what, e)),
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
        c.query_drop(format!("DROP DATABASE IF EXISTS {}", mysql::quote(db)))
            .await
            .map_err(|e| mysql::classify(format!("{what}: dropping the trial database {db}"), e))?;
    }
    result.map(|_| Trial { refused: out, untried })
}

/// Folds the trial into the conversion: each refused object needs action,
/// with the server's error; its statements leave the files (kept as the
/// item's proposed SQL to fix) so that a task running them does not stop
/// there — except a table's, without which nothing could be loaded.
pub fn apply(conv: &mut Conversion, refused: &[Refusal]) {
    for r in refused {
        let category = conv
            .objects
            .iter()
            .find(|o| o.name == r.object)
            .map_or(Category::Tables, |o| o.category);
        let id = format!("APPLY-FAILED/{}", r.object);
        let table = category == Category::Tables;
        conv.items.push(ActionItem {
            id: id.clone(),
            code: "APPLY-FAILED",
            severity: if table { Severity::Critical } else { Severity::High },
            effort: Some(Effort::Medium),
            category,
            object: r.object.clone(),
            message: format!("the converted statements fail on the target: {}", r.error),
            action: if table {
                "Fix the table's statements in pre-data.sql / post-data.sql before any task uses them."
            } else {
                "Fix the proposed statements and add them to post-data.sql (or cutover.sql for triggers)."
            }
            .to_string(),
            source_sql: String::new(),
            proposed_sql: Some(r.sql.clone()),
        });
        for o in conv.objects.iter_mut().filter(|o| o.name == r.object) {
            o.outcome = Outcome::Action;
            o.effort = o.effort.max(Some(Effort::Medium));
            o.action_items.push(id.clone());
        }
        if !table {
            for list in [
                &mut conv.pre_data,
                &mut conv.post_data,
                &mut conv.foreign_keys,
                &mut conv.triggers,
            ] {
                list.retain(|d| d.object != r.object);
            }
        }
    }
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
