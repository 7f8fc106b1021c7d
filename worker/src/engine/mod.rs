//! The engine boundary. Everything engine-specific lives in one folder per
//! engine (`postgres/`, `mysql/`), behind the seams defined here:
//! [`source::Source`] and [`source::ChangeSource`] for the side rows and
//! changes come from, [`target::Target`] and [`target::ChangeTarget`] (with
//! its [`target::ApplyDialect`]) for the side they go to, and
//! [`validation::Side`] for comparing the two. The engine-neutral data path
//! (`crate::pipeline`) calls through these traits and picks an engine only
//! with [`with_engine!`], the one place the worker matches on it.
//!
//! Adding an engine: a folder implementing the traits on a unit type, and
//! one arm in each match of this file, `target.rs` and `validation.rs`.

pub(crate) mod credentials;
#[cfg(test)]
pub(crate) mod mock;
pub mod mysql;
pub mod postgres;
pub(crate) mod probe;
pub(crate) mod source;
pub(crate) mod target;
pub(crate) mod tls;
pub(crate) mod validation;

use ferry_common::endpoint::Engine;
use ferry_common::plan::SegmentBounds;
use ferry_common::schema::TableSchema;
use ferry_common::typemap;
use thiserror::Error;

/// Runs `$body` with `$e` bound to the implementation of `$engine`'s
/// seams (a unit type implementing `Source`, `ChangeSource` and `Target`):
/// the body is compiled once per engine, without dynamic dispatch.
macro_rules! with_engine {
    ($engine:expr, |$e:ident| $body:expr) => {
        match $engine {
            ferry_common::endpoint::Engine::Postgres => {
                let $e = $crate::engine::postgres::Postgres;
                $body
            }
            ferry_common::endpoint::Engine::Mysql => {
                let $e = $crate::engine::mysql::Mysql;
                $body
            }
        }
    };
}
pub(crate) use with_engine;

/// Errors in two tiers: transient ones (connection lost, deadlock) retry the
/// assignment; definite ones (a row the target refuses, a missing table) stop
/// the table with the reason.
#[derive(Debug, Error)]
pub enum ConnectorError {
    #[error("{0}")]
    Transient(String),
    #[error("{0}")]
    Definite(String),
    /// The work cannot go on for want of other work that has no worker (a
    /// validation waiting for a CDC stream whose worker died): the
    /// assignment is handed back, counting no attempt, so that its slot
    /// can run what it waits for.
    #[error("{0}")]
    HandBack(String),
    /// A policy stops this table, not the task (DataErrorPolicy or
    /// DataTruncationErrorPolicy SUSPEND_TABLE during the full load): the
    /// coordinator puts the table in `Table error` and the task goes on.
    #[error("{0}")]
    SuspendTable(String),
}

impl ConnectorError {
    /// What a row that `policy` (an [`ErrorAction`] that stops) refuses
    /// during the full load fails with: its table under SUSPEND_TABLE, the
    /// task otherwise.
    pub fn stopped_by(policy: ferry_common::settings::ErrorAction, why: String) -> ConnectorError {
        match policy {
            ferry_common::settings::ErrorAction::SuspendTable => ConnectorError::SuspendTable(why),
            _ => ConnectorError::Definite(why),
        }
    }

    pub fn retryable(&self) -> bool {
        matches!(self, ConnectorError::Transient(_) | ConnectorError::HandBack(_))
    }
}
/// The assignment being run, passed down to whatever writes Ferry's
/// bookkeeping on a target: the task keys its rows, the epoch fences them
/// (a revoked assignment's epoch is lower than its successor's).
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub task: String,
    pub epoch: u64,
    /// Where the task keeps its control tables on the target.
    pub control: ferry_common::control::ControlTables,
}

/// A position as Ferry's control tables on a target store it (its text
/// form, NULL for none); `whence` names the row in the error.
pub(crate) fn stored_position(
    text: Option<String>,
    whence: impl std::fmt::Display,
) -> Result<Option<ferry_common::position::Position>, ConnectorError> {
    text.map(|t| t.parse())
        .transpose()
        .map_err(|e| ConnectorError::Definite(format!("{whence}: {e}")))
}

/// `predicate` (a segment's rows) narrowed by the table's source filter,
/// written in `dialect` (see `ferry_common::filter`); the source side of a
/// load or a validation reads through it.
pub(crate) fn filtered(
    t: &TableSchema,
    predicate: String,
    dialect: &dyn ferry_common::filter::FilterDialect,
) -> Result<String, ConnectorError> {
    match &t.filter {
        None => Ok(predicate),
        Some(f) => {
            let bound = f.bind(t).map_err(|e| ConnectorError::Definite(e.to_string()))?;
            Ok(format!("({predicate}) AND {}", bound.sql(dialect)))
        }
    }
}

/// Progress sink: rows copied so far in the current assignment.
pub type Progress = std::sync::Arc<std::sync::atomic::AtomicU64>;

/// A source table as the target declares it: named by the task's
/// transformation rules, in the target engine's types (itself for a
/// same-engine pair without rules); a type without an exact equivalent
/// stops the table.
pub fn on_target(t: &TableSchema, target: Engine) -> Result<TableSchema, ConnectorError> {
    ferry_common::transform::target_form(t, target).map_err(ConnectorError::Definite)
}
/// Segment bounds as the target names and types their key columns (for
/// validation's range queries and a replacing load's stage on the target).
pub(crate) fn bounds_on_target(
    t: &TableSchema,
    b: &SegmentBounds,
    to: Engine,
) -> Result<SegmentBounds, ConnectorError> {
    let mut b = b.clone();
    if let SegmentBounds::Key { columns, .. } = &mut b {
        for c in columns {
            c.type_sql = typemap::convert_type(t.engine, to, &c.type_sql)
                .map_err(|e| ConnectorError::Definite(e.to_string()))?;
            c.name = t
                .target_column(&c.name)
                .ok_or_else(|| {
                    ConnectorError::Definite(format!(
                        "table {}: segment key column {} is removed by a transformation rule; the target cannot be matched by it",
                        t.display_name(),
                        c.name
                    ))
                })?
                .to_string();
        }
    }
    Ok(b)
}
