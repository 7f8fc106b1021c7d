//! Trying a conversion on a PostgreSQL target (see `schema::trial`): every
//! statement in one transaction, each object in a savepoint (a failure
//! undoes only that object), and the whole rolled back.

use super::{classify, connect};
use crate::engine::ConnectorError;
use crate::schema::convert::Conversion;
use crate::schema::trial::{in_order, record, Refusal, Trial};
use ferry_common::endpoint::Endpoint;

pub(crate) async fn run(conv: &Conversion, target: &Endpoint) -> Result<Trial, ConnectorError> {
    let c = connect(target).await?;
    let fail = |what: &str, e| classify(format!("trying the conversion on {target}: {what}"), e);
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
    Ok(Trial {
        refused: out,
        untried: vec![],
    })
}
