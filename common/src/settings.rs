//! DMS task-settings JSON, the parts Ferry honours today, plus Ferry's own
//! section. Other DMS keys are accepted (docs/dms-compatibility.md says
//! what becomes of each), and keys DMS does not have either are named in a
//! warning ([`TaskSettings::unknown_keys`]); a known key with a wrong type
//! or value is an error naming its JSON path.
//!
//! ```json
//! {"FullLoadSettings": {"TargetTablePrepMode": "DROP_AND_CREATE", "MaxFullLoadSubTasks": 8},
//!  "ValidationSettings": {"EnableValidation": true, "ValidationOnly": false, "PartitionSize": 10000},
//!  "ChangeProcessingDdlHandlingPolicy": {"HandleSourceTableAltered": true, "HandleSourceTableDropped": true,
//!                                        "HandleSourceTableTruncated": true},
//!  "TargetMetadata": {"ParallelApplyThreads": 4},
//!  "Ferry": {"SegmentTargetBytes": 67108864, "MaxSegmentsPerTable": 256,
//!            "SplitTablesLargerThan": 4294967296, "SplitLargeTablesBy": "key",
//!            "RevalidateDelaySeconds": 5}}
//! ```

use crate::control::ControlTables;
use crate::lob::{LobMode, LobSettings};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
#[error("task settings: {path}: {message}")]
pub struct SettingsError {
    pub path: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TargetTablePrepMode {
    DoNothing,
    DropAndCreate,
    TruncateBeforeLoad,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSettings {
    pub prep_mode: TargetTablePrepMode,
    /// Segments of one task loading at once (DMS MaxFullLoadSubTasks).
    pub max_full_load_subtasks: u32,
    /// Tables larger than this are cut into segments of about this size.
    pub segment_target_bytes: u64,
    pub max_segments_per_table: u32,
    /// Tables a full load creates on a PostgreSQL target are loaded whole
    /// (and frozen) up to this size; larger ones are cut into segments.
    #[serde(default = "default_split_tables_larger_than")]
    pub split_tables_larger_than: u64,
    /// How tables above `split_tables_larger_than` with a primary key are
    /// cut (`Ferry.SplitLargeTablesBy`).
    #[serde(default)]
    pub split_large_tables_by: SplitBy,
    /// DMS ValidationSettings.
    #[serde(default)]
    pub validation: ValidationSettings,
    /// DMS ChangeProcessingDdlHandlingPolicy.HandleSourceTableAltered: a
    /// table whose columns change on the source while CDC runs is reloaded
    /// in its new shape (`ferry task reload-table`, exact), instead of
    /// stopping with `Table error`.
    #[serde(default = "yes")]
    pub reload_altered_tables: bool,
    /// DMS ChangeProcessingDdlHandlingPolicy.HandleSourceTableTruncated:
    /// apply a TRUNCATE of the source to the target (when false the target
    /// keeps the rows, and differs from the source).
    #[serde(default = "yes")]
    pub apply_truncates: bool,
    /// DMS ChangeProcessingDdlHandlingPolicy.HandleSourceTableDropped: a
    /// table dropped on the source while CDC runs is dropped on the target
    /// once every change before the drop is applied (when false the target
    /// keeps it as it was at the drop). Either way the table leaves the
    /// stream; it no longer holds up caught-up or cutover.
    #[serde(default = "yes")]
    pub drop_dropped_tables: bool,
    /// DMS TargetMetadata.ParallelApplyThreads: target sessions a CDC stream
    /// spreads each batch's rows over (0 and 1: one session). Absent, Ferry
    /// uses [`DEFAULT_APPLY_LANES`].
    #[serde(default = "default_apply_lanes")]
    pub apply_lanes: u32,
    /// DMS `ComputeConfig` MinCapacityUnits / MaxCapacityUnits, in Ferry
    /// capacity units (one worker slot each; docs/capacity.md).
    #[serde(default)]
    pub capacity: CapacityLimits,
    /// DMS ErrorBehavior `RecoverableError*`: how work retries transient
    /// errors (a lost connection, a restarted server, a deadlock).
    #[serde(default)]
    pub retry: RetryPolicy,
    /// DMS ErrorBehavior.FailOnNoTablesCaptured: a task whose mappings
    /// select no table of the source fails (true, Ferry's default) or runs
    /// with none (a CDC task then takes in tables created later).
    #[serde(default = "yes")]
    pub fail_on_no_tables: bool,
    /// DMS ErrorBehavior.ApplyErrorUpdatePolicy INSERT_RECORD: a CDC update
    /// of a row the target lacks inserts the new row (when the log sent it
    /// whole) instead of changing nothing.
    #[serde(default)]
    pub update_inserts_missing: bool,
    /// DMS ErrorBehavior.ApplyErrorUpdatePolicy (other than INSERT_RECORD),
    /// ApplyErrorDeletePolicy and ApplyErrorInsertPolicy: what a CDC change
    /// that meets the target's row other than the source left it does (see
    /// [`ApplyConflicts`]).
    #[serde(default)]
    pub missing_rows: ApplyConflicts,
    /// DMS ErrorBehavior.DataErrorPolicy: what a row the target cannot
    /// store does (it is recorded in `ferry.apply_exceptions` whatever the
    /// policy).
    #[serde(default)]
    pub data_errors: ErrorAction,
    /// DMS ErrorBehavior.TableErrorPolicy: what a table whose apply stops
    /// does (SUSPEND_TABLE: `Table error`, the others go on).
    #[serde(default = "suspend_table")]
    pub table_errors: ErrorAction,
    /// DMS ErrorBehavior.DataErrorEscalationCount / Policy: once a table's
    /// rows in `ferry.apply_exceptions` reach the count, the policy acts
    /// (none: no escalation, DMS's count 0).
    #[serde(default)]
    pub data_escalation: Option<Escalation>,
    /// DMS ErrorBehavior.TableErrorEscalationCount / Policy: once this many
    /// of the task's tables are in error, the task fails.
    #[serde(default)]
    pub table_escalation: Option<Escalation>,
    /// DMS ErrorBehavior.ApplyErrorEscalationCount / Policy: once a table's
    /// CDC changes of rows the target lacks reach the count, the policy acts
    /// (none: no escalation, DMS's count 0 or policy LOG_ERROR).
    #[serde(default)]
    pub apply_escalation: Option<Escalation>,
    /// DMS ChangeProcessingTuning.BatchApplyTimeoutMin / Max: how long a
    /// CDC batch stays open.
    #[serde(default)]
    pub batch_timing: BatchTiming,
    /// DMS FullLoadSettings.StopTaskCachedChangesNotApplied / Applied: a
    /// full-load-and-cdc task stops once its full load is complete, before
    /// or after applying the changes made meanwhile.
    #[serde(default)]
    pub stop_after_load: Option<CachedChanges>,
    /// DMS TargetMetadata LOB settings and
    /// ErrorBehavior.DataTruncationErrorPolicy (see [`crate::lob`]).
    #[serde(default)]
    pub lob: LobSettings,
    /// DMS ControlTablesSettings: where Ferry's control tables live on the
    /// target and which optional ones it keeps (see [`crate::control`]).
    #[serde(default)]
    pub control: ControlTables,
}

/// Where a full-load-and-cdc task stops after its full load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CachedChanges {
    /// Before the stream starts: the target holds the snapshot.
    NotApplied,
    /// Once the stream has applied what the source committed before it
    /// started (the changes made during the load).
    Applied,
}

impl CachedChanges {
    pub fn setting(self) -> &'static str {
        match self {
            CachedChanges::NotApplied => "StopTaskCachedChangesNotApplied",
            CachedChanges::Applied => "StopTaskCachedChangesApplied",
        }
    }
}

/// A DMS error policy's action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorAction {
    /// Record the row and go on (DMS's default for data errors).
    #[default]
    LogError,
    /// As LOG_ERROR in Ferry: a skipped row is always recorded and counted.
    IgnoreRecord,
    /// Stop the table (`Table error`): during CDC its apply stops, during
    /// the full load its load is set aside; the other tables go on.
    SuspendTable,
    /// Fail the task, naming the table and the row.
    StopTask,
}

impl ErrorAction {
    fn parse(v: &serde_json::Value, allowed: &[ErrorAction]) -> Option<ErrorAction> {
        let a = serde_json::from_value::<ErrorAction>(v.clone()).ok()?;
        allowed.contains(&a).then_some(a)
    }

    /// Whether the first error stops the work that met it.
    pub fn stops(self) -> bool {
        matches!(self, ErrorAction::SuspendTable | ErrorAction::StopTask)
    }

    pub fn name(self) -> &'static str {
        match self {
            ErrorAction::LogError => "LOG_ERROR",
            ErrorAction::IgnoreRecord => "IGNORE_RECORD",
            ErrorAction::SuspendTable => "SUSPEND_TABLE",
            ErrorAction::StopTask => "STOP_TASK",
        }
    }
}

/// How long a CDC batch (source transactions applied in one target
/// transaction) stays open. Absent keys keep Ferry's own timing: a batch
/// commits as soon as the stream has nothing more ready (lowest latency),
/// and while more is ready it takes in transactions for up to 100 ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchTiming {
    /// `BatchApplyTimeoutMin` (s): a batch commits no sooner than this
    /// after it opened, even when nothing more is ready (larger batches,
    /// at the cost of latency).
    pub min_ms: u64,
    /// `BatchApplyTimeoutMax` (s): while more is ready, a batch takes in
    /// transactions for at most this long (it also closes at 1000
    /// transactions or 1 MiB of statements).
    pub max_ms: u64,
}

impl Default for BatchTiming {
    fn default() -> Self {
        BatchTiming { min_ms: 0, max_ms: 100 }
    }
}

/// An ErrorBehavior escalation: `action` once `count` errors are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    pub count: u64,
    pub action: ErrorAction,
}

/// What a CDC change that meets the target's row other than the source
/// left it does (DMS ErrorBehavior.ApplyErrorUpdatePolicy /
/// ApplyErrorDeletePolicy / ApplyErrorInsertPolicy): an update or delete of
/// a row the target lacks, an insert of a key the target holds already.
/// Such a change says the target already differs from the source; whatever
/// the action, it changes nothing, is recorded in the exceptions table and
/// counted (`apply_conflicts`). SUSPEND_TABLE stops the table's apply,
/// STOP_TASK fails the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyConflicts {
    pub update: ErrorAction,
    pub delete: ErrorAction,
    /// None: INSERT_RECORD, an insert is an upsert (the target's row takes
    /// the source's image) and is not checked — Ferry's behaviour before
    /// the key was read, kept when it is absent.
    #[serde(default)]
    pub insert: Option<ErrorAction>,
}

impl Default for ApplyConflicts {
    /// DMS's defaults: LOG_ERROR for updates, IGNORE_RECORD for deletes;
    /// inserts upsert (DMS's LOG_ERROR would keep a stale target row).
    fn default() -> Self {
        ApplyConflicts {
            update: ErrorAction::LogError,
            delete: ErrorAction::IgnoreRecord,
            insert: None,
        }
    }
}

fn suspend_table() -> ErrorAction {
    ErrorAction::SuspendTable
}

/// How a unit of work is retried after a transient error. Absent keys keep
/// Ferry's defaults: a load or validation range is tried 5 times with
/// backoff from 2 s doubling to 32 s; a stream (CDC, the snapshot holder),
/// which must outlive database restarts, 30 times with backoff from 1 s to
/// 5 s. Definite errors (a value the target refuses, a missing table) are
/// never retried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// `RecoverableErrorCount`: retries after the first failure; `-1` in
    /// DMS (here `u32::MAX`) retries without end, `0` never retries.
    pub count: Option<u32>,
    /// `RecoverableErrorInterval`: seconds before the first retry.
    pub interval_s: Option<u64>,
    /// `RecoverableErrorThrottling` false: every retry waits the interval
    /// (true, the default: the wait doubles each time).
    #[serde(default)]
    pub constant: bool,
    /// `RecoverableErrorThrottlingMax`: the longest wait, in seconds.
    pub throttling_max_s: Option<u64>,
}

impl RetryPolicy {
    /// The wait before retrying a unit that has failed `failures` times
    /// (1 after its first failure), or None when it must fail now.
    pub fn backoff_ms(&self, stream: bool, failures: u32) -> Option<u64> {
        let (count, base_ms, max_ms) = if stream { (29, 500, 5_000) } else { (4, 1_000, 32_000) };
        let count = self.count.unwrap_or(count);
        if failures > count {
            return None;
        }
        let base_ms = self.interval_s.map_or(base_ms, |s| s.saturating_mul(1000));
        let max_ms = self.throttling_max_s.map_or(max_ms, |s| s.saturating_mul(1000));
        let wait = if self.constant {
            base_ms
        } else {
            base_ms.saturating_mul(1u64 << failures.min(20))
        };
        Some(wait.min(max_ms.max(base_ms)))
    }
}

/// How a large keyed table is cut into segments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SplitBy {
    /// Ranges of the primary key, read by index range scans.
    #[default]
    Key,
    /// Ranges of heap blocks (PostgreSQL CTIDs), read in one exported
    /// snapshot. Taken only where the source has blocks and no validation
    /// needs key ranges; otherwise the table is cut by key.
    Block,
}

/// The capacity a running task asks for at least, and is granted at most.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapacityLimits {
    /// Desired capacity never falls below this while the task runs.
    pub min: u32,
    /// No more of the task's work runs at once (None: no limit).
    pub max: Option<u32>,
}

/// The largest capacity a task may name (DMS's largest is 384 DCUs).
pub const MAX_CAPACITY_UNITS: u64 = 1024;

/// Target sessions a CDC stream applies on unless the task says otherwise.
pub const DEFAULT_APPLY_LANES: u32 = 4;

fn default_apply_lanes() -> u32 {
    DEFAULT_APPLY_LANES
}

/// DMS's LOB keys of `TargetMetadata`: limited mode when
/// `LimitedSizeLobMode` is true, or `LobMaxSize` is given and neither mode
/// key says otherwise (DMS's own default mode is limited); full otherwise,
/// so a settings file without LOB keys cuts nothing.
fn lob_mode(t: &Value) -> Result<LobMode, SettingsError> {
    let path = |key: &str| format!("$.TargetMetadata.{key}");
    let flag = |key: &str| -> Result<Option<bool>, SettingsError> {
        t.get(key)
            .map(|v| {
                v.as_bool().ok_or_else(|| SettingsError {
                    path: path(key),
                    message: format!("expected true or false, got {v}"),
                })
            })
            .transpose()
    };
    let kb = |key: &str, least: u64| -> Result<Option<u64>, SettingsError> {
        t.get(key)
            .map(|v| {
                v.as_u64()
                    .filter(|n| (least..=MAX_LOB_KB).contains(n))
                    .ok_or_else(|| SettingsError {
                        path: path(key),
                        message: format!("expected {least}..{MAX_LOB_KB} (KB), got {v}"),
                    })
            })
            .transpose()
    };
    if flag("SupportLobs")? == Some(false) {
        return Err(SettingsError {
            path: path("SupportLobs"),
            message: "false leaves every LOB column out of the migration, which Ferry does not do silently: \
                      drop the columns with remove-column rules, or set true"
                .into(),
        });
    }
    let (full, limited, max_kb) = (flag("FullLobMode")?, flag("LimitedSizeLobMode")?, kb("LobMaxSize", 1)?);
    // Checked, not used: values stream whole, so there are no chunks.
    kb("LobChunkSize", 1)?;
    kb("InlineLobMaxSize", 0)?;
    Ok(match (full, limited) {
        (Some(true), Some(true)) => {
            return Err(SettingsError {
                path: path("LimitedSizeLobMode"),
                message: "FullLobMode is true as well; set one of them".into(),
            })
        }
        (Some(true), _) | (_, Some(false)) => LobMode::Full,
        (_, Some(true)) => LobMode::Limited {
            max_bytes: max_kb.unwrap_or(32) * 1024,
        },
        (_, None) => match max_kb {
            Some(kb) => LobMode::Limited { max_bytes: kb * 1024 },
            None => LobMode::Full,
        },
    })
}

/// The largest LOB size a setting may name, in KB (DMS's limit is 100 MB).
const MAX_LOB_KB: u64 = 102_400;

fn yes() -> bool {
    true
}

/// DMS `ValidationSettings`: EnableValidation, ValidationOnly, PartitionSize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationSettings {
    /// Validate every table with a primary key once it is loaded.
    pub enabled: bool,
    /// Validate only: no load, no CDC (the target was filled by other means).
    pub only: bool,
    /// Key ranges of at most this many rows are compared row by row.
    pub partition_size: u64,
    /// During CDC, a validated range that changes is validated again this
    /// long after the change was applied (`Ferry.RevalidateDelaySeconds`),
    /// so a busy range is not re-read after every change.
    #[serde(default = "default_revalidate_delay")]
    pub revalidate_delay_s: u64,
}

fn default_split_tables_larger_than() -> u64 {
    4 << 30
}

fn default_revalidate_delay() -> u64 {
    5
}

impl Default for ValidationSettings {
    fn default() -> Self {
        ValidationSettings {
            enabled: false,
            only: false,
            partition_size: 10_000,
            revalidate_delay_s: default_revalidate_delay(),
        }
    }
}

impl Default for TaskSettings {
    fn default() -> Self {
        TaskSettings {
            prep_mode: TargetTablePrepMode::DropAndCreate,
            max_full_load_subtasks: 8,
            segment_target_bytes: 64 * 1024 * 1024,
            max_segments_per_table: 256,
            split_tables_larger_than: default_split_tables_larger_than(),
            split_large_tables_by: SplitBy::Key,
            validation: ValidationSettings::default(),
            reload_altered_tables: true,
            apply_truncates: true,
            drop_dropped_tables: true,
            apply_lanes: DEFAULT_APPLY_LANES,
            capacity: CapacityLimits::default(),
            retry: RetryPolicy::default(),
            fail_on_no_tables: true,
            update_inserts_missing: false,
            missing_rows: ApplyConflicts::default(),
            data_errors: ErrorAction::LogError,
            table_errors: ErrorAction::SuspendTable,
            data_escalation: None,
            table_escalation: None,
            apply_escalation: None,
            batch_timing: BatchTiming::default(),
            stop_after_load: None,
            lob: LobSettings::default(),
            control: ControlTables::default(),
        }
    }
}

impl TaskSettings {
    /// JSON paths of keys that are no DMS task setting (ignored; the CLI
    /// warns). Empty for a document that does not parse.
    pub fn unknown_keys(json: &str) -> Vec<String> {
        serde_json::from_str(json)
            .map(|v| crate::dms_settings::unknown_keys(&v))
            .unwrap_or_default()
    }

    pub fn parse(json: &str) -> Result<TaskSettings, SettingsError> {
        let root: Value = serde_json::from_str(json).map_err(|e| SettingsError {
            path: "$".into(),
            message: format!("not valid JSON: {e}"),
        })?;
        let mut s = TaskSettings::default();
        let err = |path: &str, message: String| SettingsError {
            path: path.to_string(),
            message,
        };
        if !root.is_object() {
            return Err(err(
                "$",
                format!("expected an object of DMS settings sections, got {root}"),
            ));
        }
        if let Some(fl) = root.get("FullLoadSettings") {
            if let Some(v) = fl.get("TargetTablePrepMode") {
                s.prep_mode = match v.as_str() {
                    Some("DO_NOTHING") => TargetTablePrepMode::DoNothing,
                    Some("DROP_AND_CREATE") => TargetTablePrepMode::DropAndCreate,
                    Some("TRUNCATE_BEFORE_LOAD") => TargetTablePrepMode::TruncateBeforeLoad,
                    _ => {
                        return Err(err(
                            "$.FullLoadSettings.TargetTablePrepMode",
                            format!("expected DO_NOTHING, DROP_AND_CREATE or TRUNCATE_BEFORE_LOAD, got {v}"),
                        ))
                    }
                };
            }
            for stop in [CachedChanges::NotApplied, CachedChanges::Applied] {
                let key = stop.setting();
                match fl.get(key) {
                    None | Some(Value::Bool(false)) => {}
                    Some(Value::Bool(true)) => {
                        if let Some(other) = s.stop_after_load {
                            return Err(err(
                                &format!("$.FullLoadSettings.{key}"),
                                format!("{} is true as well; set one of them", other.setting()),
                            ));
                        }
                        s.stop_after_load = Some(stop);
                    }
                    Some(v) => {
                        return Err(err(
                            &format!("$.FullLoadSettings.{key}"),
                            format!("expected true or false, got {v}"),
                        ))
                    }
                }
            }
            if let Some(v) = fl.get("MaxFullLoadSubTasks") {
                s.max_full_load_subtasks = positive(v, 49).ok_or_else(|| {
                    err(
                        "$.FullLoadSettings.MaxFullLoadSubTasks",
                        format!("expected 1..49, got {v}"),
                    )
                })? as u32;
            }
        }
        if let Some(v) = root.get("ValidationSettings") {
            let flag = |key: &str, into: &mut bool| -> Result<(), SettingsError> {
                if let Some(x) = v.get(key) {
                    *into = x.as_bool().ok_or_else(|| {
                        err(
                            &format!("$.ValidationSettings.{key}"),
                            format!("expected true or false, got {x}"),
                        )
                    })?;
                }
                Ok(())
            };
            flag("EnableValidation", &mut s.validation.enabled)?;
            flag("ValidationOnly", &mut s.validation.only)?;
            if let Some(x) = v.get("PartitionSize") {
                s.validation.partition_size = positive(x, 1_000_000).ok_or_else(|| {
                    err(
                        "$.ValidationSettings.PartitionSize",
                        format!("expected 1..1000000, got {x}"),
                    )
                })?;
            }
            // ValidationOnly implies validation.
            s.validation.enabled |= s.validation.only;
        }
        if let Some(v) = root.get("ChangeProcessingDdlHandlingPolicy") {
            for (key, into) in [
                ("HandleSourceTableAltered", &mut s.reload_altered_tables),
                ("HandleSourceTableTruncated", &mut s.apply_truncates),
                ("HandleSourceTableDropped", &mut s.drop_dropped_tables),
            ] {
                if let Some(x) = v.get(key) {
                    *into = x.as_bool().ok_or_else(|| {
                        err(
                            &format!("$.ChangeProcessingDdlHandlingPolicy.{key}"),
                            format!("expected true or false, got {x}"),
                        )
                    })?;
                }
            }
        }
        if let Some(e) = root.get("ErrorBehavior") {
            let path = |key: &str| format!("$.ErrorBehavior.{key}");
            if let Some(v) = e.get("RecoverableErrorCount") {
                s.retry.count = Some(match v.as_i64() {
                    Some(-1) => u32::MAX,
                    Some(n) if (0..=1_000_000).contains(&n) => n as u32,
                    _ => {
                        return Err(err(
                            &path("RecoverableErrorCount"),
                            format!("expected -1 (retry without end) or 0..1000000, got {v}"),
                        ))
                    }
                });
            }
            for (key, into) in [
                ("RecoverableErrorInterval", &mut s.retry.interval_s),
                ("RecoverableErrorThrottlingMax", &mut s.retry.throttling_max_s),
            ] {
                if let Some(v) = e.get(key) {
                    *into = Some(
                        v.as_u64()
                            .filter(|n| *n <= 86_400)
                            .ok_or_else(|| err(&path(key), format!("expected 0..86400 seconds, got {v}")))?,
                    );
                }
            }
            use ErrorAction::*;
            // ApplyErrorInsertPolicy / UpdatePolicy: an ErrorAction or
            // INSERT_RECORD (None), which applies the change.
            let apply_policy = |key: &str| -> Result<Option<Option<ErrorAction>>, SettingsError> {
                let Some(v) = e.get(key) else { return Ok(None) };
                if v.as_str() == Some("INSERT_RECORD") {
                    return Ok(Some(None));
                }
                ErrorAction::parse(v, &[LogError, IgnoreRecord, SuspendTable, StopTask])
                    .map(|a| Some(Some(a)))
                    .ok_or_else(|| {
                        err(
                            &path(key),
                            format!(
                                "expected IGNORE_RECORD, LOG_ERROR, SUSPEND_TABLE, STOP_TASK or INSERT_RECORD, got {v}"
                            ),
                        )
                    })
            };
            if let Some(action) = apply_policy("ApplyErrorInsertPolicy")? {
                s.missing_rows.insert = action;
            }
            match apply_policy("ApplyErrorUpdatePolicy")? {
                Some(None) => s.update_inserts_missing = true,
                Some(Some(action)) => s.missing_rows.update = action,
                None => {}
            }
            for (key, into, allowed) in [
                (
                    "DataErrorPolicy",
                    &mut s.data_errors,
                    &[LogError, IgnoreRecord, SuspendTable, StopTask][..],
                ),
                ("TableErrorPolicy", &mut s.table_errors, &[SuspendTable, StopTask][..]),
                (
                    "DataTruncationErrorPolicy",
                    &mut s.lob.on_truncation,
                    &[LogError, IgnoreRecord, SuspendTable, StopTask][..],
                ),
                (
                    "ApplyErrorDeletePolicy",
                    &mut s.missing_rows.delete,
                    &[LogError, IgnoreRecord, SuspendTable, StopTask][..],
                ),
            ] {
                if let Some(v) = e.get(key) {
                    *into = ErrorAction::parse(v, allowed).ok_or_else(|| {
                        let names: Vec<&str> = allowed.iter().map(|a| a.name()).collect();
                        err(&path(key), format!("expected {}, got {v}", names.join(", ")))
                    })?;
                }
            }
            for (prefix, into, default, allowed) in [
                (
                    "DataErrorEscalation",
                    &mut s.data_escalation,
                    SuspendTable,
                    &[SuspendTable, StopTask][..],
                ),
                (
                    "TableErrorEscalation",
                    &mut s.table_escalation,
                    StopTask,
                    &[StopTask][..],
                ),
                (
                    "ApplyErrorEscalation",
                    &mut s.apply_escalation,
                    LogError,
                    &[LogError, SuspendTable, StopTask][..],
                ),
            ] {
                let count_key = format!("{prefix}Count");
                let policy_key = format!("{prefix}Policy");
                let action = match e.get(&policy_key) {
                    None => default,
                    Some(v) => ErrorAction::parse(v, allowed).ok_or_else(|| {
                        let names: Vec<&str> = allowed.iter().map(|a| a.name()).collect();
                        err(&path(&policy_key), format!("expected {}, got {v}", names.join(", ")))
                    })?,
                };
                if let Some(v) = e.get(&count_key) {
                    let count = v.as_u64().ok_or_else(|| {
                        err(
                            &path(&count_key),
                            format!("expected a count (0: no escalation), got {v}"),
                        )
                    })?;
                    // LOG_ERROR escalates to nothing more than is done.
                    *into = (count > 0 && action != LogError).then_some(Escalation { count, action });
                }
            }
            if let Some(v) = e.get("FailOnNoTablesCaptured") {
                s.fail_on_no_tables = v.as_bool().ok_or_else(|| {
                    err(
                        &path("FailOnNoTablesCaptured"),
                        format!("expected true or false, got {v}"),
                    )
                })?;
            }
            if let Some(v) = e.get("RecoverableErrorThrottling") {
                s.retry.constant = !v.as_bool().ok_or_else(|| {
                    err(
                        &path("RecoverableErrorThrottling"),
                        format!("expected true or false, got {v}"),
                    )
                })?;
            }
        }
        if let Some(t) = root.get("ChangeProcessingTuning") {
            let seconds = |key: &str| -> Result<Option<u64>, SettingsError> {
                t.get(key)
                    .map(|v| {
                        v.as_u64().filter(|n| *n <= 3600).ok_or_else(|| {
                            err(
                                &format!("$.ChangeProcessingTuning.{key}"),
                                format!("expected seconds, 0..3600, got {v}"),
                            )
                        })
                    })
                    .transpose()
            };
            if let Some(min) = seconds("BatchApplyTimeoutMin")? {
                s.batch_timing.min_ms = min * 1000;
            }
            if let Some(max) = seconds("BatchApplyTimeoutMax")? {
                s.batch_timing.max_ms = (max * 1000).max(1);
            }
            if s.batch_timing.min_ms > s.batch_timing.max_ms.max(100) {
                return Err(err(
                    "$.ChangeProcessingTuning.BatchApplyTimeoutMin",
                    format!(
                        "{} s is longer than BatchApplyTimeoutMax ({} ms)",
                        s.batch_timing.min_ms / 1000,
                        s.batch_timing.max_ms
                    ),
                ));
            }
        }
        if let Some(v) = root.get("TargetMetadata").and_then(|t| t.get("ParallelApplyThreads")) {
            s.apply_lanes = v
                .as_u64()
                .filter(|n| *n <= 32)
                .ok_or_else(|| {
                    err(
                        "$.TargetMetadata.ParallelApplyThreads",
                        format!("expected 0..32, got {v}"),
                    )
                })?
                .max(1) as u32;
        }
        if let Some(t) = root.get("TargetMetadata") {
            s.lob.mode = lob_mode(t)?;
        }
        if let Some(c) = root.get("ComputeConfig") {
            let units = |key: &str| -> Result<Option<u32>, SettingsError> {
                c.get(key)
                    .map(|v| {
                        positive(v, MAX_CAPACITY_UNITS).map(|n| n as u32).ok_or_else(|| {
                            err(
                                &format!("$.ComputeConfig.{key}"),
                                format!("expected 1..{MAX_CAPACITY_UNITS} capacity units, got {v}"),
                            )
                        })
                    })
                    .transpose()
            };
            s.capacity.min = units("MinCapacityUnits")?.unwrap_or(0);
            s.capacity.max = units("MaxCapacityUnits")?;
            if let Some(max) = s.capacity.max.filter(|m| *m < s.capacity.min) {
                return Err(err(
                    "$.ComputeConfig.MinCapacityUnits",
                    format!("{} is above MaxCapacityUnits {max}", s.capacity.min),
                ));
            }
        }
        if let Some(c) = root.get("ControlTablesSettings") {
            s.control = control_tables(c)?;
        }
        if let Some(f) = root.get("Ferry") {
            // Ferry's own section is Ferry's to define: a misspelt key
            // silently ignored would run a task with settings nobody chose.
            let obj = f
                .as_object()
                .ok_or_else(|| err("$.Ferry", format!("expected an object, got {f}")))?;
            if let Some(k) = obj.keys().find(|k| !FERRY_KEYS.contains(&k.as_str())) {
                return Err(err(
                    &format!("$.Ferry.{k}"),
                    format!("unknown setting (known: {})", FERRY_KEYS.join(", ")),
                ));
            }
            if let Some(v) = f.get("SegmentTargetBytes") {
                s.segment_target_bytes = positive(v, u64::MAX).ok_or_else(|| {
                    err(
                        "$.Ferry.SegmentTargetBytes",
                        format!("expected a positive integer, got {v}"),
                    )
                })?;
            }
            if let Some(v) = f.get("MaxSegmentsPerTable") {
                s.max_segments_per_table = positive(v, 10_000)
                    .ok_or_else(|| err("$.Ferry.MaxSegmentsPerTable", format!("expected 1..10000, got {v}")))?
                    as u32;
            }
            if let Some(v) = f.get("SplitTablesLargerThan") {
                s.split_tables_larger_than = v.as_u64().ok_or_else(|| {
                    err(
                        "$.Ferry.SplitTablesLargerThan",
                        format!("expected a size in bytes, got {v}"),
                    )
                })?;
            }
            if let Some(v) = f.get("SplitLargeTablesBy") {
                s.split_large_tables_by = match v.as_str() {
                    Some("key") => SplitBy::Key,
                    Some("block") => SplitBy::Block,
                    _ => {
                        return Err(err(
                            "$.Ferry.SplitLargeTablesBy",
                            format!("expected \"key\" or \"block\", got {v}"),
                        ))
                    }
                };
            }
            if let Some(v) = f.get("RevalidateDelaySeconds") {
                s.validation.revalidate_delay_s = v
                    .as_u64()
                    .filter(|n| *n <= 3600)
                    .ok_or_else(|| err("$.Ferry.RevalidateDelaySeconds", format!("expected 0..3600, got {v}")))?;
            }
        }
        Ok(s)
    }
}

/// The keys of the `Ferry` settings section.
const FERRY_KEYS: [&str; 5] = [
    "SegmentTargetBytes",
    "MaxSegmentsPerTable",
    "SplitTablesLargerThan",
    "SplitLargeTablesBy",
    "RevalidateDelaySeconds",
];

/// `ControlTablesSettings`: an empty or absent `ControlSchema` keeps
/// Ferry's `ferry` schema (DMS would use the target's default schema,
/// where Ferry's tables would mix with the migrated ones).
fn control_tables(c: &Value) -> Result<ControlTables, SettingsError> {
    let err = |key: &str, message: String| SettingsError {
        path: format!("$.ControlTablesSettings.{key}"),
        message,
    };
    let mut out = ControlTables::default();
    match c.get("ControlSchema") {
        None => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(s)) => {
            ControlTables::check_schema(s).map_err(|m| err("ControlSchema", m))?;
            out.schema = s.clone();
        }
        Some(v) => return Err(err("ControlSchema", format!("expected a schema name, got {v}"))),
    }
    let flag = |key: &str| -> Result<bool, SettingsError> {
        match c.get(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(err(key, format!("expected true or false, got {v}"))),
        }
    };
    out.status = flag("StatusTableEnabled")?;
    out.suspended = flag("SuspendedTablesTableEnabled")?;
    if flag("HistoryTableEnabled")? {
        // DMS spells it both ways in its own examples.
        let (key, v) = ["HistoryTimeslotInMinutes", "historyTimeslotInMinutes"]
            .into_iter()
            .find_map(|k| Some((k, c.get(k)?)))
            .unwrap_or(("HistoryTimeslotInMinutes", &Value::Null));
        out.history_minutes = Some(match v {
            Value::Null => 5,
            v => positive(v, 1440).ok_or_else(|| err(key, format!("expected minutes, 1..1440, got {v}")))? as u32,
        });
    }
    Ok(out)
}

fn positive(v: &Value, max: u64) -> Option<u64> {
    v.as_u64().filter(|n| *n >= 1 && *n <= max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_tables_settings() {
        let s = TaskSettings::parse(
            r#"{"ControlTablesSettings":{"ControlSchema":"","HistoryTimeslotInMinutes":5,"HistoryTableEnabled":false,
                "SuspendedTablesTableEnabled":false,"StatusTableEnabled":false,"FullLoadExceptionTableEnabled":false}}"#,
        )
        .unwrap();
        assert_eq!(s.control, ControlTables::default());
        let s = TaskSettings::parse(
            r#"{"ControlTablesSettings":{"ControlSchema":"dms_ctl","historyTimeslotInMinutes":15,"HistoryTableEnabled":true,
                "SuspendedTablesTableEnabled":true,"StatusTableEnabled":true}}"#,
        )
        .unwrap();
        assert_eq!(
            s.control,
            ControlTables {
                schema: "dms_ctl".into(),
                status: true,
                suspended: true,
                history_minutes: Some(15)
            }
        );
        let on = TaskSettings::parse(r#"{"ControlTablesSettings":{"HistoryTableEnabled":true}}"#).unwrap();
        assert_eq!(on.control.history_minutes, Some(5));
        for (json, path) in [
            (r#"{"ControlSchema":"Dms-Ctl"}"#, "ControlSchema"),
            (r#"{"ControlSchema":7}"#, "ControlSchema"),
            (r#"{"StatusTableEnabled":"yes"}"#, "StatusTableEnabled"),
            (
                r#"{"HistoryTableEnabled":true,"HistoryTimeslotInMinutes":0}"#,
                "HistoryTimeslotInMinutes",
            ),
        ] {
            let e = TaskSettings::parse(&format!(r#"{{"ControlTablesSettings":{json}}}"#)).unwrap_err();
            assert_eq!(e.path, format!("$.ControlTablesSettings.{path}"), "{json}");
        }
    }

    #[test]
    fn compute_config_sets_the_capacity_limits() {
        let s = TaskSettings::parse(r#"{"ComputeConfig":{"MinCapacityUnits":2,"MaxCapacityUnits":8}}"#).unwrap();
        assert_eq!(s.capacity, CapacityLimits { min: 2, max: Some(8) });
        assert_eq!(TaskSettings::parse("{}").unwrap().capacity, CapacityLimits::default());
        let e = TaskSettings::parse(r#"{"ComputeConfig":{"MinCapacityUnits":4,"MaxCapacityUnits":2}}"#).unwrap_err();
        assert_eq!(e.path, "$.ComputeConfig.MinCapacityUnits");
        let e = TaskSettings::parse(r#"{"ComputeConfig":{"MaxCapacityUnits":0}}"#).unwrap_err();
        assert_eq!(e.path, "$.ComputeConfig.MaxCapacityUnits");
    }

    #[test]
    fn batch_timing_from_change_processing_tuning() {
        assert_eq!(
            TaskSettings::default().batch_timing,
            BatchTiming { min_ms: 0, max_ms: 100 }
        );
        let s = TaskSettings::parse(
            r#"{"ChangeProcessingTuning":{"BatchApplyTimeoutMin":1,"BatchApplyTimeoutMax":30,"BatchApplyMemoryLimit":500}}"#,
        )
        .unwrap();
        assert_eq!(
            s.batch_timing,
            BatchTiming {
                min_ms: 1000,
                max_ms: 30_000
            }
        );
        let e =
            TaskSettings::parse(r#"{"ChangeProcessingTuning":{"BatchApplyTimeoutMin":5,"BatchApplyTimeoutMax":2}}"#)
                .unwrap_err();
        assert_eq!(e.path, "$.ChangeProcessingTuning.BatchApplyTimeoutMin");
        let e = TaskSettings::parse(r#"{"ChangeProcessingTuning":{"BatchApplyTimeoutMax":"30"}}"#).unwrap_err();
        assert_eq!(e.path, "$.ChangeProcessingTuning.BatchApplyTimeoutMax");
    }

    #[test]
    fn escalations_need_a_count() {
        let s = TaskSettings::parse(
            r#"{"ErrorBehavior":{"DataErrorEscalationCount":3,"TableErrorEscalationCount":2,"TableErrorEscalationPolicy":"STOP_TASK"}}"#,
        )
        .unwrap();
        let at = |count, action| Some(Escalation { count, action });
        assert_eq!(s.data_escalation, at(3, ErrorAction::SuspendTable));
        assert_eq!(s.table_escalation, at(2, ErrorAction::StopTask));
        let s = TaskSettings::parse(
            r#"{"ErrorBehavior":{"DataErrorEscalationCount":0,"DataErrorEscalationPolicy":"STOP_TASK"}}"#,
        )
        .unwrap();
        assert_eq!(s.data_escalation, None, "0: no escalation");
        let e = TaskSettings::parse(r#"{"ErrorBehavior":{"TableErrorEscalationPolicy":"SUSPEND_TABLE"}}"#).unwrap_err();
        assert_eq!(e.path, "$.ErrorBehavior.TableErrorEscalationPolicy");
        let e = TaskSettings::parse(r#"{"ErrorBehavior":{"DataErrorEscalationCount":-1}}"#).unwrap_err();
        assert_eq!(e.path, "$.ErrorBehavior.DataErrorEscalationCount");
    }

    #[test]
    fn recoverable_errors_map_onto_retries() {
        let d = RetryPolicy::default();
        // Today's defaults: 5 load attempts (2..32 s), 30 stream attempts (1..5 s).
        assert_eq!(d.backoff_ms(false, 1), Some(2_000));
        assert_eq!(d.backoff_ms(false, 4), Some(16_000));
        assert_eq!(d.backoff_ms(false, 5), None);
        assert_eq!(d.backoff_ms(true, 10), Some(5_000));
        assert_eq!(d.backoff_ms(true, 30), None);
        let s = TaskSettings::parse(
            r#"{"ErrorBehavior":{"RecoverableErrorCount":0,"RecoverableErrorInterval":3,"RecoverableErrorThrottling":false}}"#,
        )
        .unwrap();
        assert_eq!(s.retry.backoff_ms(false, 1), None, "0: never retried");
        let s = TaskSettings::parse(
            r#"{"ErrorBehavior":{"RecoverableErrorCount":-1,"RecoverableErrorInterval":3,"RecoverableErrorThrottlingMax":10}}"#,
        )
        .unwrap();
        assert_eq!(s.retry.backoff_ms(true, 1), Some(6_000));
        assert_eq!(s.retry.backoff_ms(false, 1_000_000), Some(10_000), "-1: without end");
        let s =
            TaskSettings::parse(r#"{"ErrorBehavior":{"RecoverableErrorCount":2,"RecoverableErrorThrottling":false}}"#)
                .unwrap();
        assert_eq!(s.retry.backoff_ms(true, 2), Some(500));
        assert_eq!(s.retry.backoff_ms(true, 3), None);
        let e = TaskSettings::parse(r#"{"ErrorBehavior":{"RecoverableErrorCount":-2}}"#).unwrap_err();
        assert!(e.to_string().contains("$.ErrorBehavior.RecoverableErrorCount"), "{e}");
        let e = TaskSettings::parse(r#"{"ErrorBehavior":{"RecoverableErrorThrottling":"no"}}"#).unwrap_err();
        assert!(e.to_string().contains("RecoverableErrorThrottling"), "{e}");
        assert!(TaskSettings::default().fail_on_no_tables);
        let s = TaskSettings::parse(r#"{"ErrorBehavior":{"FailOnNoTablesCaptured":false}}"#).unwrap();
        assert!(!s.fail_on_no_tables);
        let s = TaskSettings::parse(r#"{"ErrorBehavior":{"ApplyErrorUpdatePolicy":"INSERT_RECORD"}}"#).unwrap();
        assert!(s.update_inserts_missing && !TaskSettings::default().update_inserts_missing);
        let d = TaskSettings::default().missing_rows;
        assert_eq!(
            (d.update, d.delete, d.insert),
            (ErrorAction::LogError, ErrorAction::IgnoreRecord, None)
        );
        for (policy, want) in [
            ("LOG_ERROR", Some(ErrorAction::LogError)),
            ("STOP_TASK", Some(ErrorAction::StopTask)),
            ("INSERT_RECORD", None),
        ] {
            let json = format!(r#"{{"ErrorBehavior":{{"ApplyErrorInsertPolicy":"{policy}"}}}}"#);
            assert_eq!(
                TaskSettings::parse(&json).unwrap().missing_rows.insert,
                want,
                "{policy}"
            );
        }
        // A settings value stored before the insert policy existed.
        let old: ApplyConflicts = serde_json::from_str(r#"{"update":"LOG_ERROR","delete":"IGNORE_RECORD"}"#).unwrap();
        assert_eq!(old, ApplyConflicts::default());
        let s = TaskSettings::parse(
            r#"{"ErrorBehavior":{"ApplyErrorUpdatePolicy":"SUSPEND_TABLE","ApplyErrorDeletePolicy":"STOP_TASK",
                "ApplyErrorEscalationCount":5,"ApplyErrorEscalationPolicy":"STOP_TASK"}}"#,
        )
        .unwrap();
        assert!(!s.update_inserts_missing);
        assert_eq!(
            (s.missing_rows.update, s.missing_rows.delete),
            (ErrorAction::SuspendTable, ErrorAction::StopTask)
        );
        assert_eq!(
            s.apply_escalation,
            Some(Escalation {
                count: 5,
                action: ErrorAction::StopTask
            })
        );
        let s = TaskSettings::parse(r#"{"ErrorBehavior":{"ApplyErrorEscalationCount":5}}"#).unwrap();
        assert_eq!(
            s.apply_escalation, None,
            "DMS's default policy LOG_ERROR escalates to nothing"
        );
        for bad in [
            r#"{"ErrorBehavior":{"ApplyErrorDeletePolicy":"INSERT_RECORD"}}"#,
            r#"{"ErrorBehavior":{"ApplyErrorEscalationPolicy":"IGNORE_RECORD"}}"#,
            r#"{"ErrorBehavior":{"ApplyErrorInsertPolicy":"UPSERT"}}"#,
        ] {
            let e = TaskSettings::parse(bad).unwrap_err();
            assert!(e.path.starts_with("$.ErrorBehavior.ApplyError"), "{e}");
        }
        let s =
            TaskSettings::parse(r#"{"ErrorBehavior":{"DataErrorPolicy":"STOP_TASK","TableErrorPolicy":"STOP_TASK"}}"#)
                .unwrap();
        assert_eq!(
            (s.data_errors, s.table_errors),
            (ErrorAction::StopTask, ErrorAction::StopTask)
        );
        let d = TaskSettings::default();
        assert_eq!(
            (d.data_errors, d.table_errors),
            (ErrorAction::LogError, ErrorAction::SuspendTable)
        );
        let s = TaskSettings::parse(r#"{"FullLoadSettings":{"StopTaskCachedChangesApplied":true}}"#).unwrap();
        assert_eq!(s.stop_after_load, Some(CachedChanges::Applied));
        assert_eq!(TaskSettings::default().stop_after_load, None);
        let e = TaskSettings::parse(
            r#"{"FullLoadSettings":{"StopTaskCachedChangesNotApplied":true,"StopTaskCachedChangesApplied":true}}"#,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("$.FullLoadSettings.StopTaskCachedChangesApplied"),
            "{e}"
        );
        let e = TaskSettings::parse(r#"{"ErrorBehavior":{"TableErrorPolicy":"LOG_ERROR"}}"#).unwrap_err();
        assert!(e.to_string().contains("$.ErrorBehavior.TableErrorPolicy"), "{e}");
        let e = TaskSettings::parse(r#"{"ErrorBehavior":{"ApplyErrorUpdatePolicy":"UPSERT"}}"#).unwrap_err();
        assert!(e.to_string().contains("$.ErrorBehavior.ApplyErrorUpdatePolicy"), "{e}");
    }

    #[test]
    fn parses_and_validates() {
        let s = TaskSettings::parse(
            r#"{"FullLoadSettings":{"TargetTablePrepMode":"TRUNCATE_BEFORE_LOAD","MaxFullLoadSubTasks":4},"Ferry":{"SegmentTargetBytes":1000},"Logging":{"EnableLogging":true}}"#,
        )
        .unwrap();
        assert_eq!(s.prep_mode, TargetTablePrepMode::TruncateBeforeLoad);
        assert_eq!(s.max_full_load_subtasks, 4);
        assert_eq!(s.segment_target_bytes, 1000);
        let v = TaskSettings::parse(r#"{"ValidationSettings":{"ValidationOnly":true,"PartitionSize":500}}"#).unwrap();
        assert!(v.validation.enabled && v.validation.only);
        let e = TaskSettings::parse(r#"{"Ferry":{"SegmentTargetByte":1000}}"#).unwrap_err();
        assert!(
            e.to_string().contains("$.Ferry.SegmentTargetByte") && e.to_string().contains("unknown"),
            "{e}"
        );
        for bad in ["[]", "42", "\"Ferry\"", r#"{"Ferry": 3}"#] {
            assert!(TaskSettings::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(v.validation.partition_size, 500);
        assert_eq!(v.validation.revalidate_delay_s, 5);
        let d = TaskSettings::parse(r#"{"Ferry":{"RevalidateDelaySeconds":0}}"#).unwrap();
        assert_eq!(d.validation.revalidate_delay_s, 0);
        let e = TaskSettings::parse(r#"{"Ferry":{"RevalidateDelaySeconds":-1}}"#).unwrap_err();
        assert!(e.to_string().contains("RevalidateDelaySeconds"), "{e}");
        let e = TaskSettings::parse(r#"{"ValidationSettings":{"EnableValidation":"yes"}}"#).unwrap_err();
        assert!(e.to_string().contains("EnableValidation"), "{e}");
        assert!(s.reload_altered_tables);
        let a =
            TaskSettings::parse(r#"{"ChangeProcessingDdlHandlingPolicy":{"HandleSourceTableAltered":false}}"#).unwrap();
        assert!(!a.reload_altered_tables);
        let e =
            TaskSettings::parse(r#"{"ChangeProcessingDdlHandlingPolicy":{"HandleSourceTableAltered":1}}"#).unwrap_err();
        assert!(e.to_string().contains("HandleSourceTableAltered"), "{e}");
        assert!(s.drop_dropped_tables);
        let d =
            TaskSettings::parse(r#"{"ChangeProcessingDdlHandlingPolicy":{"HandleSourceTableDropped":false}}"#).unwrap();
        assert!(!d.drop_dropped_tables && d.apply_truncates);
        assert_eq!(s.apply_lanes, DEFAULT_APPLY_LANES);
        let p = TaskSettings::parse(r#"{"TargetMetadata":{"ParallelApplyThreads":0}}"#).unwrap();
        assert_eq!(p.apply_lanes, 1);
        let e = TaskSettings::parse(r#"{"TargetMetadata":{"ParallelApplyThreads":64}}"#).unwrap_err();
        assert!(e.to_string().contains("ParallelApplyThreads"), "{e}");
        let e = TaskSettings::parse(r#"{"FullLoadSettings":{"TargetTablePrepMode":"NUKE"}}"#).unwrap_err();
        assert!(e.to_string().contains("TargetTablePrepMode"));
    }

    #[test]
    fn lob_modes_cut_only_when_a_limit_is_asked_for() {
        let mode = |json: &str| TaskSettings::parse(json).map(|s| s.lob.mode);
        assert_eq!(mode("{}").unwrap(), LobMode::Full);
        // The keys DMS's console writes by default: limited, 32 KB.
        let console = r#"{"TargetMetadata":{"SupportLobs":true,"FullLobMode":false,"LobChunkSize":64,
            "LimitedSizeLobMode":true,"LobMaxSize":32,"InlineLobMaxSize":0}}"#;
        assert_eq!(mode(console).unwrap(), LobMode::Limited { max_bytes: 32 * 1024 });
        assert_eq!(
            mode(r#"{"TargetMetadata":{"LobMaxSize":8}}"#).unwrap(),
            LobMode::Limited { max_bytes: 8192 }
        );
        assert_eq!(
            mode(r#"{"TargetMetadata":{"FullLobMode":true,"LobMaxSize":8}}"#).unwrap(),
            LobMode::Full
        );
        for (bad, path) in [
            (
                r#"{"TargetMetadata":{"SupportLobs":false}}"#,
                "$.TargetMetadata.SupportLobs",
            ),
            (
                r#"{"TargetMetadata":{"FullLobMode":true,"LimitedSizeLobMode":true}}"#,
                "$.TargetMetadata.LimitedSizeLobMode",
            ),
            (r#"{"TargetMetadata":{"LobMaxSize":0}}"#, "$.TargetMetadata.LobMaxSize"),
            (
                r#"{"TargetMetadata":{"LobChunkSize":"64"}}"#,
                "$.TargetMetadata.LobChunkSize",
            ),
            (
                r#"{"ErrorBehavior":{"DataTruncationErrorPolicy":"SKIP"}}"#,
                "$.ErrorBehavior.DataTruncationErrorPolicy",
            ),
        ] {
            let e = TaskSettings::parse(bad).unwrap_err();
            assert_eq!(e.path, path, "{e}");
        }
        let s = TaskSettings::parse(r#"{"ErrorBehavior":{"DataTruncationErrorPolicy":"STOP_TASK"}}"#).unwrap();
        assert_eq!(s.lob.on_truncation, ErrorAction::StopTask);
    }

    #[test]
    fn large_tables_split_by_key_unless_told_block() {
        assert_eq!(TaskSettings::default().split_large_tables_by, SplitBy::Key);
        let b = TaskSettings::parse(r#"{"Ferry":{"SplitLargeTablesBy":"block"}}"#).unwrap();
        assert_eq!(b.split_large_tables_by, SplitBy::Block);
        for bad in [r#""ctid""#, "1", "null"] {
            let e = TaskSettings::parse(&format!(r#"{{"Ferry":{{"SplitLargeTablesBy":{bad}}}}}"#)).unwrap_err();
            assert!(e.to_string().contains("$.Ferry.SplitLargeTablesBy"), "{e}");
        }
    }
}
