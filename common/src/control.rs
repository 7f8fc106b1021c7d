//! Ferry's control tables on a target (DMS `ControlTablesSettings`).
//!
//! Ferry keeps its bookkeeping on the target, in one schema (a database on
//! MySQL), `ferry` unless `ControlSchema` names another: which segments
//! committed (`segment_loads`, `table_loads`), the CDC apply position
//! (`apply_state`), rows the target could not store or a policy cut
//! (`apply_exceptions`), and validation differences
//! (`validation_failures`). Those always exist; they are what makes loads
//! and applies exactly-once.
//!
//! Three more are DMS's optional `awsdms_*` tables, for people who watch a
//! migration from the target with SQL:
//! - `task_status` (`StatusTableEnabled`, DMS `awsdms_status`): one row per
//!   task, moved in the same transaction as what it reports: the phase,
//!   the position applied and the source commit time of the last applied
//!   transaction.
//! - `suspended_tables` (`SuspendedTablesTableEnabled`, DMS
//!   `awsdms_suspended_tables`): a row per table whose apply stopped, with
//!   the reason, written in the batch that stopped it; `ferry task
//!   reload-table` removes it.
//! - `history` (`HistoryTableEnabled`, DMS `awsdms_history`): changes
//!   applied per time slot of `HistoryTimeslotInMinutes`, added in the same
//!   transaction as the changes, so they count what committed, once.

use serde::{Deserialize, Serialize};

/// The control schema when `ControlSchema` is absent or empty.
pub const DEFAULT_SCHEMA: &str = "ferry";

/// Where Ferry's control tables live on a target, and which optional ones
/// it keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlTables {
    /// A plain lowercase identifier (see [`ControlTables::check_schema`]),
    /// written unquoted in SQL on both engines.
    pub schema: String,
    #[serde(default)]
    pub status: bool,
    #[serde(default)]
    pub suspended: bool,
    /// `HistoryTableEnabled`: the length of a history time slot.
    #[serde(default)]
    pub history_minutes: Option<u32>,
}

impl Default for ControlTables {
    fn default() -> Self {
        ControlTables {
            schema: DEFAULT_SCHEMA.into(),
            status: false,
            suspended: false,
            history_minutes: None,
        }
    }
}

impl ControlTables {
    /// Control table `name` qualified by the control schema.
    pub fn table(&self, name: &str) -> String {
        format!("{}.{name}", self.schema)
    }

    /// A control schema name is a plain lowercase identifier, so that it is
    /// the same name on PostgreSQL and MySQL and needs no quoting.
    pub fn check_schema(name: &str) -> Result<(), String> {
        let mut chars = name.chars();
        let plain = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !plain || name.len() > 63 {
            return Err(format!(
                "expected a schema name of lowercase letters, digits and _ (at most 63), got {name:?}"
            ));
        }
        if [
            "public",
            "information_schema",
            "mysql",
            "sys",
            "performance_schema",
            "pg_catalog",
        ]
        .contains(&name)
        {
            return Err(format!(
                "{name} is a system or shared schema; name one for Ferry's control tables alone"
            ));
        }
        Ok(())
    }

    /// The start (Unix seconds) of the history slot holding `now_secs`,
    /// when the history table is kept.
    pub fn history_slot(&self, now_secs: i64) -> Option<i64> {
        let len = i64::from(self.history_minutes?) * 60;
        Some(now_secs - now_secs.rem_euclid(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(ControlTables::check_schema("ferry").is_ok());
        assert!(ControlTables::check_schema("dms_control2").is_ok());
        for bad in ["", "Ferry", "a-b", "1x", "x y", "a.b", "public", &"x".repeat(64)] {
            assert!(ControlTables::check_schema(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn history_slots_start_on_the_slot_length() {
        let c = ControlTables {
            history_minutes: Some(5),
            ..Default::default()
        };
        assert_eq!(c.history_slot(1_000_000), Some(999_900));
        assert_eq!(c.history_slot(999_900), Some(999_900));
        assert_eq!(ControlTables::default().history_slot(1_000_000), None);
        assert_eq!(c.table("history"), "ferry.history");
    }
}
