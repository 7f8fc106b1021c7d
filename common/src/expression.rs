//! DMS transformation-rule expressions (`add-column`'s `expression`) and
//! `data-type` blocks: the subset Ferry evaluates, the same way in the full
//! load, CDC and validation.
//!
//! An expression is terms joined by `||` (SQLite's concatenation, as DMS's
//! expressions are SQLite): `$column` (a source column, by its source
//! name), `'text'` (`''` is a quote), and numbers. A single term is that
//! value; a concatenation is text, and NULL when any operand is NULL. The
//! result is converted to the rule's `data-type`; a value that does not fit
//! it (text over a string length, a number out of an integer's range) is a
//! row the target cannot store, recorded like any other. Functions,
//! operators other than `||`, `CASE` and DMS's header columns (`$AR_H_*`,
//! `$AR_M_*`) are refused when the mappings are read, naming the rule.

use crate::endpoint::Engine;
use crate::value::{self, Value, ValueError};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Term {
    Column(String),
    Text(String),
    Number(String),
}

/// A parsed expression: its terms, concatenated when more than one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expression {
    pub terms: Vec<Term>,
}

impl Expression {
    /// Parses the supported subset; the error says what is not supported.
    pub fn parse(s: &str) -> Result<Expression, String> {
        let b = s.as_bytes();
        let mut i = 0;
        let mut terms = vec![];
        let skip = |i: &mut usize| {
            while *i < b.len() && b[*i].is_ascii_whitespace() {
                *i += 1;
            }
        };
        loop {
            skip(&mut i);
            let Some(&c) = b.get(i) else {
                return Err("expected a term ($column, 'text' or a number) at the end".into());
            };
            match c {
                b'$' => {
                    let start = i + 1;
                    i = start;
                    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                        i += 1;
                    }
                    let name = &s[start..i];
                    if name.is_empty() {
                        return Err(format!("a column name must follow '$' at offset {start}"));
                    }
                    if name.starts_with("AR_H_") || name.starts_with("AR_M_") {
                        return Err(format!("header column ${name} is not supported"));
                    }
                    terms.push(Term::Column(name.to_string()));
                }
                b'\'' => {
                    let mut text = String::new();
                    i += 1;
                    loop {
                        match s[i..].find('\'') {
                            None => return Err("a text literal is not closed".into()),
                            Some(end) => {
                                text.push_str(&s[i..i + end]);
                                i += end + 1;
                                if b.get(i) == Some(&b'\'') {
                                    text.push('\'');
                                    i += 1;
                                } else {
                                    break;
                                }
                            }
                        }
                    }
                    terms.push(Term::Text(text));
                }
                b'0'..=b'9' | b'-' | b'.' => {
                    let start = i;
                    i += 1;
                    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                        i += 1;
                    }
                    let n = &s[start..i];
                    if value::parse_decimal_text(n).is_none() {
                        return Err(format!("'{n}' is not a number"));
                    }
                    terms.push(Term::Number(n.to_string()));
                }
                _ => {
                    return Err(format!(
                        "unsupported at offset {i} ('{}'): Ferry evaluates $column, 'text', numbers and ||",
                        &s[i..].chars().take(12).collect::<String>()
                    ))
                }
            }
            skip(&mut i);
            if i == b.len() {
                return Ok(Expression { terms });
            }
            if s[i..].starts_with("||") {
                i += 2;
            } else {
                return Err(format!(
                    "unsupported at offset {i} ('{}'): only || joins terms",
                    &s[i..].chars().take(12).collect::<String>()
                ));
            }
        }
    }

    /// The source columns the expression reads.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.terms.iter().filter_map(|t| match t {
            Term::Column(c) => Some(c.as_str()),
            _ => None,
        })
    }

    /// Evaluates over a row whose column `name` is `get(name)`: `None`
    /// when a column it reads was not sent (a change that left it out; the
    /// value then did not change either).
    pub fn eval<'v>(
        &self,
        ty: &DataType,
        get: impl Fn(&str) -> Option<&'v Value<'v>>,
    ) -> Result<Option<Value<'static>>, ValueError> {
        let mut text = String::new();
        let single = self.terms.len() == 1;
        for t in &self.terms {
            match t {
                Term::Text(s) | Term::Number(s) => text.push_str(s),
                Term::Column(c) => match get(c) {
                    None => return Ok(None),
                    Some(Value::Null) => return Ok(Some(Value::Null)),
                    Some(v) if single => return ty.convert(v).map(Some),
                    Some(v) => text.push_str(&value::plain_text(v)),
                },
            }
        }
        ty.convert(&Value::Text(Cow::Borrowed(&text))).map(Some)
    }
}

fn utc(text: &str) -> &str {
    let t = text.trim();
    t.strip_suffix("+00").unwrap_or(t)
}

/// A DMS `data-type` block: the type of an added column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    /// `string`, with `length` in characters when given.
    String(Option<u32>),
    Int1,
    Int2,
    Int4,
    Int8,
    /// `numeric` with `precision` and `scale`.
    Numeric(u32, u32),
    Real4,
    Real8,
    Boolean,
    Date,
    DateTime,
}

impl DataType {
    /// Parses `{"type": ..., "length": ..., "precision": ..., "scale": ...}`.
    pub fn parse(v: &serde_json::Value) -> Result<DataType, String> {
        let num = |key: &str| -> Result<Option<u32>, String> {
            match v.get(key) {
                None => Ok(None),
                Some(n) => n
                    .as_u64()
                    .or_else(|| n.as_str().and_then(|s| s.trim().parse().ok()))
                    .and_then(|n| u32::try_from(n).ok())
                    .map(Some)
                    .ok_or_else(|| format!("{key}: expected a number, got {n}")),
            }
        };
        let ty = v
            .get("type")
            .and_then(serde_json::Value::as_str)
            .ok_or("missing type")?;
        Ok(match ty {
            "string" | "wstring" => {
                let len = num("length")?;
                if len == Some(0) || len.is_some_and(|l| l > 10_485_760) {
                    return Err("length: expected 1..10485760".into());
                }
                DataType::String(len)
            }
            "int1" => DataType::Int1,
            "int2" => DataType::Int2,
            "int4" => DataType::Int4,
            "int8" => DataType::Int8,
            "numeric" => {
                let p = num("precision")?.unwrap_or(38);
                let s = num("scale")?.unwrap_or(0);
                if !(1..=65).contains(&p) || s > p {
                    return Err(format!("numeric({p},{s}): precision 1..65, scale at most the precision"));
                }
                DataType::Numeric(p, s)
            }
            "real4" => DataType::Real4,
            "real8" => DataType::Real8,
            "boolean" => DataType::Boolean,
            "date" => DataType::Date,
            "datetime" => DataType::DateTime,
            other => {
                return Err(format!(
                    "data type '{other}' is not supported (string, wstring, int1, int2, int4, int8, numeric, real4, real8, boolean, date, datetime)"
                ))
            }
        })
    }

    /// The column type in `engine`'s dialect.
    pub fn type_sql(&self, engine: Engine) -> String {
        let pg = engine == Engine::Postgres;
        match *self {
            DataType::String(Some(n)) if pg => format!("character varying({n})"),
            DataType::String(Some(n)) if n <= 16_383 => format!("varchar({n})"),
            DataType::String(_) if pg => "text".into(),
            DataType::String(_) => "longtext".into(),
            DataType::Int1 | DataType::Int2 if pg => "smallint".into(),
            DataType::Int1 => "tinyint".into(),
            DataType::Int2 => "smallint".into(),
            DataType::Int4 if pg => "integer".into(),
            DataType::Int4 => "int".into(),
            DataType::Int8 => "bigint".into(),
            DataType::Numeric(p, s) if pg => format!("numeric({p},{s})"),
            DataType::Numeric(p, s) => format!("decimal({p},{s})"),
            DataType::Real4 if pg => "real".into(),
            DataType::Real4 => "float".into(),
            DataType::Real8 if pg => "double precision".into(),
            DataType::Real8 => "double".into(),
            DataType::Boolean if pg => "boolean".into(),
            DataType::Boolean => "tinyint(1)".into(),
            DataType::Date => "date".into(),
            DataType::DateTime if pg => "timestamp(6) without time zone".into(),
            DataType::DateTime => "datetime(6)".into(),
        }
    }

    /// A value as this type holds it, or why it cannot.
    pub fn convert(&self, v: &Value<'_>) -> Result<Value<'static>, ValueError> {
        if *v == Value::Null {
            return Ok(Value::Null);
        }
        let text = value::plain_text(v);
        let bad = |what: &str| ValueError(format!("'{text}' is not {what}"));
        let int = |min: i64, max: i64, what: &str| -> Result<Value<'static>, ValueError> {
            let n: i64 = match v {
                Value::Int(i) => *i,
                Value::Bool(b) => *b as i64,
                _ => text.trim().parse().map_err(|_| bad(what))?,
            };
            if !(min..=max).contains(&n) {
                return Err(bad(what));
            }
            Ok(Value::Int(n))
        };
        Ok(match *self {
            DataType::String(len) => {
                if let Some(n) = len.filter(|n| text.chars().count() > *n as usize) {
                    return Err(ValueError(format!(
                        "'{}…' is longer than string({n})",
                        text.chars().take(20).collect::<String>()
                    )));
                }
                Value::Text(Cow::Owned(text))
            }
            DataType::Int1 => int(i8::MIN as i64, i8::MAX as i64, "an int1")?,
            DataType::Int2 => int(i16::MIN as i64, i16::MAX as i64, "an int2")?,
            DataType::Int4 => int(i32::MIN as i64, i32::MAX as i64, "an int4")?,
            DataType::Int8 => int(i64::MIN, i64::MAX, "an int8")?,
            DataType::Numeric(p, s) => {
                let d = value::parse_decimal_text(text.trim()).ok_or_else(|| bad("a number"))?;
                let (whole, frac) = d.split_once('.').unwrap_or((d.as_str(), ""));
                let digits = whole.trim_start_matches('-').trim_start_matches('0').len();
                if digits > (p - s) as usize || frac.len() > s as usize {
                    return Err(ValueError(format!("'{text}' does not fit numeric({p},{s})")));
                }
                Value::Decimal(Cow::Owned(d))
            }
            DataType::Real4 => Value::Float(text.trim().parse().map_err(|_| bad("a real4"))?),
            DataType::Real8 => Value::Double(text.trim().parse().map_err(|_| bad("a real8"))?),
            DataType::Boolean => Value::Bool(match text.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "t" => true,
                "0" | "false" | "f" => false,
                _ => return Err(bad("a boolean")),
            }),
            // A UTC point in time (PostgreSQL's text of timestamptz in the
            // session's UTC) is its civil time.
            DataType::Date => Value::Date(value::parse_date(utc(&text))?.ok_or_else(|| bad("a date"))?),
            DataType::DateTime => {
                let (d, t) = value::parse_datetime(utc(&text))?.ok_or_else(|| bad("a datetime"))?;
                Value::DateTime(d, t)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Value<'static> {
        Value::Text(Cow::Owned(s.to_string()))
    }

    #[test]
    fn concatenates_columns_and_literals_like_sqlite() {
        let e = Expression::parse("$FIRST_NAME||'_'|| $LAST_NAME || 'it''s' || 42").unwrap();
        assert_eq!(e.columns().collect::<Vec<_>>(), ["FIRST_NAME", "LAST_NAME"]);
        let (first, last, null) = (text("Ada"), text("Lovelace"), Value::Null);
        let row = |n: &str| match n {
            "FIRST_NAME" => Some(&first),
            "LAST_NAME" => Some(&last),
            _ => None,
        };
        let ty = DataType::String(Some(50));
        assert_eq!(e.eval(&ty, row).unwrap(), Some(text("Ada_Lovelaceit's42")));
        let with_null = |n: &str| if n == "LAST_NAME" { Some(&null) } else { row(n) };
        assert_eq!(e.eval(&ty, with_null).unwrap(), Some(Value::Null));
        // A column the change left out: not computed, not written.
        assert_eq!(
            e.eval(&ty, |n| if n == "LAST_NAME" { None } else { row(n) }).unwrap(),
            None
        );
        let short = DataType::String(Some(5));
        assert!(e.eval(&short, row).unwrap_err().0.contains("longer than string(5)"));
    }

    #[test]
    fn converts_to_the_data_type() {
        let one = Expression::parse("$n").unwrap();
        let n = Value::Int(300);
        assert_eq!(one.eval(&DataType::Int2, |_| Some(&n)).unwrap(), Some(Value::Int(300)));
        assert!(one.eval(&DataType::Int1, |_| Some(&n)).is_err());
        let amount = Expression::parse("$a || '.5'").unwrap();
        let a = Value::Int(12);
        assert_eq!(
            amount.eval(&DataType::Numeric(5, 2), |_| Some(&a)).unwrap(),
            Some(Value::Decimal("12.5".into()))
        );
        let constant = Expression::parse("7").unwrap();
        assert_eq!(constant.eval(&DataType::Int8, |_| None).unwrap(), Some(Value::Int(7)));
        assert_eq!(
            DataType::String(Some(50)).type_sql(Engine::Postgres),
            "character varying(50)"
        );
        assert_eq!(DataType::Int4.type_sql(Engine::Mysql), "int");
    }

    #[test]
    fn refuses_what_it_does_not_evaluate() {
        for (e, why) in [
            ("upper($a)", "unsupported"),
            ("$a + 1", "only ||"),
            ("$AR_H_OPERATION", "header column"),
            ("'open", "not closed"),
            ("$a ||", "at the end"),
            ("CASE WHEN $a THEN 1 END", "unsupported"),
        ] {
            let err = Expression::parse(e).unwrap_err();
            assert!(err.contains(why), "{e}: {err}");
        }
        let dt = |j: &str| DataType::parse(&serde_json::from_str(j).unwrap());
        assert_eq!(
            dt(r#"{"type":"string","length":"50"}"#).unwrap(),
            DataType::String(Some(50))
        );
        assert_eq!(
            dt(r#"{"type":"numeric","precision":10,"scale":2}"#).unwrap(),
            DataType::Numeric(10, 2)
        );
        assert!(dt(r#"{"type":"clob"}"#).unwrap_err().contains("not supported"));
    }
}
