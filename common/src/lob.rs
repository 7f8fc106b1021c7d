//! DMS's LOB settings and the cut they make.
//!
//! Full LOB mode, Ferry's default, copies every value whole. Limited LOB
//! mode (`TargetMetadata.LimitedSizeLobMode` with `LobMaxSize`, or a table's
//! `lob-settings` with `mode: limited` and `bulk-max-size`) cuts a LOB
//! column's value above the limit down to it, as DMS does: text at a
//! character boundary to at most the limit in UTF-8 bytes, binary to the
//! limit in bytes. Which columns hold LOBs is [`crate::typemap::lob_kind`]:
//! text and binary without a declared length; JSON is never cut (a cut
//! document is not JSON).
//!
//! DMS cuts silently. Ferry counts every cut row per table and records it in
//! the target's `ferry.apply_exceptions` with the row's key, in the same
//! target transaction as the row, so a retried segment or batch records it
//! once; `DataTruncationErrorPolicy` says whether a cut stops the table or
//! the task instead ([`LobLimit::on_truncation`]).
//!
//! ## One cut for every path
//! The full load (on the value path: a same-engine pass-through is not
//! taken for a table with a limit), CDC (every image, before and after, so
//! that a keyless table's row is found by the values the target holds) and
//! validation (the source's values before they are compared) all call
//! [`RowCut`], so the three agree on what the target should hold and a cut
//! value is no validation difference.

use crate::endpoint::Engine;
use crate::settings::ErrorAction;
use crate::typemap::{lob_kind, Kind};
use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// The task's LOB mode (DMS `TargetMetadata`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LobMode {
    /// Every value whole (`FullLobMode`; Ferry's default).
    #[default]
    Full,
    /// Values above `max_bytes` are cut (`LimitedSizeLobMode`).
    Limited { max_bytes: u64 },
}

/// The task-wide LOB settings that reach introspection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LobSettings {
    pub mode: LobMode,
    /// `ErrorBehavior.DataTruncationErrorPolicy`.
    #[serde(default)]
    pub on_truncation: ErrorAction,
}

/// A table's `lob-settings` (table-settings rule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableLobRule {
    pub rule_id: String,
    pub schema: String,
    pub table: String,
    pub mode: TableLobMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableLobMode {
    /// `mode: limited`, `bulk-max-size` in KB.
    Limited { max_bytes: u64 },
    /// `mode: unlimited`: whole values (its `bulk-max-size` is a chunk size,
    /// which a stream of whole values has no use for).
    Unlimited,
    /// `mode: none`: the task's settings.
    Task,
}

/// A table's limit, resolved at introspection and carried on the source
/// form of the table (as its filter is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LobLimit {
    pub max_bytes: u64,
    /// The table's LOB columns, by source name.
    pub columns: Vec<LobColumn>,
    /// `DataTruncationErrorPolicy`: LOG_ERROR and IGNORE_RECORD store the
    /// cut row and record it; SUSPEND_TABLE and STOP_TASK stop instead.
    pub on_truncation: ErrorAction,
    /// The setting the limit comes from, for messages.
    pub origin: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LobColumn {
    pub name: String,
    pub binary: bool,
}

/// The limit for a table of `engine` with `columns` (source names and
/// types): the table's rule if it has one, else the task's mode. `None`
/// when nothing is cut (full mode, or no LOB column). Key columns are
/// never cut: a cut key would name another row.
pub fn limit_for<'a>(
    engine: Engine,
    columns: impl Iterator<Item = (&'a str, &'a str)>,
    key: &[String],
    task: &LobSettings,
    rule: Option<&TableLobRule>,
) -> Option<LobLimit> {
    let (max_bytes, origin) = match (rule.map(|r| (r.mode, &r.rule_id)), task.mode) {
        (Some((TableLobMode::Limited { max_bytes }, id)), _) => (
            max_bytes,
            format!("rule {id} lob-settings bulk-max-size {} KB", max_bytes / 1024),
        ),
        (Some((TableLobMode::Unlimited, _)), _) => return None,
        (_, LobMode::Limited { max_bytes }) => (max_bytes, format!("LobMaxSize {} KB", max_bytes / 1024)),
        (_, LobMode::Full) => return None,
    };
    let columns: Vec<LobColumn> = columns
        .filter(|(name, _)| !key.iter().any(|k| k == name))
        .filter_map(|(name, ty)| {
            lob_kind(engine, ty).map(|k| LobColumn {
                name: name.to_string(),
                binary: k == Kind::Bytes,
            })
        })
        .collect();
    (!columns.is_empty()).then_some(LobLimit {
        max_bytes,
        columns,
        on_truncation: task.on_truncation,
        origin,
    })
}

/// One value cut: its column and its length before and after, in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    pub column: String,
    pub from: usize,
    pub to: usize,
}

/// Cuts one value of a LOB column to at most `max` bytes; returns its
/// length before and after when it was longer. `binary` values may arrive
/// as bytes or as PostgreSQL's hex text (`\x…`, a same-engine stream's
/// form), which is cut to `max` bytes of what it encodes.
pub fn cut(v: &mut Value<'_>, binary: bool, max: usize) -> Option<(usize, usize)> {
    match v {
        Value::Text(s) if binary => {
            let digits = s.strip_prefix("\\x")?.len();
            let len = digits / 2;
            (len > max).then(|| {
                shorten_text(s, 2 + 2 * max);
                (len, max)
            })
        }
        Value::Text(s) => {
            let len = s.len();
            (len > max).then(|| {
                let mut at = max;
                while !s.is_char_boundary(at) {
                    at -= 1;
                }
                shorten_text(s, at);
                (len, at)
            })
        }
        Value::Bytes(b) => {
            let len = b.len();
            (len > max).then(|| {
                match b {
                    Cow::Owned(o) => o.truncate(max),
                    Cow::Borrowed(r) => *b = Cow::Borrowed(&r[..max]),
                }
                (len, max)
            })
        }
        _ => None,
    }
}

fn shorten_text(s: &mut Cow<'_, str>, at: usize) {
    match s {
        Cow::Owned(o) => o.truncate(at),
        Cow::Borrowed(r) => *s = Cow::Borrowed(&r[..at]),
    }
}

/// A limit bound to one row shape: the positions of the LOB columns among
/// a row's columns.
#[derive(Debug, Clone)]
pub struct RowCut {
    at: Vec<(usize, bool, String)>,
    max: usize,
    pub on_truncation: ErrorAction,
    pub origin: String,
}

impl RowCut {
    /// For rows whose columns are the source columns `names`, in order;
    /// `None` when none of them is a LOB column of the limit.
    pub fn new<'a>(limit: Option<&LobLimit>, names: impl Iterator<Item = &'a str>) -> Option<RowCut> {
        let limit = limit?;
        let at: Vec<(usize, bool, String)> = names
            .enumerate()
            .filter_map(|(i, n)| {
                let c = limit.columns.iter().find(|c| c.name == n)?;
                Some((i, c.binary, c.name.clone()))
            })
            .collect();
        (!at.is_empty()).then(|| RowCut {
            at,
            max: usize::try_from(limit.max_bytes).unwrap_or(usize::MAX),
            on_truncation: limit.on_truncation,
            origin: limit.origin.clone(),
        })
    }

    /// Whether the row's column `i` is one of the LOB columns cut.
    pub fn covers(&self, i: usize) -> bool {
        self.at.iter().any(|(at, _, _)| *at == i)
    }

    /// Cuts the value of the row's column `i` if that is a LOB column.
    pub fn value(&self, i: usize, v: &mut Value<'_>) -> bool {
        self.at
            .iter()
            .find(|(at, _, _)| *at == i)
            .is_some_and(|(_, binary, _)| cut(v, *binary, self.max).is_some())
    }

    /// Cuts a row's LOB values in place; what was cut.
    pub fn row(&self, row: &mut [Value<'_>]) -> Vec<Cut> {
        let mut cuts = vec![];
        for (i, binary, name) in &self.at {
            if let Some(v) = row.get_mut(*i) {
                self.note(&mut cuts, name, cut(v, *binary, self.max));
            }
        }
        cuts
    }

    /// As [`RowCut::row`], for a change image (`None`: not sent).
    pub fn image(&self, row: &mut [Option<Value<'_>>]) -> Vec<Cut> {
        let mut cuts = vec![];
        for (i, binary, name) in &self.at {
            if let Some(Some(v)) = row.get_mut(*i) {
                self.note(&mut cuts, name, cut(v, *binary, self.max));
            }
        }
        cuts
    }

    fn note(&self, cuts: &mut Vec<Cut>, column: &str, done: Option<(usize, usize)>) {
        if let Some((from, to)) = done {
            cuts.push(Cut {
                column: column.to_string(),
                from,
                to,
            });
        }
    }

    /// The exceptions table's reason for a row's cuts.
    pub fn reason(&self, cuts: &[Cut]) -> String {
        let what: Vec<String> = cuts
            .iter()
            .map(|c| format!("column {} cut from {} to {} bytes", c.column, c.from, c.to))
            .collect();
        format!("LOB truncated ({}): {}", self.origin, what.join(", "))
    }

    /// Why a cut stops the work under a DataTruncationErrorPolicy that stops.
    pub fn stop_reason(&self, cuts: &[Cut], key: &str) -> String {
        format!(
            "{} in the row with key {key}; DataTruncationErrorPolicy {} stops at the first",
            self.reason(cuts),
            self.on_truncation.name()
        )
    }
}

/// A row's key as the exceptions table records a cut row: `name=value`
/// pairs (values as text, binary in hex).
pub fn key_image<'a, 'v: 'a>(pairs: impl Iterator<Item = (&'a str, &'a Value<'v>)>) -> String {
    pairs
        .map(|(name, v)| {
            let text = match v {
                Value::Null => "NULL".to_string(),
                Value::Bytes(b) | Value::Bit { bytes: b, .. } => b.iter().fold(String::from("\\x"), |mut h, byte| {
                    h.push_str(&format!("{byte:02x}"));
                    h
                }),
                other => crate::value::plain_text(other),
            };
            format!("{name}={text}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(max: u64) -> LobLimit {
        limit_for(
            Engine::Postgres,
            [("id", "text"), ("body", "text"), ("doc", "jsonb"), ("img", "bytea")].into_iter(),
            &["id".to_string()],
            &LobSettings {
                mode: LobMode::Limited { max_bytes: max },
                on_truncation: ErrorAction::LogError,
            },
            None,
        )
        .unwrap()
    }

    #[test]
    fn only_text_and_binary_without_a_length_are_lobs() {
        let l = limit(4);
        let names: Vec<&str> = l.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["body", "img"]);
        assert!(lob_kind(Engine::Postgres, "character varying(20)").is_none());
        assert_eq!(lob_kind(Engine::Postgres, "character varying"), Some(Kind::Text));
        assert_eq!(lob_kind(Engine::Mysql, "mediumblob"), Some(Kind::Bytes));
        assert_eq!(lob_kind(Engine::Mysql, "longtext"), Some(Kind::Text));
        assert!(lob_kind(Engine::Mysql, "varchar(10)").is_none());
        assert!(lob_kind(Engine::Mysql, "json").is_none());
    }

    #[test]
    fn full_mode_and_unlimited_rules_cut_nothing() {
        let cols = [("body", "text")];
        assert!(limit_for(Engine::Postgres, cols.into_iter(), &[], &LobSettings::default(), None).is_none());
        let rule = TableLobRule {
            rule_id: "3".into(),
            schema: "%".into(),
            table: "%".into(),
            mode: TableLobMode::Unlimited,
        };
        let limited = LobSettings {
            mode: LobMode::Limited { max_bytes: 1024 },
            ..Default::default()
        };
        assert!(limit_for(Engine::Postgres, cols.into_iter(), &[], &limited, Some(&rule)).is_none());
        let rule = TableLobRule {
            mode: TableLobMode::Limited { max_bytes: 2048 },
            ..rule
        };
        let l = limit_for(
            Engine::Postgres,
            cols.into_iter(),
            &[],
            &LobSettings::default(),
            Some(&rule),
        )
        .unwrap();
        assert_eq!(l.max_bytes, 2048);
        assert_eq!(l.origin, "rule 3 lob-settings bulk-max-size 2 KB");
    }

    #[test]
    fn cuts_text_at_a_character_boundary_and_binary_in_either_form() {
        let cut_row = RowCut::new(Some(&limit(4)), ["id", "body", "doc", "img"].into_iter()).unwrap();
        let mut row = vec![
            Value::Int(1),
            Value::Text("aé€xyz".into()),
            Value::Json("\"long json value\"".into()),
            Value::Bytes(vec![1, 2, 3, 4, 5, 6].into()),
        ];
        let cuts = cut_row.row(&mut row);
        // "a" (1) + "é" (2) = 3 bytes; "€" (3 bytes) would pass 4.
        assert_eq!(row[1], Value::Text("aé".into()));
        assert_eq!(row[2], Value::Json("\"long json value\"".into()));
        assert_eq!(row[3], Value::Bytes(vec![1, 2, 3, 4].into()));
        assert_eq!(
            cuts,
            [
                Cut {
                    column: "body".into(),
                    from: 9,
                    to: 3
                },
                Cut {
                    column: "img".into(),
                    from: 6,
                    to: 4
                }
            ]
        );
        assert_eq!(
            cut_row.reason(&cuts),
            "LOB truncated (LobMaxSize 0 KB): column body cut from 9 to 3 bytes, column img cut from 6 to 4 bytes"
        );
        // PostgreSQL's hex text of bytea, as a same-engine stream sends it.
        let mut image = vec![
            None,
            Some(Value::Text("abcd".into())),
            None,
            Some(Value::Text("\\x0102030405".into())),
        ];
        let cuts = cut_row.image(&mut image);
        assert_eq!(image[3], Some(Value::Text("\\x01020304".into())));
        assert_eq!(image[1], Some(Value::Text("abcd".into())));
        assert_eq!(cuts.len(), 1);
        assert_eq!((cuts[0].from, cuts[0].to), (5, 4));
    }
}
