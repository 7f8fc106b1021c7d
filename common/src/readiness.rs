//! The report of `ferry endpoint test`: what an endpoint is ready to be — a
//! full-load source, a CDC source, a target — as the premigration checks a
//! worker ran against it found. Shared by the worker that runs the checks
//! (it holds the credentials) and the CLI that prints them.

use serde::{Deserialize, Serialize};

/// One way a task can use an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Use {
    FullLoadSource,
    CdcSource,
    Target,
}

impl Use {
    pub fn title(self) -> &'static str {
        match self {
            Use::FullLoadSource => "as a full-load source",
            Use::CdcSource => "as a CDC source",
            Use::Target => "as a target",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Passed,
    Warning,
    Failed,
}

/// One check's outcome; `detail` says what to change when it did not pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub id: String,
    pub name: String,
    pub status: Status,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Readiness {
    /// The endpoint as it prints: secret references, never secrets.
    pub endpoint: String,
    /// What the server said about itself (version, TLS, ...).
    pub facts: Vec<(String, String)>,
    pub uses: Vec<(Use, Vec<Outcome>)>,
    /// The worker that ran the checks (empty when run in place).
    #[serde(default)]
    pub worker: String,
}

/// Which uses a task needs of an endpoint in `role` (source or target).
pub fn needed(role: &str, migration_type: &str) -> Result<Vec<Use>, String> {
    match role {
        // A CDC-only task loads the tables that join it, too.
        "source" if migration_type.contains("cdc") => Ok(vec![Use::FullLoadSource, Use::CdcSource]),
        "source" => Ok(vec![Use::FullLoadSource]),
        "target" => Ok(vec![Use::Target]),
        other => Err(format!("--as {other}: expected source or target")),
    }
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
                    .filter(|c| c.status == Status::Failed)
                    .map(move |c| format!("{}: {}", u.title(), c.detail))
            })
            .collect()
    }

    /// The report as people read it: facts, then each use with its checks.
    pub fn text(&self) -> String {
        let mut out = format!("{}: connected", self.endpoint);
        if !self.worker.is_empty() {
            out.push_str(&format!(" (from worker {})", self.worker));
        }
        out.push('\n');
        for (what, answer) in &self.facts {
            out.push_str(&format!("  {what:<24} {answer}\n"));
        }
        for (u, checks) in &self.uses {
            let failed = checks.iter().any(|c| c.status == Status::Failed);
            out.push_str(&format!(
                "{}: {}\n",
                u.title(),
                if failed { "NOT READY" } else { "ready" }
            ));
            for c in checks {
                let mark = match c.status {
                    Status::Passed => "ok",
                    Status::Warning => "warn",
                    Status::Failed => "FAIL",
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
        let failed = |id: &str| Outcome {
            id: id.into(),
            name: String::new(),
            status: Status::Failed,
            detail: format!("{id} is missing"),
        };
        let r = Readiness {
            endpoint: "e".into(),
            facts: vec![],
            uses: vec![(Use::CdcSource, vec![failed("PG-WAL-LEVEL")]), (Use::Target, vec![])],
            worker: "w:1".into(),
        };
        assert!(r.failures(&[Use::Target]).is_empty());
        assert_eq!(
            r.failures(&[Use::FullLoadSource, Use::CdcSource]),
            ["as a CDC source: PG-WAL-LEVEL is missing"]
        );
        assert!(r.text().contains("as a CDC source: NOT READY"));
        assert!(r.text().starts_with("e: connected (from worker w:1)"));
    }
}
