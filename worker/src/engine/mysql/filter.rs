//! Source filters in MySQL's SQL (see `ferry_common::filter` for why the
//! query and the change stream agree): text compared as the binary UTF-8 of
//! its value (code point order, no collation, no PAD SPACE), written as a
//! hex literal so no escaping mode can change it; floats against the
//! filter value as an exact double.

use super::quote;
use super::read::predicate;
use crate::engine::{filtered, ConnectorError};
use ferry_common::filter::{Domain, FilterDialect, Literal};
use ferry_common::plan::SegmentBounds;
use ferry_common::schema::TableSchema;

pub(crate) struct MyFilter;

impl FilterDialect for MyFilter {
    fn column(&self, name: &str, domain: Domain) -> String {
        let q = quote(name);
        match domain {
            Domain::Text { .. } => format!("CAST(CONVERT({q} USING utf8mb4) AS BINARY)"),
            _ => q,
        }
    }

    fn literal(&self, v: &Literal) -> String {
        match v {
            Literal::Int(i) => i.to_string(),
            Literal::Decimal(d) => d.clone(),
            Literal::Double(f) => format!("{f:e}"),
            Literal::Text(s) if s.is_empty() => "X''".into(),
            Literal::Text(s) => format!("X'{}'", s.bytes().map(|b| format!("{b:02x}")).collect::<String>()),
            Literal::Date((y, m, d)) => format!("CAST('{y:04}-{m:02}-{d:02}' AS DATE)"),
            Literal::DateTime((y, m, d), (h, mi, s, us)) => {
                format!("CAST('{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}' AS DATETIME(6))")
            }
            Literal::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        }
    }
}

/// The rows of `t`'s segment `bounds` that its source filter passes.
pub(crate) fn rows_where(t: &TableSchema, bounds: &SegmentBounds) -> Result<String, ConnectorError> {
    filtered(t, predicate(bounds)?, &MyFilter)
}
