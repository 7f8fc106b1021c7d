//! Reads the selected tables of the endpoint's database from
//! information_schema: columns with their full `COLUMN_TYPE`, primary key,
//! secondary indexes (structured, for conversion), foreign keys (in ANSI
//! form, which PostgreSQL and MySQL both read), size estimates, and key
//! samples for tables large enough to be cut into segments.
//!
//! A MySQL database is the table's `schema` in Ferry's model.

use super::{query_text, quote};
use crate::engine::ConnectorError;
use ferry_common::endpoint::{Endpoint, Engine};
use ferry_common::mapping::TableMappings;
use ferry_common::schema::*;
use ferry_common::typemap::{mysql_kind, Kind};
use ferry_common::work::TableRef;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

const SAMPLE_PER_SEGMENT: u64 = 16;

/// A selected table with the server's estimates of its rows and bytes.
pub(crate) struct Listed {
    pub name: String,
    pub rows: u64,
    pub bytes: u64,
}

/// The base tables of database `db` that `mappings` selects, by name.
pub(crate) async fn selected_tables(
    c: &mut Conn,
    db: &str,
    mappings: &TableMappings,
) -> Result<Vec<Listed>, ConnectorError> {
    let mut tables = base_tables(c, db).await?;
    tables.retain(|t| mappings.selects(db, &t.name));
    Ok(tables)
}

/// Every base table of database `db`, by name.
pub(crate) async fn base_tables(c: &mut Conn, db: &str) -> Result<Vec<Listed>, ConnectorError> {
    let rows = query_text(
        c,
        "SELECT TABLE_NAME, COALESCE(TABLE_ROWS, 0), COALESCE(DATA_LENGTH, 0)
           FROM information_schema.TABLES
          WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
        (db.to_string(),),
        &format!("listing the tables of database {db}"),
    )
    .await?;
    let number = |v: &Option<String>| v.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(rows
        .into_iter()
        .map(|r| Listed {
            name: r[0].clone().unwrap_or_default(),
            rows: number(&r[1]),
            bytes: number(&r[2]),
        })
        .collect())
}

pub async fn introspect(
    ep: &Endpoint,
    mappings: &TableMappings,
    segment_target_bytes: u64,
    max_segments: u32,
    only: Option<&TableRef>,
) -> Result<SourceSchema, ConnectorError> {
    let mut c = super::connect(ep).await?;
    let db = ep.dbname.clone();
    let mut out = SourceSchema::default();
    let version: Option<String> = c
        .query_first("SELECT VERSION()")
        .await
        .map_err(|e| super::classify("reading the server version", e))?;
    let mariadb = version.is_some_and(|v| v.contains("MariaDB"));
    for l in selected_tables(&mut c, &db, mappings).await? {
        if only.is_some_and(|o| !o.is(&db, &l.name)) {
            continue;
        }
        let t = table(&mut c, &db, &l, segment_target_bytes, max_segments, mariadb).await?;
        out.tables.push(t);
    }
    if !out.tables.is_empty() {
        out.schemas.push(db);
    }
    Ok(out)
}

/// MariaDB stores JSON as LONGTEXT with a `json_valid(col)` check.
async fn json_columns(c: &mut Conn, db: &str, name: &str) -> Vec<String> {
    let rows = query_text(
        c,
        "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?",
        (db.to_string(), name.to_string()),
        "reading check constraints",
    )
    .await
    .unwrap_or_default(); // MySQL 8 has no TABLE_NAME there, and a native JSON type.
    rows.into_iter()
        .filter_map(|r| r[0].clone())
        .filter_map(|clause| {
            let inner = clause.trim().strip_prefix("json_valid(")?.strip_suffix(')')?;
            Some(inner.trim_matches('`').replace("``", "`"))
        })
        .collect()
}

/// A column's default as SQL text. MariaDB reports a default as SQL (`'a''b'`,
/// `5`, `current_timestamp()`, and "no default" on a nullable column as the
/// text `NULL`); MySQL 8 reports a literal's bare value (`a'b`) and marks
/// expression defaults `DEFAULT_GENERATED`. Copied as it is, a MySQL 8
/// string default would be read as an identifier or an expression — from a
/// hostile source, as SQL — so literals are quoted by the column's type.
fn default_sql(raw: Option<String>, extra: &str, type_sql: &str, mariadb: bool) -> Option<String> {
    let raw = raw?;
    if mariadb {
        return (raw != "NULL").then_some(raw);
    }
    if extra.contains("default_generated") {
        // CURRENT_TIMESTAMP may stand bare; other expressions need parentheses.
        let bare = raw.to_ascii_uppercase().starts_with("CURRENT_TIMESTAMP") || raw.starts_with('(');
        return Some(if bare { raw } else { format!("({raw})") });
    }
    let ty = type_sql.to_ascii_lowercase();
    let numeric = [
        "tinyint",
        "smallint",
        "mediumint",
        "int",
        "bigint",
        "decimal",
        "numeric",
        "float",
        "double",
        "year",
    ]
    .iter()
    .any(|n| ty.starts_with(n));
    let numeric_text = !raw.is_empty()
        && raw
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'));
    if numeric && numeric_text || ty.starts_with("bit") && raw.starts_with("b'") && raw.ends_with('\'') {
        return Some(raw);
    }
    Some(format!("'{}'", raw.replace('\\', "\\\\").replace('\'', "''")))
}

async fn table(
    c: &mut Conn,
    db: &str,
    listed: &Listed,
    segment_target_bytes: u64,
    max_segments: u32,
    mariadb: bool,
) -> Result<TableSchema, ConnectorError> {
    let (name, rows_estimate, size_bytes) = (listed.name.as_str(), listed.rows, listed.bytes);
    let what = format!("introspecting table {db}.{name}");
    let args = || (db.to_string(), name.to_string());
    let json = json_columns(c, db, name).await;
    let mut columns = vec![];
    for r in query_text(
        c,
        "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA, GENERATION_EXPRESSION
           FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        args(),
        &what,
    )
    .await?
    {
        let col_name = r[0].clone().unwrap_or_default();
        let extra = r[4].clone().unwrap_or_default().to_ascii_lowercase();
        let mut type_sql = r[1].clone().unwrap_or_default();
        if json.contains(&col_name) && type_sql.eq_ignore_ascii_case("longtext") {
            type_sql = "json".into();
        }
        let default = default_sql(r[3].clone(), &extra, &type_sql, mariadb);
        columns.push(Column {
            name: col_name,
            type_sql,
            not_null: r[2].as_deref() == Some("NO"),
            default,
            identity: extra.contains("auto_increment").then(|| "auto_increment".to_string()),
            generated: r[5].clone().filter(|g| !g.is_empty() && extra.contains("generated")),
            collation: None,
        });
    }
    let mut primary_key = None;
    let mut index_list: Vec<Index> = vec![];
    for r in query_text(
        c,
        "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART, INDEX_TYPE
           FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?
          ORDER BY INDEX_NAME, SEQ_IN_INDEX",
        args(),
        &what,
    )
    .await?
    {
        let (index, column) = (r[0].clone().unwrap_or_default(), r[2].clone());
        let Some(column) = column else { continue }; // functional key part (MySQL 8)
        if index == "PRIMARY" {
            primary_key
                .get_or_insert_with(|| PrimaryKey {
                    name: format!("{name}_pkey"),
                    columns: vec![],
                })
                .columns
                .push(column);
            continue;
        }
        if index_list.last().map(|i| &i.name) != Some(&index) {
            index_list.push(Index {
                name: index.clone(),
                unique: r[1].as_deref() == Some("0"),
                method: r[4].clone().unwrap_or_default(),
                columns: vec![],
            });
        }
        if let Some(i) = index_list.last_mut() {
            i.columns.push(IndexColumn {
                name: column,
                prefix: r[3].as_deref().and_then(|p| p.parse().ok()),
            });
        }
    }
    let fk_rows = query_text(
        c,
        "SELECT rc.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME,
                k.REFERENCED_COLUMN_NAME, rc.UPDATE_RULE, rc.DELETE_RULE
           FROM information_schema.REFERENTIAL_CONSTRAINTS rc
           JOIN information_schema.KEY_COLUMN_USAGE k
             ON k.CONSTRAINT_SCHEMA = rc.CONSTRAINT_SCHEMA AND k.CONSTRAINT_NAME = rc.CONSTRAINT_NAME
            AND k.TABLE_NAME = rc.TABLE_NAME
          WHERE rc.CONSTRAINT_SCHEMA = ? AND rc.TABLE_NAME = ?
          ORDER BY rc.CONSTRAINT_NAME, k.ORDINAL_POSITION",
        args(),
        &what,
    )
    .await?;
    let mut fks: Vec<ForeignKey> = vec![];
    for r in fk_rows {
        let s = |i: usize| r[i].clone().unwrap_or_default();
        if fks.last().map(|f| &f.name) != Some(&s(0)) {
            fks.push(ForeignKey {
                name: s(0),
                columns: vec![],
                referenced: format!("{}.{}", quote_ident(&s(2)), quote_ident(&s(3))),
                referenced_columns: vec![],
                actions: format!(" ON UPDATE {} ON DELETE {}", s(5), s(6)),
            });
        }
        if let Some(f) = fks.last_mut() {
            f.columns.push(s(1));
            f.referenced_columns.push(s(4));
        }
    }
    let constraints: Vec<Constraint> = fks.into_iter().map(ForeignKey::into_constraint).collect();
    let mut t = TableSchema {
        engine: Engine::Mysql,
        schema: db.to_string(),
        name: name.to_string(),
        columns,
        primary_key,
        partition_key: None,
        partitions: vec![],
        indexes: vec![],
        index_list,
        constraints,
        sequences: vec![],
        rows_estimate,
        size_bytes,
        pages: 0,
        copy_format: CopyFormat::Text,
        key_samples: vec![],
        filter: None,
        transform: None,
        lob: None,
        // binlog_row_image FULL: a stream refuses to start without it.
        whole_old_image: true,
    };
    if size_bytes > segment_target_bytes {
        let wanted = (size_bytes / segment_target_bytes.max(1)).min(max_segments as u64);
        t.key_samples = key_samples(c, &t, wanted * SAMPLE_PER_SEGMENT)
            .await
            .map_err(|e| ConnectorError::Definite(format!("{what}: sampling keys: {e}")))?;
    }
    Ok(t)
}

/// A foreign key gathered from one row per column.
struct ForeignKey {
    name: String,
    columns: Vec<String>,
    /// `"db"."table"`.
    referenced: String,
    referenced_columns: Vec<String>,
    actions: String,
}

impl ForeignKey {
    /// In ANSI form, which PostgreSQL and MySQL (with ANSI_QUOTES) both read.
    fn into_constraint(self) -> Constraint {
        let q = |v: &[String]| v.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ");
        Constraint {
            definition: format!(
                "FOREIGN KEY ({}) REFERENCES {} ({}){}",
                q(&self.columns),
                self.referenced,
                q(&self.referenced_columns),
                self.actions
            ),
            name: self.name,
            kind: ConstraintKind::ForeignKey,
        }
    }
}

/// A sorted sample of primary-key tuples, as text. A single integer key is
/// sampled arithmetically between its minimum and maximum (one index dive
/// each end); other keys by a Bernoulli sample over one index scan.
async fn key_samples(c: &mut Conn, t: &TableSchema, wanted: u64) -> Result<Vec<Vec<String>>, ConnectorError> {
    let Some(pk) = &t.primary_key else { return Ok(vec![]) };
    let qualified = super::quote_table(t);
    let cols: Vec<String> = pk.columns.iter().map(|c| quote(c)).collect();
    let integer = pk.columns.len() == 1
        && t.column(&pk.columns[0])
            .is_some_and(|c| matches!(mysql_kind(&c.type_sql), Kind::Int | Kind::UInt));
    if integer {
        let r = query_text(
            c,
            &format!("SELECT MIN({0}), MAX({0}) FROM {qualified}", cols[0]),
            (),
            "reading key bounds",
        )
        .await?;
        let bound = |i: usize| {
            r.first()
                .and_then(|r| r[i].as_deref())
                .and_then(|v| v.parse::<i128>().ok())
        };
        let (Some(lo), Some(hi)) = (bound(0), bound(1)) else {
            return Ok(vec![]);
        };
        let n = wanted.max(1) as i128;
        let mut out: Vec<Vec<String>> = (1..n).map(|i| vec![(lo + (hi - lo) * i / n).to_string()]).collect();
        out.dedup();
        return Ok(out);
    }
    let pct = (wanted as f64 / t.rows_estimate.max(1) as f64).min(1.0);
    let sql = format!(
        "SELECT {0} FROM {qualified} WHERE RAND() < {pct} ORDER BY {0}",
        cols.join(", ")
    );
    let rows = query_text(c, &sql, (), "sampling keys").await?;
    Ok(rows
        .into_iter()
        .filter(|r| r.iter().all(Option::is_some))
        .map(|r| r.into_iter().flatten().collect())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::default_sql;

    #[test]
    fn defaults_are_sql_on_both_flavors() {
        let my = |raw: &str, extra: &str, ty: &str| default_sql(Some(raw.to_string()), extra, ty, false);
        // MySQL 8 reports bare values: quoted by type here.
        assert_eq!(my("abc", "", "varchar(10)").as_deref(), Some("'abc'"));
        assert_eq!(
            my("it's; DROP TABLE t; --", "", "text").as_deref(),
            Some("'it''s; DROP TABLE t; --'")
        );
        assert_eq!(my("a\\b", "", "varchar(5)").as_deref(), Some("'a\\\\b'"));
        assert_eq!(my("42", "", "int(11)").as_deref(), Some("42"));
        assert_eq!(my("-1.5e3", "", "double").as_deref(), Some("-1.5e3"));
        assert_eq!(my("2024-01-01", "", "date").as_deref(), Some("'2024-01-01'"));
        assert_eq!(my("b'101'", "", "bit(3)").as_deref(), Some("b'101'"));
        // A numeric column's default that is not a number is still a literal.
        assert_eq!(my("1; DROP", "", "int").as_deref(), Some("'1; DROP'"));
        assert_eq!(
            my("CURRENT_TIMESTAMP", "default_generated", "timestamp").as_deref(),
            Some("CURRENT_TIMESTAMP")
        );
        assert_eq!(my("rand()", "default_generated", "double").as_deref(), Some("(rand())"));
        assert_eq!(default_sql(None, "", "int", false), None);
        // MariaDB reports SQL already, and "no default" as NULL text.
        let maria = |raw: &str| default_sql(Some(raw.to_string()), "", "varchar(5)", true);
        assert_eq!(maria("'abc'").as_deref(), Some("'abc'"));
        assert_eq!(maria("NULL"), None);
    }
}
