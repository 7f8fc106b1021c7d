//! DMS transformation rules that name things: `rename`, `convert-lowercase`,
//! `convert-uppercase`, the prefix and suffix family on schemas, tables and
//! columns, and `remove-column` / `include-column`; and the rules that
//! reshape a table: `add-column` (a column computed by
//! [`crate::expression`]), `change-data-type`, `define-primary-key`,
//! `add-before-image-columns`. A column's name, its type and whether it is
//! kept are separate: one rule of each kind may apply to a column.
//!
//! ## How a rename reaches every path
//! The rules are resolved per table at introspection, against the table's
//! *source* names (as DMS's object-locators are), into a
//! [`TableTransform`] carried on the source form of the table, like its
//! filter. The source side never looks at it: it reads, decodes and
//! filters by source names. Everything that touches the target asks for the
//! table's target form ([`target_form`]: the transform applied, then the
//! engine conversion), so the load, CDC, validation, the row-count check,
//! sequence sync and the finalize step's foreign keys all name the same
//! target table. Rows are matched between the two forms by column: the
//! target form keeps the source's column order with removed columns left
//! out, and [`TableSchema::source_column`] maps a target column back to
//! the source column it is filled from.
//!
//! Definitions kept as SQL text (PostgreSQL's index and constraint
//! definitions, defaults, generated expressions, partition keys) are
//! rewritten token by token ([`rewrite`]): an identifier is renamed only
//! where it stands for a column or a table (not a function name, a type
//! after `::`, a collation, an index method), so a column called `lower`
//! does not rename `lower(...)`. An index or constraint that uses a removed
//! column is not created on the target; a primary key, generated column or
//! partition key that uses one fails the task at introspection.
//!
//! ## Conflicts
//! One object takes at most one naming rule: two rules that both rename
//! (or remove) the same schema, table or column are an error naming both
//! rule ids — DMS would silently take the lowest rule id.

use crate::endpoint::Engine;
use crate::expression::{DataType, Expression};
use crate::mapping::matches;
use crate::schema::{quote_ident, quote_literal, TableSchema};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum TransformError {
    #[error("table {table}: rule {rule_id} removes column {column}, which {what}; keep the column or drop the rule")]
    RemovedInUse {
        table: String,
        rule_id: String,
        column: String,
        what: String,
    },
    #[error("table {table}: rules give two columns the target name {name} ({first} and {second})")]
    Collision {
        table: String,
        name: String,
        first: String,
        second: String,
    },
    #[error("table {table}: rule {rule_id} leaves the name empty")]
    Empty { table: String, rule_id: String },
    #[error("table {table}: rule {rule_id} defines a primary key, but {what}")]
    KeyDefined {
        table: String,
        rule_id: String,
        what: String,
    },
    #[error("table {table}: rule {rule_id} changes the type of column {column}, which {what}; drop the rule")]
    RetypedInUse {
        table: String,
        rule_id: String,
        column: String,
        what: String,
    },
    #[error("table {table}: the expression of rule {rule_id} reads column {column}, which the table has no copied column of")]
    UnknownColumn {
        table: String,
        rule_id: String,
        column: String,
    },
}

/// What a naming rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleTarget {
    Schema,
    Table,
    Column,
}

/// A naming rule's action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NameAction {
    Rename(String),
    ConvertLowercase,
    ConvertUppercase,
    AddPrefix(String),
    RemovePrefix(String),
    /// `old-value` replaced by `value` where the name starts with it.
    ReplacePrefix {
        old: String,
        new: String,
    },
    AddSuffix(String),
    RemoveSuffix(String),
    ReplaceSuffix {
        old: String,
        new: String,
    },
    RemoveColumn,
    /// `change-data-type`: the column keeps its name and takes this type.
    ChangeDataType(DataType),
    /// `include-column`: once any such rule locates a table's column, the
    /// table keeps only the columns these rules locate.
    IncludeColumn,
}

impl NameAction {
    /// The new name; `None` for a removed column.
    pub fn apply(&self, name: &str) -> Option<String> {
        Some(match self {
            NameAction::Rename(v) => v.clone(),
            NameAction::ConvertLowercase => name.to_lowercase(),
            NameAction::ConvertUppercase => name.to_uppercase(),
            NameAction::AddPrefix(p) => format!("{p}{name}"),
            NameAction::RemovePrefix(p) => name.strip_prefix(p.as_str()).unwrap_or(name).to_string(),
            NameAction::ReplacePrefix { old, new } => match name.strip_prefix(old.as_str()) {
                Some(rest) => format!("{new}{rest}"),
                None => name.to_string(),
            },
            NameAction::AddSuffix(s) => format!("{name}{s}"),
            NameAction::RemoveSuffix(s) => name.strip_suffix(s.as_str()).unwrap_or(name).to_string(),
            NameAction::ReplaceSuffix { old, new } => match name.strip_suffix(old.as_str()) {
                Some(rest) => format!("{rest}{new}"),
                None => name.to_string(),
            },
            NameAction::RemoveColumn => return None,
            NameAction::ChangeDataType(_) | NameAction::IncludeColumn => name.to_string(),
        })
    }
}

/// One `transformation` rule of the supported kinds. Locator patterns are
/// DMS wildcards over source names; `table` is set for table and column
/// rules, `column` for column rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameRule {
    pub rule_id: String,
    pub target: RuleTarget,
    pub schema: String,
    pub table: Option<String>,
    pub column: Option<String>,
    pub action: NameAction,
}

/// An `add-column` rule: a column the target table gets, filled with
/// `expression` over the source row (see [`crate::expression`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddColumnRule {
    pub rule_id: String,
    pub schema: String,
    pub table: String,
    /// The new column's name (`value`).
    pub name: String,
    pub expression: Expression,
    pub data_type: DataType,
}

/// A `define-primary-key` rule: the primary key the target table gets,
/// over source columns, for a table the source keeps without one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRule {
    pub rule_id: String,
    pub schema: String,
    pub table: String,
    pub name: String,
    pub columns: Vec<String>,
}

/// An `add-before-image-columns` rule: for each located column that passes
/// `filter`, the target gets a column `prefix + name + suffix` holding the
/// column's value before each CDC update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeforeImageRule {
    pub rule_id: String,
    pub schema: String,
    pub table: String,
    pub column: String,
    pub prefix: String,
    pub suffix: String,
    #[serde(default)]
    pub filter: BeforeImageFilter,
}

/// Which located columns an `add-before-image-columns` rule covers
/// (`column-filter`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BeforeImageFilter {
    /// The primary key's columns (DMS's default).
    #[default]
    PkOnly,
    /// Every column but LOBs (large text and binary types).
    NonLob,
    /// Every column.
    All,
}

/// A before-image column of one table: its target name and the source
/// column whose old value it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeforeImageColumn {
    pub rule_id: String,
    pub name: String,
    pub source: String,
}

/// A column a rule adds to one table (resolved from an [`AddColumnRule`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddedColumn {
    pub rule_id: String,
    pub name: String,
    pub expression: Expression,
    pub data_type: DataType,
}

impl NameRule {
    fn locates(&self, schema: &str, table: Option<&str>, column: Option<&str>) -> bool {
        let part = |pat: &Option<String>, name: Option<&str>| match (pat, name) {
            (Some(p), Some(n)) => matches(p, n),
            _ => true,
        };
        matches(&self.schema, schema) && part(&self.table, table) && part(&self.column, column)
    }
}

/// The one rule among `rules` (of `target`) that locates an object, or an
/// error naming two that do.
fn rule_for<'a>(
    rules: &'a [NameRule],
    target: RuleTarget,
    schema: &str,
    table: Option<&str>,
    column: Option<&str>,
) -> Result<Option<&'a NameRule>, ConflictError> {
    let mut found: Option<&NameRule> = None;
    for r in rules.iter().filter(|r| r.target == target) {
        if r.locates(schema, table, column) {
            if let Some(first) = found {
                return Err(ConflictError {
                    first: first.rule_id.clone(),
                    second: r.rule_id.clone(),
                });
            }
            found = Some(r);
        }
    }
    Ok(found)
}

/// Two rules that both name one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictError {
    pub first: String,
    pub second: String,
}

/// A table's target names, resolved from the rules at introspection and
/// carried on its source form (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableTransform {
    pub schema: String,
    pub name: String,
    /// Per source column, in order: its target name, or `None` when a
    /// rule removes it.
    pub columns: Vec<Option<String>>,
    /// Rule ids that remove columns, per source column (for messages).
    #[serde(default)]
    pub removed_by: Vec<Option<String>>,
    /// Per partition of the table: its target schema and name.
    #[serde(default)]
    pub partitions: Vec<(String, String)>,
    /// Per sequence of the table: its target schema.
    #[serde(default)]
    pub sequence_schemas: Vec<String>,
    /// Tables this table's foreign keys reference, where rules rename them
    /// or their columns.
    #[serde(default)]
    pub references: Vec<Reference>,
    /// Columns `add-column` rules add, after the source's columns.
    #[serde(default)]
    pub added: Vec<AddedColumn>,
    /// The `define-primary-key` rule that gives the target table its key.
    #[serde(default)]
    pub key: Option<KeyRule>,
    /// Before-image columns, after the added ones.
    #[serde(default)]
    pub before: Vec<BeforeImageColumn>,
    /// Per source column (empty: none): the `change-data-type` rule that
    /// gives it another type on the target, and the type.
    #[serde(default)]
    pub retyped: Vec<Option<(String, DataType)>>,
}

/// A referenced table's renames, for rewriting foreign keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    pub schema: String,
    pub name: String,
    pub to_schema: String,
    pub to_name: String,
    /// Renamed columns only: source name, target name.
    pub columns: Vec<(String, String)>,
}

/// Resolves `rules` for one table. `None` when nothing about the table
/// changes. `others` are the task's other tables, for the references of
/// foreign keys.
pub fn resolve(
    rules: &[NameRule],
    adds: &[AddColumnRule],
    keys: &[KeyRule],
    befores: &[BeforeImageRule],
    t: &TableSchema,
    others: &[TableSchema],
) -> Result<Option<TableTransform>, ConflictError> {
    if rules.is_empty() && adds.is_empty() && keys.is_empty() && befores.is_empty() {
        return Ok(None);
    }
    let mut key: Option<KeyRule> = None;
    for k in keys
        .iter()
        .filter(|k| matches(&k.schema, &t.schema) && matches(&k.table, &t.name))
    {
        if let Some(first) = &key {
            return Err(ConflictError {
                first: first.rule_id.clone(),
                second: k.rule_id.clone(),
            });
        }
        key = Some(k.clone());
    }
    // A column's type and its name are separate objects here: a rule that
    // renames a column (say lower-cases every column) and one that changes
    // its type both apply. Two of one kind on one column conflict.
    let (types, names): (Vec<NameRule>, Vec<NameRule>) = rules
        .iter()
        .cloned()
        .partition(|r| matches!(r.action, NameAction::ChangeDataType(_)));
    let (includes, names): (Vec<NameRule>, Vec<NameRule>) =
        names.into_iter().partition(|r| r.action == NameAction::IncludeColumn);
    let rules = names.as_slice();
    // `include-column` keeps a table's located columns and drops the rest,
    // once one of its rules locates a column of the table.
    let included = |column: &str| {
        includes
            .iter()
            .any(|r| r.locates(&t.schema, Some(&t.name), Some(column)))
    };
    let narrowed = includes.iter().find(|r| {
        t.columns
            .iter()
            .any(|c| r.locates(&t.schema, Some(&t.name), Some(&c.name)))
    });
    let mut added: Vec<AddedColumn> = vec![];
    for r in adds
        .iter()
        .filter(|r| matches(&r.schema, &t.schema) && matches(&r.table, &t.name))
    {
        if let Some(first) = added.iter().find(|a| a.name == r.name) {
            return Err(ConflictError {
                first: first.rule_id.clone(),
                second: r.rule_id.clone(),
            });
        }
        added.push(AddedColumn {
            rule_id: r.rule_id.clone(),
            name: r.name.clone(),
            expression: r.expression.clone(),
            data_type: r.data_type,
        });
    }
    let schema_of = |s: &str| -> Result<String, ConflictError> {
        Ok(match rule_for(rules, RuleTarget::Schema, s, None, None)? {
            Some(r) => r.action.apply(s).unwrap_or_else(|| s.to_string()),
            None => s.to_string(),
        })
    };
    let table_of = |s: &str, n: &str| -> Result<String, ConflictError> {
        Ok(match rule_for(rules, RuleTarget::Table, s, Some(n), None)? {
            Some(r) => r.action.apply(n).unwrap_or_else(|| n.to_string()),
            None => n.to_string(),
        })
    };
    let mut columns = vec![];
    let mut removed_by = vec![];
    let mut retyped = vec![];
    for c in &t.columns {
        match rule_for(rules, RuleTarget::Column, &t.schema, Some(&t.name), Some(&c.name))? {
            Some(r) => {
                let to = r.action.apply(&c.name);
                removed_by.push(to.is_none().then(|| r.rule_id.clone()));
                columns.push(to);
            }
            None => {
                columns.push(Some(c.name.clone()));
                removed_by.push(None);
            }
        }
        if let Some(r) = narrowed.filter(|_| !included(&c.name)) {
            columns.pop();
            columns.push(None);
            removed_by.pop();
            removed_by.push(Some(r.rule_id.clone()));
        }
        retyped.push(
            match rule_for(&types, RuleTarget::Column, &t.schema, Some(&t.name), Some(&c.name))? {
                Some(NameRule {
                    rule_id,
                    action: NameAction::ChangeDataType(dt),
                    ..
                }) => Some((rule_id.clone(), *dt)),
                _ => None,
            },
        );
    }
    if retyped.iter().all(Option::is_none) {
        retyped.clear();
    }
    let out = TableTransform {
        schema: schema_of(&t.schema)?,
        name: table_of(&t.schema, &t.name)?,
        columns,
        removed_by,
        partitions: t
            .partitions
            .iter()
            .map(|p| -> Result<(String, String), ConflictError> {
                Ok((schema_of(&p.schema)?, table_of(&p.schema, &p.name)?))
            })
            .collect::<Result<_, _>>()?,
        sequence_schemas: t
            .sequences
            .iter()
            .map(|s| schema_of(&s.schema))
            .collect::<Result<_, _>>()?,
        references: {
            let mut refs = vec![];
            let foreign_keys: Vec<&str> = t
                .constraints
                .iter()
                .filter(|k| k.kind == crate::schema::ConstraintKind::ForeignKey)
                .map(|k| k.definition.as_str())
                .collect();
            // Only the tables this one's foreign keys name (a cheap textual
            // test; the rewrite matches tokens): resolving every other
            // table's columns for every table would be quadratic.
            let referenced = others.iter().filter(|o| {
                !(o.schema == t.schema && o.name == t.name) && foreign_keys.iter().any(|d| d.contains(&o.name))
            });
            for o in referenced {
                let mut cols = vec![];
                for c in &o.columns {
                    if let Some(r) = rule_for(rules, RuleTarget::Column, &o.schema, Some(&o.name), Some(&c.name))? {
                        if let Some(to) = r.action.apply(&c.name).filter(|to| *to != c.name) {
                            cols.push((c.name.clone(), to));
                        }
                    }
                }
                let (to_schema, to_name) = (schema_of(&o.schema)?, table_of(&o.schema, &o.name)?);
                if to_schema != o.schema || to_name != o.name || !cols.is_empty() {
                    refs.push(Reference {
                        schema: o.schema.clone(),
                        name: o.name.clone(),
                        to_schema,
                        to_name,
                        columns: cols,
                    });
                }
            }
            refs
        },
        added,
        key,
        before: vec![],
        retyped,
    };
    let unchanged = out.schema == t.schema
        && out.name == t.name
        && out
            .columns
            .iter()
            .zip(&t.columns)
            .all(|(to, c)| to.as_deref() == Some(&c.name))
        && out
            .partitions
            .iter()
            .zip(&t.partitions)
            .all(|(to, p)| *to == (p.schema.clone(), p.name.clone()))
        && out
            .sequence_schemas
            .iter()
            .zip(&t.sequences)
            .all(|(to, s)| *to == s.schema)
        && out.references.is_empty()
        && out.added.is_empty()
        && out.key.is_none()
        && out.retyped.is_empty();
    let mut out = out;
    // Before-image columns, named after the columns' target names.
    let mut owner: Vec<(String, String)> = vec![];
    for r in befores
        .iter()
        .filter(|r| matches(&r.schema, &t.schema) && matches(&r.table, &t.name))
    {
        for (c, to) in t.columns.iter().zip(&out.columns) {
            let Some(to) = to else { continue };
            let keyed = t.primary_key.as_ref().is_some_and(|k| k.columns.contains(&c.name));
            let covered = match r.filter {
                BeforeImageFilter::PkOnly => keyed,
                BeforeImageFilter::NonLob => crate::typemap::lob_kind(t.engine, &c.type_sql).is_none(),
                BeforeImageFilter::All => true,
            };
            if !matches(&r.column, &c.name) || !covered || c.generated.is_some() {
                continue;
            }
            let name = format!("{}{to}{}", r.prefix, r.suffix);
            if let Some((first, _)) = owner.iter().find(|(_, n)| *n == name) {
                return Err(ConflictError {
                    first: first.clone(),
                    second: r.rule_id.clone(),
                });
            }
            owner.push((r.rule_id.clone(), name.clone()));
            out.before.push(BeforeImageColumn {
                rule_id: r.rule_id.clone(),
                name,
                source: c.name.clone(),
            });
        }
    }
    Ok((!unchanged || !out.before.is_empty()).then_some(out))
}

impl TableSchema {
    /// The columns rules add to this table's target form (after the
    /// source's), each computed from the source row.
    pub fn added_columns(&self) -> &[AddedColumn] {
        self.transform.as_ref().map_or(&[], |t| t.added.as_slice())
    }

    /// The type a `change-data-type` rule gives a source column on the
    /// target, if one does.
    pub fn retyped(&self, source: &str) -> Option<&DataType> {
        let tr = self.transform.as_ref()?;
        let i = self.columns.iter().position(|c| c.name == source)?;
        tr.retyped.get(i)?.as_ref().map(|(_, dt)| dt)
    }

    /// Whether rows of this table must travel as values (a same-engine
    /// copy would pass them unchanged): LOBs to cut, columns to compute
    /// or to convert.
    pub fn transforms_values(&self) -> bool {
        self.lob.is_some()
            || self
                .transform
                .as_ref()
                .is_some_and(|t| !t.added.is_empty() || !t.retyped.is_empty() || !t.before.is_empty())
    }

    /// The before-image columns rules add to this table's target form
    /// (after the added ones).
    pub fn before_image_columns(&self) -> &[BeforeImageColumn] {
        self.transform.as_ref().map_or(&[], |t| t.before.as_slice())
    }

    /// Whether a column of the target form is computed rather than copied
    /// (an added or a before-image column).
    pub fn is_computed(&self, target: &str) -> bool {
        self.added_column(target).is_some() || self.before_image_columns().iter().any(|b| b.name == target)
    }

    /// The added column of this target name, if it is one.
    pub fn added_column(&self, target: &str) -> Option<&AddedColumn> {
        self.added_columns().iter().find(|a| a.name == target)
    }

    /// The source column a column of this table's target form is filled
    /// from (the same name when no rule renamed it); not for an added
    /// column (see [`TableSchema::added_column`]).
    pub fn source_column<'a>(&'a self, target: &'a str) -> &'a str {
        let Some(tr) = &self.transform else { return target };
        tr.columns
            .iter()
            .zip(&self.columns)
            .find(|(to, _)| to.as_deref() == Some(target))
            .map(|(_, c)| c.name.as_str())
            .unwrap_or(target)
    }

    /// The target column a source column fills; `None` when a rule
    /// removes it.
    pub fn target_column<'a>(&'a self, source: &'a str) -> Option<&'a str> {
        let Some(tr) = &self.transform else { return Some(source) };
        match self.columns.iter().position(|c| c.name == source) {
            Some(i) => tr.columns[i].as_deref(),
            None => Some(source),
        }
    }
}

/// The table as it is named and shaped on the target, still in the source's
/// dialect (the engine conversion comes after, see [`target_form`]).
pub fn renamed(t: &TableSchema) -> Result<TableSchema, TransformError> {
    let Some(tr) = &t.transform else {
        return Ok(t.clone());
    };
    let table = t.display_name();
    let mut own: HashMap<String, Option<String>> = HashMap::new();
    for (c, to) in t.columns.iter().zip(&tr.columns) {
        own.insert(c.name.clone(), to.clone());
    }
    let names = Names::of(t, tr, &own);
    // A definition that must keep every column it uses, rewritten.
    let kept = |sql: &str, what: &str| -> Result<String, TransformError> {
        let r = rewrite(sql, t.engine, &names);
        match r.removed.first() {
            Some(col) => Err(removed_error(t, tr, col, what)),
            None => Ok(r.sql),
        }
    };
    let mut out = t.clone();
    out.transform = None;
    out.schema = tr.schema.clone();
    out.name = tr.name.clone();
    let mut columns = vec![];
    let mut seen: HashMap<String, String> = HashMap::new();
    for (c, to) in t.columns.iter().zip(&tr.columns) {
        let Some(to) = to else { continue };
        if to.is_empty() {
            return Err(TransformError::Empty {
                table,
                rule_id: format!("renaming column {}", c.name),
            });
        }
        if let Some(first) = seen.insert(to.clone(), c.name.clone()) {
            return Err(TransformError::Collision {
                table,
                name: to.clone(),
                first,
                second: c.name.clone(),
            });
        }
        let mut c = c.clone();
        if let Some((rule_id, dt)) = t
            .columns
            .iter()
            .position(|s| s.name == c.name)
            .and_then(|i| tr.retyped.get(i)?.as_ref())
        {
            let in_use = if c.generated.is_some() {
                Some("is generated")
            } else if t.primary_key.as_ref().is_some_and(|pk| pk.columns.contains(&c.name)) {
                Some("the primary key uses")
            } else {
                None
            };
            if let Some(what) = in_use {
                return Err(TransformError::RetypedInUse {
                    table,
                    rule_id: rule_id.clone(),
                    column: c.name.clone(),
                    what: what.into(),
                });
            }
            c.type_sql = dt.type_sql(t.engine);
            // The source's default, collation and identity belong to its type.
            c.default = None;
            c.collation = None;
            c.identity = None;
        }
        if let Some(g) = c.generated.take() {
            c.generated = Some(kept(&g, &format!("generated column {} uses", c.name))?);
        }
        c.default = c.default.take().map(|d| rewrite(&d, t.engine, &names).sql);
        c.name = to.clone();
        columns.push(c);
    }
    for a in &tr.added {
        for c in a.expression.columns() {
            match own.get(c) {
                Some(None) => {
                    return Err(removed_error(
                        t,
                        tr,
                        c,
                        &format!("the expression of rule {} uses", a.rule_id),
                    ))
                }
                Some(Some(_)) if t.column(c).is_some_and(|c| c.generated.is_none()) => {}
                _ => {
                    return Err(TransformError::UnknownColumn {
                        table,
                        rule_id: a.rule_id.clone(),
                        column: c.to_string(),
                    })
                }
            }
        }
        if let Some(first) = seen.insert(a.name.clone(), format!("rule {}", a.rule_id)) {
            return Err(TransformError::Collision {
                table,
                name: a.name.clone(),
                first,
                second: format!("rule {}", a.rule_id),
            });
        }
        columns.push(crate::schema::Column::plain(&a.name, &a.data_type.type_sql(t.engine)));
    }
    for b in &tr.before {
        if let Some(first) = seen.insert(b.name.clone(), format!("rule {}", b.rule_id)) {
            return Err(TransformError::Collision {
                table,
                name: b.name.clone(),
                first,
                second: format!("rule {}", b.rule_id),
            });
        }
        let source = t.column(&b.source).map_or("text", |c| c.type_sql.as_str());
        // The retyped type when a rule retypes the column: the old value is
        // converted like the new one.
        let ty = t
            .retyped(&b.source)
            .map_or(source.to_string(), |dt| dt.type_sql(t.engine));
        columns.push(crate::schema::Column::plain(&b.name, &ty));
    }
    out.columns = columns;
    if let Some(k) = &tr.key {
        if let Some(pk) = &t.primary_key {
            return Err(TransformError::KeyDefined {
                table,
                rule_id: k.rule_id.clone(),
                what: format!("the table has a primary key ({})", pk.columns.join(", ")),
            });
        }
        let mut columns = vec![];
        for c in &k.columns {
            match own.get(c.as_str()) {
                Some(Some(to)) if t.column(c).is_some_and(|c| c.generated.is_none()) => columns.push(to.clone()),
                Some(None) => return Err(removed_error(t, tr, c, &format!("the key of rule {} uses", k.rule_id))),
                _ => {
                    return Err(TransformError::KeyDefined {
                        table,
                        rule_id: k.rule_id.clone(),
                        what: format!("column {c} is not a copied column of the table"),
                    })
                }
            }
        }
        out.primary_key = Some(crate::schema::PrimaryKey {
            name: k.name.clone(),
            columns,
        });
    }
    // The source's key, renamed (a defined key names target columns already).
    if let Some(pk) = out.primary_key.as_mut().filter(|_| tr.key.is_none()) {
        for k in &mut pk.columns {
            match own.get(k.as_str()) {
                Some(None) => return Err(removed_error(t, tr, k, "the primary key uses")),
                Some(Some(to)) => *k = to.clone(),
                None => {}
            }
        }
    }
    if let Some(k) = &t.partition_key {
        out.partition_key = Some(kept(k, "the partition key uses")?);
    }
    let pairs: Vec<((String, String), (String, String))> =
        std::iter::once(((t.schema.clone(), t.name.clone()), (tr.schema.clone(), tr.name.clone())))
            .chain(
                t.partitions
                    .iter()
                    .zip(&tr.partitions)
                    .map(|(p, to)| ((p.schema.clone(), p.name.clone()), to.clone())),
            )
            .collect();
    let pair_of = |s: &str, n: &str| {
        pairs
            .iter()
            .find(|(from, _)| from.0 == s && from.1 == n)
            .map(|(_, to)| to.clone())
            .unwrap_or((s.to_string(), n.to_string()))
    };
    for (p, to) in out.partitions.iter_mut().zip(&tr.partitions) {
        let parent = pair_of(&p.parent_schema, &p.parent_name);
        (p.parent_schema, p.parent_name) = parent;
        (p.schema, p.name) = to.clone();
        p.partition_key = p.partition_key.take().map(|k| rewrite(&k, t.engine, &names).sql);
    }
    out.indexes = t
        .indexes
        .iter()
        .map(|d| rewrite(d, t.engine, &names))
        .filter(|r| r.removed.is_empty())
        .map(|r| r.sql)
        .collect();
    out.index_list = t
        .index_list
        .iter()
        .filter(|i| i.columns.iter().all(|c| !matches!(own.get(&c.name), Some(None))))
        .cloned()
        .map(|mut i| {
            for c in &mut i.columns {
                if let Some(Some(to)) = own.get(&c.name) {
                    c.name = to.clone();
                }
            }
            i
        })
        .collect();
    out.constraints = t
        .constraints
        .iter()
        .filter_map(|k| {
            let r = rewrite(&k.definition, t.engine, &names);
            r.removed.is_empty().then(|| crate::schema::Constraint {
                definition: r.sql,
                ..k.clone()
            })
        })
        .collect();
    out.sequences = t
        .sequences
        .iter()
        .zip(&tr.sequence_schemas)
        .filter(|(s, _)| !matches!(own.get(&s.column), Some(None)))
        .map(|(s, schema)| {
            let mut s = s.clone();
            if let Some(Some(to)) = own.get(&s.column) {
                s.column = to.clone();
            }
            s.schema = schema.clone();
            s
        })
        .collect();
    Ok(out)
}

fn removed_error(t: &TableSchema, tr: &TableTransform, column: &str, what: &str) -> TransformError {
    let i = t.columns.iter().position(|c| c.name == column);
    TransformError::RemovedInUse {
        table: t.display_name(),
        rule_id: i
            .and_then(|i| tr.removed_by.get(i).cloned().flatten())
            .unwrap_or_default(),
        column: column.to_string(),
        what: what.to_string(),
    }
}

/// The table as the target engine creates it: renamed, then converted.
pub fn target_form(t: &TableSchema, to: Engine) -> Result<TableSchema, String> {
    let r = renamed(t).map_err(|e| e.to_string())?;
    crate::convert::convert_table(&r, to).map_err(|e| format!("table {}: {e}", t.display_name()))
}

/// The names a rewrite maps: this table's columns, and tables (this one,
/// its partitions, the tables its foreign keys reference) with theirs.
struct Names<'a> {
    own: &'a HashMap<String, Option<String>>,
    tables: Vec<TableNames>,
    /// Sequences whose schema changes: (schema, name) to the new schema.
    sequences: Vec<(String, String, String)>,
}

struct TableNames {
    from: (String, String),
    to: (String, String),
    columns: HashMap<String, Option<String>>,
}

impl<'a> Names<'a> {
    fn of(t: &TableSchema, tr: &TableTransform, own: &'a HashMap<String, Option<String>>) -> Names<'a> {
        let mut tables = vec![TableNames {
            from: (t.schema.clone(), t.name.clone()),
            to: (tr.schema.clone(), tr.name.clone()),
            columns: own.clone(),
        }];
        for (p, to) in t.partitions.iter().zip(&tr.partitions) {
            tables.push(TableNames {
                from: (p.schema.clone(), p.name.clone()),
                to: to.clone(),
                columns: own.clone(),
            });
        }
        for r in &tr.references {
            tables.push(TableNames {
                from: (r.schema.clone(), r.name.clone()),
                to: (r.to_schema.clone(), r.to_name.clone()),
                columns: r.columns.iter().map(|(a, b)| (a.clone(), Some(b.clone()))).collect(),
            });
        }
        Names {
            own,
            tables,
            sequences: t
                .sequences
                .iter()
                .zip(&tr.sequence_schemas)
                .filter(|(s, to)| s.schema != **to)
                .map(|(s, to)| (s.schema.clone(), s.name.clone(), to.clone()))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token<'s> {
    Space(&'s str),
    /// An identifier: its raw text and its name (unquoted).
    Ident(&'s str, String, bool),
    Str(&'s str),
    Other(&'s str),
}

fn lex(sql: &str, engine: Engine) -> Vec<Token<'_>> {
    let b = sql.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    let ident_start = |c: char| c.is_alphabetic() || c == '_';
    let ident_char = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    while i < sql.len() {
        let c = sql[i..].chars().next().expect("in bounds");
        let start = i;
        if c.is_whitespace() {
            while i < sql.len() && sql[i..].starts_with(|c: char| c.is_whitespace()) {
                i += sql[i..].chars().next().map_or(1, char::len_utf8);
            }
            out.push(Token::Space(&sql[start..i]));
        } else if c == '\'' {
            i += 1;
            let backslash = engine == Engine::Mysql || (start > 0 && matches!(b[start - 1], b'E' | b'e'));
            while i < sql.len() {
                if backslash && b[i] == b'\\' {
                    i += 2;
                } else if b[i] == b'\'' {
                    if b.get(i + 1) == Some(&b'\'') {
                        i += 2;
                    } else {
                        i += 1;
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(Token::Str(&sql[start..i.min(sql.len())]));
            i = i.min(sql.len());
        } else if (c == '"' && engine == Engine::Postgres) || (c == '`' && engine == Engine::Mysql) {
            let q = b[i];
            i += 1;
            let mut name = Vec::new();
            while i < sql.len() {
                if b[i] == q {
                    if b.get(i + 1) == Some(&q) {
                        name.push(q);
                        i += 2;
                    } else {
                        i += 1;
                        break;
                    }
                } else {
                    name.push(b[i]);
                    i += 1;
                }
            }
            out.push(Token::Ident(
                &sql[start..i],
                String::from_utf8_lossy(&name).into_owned(),
                true,
            ));
        } else if ident_start(c) {
            while i < sql.len() && sql[i..].starts_with(ident_char) {
                i += sql[i..].chars().next().map_or(1, char::len_utf8);
            }
            out.push(Token::Ident(&sql[start..i], sql[start..i].to_string(), false));
        } else {
            i += c.len_utf8();
            out.push(Token::Other(&sql[start..i]));
        }
    }
    out
}

/// A rewritten definition and the removed columns it used.
#[derive(Debug)]
struct Rewritten {
    sql: String,
    removed: Vec<String>,
}

/// Keywords after which an identifier names something other than a column
/// or table of ours.
const NOT_A_COLUMN_AFTER: &[&str] = &["COLLATE", "USING", "INDEX", "CONSTRAINT", "EXISTS"];

fn rewrite(sql: &str, engine: Engine, names: &Names) -> Rewritten {
    let tokens = lex(sql, engine);
    let quote = |s: &str| match engine {
        Engine::Postgres => quote_ident(s),
        Engine::Mysql => format!("`{}`", s.replace('`', "``")),
    };
    // MySQL compares column names case-insensitively; PostgreSQL prints a
    // bare identifier only when it is already in lower case.
    let same = |name: &str, column: &str| match engine {
        Engine::Mysql => name.eq_ignore_ascii_case(column),
        Engine::Postgres => name == column,
    };
    let significant: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i], Token::Space(_)))
        .collect();
    let mut replaced: Vec<Option<String>> = vec![None; tokens.len()];
    let mut removed = vec![];
    // Inside the column list that follows `REFERENCES table`: that table's columns.
    let mut context: Option<usize> = None;
    let mut context_depth: Option<i32> = None;
    let mut depth = 0i32;
    let keyword = |k: usize, word: &str| matches!(&tokens[significant[k]], Token::Ident(_, n, false) if n.eq_ignore_ascii_case(word));
    let mut k = 0;
    while k < significant.len() {
        let i = significant[k];
        match &tokens[i] {
            Token::Other("(") => {
                depth += 1;
                if context.is_some() && context_depth.is_none() {
                    context_depth = Some(depth);
                }
            }
            Token::Other(")") => {
                if context_depth == Some(depth) {
                    context = None;
                    context_depth = None;
                }
                depth -= 1;
            }
            Token::Str(s) => {
                // `nextval('shop.orders_id_seq'::regclass)` follows its
                // sequence into a renamed schema.
                let inner = s.trim_start_matches(['E', 'e']);
                if inner.len() >= 2 {
                    let body = inner[1..inner.len() - 1].replace("''", "'");
                    if let Some((schema, name)) = split_qualified(&body) {
                        if let Some((_, _, to)) = names.sequences.iter().find(|(s, n, _)| *s == schema && *n == name) {
                            replaced[i] = Some(quote_literal(&format!("{}.{}", quote_ident(to), quote_ident(&name))));
                        }
                    }
                }
            }
            Token::Ident(_, name, _) => {
                let prev = k.checked_sub(1).map(|p| &tokens[significant[p]]);
                let next = significant.get(k + 1).map(|&n| &tokens[n]);
                let after_references = k > 0 && keyword(k - 1, "REFERENCES");
                // schema.table
                if matches!(next, Some(Token::Other("."))) {
                    if let Some(Token::Ident(_, second, _)) = significant.get(k + 2).map(|&n| &tokens[n]) {
                        if let Some(ti) = names
                            .tables
                            .iter()
                            .position(|t| t.from.0 == *name && t.from.1 == *second)
                        {
                            let to = &names.tables[ti].to;
                            replaced[i] = Some(quote(&to.0));
                            replaced[significant[k + 2]] = Some(quote(&to.1));
                            if after_references {
                                context = Some(ti);
                                context_depth = None;
                            }
                        }
                        k += 3;
                        continue;
                    }
                }
                let skip = matches!(prev, Some(Token::Other(".")) | Some(Token::Other(":")))
                    || (k > 0 && NOT_A_COLUMN_AFTER.iter().any(|w| keyword(k - 1, w)));
                if after_references {
                    // An unqualified referenced table: found by name.
                    let found: Vec<usize> = (0..names.tables.len())
                        .filter(|&t| names.tables[t].from.1 == *name)
                        .collect();
                    if let [ti] = found[..] {
                        let to = &names.tables[ti].to;
                        replaced[i] = Some(format!("{}.{}", quote(&to.0), quote(&to.1)));
                        context = Some(ti);
                        context_depth = None;
                    }
                } else if !skip && !matches!(next, Some(Token::Other("("))) {
                    let columns = match context {
                        Some(ti) => &names.tables[ti].columns,
                        None => names.own,
                    };
                    if let Some((col, to)) = columns.iter().find(|(c, _)| same(name, c)) {
                        match to {
                            Some(to) if to != col => replaced[i] = Some(quote(to)),
                            Some(_) => {}
                            None if context.is_none() => removed.push(col.clone()),
                            None => {}
                        }
                    }
                }
            }
            _ => {}
        }
        k += 1;
    }
    let mut sql_out = String::with_capacity(sql.len());
    for (t, r) in tokens.iter().zip(&replaced) {
        match (r, t) {
            (Some(r), _) => sql_out.push_str(r),
            (None, Token::Space(s) | Token::Ident(s, _, _) | Token::Str(s) | Token::Other(s)) => sql_out.push_str(s),
        }
    }
    Rewritten { sql: sql_out, removed }
}

/// `schema.name` (either part possibly double-quoted) of a regclass literal.
fn split_qualified(s: &str) -> Option<(String, String)> {
    let tokens = lex(s, Engine::Postgres);
    match tokens.as_slice() {
        [Token::Ident(_, a, _), Token::Other("."), Token::Ident(_, b, _)] => Some((a.clone(), b.clone())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Column, Constraint, ConstraintKind, PrimaryKey, Sequence};

    fn rule(id: &str, target: RuleTarget, loc: (&str, Option<&str>, Option<&str>), action: NameAction) -> NameRule {
        NameRule {
            rule_id: id.into(),
            target,
            schema: loc.0.into(),
            table: loc.1.map(Into::into),
            column: loc.2.map(Into::into),
            action,
        }
    }

    fn add(id: &str, table: &str, name: &str, expr: &str) -> AddColumnRule {
        AddColumnRule {
            rule_id: id.into(),
            schema: "shop".into(),
            table: table.into(),
            name: name.into(),
            expression: Expression::parse(expr).unwrap(),
            data_type: DataType::String(Some(40)),
        }
    }

    #[test]
    fn include_column_keeps_only_the_located_columns() {
        let rules = [
            rule(
                "1",
                RuleTarget::Column,
                ("shop", Some("Orders"), Some("id")),
                NameAction::IncludeColumn,
            ),
            rule(
                "2",
                RuleTarget::Column,
                ("shop", Some("Orders"), Some("Lower")),
                NameAction::IncludeColumn,
            ),
            // A rename of an included column applies as well.
            rule(
                "3",
                RuleTarget::Column,
                ("shop", Some("Orders"), Some("Lower")),
                NameAction::ConvertLowercase,
            ),
            // Rules for another table narrow nothing here.
            rule(
                "4",
                RuleTarget::Column,
                ("shop", Some("other"), Some("%")),
                NameAction::IncludeColumn,
            ),
        ];
        let mut t = orders();
        t.transform = resolve(&rules, &[], &[], &[], &t, &[]).unwrap().map(Box::new);
        let r = renamed(&t).unwrap();
        let names: Vec<&str> = r.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "lower"]);
        // Leaving the key out is the same error as removing it.
        let mut t = orders();
        t.transform = resolve(&rules[1..2], &[], &[], &[], &t, &[]).unwrap().map(Box::new);
        let e = renamed(&t).unwrap_err().to_string();
        assert!(e.contains("rule 2") && e.contains("primary key"), "{e}");
    }

    #[test]
    fn added_columns_come_last_and_read_source_columns() {
        let renames = [rule(
            "1",
            RuleTarget::Column,
            ("shop", Some("Orders"), Some("Lower")),
            NameAction::Rename("low".into()),
        )];
        let mut t = orders();
        let adds = [
            add("7", "Ord%", "tag", "$Lower || '-' || $id"),
            add("8", "other", "x", "1"),
        ];
        t.transform = resolve(&renames, &adds, &[], &[], &t, &[]).unwrap().map(Box::new);
        let r = renamed(&t).unwrap();
        let names: Vec<&str> = r.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "low", "secret", "cust_id", "tag"]);
        assert_eq!(r.columns[4].type_sql, "character varying(40)");
        assert_eq!(t.added_column("tag").map(|a| a.rule_id.as_str()), Some("7"));
        assert!(t.added_column("low").is_none());
        // Two rules adding one name conflict; an expression over a column
        // the table lacks, or onto a name the table has, fails.
        let e = resolve(
            &[],
            &[add("7", "%", "tag", "1"), add("9", "Orders", "tag", "2")],
            &[],
            &[],
            &orders(),
            &[],
        )
        .unwrap_err();
        assert_eq!((e.first.as_str(), e.second.as_str()), ("7", "9"));
        let mut t = orders();
        t.transform = resolve(&[], &[add("7", "%", "tag", "$nope")], &[], &[], &t, &[])
            .unwrap()
            .map(Box::new);
        assert!(renamed(&t)
            .unwrap_err()
            .to_string()
            .contains("rule 7 reads column nope"));
        let mut t = orders();
        t.transform = resolve(&[], &[add("7", "%", "secret", "1")], &[], &[], &t, &[])
            .unwrap()
            .map(Box::new);
        assert!(matches!(renamed(&t).unwrap_err(), TransformError::Collision { .. }));
    }

    fn orders() -> TableSchema {
        let mut t = TableSchema::bare(
            Engine::Postgres,
            "shop",
            "Orders",
            vec![
                Column::plain("id", "integer"),
                Column::plain("Lower", "text"),
                Column::plain("secret", "text"),
                Column::plain("cust_id", "integer"),
            ],
        );
        t.columns[0].default = Some("nextval('shop.\"Orders_id_seq\"'::regclass)".into());
        t.primary_key = Some(PrimaryKey {
            name: "orders_pkey".into(),
            columns: vec!["id".into()],
        });
        t.indexes = vec![
            "CREATE INDEX o_lower ON shop.\"Orders\" USING btree (lower(\"Lower\") COLLATE \"C\" DESC)".into(),
            "CREATE INDEX o_secret ON shop.\"Orders\" USING btree (secret)".into(),
        ];
        t.constraints = vec![
            Constraint {
                name: "c1".into(),
                kind: ConstraintKind::Check,
                definition: "CHECK ((length(\"Lower\") > 0))".into(),
            },
            Constraint {
                name: "fk".into(),
                kind: ConstraintKind::ForeignKey,
                definition: "FOREIGN KEY (cust_id) REFERENCES shop.customers(\"Id\") ON DELETE CASCADE".into(),
            },
        ];
        t.sequences = vec![Sequence {
            schema: "shop".into(),
            name: "Orders_id_seq".into(),
            column: "id".into(),
            identity: false,
            options: String::new(),
            owned: true,
        }];
        t
    }

    fn customers() -> TableSchema {
        TableSchema::bare(
            Engine::Postgres,
            "shop",
            "customers",
            vec![Column::plain("Id", "integer")],
        )
    }

    #[test]
    fn renames_reach_every_definition() {
        let rules = vec![
            rule(
                "1",
                RuleTarget::Schema,
                ("shop", None, None),
                NameAction::Rename("store".into()),
            ),
            rule(
                "2",
                RuleTarget::Table,
                ("shop", Some("%"), None),
                NameAction::ConvertLowercase,
            ),
            rule(
                "3",
                RuleTarget::Column,
                ("shop", Some("%"), Some("[LI]%")),
                NameAction::ConvertLowercase,
            ),
            rule(
                "4",
                RuleTarget::Column,
                ("shop", Some("Orders"), Some("secret")),
                NameAction::RemoveColumn,
            ),
        ];
        let mut t = orders();
        t.transform = resolve(&rules, &[], &[], &[], &t, &[orders(), customers()])
            .unwrap()
            .map(Box::new);
        let r = renamed(&t).unwrap();
        assert_eq!((r.schema.as_str(), r.name.as_str()), ("store", "orders"));
        let names: Vec<&str> = r.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "lower", "cust_id"]);
        assert_eq!(
            r.columns[0].default.as_deref(),
            Some("nextval('\"store\".\"Orders_id_seq\"'::regclass)")
        );
        assert_eq!(
            r.indexes,
            ["CREATE INDEX o_lower ON \"store\".\"orders\" USING btree (lower(\"lower\") COLLATE \"C\" DESC)"]
        );
        assert_eq!(r.constraints[0].definition, "CHECK ((length(\"lower\") > 0))");
        assert_eq!(
            r.constraints[1].definition,
            "FOREIGN KEY (cust_id) REFERENCES \"store\".\"customers\"(\"id\") ON DELETE CASCADE"
        );
        assert_eq!(r.sequences[0].schema, "store");
        assert_eq!(t.source_column("lower"), "Lower");
        assert_eq!(t.target_column("secret"), None);
        assert_eq!(t.target_column("Lower"), Some("lower"));
    }

    #[test]
    fn conflicts_and_removed_keys_are_errors() {
        let rules = vec![
            rule(
                "5",
                RuleTarget::Table,
                ("%", Some("Orders"), None),
                NameAction::AddPrefix("x_".into()),
            ),
            rule(
                "9",
                RuleTarget::Table,
                ("shop", Some("O%"), None),
                NameAction::ConvertUppercase,
            ),
        ];
        let e = resolve(&rules, &[], &[], &[], &orders(), &[]).unwrap_err();
        assert_eq!((e.first.as_str(), e.second.as_str()), ("5", "9"));

        let rules = vec![rule(
            "6",
            RuleTarget::Column,
            ("%", Some("%"), Some("id")),
            NameAction::RemoveColumn,
        )];
        let mut t = orders();
        t.transform = resolve(&rules, &[], &[], &[], &t, &[]).unwrap().map(Box::new);
        let e = renamed(&t).unwrap_err().to_string();
        assert!(e.contains("rule 6") && e.contains("primary key"), "{e}");

        let rules = vec![rule(
            "7",
            RuleTarget::Column,
            ("%", Some("%"), Some("%")),
            NameAction::Rename("same".into()),
        )];
        let mut t = orders();
        t.transform = resolve(&rules, &[], &[], &[], &t, &[]).unwrap().map(Box::new);
        assert!(renamed(&t).unwrap_err().to_string().contains("two columns"));
    }

    #[test]
    fn prefix_and_suffix_actions() {
        let a = |a: NameAction, n: &str| a.apply(n).unwrap();
        assert_eq!(a(NameAction::RemovePrefix("tmp_".into()), "tmp_x"), "x");
        assert_eq!(a(NameAction::RemovePrefix("tmp_".into()), "x"), "x");
        assert_eq!(
            a(
                NameAction::ReplacePrefix {
                    old: "a".into(),
                    new: "b".into()
                },
                "aa"
            ),
            "ba"
        );
        assert_eq!(
            a(
                NameAction::ReplaceSuffix {
                    old: "_old".into(),
                    new: "_new".into()
                },
                "t_old"
            ),
            "t_new"
        );
        assert_eq!(a(NameAction::AddSuffix("_v2".into()), "t"), "t_v2");
        assert_eq!(a(NameAction::RemoveSuffix("_v2".into()), "t_v2"), "t");
        assert_eq!(a(NameAction::ConvertUppercase, "Straße"), "STRASSE");
    }

    #[test]
    fn mysql_definitions_use_backticks() {
        let mut t = TableSchema::bare(
            Engine::Mysql,
            "db",
            "T",
            vec![Column::plain("A", "int"), Column::plain("b", "int")],
        );
        t.columns[1].generated = Some("(`A` * 2)".into());
        t.transform = resolve(
            &[rule(
                "1",
                RuleTarget::Column,
                ("%", Some("%"), Some("%")),
                NameAction::ConvertLowercase,
            )],
            &[],
            &[],
            &[],
            &t,
            &[],
        )
        .unwrap()
        .map(Box::new);
        let r = renamed(&t).unwrap();
        assert_eq!(r.columns[1].generated.as_deref(), Some("(`a` * 2)"));
    }

    /// `column-filter`: the key, every column but LOBs, or every column.
    #[test]
    fn before_image_filters_pick_their_columns() {
        let t = orders();
        let picked = |filter: BeforeImageFilter| -> Vec<String> {
            let rule = BeforeImageRule {
                rule_id: "6".into(),
                schema: "%".into(),
                table: "%".into(),
                column: "%".into(),
                prefix: "BI_".into(),
                suffix: String::new(),
                filter,
            };
            let tr = resolve(&[], &[], &[], &[rule], &t, &[]).unwrap().unwrap();
            tr.before.iter().map(|b| format!("{}<-{}", b.name, b.source)).collect()
        };
        assert_eq!(picked(BeforeImageFilter::PkOnly), ["BI_id<-id"]);
        assert_eq!(picked(BeforeImageFilter::NonLob), ["BI_id<-id", "BI_cust_id<-cust_id"]);
        assert_eq!(
            picked(BeforeImageFilter::All),
            [
                "BI_id<-id",
                "BI_Lower<-Lower",
                "BI_secret<-secret",
                "BI_cust_id<-cust_id"
            ]
        );
    }
}
