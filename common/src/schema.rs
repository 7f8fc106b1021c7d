//! The schema model that source introspection produces and target
//! preparation consumes. Column types and constraint bodies are kept in the
//! SQL of the engine that `engine` names; [`crate::convert`] translates a
//! table to another engine's dialect for heterogeneous pairs.

use crate::endpoint::Engine;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceSchema {
    /// Schemas that hold selected tables or the types they use.
    pub schemas: Vec<String>,
    /// User-defined types the selected tables use, in creation order.
    pub types: Vec<TypeDef>,
    pub tables: Vec<TableSchema>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeDef {
    pub schema: String,
    pub name: String,
    /// `CREATE TYPE ... AS ENUM (...)` or `CREATE DOMAIN ...`.
    pub ddl: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CopyFormat {
    /// Binary COPY passes values through without parsing them.
    Binary,
    /// Needed when a value's binary form embeds a type OID that differs
    /// between databases (arrays of user-defined types, composites).
    Text,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSchema {
    /// The dialect of the types and definitions below.
    #[serde(default)]
    pub engine: Engine,
    pub schema: String,
    pub name: String,
    pub columns: Vec<Column>,
    pub primary_key: Option<PrimaryKey>,
    /// `pg_get_partkeydef` of a partitioned table, e.g. `RANGE (created_at)`.
    pub partition_key: Option<String>,
    /// Partitions (and sub-partitions), parents before children.
    pub partitions: Vec<Partition>,
    /// Secondary index definitions (`CREATE INDEX ...`), built after the load.
    pub indexes: Vec<String>,
    /// The same indexes, structured, where the source connector reads them
    /// that way (MySQL); conversion to another engine renders them.
    #[serde(default)]
    pub index_list: Vec<Index>,
    /// Unique, check, exclusion and foreign-key constraints, added after the load.
    pub constraints: Vec<Constraint>,
    /// Sequences owned by this table's columns (serial and identity).
    pub sequences: Vec<Sequence>,
    pub rows_estimate: u64,
    pub size_bytes: u64,
    /// Heap pages, for CTID block ranges.
    pub pages: u64,
    pub copy_format: CopyFormat,
    /// Sorted sample of key tuples (text), for cutting key ranges; empty when
    /// the table is small or has no key.
    #[serde(default)]
    pub key_samples: Vec<Vec<String>>,
    /// The task's source filter for this table (see [`crate::filter`]):
    /// only rows it passes are loaded, changed and validated. Set on the
    /// source's form of the table only; the target's has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<crate::filter::RowFilter>,
    /// The target names the task's transformation rules give this table
    /// (see [`crate::transform`]). Set on the source's form only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<Box<crate::transform::TableTransform>>,
    /// The task's LOB limit for this table (see [`crate::lob`]): values of
    /// its LOB columns above it are cut and recorded. Set on the source's
    /// form only; none in full LOB mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lob: Option<crate::lob::LobLimit>,
    /// The source's log carries every column's old value in an update
    /// (MySQL's full row image, PostgreSQL's REPLICA IDENTITY FULL), not
    /// only the key's: before-image columns of other columns need it.
    #[serde(default)]
    pub whole_old_image: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// The type as `format_type` prints it, e.g. `numeric(12,2)`, `shop."Mood"[]`.
    pub type_sql: String,
    pub not_null: bool,
    pub default: Option<String>,
    /// `a` (ALWAYS) or `d` (BY DEFAULT) for identity columns.
    pub identity: Option<String>,
    /// Expression of a stored generated column; such columns are not copied.
    pub generated: Option<String>,
    pub collation: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub name: String,
    pub unique: bool,
    /// `BTREE`, `HASH`, `FULLTEXT`, `SPATIAL` (MySQL's index types).
    pub method: String,
    pub columns: Vec<IndexColumn>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexColumn {
    pub name: String,
    /// MySQL prefix length (`KEY (title(20))`).
    pub prefix: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrimaryKey {
    pub name: String,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    pub schema: String,
    pub name: String,
    pub parent_schema: String,
    pub parent_name: String,
    /// `FOR VALUES ...` or `DEFAULT`.
    pub bound: String,
    /// Set when the partition is itself partitioned.
    pub partition_key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintKind {
    Unique,
    Check,
    Exclusion,
    ForeignKey,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraint {
    pub name: String,
    pub kind: ConstraintKind,
    /// `pg_get_constraintdef`, e.g. `CHECK ((qty > 0))`.
    pub definition: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sequence {
    pub schema: String,
    pub name: String,
    pub column: String,
    pub identity: bool,
    /// Options for `CREATE SEQUENCE` (serial sequences only).
    pub options: String,
    /// Owned by the column (serial, identity). False for a sequence the
    /// column's default only calls (`nextval`), which other tables may
    /// call too, so it is not dropped with the table.
    #[serde(default = "owned_by_default")]
    pub owned: bool,
}

/// Sequences stored before `owned` existed were all owned by their column.
fn owned_by_default() -> bool {
    true
}

/// Quotes an identifier the way PostgreSQL's `quote_ident` does when needed;
/// always quoting keeps mixed case and reserved words intact.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl Column {
    /// A nullable column without default, generator or collation.
    pub fn plain(name: &str, type_sql: &str) -> Column {
        Column {
            name: name.into(),
            type_sql: type_sql.into(),
            not_null: false,
            default: None,
            identity: None,
            generated: None,
            collation: None,
        }
    }
}

impl TableSchema {
    /// A table of these columns only: no keys, indexes or statistics.
    pub fn bare(engine: Engine, schema: &str, name: &str, columns: Vec<Column>) -> TableSchema {
        TableSchema {
            engine,
            schema: schema.into(),
            name: name.into(),
            columns,
            primary_key: None,
            partition_key: None,
            partitions: vec![],
            indexes: vec![],
            index_list: vec![],
            constraints: vec![],
            sequences: vec![],
            rows_estimate: 0,
            size_bytes: 0,
            pages: 0,
            copy_format: CopyFormat::Text,
            key_samples: vec![],
            filter: None,
            transform: None,
            lob: None,
            whole_old_image: false,
        }
    }

    pub fn qualified(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    /// For messages and status: `schema.table` unquoted.
    pub fn display_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// Columns that COPY moves: generated columns are computed by the target.
    pub fn copy_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.generated.is_none())
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn is_partitioned(&self) -> bool {
        self.partition_key.is_some()
    }
}

/// How a table's columns changed between two introspections, by name (a
/// renamed column is one dropped and one added).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ColumnChanges<'a> {
    pub dropped: Vec<&'a str>,
    pub added: Vec<&'a Column>,
    /// Columns of both whose definition differs: the new definition.
    pub changed: Vec<&'a Column>,
}

impl ColumnChanges<'_> {
    pub fn is_empty(&self) -> bool {
        self.dropped.is_empty() && self.added.is_empty() && self.changed.is_empty()
    }
}

impl TableSchema {
    /// This table's columns compared with `previous`'s.
    pub fn column_changes<'a>(&'a self, previous: &'a TableSchema) -> ColumnChanges<'a> {
        ColumnChanges {
            dropped: previous
                .columns
                .iter()
                .filter(|c| self.column(&c.name).is_none())
                .map(|c| c.name.as_str())
                .collect(),
            added: self
                .columns
                .iter()
                .filter(|c| previous.column(&c.name).is_none())
                .collect(),
            changed: self
                .columns
                .iter()
                .filter(|c| previous.column(&c.name).is_some_and(|p| p != *c))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(columns: Vec<Column>) -> TableSchema {
        TableSchema::bare(Engine::Postgres, "s", "t", columns)
    }

    #[test]
    fn column_changes_by_name() {
        let was = table(vec![
            Column::plain("id", "integer"),
            Column::plain("a", "text"),
            Column::plain("b", "integer"),
            Column::plain("old", "integer"),
        ]);
        let mut c = Column::plain("c", "numeric(12,4)");
        c.default = Some("1.5".into());
        let now = table(vec![
            Column::plain("id", "integer"),
            Column::plain("a", "character varying(100)"),
            Column::plain("b2", "integer"),
            c.clone(),
        ]);
        let d = now.column_changes(&was);
        assert_eq!(d.dropped, ["b", "old"]);
        assert_eq!(d.added.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["b2", "c"]);
        assert_eq!(d.changed.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["a"]);
        assert!(was.column_changes(&was).is_empty());
    }
}
