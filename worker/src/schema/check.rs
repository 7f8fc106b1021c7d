//! One premigration check and its outcome (the list is `checks`; engines
//! contribute their own through the engine seams).

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Passed,
    Warning,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub id: &'static str,
    pub name: String,
    pub status: CheckStatus,
    pub detail: String,
}

pub(crate) fn check(id: &'static str, name: &str, ok: bool, bad: CheckStatus, pass: String, fail: String) -> Check {
    Check {
        id,
        name: name.into(),
        status: if ok { CheckStatus::Passed } else { bad },
        detail: if ok { pass } else { fail },
    }
}
