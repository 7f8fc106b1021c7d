//! Segments: the key ranges a table is cut into for a parallel full load.
//!
//! Segments of one table partition its rows: every row falls in exactly one
//! segment, whatever was inserted after planning. Key ranges are half-open
//! `[lower, upper)` over the key tuple, the first unbounded below and the last
//! unbounded above; CTID ranges likewise over heap blocks, the last open so
//! pages appended after planning are still read.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyColumn {
    pub name: String,
    pub type_sql: String,
    /// Nullable range columns (user-given parallel-load columns) need
    /// NULL-safe predicates so rows with NULL keys are not lost.
    pub nullable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentBounds {
    /// The whole table in one segment.
    All,
    Key {
        columns: Vec<KeyColumn>,
        lower: Option<Vec<String>>,
        upper: Option<Vec<String>>,
    },
    Ctid {
        lower_block: Option<u64>,
        upper_block: Option<u64>,
    },
}

impl SegmentBounds {
    /// Whether the target can delete exactly this segment's rows by
    /// predicate (it can when the range is over column values).
    pub fn addressable_on_target(&self) -> bool {
        matches!(self, SegmentBounds::All | SegmentBounds::Key { .. })
    }
}

impl std::fmt::Display for SegmentBounds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SegmentBounds::All => write!(f, "all rows"),
            SegmentBounds::Key { lower, upper, .. } => {
                let show = |b: &Option<Vec<String>>| match b {
                    Some(v) => format!("({})", v.join(",")),
                    None => "∞".to_string(),
                };
                write!(f, "key [{} .. {})", show(lower), show(upper))
            }
            SegmentBounds::Ctid {
                lower_block,
                upper_block,
            } => write!(
                f,
                "blocks [{} .. {})",
                lower_block.map_or("0".into(), |b| b.to_string()),
                upper_block.map_or("∞".into(), |b| b.to_string())
            ),
        }
    }
}
