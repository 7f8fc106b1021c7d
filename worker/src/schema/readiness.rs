//! `ferry endpoint test`, the worker's half: connects as a task would and
//! runs the premigration checks of each use (full-load source, CDC source,
//! target) against the endpoint's catalog, the same checks `ferry assess`
//! runs, so the two never disagree. The report is
//! [`ferry_common::readiness::Readiness`].

use super::check::{Check, CheckStatus};
use super::read_catalog;
use crate::engine::source::Source;
use crate::engine::target::Target;
use crate::engine::{probe, with_engine, ConnectorError};
use ferry_common::endpoint::Endpoint;
use ferry_common::mapping::TableMappings;
use ferry_common::readiness::{Outcome, Readiness, Status, Use};

pub async fn test(ep: &Endpoint) -> Result<Readiness, ConnectorError> {
    let facts = probe::describe(ep).await?;
    let catalog = read_catalog(ep, &TableMappings::include_all()).await?;
    let uses = vec![
        (
            Use::FullLoadSource,
            with_engine!(ep.engine, |e| e.read_checks(&catalog)),
        ),
        (Use::CdcSource, with_engine!(ep.engine, |e| e.cdc_checks(&catalog))),
        (Use::Target, with_engine!(ep.engine, |e| e.target_checks(&catalog))),
    ];
    Ok(Readiness {
        endpoint: ep.to_string(),
        facts: facts.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        uses: uses
            .into_iter()
            .map(|(u, checks)| (u, checks.into_iter().map(outcome).collect()))
            .collect(),
        worker: String::new(),
    })
}

fn outcome(c: Check) -> Outcome {
    Outcome {
        id: c.id.to_string(),
        name: c.name,
        status: match c.status {
            CheckStatus::Passed => Status::Passed,
            CheckStatus::Warning => Status::Warning,
            CheckStatus::Failed => Status::Failed,
        },
        detail: c.detail,
    }
}
