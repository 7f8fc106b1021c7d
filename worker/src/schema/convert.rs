//! Converts a [`Catalog`] into DDL for a target engine, split around the
//! data load, and says object by object what it could not convert.
//!
//! - Pre-data (before the load): schemas, types, free sequences, tables with
//!   their primary keys, partitions, comments. Loading into bare tables is
//!   fastest, and the primary key is what the load's ranges are cut on.
//! - Post-data (after the load): secondary indexes, unique and check
//!   constraints, identity / sequence positions past the loaded maximum,
//!   functions and procedures, views, triggers, and foreign keys last (every
//!   table they reference is loaded by then). Triggers come after the load
//!   so that loading does not fire them.
//!
//! Column types come from [`ferry_common::typemap`], the table the data path
//! uses, so a column is declared the way it is filled. SQL inside objects
//! (defaults, checks, generated columns, view queries, simple trigger and
//! routine bodies) goes through [`translate`], which refuses what it cannot
//! carry over exactly; anything refused becomes an action item with the
//! source text and, where possible, a proposed skeleton — never DDL that
//! would quietly behave differently.

use super::assessment::*;
use super::catalog::*;
use super::translate::{self, ident, Untranslatable};
use ferry_common::convert::{portable_default, postgres_index, unique_constraint};
use ferry_common::endpoint::Engine;
use ferry_common::schema::{Column, ConstraintKind, Index, TableSchema};
use ferry_common::typemap::{convert_type, MysqlType};

#[derive(Debug, Clone)]
pub struct Ddl {
    pub object: String,
    pub sql: String,
}

#[derive(Debug, Clone)]
pub struct Conversion {
    pub from: Engine,
    pub to: Engine,
    pub pre_data: Vec<Ddl>,
    pub post_data: Vec<Ddl>,
    /// Foreign keys, the end of post-data.
    pub foreign_keys: Vec<Ddl>,
    /// Triggers: they must not fire on rows CDC applies, so CDC tasks
    /// create them at cutover (cutover.sql), full loads after post-data.
    pub triggers: Vec<Ddl>,
    pub objects: Vec<ObjectResult>,
    pub items: Vec<ActionItem>,
}

/// One finding, before it has an id.
struct Finding<'a> {
    code: &'static str,
    severity: Severity,
    effort: Option<Effort>,
    message: String,
    action: &'a str,
    source_sql: String,
    proposed_sql: Option<String>,
}

struct Converter<'a> {
    cat: &'a Catalog,
    to: Engine,
    out: Conversion,
}

pub fn convert(cat: &Catalog, to: Engine) -> Conversion {
    let mut c = Converter {
        cat,
        to,
        out: Conversion {
            from: cat.engine,
            to,
            pre_data: vec![],
            post_data: vec![],
            foreign_keys: vec![],
            triggers: vec![],
            objects: vec![],
            items: vec![],
        },
    };
    c.schemas();
    for t in &cat.types {
        c.user_type(t);
    }
    for s in &cat.sequences {
        c.free_sequence(s);
    }
    for (i, t) in cat.tables.iter().enumerate() {
        let d = cat.details.get(i).cloned().unwrap_or_default();
        c.table(t, &d);
    }
    for r in cat.routines.iter().filter(|r| r.returns.as_deref() != Some("trigger")) {
        c.routine(r);
    }
    for v in &cat.views {
        c.view(v);
    }
    for t in &cat.triggers {
        c.trigger(t);
    }
    c.out
}

/// A MySQL string literal (backslash is an escape character there).
fn my_literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

fn pg_literal(s: &str) -> String {
    ferry_common::schema::quote_literal(s)
}

impl Converter<'_> {
    fn from(&self) -> Engine {
        self.cat.engine
    }

    fn q(&self, name: &str) -> String {
        ident(self.to, name)
    }

    fn qualified(&self, schema: &str, name: &str) -> String {
        format!("{}.{}", self.q(schema), self.q(name))
    }

    fn item(&mut self, category: Category, object: &str, f: Finding) -> String {
        let id = format!("{}/{object}", f.code);
        // The same finding twice on one object (two columns' worth of one
        // note on a table) is one item.
        if !self.out.items.iter().any(|i| i.id == id) {
            self.out.items.push(ActionItem {
                id: id.clone(),
                code: f.code,
                severity: f.severity,
                effort: f.effort,
                category,
                object: object.to_string(),
                message: f.message,
                action: f.action.to_string(),
                source_sql: f.source_sql,
                proposed_sql: f.proposed_sql,
            });
        }
        id
    }

    fn object(&mut self, category: Category, name: &str, items: Vec<String>) {
        let of: Vec<&ActionItem> = self.out.items.iter().filter(|i| items.contains(&i.id)).collect();
        let outcome = if of.iter().any(|i| i.severity.needs_action()) {
            Outcome::Action
        } else if of.is_empty() {
            Outcome::Automatic
        } else {
            Outcome::Warnings
        };
        let effort = of.iter().filter_map(|i| i.effort).max();
        self.out.objects.push(ObjectResult {
            category,
            name: name.to_string(),
            outcome,
            effort,
            action_items: items,
        });
    }

    fn pre(&mut self, object: &str, sql: String) {
        self.out.pre_data.push(Ddl {
            object: object.into(),
            sql,
        });
    }

    fn post(&mut self, object: &str, sql: String) {
        self.out.post_data.push(Ddl {
            object: object.into(),
            sql,
        });
    }

    fn after_cutover(&mut self, object: &str, sql: String) {
        self.out.triggers.push(Ddl {
            object: object.into(),
            sql,
        });
    }

    fn schemas(&mut self) {
        let mut names: Vec<&str> = self.cat.tables.iter().map(|t| t.schema.as_str()).collect();
        names.extend(self.cat.types.iter().map(|t| t.def.schema.as_str()));
        names.extend(self.cat.views.iter().map(|v| v.schema.as_str()));
        names.extend(self.cat.routines.iter().map(|r| r.schema.as_str()));
        names.extend(self.cat.sequences.iter().map(|s| s.schema.as_str()));
        let mut seen = vec![];
        for n in names {
            if seen.contains(&n) {
                continue;
            }
            seen.push(n);
            let sql = match self.to {
                Engine::Postgres => format!("CREATE SCHEMA IF NOT EXISTS {};", self.q(n)),
                Engine::Mysql => format!("CREATE DATABASE IF NOT EXISTS {} CHARACTER SET utf8mb4;", self.q(n)),
            };
            self.pre(n, sql);
        }
    }

    fn user_type(&mut self, t: &UserType) {
        let name = format!("{}.{}", t.def.schema, t.def.name);
        if self.to == Engine::Postgres {
            self.pre(&name, format!("{};", t.def.ddl));
            self.object(Category::Types, &name, vec![]);
            return;
        }
        let (code, severity, message, action) = match t.kind {
            UserTypeKind::Enum => (
                "TYPE-ENUM",
                Severity::Info,
                "MySQL has no named enum types: columns of this type become LONGTEXT with a CHECK on the labels".to_string(),
                "None; the CHECK keeps the set of values.",
            ),
            UserTypeKind::Domain => (
                "TYPE-DOMAIN",
                Severity::Low,
                format!(
                    "MySQL has no domains: columns of this type become LONGTEXT (the data path's mapping) and the domain's constraints are not carried ({})",
                    t.def.ddl
                ),
                "Add CHECK constraints on the columns that used the domain, if the application relies on them.",
            ),
            UserTypeKind::Composite => (
                "TYPE-COMPOSITE",
                Severity::Low,
                "MySQL has no composite types: columns of this type hold the PostgreSQL text form in LONGTEXT".to_string(),
                "Split the fields into columns or a JSON document if the application reads them.",
            ),
        };
        let id = self.item(
            Category::Types,
            &name,
            Finding {
                code,
                severity,
                effort: (severity == Severity::Low).then_some(Effort::Simple),
                message,
                action,
                source_sql: format!("{};", t.def.ddl),
                proposed_sql: None,
            },
        );
        self.object(Category::Types, &name, vec![id]);
    }

    fn free_sequence(&mut self, s: &FreeSequence) {
        let name = format!("{}.{}", s.schema, s.name);
        let qn = self.qualified(&s.schema, &s.name);
        match self.to {
            Engine::Postgres => {
                self.pre(&name, format!("CREATE SEQUENCE IF NOT EXISTS {qn} {};", s.options));
                self.post(&name, format!("SELECT setval({}, {}, false);", pg_literal(&qn), s.next));
                self.object(Category::Sequences, &name, vec![]);
            }
            Engine::Mysql => {
                let users: Vec<String> = self
                    .cat
                    .tables
                    .iter()
                    .flat_map(|t| {
                        t.columns
                            .iter()
                            .filter(|c| {
                                c.default
                                    .as_deref()
                                    .is_some_and(|d| d.contains(&format!("{}'", s.name)))
                            })
                            .map(move |c| format!("{}.{}", t.display_name(), c.name))
                    })
                    .collect();
                let id = self.item(
                    Category::Sequences,
                    &name,
                    Finding {
                        code: "SEQUENCE",
                        severity: Severity::Low,
                        effort: Some(Effort::Simple),
                        message: if users.is_empty() {
                            "MySQL has no sequences (MariaDB 10.3+ does)".into()
                        } else {
                            format!(
                                "MySQL has no sequences (MariaDB 10.3+ does); {} now use AUTO_INCREMENT, which continues past the loaded maximum",
                                users.join(", ")
                            )
                        },
                        action: "On MariaDB, create the sequence as proposed if anything else calls nextval on it.",
                        source_sql: format!("CREATE SEQUENCE {} {};", s.name, s.options),
                        proposed_sql: Some(format!(
                            "CREATE SEQUENCE {qn} START WITH {} INCREMENT BY {};",
                            s.next, s.increment
                        )),
                    },
                );
                self.object(Category::Sequences, &name, vec![id]);
            }
        }
    }
}

/// The pieces of one converted column.
struct ColumnOut {
    def: String,
    items: Vec<String>,
    /// A converted generator: MySQL AUTO_INCREMENT or PostgreSQL identity.
    identity: bool,
}

impl Converter<'_> {
    fn table(&mut self, t: &TableSchema, d: &TableDetails) {
        let tname = t.display_name();
        let qt = self.qualified(&t.schema, &t.name);
        let mut table_items = vec![];
        let mut defs = vec![];
        let mut auto_increment: Option<String> = None;
        for col in &t.columns {
            let c = self.column(t, d, col, &mut auto_increment);
            let colname = format!("{tname}.{}", col.name);
            self.object(Category::Columns, &colname, c.items);
            let next = d
                .next_values
                .iter()
                .find(|(c, _)| c == &col.name)
                .map_or(1, |(_, n)| *n);
            if c.identity {
                let seq = format!("{tname}.{}", col.name);
                self.object(Category::Sequences, &seq, vec![]);
                // Past the loaded maximum and the source's position
                // (cutover moves it again).
                match self.to {
                    Engine::Postgres => {
                        let q = self.q(&col.name);
                        self.post(
                            &seq,
                            format!(
                                "SELECT setval(pg_get_serial_sequence({}, {}), GREATEST(COALESCE(max({q}), 0) + 1, {next}), false) FROM {qt};",
                                pg_literal(&qt),
                                pg_literal(&col.name)
                            ),
                        );
                    }
                    // MySQL raises a value below the maximum to max + 1.
                    Engine::Mysql => self.post(&seq, format!("ALTER TABLE {qt} AUTO_INCREMENT = {next};")),
                }
            }
            defs.push(c.def);
        }
        // Sequences the PostgreSQL source owns through serial columns.
        if self.from() == Engine::Postgres && self.to == Engine::Postgres {
            for s in t.sequences.iter().filter(|s| !s.identity) {
                let qs = self.qualified(&s.schema, &s.name);
                self.pre(&tname, format!("CREATE SEQUENCE IF NOT EXISTS {qs} {};", s.options));
                self.post(
                    &tname,
                    format!("ALTER SEQUENCE {qs} OWNED BY {qt}.{};", self.q(&s.column)),
                );
                let next = d
                    .next_values
                    .iter()
                    .find(|(c, _)| c == &s.column)
                    .map_or(1, |(_, n)| *n);
                self.post(
                    &tname,
                    format!(
                        "SELECT setval({}, GREATEST(COALESCE(max({}), 0) + 1, {next}), false) FROM {qt};",
                        pg_literal(&qs),
                        self.q(&s.column)
                    ),
                );
                self.object(Category::Sequences, &format!("{}.{}", s.schema, s.name), vec![]);
            }
        }
        if let Some(pk) = &t.primary_key {
            let cols: Vec<String> = pk.columns.iter().map(|c| self.q(c)).collect();
            defs.push(match self.to {
                Engine::Postgres => format!("CONSTRAINT {} PRIMARY KEY ({})", self.q(&pk.name), cols.join(", ")),
                Engine::Mysql => format!("PRIMARY KEY ({})", cols.join(", ")),
            });
            self.object(Category::Constraints, &format!("{tname}.{}", pk.name), vec![]);
        }
        // MySQL wants an AUTO_INCREMENT column to lead some key.
        if let Some(col) = &auto_increment {
            let leads = t.primary_key.as_ref().is_some_and(|pk| pk.columns.first() == Some(col));
            if !leads {
                defs.push(format!("KEY {} ({})", self.q(&format!("{col}_ai")), self.q(col)));
            }
        }
        let mut sql = format!("CREATE TABLE {qt} (\n  {}\n)", defs.join(",\n  "));
        let partitions = self.partitioning(t, d, &qt, &mut table_items);
        match self.to {
            Engine::Postgres => {
                if let Some((key, _)) = &partitions {
                    sql.push_str(&format!(" PARTITION BY {key}"));
                }
            }
            Engine::Mysql => {
                sql.push_str(" ENGINE=InnoDB DEFAULT CHARSET=utf8mb4");
                if self.from() == Engine::Mysql {
                    if let Some(coll) = &d.table_collation {
                        sql = sql.replace(" DEFAULT CHARSET=utf8mb4", &format!(" COLLATE={coll}"));
                    }
                }
                if let Some(c) = &d.comment {
                    sql.push_str(&format!(" COMMENT={}", my_literal(c)));
                }
                if let Some((clause, _)) = &partitions {
                    sql.push_str(&format!("\n{clause}"));
                }
            }
        }
        sql.push(';');
        self.pre(&tname, sql);
        if let Some((_, children)) = partitions {
            for p in children {
                self.pre(&tname, p);
            }
        }
        if self.to == Engine::Postgres {
            if let Some(c) = &d.comment {
                self.pre(&tname, format!("COMMENT ON TABLE {qt} IS {};", pg_literal(c)));
            }
            for (col, c) in &d.column_comments {
                self.pre(
                    &tname,
                    format!("COMMENT ON COLUMN {qt}.{} IS {};", self.q(col), pg_literal(c)),
                );
            }
        }
        if let Some(engine) = d
            .storage_engine
            .as_deref()
            .filter(|e| !e.eq_ignore_ascii_case("InnoDB"))
        {
            table_items.push(self.item(
                Category::Tables,
                &tname,
                Finding {
                    code: "TABLE-ENGINE",
                    severity: Severity::Low,
                    effort: Some(Effort::Simple),
                    message: format!("the table uses the {engine} storage engine: no transactions, so the full load reads it without a consistent snapshot"),
                    action: "Convert it to InnoDB on the source before a live migration, or load it while it takes no writes.",
                    source_sql: String::new(),
                    proposed_sql: Some(format!("ALTER TABLE {} ENGINE=InnoDB;", tname)),
                },
            ));
        }
        self.object(Category::Tables, &tname, table_items);
        self.on_update(t, d, &qt);
        self.indexes(t, &qt);
        self.constraints(t, d, &qt);
    }

    fn column(
        &mut self,
        t: &TableSchema,
        d: &TableDetails,
        col: &Column,
        auto_increment: &mut Option<String>,
    ) -> ColumnOut {
        let object = format!("{}.{}", t.display_name(), col.name);
        let mut items = vec![];
        let ty = match convert_type(self.from(), self.to, &col.type_sql) {
            Ok(ty) => ty,
            Err(e) => {
                items.push(self.item(
                    Category::Columns,
                    &object,
                    Finding {
                        code: "TYPE-UNSUPPORTED",
                        severity: Severity::Critical,
                        effort: Some(Effort::Complex),
                        message: format!("{e}; the column is declared as text and the load refuses its values"),
                        action: "Choose a target type and change the column (and the application) before migrating.",
                        source_sql: format!("{} {}", col.name, col.type_sql),
                        proposed_sql: None,
                    },
                ));
                match self.to {
                    Engine::Postgres => "text".into(),
                    Engine::Mysql => "longtext".into(),
                }
            }
        };
        self.type_notes(&object, col, &ty, &mut items);
        let mut def = format!("{} {ty}", self.q(&col.name));
        if self.from() == self.to {
            if let Some(coll) = &col.collation {
                def.push_str(&format!(" COLLATE {coll}"));
            }
        } else if col.collation.is_some() || d.column_collations.iter().any(|(c, _, _)| c == &col.name) {
            let coll = col
                .collation
                .clone()
                .or_else(|| {
                    d.column_collations
                        .iter()
                        .find(|(c, _, _)| c == &col.name)
                        .map(|(_, _, k)| k.clone())
                })
                .unwrap_or_default();
            items.push(self.item(
                Category::Columns,
                &object,
                Finding {
                    code: "COLLATION",
                    severity: Severity::Info,
                    effort: None,
                    message: format!(
                        "collation {coll} is not carried over: the column sorts and compares with the target's default"
                    ),
                    action:
                        "Declare a target collation on the column if ordering or case-insensitive matching matters.",
                    source_sql: String::new(),
                    proposed_sql: None,
                },
            ));
        }
        if self.from() == Engine::Mysql && self.to == Engine::Mysql {
            if let Some((_, cs, coll)) = d.column_collations.iter().find(|(c, _, _)| c == &col.name) {
                def = format!("{} {ty} CHARACTER SET {cs} COLLATE {coll}", self.q(&col.name));
            }
        }
        let generator = col.identity.is_some() || col.default.as_deref().is_some_and(|d| d.starts_with("nextval("));
        let mut identity = false;
        if let (Some(g), true) = (&col.generated, self.from() != self.to) {
            // The data path copies a generated column's values between
            // engines (and writes them during CDC), so the target column
            // must take writes: a plain column, with the expression proposed.
            let proposed = translate::expr(self.from(), self.to, g).ok().map(|tr| {
                format!(
                    "-- once the migration is over:\n-- {} GENERATED ALWAYS AS ({}) STORED",
                    self.q(&col.name),
                    tr.sql
                )
            });
            items.push(self.item(
                Category::Columns,
                &object,
                Finding {
                    code: "GENERATED",
                    severity: Severity::Low,
                    effort: Some(Effort::Simple),
                    message: format!("generated column ({g}) is created as a plain column holding the copied values (CDC writes them too)"),
                    action: "After cutover, redefine the column as generated if the application relies on it.",
                    source_sql: g.clone(),
                    proposed_sql: proposed,
                },
            ));
        } else if let Some(g) = &col.generated {
            // Same engine: the expression as the source has it.
            match translate::expr(self.from(), self.to, g).or_else(|u| {
                if self.from() == self.to {
                    Ok(translate::Translated {
                        sql: g.clone(),
                        notes: vec![],
                    })
                } else {
                    Err(u)
                }
            }) {
                Ok(tr) => {
                    def.push_str(&format!(" GENERATED ALWAYS AS ({}) STORED", tr.sql));
                    self.notes(Category::Columns, &object, &tr.notes, g, &mut items);
                }
                Err(u) => items.push(self.untranslatable(
                    Category::Columns,
                    &object,
                    "GENERATED",
                    &u,
                    "the generated column is created as a plain column; the load copies its values",
                    g,
                )),
            }
        } else if generator && self.from() == self.to {
            match self.to {
                Engine::Postgres => match col.identity.as_deref() {
                    Some("a") => def.push_str(" GENERATED ALWAYS AS IDENTITY"),
                    Some(_) => def.push_str(" GENERATED BY DEFAULT AS IDENTITY"),
                    None => def.push_str(&format!(" DEFAULT {}", col.default.clone().unwrap_or_default())),
                },
                Engine::Mysql => def.push_str(" AUTO_INCREMENT"),
            }
            identity = col.identity.is_some();
        } else if generator {
            let int = match self.to {
                Engine::Postgres => matches!(ty.as_str(), "smallint" | "integer" | "bigint"),
                Engine::Mysql => matches!(ty.as_str(), "smallint" | "int" | "bigint") && auto_increment.is_none(),
            };
            if int {
                identity = true;
                match self.to {
                    Engine::Postgres => def.push_str(" GENERATED BY DEFAULT AS IDENTITY"),
                    Engine::Mysql => {
                        def.push_str(" AUTO_INCREMENT");
                        *auto_increment = Some(col.name.clone());
                    }
                }
            } else {
                items.push(self.item(
                    Category::Columns,
                    &object,
                    Finding {
                        code: "IDENTITY",
                        severity: Severity::Medium,
                        effort: Some(Effort::Simple),
                        message: format!("the column's generator cannot be declared on a {ty} column of the target (one AUTO_INCREMENT per MySQL table, integer identities on PostgreSQL)"),
                        action: "Create a sequence or trigger that hands out new values, or change the column type.",
                        source_sql: format!("{} {} {}", col.name, col.type_sql, col.default.clone().unwrap_or_default()),
                        proposed_sql: None,
                    },
                ));
            }
        } else if let Some(dflt) = &col.default {
            if let Some(sql) = self.default(&object, col, &ty, dflt, &mut items) {
                def.push_str(&format!(" DEFAULT {sql}"));
            }
        }
        if col.not_null && !(identity && self.to == Engine::Postgres && self.from() == Engine::Postgres) {
            def.push_str(" NOT NULL");
        }
        if self.to == Engine::Mysql && d.on_update.contains(&col.name) {
            def.push_str(" ON UPDATE CURRENT_TIMESTAMP");
        }
        if self.to == Engine::Mysql {
            if let Some((_, c)) = d.column_comments.iter().find(|(n, _)| n == &col.name) {
                def.push_str(&format!(" COMMENT {}", my_literal(c)));
            }
        }
        ColumnOut { def, items, identity }
    }

    /// Notes on how a value type travels, for cross-engine columns.
    fn type_notes(&mut self, object: &str, col: &Column, ty: &str, items: &mut Vec<String>) {
        if self.from() == self.to {
            return;
        }
        let note = match self.from() {
            Engine::Mysql => match MysqlType::parse(&col.type_sql).base.as_str() {
                "set" => Some(("TYPE-SET", Severity::Low, "SET becomes text holding the comma-separated members; set functions (FIND_IN_SET) do not apply", "Use text[] or a join table if the application queries members.")),
                "enum" => Some(("TYPE-ENUM", Severity::Info, "ENUM becomes text with a CHECK on its labels (ordering by the enum's index is lost)", "None, unless queries sort by the enum's position.")),
                "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring" | "multipolygon" | "geometrycollection" => Some(("TYPE-SPATIAL", Severity::Medium, "spatial values are kept as bytea in MySQL's internal form (SRID + WKB); spatial functions need PostGIS", "Install PostGIS and convert the column with ST_GeomFromWKB(substring(col from 5), get_byte...) after the migration.")),
                _ => None,
            },
            Engine::Postgres => {
                let base = col.type_sql.trim_end_matches("[]");
                if col.type_sql.ends_with("[]") {
                    Some(("TYPE-ARRAY", Severity::Low, "arrays become JSON arrays", "Queries using array operators must use JSON functions."))
                } else if ty == "longtext" && !matches!(base, "text") && !base.starts_with("character") {
                    Some(("TYPE-TEXT-FORM", Severity::Low, "the value keeps its PostgreSQL text form in LONGTEXT (no MySQL type holds it exactly)", "Check how the application parses the value."))
                } else if col.type_sql.starts_with("timestamp") && col.type_sql.contains("with time zone") {
                    Some(("TYPE-TIMESTAMPTZ", Severity::Info, "timestamptz becomes DATETIME holding UTC", "Read and write the column in UTC."))
                } else {
                    None
                }
            }
        };
        if let Some((code, severity, message, action)) = note {
            let id = self.item(
                Category::Columns,
                object,
                Finding {
                    code,
                    severity,
                    effort: (severity <= Severity::Low)
                        .then_some(if severity == Severity::Medium {
                            Effort::Medium
                        } else {
                            Effort::Simple
                        })
                        .filter(|_| severity != Severity::Info),
                    message: format!("{} {} → {ty}: {message}", col.name, col.type_sql),
                    action,
                    source_sql: format!("{} {}", col.name, col.type_sql),
                    proposed_sql: None,
                },
            );
            items.push(id);
        }
    }

    fn default(&mut self, object: &str, col: &Column, ty: &str, dflt: &str, items: &mut Vec<String>) -> Option<String> {
        if self.from() == self.to {
            return Some(dflt.to_string());
        }
        if dflt.contains("0000-00-00") {
            items.push(self.untranslatable(
                Category::Columns,
                object,
                "DEFAULT",
                &Untranslatable("zero dates do not exist on PostgreSQL".into()),
                "the column is created without a default",
                dflt,
            ));
            return None;
        }
        if let Some(p) = portable_default(dflt) {
            return Some(p);
        }
        // `'happy'::mood` on a column that becomes text: the literal.
        if self.from() == Engine::Postgres {
            if let Some((lit, cast)) = dflt.rsplit_once("::") {
                let textual = matches!(ty, "longtext") || ty.starts_with("varchar") || ty.starts_with("char(");
                if textual && cast == col.type_sql && portable_default(lit).is_some() {
                    return portable_default(lit);
                }
            }
        }
        match translate::expr(self.from(), self.to, dflt) {
            Ok(tr) => {
                self.notes(Category::Columns, object, &tr.notes, dflt, items);
                let plain = tr.sql.starts_with("CURRENT_TIMESTAMP") || tr.sql.starts_with("CURRENT_DATE");
                // MySQL wants the default's precision to be the column's.
                if let (true, Some(fsp)) = (tr.sql == "CURRENT_TIMESTAMP", ty.strip_prefix("datetime")) {
                    return Some(format!("CURRENT_TIMESTAMP{fsp}"));
                }
                Some(if self.to == Engine::Mysql && !plain {
                    format!("({})", tr.sql)
                } else {
                    tr.sql
                })
            }
            Err(u) => {
                items.push(self.untranslatable(
                    Category::Columns,
                    object,
                    "DEFAULT",
                    &u,
                    "the column is created without a default",
                    dflt,
                ));
                None
            }
        }
    }

    fn untranslatable(
        &mut self,
        category: Category,
        object: &str,
        what: &'static str,
        u: &Untranslatable,
        effect: &str,
        source: &str,
    ) -> String {
        let code = match what {
            "GENERATED" => "GENERATED-EXPR",
            "DEFAULT" => "DEFAULT-EXPR",
            "CHECK" => "CHECK-EXPR",
            "VIEW" => "VIEW-SQL",
            _ => "SQL",
        };
        self.item(
            category,
            object,
            Finding {
                code,
                severity: Severity::Medium,
                effort: Some(Effort::Simple),
                message: format!("{u}; {effect}"),
                action: "Write the target expression by hand and add it to post-data.sql.",
                source_sql: source.to_string(),
                proposed_sql: None,
            },
        )
    }

    /// Translation notes become low items on the object.
    fn notes(&mut self, category: Category, object: &str, notes: &[String], source: &str, items: &mut Vec<String>) {
        for n in notes {
            let id = self.item(
                category,
                object,
                Finding {
                    code: "SQL-SEMANTICS",
                    severity: Severity::Low,
                    effort: Some(Effort::Simple),
                    message: n.clone(),
                    action: "Review the converted expression.",
                    source_sql: source.to_string(),
                    proposed_sql: None,
                },
            );
            if !items.contains(&id) {
                items.push(id);
            }
        }
    }

    /// MySQL partitioning as PostgreSQL declarative partitions (the clause
    /// and the child tables), or the MySQL clause for a MySQL target.
    fn partitioning(
        &mut self,
        t: &TableSchema,
        d: &TableDetails,
        qt: &str,
        items: &mut Vec<String>,
    ) -> Option<(String, Vec<String>)> {
        let tname = t.display_name();
        if self.from() == Engine::Postgres {
            t.partition_key.as_ref()?;
            if self.to == Engine::Postgres {
                let children = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let mut s = format!(
                            "CREATE TABLE {} PARTITION OF {} {}",
                            self.qualified(&p.schema, &p.name),
                            self.qualified(&p.parent_schema, &p.parent_name),
                            p.bound
                        );
                        if let Some(k) = &p.partition_key {
                            s.push_str(&format!(" PARTITION BY {k}"));
                        }
                        s.push(';');
                        s
                    })
                    .collect();
                return Some((t.partition_key.clone().unwrap_or_default(), children));
            }
            items.push(self.item(
                Category::Tables,
                &tname,
                Finding {
                    code: "PARTITION",
                    severity: Severity::Medium,
                    effort: Some(Effort::Simple),
                    message: format!(
                        "PARTITION BY {} with {} partitions is created as one table (MySQL cannot keep foreign keys on partitioned tables, and bounds need rewriting as VALUES LESS THAN)",
                        t.partition_key.clone().unwrap_or_default(),
                        t.partitions.len()
                    ),
                    action: "Partition the table by hand after the load if its size calls for it.",
                    source_sql: t.partitions.iter().map(|p| format!("{}.{} {}", p.schema, p.name, p.bound)).collect::<Vec<_>>().join("\n"),
                    proposed_sql: None,
                },
            ));
            return None;
        }
        let p = d.partitioning.as_ref()?;
        if self.to == Engine::Mysql {
            let parts: Vec<String> = p
                .partitions
                .iter()
                .map(|(name, desc)| {
                    let values = if p.method.starts_with("RANGE") {
                        if desc == "MAXVALUE" {
                            " VALUES LESS THAN MAXVALUE".to_string()
                        } else {
                            format!(" VALUES LESS THAN ({desc})")
                        }
                    } else if p.method.starts_with("LIST") {
                        format!(" VALUES IN ({desc})")
                    } else {
                        String::new()
                    };
                    format!("PARTITION {}{values}", self.q(name))
                })
                .collect();
            return Some((
                format!("PARTITION BY {} ({})\n({})", p.method, p.expression, parts.join(",\n ")),
                vec![],
            ));
        }
        let column = p.expression.trim().trim_matches('`').to_string();
        let plain = t.column(&column).is_some();
        let source_sql = format!(
            "PARTITION BY {} ({}) ({})",
            p.method,
            p.expression,
            p.partitions
                .iter()
                .map(|(n, d)| format!("{n}: {d}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let method = p.method.split_whitespace().next().unwrap_or_default();
        if !plain || !matches!(method, "RANGE" | "LIST" | "HASH" | "KEY") {
            items.push(self.item(
                Category::Tables,
                &tname,
                Finding {
                    code: "PARTITION",
                    severity: Severity::Medium,
                    effort: Some(Effort::Simple),
                    message: format!("partitioning on {} ({}) has no PostgreSQL form with a primary key (keys over expressions are refused); the table is created unpartitioned", p.method, p.expression),
                    action: "Partition on a column (e.g. RANGE on the date column) by hand if the table's size calls for it.",
                    source_sql,
                    proposed_sql: None,
                },
            ));
            return None;
        }
        let qc = self.q(&column);
        let n = p.partitions.len();
        let mut children = vec![];
        let mut lower = "MINVALUE".to_string();
        for (i, (name, desc)) in p.partitions.iter().enumerate() {
            let bound = match method {
                "RANGE" => {
                    let upper = if desc == "MAXVALUE" {
                        "MAXVALUE".to_string()
                    } else {
                        desc.clone()
                    };
                    let b = format!("FOR VALUES FROM ({lower}) TO ({upper})");
                    lower = upper;
                    b
                }
                "LIST" => format!("FOR VALUES IN ({desc})"),
                _ => format!("FOR VALUES WITH (MODULUS {n}, REMAINDER {i})"),
            };
            children.push(format!(
                "CREATE TABLE {} PARTITION OF {qt} {bound};",
                self.qualified(&t.schema, &format!("{}_{name}", t.name))
            ));
        }
        let key = match method {
            "RANGE" => format!("RANGE ({qc})"),
            "LIST" => format!("LIST ({qc})"),
            _ => format!("HASH ({qc})"),
        };
        if method == "HASH" || method == "KEY" {
            items.push(self.item(
                Category::Tables,
                &tname,
                Finding {
                    code: "PARTITION-HASH",
                    severity: Severity::Info,
                    effort: None,
                    message: "hash partitions keep their number but PostgreSQL hashes differently: rows land in other partitions".into(),
                    action: "None.",
                    source_sql: source_sql.clone(),
                    proposed_sql: None,
                },
            ));
        }
        Some((key, children))
    }

    /// MySQL `ON UPDATE CURRENT_TIMESTAMP` as a PostgreSQL trigger.
    fn on_update(&mut self, t: &TableSchema, d: &TableDetails, qt: &str) {
        if self.to != Engine::Postgres || d.on_update.is_empty() || self.from() != Engine::Mysql {
            return;
        }
        let fname = self.qualified(&t.schema, &format!("{}_on_update", t.name));
        let sets: String = d
            .on_update
            .iter()
            .map(|c| {
                // As MySQL: only when the row changes and the statement left the column alone.
                let c = self.q(c);
                format!("  IF new IS DISTINCT FROM old AND new.{c} IS NOT DISTINCT FROM old.{c} THEN\n    new.{c} := CURRENT_TIMESTAMP;\n  END IF;\n")
            })
            .collect();
        let object = format!("{}.{}_on_update", t.schema, t.name);
        self.after_cutover(
            &object,
            format!(
                "CREATE OR REPLACE FUNCTION {fname}() RETURNS trigger LANGUAGE plpgsql AS $ferry$\nBEGIN\n{sets}  RETURN new;\nEND\n$ferry$;\nCREATE TRIGGER {} BEFORE UPDATE ON {qt} FOR EACH ROW EXECUTE FUNCTION {fname}();",
                self.q(&format!("{}_on_update", t.name))
            ),
        );
        let id = self.item(
            Category::Triggers,
            &object,
            Finding {
                code: "ON-UPDATE",
                severity: Severity::Info,
                effort: None,
                message: format!(
                    "ON UPDATE CURRENT_TIMESTAMP on {} becomes a BEFORE UPDATE trigger",
                    d.on_update.join(", ")
                ),
                action: "None.",
                source_sql: String::new(),
                proposed_sql: None,
            },
        );
        self.object(Category::Triggers, &object, vec![id]);
    }
}

impl Converter<'_> {
    fn indexes(&mut self, t: &TableSchema, qt: &str) {
        let tname = t.display_name();
        if self.from() == Engine::Postgres && self.to == Engine::Postgres {
            for idx in &t.indexes {
                let name = idx
                    .split(" ON ")
                    .next()
                    .unwrap_or_default()
                    .rsplit(' ')
                    .next()
                    .unwrap_or_default();
                self.post(&tname, format!("{idx};"));
                self.object(
                    Category::Indexes,
                    &format!("{tname}.{}", name.trim_matches('"')),
                    vec![],
                );
            }
            return;
        }
        let mut list: Vec<(Index, Option<String>)> = t.index_list.iter().map(|i| (i.clone(), None)).collect();
        if self.from() == Engine::Postgres {
            for ddl in &t.indexes {
                match postgres_index(ddl) {
                    Some(i) => list.push((i, Some(ddl.clone()))),
                    None => {
                        let name = ddl
                            .split(" ON ")
                            .next()
                            .unwrap_or_default()
                            .rsplit(' ')
                            .next()
                            .unwrap_or_default()
                            .trim_matches('"')
                            .to_string();
                        let object = format!("{tname}.{name}");
                        let id = self.item(
                            Category::Indexes,
                            &object,
                            Finding {
                                code: "INDEX-KIND",
                                severity: Severity::Medium,
                                effort: Some(Effort::Simple),
                                message: "expression, partial and non-btree indexes have no exact MySQL form; the index is not created".into(),
                                action: "Create an equivalent index by hand (a generated column plus an index for an expression; a full index for a partial one if unique semantics allow).",
                                source_sql: format!("{ddl};"),
                                proposed_sql: None,
                            },
                        );
                        self.object(Category::Indexes, &object, vec![id]);
                    }
                }
            }
        }
        for (idx, source) in list {
            let object = format!("{tname}.{}", idx.name);
            let source_sql = source.unwrap_or_else(|| {
                let cols: Vec<String> = idx
                    .columns
                    .iter()
                    .map(|c| match c.prefix {
                        Some(p) => format!("{}({p})", c.name),
                        None => c.name.clone(),
                    })
                    .collect();
                format!(
                    "{} {}INDEX {} ({})",
                    idx.method,
                    if idx.unique { "UNIQUE " } else { "" },
                    idx.name,
                    cols.join(", ")
                )
            });
            let mut items = vec![];
            let sql = match self.to {
                Engine::Postgres => self.pg_index(t, &idx, qt, &object, &source_sql, &mut items),
                Engine::Mysql => self.my_index(t, &idx, qt, &object, &source_sql, &mut items),
            };
            if let Some(sql) = sql {
                self.post(&tname, sql);
            }
            self.object(Category::Indexes, &object, items);
        }
    }

    fn pg_index(
        &mut self,
        t: &TableSchema,
        idx: &Index,
        qt: &str,
        object: &str,
        source_sql: &str,
        items: &mut Vec<String>,
    ) -> Option<String> {
        // PostgreSQL index names are per schema, MySQL's per table.
        let name = self.q(&format!("{}_{}", t.name, idx.name));
        let cols: Vec<String> = idx.columns.iter().map(|c| self.q(&c.name)).collect();
        match idx.method.as_str() {
            "FULLTEXT" => {
                let doc = cols
                    .iter()
                    .map(|c| format!("coalesce({c}, '')"))
                    .collect::<Vec<_>>()
                    .join(" || ' ' || ");
                items.push(self.item(
                    Category::Indexes,
                    object,
                    Finding {
                        code: "INDEX-FULLTEXT",
                        severity: Severity::Medium,
                        effort: Some(Effort::Medium),
                        message: "FULLTEXT becomes a GIN index over to_tsvector('simple', ...); MATCH ... AGAINST queries must be rewritten with @@ and ranking differs".into(),
                        action: "Rewrite full-text queries as to_tsvector('simple', ...) @@ websearch_to_tsquery(...) using the same expression as the index.",
                        source_sql: source_sql.to_string(),
                        proposed_sql: None,
                    },
                ));
                Some(format!(
                    "CREATE INDEX {name} ON {qt} USING gin (to_tsvector('simple', {doc}));"
                ))
            }
            "SPATIAL" => {
                items.push(self.item(
                    Category::Indexes,
                    object,
                    Finding {
                        code: "INDEX-SPATIAL",
                        severity: Severity::Medium,
                        effort: Some(Effort::Medium),
                        message: "SPATIAL indexes need PostGIS; the index is not created (the column is bytea)".into(),
                        action: "With PostGIS, convert the column to geometry and create a GiST index.",
                        source_sql: source_sql.to_string(),
                        proposed_sql: Some(format!("CREATE INDEX {name} ON {qt} USING gist ({});", cols.join(", "))),
                    },
                ));
                None
            }
            _ => {
                if idx.columns.iter().any(|c| c.prefix.is_some()) {
                    items.push(self.item(
                        Category::Indexes,
                        object,
                        Finding {
                            code: "INDEX-PREFIX",
                            severity: if idx.unique { Severity::Medium } else { Severity::Info },
                            effort: idx.unique.then_some(Effort::Simple),
                            message: if idx.unique {
                                "a UNIQUE prefix index is stricter than uniqueness of the whole value; the index is not created".into()
                            } else {
                                "prefix lengths are dropped: PostgreSQL indexes the whole value".into()
                            },
                            action: if idx.unique { "Create a unique index on left(col, n) if the prefix rule is wanted." } else { "None." },
                            source_sql: source_sql.to_string(),
                            proposed_sql: None,
                        },
                    ));
                    if idx.unique {
                        return None;
                    }
                }
                Some(format!(
                    "CREATE {}INDEX {name} ON {qt} ({});",
                    if idx.unique { "UNIQUE " } else { "" },
                    cols.join(", ")
                ))
            }
        }
    }

    fn my_index(
        &mut self,
        t: &TableSchema,
        idx: &Index,
        qt: &str,
        object: &str,
        source_sql: &str,
        items: &mut Vec<String>,
    ) -> Option<String> {
        let mut cols = vec![];
        for c in &idx.columns {
            let ty = t
                .column(&c.name)
                .and_then(|col| convert_type(self.from(), Engine::Mysql, &col.type_sql).ok())
                .unwrap_or_default();
            let blob = ty.contains("text") || ty.contains("blob") || ty == "json";
            // MariaDB reports a SUB_PART for SPATIAL keys, which take none.
            let declared = c.prefix.filter(|_| idx.method != "SPATIAL" && idx.method != "FULLTEXT");
            let prefix = match (declared, blob && idx.method != "FULLTEXT" && idx.method != "SPATIAL") {
                (Some(p), _) => Some(p),
                (None, true) if !idx.unique => {
                    items.push(self.item(
                        Category::Indexes,
                        object,
                        Finding {
                            code: "INDEX-TEXT-KEY",
                            severity: Severity::Info,
                            effort: None,
                            message: format!("{} is {ty} on MySQL, which indexes a prefix: the index covers its first 255 characters", c.name),
                            action: "None.",
                            source_sql: source_sql.to_string(),
                            proposed_sql: None,
                        },
                    ));
                    Some(255)
                }
                (None, true) => {
                    items.push(self.item(
                        Category::Indexes,
                        object,
                        Finding {
                            code: "INDEX-TEXT-KEY",
                            severity: Severity::High,
                            effort: Some(Effort::Simple),
                            message: format!("{} is {ty} on MySQL, which can only index a prefix: uniqueness of the whole value cannot be declared; the unique index is not created", c.name),
                            action: "Change the column to VARCHAR(n) in pre-data.sql (if every value fits) and add the unique key.",
                            source_sql: source_sql.to_string(),
                            proposed_sql: Some(format!("ALTER TABLE {qt} MODIFY {} VARCHAR(255); ALTER TABLE {qt} ADD UNIQUE KEY {} ({});", self.q(&c.name), self.q(&idx.name), self.q(&c.name))),
                        },
                    ));
                    return None;
                }
                (None, false) => None,
            };
            cols.push(match prefix {
                Some(p) => format!("{}({p})", self.q(&c.name)),
                None => self.q(&c.name),
            });
        }
        let kind = match (idx.method.as_str(), idx.unique) {
            ("FULLTEXT", _) => "FULLTEXT INDEX",
            ("SPATIAL", _) => "SPATIAL INDEX",
            (_, true) => "UNIQUE INDEX",
            _ => "INDEX",
        };
        Some(format!(
            "ALTER TABLE {qt} ADD {kind} {} ({});",
            self.q(&idx.name),
            cols.join(", ")
        ))
    }

    fn constraints(&mut self, t: &TableSchema, d: &TableDetails, qt: &str) {
        let tname = t.display_name();
        let mut checks: Vec<(String, String)> = d
            .checks
            .iter()
            .map(|c| (c.name.clone(), c.definition.clone()))
            .collect();
        // Checks built here, already in the target's SQL.
        let mut ready: Vec<(String, String)> = vec![];
        for c in &t.constraints {
            let object = format!("{tname}.{}", c.name);
            match c.kind {
                ConstraintKind::Check => {
                    let inner = c
                        .definition
                        .trim()
                        .strip_prefix("CHECK ")
                        .unwrap_or(&c.definition)
                        .trim();
                    if self.from() == self.to {
                        self.post(
                            &tname,
                            format!("ALTER TABLE {qt} ADD CONSTRAINT {} {};", self.q(&c.name), c.definition),
                        );
                        self.object(Category::Constraints, &object, vec![]);
                    } else {
                        checks.push((c.name.clone(), inner.to_string()));
                    }
                }
                ConstraintKind::Unique => {
                    if self.to == Engine::Postgres {
                        self.post(
                            &tname,
                            format!("ALTER TABLE {qt} ADD CONSTRAINT {} {};", self.q(&c.name), c.definition),
                        );
                        self.object(Category::Constraints, &object, vec![]);
                    } else if let Some(idx) = unique_constraint(c) {
                        let mut items = vec![];
                        let sql = self.my_index(t, &idx, qt, &object, &c.definition, &mut items);
                        if let Some(sql) = sql {
                            self.post(&tname, sql);
                        }
                        self.object(Category::Constraints, &object, items);
                    } else {
                        let id = self.item(
                            Category::Constraints,
                            &object,
                            Finding {
                                code: "CONSTRAINT-KIND",
                                severity: Severity::Medium,
                                effort: Some(Effort::Simple),
                                message: "this unique constraint has options MySQL cannot declare; it is not created"
                                    .into(),
                                action: "Declare a unique key by hand.",
                                source_sql: c.definition.clone(),
                                proposed_sql: None,
                            },
                        );
                        self.object(Category::Constraints, &object, vec![id]);
                    }
                }
                ConstraintKind::Exclusion => {
                    if self.to == Engine::Postgres {
                        self.post(
                            &tname,
                            format!("ALTER TABLE {qt} ADD CONSTRAINT {} {};", self.q(&c.name), c.definition),
                        );
                        self.object(Category::Constraints, &object, vec![]);
                    } else {
                        let id = self.item(
                            Category::Constraints,
                            &object,
                            Finding {
                                code: "CONSTRAINT-KIND",
                                severity: Severity::High,
                                effort: Some(Effort::Medium),
                                message: "MySQL has no exclusion constraints; the rule is not enforced".into(),
                                action: "Enforce the rule in the application or with triggers.",
                                source_sql: c.definition.clone(),
                                proposed_sql: None,
                            },
                        );
                        self.object(Category::Constraints, &object, vec![id]);
                    }
                }
                ConstraintKind::ForeignKey => self.foreign_key(&tname, qt, &c.name, &c.definition),
            }
        }
        if self.from() == Engine::Mysql {
            // ENUM columns keep their domain as a CHECK (the data path's mapping is text).
            if self.to == Engine::Postgres {
                for col in &t.columns {
                    let ty = MysqlType::parse(&col.type_sql);
                    if ty.base == "enum" {
                        ready.push((
                            format!("{}_{}_check", t.name, col.name),
                            format!("{} IN ({})", self.q(&col.name), ty.args.unwrap_or("''")),
                        ));
                    }
                }
            }
        } else if self.to == Engine::Mysql {
            for col in &t.columns {
                if let Some(ty) = self.cat.types.iter().find(|u| {
                    u.kind == UserTypeKind::Enum
                        && (col.type_sql.trim_matches('"') == u.def.name
                            || col.type_sql == format!("{}.{}", u.def.schema, u.def.name))
                }) {
                    let labels: Vec<String> = ty.labels.iter().map(|l| my_literal(l)).collect();
                    ready.push((
                        format!("{}_{}_check", t.name, col.name),
                        format!("{} IN ({})", self.q(&col.name), labels.join(", ")),
                    ));
                }
            }
        }
        for (name, sql) in ready {
            self.post(
                &tname,
                format!("ALTER TABLE {qt} ADD CONSTRAINT {} CHECK ({sql});", self.q(&name)),
            );
            self.object(Category::Constraints, &format!("{tname}.{name}"), vec![]);
        }
        for (name, clause) in checks {
            let object = format!("{tname}.{name}");
            if self.from() == self.to {
                self.post(
                    &tname,
                    format!("ALTER TABLE {qt} ADD CONSTRAINT {} CHECK ({clause});", self.q(&name)),
                );
                self.object(Category::Constraints, &object, vec![]);
                continue;
            }
            let translated = translate::expr(self.from(), self.to, &clause);
            let mut items = vec![];
            match translated {
                Ok(tr) => {
                    self.notes(Category::Constraints, &object, &tr.notes, &clause, &mut items);
                    self.post(
                        &tname,
                        format!("ALTER TABLE {qt} ADD CONSTRAINT {} CHECK ({});", self.q(&name), tr.sql),
                    );
                }
                Err(u) => items.push(self.untranslatable(
                    Category::Constraints,
                    &object,
                    "CHECK",
                    &u,
                    "the constraint is not created",
                    &clause,
                )),
            }
            self.object(Category::Constraints, &object, items);
        }
    }

    fn foreign_key(&mut self, tname: &str, qt: &str, name: &str, definition: &str) {
        let object = format!("{tname}.{name}");
        let unsupported =
            self.to == Engine::Mysql && (definition.contains("DEFERRABLE") || definition.contains("MATCH"));
        if unsupported {
            let id = self.item(
                Category::Constraints,
                &object,
                Finding {
                    code: "FK-OPTIONS",
                    severity: Severity::Medium,
                    effort: Some(Effort::Simple),
                    message: "MySQL cannot declare deferrable or MATCH FULL foreign keys; the key is not created"
                        .into(),
                    action: "Declare it without those options if the application never relies on deferral.",
                    source_sql: definition.to_string(),
                    proposed_sql: None,
                },
            );
            self.object(Category::Constraints, &object, vec![id]);
            return;
        }
        // Both connectors keep foreign keys in ANSI quoting (MySQL reads it
        // with ANSI_QUOTES, which the foreign-key section of post-data sets).
        let sql = format!("ALTER TABLE {qt} ADD CONSTRAINT {} {definition};", self.q(name));
        let sql = if self.to == Engine::Mysql {
            let ansi_table = qt.replace('`', "\"");
            format!(
                "ALTER TABLE {ansi_table} ADD CONSTRAINT \"{}\" {definition};",
                name.replace('"', "\"\"")
            )
        } else {
            sql
        };
        self.out.foreign_keys.push(Ddl {
            object: object.clone(),
            sql,
        });
        self.object(Category::Constraints, &object, vec![]);
    }
}

/// Effort to rewrite a body by hand, by its length.
fn rewrite_effort(body: &str) -> Effort {
    match body.lines().filter(|l| !l.trim().is_empty()).count() {
        0..=10 => Effort::Simple,
        11..=50 => Effort::Medium,
        _ => Effort::Complex,
    }
}

/// Source text as SQL comment lines, for skeletons.
fn commented(body: &str) -> String {
    body.lines().map(|l| format!("  -- {l}\n")).collect()
}

/// One statement of a simple body: an assignment to a NEW column, or DML.
fn body_statement(from: Engine, to: Engine, stmt: &str, schema: &str) -> Result<translate::Translated, Untranslatable> {
    let first = stmt.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
    // `SET NEW.a = x, NEW.b = y` (MySQL) or `NEW.a := x` (PL/pgSQL).
    let assignments: Option<Vec<(&str, &str)>> = match (from, first.as_str()) {
        (Engine::Mysql, "SET") => Some(
            split_top_level(stmt[3..].trim(), ',')
                .into_iter()
                .map(|a| {
                    a.split_once('=')
                        .ok_or_else(|| Untranslatable(format!("assignment {a}")))
                })
                .collect::<Result<_, _>>()?,
        ),
        (Engine::Postgres, _) if stmt.contains(":=") => stmt.split_once(":=").map(|p| vec![p]),
        _ => None,
    };
    if let Some(assignments) = assignments {
        let mut out = vec![];
        let mut notes = vec![];
        for (lhs, rhs) in assignments {
            let (rec, col) = lhs
                .trim()
                .split_once('.')
                .ok_or_else(|| Untranslatable(format!("assignment to {lhs}")))?;
            if !rec.trim().eq_ignore_ascii_case("new") {
                return Err(Untranslatable(format!("assignment to {lhs}")));
            }
            let col = col.trim().trim_matches(['`', '"']);
            let tr = translate::trigger_expr(from, to, rhs.trim())?;
            notes.extend(tr.notes);
            out.push(match to {
                Engine::Postgres => format!("new.{} := {};", ident(to, col), tr.sql),
                Engine::Mysql => format!("SET NEW.{} = {};", ident(to, col), tr.sql),
            });
        }
        return Ok(translate::Translated {
            sql: out.join("\n  "),
            notes,
        });
    }
    let tr = translate::dml(from, to, stmt, schema)?;
    Ok(translate::Translated {
        sql: format!("{};", tr.sql),
        notes: tr.notes,
    })
}

/// Splits at `sep` outside parentheses and quotes.
fn split_top_level(s: &str, sep: char) -> Vec<&str> {
    let (mut out, mut depth, mut quote, mut start) = (vec![], 0i32, None::<char>, 0);
    for (i, ch) in s.char_indices() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"' | '`') => quote = Some(ch),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, c) if c == sep && depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

impl Converter<'_> {
    fn params(&self, r: &Routine) -> Result<Vec<String>, Untranslatable> {
        r.params
            .iter()
            .map(|p| {
                if !p.mode.eq_ignore_ascii_case("IN") {
                    return Err(Untranslatable(format!("{} parameter {}", p.mode, p.name)));
                }
                let ty = convert_type(self.from(), self.to, &p.type_sql).map_err(|e| Untranslatable(e.to_string()))?;
                Ok(match self.to {
                    Engine::Postgres => format!("{} {ty}", self.q(&p.name)),
                    Engine::Mysql => format!("IN {} {ty}", self.q(&p.name)),
                })
            })
            .collect()
    }

    /// The converted routine, or why not.
    fn routine_sql(&self, r: &Routine) -> Result<(String, Vec<String>), Untranslatable> {
        let params = self.params(r)?.join(", ");
        let qn = self.qualified(&r.schema, &r.name);
        let returns = match &r.returns {
            Some(t) => Some(convert_type(self.from(), self.to, t).map_err(|e| Untranslatable(e.to_string()))?),
            None => None,
        };
        match (r.kind, self.from(), &returns) {
            (RoutineKind::Function, Engine::Mysql, Some(ret)) => {
                // `RETURN expr` bodies become SQL functions.
                let body = r.body.trim();
                let expr = body
                    .strip_prefix("RETURN ")
                    .or_else(|| body.strip_prefix("return "))
                    .ok_or_else(|| Untranslatable("a function body other than a single RETURN".into()))?;
                let tr = translate::expr(Engine::Mysql, Engine::Postgres, expr.trim().trim_end_matches(';'))?;
                Ok((
                    format!(
                        "CREATE OR REPLACE FUNCTION {qn}({params}) RETURNS {ret} LANGUAGE sql {} AS $ferry$\n  SELECT {}\n$ferry$;",
                        if r.deterministic { "IMMUTABLE" } else { "VOLATILE" },
                        tr.sql
                    ),
                    tr.notes,
                ))
            }
            (RoutineKind::Function, Engine::Postgres, Some(ret)) => {
                if r.language != "sql" {
                    return Err(Untranslatable(format!("a {} function body", r.language)));
                }
                let expr = translate::lone_select(Engine::Postgres, &r.body)
                    .ok_or_else(|| Untranslatable("a SQL function body other than SELECT <expression>".into()))?;
                let tr = translate::expr(Engine::Postgres, Engine::Mysql, &expr)?;
                Ok((
                    format!(
                        "CREATE FUNCTION {qn}({}) RETURNS {ret}{}\nRETURN {};",
                        params.replace("IN ", ""),
                        if r.deterministic { " DETERMINISTIC" } else { "" },
                        tr.sql
                    ),
                    tr.notes,
                ))
            }
            (RoutineKind::Procedure, _, _) => {
                if self.from() == Engine::Postgres && r.language != "plpgsql" && r.language != "sql" {
                    return Err(Untranslatable(format!("a {} procedure body", r.language)));
                }
                let stmts = translate::body_statements(self.from(), &r.body)
                    .ok_or_else(|| Untranslatable("a body with blocks, declarations, loops or handlers".into()))?;
                let mut lines = vec![];
                let mut notes = vec![];
                for s in &stmts {
                    let first = s.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
                    if !matches!(first.as_str(), "INSERT" | "UPDATE" | "DELETE") {
                        return Err(Untranslatable(format!("statement {first} in the body")));
                    }
                    let tr = body_statement(self.from(), self.to, s, &r.schema)?;
                    notes.extend(tr.notes);
                    lines.push(tr.sql);
                }
                Ok((
                    match self.to {
                        Engine::Postgres => format!(
                            "CREATE OR REPLACE PROCEDURE {qn}({params}) LANGUAGE plpgsql AS $ferry$\nBEGIN\n  {}\nEND\n$ferry$;",
                            lines.join("\n  ")
                        ),
                        Engine::Mysql => format!(
                            "DELIMITER ;;\nCREATE PROCEDURE {qn}({params})\nBEGIN\n  {}\nEND;;\nDELIMITER ;",
                            lines.join("\n  ")
                        ),
                    },
                    notes,
                ))
            }
            _ => Err(Untranslatable("a function without a return type".into())),
        }
    }

    fn routine(&mut self, r: &Routine) {
        let category = match r.kind {
            RoutineKind::Function => Category::Functions,
            RoutineKind::Procedure => Category::Procedures,
        };
        let name = r.display_name();
        if self.from() == self.to {
            let sql = match self.to {
                Engine::Postgres => format!("{};", r.definition.trim_end().trim_end_matches(';')),
                // SHOW CREATE names the routine without its database.
                Engine::Mysql => format!(
                    "USE {};\nDELIMITER ;;\n{};;\nDELIMITER ;",
                    self.q(&r.schema),
                    r.definition.trim_end().trim_end_matches(';')
                ),
            };
            self.post(&name, sql);
            self.object(category, &name, vec![]);
            return;
        }
        match self.routine_sql(r) {
            Ok((sql, notes)) => {
                let mut items = vec![];
                self.notes(category, &name, &notes, &r.definition, &mut items);
                self.post(&name, sql);
                self.object(category, &name, items);
            }
            Err(u) => {
                let qn = self.qualified(&r.schema, &r.name);
                let params = self.params(r).map(|p| p.join(", ")).unwrap_or_default();
                let kind = if r.kind == RoutineKind::Function {
                    "FUNCTION"
                } else {
                    "PROCEDURE"
                };
                let ret = r
                    .returns
                    .as_ref()
                    .and_then(|t| convert_type(self.from(), self.to, t).ok());
                let skeleton = match self.to {
                    Engine::Postgres => format!(
                        "CREATE OR REPLACE {kind} {qn}({params}){} LANGUAGE plpgsql AS $ferry$\nBEGIN\n{}  NULL; -- rewrite the body above in PL/pgSQL\nEND\n$ferry$;",
                        ret.map(|t| format!(" RETURNS {t}")).unwrap_or_default(),
                        commented(&r.body)
                    ),
                    Engine::Mysql => format!(
                        "DELIMITER ;;\nCREATE {kind} {qn}({params}){}\nBEGIN\n{}  -- rewrite the body above for MySQL\nEND;;\nDELIMITER ;",
                        ret.map(|t| format!(" RETURNS {t}")).unwrap_or_default(),
                        commented(&r.body)
                    ),
                };
                let id = self.item(
                    category,
                    &name,
                    Finding {
                        code: "ROUTINE-BODY",
                        severity: Severity::High,
                        effort: Some(rewrite_effort(&r.body)),
                        message: format!("the {} is not converted: {u}", kind.to_ascii_lowercase()),
                        action: "Rewrite the body for the target (the proposed skeleton has the signature) and add it to post-data.sql.",
                        source_sql: r.definition.clone(),
                        proposed_sql: Some(skeleton),
                    },
                );
                self.object(category, &name, vec![id]);
            }
        }
    }

    fn view(&mut self, v: &View) {
        let name = format!("{}.{}", v.schema, v.name);
        let qn = self.qualified(&v.schema, &v.name);
        if self.from() == self.to {
            let sql = if v.materialized {
                format!("CREATE MATERIALIZED VIEW {qn} AS\n{}\nWITH DATA;", v.query)
            } else {
                format!("CREATE VIEW {qn} AS\n{};", v.query)
            };
            self.post(&name, sql);
            self.object(Category::Views, &name, vec![]);
            return;
        }
        match translate::query(self.from(), self.to, &v.query, &v.schema) {
            Ok(tr) => {
                let mut items = vec![];
                self.notes(Category::Views, &name, &tr.notes, &v.definition, &mut items);
                if v.materialized {
                    items.push(self.item(
                        Category::Views,
                        &name,
                        Finding {
                            code: "VIEW-MATERIALIZED",
                            severity: Severity::Medium,
                            effort: Some(Effort::Simple),
                            message: "MySQL has no materialized views; it is not created".into(),
                            action: "Create the proposed table and refresh it on a schedule (or use a plain view if it is cheap enough).",
                            source_sql: v.definition.clone(),
                            proposed_sql: Some(format!("CREATE TABLE {qn} AS\n{};", tr.sql)),
                        },
                    ));
                } else {
                    self.post(&name, format!("CREATE VIEW {qn} AS\n{};", tr.sql));
                }
                self.object(Category::Views, &name, items);
            }
            Err(u) => {
                let id = self.item(
                    Category::Views,
                    &name,
                    Finding {
                        code: "VIEW-SQL",
                        severity: Severity::Medium,
                        effort: Some(Effort::Simple),
                        message: format!("the view is not converted: {u}"),
                        action: "Rewrite the query for the target and add the view to post-data.sql.",
                        source_sql: v.definition.clone(),
                        proposed_sql: None,
                    },
                );
                self.object(Category::Views, &name, vec![id]);
            }
        }
    }

    fn trigger(&mut self, t: &Trigger) {
        let name = format!("{}.{}.{}", t.schema, t.table, t.name);
        let qt = self.qualified(&t.schema, &t.table);
        if self.from() == self.to {
            match self.to {
                Engine::Postgres => {
                    if let Some(f) = t
                        .function
                        .as_ref()
                        .and_then(|f| self.cat.routines.iter().find(|r| r.display_name() == *f))
                    {
                        self.after_cutover(&name, format!("{};", f.definition.trim_end().trim_end_matches(';')));
                    }
                    self.after_cutover(&name, format!("{};", t.definition));
                }
                Engine::Mysql => self.after_cutover(
                    &name,
                    format!(
                        "USE {};\nDELIMITER ;;\n{};;\nDELIMITER ;",
                        self.q(&t.schema),
                        t.definition.trim_end().trim_end_matches(';')
                    ),
                ),
            }
            self.object(Category::Triggers, &name, vec![]);
            return;
        }
        match self.trigger_sql(t, &qt) {
            Ok((sql, notes, mut items)) => {
                self.notes(Category::Triggers, &name, &notes, &t.definition, &mut items);
                self.after_cutover(&name, sql);
                self.object(Category::Triggers, &name, items);
            }
            Err(u) => {
                let event = t.events.join(" OR ");
                let skeleton = match self.to {
                    Engine::Postgres => {
                        let f = self.qualified(&t.schema, &format!("{}_fn", t.name));
                        format!(
                            "CREATE OR REPLACE FUNCTION {f}() RETURNS trigger LANGUAGE plpgsql AS $ferry$\nBEGIN\n{}  RETURN new;\nEND\n$ferry$;\nCREATE TRIGGER {} {} {event} ON {qt} FOR EACH ROW EXECUTE FUNCTION {f}();",
                            commented(&t.body),
                            self.q(&t.name),
                            t.timing
                        )
                    }
                    Engine::Mysql => t
                        .events
                        .iter()
                        .map(|e| {
                            format!(
                                "DELIMITER ;;\nCREATE TRIGGER {} {} {e} ON {qt} FOR EACH ROW\nBEGIN\n{}END;;\nDELIMITER ;",
                                self.qualified(&t.schema, &format!("{}_{}", t.name, e.to_ascii_lowercase())),
                                t.timing,
                                commented(&t.body)
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n"),
                };
                let id = self.item(
                    Category::Triggers,
                    &name,
                    Finding {
                        code: "TRIGGER-BODY",
                        severity: Severity::High,
                        effort: Some(rewrite_effort(&t.body)),
                        message: format!("the trigger is not converted: {u}"),
                        action:
                            "Rewrite the body for the target from the proposed skeleton and add it to post-data.sql.",
                        source_sql: t.definition.clone(),
                        proposed_sql: Some(skeleton),
                    },
                );
                self.object(Category::Triggers, &name, vec![id]);
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn trigger_sql(&mut self, t: &Trigger, qt: &str) -> Result<(String, Vec<String>, Vec<String>), Untranslatable> {
        if !t.for_each_row {
            return Err(Untranslatable("statement-level triggers".into()));
        }
        if t.condition.is_some() {
            return Err(Untranslatable("a WHEN condition or a column list".into()));
        }
        if !matches!(t.timing.as_str(), "BEFORE" | "AFTER") {
            return Err(Untranslatable(format!("{} triggers", t.timing)));
        }
        if t.events.iter().any(|e| e == "TRUNCATE") {
            return Err(Untranslatable("TRUNCATE triggers".into()));
        }
        let mut stmts = translate::body_statements(self.from(), &t.body)
            .ok_or_else(|| Untranslatable("a body with blocks, declarations, loops or handlers".into()))?;
        if self.from() == Engine::Postgres {
            // The trigger function's RETURN decides whether the row is kept.
            let last = stmts.pop().unwrap_or_default().to_ascii_uppercase();
            let keeps = match (
                t.timing.as_str(),
                last.split_whitespace().collect::<Vec<_>>().as_slice(),
            ) {
                ("BEFORE", ["RETURN", "NEW"]) => t.events.iter().all(|e| e != "DELETE"),
                ("BEFORE", ["RETURN", "OLD"]) => t.events.iter().all(|e| e == "DELETE"),
                ("AFTER", ["RETURN", _]) => true,
                _ => false,
            };
            if !keeps {
                return Err(Untranslatable(format!(
                    "a trigger function ending in `{last}` (MySQL triggers cannot skip or replace the row)"
                )));
            }
        }
        let mut lines = vec![];
        let mut notes = vec![];
        for s in &stmts {
            let tr = body_statement(self.from(), self.to, s, &t.schema)?;
            notes.extend(tr.notes);
            lines.push(tr.sql);
        }
        let mut items = vec![];
        let sql = match self.to {
            Engine::Postgres => {
                let f = self.qualified(&t.schema, &format!("{}_fn", t.name));
                let ret = match (t.timing.as_str(), t.events.first().map(String::as_str)) {
                    ("BEFORE", Some("DELETE")) => "old",
                    ("BEFORE", _) => "new",
                    _ => "NULL",
                };
                format!(
                    "CREATE OR REPLACE FUNCTION {f}() RETURNS trigger LANGUAGE plpgsql AS $ferry$\nBEGIN\n  {}\n  RETURN {ret};\nEND\n$ferry$;\nCREATE TRIGGER {} {} {} ON {qt} FOR EACH ROW EXECUTE FUNCTION {f}();",
                    lines.join("\n  "),
                    self.q(&t.name),
                    t.timing,
                    t.events.join(" OR ")
                )
            }
            Engine::Mysql => {
                if t.events.len() > 1 {
                    let name = format!("{}.{}.{}", t.schema, t.table, t.name);
                    items.push(self.item(
                        Category::Triggers,
                        &name,
                        Finding {
                            code: "TRIGGER-EVENTS",
                            severity: Severity::Info,
                            effort: None,
                            message: format!(
                                "MySQL triggers fire on one event: one trigger per event ({})",
                                t.events.join(", ")
                            ),
                            action: "None.",
                            source_sql: t.definition.clone(),
                            proposed_sql: None,
                        },
                    ));
                }
                t.events
                    .iter()
                    .map(|e| {
                        let n = if t.events.len() > 1 { format!("{}_{}", t.name, e.to_ascii_lowercase()) } else { t.name.clone() };
                        format!(
                            "DELIMITER ;;\nCREATE TRIGGER {} {} {e} ON {qt} FOR EACH ROW\nBEGIN\n  {}\nEND;;\nDELIMITER ;",
                            // MySQL puts a trigger in the table's schema only when named so.
                            self.qualified(&t.schema, &n),
                            t.timing,
                            lines.join("\n  ")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        };
        Ok((sql, notes, items))
    }
}
