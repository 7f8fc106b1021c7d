//! The DMS task-settings keys Ferry knows, so that a key nobody knows (a
//! typo, a setting of another product) is named in a warning instead of
//! silently ignored. Which of them Ferry honours is `settings`' business
//! and docs/dms-compatibility.md's; this is only the vocabulary.

use serde_json::Value;

/// A section and its keys; an empty key list means the section's contents
/// are DMS's to define and are not looked into (arrays, nested objects).
const SECTIONS: &[(&str, &[&str])] = &[
    (
        "TargetMetadata",
        &[
            "TargetSchema",
            "SupportLobs",
            "FullLobMode",
            "LobChunkSize",
            "LimitedSizeLobMode",
            "LobMaxSize",
            "InlineLobMaxSize",
            "LoadMaxFileSize",
            "ParallelLoadThreads",
            "ParallelLoadBufferSize",
            "ParallelLoadQueuesPerThread",
            "ParallelApplyThreads",
            "ParallelApplyBufferSize",
            "ParallelApplyQueuesPerThread",
            "BatchApplyEnabled",
            "TaskRecoveryTableEnabled",
        ],
    ),
    (
        "FullLoadSettings",
        &[
            "TargetTablePrepMode",
            "CreatePkAfterFullLoad",
            "StopTaskCachedChangesApplied",
            "StopTaskCachedChangesNotApplied",
            "MaxFullLoadSubTasks",
            "TransactionConsistencyTimeout",
            "CommitRate",
        ],
    ),
    (
        "Logging",
        &[
            "EnableLogging",
            "EnableLogContext",
            "LogComponents",
            "CloudWatchLogGroup",
            "CloudWatchLogStream",
        ],
    ),
    (
        "ControlTablesSettings",
        &[
            "ControlSchema",
            "HistoryTimeslotInMinutes",
            "historyTimeslotInMinutes",
            "HistoryTableEnabled",
            "SuspendedTablesTableEnabled",
            "StatusTableEnabled",
            "FullLoadExceptionTableEnabled",
        ],
    ),
    (
        "StreamBufferSettings",
        &["StreamBufferCount", "StreamBufferSizeInMB", "CtrlStreamBufferSizeInMB"],
    ),
    (
        "ChangeProcessingDdlHandlingPolicy",
        &[
            "HandleSourceTableDropped",
            "HandleSourceTableTruncated",
            "HandleSourceTableAltered",
        ],
    ),
    (
        "ErrorBehavior",
        &[
            "DataErrorPolicy",
            "DataTruncationErrorPolicy",
            "DataMaskingErrorPolicy",
            "DataErrorEscalationPolicy",
            "DataErrorEscalationCount",
            "TableErrorPolicy",
            "TableErrorEscalationPolicy",
            "TableErrorEscalationCount",
            "RecoverableErrorCount",
            "RecoverableErrorInterval",
            "RecoverableErrorThrottling",
            "RecoverableErrorThrottlingMax",
            "RecoverableErrorStopRetryAfterThrottlingMax",
            "ApplyErrorDeletePolicy",
            "ApplyErrorInsertPolicy",
            "ApplyErrorUpdatePolicy",
            "ApplyErrorEscalationPolicy",
            "ApplyErrorEscalationCount",
            "ApplyErrorFailOnTruncationDdl",
            "FullLoadIgnoreConflicts",
            "FailOnTransactionConsistencyBreached",
            "FailOnNoTablesCaptured",
            "EventErrorPolicy",
        ],
    ),
    (
        "ChangeProcessingTuning",
        &[
            "BatchApplyPreserveTransaction",
            "BatchApplyTimeoutMin",
            "BatchApplyTimeoutMax",
            "BatchApplyMemoryLimit",
            "BatchSplitSize",
            "MinTransactionSize",
            "CommitTimeout",
            "MemoryLimitTotal",
            "MemoryKeepTime",
            "StatementCacheSize",
            "RecoveryTimeout",
        ],
    ),
    (
        "ValidationSettings",
        &[
            "EnableValidation",
            "ValidationMode",
            "ThreadCount",
            "PartitionSize",
            "FailureMaxCount",
            "RecordFailureDelayInMinutes",
            "RecordSuspendDelayInMinutes",
            "RecordFailureDelayLimitInMinutes",
            "MaxKeyColumnSize",
            "TableFailureMaxCount",
            "ValidationOnly",
            "HandleCollationDiff",
            "SkipLobColumns",
            "ValidationPartialLobSize",
            "ValidationQueryCdcDelaySeconds",
        ],
    ),
    ("ComputeConfig", &[]),
    ("PostProcessingRules", &[]),
    ("CharacterSetSettings", &[]),
    ("LoopbackPreventionSettings", &[]),
    ("BeforeImageSettings", &[]),
    ("TTSettings", &[]),
    ("FailTaskWhenCleanTaskResourceFailed", &[]),
    // Ferry's own section checks its keys itself (an unknown one is an error).
    ("Ferry", &[]),
];

/// JSON paths of the keys in a settings document that are no DMS task
/// setting Ferry knows of (`$.Section` or `$.Section.Key`).
pub fn unknown_keys(root: &Value) -> Vec<String> {
    let Some(obj) = root.as_object() else {
        return vec![];
    };
    let mut out = vec![];
    for (section, v) in obj {
        let Some((_, keys)) = SECTIONS.iter().find(|(s, _)| s == section) else {
            out.push(format!("$.{section}"));
            continue;
        };
        if keys.is_empty() {
            continue;
        }
        if let Some(inner) = v.as_object() {
            out.extend(
                inner
                    .keys()
                    .filter(|k| !keys.contains(&k.as_str()))
                    .map(|k| format!("$.{section}.{k}")),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keys_no_dms_section_has() {
        let v: Value = serde_json::from_str(
            r#"{"TargetMetadata":{"SupportLobs":true,"LobMaxSze":32},"FullLoadSettings":{"CommitRate":10000},
                "Logging":{"LogComponents":[{"Id":"X"}]},"TTSettings":{"EnableTT":false},"Fery":{}}"#,
        )
        .unwrap();
        let mut unknown = unknown_keys(&v);
        unknown.sort();
        assert_eq!(unknown, ["$.Fery", "$.TargetMetadata.LobMaxSze"]);
    }
}
