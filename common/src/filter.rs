//! Source filters: DMS's `filters` (`filter-type: source`) on a selection
//! rule, the part of a table a task moves.
//!
//! A filter is kept in two forms that must agree row for row: the full
//! load and validation push it into the source query (each engine renders
//! it through a [`FilterDialect`]), and the change stream evaluates it on
//! each row image ([`BoundFilter::test`]). Agreement is by construction:
//!
//! - Each column gets a comparison *domain* from its type (integers,
//!   decimals, floats, text, dates, date-times, booleans); a filter value is
//!   parsed into that domain once, when the filter is bound to the table,
//!   and a value that does not parse is refused then, not at row time.
//! - Both sides compare in the domain's own order: integers and decimals
//!   exactly, floats as the column's width promoted to double (so a `real`
//!   column compares with the filter value rounded to `real`), text by
//!   Unicode code point (byte order of UTF-8; the SQL side casts to a binary
//!   form, so neither the source collation nor trailing-space padding rules
//!   apply; fixed-width `char(n)` drops its pad on both sides), dates and
//!   date-times as calendar tuples.
//! - NULL compares as SQL does: every operator but `null` is not true for
//!   it, and conditions are only ever combined with OR (within a column's
//!   filter) and AND (across columns), never negated, so "not true" is
//!   "false" on both sides.
//!
//! Types whose order depends on a session (zoned timestamps), or that have
//! no useful order (JSON, bytes, bits, durations), take only `null` and
//! `notnull`; anything else is refused when the filter is bound.

use crate::endpoint::Engine;
use crate::schema::TableSchema;
use crate::typemap::{self, Kind};
use crate::value::{parse_date, parse_datetime, Value};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// A DMS `filter-operator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operator {
    Eq,
    NotEq,
    /// `ste` / `lte`: at most the value.
    Ste,
    /// `gte`: at least the value.
    Gte,
    Between,
    NotBetween,
    Null,
    NotNull,
}

impl Operator {
    pub fn parse(s: &str) -> Option<Operator> {
        Some(match s {
            "eq" => Operator::Eq,
            "noteq" => Operator::NotEq,
            "ste" | "lte" => Operator::Ste,
            "gte" => Operator::Gte,
            "between" => Operator::Between,
            "notbetween" => Operator::NotBetween,
            "null" => Operator::Null,
            "notnull" => Operator::NotNull,
            _ => return None,
        })
    }

    /// How many values the operator takes: none, one, or a start and an end.
    pub fn arity(self) -> usize {
        match self {
            Operator::Null | Operator::NotNull => 0,
            Operator::Between | Operator::NotBetween => 2,
            _ => 1,
        }
    }
}

/// One `filter-conditions` entry; `values` holds `value`, or `start-value`
/// and `end-value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    pub op: Operator,
    pub values: Vec<String>,
}

/// One `filters` entry: a row passes when any condition holds for `column`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnFilter {
    pub column: String,
    pub conditions: Vec<Condition>,
}

/// A table's source filter: a row passes when every column filter does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowFilter {
    /// The selection rule it came from, for errors.
    pub rule_id: String,
    pub columns: Vec<ColumnFilter>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("table {table}: source filter of rule {rule_id}: {message}")]
pub struct FilterError {
    pub table: String,
    pub rule_id: String,
    pub message: String,
}

/// How a column's values are ordered for a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    Int,
    Decimal,
    /// Single precision: values and filter values are rounded to `f32`.
    Real,
    Double,
    /// Compared by code point; `padded` (fixed-width `char(n)`) drops
    /// trailing spaces first.
    Text {
        padded: bool,
    },
    Date,
    DateTime,
    Bool,
    /// Only `null` / `notnull`.
    Unordered,
}

/// A filter value in its column's domain.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Int(i128),
    /// Canonical decimal text (see [`decimal_cmp`]).
    Decimal(String),
    Double(f64),
    Text(String),
    Date((i32, u8, u8)),
    DateTime((i32, u8, u8), (u8, u8, u8, u32)),
    Bool(bool),
}

impl Literal {
    fn cmp(&self, o: &Literal) -> Option<Ordering> {
        Some(match (self, o) {
            (Literal::Int(a), Literal::Int(b)) => a.cmp(b),
            (Literal::Decimal(a), Literal::Decimal(b)) => decimal_cmp(a, b),
            (Literal::Double(a), Literal::Double(b)) => double_cmp(*a, *b),
            (Literal::Text(a), Literal::Text(b)) => a.as_str().cmp(b.as_str()),
            (Literal::Date(a), Literal::Date(b)) => a.cmp(b),
            (Literal::DateTime(a, x), Literal::DateTime(b, y)) => (a, x).cmp(&(b, y)),
            (Literal::Bool(a), Literal::Bool(b)) => a.cmp(b),
            _ => return None,
        })
    }
}

/// A condition with its values in the column's domain.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundCondition {
    pub op: Operator,
    pub values: Vec<Literal>,
}

/// A column filter bound to a column of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundColumn {
    pub column: String,
    pub domain: Domain,
    pub conditions: Vec<BoundCondition>,
}

/// A [`RowFilter`] checked against a table: columns found, values parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundFilter {
    pub columns: Vec<BoundColumn>,
}

/// How an engine writes a bound filter into its source queries.
pub trait FilterDialect {
    /// The column as compared in `domain` (e.g. cast to a binary string).
    fn column(&self, name: &str, domain: Domain) -> String;
    /// A filter value, of the type `column` produced for its domain.
    fn literal(&self, value: &Literal) -> String;
}

/// The domain values of a column of `type_sql` on `engine` are compared in.
pub fn domain(engine: Engine, type_sql: &str) -> Domain {
    let lower = type_sql.trim().to_ascii_lowercase();
    let padded = match engine {
        Engine::Postgres => lower.starts_with("character(") || lower == "character" || lower.starts_with("bpchar"),
        _ => lower.starts_with("char(") || lower == "char" || lower.starts_with("nchar"),
    };
    // PostgreSQL prints money in the server's locale ("$1,234.50"): its
    // text has no order a change image could be compared in.
    if engine == Engine::Postgres && lower == "money" {
        return Domain::Unordered;
    }
    match typemap::kind(engine, type_sql) {
        Kind::Int | Kind::UInt => Domain::Int,
        Kind::Decimal => Domain::Decimal,
        Kind::Float => Domain::Real,
        Kind::Double => Domain::Double,
        Kind::Text => Domain::Text { padded },
        Kind::Date => Domain::Date,
        Kind::DateTime => Domain::DateTime,
        Kind::Bool => Domain::Bool,
        Kind::Bytes | Kind::Bit(_) | Kind::Timestamp | Kind::Duration | Kind::Json => Domain::Unordered,
    }
}

impl RowFilter {
    /// Checks the filter against `table` (read on `table.engine`): every
    /// column exists and every value parses in its column's domain.
    pub fn bind(&self, table: &TableSchema) -> Result<BoundFilter, FilterError> {
        let err = |message: String| FilterError {
            table: table.display_name(),
            rule_id: self.rule_id.clone(),
            message,
        };
        let mut columns = vec![];
        for f in &self.columns {
            let col = table
                .column(&f.column)
                .ok_or_else(|| err(format!("column {} is not in the table", f.column)))?;
            if col.generated.is_some() {
                return Err(err(format!(
                    "column {} is generated; filter on the columns it is computed from",
                    f.column
                )));
            }
            let domain = domain(table.engine, &col.type_sql);
            let mut conditions = vec![];
            for c in &f.conditions {
                if c.values.len() != c.op.arity() {
                    return Err(err(format!(
                        "column {}: operator {:?} takes {} value(s), got {}",
                        f.column,
                        c.op,
                        c.op.arity(),
                        c.values.len()
                    )));
                }
                let values = c
                    .values
                    .iter()
                    .map(|v| match parse_literal(domain, v)? {
                        Literal::Double(x) if table.engine == Engine::Mysql && !x.is_finite() => {
                            Err(format!("MySQL has no value '{v}'"))
                        }
                        Literal::Decimal(d) if table.engine == Engine::Mysql && d == "NaN" => {
                            Err(format!("MySQL has no value '{v}'"))
                        }
                        lit => Ok(lit),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|m| err(format!("column {} ({}): {m}", f.column, col.type_sql)))?;
                conditions.push(BoundCondition { op: c.op, values });
            }
            columns.push(BoundColumn {
                column: f.column.clone(),
                domain,
                conditions,
            });
        }
        Ok(BoundFilter { columns })
    }
}

fn parse_literal(domain: Domain, v: &str) -> Result<Literal, String> {
    let bad = |what: &str| format!("filter value '{v}' is not {what}");
    Ok(match domain {
        Domain::Int => Literal::Int(v.trim().parse().map_err(|_| bad("an integer"))?),
        Domain::Decimal => Literal::Decimal(canonical_decimal(v.trim()).ok_or_else(|| bad("a decimal number"))?),
        Domain::Real => Literal::Double(v.trim().parse::<f32>().map_err(|_| bad("a number"))? as f64),
        Domain::Double => Literal::Double(v.trim().parse::<f64>().map_err(|_| bad("a number"))?),
        Domain::Text { padded } => Literal::Text(if padded {
            v.trim_end_matches(' ').to_string()
        } else {
            v.to_string()
        }),
        Domain::Date => match parse_date(v.trim()) {
            Ok(Some(d)) => Literal::Date((d.year, d.month, d.day)),
            _ => return Err(bad("a date (YYYY-MM-DD)")),
        },
        // A date alone is its midnight, as SQL reads it.
        Domain::DateTime => match (parse_datetime(v.trim()), parse_date(v.trim())) {
            (Ok(Some((d, t))), _) => {
                Literal::DateTime((d.year, d.month, d.day), (t.hour, t.minute, t.second, t.micros))
            }
            (_, Ok(Some(d))) => Literal::DateTime((d.year, d.month, d.day), (0, 0, 0, 0)),
            _ => return Err(bad("a date and time (YYYY-MM-DD[ HH:MM:SS[.ffffff]])")),
        },
        Domain::Bool => match v.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "1" => Literal::Bool(true),
            "false" | "f" | "0" => Literal::Bool(false),
            _ => return Err(bad("a boolean")),
        },
        Domain::Unordered => {
            return Err("this type can only be filtered with null or notnull".into());
        }
    })
}

/// A non-NULL column value in its (ordered) domain.
fn value_literal(domain: Domain, v: &Value) -> Result<Literal, String> {
    let bad = || format!("value {v:?} does not fit the filter's column type");
    Ok(match (domain, v) {
        (Domain::Int, Value::Int(i)) => Literal::Int(*i as i128),
        (Domain::Int, Value::UInt(u)) => Literal::Int(*u as i128),
        (Domain::Int, Value::Text(s) | Value::Decimal(s)) => Literal::Int(s.parse().map_err(|_| bad())?),
        (Domain::Int, Value::Bool(b)) => Literal::Int(*b as i128),
        (Domain::Decimal, Value::Decimal(s) | Value::Text(s)) => {
            Literal::Decimal(canonical_decimal(s.strip_prefix('$').unwrap_or(s)).ok_or_else(bad)?)
        }
        (Domain::Decimal, Value::Int(i)) => Literal::Decimal(canonical_decimal(&i.to_string()).ok_or_else(bad)?),
        (Domain::Decimal, Value::UInt(u)) => Literal::Decimal(canonical_decimal(&u.to_string()).ok_or_else(bad)?),
        (Domain::Real, Value::Float(f)) => Literal::Double(*f as f64),
        (Domain::Real, Value::Double(d)) => Literal::Double(*d as f32 as f64),
        (Domain::Real, Value::Text(s)) => Literal::Double(s.parse::<f32>().map_err(|_| bad())? as f64),
        (Domain::Double, Value::Double(d)) => Literal::Double(*d),
        (Domain::Double, Value::Float(f)) => Literal::Double(*f as f64),
        (Domain::Double, Value::Text(s)) => Literal::Double(s.parse::<f64>().map_err(|_| bad())?),
        (Domain::Text { padded }, Value::Text(s)) => Literal::Text(if padded {
            s.trim_end_matches(' ').to_string()
        } else {
            s.to_string()
        }),
        (Domain::Date, Value::Date(d)) => Literal::Date((d.year, d.month, d.day)),
        (Domain::Date, Value::Text(s)) => match pg_special_time(s) {
            Some(year) => Literal::Date((year, 1, 1)),
            None => {
                let (s, bc) = bc_year(s);
                match parse_date(s).map_err(|_| bad())? {
                    Some(d) => Literal::Date((bc(d.year), d.month, d.day)),
                    // MySQL's zero date sorts before every date.
                    None => Literal::Date((0, 0, 0)),
                }
            }
        },
        (Domain::DateTime, Value::DateTime(d, t)) => {
            Literal::DateTime((d.year, d.month, d.day), (t.hour, t.minute, t.second, t.micros))
        }
        (Domain::DateTime, Value::Text(s)) => match pg_special_time(s) {
            Some(year) => Literal::DateTime((year, 1, 1), (0, 0, 0, 0)),
            None => {
                let (s, bc) = bc_year(s);
                match parse_datetime(s).map_err(|_| bad())? {
                    Some((d, t)) => {
                        Literal::DateTime((bc(d.year), d.month, d.day), (t.hour, t.minute, t.second, t.micros))
                    }
                    None => Literal::DateTime((0, 0, 0), (0, 0, 0, 0)),
                }
            }
        },
        (Domain::Bool, Value::Bool(b)) => Literal::Bool(*b),
        (Domain::Bool, Value::Text(s)) => match s.as_ref() {
            "t" | "true" => Literal::Bool(true),
            "f" | "false" => Literal::Bool(false),
            _ => return Err(bad()),
        },
        _ => return Err(bad()),
    })
}

/// PostgreSQL's `infinity` / `-infinity` dates and timestamps, as a year
/// beyond every real one.
fn pg_special_time(s: &str) -> Option<i32> {
    match s {
        "infinity" => Some(i32::MAX),
        "-infinity" => Some(i32::MIN),
        _ => None,
    }
}

/// PostgreSQL prints years before 1 AD as `YYYY-MM-DD BC` (year 1 BC is
/// astronomical year 0): the text without the suffix, and the year's
/// mapping to a signed year that orders correctly.
fn bc_year(s: &str) -> (&str, fn(i32) -> i32) {
    match s.strip_suffix(" BC") {
        Some(rest) => (rest, |y| 1 - y),
        None => (s, |y| y),
    }
}

impl BoundColumn {
    /// Whether `v` passes this column's filter (any condition holds). NULL
    /// passes only `null`; an unordered column's value only `notnull`
    /// (nothing else binds to it).
    pub fn test(&self, v: &Value) -> Result<bool, String> {
        let only = |op: Operator| Ok(self.conditions.iter().any(|c| c.op == op));
        if matches!(v, Value::Null) {
            return only(Operator::Null);
        }
        if self.domain == Domain::Unordered {
            return only(Operator::NotNull);
        }
        let lit = value_literal(self.domain, v)?;
        Ok(self.conditions.iter().any(|c| holds(c, &lit)))
    }
}

/// Whether condition `c` holds for a non-NULL value `v`.
fn holds(c: &BoundCondition, v: &Literal) -> bool {
    let cmp = |i: usize| v.cmp(&c.values[i]);
    match c.op {
        Operator::Null => false,
        Operator::NotNull => true,
        Operator::Eq => cmp(0) == Some(Ordering::Equal),
        Operator::NotEq => matches!(cmp(0), Some(Ordering::Less | Ordering::Greater)),
        Operator::Ste => matches!(cmp(0), Some(Ordering::Less | Ordering::Equal)),
        Operator::Gte => matches!(cmp(0), Some(Ordering::Greater | Ordering::Equal)),
        Operator::Between => {
            matches!(cmp(0), Some(Ordering::Greater | Ordering::Equal))
                && matches!(cmp(1), Some(Ordering::Less | Ordering::Equal))
        }
        Operator::NotBetween => matches!(cmp(0), Some(Ordering::Less)) || matches!(cmp(1), Some(Ordering::Greater)),
    }
}

impl BoundFilter {
    /// Whether a row passes, given the value of each filtered column
    /// (`value_of(i)` for `self.columns[i]`); `Ok(None)` when one is absent
    /// (a log that left an unchanged value out).
    pub fn test<'v>(&self, mut value_of: impl FnMut(usize) -> Option<&'v Value<'v>>) -> Result<Option<bool>, String> {
        let mut pass = true;
        for (i, c) in self.columns.iter().enumerate() {
            let Some(v) = value_of(i) else { return Ok(None) };
            pass &= c.test(v).map_err(|e| format!("column {}: {e}", c.column))?;
        }
        Ok(Some(pass))
    }

    /// The filter as a SQL condition in `d`'s dialect.
    pub fn sql(&self, d: &dyn FilterDialect) -> String {
        let mut and = vec![];
        for c in &self.columns {
            let col = d.column(&c.column, c.domain);
            let lit = |l: &Literal| d.literal(l);
            let or: Vec<String> = c
                .conditions
                .iter()
                .map(|k| match k.op {
                    Operator::Null => format!("{col} IS NULL"),
                    Operator::NotNull => format!("{col} IS NOT NULL"),
                    Operator::Eq => format!("{col} = {}", lit(&k.values[0])),
                    Operator::NotEq => format!("{col} <> {}", lit(&k.values[0])),
                    Operator::Ste => format!("{col} <= {}", lit(&k.values[0])),
                    Operator::Gte => format!("{col} >= {}", lit(&k.values[0])),
                    // Written out rather than BETWEEN, so the two sides'
                    // NULL and empty-range behaviour is plainly the same.
                    Operator::Between => format!("({col} >= {} AND {col} <= {})", lit(&k.values[0]), lit(&k.values[1])),
                    Operator::NotBetween => format!("({col} < {} OR {col} > {})", lit(&k.values[0]), lit(&k.values[1])),
                })
                .collect();
            and.push(if or.is_empty() {
                "FALSE".to_string()
            } else {
                format!("({})", or.join(" OR "))
            });
        }
        if and.is_empty() {
            "TRUE".into()
        } else {
            and.join(" AND ")
        }
    }
}

/// Floats ordered as PostgreSQL orders them: NaN equals NaN and sorts above
/// every number.
fn double_cmp(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// `[-]digits[.digits]` with no leading or trailing zeros (`0` for zero),
/// or `NaN`; `None` for anything else.
pub fn canonical_decimal(s: &str) -> Option<String> {
    if s.eq_ignore_ascii_case("nan") {
        return Some("NaN".into());
    }
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    if int.is_empty() && frac.is_empty() {
        return Some("0".into());
    }
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    out.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    Some(out)
}

/// Orders two canonical decimals exactly (NaN above every number, as
/// PostgreSQL's numeric sorts it).
pub fn decimal_cmp(a: &str, b: &str) -> Ordering {
    match (a == "NaN", b == "NaN") {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    let (an, a) = a.strip_prefix('-').map_or((false, a), |r| (true, r));
    let (bn, b) = b.strip_prefix('-').map_or((false, b), |r| (true, r));
    let magnitude = || {
        let (ai, af) = a.split_once('.').unwrap_or((a, ""));
        let (bi, bf) = b.split_once('.').unwrap_or((b, ""));
        ai.len()
            .cmp(&bi.len())
            .then_with(|| ai.cmp(bi))
            .then_with(|| af.cmp(bf))
    };
    match (an, bn) {
        (false, false) => magnitude(),
        (true, true) => magnitude().reverse(),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Column;
    use std::borrow::Cow;

    fn table(engine: Engine, cols: &[(&str, &str)]) -> TableSchema {
        let mut t: TableSchema = serde_json::from_value(serde_json::json!({
            "schema": "s", "name": "t", "columns": [], "primary_key": null, "partition_key": null,
            "partitions": [], "indexes": [], "constraints": [], "sequences": [],
            "rows_estimate": 0, "size_bytes": 0, "pages": 0, "copy_format": "binary"
        }))
        .unwrap();
        t.engine = engine;
        t.columns = cols.iter().map(|(n, ty)| Column::plain(n, ty)).collect();
        t
    }

    fn filter(column: &str, conds: &[(Operator, &[&str])]) -> RowFilter {
        RowFilter {
            rule_id: "1".into(),
            columns: vec![ColumnFilter {
                column: column.into(),
                conditions: conds
                    .iter()
                    .map(|(op, v)| Condition {
                        op: *op,
                        values: v.iter().map(|s| s.to_string()).collect(),
                    })
                    .collect(),
            }],
        }
    }

    fn passes(f: &BoundFilter, v: Value) -> bool {
        f.test(|_| Some(&v)).unwrap().unwrap()
    }

    #[test]
    fn decimals_compare_exactly() {
        assert_eq!(canonical_decimal("007.500").unwrap(), "7.5");
        assert_eq!(canonical_decimal("-0.000").unwrap(), "0");
        assert_eq!(canonical_decimal(".5").unwrap(), "0.5");
        assert!(canonical_decimal("1e5").is_none());
        let c = |a: &str, b: &str| decimal_cmp(&canonical_decimal(a).unwrap(), &canonical_decimal(b).unwrap());
        assert_eq!(c("10", "9.99"), Ordering::Greater);
        assert_eq!(c("-10", "-9.99"), Ordering::Less);
        assert_eq!(c("0.10", "0.1"), Ordering::Equal);
        assert_eq!(
            c("12345678901234567890.000000000000000001", "12345678901234567890"),
            Ordering::Greater
        );
        assert_eq!(c("NaN", "99999"), Ordering::Greater);
    }

    #[test]
    fn operators_and_nulls_follow_sql() {
        let t = table(Engine::Postgres, &[("n", "integer")]);
        let f = filter("n", &[(Operator::Ste, &["10"]), (Operator::Between, &["50", "75"])])
            .bind(&t)
            .unwrap();
        assert!(passes(&f, Value::Int(10)));
        assert!(!passes(&f, Value::Int(11)));
        assert!(passes(&f, Value::Text(Cow::Borrowed("60"))));
        assert!(!passes(&f, Value::Null));
        let ne = filter("n", &[(Operator::NotEq, &["5"])]).bind(&t).unwrap();
        assert!(!passes(&ne, Value::Null), "NULL <> 5 is not true");
        let nb = filter("n", &[(Operator::NotBetween, &["5", "9"])]).bind(&t).unwrap();
        assert!(passes(&nb, Value::Int(4)) && !passes(&nb, Value::Int(5)) && !passes(&nb, Value::Null));
        let null = filter("n", &[(Operator::Null, &[])]).bind(&t).unwrap();
        assert!(passes(&null, Value::Null) && !passes(&null, Value::Int(1)));
        assert_eq!(f.sql(&Plain), r#"("n" <= 10 OR ("n" >= 50 AND "n" <= 75))"#);
    }

    #[test]
    fn text_compares_by_code_point_and_char_drops_its_pad() {
        let t = table(Engine::Mysql, &[("c", "char(5)"), ("v", "varchar(5)")]);
        let fc = filter("c", &[(Operator::Eq, &["ab"])]).bind(&t).unwrap();
        assert!(passes(&fc, Value::Text(Cow::Borrowed("ab   "))));
        let fv = filter("v", &[(Operator::Eq, &["ab"])]).bind(&t).unwrap();
        assert!(!passes(&fv, Value::Text(Cow::Borrowed("ab "))));
        assert!(!passes(&fv, Value::Text(Cow::Borrowed("AB"))));
        let ge = filter("v", &[(Operator::Gte, &["a"])]).bind(&t).unwrap();
        assert!(
            !passes(&ge, Value::Text(Cow::Borrowed("Z"))),
            "code point order, not a collation's"
        );
        assert!(passes(&ge, Value::Text(Cow::Borrowed("é"))));
    }

    #[test]
    fn real_columns_compare_at_their_width() {
        let t = table(Engine::Postgres, &[("r", "real")]);
        let f = filter("r", &[(Operator::Eq, &["1.1"])]).bind(&t).unwrap();
        assert!(passes(&f, Value::Text(Cow::Borrowed("1.1"))));
        assert!(passes(&f, Value::Float(1.1)));
    }

    #[test]
    fn bad_filters_are_refused_when_bound() {
        let t = table(Engine::Postgres, &[("n", "integer"), ("j", "jsonb"), ("d", "date")]);
        let e = filter("x", &[(Operator::Eq, &["1"])]).bind(&t).unwrap_err();
        assert!(e.to_string().contains("column x is not in the table"), "{e}");
        let e = filter("n", &[(Operator::Eq, &["ten"])]).bind(&t).unwrap_err();
        assert!(e.to_string().contains("'ten' is not an integer"), "{e}");
        let e = filter("j", &[(Operator::Eq, &["{}"])]).bind(&t).unwrap_err();
        assert!(e.to_string().contains("only be filtered with null"), "{e}");
        assert!(filter("j", &[(Operator::NotNull, &[])]).bind(&t).is_ok());
        let e = filter("d", &[(Operator::Gte, &["2024-13-01"])]).bind(&t).unwrap_err();
        assert!(e.to_string().contains("rule 1"), "{e}");
        let money = table(Engine::Postgres, &[("m", "money")]);
        assert!(filter("m", &[(Operator::Gte, &["1"])]).bind(&money).is_err());
        let my = table(Engine::Mysql, &[("f", "double")]);
        let e = filter("f", &[(Operator::Gte, &["inf"])]).bind(&my).unwrap_err();
        assert!(e.to_string().contains("MySQL has no value 'inf'"), "{e}");
    }

    struct Plain;
    impl FilterDialect for Plain {
        fn column(&self, name: &str, _: Domain) -> String {
            crate::schema::quote_ident(name)
        }
        fn literal(&self, v: &Literal) -> String {
            match v {
                Literal::Int(i) => i.to_string(),
                other => format!("{other:?}"),
            }
        }
    }
}
