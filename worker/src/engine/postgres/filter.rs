//! Source filters in PostgreSQL's SQL (see `ferry_common::filter` for why
//! the query and the change stream agree): text compared as `text` in the
//! "C" collation (code point order; `char(n)` loses its pad in the cast),
//! numbers as numeric or double precision, dates and timestamps as such.

use super::load::predicate;
use crate::engine::{filtered, ConnectorError};
use ferry_common::filter::{Domain, FilterDialect, Literal};
use ferry_common::plan::SegmentBounds;
use ferry_common::schema::{quote_ident, quote_literal, TableSchema};

pub(crate) struct PgFilter;

impl FilterDialect for PgFilter {
    fn column(&self, name: &str, domain: Domain) -> String {
        let q = quote_ident(name);
        match domain {
            Domain::Text { .. } => format!("{q}::text COLLATE \"C\""),
            Domain::Decimal => format!("{q}::numeric"),
            Domain::Real | Domain::Double => format!("{q}::double precision"),
            _ => q,
        }
    }

    fn literal(&self, v: &Literal) -> String {
        match v {
            Literal::Int(i) => i.to_string(),
            Literal::Decimal(d) => format!("{}::numeric", quote_literal(d)),
            Literal::Double(f) if f.is_nan() => "'NaN'::double precision".into(),
            Literal::Double(f) if f.is_infinite() => {
                format!("'{}Infinity'::double precision", if *f < 0.0 { "-" } else { "" })
            }
            Literal::Double(f) => format!("'{f:e}'::double precision"),
            Literal::Text(s) => format!("{} COLLATE \"C\"", quote_literal(s)),
            Literal::Date((y, m, d)) => format!("'{y:04}-{m:02}-{d:02}'::date"),
            Literal::DateTime((y, m, d), (h, mi, s, us)) => {
                format!("'{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}'::timestamp")
            }
            Literal::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        }
    }
}

/// The rows of `t`'s segment `bounds` that its source filter passes.
pub(crate) fn rows_where(t: &TableSchema, bounds: &SegmentBounds) -> Result<String, ConnectorError> {
    filtered(t, predicate(bounds), &PgFilter)
}
