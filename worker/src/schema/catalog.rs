//! The whole source schema, as conversion and assessment read it: the
//! tables exactly as the data path introspects them (so the converted DDL and
//! the loaded values agree), plus what else a database holds — user types,
//! sequences, views, triggers, functions and procedures, comments, per-table
//! details only MySQL keeps apart (checks, ON UPDATE, partitioning) — and the
//! server settings the premigration checks need.
//!
//! Bodies and definitions are kept in the source engine's own SQL; the
//! converter parses them.

use ferry_common::endpoint::Engine;
use ferry_common::schema::{Constraint, TableSchema, TypeDef};

#[derive(Debug, Clone)]
pub struct Catalog {
    pub engine: Engine,
    /// `SELECT version()` as the server prints it.
    pub version: String,
    pub database: String,
    pub tables: Vec<TableSchema>,
    /// Per table, in the order of `tables`.
    pub details: Vec<TableDetails>,
    /// Every user-defined type (PostgreSQL), not only those tables use.
    pub types: Vec<UserType>,
    /// Sequences no column owns.
    pub sequences: Vec<FreeSequence>,
    pub views: Vec<View>,
    pub triggers: Vec<Trigger>,
    pub routines: Vec<Routine>,
    /// Settings and facts the premigration checks read (`wal_level`,
    /// `binlog_format`, `replication_privilege`, ...).
    pub settings: Vec<(String, String)>,
}

impl Catalog {
    pub fn setting(&self, name: &str) -> Option<&str> {
        self.settings.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Default)]
pub struct TableDetails {
    pub comment: Option<String>,
    /// `(column, comment)`.
    pub column_comments: Vec<(String, String)>,
    /// Columns declared `ON UPDATE CURRENT_TIMESTAMP` (MySQL).
    pub on_update: Vec<String>,
    /// CHECK constraints (MySQL; PostgreSQL keeps them in `constraints`).
    pub checks: Vec<Constraint>,
    /// MySQL partitioning, when the table is partitioned.
    pub partitioning: Option<MysqlPartitioning>,
    /// MySQL storage engine (`InnoDB`, `MyISAM`, ...).
    pub storage_engine: Option<String>,
    /// `(column, charset, collation)` of text columns whose collation is not
    /// the table's default (MySQL).
    pub column_collations: Vec<(String, String, String)>,
    pub table_collation: Option<String>,
    /// `(column, next value)` of the table's generators as the source
    /// stands (sequence position, AUTO_INCREMENT): the target's must not
    /// hand out a value the source already did, even if that row is gone.
    pub next_values: Vec<(String, i64)>,
}

#[derive(Debug, Clone)]
pub struct MysqlPartitioning {
    /// `RANGE`, `RANGE COLUMNS`, `LIST`, `LIST COLUMNS`, `HASH`, `KEY`, ...
    pub method: String,
    /// The partitioning expression or column list, as the server prints it.
    pub expression: String,
    /// `(name, description)`: `VALUES LESS THAN` / `IN` text, empty for HASH.
    pub partitions: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct UserType {
    pub def: TypeDef,
    pub kind: UserTypeKind,
    /// An enum's labels, in order.
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserTypeKind {
    Enum,
    Domain,
    Composite,
}

#[derive(Debug, Clone)]
pub struct FreeSequence {
    pub schema: String,
    pub name: String,
    /// `AS bigint INCREMENT BY 1 ...` (PostgreSQL `CREATE SEQUENCE` options).
    pub options: String,
    pub increment: i64,
    /// The next value the source would hand out.
    pub next: i64,
}

#[derive(Debug, Clone)]
pub struct View {
    pub schema: String,
    pub name: String,
    pub materialized: bool,
    /// The SELECT, as the server stores it.
    pub query: String,
    /// The full `CREATE VIEW` text, for the report.
    pub definition: String,
}

#[derive(Debug, Clone)]
pub struct Trigger {
    pub schema: String,
    pub name: String,
    pub table: String,
    /// `BEFORE`, `AFTER` or `INSTEAD OF`.
    pub timing: String,
    /// `INSERT`, `UPDATE`, `DELETE`, `TRUNCATE`.
    pub events: Vec<String>,
    pub for_each_row: bool,
    /// MySQL: the action statement. PostgreSQL: the trigger function's
    /// PL/pgSQL source (`prosrc`).
    pub body: String,
    /// PostgreSQL: the trigger function, `schema.name`.
    pub function: Option<String>,
    /// MySQL `UPDATE OF` has no counterpart; PostgreSQL `WHEN (...)` and
    /// column lists land here (they make the trigger non-trivial).
    pub condition: Option<String>,
    pub definition: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutineKind {
    Function,
    Procedure,
}

#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    /// `IN`, `OUT`, `INOUT`.
    pub mode: String,
    pub type_sql: String,
}

#[derive(Debug, Clone)]
pub struct Routine {
    pub schema: String,
    pub name: String,
    pub kind: RoutineKind,
    /// `sql`, `plpgsql`, ... (PostgreSQL); `sql` for MySQL.
    pub language: String,
    pub params: Vec<Param>,
    /// Functions: the return type (`trigger` for PostgreSQL trigger functions).
    pub returns: Option<String>,
    pub body: String,
    pub deterministic: bool,
    pub definition: String,
}

impl Routine {
    pub fn display_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}
