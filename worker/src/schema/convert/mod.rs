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
use ferry_common::convert::{portable_default, postgres_index, postgres_index_name, unique_constraint};
use ferry_common::endpoint::Engine;
use ferry_common::schema::{Column, ConstraintKind, Index, TableSchema};
use ferry_common::typemap::{convert_type, MysqlType};

mod code;
mod keys;
mod table;

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

impl Conversion {
    /// What `cutover.sql` starts with: the foreign keys are kept in ANSI
    /// quoting, which a MySQL session reads only with ANSI_QUOTES.
    pub fn ansi_quotes_preamble(&self) -> &'static str {
        match self.to {
            Engine::Mysql => "SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',ANSI_QUOTES');",
            Engine::Postgres => "",
        }
    }
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
    /// The table being converted: its key columns' bounded MySQL types
    /// (`mysql_key_types`), read by its columns and indexes.
    key_types: Vec<(String, String)>,
}

impl Converter<'_> {
    /// The bounded MySQL type of a key column of the current table.
    fn key_type(&self, column: &str) -> Option<&str> {
        self.key_types
            .iter()
            .find(|(c, _)| c == column)
            .map(|(_, t)| t.as_str())
    }
}

pub fn convert(cat: &Catalog, to: Engine) -> Conversion {
    let mut c = Converter {
        cat,
        to,
        key_types: vec![],
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

    /// Column types for the translator: the catalog's tables, and `row` for
    /// bare names and NEW / OLD.
    fn types<'t>(&'t self, row: Option<&'t TableSchema>) -> translate::Types<'t> {
        translate::Types {
            tables: &self.cat.tables,
            row,
        }
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
