//! `ferry endpoint test`: connects as a task would and says what the
//! endpoint is ready to be — a full-load source, a CDC source, a target —
//! naming each missing privilege or setting with what to change. The checks
//! are the premigration assessment's, read off the endpoint's catalog, so
//! `ferry assess` and the endpoint test never disagree.

use super::check::{Check, CheckStatus};
use super::read_catalog;
use crate::engine::source::Source;
use crate::engine::target::Target;
use crate::engine::{probe, with_engine, ConnectorError};
use ferry_common::endpoint::Endpoint;
use ferry_common::mapping::TableMappings;
use serde::Serialize;

/// One way a task can use an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Use {
    FullLoadSource,
    CdcSource,
    Target,
}

impl Use {
    fn title(self) -> &'static str {
        match self {
            Use::FullLoadSource => "as a full-load source",
            Use::CdcSource => "as a CDC source",
            Use::Target => "as a target",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Readiness {
    pub endpoint: String,
    /// What the server said about itself (version, TLS, ...).
    pub facts: Vec<(String, String)>,
    pub uses: Vec<(Use, Vec<Check>)>,
}

/// Which uses a task needs: `--as source|target` and `--type`.
pub fn needed(role: &str, migration_type: &str) -> Result<Vec<Use>, String> {
    match role {
        "source" if super::checks::needs_cdc(migration_type) => Ok(vec![Use::FullLoadSource, Use::CdcSource]),
        "source" => Ok(vec![Use::FullLoadSource]),
        "target" => Ok(vec![Use::Target]),
        other => Err(format!("--as {other}: expected source or target")),
    }
}

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
        uses,
    })
}

impl Readiness {
    /// The failed checks of the uses in `needed`, as `use: detail` lines.
    pub fn failures(&self, needed: &[Use]) -> Vec<String> {
        self.uses
            .iter()
            .filter(|(u, _)| needed.contains(u))
            .flat_map(|(u, checks)| {
                checks
                    .iter()
                    .filter(|c| c.status == CheckStatus::Failed)
                    .map(move |c| format!("{}: {}", u.title(), c.detail))
            })
            .collect()
    }

    /// The report as people read it: facts, then each use with its checks.
    pub fn text(&self) -> String {
        let mut out = format!("{}: connected\n", self.endpoint);
        for (what, answer) in &self.facts {
            out.push_str(&format!("  {what:<24} {answer}\n"));
        }
        for (u, checks) in &self.uses {
            let failed = checks.iter().any(|c| c.status == CheckStatus::Failed);
            out.push_str(&format!(
                "{}: {}\n",
                u.title(),
                if failed { "NOT READY" } else { "ready" }
            ));
            for c in checks {
                let mark = match c.status {
                    CheckStatus::Passed => "ok",
                    CheckStatus::Warning => "warn",
                    CheckStatus::Failed => "FAIL",
                };
                out.push_str(&format!("  {mark:<5} {:<20} {}\n", c.id, c.detail));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_needs_the_uses_of_its_type_and_role() {
        assert_eq!(needed("source", "full-load").unwrap(), [Use::FullLoadSource]);
        assert_eq!(
            needed("source", "full-load-and-cdc").unwrap(),
            [Use::FullLoadSource, Use::CdcSource]
        );
        assert_eq!(needed("target", "cdc").unwrap(), [Use::Target]);
        assert!(needed("sink", "cdc").is_err());
    }

    #[test]
    fn failures_name_the_use_and_only_count_what_is_needed() {
        let failed = |id| Check {
            id,
            name: String::new(),
            status: CheckStatus::Failed,
            detail: format!("{id} is missing"),
        };
        let r = Readiness {
            endpoint: "e".into(),
            facts: vec![],
            uses: vec![(Use::CdcSource, vec![failed("PG-WAL-LEVEL")]), (Use::Target, vec![])],
        };
        assert!(r.failures(&[Use::Target]).is_empty());
        assert_eq!(
            r.failures(&[Use::FullLoadSource, Use::CdcSource]),
            ["as a CDC source: PG-WAL-LEVEL is missing"]
        );
        assert!(r.text().contains("as a CDC source: NOT READY"));
    }
}
