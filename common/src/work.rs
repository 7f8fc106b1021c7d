//! Units of work the coordinator assigns and workers carry out, and what a
//! worker reports back. Carried as JSON inside the `Assignment` message.

use crate::endpoint::Endpoint;
use crate::mapping::TableMappings;
use crate::plan::SegmentBounds;
use crate::schema::{Constraint, SourceSchema, TableSchema};
use crate::settings::TargetTablePrepMode;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Work {
    /// Read the source catalog for the selected tables, with size estimates
    /// and key samples for tables larger than `segment_target_bytes`.
    Introspect {
        source: Endpoint,
        mappings: TableMappings,
        segment_target_bytes: u64,
        max_segments_per_table: u32,
    },
    /// Pre-data: create schemas, types, tables with primary keys, partitions.
    Prepare {
        target: Endpoint,
        schema: SourceSchema,
        prep_mode: TargetTablePrepMode,
    },
    /// Copy one segment, idempotently.
    LoadSegment {
        source: Endpoint,
        target: Endpoint,
        table: TableSchema,
        segment: u32,
        bounds: SegmentBounds,
    },
    /// Post-data for one loaded table: indexes, unique/check/exclusion
    /// constraints, sequence values, statistics.
    PostData {
        source: Endpoint,
        target: Endpoint,
        table: TableSchema,
    },
    /// Foreign keys, once every table is complete.
    Finalize {
        target: Endpoint,
        foreign_keys: Vec<(String, Constraint)>,
    },
}

impl Work {
    pub fn kind(&self) -> &'static str {
        match self {
            Work::Introspect { .. } => "Introspect",
            Work::Prepare { .. } => "Prepare",
            Work::LoadSegment { .. } => "LoadSegment",
            Work::PostData { .. } => "PostData",
            Work::Finalize { .. } => "Finalize",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkResult {
    Introspected(SourceSchema),
    /// `already_loaded`: the target had this segment committed by an earlier
    /// attempt (see the worker's `load` module), so nothing was copied again.
    Loaded {
        rows: u64,
        already_loaded: bool,
    },
    Done,
}
