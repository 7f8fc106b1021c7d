//! Row-level validation of one segment: does the target hold exactly the
//! source's rows in this key range, value for value through the type
//! mapping?
//!
//! ## How, and why it is exact
//!
//! *Checksums, then bisection.* For a same-engine pair each database computes
//! `(count, sum of a 64-bit hash of each row's canonical text)` over the
//! range itself, so only two numbers cross the network. Equal pairs mean
//! the range matches (up to a 64-bit hash collision in the sum). A range
//! that differs is cut, at keys sampled from the source in key order, into
//! [`FANOUT`] parts of about equal row count, and only the parts whose
//! checksums differ are cut again — the data-diff technique — until a part
//! holds at most `partition_size` source rows. Such a part is compared row
//! by row.
//!
//! *Between engines* no text form is shared, so there are no checksums: the
//! segment is cut into parts of `partition_size` source rows and each is
//! compared row by row. A part is a key range, so the cut needs no shared
//! order either: each side reads the rows its own predicate selects.
//!
//! *Row comparison.* Both sides' rows are read as text, decoded into the
//! common value model by the same rules the data path uses (the source's
//! and the target's column types), and rendered canonically (numbers
//! without insignificant zeros, JSON re-serialized with sorted keys, floats
//! through their exact binary value), so a value that came across exactly
//! compares equal whatever engine holds it. A value neither decoder can read
//! (PostgreSQL `infinity`) compares by its raw text. The part's source rows
//! are kept as a key → per-column hash map (bounded by `partition_size`);
//! each target row either matches a key (equal, or RECORD_DIFF naming the
//! columns that differ) or has none (MISSING_SOURCE); source keys left over
//! are MISSING_TARGET.
//!
//! *During CDC* the target trails the source, so a part may differ only
//! because a change is not applied yet. Its differences are compared again
//! after the stream has applied everything the source had committed before
//! (a caught-up mark), up to three rounds. A difference is real when the
//! source row stayed the same from one round to the next: its last change
//! then happened before the mark, so the target has applied it, and still
//! differs. A source row that changed between rounds is still being
//! written; its difference is a change in flight and is not reported (a
//! validation-only task after the cutover checks such rows at rest).
//!
//! Failures are written to the target's `ferry.validation_failures`
//! replacing the segment's earlier ones in one transaction, so a retried or
//! re-run validation never double-counts.

use crate::engine::validation::{self, Decoder, Side};
use crate::engine::{bounds_on_target, on_target, ConnectorError};
use crate::report::Reporter;
use ferry_common::endpoint::Endpoint;
use ferry_common::expression::DataType;
use ferry_common::lob::RowCut;
use ferry_common::plan::{KeyColumn, SegmentBounds};
use ferry_common::schema::TableSchema;
use ferry_common::value::{format_duration, Value};
use ferry_common::work::{FailureType, ValidationFailure, WorkResult};
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

/// Parts a differing range is cut into at each level of the drill-down.
const FANOUT: u64 = 16;
/// Failures a segment records in the target's table (all are counted).
const MAX_RECORDED: usize = 10_000;
/// Failures a segment reports to the coordinator for `ferry validate`.
const MAX_REPORTED: usize = 10;
/// During CDC: rounds of waiting for the stream and comparing again, and
/// how long one wait may take.
const SETTLE_ROUNDS: usize = 3;
const SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// The work of one ValidateSegment assignment.
pub struct Job<'a> {
    pub task: &'a str,
    /// Where the target keeps the task's control tables.
    pub control: &'a ferry_common::control::ControlTables,
    pub source: &'a Endpoint,
    pub target: &'a Endpoint,
    pub table: &'a TableSchema,
    pub segment: u32,
    pub bounds: &'a SegmentBounds,
    pub partition_size: u64,
    /// The task runs CDC: differences are checked again once the stream
    /// has applied what the source had committed (see [`settle`]).
    pub settle: Option<&'a Reporter>,
}

/// What is next for a range in the drill-down.
#[derive(Clone, Copy)]
enum Step {
    /// Compare both sides' checksums (same-engine pairs).
    Check,
    /// Cut into parts of about this many source rows.
    Split(u64),
    /// Compare row by row.
    Compare,
}

#[derive(Default)]
struct Outcome {
    rows: u64,
    failures: Vec<ValidationFailure>,
    failure_count: u64,
    /// The source row (its signature) of each differing key; absent for
    /// rows the source does not hold.
    sources: HashMap<String, u64>,
}

impl Outcome {
    fn merge(&mut self, part: Outcome) {
        self.rows += part.rows;
        let unrecorded = part.failure_count - part.failures.len() as u64;
        for f in part.failures {
            self.fail(f);
        }
        self.failure_count += unrecorded;
    }

    fn fail(&mut self, failure: ValidationFailure) {
        self.failure_count += 1;
        if self.failures.len() < MAX_RECORDED {
            self.failures.push(failure);
        }
    }
}

pub async fn validate_segment(job: Job<'_>) -> Result<WorkResult, ConnectorError> {
    let name = job.table.display_name();
    // Tests: a validation that waits for the stream from its start, so the
    // stream's worker can be killed while it waits.
    if let Some(reporter) = job.settle.filter(|_| crate::failpoint::is_armed("validate-settle")) {
        crate::failpoint::pause("validate-settle").await;
        reporter.wait_applied(job.task, SETTLE_TIMEOUT).await?;
    }
    let Some(pk) = &job.table.primary_key else {
        return Err(ConnectorError::Definite(format!(
            "table {name}: validation needs a primary key"
        )));
    };
    let converted = on_target(job.table, job.target.engine)?;
    // Each side read by its own names (the rules may rename or remove columns).
    // Before-image columns hold what the source no longer has: not compared.
    let before: Vec<&str> = job
        .table
        .before_image_columns()
        .iter()
        .map(|b| b.name.as_str())
        .collect();
    let columns = Columns {
        target: converted
            .copy_columns()
            .filter(|c| !before.contains(&c.name.as_str()))
            .map(|c| c.name.clone())
            .collect(),
        // Added columns (last on the target) are computed from the source's.
        source: converted
            .copy_columns()
            .filter(|c| !job.table.is_computed(&c.name))
            .map(|c| job.table.source_column(&c.name).to_string())
            .collect(),
    };
    let source = Side {
        ep: job.source,
        table: job.table.clone(),
    };
    let target = Side {
        ep: job.target,
        table: converted,
    };
    let same_engine = job.source.engine == job.target.engine;
    let key_cols = key_columns(job.table, &pk.columns);
    let key_idx: Vec<usize> = pk
        .columns
        .iter()
        .map(|k| columns.source.iter().position(|c| c == k))
        .collect::<Option<_>>()
        .ok_or_else(|| ConnectorError::Definite(format!("table {name}: a key column is not copied")))?;
    let whole = match job.bounds {
        SegmentBounds::All => SegmentBounds::Key {
            columns: key_cols.clone(),
            lower: None,
            upper: None,
        },
        b @ SegmentBounds::Key { .. } => b.clone(),
        SegmentBounds::Ctid { .. } => {
            return Err(ConnectorError::Definite(format!(
                "table {name}: validation ranges are key ranges"
            )))
        }
    };
    let on_target_bounds = |b: &SegmentBounds| bounds_on_target(job.table, b, job.target.engine);

    let mut out = Outcome::default();
    // Ranges still to look at, depth first, in key order.
    // Checksums compare values as stored: a table whose LOB values may be
    // cut, or that has added columns, is compared row by row, through the
    // same cut and computation.
    let checksums = same_engine && !job.table.transforms_values();
    let mut pending = vec![(
        whole,
        if checksums {
            Step::Check
        } else {
            Step::Split(job.partition_size)
        },
    )];
    while let Some((range, step)) = pending.pop() {
        let t_range = on_target_bounds(&range)?;
        match step {
            Step::Check => {
                let (s, t) = tokio::try_join!(
                    source.checksum(&columns.source, &range),
                    target.checksum(&columns.target, &t_range)
                )?;
                if s == t {
                    out.rows += s.rows;
                } else if s.rows <= job.partition_size {
                    pending.push((range, Step::Compare));
                } else {
                    pending.push((range, Step::Split(s.rows.div_ceil(FANOUT))));
                }
            }
            Step::Split(every) => {
                let points = validation::split_points(&source, &range, every).await?;
                if points.is_empty() {
                    pending.push((range, Step::Compare));
                    continue;
                }
                let next = if checksums { Step::Check } else { Step::Compare };
                pending.extend(split(&range, points).into_iter().rev().map(|part| (part, next)));
            }
            Step::Compare => {
                let mut part = Outcome::default();
                compare_rows(&source, &target, &columns, &key_idx, &range, &t_range, &mut part).await?;
                // During CDC a row may differ only because its latest change
                // is not applied yet (see the module doc): wait for the
                // stream, compare again, keep what stayed the same.
                if let Some(reporter) = job.settle {
                    for _ in 0..SETTLE_ROUNDS {
                        if part.failure_count == 0 {
                            break;
                        }
                        reporter.wait_applied(job.task, SETTLE_TIMEOUT).await?;
                        let mut again = Outcome::default();
                        compare_rows(&source, &target, &columns, &key_idx, &range, &t_range, &mut again).await?;
                        let seen: HashSet<(&str, FailureType)> =
                            part.failures.iter().map(|f| (f.key.as_str(), f.failure_type)).collect();
                        again
                            .failures
                            .retain(|f| still_differs(&seen, &part.sources, &again.sources, f));
                        again.failure_count = again.failures.len() as u64;
                        part = again;
                    }
                }
                out.merge(part);
            }
        }
    }
    tracing::info!(table = %name, segment = job.segment, rows = out.rows, failures = out.failure_count, "segment validated");
    validation::record_failures(job.target, job.task, job.control, job.table, job.segment, &out.failures).await?;
    Ok(WorkResult::Validated {
        rows: out.rows,
        failures: out.failure_count,
        sample: out.failures.into_iter().take(MAX_REPORTED).collect(),
    })
}

/// The columns compared, by each side's names, in the same order.
struct Columns {
    source: Vec<String>,
    target: Vec<String>,
}

/// The table's primary key as range columns.
fn key_columns(t: &TableSchema, key: &[String]) -> Vec<KeyColumn> {
    key.iter()
        .map(|k| KeyColumn {
            name: k.clone(),
            type_sql: t.column(k).map(|c| c.type_sql.clone()).unwrap_or_default(),
            nullable: false,
        })
        .collect()
}

/// Cuts a key range at ascending split points into consecutive ranges.
fn split(range: &SegmentBounds, points: Vec<Vec<String>>) -> Vec<SegmentBounds> {
    let SegmentBounds::Key { columns, lower, upper } = range else {
        return vec![range.clone()];
    };
    let mut bounds: Vec<Option<Vec<String>>> = vec![lower.clone()];
    bounds.extend(points.into_iter().map(Some));
    bounds.push(upper.clone());
    bounds
        .windows(2)
        .map(|w| SegmentBounds::Key {
            columns: columns.clone(),
            lower: w[0].clone(),
            upper: w[1].clone(),
        })
        .collect()
}

/// A source row as the comparison keeps it.
struct Kept {
    key: String,
    columns: Vec<u64>,
}

async fn compare_rows(
    source: &Side<'_>,
    target: &Side<'_>,
    columns: &Columns,
    key_idx: &[usize],
    s_range: &SegmentBounds,
    t_range: &SegmentBounds,
    out: &mut Outcome,
) -> Result<(), ConnectorError> {
    let added = source.table.added_columns();
    let pairs: Vec<(String, String)> = columns
        .source
        .iter()
        .cloned()
        .zip(columns.target.iter().cloned())
        .chain(added.iter().map(|a| (a.name.clone(), a.name.clone())))
        .collect();
    // Added and retyped columns decode on the target as the type their rule
    // gives them; the source's as their own.
    let mut shaped = source.table.clone();
    for c in shaped.columns.iter_mut() {
        if let Some(dt) = source.table.retyped(&c.name) {
            c.type_sql = dt.type_sql(source.table.engine);
        }
    }
    for a in added {
        let ty = a.data_type.type_sql(shaped.engine);
        shaped.columns.push(ferry_common::schema::Column::plain(&a.name, &ty));
    }
    let (s_types, _) = Decoder::for_columns(&source.table, &target.table, &pairs);
    let (_, t_types) = Decoder::for_columns(&shaped, &target.table, &pairs);
    let retyped: Vec<Option<DataType>> = columns
        .source
        .iter()
        .map(|c| source.table.retyped(c).copied())
        .collect();
    // CHAR(n) compares without its trailing blanks: PostgreSQL prints them,
    // MySQL strips them, and both compare as if they were not there.
    let padded: Vec<bool> = pairs
        .iter()
        .map(|(c, _)| source.table.column(c).is_some_and(|c| blank_padded(&c.type_sql)))
        .collect();
    // The source's values as the target should hold them: LOB values cut
    // to the task's limit, as the load and CDC cut them.
    let lob = RowCut::new(source.table.lob.as_ref(), columns.source.iter().map(String::as_str));
    // Added columns are computed from the values in the form the load and
    // the stream carried them in.
    let own_text = source.ep.engine == target.ep.engine && source.carries_own_text();
    // `from_source`: the row computes the added columns and its LOB values
    // are cut to the limit (the target's hold the results).
    let canon = |side: &Side<'_>, types: &[Decoder], raw: Vec<Option<Vec<u8>>>, from_source: bool| {
        let shaping = Shaping {
            cut: lob.as_ref(),
            retyped: &retyped,
            own_text,
        };
        let shaping = from_source.then_some(&shaping);
        let cut = lob.as_ref().filter(|_| from_source);
        let mut texts: Vec<String> = raw
            .iter()
            .zip(types)
            .zip(&padded)
            .enumerate()
            .map(|(i, ((v, ty), pad))| {
                let text = canonical_field(side, ty, v.as_deref(), i, shaping);
                if *pad {
                    text.trim_end_matches(' ').to_string()
                } else {
                    text
                }
            })
            .collect();
        // The source's row computes the added columns, from its values
        // before any LOB cut (as the load computes them).
        if from_source {
            let values: Vec<Option<Value<'static>>> = raw
                .iter()
                .zip(types)
                .enumerate()
                .map(|(i, (v, ty))| {
                    let mut v = match v.as_deref() {
                        None => Value::Null,
                        Some(b) if own_text => Value::Text(String::from_utf8_lossy(b).into_owned().into()),
                        Some(b) => side.decode(ty, b).ok()?,
                    };
                    // Computed from the cut values, as the load and CDC do.
                    if let Some(c) = cut {
                        c.value(i, &mut v);
                    }
                    Some(v)
                })
                .collect();
            for a in added {
                let get = |name: &str| {
                    let i = columns.source.iter().position(|c| c == name)?;
                    values[i].as_ref()
                };
                texts.push(match a.expression.eval(&a.data_type, get) {
                    Ok(Some(v)) => canonical(&v),
                    Ok(None) => "\u{0}unreadable".into(),
                    Err(e) => format!("\u{0}error:{e}"),
                });
            }
        }
        let key = key_idx
            .iter()
            .map(|i| texts[*i].as_str())
            .collect::<Vec<_>>()
            .join("\u{1f}");
        let display = key_idx
            .iter()
            .map(|i| {
                raw[*i]
                    .as_deref()
                    .map_or("NULL".into(), |b| String::from_utf8_lossy(b).into_owned())
            })
            .collect::<Vec<_>>()
            .join(",");
        let hashes: Vec<u64> = texts.iter().map(|t| hash(t)).collect();
        (key, display, hashes)
    };
    let mut kept: HashMap<String, Kept> = HashMap::new();
    let mut source_rows = 0u64;
    source
        .rows(&columns.source, s_range, &mut |raw| {
            let (key, display, hashes) = canon(source, &s_types, raw, true);
            source_rows += 1;
            kept.insert(
                key,
                Kept {
                    key: display,
                    columns: hashes,
                },
            );
        })
        .await?;
    target
        .rows(&columns.target, t_range, &mut |raw| {
            let (key, display, hashes) = canon(target, &t_types, raw, false);
            match kept.remove(&key) {
                Some(s) => {
                    let differ: Vec<&str> = columns
                        .target
                        .iter()
                        .zip(s.columns.iter().zip(&hashes))
                        .filter(|(_, (a, b))| a != b)
                        .map(|(c, _)| c.as_str())
                        .collect();
                    if !differ.is_empty() {
                        out.sources.insert(s.key.clone(), signature(&s.columns));
                        out.fail(ValidationFailure {
                            key: s.key,
                            failure_type: FailureType::RecordDiff,
                            details: format!("columns differ: {}", differ.join(", ")),
                        });
                    }
                }
                None => out.fail(ValidationFailure {
                    key: display,
                    failure_type: FailureType::MissingSource,
                    details: "row on the target only".into(),
                }),
            }
        })
        .await?;
    let mut missing: Vec<Kept> = kept.into_values().collect();
    missing.sort_by(|a, b| a.key.cmp(&b.key));
    for k in missing {
        out.sources.insert(k.key.clone(), signature(&k.columns));
        out.fail(ValidationFailure {
            key: k.key,
            failure_type: FailureType::MissingTarget,
            details: "row on the source only".into(),
        });
    }
    out.rows += source_rows;
    Ok(())
}

/// Whether a difference found again after the stream caught up is real:
/// the earlier round saw the same kind of difference for the key, and the
/// source row did not change in between. A source row that changed is still
/// being written; its differences are its latest changes in flight, which
/// the stream carries, so it is not reported.
fn still_differs(
    seen: &HashSet<(&str, FailureType)>,
    sources_before: &HashMap<String, u64>,
    sources_now: &HashMap<String, u64>,
    f: &ValidationFailure,
) -> bool {
    seen.contains(&(f.key.as_str(), f.failure_type)) && sources_before.get(&f.key) == sources_now.get(&f.key)
}

/// A blank-padded character type (`character(n)`, `char(n)`, `bpchar`).
fn blank_padded(type_sql: &str) -> bool {
    let t = type_sql.to_ascii_lowercase();
    t == "character" || t == "char" || t == "bpchar" || t.starts_with("character(") || t.starts_with("char(")
}

/// One number for a source row's column hashes.
fn signature(columns: &[u64]) -> u64 {
    columns
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, c| (h ^ c).wrapping_mul(0x100_0000_01b3))
}

fn hash(s: &str) -> u64 {
    // SipHash with fixed keys: the same in both reads of one process.
    let mut h = std::hash::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// A field's canonical text: its value-model value rendered canonically, or
/// its raw text when the engine's decoder cannot read it.
/// What the load and the stream do to a source value before the target
/// holds it: the LOB cut, then a `change-data-type` conversion (of the
/// value in the form they carried it in).
struct Shaping<'a> {
    cut: Option<&'a RowCut>,
    retyped: &'a [Option<DataType>],
    own_text: bool,
}

/// Column `i`'s canonical text (shaped as the target should hold it, for
/// the source's side).
fn canonical_field(side: &Side<'_>, how: &Decoder, raw: Option<&[u8]>, i: usize, shaping: Option<&Shaping>) -> String {
    let Some(raw) = raw else { return "\u{0}NULL".into() };
    let retype = shaping.and_then(|s| s.retyped.get(i)?.as_ref());
    let decoded = match shaping {
        Some(s) if s.own_text && retype.is_some() => Ok(Value::Text(String::from_utf8_lossy(raw).into_owned().into())),
        _ => side.decode(how, raw),
    };
    match decoded {
        Ok(mut v) => {
            if let Some(c) = shaping.and_then(|s| s.cut) {
                c.value(i, &mut v);
            }
            if let Some(dt) = retype {
                match dt.convert(&v) {
                    Ok(x) => v = x,
                    Err(e) => return format!("\u{0}error:{e}"),
                }
            }
            canonical(&v)
        }
        Err(_) => format!("\u{0}raw:{}", String::from_utf8_lossy(raw)),
    }
}

/// One text per value whatever engine it was read from: the forms the type
/// mapping treats as the same value render the same.
pub fn canonical(v: &Value<'_>) -> String {
    match v {
        Value::Null => "\u{0}NULL".into(),
        Value::Bool(b) => (if *b { "1" } else { "0" }).into(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Decimal(d) => decimal(d),
        // A FLOAT's exact binary value, as MySQL's CAST(f AS DOUBLE) gives it.
        Value::Float(f) => format!("{:?}", *f as f64),
        Value::Double(d) => format!("{d:?}"),
        Value::Text(s) => format!("t:{s}"),
        Value::Bytes(b) => format!("x:{}", hex(b)),
        Value::Bit { len, bytes } => format!("b{len}:{}", hex(bytes)),
        Value::Date(d) => d.to_string(),
        Value::DateTime(d, t) | Value::Timestamp(d, t) => format!("{d} {t}"),
        Value::Duration(us) => format_duration(*us),
        Value::Json(j) => match serde_json::from_str::<serde_json::Value>(j) {
            Ok(parsed) => format!("j:{parsed}"),
            Err(_) => format!("j:{j}"),
        },
    }
}

/// `-001.500` → `-1.5`, `0.0` → `0`: numerically equal decimals render alike.
fn decimal(d: &str) -> String {
    let (neg, body) = match d.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, d.strip_prefix('+').unwrap_or(d)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let mut s = String::new();
    if neg && (int != "0" || !frac.is_empty()) {
        s.push('-');
    }
    s.push_str(int);
    if !frac.is_empty() {
        s.push('.');
        s.push_str(frac);
    }
    s
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn canonical_forms_agree_across_engines() {
        assert_eq!(decimal("-001.500"), "-1.5");
        assert_eq!(decimal("0.000"), "0");
        assert_eq!(decimal("-0"), "0");
        assert_eq!(
            canonical(&Value::UInt(18446744073709551615)),
            canonical(&Value::Decimal(Cow::Borrowed("18446744073709551615")))
        );
        assert_eq!(
            canonical(&Value::Int(5)),
            canonical(&Value::Decimal(Cow::Borrowed("5.00")))
        );
        assert_eq!(
            canonical(&Value::Float(1.1)),
            canonical(&Value::Double(1.100000023841858))
        );
        assert_eq!(
            canonical(&Value::Json(Cow::Borrowed(r#"{"b": 1, "a": [1, 2]}"#))),
            canonical(&Value::Json(Cow::Borrowed(r#"{"a":[1,2],"b":1}"#)))
        );
        assert_ne!(canonical(&Value::Text(Cow::Borrowed("1"))), canonical(&Value::Int(1)));
        assert_ne!(canonical(&Value::Null), canonical(&Value::Text(Cow::Borrowed(""))));
        assert!(blank_padded("character(5)") && blank_padded("char(3)") && !blank_padded("character varying(5)"));
    }

    #[test]
    fn splits_ranges_at_points() {
        let col = KeyColumn {
            name: "id".into(),
            type_sql: "bigint".into(),
            nullable: false,
        };
        let r = SegmentBounds::Key {
            columns: vec![col],
            lower: Some(vec!["1".into()]),
            upper: None,
        };
        let parts = split(&r, vec![vec!["10".into()], vec!["20".into()]]);
        assert_eq!(parts.len(), 3);
        assert!(
            matches!(&parts[0], SegmentBounds::Key { lower: Some(l), upper: Some(u), .. } if l[0] == "1" && u[0] == "10")
        );
        assert!(matches!(&parts[2], SegmentBounds::Key { lower: Some(l), upper: None, .. } if l[0] == "20"));
    }
}
