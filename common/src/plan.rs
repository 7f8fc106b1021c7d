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

/// Which validated ranges of a table a CDC stream's changes touch, so that
/// those ranges are validated again once the change is applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeTracking {
    /// The table is not validated: nothing to track.
    #[default]
    Off,
    /// A change anywhere marks every segment (the range key's order is only
    /// known to the database, e.g. text under a collation).
    Table,
    Segments(SegmentLocator),
}

/// Finds the segment holding a row from its range-key values, for integer
/// range keys, whose order Ferry knows exactly outside the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentLocator {
    /// The range key's columns (source names).
    pub columns: Vec<String>,
    /// The upper bound of every segment but the last, ascending: segment
    /// `i` holds the keys `uppers[i-1] <= key < uppers[i]`.
    uppers: Vec<Vec<i128>>,
}

impl SegmentLocator {
    /// The locator for a table cut into `segments`; `None` unless they are
    /// key ranges over columns whose type `is_integer` accepts, with bounds
    /// that parse as integers.
    pub fn new(segments: &[SegmentBounds], is_integer: impl Fn(&str) -> bool) -> Option<SegmentLocator> {
        let mut columns = None;
        let mut uppers = vec![];
        for s in segments {
            let SegmentBounds::Key {
                columns: cols, upper, ..
            } = s
            else {
                return None;
            };
            if cols.iter().any(|c| c.nullable || !is_integer(&c.type_sql)) {
                return None;
            }
            columns.get_or_insert_with(|| cols.iter().map(|c| c.name.clone()).collect::<Vec<_>>());
            if let Some(u) = upper {
                uppers.push(u.iter().map(|v| v.trim().parse().ok()).collect::<Option<Vec<i128>>>()?);
            }
        }
        if uppers.len() + 1 != segments.len() || !uppers.windows(2).all(|w| w[0] < w[1]) {
            return None;
        }
        Some(SegmentLocator {
            columns: columns?,
            uppers,
        })
    }

    /// The segment holding `key` (the range key's values, in `columns` order).
    pub fn locate(&self, key: &[i128]) -> u32 {
        self.uppers.partition_point(|u| u.as_slice() <= key) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(lower: Option<&[&str]>, upper: Option<&[&str]>, type_sql: &str) -> SegmentBounds {
        let cols = ["a", "b"];
        let n = lower.or(upper).map_or(1, |v| v.len());
        let owned = |v: Option<&[&str]>| v.map(|v| v.iter().map(|s| s.to_string()).collect());
        SegmentBounds::Key {
            columns: cols[..n]
                .iter()
                .map(|c| KeyColumn {
                    name: c.to_string(),
                    type_sql: type_sql.into(),
                    nullable: false,
                })
                .collect(),
            lower: owned(lower),
            upper: owned(upper),
        }
    }

    #[test]
    fn locates_rows_in_integer_ranges() {
        let int = |t: &str| t == "bigint";
        let segs = [
            key(None, Some(&["10", "5"]), "bigint"),
            key(Some(&["10", "5"]), Some(&["20", "0"]), "bigint"),
            key(Some(&["20", "0"]), None, "bigint"),
        ];
        let l = SegmentLocator::new(&segs, int).unwrap();
        assert_eq!(l.columns, ["a", "b"]);
        assert_eq!(l.locate(&[-3, 100]), 0);
        assert_eq!(l.locate(&[10, 4]), 0);
        assert_eq!(l.locate(&[10, 5]), 1, "a lower bound belongs to its segment");
        assert_eq!(l.locate(&[19, i128::MAX]), 1);
        assert_eq!(l.locate(&[20, 0]), 2);
        // Text keys, CTID ranges: the order is the database's.
        let text = [key(None, Some(&["m"]), "text"), key(Some(&["m"]), None, "text")];
        assert!(SegmentLocator::new(&text, int).is_none());
        let ctid = [SegmentBounds::Ctid {
            lower_block: None,
            upper_block: None,
        }];
        assert!(SegmentLocator::new(&ctid, int).is_none());
    }
}
