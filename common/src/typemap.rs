//! The type mapping between engines: one table, one place. Schema
//! conversion uses it to declare target columns, and the data path uses the
//! same [`Kind`] to decode and encode values, so a column is never declared
//! one way and filled another. `docs/type-mapping.md` is this table in prose.

use crate::endpoint::Engine;

/// How a column's values travel in the [`crate::value`] model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int,
    UInt,
    Float,
    Double,
    Decimal,
    Text,
    Bytes,
    /// A bit string of this many bits.
    Bit(u32),
    Date,
    DateTime,
    Timestamp,
    Duration,
    Json,
}

/// A MySQL column type as `information_schema.COLUMNS.COLUMN_TYPE` spells
/// it, e.g. `int(10) unsigned`, `decimal(65,30)`, `enum('a','b')`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlType<'a> {
    pub base: String,
    /// What is between the parentheses, unparsed.
    pub args: Option<&'a str>,
    pub unsigned: bool,
}

impl<'a> MysqlType<'a> {
    pub fn parse(column_type: &'a str) -> MysqlType<'a> {
        let t = column_type.trim();
        let (base, args, rest) = match (t.find('('), t.rfind(')')) {
            (Some(o), Some(c)) if c > o => (&t[..o], Some(&t[o + 1..c]), &t[c + 1..]),
            _ => match t.find(' ') {
                Some(i) => (&t[..i], None, &t[i..]),
                None => (t, None, ""),
            },
        };
        MysqlType {
            base: base.trim().to_ascii_lowercase(),
            args,
            unsigned: rest.to_ascii_lowercase().contains("unsigned"),
        }
    }

    /// The first numeric argument (`varchar(20)` → 20, `bit(8)` → 8).
    fn len(&self) -> Option<u32> {
        self.args?.split(',').next()?.trim().parse().ok()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("type {type_sql} has no {to} equivalent Ferry can keep exactly")]
pub struct Unsupported {
    pub type_sql: String,
    pub to: &'static str,
}

/// How values of a MySQL column travel.
pub fn mysql_kind(column_type: &str) -> Kind {
    let t = MysqlType::parse(column_type);
    match t.base.as_str() {
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "year" => Kind::Int,
        "bigint" if t.unsigned => Kind::UInt,
        "bigint" => Kind::Int,
        "decimal" | "numeric" | "dec" | "fixed" => Kind::Decimal,
        "float" => Kind::Float,
        "double" | "real" | "double precision" => Kind::Double,
        "bit" => Kind::Bit(t.len().unwrap_or(1)),
        "date" => Kind::Date,
        "datetime" => Kind::DateTime,
        "timestamp" => Kind::Timestamp,
        "time" => Kind::Duration,
        "json" => Kind::Json,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "geometry" | "point"
        | "linestring" | "polygon" | "multipoint" | "multilinestring" | "multipolygon" | "geometrycollection" => {
            Kind::Bytes
        }
        _ => Kind::Text,
    }
}

fn fraction_digits(t: &MysqlType) -> String {
    match t.len() {
        Some(n) if n > 0 => format!("({n})"),
        _ => "(0)".into(),
    }
}

/// The PostgreSQL type that holds every value of a MySQL column exactly.
pub fn mysql_to_postgres(column_type: &str) -> Result<String, Unsupported> {
    let t = MysqlType::parse(column_type);
    let pg = match (t.base.as_str(), t.unsigned) {
        ("tinyint", _) => "smallint".into(),
        ("smallint", false) => "smallint".into(),
        ("smallint", true) | ("mediumint", _) => "integer".into(),
        ("int" | "integer", false) => "integer".into(),
        ("int" | "integer", true) => "bigint".into(),
        ("bigint", false) => "bigint".into(),
        // 2^64-1 has 20 digits; bigint stops at 2^63-1.
        ("bigint", true) => "numeric(20,0)".into(),
        ("decimal" | "numeric" | "dec" | "fixed", _) => match t.args {
            Some(a) => format!("numeric({})", a.replace(' ', "")),
            None => "numeric(10,0)".into(),
        },
        ("float", _) => "real".into(),
        ("double" | "real" | "double precision", _) => "double precision".into(),
        ("bit", _) => format!("bit({})", t.len().unwrap_or(1)),
        ("year", _) => "smallint".into(),
        ("date", _) => "date".into(),
        ("datetime", _) => format!("timestamp{} without time zone", fraction_digits(&t)),
        ("timestamp", _) => format!("timestamp{} with time zone", fraction_digits(&t)),
        // TIME is a duration in MySQL (-838:59:59 .. 838:59:59).
        ("time", _) => "interval".into(),
        // CHAR strips trailing spaces on read in MySQL; PostgreSQL's char(n)
        // would pad them back, so varchar keeps the value as MySQL returns it.
        ("char" | "varchar", _) => match t.len() {
            Some(n) => format!("varchar({n})"),
            None => "text".into(),
        },
        ("tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set", _) => "text".into(),
        ("json", _) => "jsonb".into(),
        ("binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob", _) => "bytea".into(),
        // Spatial values as MySQL's internal form (SRID + WKB).
        (
            "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring" | "multipolygon"
            | "geometrycollection",
            _,
        ) => "bytea".into(),
        _ => {
            return Err(Unsupported {
                type_sql: column_type.to_string(),
                to: "PostgreSQL",
            })
        }
    };
    Ok(pg)
}

/// A PostgreSQL type as `format_type` prints it, split into its name, its
/// modifiers and whether it is an array.
struct PgType<'a> {
    base: &'a str,
    args: Option<&'a str>,
    array: bool,
}

impl<'a> PgType<'a> {
    fn parse(t: &'a str) -> PgType<'a> {
        let (t, array) = match t.strip_suffix("[]") {
            Some(b) => (b, true),
            None => (t, false),
        };
        // `timestamp(3) with time zone`: the modifiers sit inside the name.
        let (base, args) = match (t.find('('), t.find(')')) {
            (Some(o), Some(c)) if c > o => (t, Some(&t[o + 1..c])),
            _ => (t, None),
        };
        PgType { base, args, array }
    }

    fn name(&self) -> String {
        match (self.base.find('('), self.base.find(')')) {
            (Some(o), Some(c)) => format!("{}{}", &self.base[..o], &self.base[c + 1..]),
            _ => self.base.to_string(),
        }
    }

    fn len(&self) -> Option<u32> {
        self.args?.split(',').next()?.trim().parse().ok()
    }
}

/// How values of a PostgreSQL column travel (read as text COPY; see the
/// PostgreSQL connector's `read` for the server-side casts of the kinds
/// that say so).
pub fn postgres_kind(type_sql: &str) -> Kind {
    let t = PgType::parse(type_sql);
    if t.array {
        return Kind::Json;
    }
    match t.name().as_str() {
        "smallint" | "integer" | "bigint" => Kind::Int,
        "numeric" | "money" => Kind::Decimal,
        "real" => Kind::Float,
        "double precision" => Kind::Double,
        "boolean" => Kind::Bool,
        "bytea" => Kind::Bytes,
        "bit" => Kind::Bit(t.len().unwrap_or(1)),
        "date" => Kind::Date,
        "timestamp without time zone" => Kind::DateTime,
        "timestamp with time zone" => Kind::Timestamp,
        "time without time zone" => Kind::Duration,
        "json" | "jsonb" => Kind::Json,
        _ => Kind::Text,
    }
}

/// How values of a column of `engine` travel.
pub fn kind(engine: Engine, type_sql: &str) -> Kind {
    match engine {
        Engine::Postgres => postgres_kind(type_sql),
        Engine::Mysql => mysql_kind(type_sql),
    }
}

/// Whether a column of `engine` holds LOBs, as DMS's LOB settings mean
/// them: text or binary without a declared length (PostgreSQL `text`,
/// `bytea`, `character varying`; MySQL's `*text` and `*blob`). Returns the
/// kind its values travel as (`Text` or `Bytes`); `None` for every other
/// type, including JSON and XML, whose values a cut would make invalid.
pub fn lob_kind(engine: Engine, type_sql: &str) -> Option<Kind> {
    match engine {
        Engine::Postgres => {
            let t = PgType::parse(type_sql);
            match t.name().as_str() {
                _ if t.array => None,
                "text" => Some(Kind::Text),
                "character varying" if t.len().is_none() => Some(Kind::Text),
                "bytea" => Some(Kind::Bytes),
                _ => None,
            }
        }
        Engine::Mysql => match MysqlType::parse(type_sql).base.as_str() {
            "tinytext" | "text" | "mediumtext" | "longtext" => Some(Kind::Text),
            "tinyblob" | "blob" | "mediumblob" | "longblob" => Some(Kind::Bytes),
            _ => None,
        },
    }
}

/// The MySQL type that holds every value of a PostgreSQL column; types
/// without a MySQL counterpart keep their exact PostgreSQL text form.
pub fn postgres_to_mysql(type_sql: &str) -> Result<String, Unsupported> {
    let t = PgType::parse(type_sql);
    if t.array {
        return Ok("json".into());
    }
    let frac = |default: u32| t.len().unwrap_or(default).min(6);
    let my = match t.name().as_str() {
        "smallint" => "smallint".into(),
        "integer" => "int".into(),
        "bigint" => "bigint".into(),
        "numeric" => match t.args {
            Some(a) => {
                let mut p = a.split(',').map(|x| x.trim().parse::<u32>().unwrap_or(0));
                let (prec, scale) = (p.next().unwrap_or(10), p.next().unwrap_or(0));
                if prec > 65 || scale > 30 {
                    return Err(Unsupported {
                        type_sql: type_sql.into(),
                        to: "MySQL (DECIMAL stops at 65 digits, 30 after the point)",
                    });
                }
                format!("decimal({prec},{scale})")
            }
            // Unconstrained numeric: the widest DECIMAL; a value beyond it
            // fails the segment with MySQL's out-of-range warning.
            None => "decimal(65,30)".into(),
        },
        "money" => "decimal(19,2)".into(),
        "real" => "float".into(),
        "double precision" => "double".into(),
        "boolean" => "tinyint(1)".into(),
        "bytea" => "longblob".into(),
        "bit" if t.len().unwrap_or(1) <= 64 => format!("bit({})", t.len().unwrap_or(1)),
        "date" => "date".into(),
        "timestamp without time zone" => format!("datetime({})", frac(6)),
        // DATETIME in UTC: TIMESTAMP stops in 2038.
        "timestamp with time zone" => format!("datetime({})", frac(6)),
        "time without time zone" => format!("time({})", frac(6)),
        "json" | "jsonb" => "json".into(),
        "uuid" => "char(36)".into(),
        "inet" | "cidr" => "varchar(43)".into(),
        "macaddr" | "macaddr8" => "varchar(23)".into(),
        "character varying" => match t.len() {
            Some(n) if n <= 16383 => format!("varchar({n})"),
            _ => "longtext".into(),
        },
        "character" => match t.len() {
            Some(n) if n <= 255 => format!("char({n})"),
            _ => "longtext".into(),
        },
        // text, interval, ranges, xml, enums, domains, tsvector, ...: their
        // PostgreSQL text form, unchanged.
        _ => "longtext".into(),
    };
    Ok(my)
}

/// Target column type for a source column type.
pub fn convert_type(from: Engine, to: Engine, type_sql: &str) -> Result<String, Unsupported> {
    match (from, to) {
        (Engine::Postgres, Engine::Postgres) | (Engine::Mysql, Engine::Mysql) => Ok(type_sql.to_string()),
        (Engine::Mysql, Engine::Postgres) => mysql_to_postgres(type_sql),
        (Engine::Postgres, Engine::Mysql) => postgres_to_mysql(type_sql),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_column_types() {
        let t = MysqlType::parse("int(10) unsigned zerofill");
        assert_eq!((t.base.as_str(), t.args, t.unsigned), ("int", Some("10"), true));
        let t = MysqlType::parse("enum('a','b(c)')");
        assert_eq!(t.args, Some("'a','b(c)'"));
        assert!(MysqlType::parse("bigint unsigned").unsigned);
    }

    #[test]
    fn maps_mysql_to_postgres_exactly() {
        let m = |t| mysql_to_postgres(t).unwrap();
        assert_eq!(m("bigint(20) unsigned"), "numeric(20,0)");
        assert_eq!(m("int(11) unsigned"), "bigint");
        assert_eq!(m("decimal(65,30)"), "numeric(65,30)");
        assert_eq!(m("datetime(6)"), "timestamp(6) without time zone");
        assert_eq!(m("timestamp"), "timestamp(0) with time zone");
        assert_eq!(m("time(3)"), "interval");
        assert_eq!(m("bit(12)"), "bit(12)");
        assert_eq!(m("char(10)"), "varchar(10)");
        assert_eq!(m("longblob"), "bytea");
        assert_eq!(mysql_kind("bigint(20) unsigned"), Kind::UInt);
        assert_eq!(mysql_kind("bit(12)"), Kind::Bit(12));
        assert!(mysql_to_postgres("vector(3)").is_err());
    }

    #[test]
    fn maps_postgres_to_mysql() {
        let m = |t| postgres_to_mysql(t).unwrap();
        assert_eq!(m("timestamp(3) with time zone"), "datetime(3)");
        assert_eq!(m("timestamp without time zone"), "datetime(6)");
        assert_eq!(m("numeric(65,30)"), "decimal(65,30)");
        assert!(postgres_to_mysql("numeric(80,2)").is_err());
        assert_eq!(m("integer[]"), "json");
        assert_eq!(m("character varying(20)"), "varchar(20)");
        assert_eq!(m("interval"), "longtext");
        assert_eq!(postgres_kind("timestamp(3) with time zone"), Kind::Timestamp);
        assert_eq!(postgres_kind("text[]"), Kind::Json);
        assert_eq!(postgres_kind("bit(10)"), Kind::Bit(10));
    }
}
