//! DMS table-mapping JSON (`{"rules": [...]}`).
//!
//! Supported today: `selection` rules (include / exclude / explicit, with DMS
//! wildcards `%`, `_`, `[_]`, `[ab]`, `[a-d]`) and their source `filters`
//! (see [`crate::filter`]), `transformation` rules (see
//! [`crate::transform`]: renames, `remove-column`, `include-column`,
//! `add-column`, `change-data-type`, `define-primary-key`,
//! `add-before-image-columns`), and
//! `table-settings` rules with `parallel-load` of type `ranges` or `none`
//! and `lob-settings` (see [`crate::lob`]). Every other rule kind is
//! refused with an error that names the rule id, so a mapping never silently
//! means less than the user wrote.

use crate::expression::{DataType, Expression};
use crate::filter::{ColumnFilter, Condition, Operator, RowFilter};
use crate::lob::{TableLobMode, TableLobRule};
use crate::schema::TableSchema;
use crate::transform::{
    AddColumnRule, BeforeImageFilter, BeforeImageRule, KeyRule, NameAction, NameRule, RuleTarget, TableTransform,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum MappingError {
    #[error("table mappings: not valid JSON: {0}")]
    Json(String),
    #[error("table mappings: {path}: {message}")]
    Invalid { path: String, message: String },
    #[error("table mappings: rule {rule_id} ({path}): {message}")]
    Rule {
        rule_id: String,
        path: String,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SelectionAction {
    Include,
    Exclude,
    Explicit,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectionRule {
    pub rule_id: String,
    pub schema: String,
    pub table: String,
    pub action: SelectionAction,
    /// Source filters (`filters`), ANDed.
    #[serde(default)]
    pub filters: Vec<ColumnFilter>,
}

/// A user-given cut of one table: `n` boundaries make `n + 1` segments,
/// compared as tuples over `columns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParallelLoadRanges {
    pub rule_id: String,
    pub schema: String,
    pub table: String,
    pub columns: Vec<String>,
    pub boundaries: Vec<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableMappings {
    pub selection: Vec<SelectionRule>,
    pub ranges: Vec<ParallelLoadRanges>,
    /// Tables whose table-settings say `parallel-load: {type: none}`.
    pub no_parallel: Vec<(String, String)>,
    /// Transformation rules that name things (see [`crate::transform`]).
    #[serde(default)]
    pub transforms: Vec<NameRule>,
    /// `add-column` rules (see [`crate::transform`]).
    #[serde(default)]
    pub added: Vec<AddColumnRule>,
    /// `define-primary-key` rules.
    #[serde(default)]
    pub keys: Vec<KeyRule>,
    /// `add-before-image-columns` rules.
    #[serde(default)]
    pub befores: Vec<BeforeImageRule>,
    /// Tables' `lob-settings` (see [`crate::lob`]).
    #[serde(default)]
    pub lob_rules: Vec<TableLobRule>,
}

impl SelectionRule {
    /// Whether the rule's locator names this table: an explicit rule by
    /// exact name, the others by DMS wildcards.
    fn locates(&self, schema: &str, table: &str) -> bool {
        match self.action {
            SelectionAction::Explicit => self.schema == schema && self.table == table,
            _ => matches(&self.schema, schema) && matches(&self.table, table),
        }
    }
}

impl TableMappings {
    /// No file given: every table of every user schema.
    pub fn include_all() -> TableMappings {
        TableMappings {
            selection: vec![SelectionRule {
                rule_id: "default".into(),
                schema: "%".into(),
                table: "%".into(),
                action: SelectionAction::Include,
                filters: vec![],
            }],
            ..Default::default()
        }
    }

    pub fn parse(json: &str) -> Result<TableMappings, MappingError> {
        let root: Value = serde_json::from_str(json).map_err(|e| MappingError::Json(e.to_string()))?;
        let rules = root
            .get("rules")
            .and_then(Value::as_array)
            .ok_or_else(|| MappingError::Invalid {
                path: "$.rules".into(),
                message: "expected an array of rules".into(),
            })?;
        let mut out = TableMappings::default();
        for (i, rule) in rules.iter().enumerate() {
            let path = format!("$.rules[{i}]");
            let obj = rule.as_object().ok_or_else(|| MappingError::Invalid {
                path: path.clone(),
                message: "expected an object".into(),
            })?;
            let rule_id = match obj.get("rule-id") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => {
                    return Err(MappingError::Invalid {
                        path: format!("{path}.rule-id"),
                        message: "missing rule-id".into(),
                    })
                }
            };
            let err = |p: &str, m: &str| MappingError::Rule {
                rule_id: rule_id.clone(),
                path: format!("{path}{p}"),
                message: m.to_string(),
            };
            let rule_type = obj
                .get("rule-type")
                .and_then(Value::as_str)
                .ok_or_else(|| err(".rule-type", "missing rule-type"))?;
            let locator = obj
                .get("object-locator")
                .and_then(Value::as_object)
                .ok_or_else(|| err(".object-locator", "missing object-locator"))?;
            let loc = |key: &str| -> Result<String, MappingError> {
                locator
                    .get(key)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| err(&format!(".object-locator.{key}"), &format!("missing {key}")))
            };
            match rule_type {
                "selection" => {
                    if let Some(t) = locator.get("table-type").and_then(Value::as_str) {
                        if !matches!(t, "table" | "all") {
                            return Err(err(".object-locator.table-type", "only tables are supported yet"));
                        }
                    }
                    let action = match obj.get("rule-action").and_then(Value::as_str) {
                        Some("include") => SelectionAction::Include,
                        Some("exclude") => SelectionAction::Exclude,
                        Some("explicit") => SelectionAction::Explicit,
                        Some(other) => return Err(err(".rule-action", &format!("unknown selection action '{other}'"))),
                        None => return Err(err(".rule-action", "missing rule-action")),
                    };
                    let schema = loc("schema-name")?;
                    let table = loc("table-name")?;
                    for (p, pat) in [("schema-name", &schema), ("table-name", &table)] {
                        Pattern::compile(pat).map_err(|m| err(&format!(".object-locator.{p}"), &m))?;
                    }
                    let filters = match obj.get("filters") {
                        None | Some(Value::Null) => vec![],
                        Some(f) => parse_filters(f, &err)?,
                    };
                    if action == SelectionAction::Exclude && !filters.is_empty() {
                        return Err(err(".filters", "an exclude rule cannot carry filters"));
                    }
                    out.selection.push(SelectionRule {
                        rule_id: rule_id.clone(),
                        schema,
                        table,
                        action,
                        filters,
                    });
                }
                "table-settings" => {
                    let schema = loc("schema-name")?;
                    let table = loc("table-name")?;
                    for key in obj.keys() {
                        if !matches!(
                            key.as_str(),
                            "rule-type"
                                | "rule-id"
                                | "rule-name"
                                | "object-locator"
                                | "parallel-load"
                                | "lob-settings"
                                | "filters"
                        ) {
                            return Err(err(
                                &format!(".{key}"),
                                &format!("table-settings '{key}' is not supported yet"),
                            ));
                        }
                    }
                    if let Some(ls) = obj.get("lob-settings") {
                        out.lob_rules.push(TableLobRule {
                            rule_id: rule_id.clone(),
                            schema: schema.clone(),
                            table: table.clone(),
                            mode: parse_lob_settings(ls, &err)?,
                        });
                    }
                    if let Some(pl) = obj.get("parallel-load") {
                        let kind = pl.get("type").and_then(Value::as_str).unwrap_or("");
                        match kind {
                            "none" => out.no_parallel.push((schema, table)),
                            "ranges" => {
                                let columns: Vec<String> = pl
                                    .get("columns")
                                    .and_then(Value::as_array)
                                    .ok_or_else(|| err(".parallel-load.columns", "expected an array of column names"))?
                                    .iter()
                                    .map(|c| c.as_str().map(str::to_string))
                                    .collect::<Option<_>>()
                                    .ok_or_else(|| err(".parallel-load.columns", "column names must be strings"))?;
                                if columns.is_empty() || columns.len() > 10 {
                                    return Err(err(".parallel-load.columns", "give 1 to 10 columns"));
                                }
                                let mut boundaries = Vec::new();
                                let raw = pl
                                    .get("boundaries")
                                    .and_then(Value::as_array)
                                    .ok_or_else(|| err(".parallel-load.boundaries", "expected an array of arrays"))?;
                                for (j, b) in raw.iter().enumerate() {
                                    let bp = format!(".parallel-load.boundaries[{j}]");
                                    let vals: Vec<String> = b
                                        .as_array()
                                        .ok_or_else(|| err(&bp, "expected an array of values"))?
                                        .iter()
                                        .map(|v| match v {
                                            Value::String(s) => Some(s.clone()),
                                            Value::Number(n) => Some(n.to_string()),
                                            _ => None,
                                        })
                                        .collect::<Option<_>>()
                                        .ok_or_else(|| err(&bp, "boundary values must be strings or numbers"))?;
                                    if vals.len() != columns.len() {
                                        return Err(err(
                                            &bp,
                                            &format!("has {} values for {} columns", vals.len(), columns.len()),
                                        ));
                                    }
                                    boundaries.push(vals);
                                }
                                out.ranges.push(ParallelLoadRanges {
                                    rule_id: rule_id.clone(),
                                    schema,
                                    table,
                                    columns,
                                    boundaries,
                                });
                            }
                            other => {
                                return Err(err(
                                    ".parallel-load.type",
                                    &format!("parallel-load type '{other}' is not supported yet (use ranges or none)"),
                                ))
                            }
                        }
                    }
                }
                "transformation" if obj.get("rule-action").and_then(Value::as_str) == Some("add-column") => {
                    out.added.push(parse_add_column(obj, &rule_id, &err)?)
                }
                "transformation" if obj.get("rule-action").and_then(Value::as_str) == Some("define-primary-key") => {
                    out.keys.push(parse_key(obj, &rule_id, &err)?)
                }
                "transformation"
                    if obj.get("rule-action").and_then(Value::as_str) == Some("add-before-image-columns") =>
                {
                    out.befores.push(parse_before_image(obj, &rule_id, &err)?)
                }
                "transformation" => out.transforms.push(parse_transformation(obj, &rule_id, &err)?),
                other => {
                    return Err(err(".rule-type", &format!("rule type '{other}' is not supported yet")));
                }
            }
        }
        if !out.selection.iter().any(|r| r.action != SelectionAction::Exclude) {
            return Err(MappingError::Invalid {
                path: "$.rules".into(),
                message: "no selection rule includes any table".into(),
            });
        }
        Ok(out)
    }

    /// DMS semantics: a table is selected when an include or explicit rule
    /// matches it and no exclude rule does.
    pub fn selects(&self, schema: &str, table: &str) -> bool {
        let mut included = false;
        for r in &self.selection {
            if r.locates(schema, table) {
                if r.action == SelectionAction::Exclude {
                    return false;
                }
                included = true;
            }
        }
        included
    }

    /// The source filter of a selected table: the filters of the include
    /// or explicit rule that selects it. Two such rules with filters for
    /// the same table are an error naming both, since DMS gives no order
    /// between them.
    pub fn filter_for(&self, schema: &str, table: &str) -> Result<Option<RowFilter>, MappingError> {
        let mut found: Option<&SelectionRule> = None;
        for r in &self.selection {
            if r.action == SelectionAction::Exclude || r.filters.is_empty() || !r.locates(schema, table) {
                continue;
            }
            if let Some(first) = found {
                return Err(MappingError::Rule {
                    rule_id: r.rule_id.clone(),
                    path: "$.rules".into(),
                    message: format!(
                        "its filters and those of rule {} both apply to table {schema}.{table}; keep one",
                        first.rule_id
                    ),
                });
            }
            found = Some(r);
        }
        Ok(found.map(|r| RowFilter {
            rule_id: r.rule_id.clone(),
            columns: r.filters.clone(),
        }))
    }

    /// The `lob-settings` rule of a table, if one locates it; two are an
    /// error naming both.
    pub fn lob_rule_for(&self, schema: &str, table: &str) -> Result<Option<&TableLobRule>, MappingError> {
        let mut found: Option<&TableLobRule> = None;
        for r in &self.lob_rules {
            if !(matches(&r.schema, schema) && matches(&r.table, table)) {
                continue;
            }
            if let Some(first) = found {
                return Err(MappingError::Rule {
                    rule_id: r.rule_id.clone(),
                    path: "$.rules".into(),
                    message: format!(
                        "its lob-settings and those of rule {} both apply to table {schema}.{table}; keep one",
                        first.rule_id
                    ),
                });
            }
            found = Some(r);
        }
        Ok(found)
    }

    /// The target names the transformation rules give table `t`; `all`
    /// are the task's tables (foreign keys may reference renamed ones).
    pub fn transform_for(
        &self,
        t: &TableSchema,
        all: &[TableSchema],
    ) -> Result<Option<Box<TableTransform>>, MappingError> {
        let resolved = crate::transform::resolve(&self.transforms, &self.added, &self.keys, &self.befores, t, all)
            .map_err(|c| MappingError::Rule {
                rule_id: c.second.clone(),
                path: "$.rules".into(),
                message: format!(
                    "it and rule {} both rename (or add) an object of table {}; keep one",
                    c.first,
                    t.display_name()
                ),
            })?;
        // A non-key column's old value is in the log only where the
        // source logs whole old rows.
        let key = |c: &str| t.primary_key.as_ref().is_some_and(|k| k.columns.iter().any(|k| k == c));
        if let Some(b) = resolved
            .iter()
            .flat_map(|r| &r.before)
            .find(|b| !t.whole_old_image && !key(&b.source))
        {
            return Err(MappingError::Rule {
                rule_id: b.rule_id.clone(),
                path: "$.rules".into(),
                message: format!(
                    "its before-image column {} needs the old value of column {} of table {}, which the source's log \
                     does not carry (on PostgreSQL: ALTER TABLE {} REPLICA IDENTITY FULL; or column-filter pk-only)",
                    b.name,
                    b.source,
                    t.display_name(),
                    t.qualified()
                ),
            });
        }
        Ok(resolved.map(Box::new))
    }

    pub fn ranges_for(&self, schema: &str, table: &str) -> Option<&ParallelLoadRanges> {
        self.ranges.iter().find(|r| r.schema == schema && r.table == table)
    }

    pub fn parallel_disabled(&self, schema: &str, table: &str) -> bool {
        self.no_parallel.iter().any(|(s, t)| s == schema && t == table)
    }
}

/// A `transformation` rule of the supported kinds; the others are refused
/// with the rule id and path.
/// A reshaping rule's locator: its `rule-target` must be `target`, and
/// each of `keys` is an object-locator pattern (checked as DMS wildcards),
/// or its default when absent (`None`: required).
fn locate<const N: usize>(
    obj: &serde_json::Map<String, Value>,
    err: &dyn Fn(&str, &str) -> MappingError,
    action: &str,
    target: &str,
    keys: [(&str, Option<&str>); N],
) -> Result<[String; N], MappingError> {
    if obj.get("rule-target").and_then(Value::as_str) != Some(target) {
        return Err(err(".rule-target", &format!("{action} needs rule-target {target}")));
    }
    let locator = obj
        .get("object-locator")
        .and_then(Value::as_object)
        .ok_or_else(|| err(".object-locator", "missing object-locator"))?;
    let mut out: [String; N] = std::array::from_fn(|_| String::new());
    for (slot, (key, default)) in out.iter_mut().zip(keys) {
        let path = format!(".object-locator.{key}");
        let p = match (locator.get(key).and_then(Value::as_str), default) {
            (Some(p), _) | (None, Some(p)) => p,
            (None, None) => return Err(err(&path, &format!("missing {key}"))),
        };
        Pattern::compile(p).map_err(|m| err(&path, &m))?;
        *slot = p.to_string();
    }
    Ok(out)
}

/// An `add-column` transformation: `rule-target` column, a schema and
/// table locator, the new column's name in `value`, an `expression` of the
/// supported subset and a `data-type`.
fn parse_add_column(
    obj: &serde_json::Map<String, Value>,
    rule_id: &str,
    err: &dyn Fn(&str, &str) -> MappingError,
) -> Result<AddColumnRule, MappingError> {
    let [schema, table] = locate(
        obj,
        err,
        "add-column",
        "column",
        [("schema-name", None), ("table-name", None)],
    )?;
    let locator = obj.get("object-locator").and_then(Value::as_object);
    if let Some(c) = locator.and_then(|l| l.get("column-name")) {
        return Err(err(
            ".object-locator.column-name",
            &format!("add-column locates a table; the new column's name goes in value (got column-name {c})"),
        ));
    }
    let name = match obj.get("value") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(err(".value", "add-column needs the new column's name in value")),
    };
    let expression = match obj.get("expression") {
        Some(Value::String(e)) => Expression::parse(e).map_err(|m| err(".expression", &m))?,
        _ => return Err(err(".expression", "add-column needs an expression")),
    };
    let data_type = DataType::parse(
        obj.get("data-type")
            .ok_or_else(|| err(".data-type", "add-column needs a data-type"))?,
    )
    .map_err(|m| err(".data-type", &m))?;
    Ok(AddColumnRule {
        rule_id: rule_id.to_string(),
        schema,
        table,
        name,
        expression,
        data_type,
    })
}

/// A `define-primary-key` transformation: `rule-target` table and
/// `primary-key-def` with a `name`, `columns` (source names) and `origin`
/// `primary-key` (a `unique-index` origin is refused).
fn parse_key(
    obj: &serde_json::Map<String, Value>,
    rule_id: &str,
    err: &dyn Fn(&str, &str) -> MappingError,
) -> Result<KeyRule, MappingError> {
    let [schema, table] = locate(
        obj,
        err,
        "define-primary-key",
        "table",
        [("schema-name", None), ("table-name", None)],
    )?;
    let def = obj.get("primary-key-def").and_then(Value::as_object).ok_or_else(|| {
        err(
            ".primary-key-def",
            "define-primary-key needs primary-key-def with name and columns",
        )
    })?;
    match def.get("origin").and_then(Value::as_str) {
        None | Some("primary-key") => {}
        Some(other) => {
            return Err(err(
                ".primary-key-def.origin",
                &format!("origin '{other}' is not supported (primary-key)"),
            ))
        }
    }
    let name = match def.get("name") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(err(".primary-key-def.name", "the key needs a name")),
    };
    let columns: Vec<String> = def
        .get("columns")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|c| c.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
        })
        .unwrap_or_default()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| err(".primary-key-def.columns", "expected an array of column names"))?;
    Ok(KeyRule {
        rule_id: rule_id.to_string(),
        schema,
        table,
        name,
        columns,
    })
}

/// An `add-before-image-columns` transformation: `rule-target` column, a
/// schema, table and column locator, and `before-image-def` with
/// `column-prefix` (default `BI_`), `column-suffix` and `column-filter`
/// (`pk-only`, the default, `non-lob` or `all`).
fn parse_before_image(
    obj: &serde_json::Map<String, Value>,
    rule_id: &str,
    err: &dyn Fn(&str, &str) -> MappingError,
) -> Result<BeforeImageRule, MappingError> {
    let [schema, table, column] = locate(
        obj,
        err,
        "add-before-image-columns",
        "column",
        [
            ("schema-name", Some("%")),
            ("table-name", Some("%")),
            ("column-name", Some("%")),
        ],
    )?;
    let def = match obj.get("before-image-def") {
        None => serde_json::Map::new(),
        Some(Value::Object(d)) => d.clone(),
        Some(_) => return Err(err(".before-image-def", "expected an object")),
    };
    let text = |key: &str, default: &str| -> Result<String, MappingError> {
        match def.get(key) {
            None | Some(Value::Null) => Ok(default.to_string()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v) => Err(err(
                &format!(".before-image-def.{key}"),
                &format!("expected text, got {v}"),
            )),
        }
    };
    let (prefix, suffix) = (text("column-prefix", "BI_")?, text("column-suffix", "")?);
    if prefix.is_empty() && suffix.is_empty() {
        return Err(err(
            ".before-image-def.column-prefix",
            "a prefix or a suffix is needed, or the columns would take their own names",
        ));
    }
    // Columns beyond the key need the whole old row in the source's log
    // (checked per table when the rules are resolved).
    let filter = match text("column-filter", "pk-only")?.as_str() {
        "pk-only" => BeforeImageFilter::PkOnly,
        "non-lob" => BeforeImageFilter::NonLob,
        "all" => BeforeImageFilter::All,
        other => {
            return Err(err(
                ".before-image-def.column-filter",
                &format!("expected pk-only, non-lob or all, got '{other}'"),
            ))
        }
    };
    Ok(BeforeImageRule {
        rule_id: rule_id.to_string(),
        schema,
        table,
        column,
        prefix,
        suffix,
        filter,
    })
}

fn parse_transformation(
    obj: &serde_json::Map<String, Value>,
    rule_id: &str,
    err: &dyn Fn(&str, &str) -> MappingError,
) -> Result<NameRule, MappingError> {
    let target = match obj.get("rule-target").and_then(Value::as_str) {
        Some("schema") => RuleTarget::Schema,
        Some("table") => RuleTarget::Table,
        Some("column") => RuleTarget::Column,
        Some(other) => {
            return Err(err(
                ".rule-target",
                &format!("rule-target '{other}' is not supported (schema, table, column)"),
            ))
        }
        None => return Err(err(".rule-target", "missing rule-target")),
    };
    let value = |key: &str| -> Result<String, MappingError> {
        match obj.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            _ => Err(err(&format!(".{key}"), &format!("this action needs a non-empty {key}"))),
        }
    };
    let action = match obj.get("rule-action").and_then(Value::as_str) {
        Some("rename") => NameAction::Rename(value("value")?),
        Some("convert-lowercase") => NameAction::ConvertLowercase,
        Some("convert-uppercase") => NameAction::ConvertUppercase,
        Some("add-prefix") => NameAction::AddPrefix(value("value")?),
        Some("remove-prefix") => NameAction::RemovePrefix(value("value")?),
        Some("replace-prefix") => NameAction::ReplacePrefix {
            old: value("old-value")?,
            new: value("value")?,
        },
        Some("add-suffix") => NameAction::AddSuffix(value("value")?),
        Some("remove-suffix") => NameAction::RemoveSuffix(value("value")?),
        Some("replace-suffix") => NameAction::ReplaceSuffix {
            old: value("old-value")?,
            new: value("value")?,
        },
        Some("remove-column") if target == RuleTarget::Column => NameAction::RemoveColumn,
        Some("change-data-type") if target == RuleTarget::Column => NameAction::ChangeDataType(
            DataType::parse(
                obj.get("data-type")
                    .ok_or_else(|| err(".data-type", "change-data-type needs a data-type"))?,
            )
            .map_err(|m| err(".data-type", &m))?,
        ),
        Some("change-data-type") => return Err(err(".rule-target", "change-data-type needs rule-target column")),
        Some("include-column") if target == RuleTarget::Column => NameAction::IncludeColumn,
        Some("include-column") => return Err(err(".rule-target", "include-column needs rule-target column")),
        Some("remove-column") => return Err(err(".rule-target", "remove-column needs rule-target column")),
        Some(other) => return Err(err(".rule-action", &format!("unknown transformation '{other}'"))),
        None => return Err(err(".rule-action", "missing rule-action")),
    };
    let locator = obj
        .get("object-locator")
        .and_then(Value::as_object)
        .ok_or_else(|| err(".object-locator", "missing object-locator"))?;
    let loc = |key: &str, needed: bool| -> Result<Option<String>, MappingError> {
        let path = format!(".object-locator.{key}");
        match locator.get(key).and_then(Value::as_str) {
            Some(p) if needed => {
                Pattern::compile(p).map_err(|m| err(&path, &m))?;
                Ok(Some(p.to_string()))
            }
            _ if needed => Err(err(&path, &format!("missing {key}"))),
            _ => Ok(None),
        }
    };
    Ok(NameRule {
        rule_id: rule_id.to_string(),
        target,
        schema: loc("schema-name", true)?.unwrap_or_default(),
        table: loc("table-name", target != RuleTarget::Schema)?,
        column: loc("column-name", target == RuleTarget::Column)?,
        action,
    })
}

/// A selection rule's `filters` array.
fn parse_filters(f: &Value, err: &dyn Fn(&str, &str) -> MappingError) -> Result<Vec<ColumnFilter>, MappingError> {
    let list = f
        .as_array()
        .ok_or_else(|| err(".filters", "expected an array of filters"))?;
    let mut out = vec![];
    for (i, f) in list.iter().enumerate() {
        let p = format!(".filters[{i}]");
        let o = f.as_object().ok_or_else(|| err(&p, "expected an object"))?;
        match o.get("filter-type").and_then(Value::as_str) {
            Some("source") => {}
            Some(other) => {
                return Err(err(
                    &format!("{p}.filter-type"),
                    &format!("filter-type '{other}' is not supported (only source)"),
                ))
            }
            None => return Err(err(&format!("{p}.filter-type"), "missing filter-type")),
        }
        let column = o
            .get("column-name")
            .and_then(Value::as_str)
            .ok_or_else(|| err(&format!("{p}.column-name"), "missing column-name"))?
            .to_string();
        let conds = o
            .get("filter-conditions")
            .and_then(Value::as_array)
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                err(
                    &format!("{p}.filter-conditions"),
                    "expected a non-empty array of conditions",
                )
            })?;
        let mut conditions = vec![];
        for (j, c) in conds.iter().enumerate() {
            let cp = format!("{p}.filter-conditions[{j}]");
            let name = c
                .get("filter-operator")
                .and_then(Value::as_str)
                .ok_or_else(|| err(&format!("{cp}.filter-operator"), "missing filter-operator"))?;
            let op = Operator::parse(name).ok_or_else(|| {
                err(
                    &format!("{cp}.filter-operator"),
                    &format!(
                        "unknown filter-operator '{name}' (eq, noteq, ste, lte, gte, between, notbetween, null, notnull)"
                    ),
                )
            })?;
            let keys: &[&str] = match op.arity() {
                0 => &[],
                1 => &["value"],
                _ => &["start-value", "end-value"],
            };
            let values = keys
                .iter()
                .map(|k| match c.get(*k) {
                    Some(Value::String(s)) => Ok(s.clone()),
                    Some(Value::Number(n)) => Ok(n.to_string()),
                    _ => Err(err(
                        &format!("{cp}.{k}"),
                        &format!("operator {name} needs {k} (a string or number)"),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?;
            conditions.push(Condition { op, values });
        }
        out.push(ColumnFilter { column, conditions });
    }
    Ok(out)
}

#[derive(Debug)]
enum Atom {
    Any,
    One,
    Lit(char),
    Class(Vec<(char, char)>),
}

struct Pattern(Vec<Atom>);

impl Pattern {
    fn compile(p: &str) -> Result<Pattern, String> {
        let mut atoms = Vec::new();
        let mut chars = p.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '%' => atoms.push(Atom::Any),
                '_' => atoms.push(Atom::One),
                '[' => {
                    let mut ranges = Vec::new();
                    let mut closed = false;
                    while let Some(c) = chars.next() {
                        if c == ']' {
                            closed = true;
                            break;
                        }
                        if chars.peek() == Some(&'-') {
                            chars.next();
                            match chars.next() {
                                Some(']') => {
                                    ranges.push((c, c));
                                    ranges.push(('-', '-'));
                                    closed = true;
                                    break;
                                }
                                Some(hi) => ranges.push((c, hi)),
                                None => break,
                            }
                        } else {
                            ranges.push((c, c));
                        }
                    }
                    if !closed {
                        return Err(format!("unclosed '[' in pattern '{p}'"));
                    }
                    atoms.push(Atom::Class(ranges));
                }
                c => atoms.push(Atom::Lit(c)),
            }
        }
        Ok(Pattern(atoms))
    }

    fn matches(&self, s: &str) -> bool {
        let s: Vec<char> = s.chars().collect();
        // Iterative wildcard matching with backtracking on the last '%'.
        let (mut pi, mut si) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            let ok = match self.0.get(pi) {
                Some(Atom::Any) => {
                    star = Some((pi, si));
                    pi += 1;
                    continue;
                }
                Some(Atom::One) => true,
                Some(Atom::Lit(c)) => *c == s[si],
                Some(Atom::Class(r)) => r.iter().any(|(lo, hi)| *lo <= s[si] && s[si] <= *hi),
                None => false,
            };
            if ok {
                pi += 1;
                si += 1;
            } else if let Some((sp, ss)) = star {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            } else {
                return false;
            }
        }
        self.0[pi..].iter().all(|a| matches!(a, Atom::Any))
    }
}

/// A table-settings rule's `lob-settings`: `mode` `limited` (with
/// `bulk-max-size` in KB, a number or a numeric string as DMS writes it),
/// `unlimited`, or `none` (the task's settings).
fn parse_lob_settings(ls: &Value, err: &dyn Fn(&str, &str) -> MappingError) -> Result<TableLobMode, MappingError> {
    let obj = ls
        .as_object()
        .ok_or_else(|| err(".lob-settings", "expected an object with mode and bulk-max-size"))?;
    if let Some(key) = obj.keys().find(|k| !matches!(k.as_str(), "mode" | "bulk-max-size")) {
        return Err(err(
            &format!(".lob-settings.{key}"),
            "not a lob-settings key (mode, bulk-max-size)",
        ));
    }
    let size = match obj.get("bulk-max-size") {
        None => None,
        Some(v) => {
            let kb = match v {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            };
            Some(kb.filter(|kb| (1..=102_400).contains(kb)).ok_or_else(|| {
                err(
                    ".lob-settings.bulk-max-size",
                    &format!("expected a size of 1..102400 KB, got {v}"),
                )
            })?)
        }
    };
    match obj.get("mode").and_then(Value::as_str) {
        Some("limited") => Ok(TableLobMode::Limited {
            max_bytes: size
                .ok_or_else(|| err(".lob-settings.bulk-max-size", "limited mode needs bulk-max-size (KB)"))?
                * 1024,
        }),
        Some("unlimited") => Ok(TableLobMode::Unlimited),
        Some("none") => Ok(TableLobMode::Task),
        _ => Err(err(".lob-settings.mode", "expected limited, unlimited or none")),
    }
}

/// DMS wildcard match (case-sensitive). Patterns are validated at parse time.
pub fn matches(pattern: &str, s: &str) -> bool {
    Pattern::compile(pattern).map(|p| p.matches(s)).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_column_rules() {
        let select = r#"{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{"schema-name":"%","table-name":"%"},"rule-action":"include"}"#;
        let m = TableMappings::parse(&format!(
            r#"{{"rules":[{select},{{"rule-type":"transformation","rule-id":"2","rule-name":"2","rule-action":"add-column",
               "rule-target":"column","object-locator":{{"schema-name":"s","table-name":"t"}},"value":"full",
               "expression":"$a||' '||$b","data-type":{{"type":"string","length":"50"}}}}]}}"#
        ))
        .unwrap();
        assert_eq!(m.added.len(), 1);
        assert_eq!(m.added[0].expression.columns().collect::<Vec<_>>(), ["a", "b"]);
        for (rule, path) in [
            (
                r#""rule-target":"table","value":"c","expression":"1","data-type":{"type":"int4"}"#,
                ".rule-target",
            ),
            (
                r#""rule-target":"column","expression":"1","data-type":{"type":"int4"}"#,
                ".value",
            ),
            (
                r#""rule-target":"column","value":"c","data-type":{"type":"int4"}"#,
                ".expression",
            ),
            (r#""rule-target":"column","value":"c","expression":"1""#, ".data-type"),
            (
                r#""rule-target":"column","value":"c","expression":"$a + 1","data-type":{"type":"int4"}"#,
                ".expression",
            ),
        ] {
            let e = TableMappings::parse(&format!(
                r#"{{"rules":[{select},{{"rule-type":"transformation","rule-id":"9","rule-name":"9","rule-action":"add-column",
                   "object-locator":{{"schema-name":"s","table-name":"t"}},{rule}}}]}}"#
            ))
            .unwrap_err()
            .to_string();
            assert!(e.contains("rule 9") && e.contains(path), "{e}");
        }
    }

    #[test]
    fn define_primary_key_rules() {
        let select = r#"{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{"schema-name":"%","table-name":"%"},"rule-action":"include"}"#;
        let m = TableMappings::parse(&format!(
            r#"{{"rules":[{select},{{"rule-type":"transformation","rule-id":"2","rule-name":"2","rule-action":"define-primary-key",
               "rule-target":"table","object-locator":{{"schema-name":"s","table-name":"t"}},
               "primary-key-def":{{"name":"t_pk","origin":"primary-key","columns":["a","b"]}}}}]}}"#
        ))
        .unwrap();
        assert_eq!(m.keys[0].columns, ["a", "b"]);
        for (def, path) in [
            (
                r#"{"name":"k","origin":"unique-index","columns":["a"]}"#,
                ".primary-key-def.origin",
            ),
            (r#"{"name":"k","columns":[]}"#, ".primary-key-def.columns"),
            (r#"{"columns":["a"]}"#, ".primary-key-def.name"),
        ] {
            let e = TableMappings::parse(&format!(
                r#"{{"rules":[{select},{{"rule-type":"transformation","rule-id":"9","rule-name":"9","rule-action":"define-primary-key",
                   "rule-target":"table","object-locator":{{"schema-name":"s","table-name":"t"}},"primary-key-def":{def}}}]}}"#
            ))
            .unwrap_err()
            .to_string();
            assert!(e.contains("rule 9") && e.contains(path), "{e}");
        }
    }

    #[test]
    fn lob_settings_per_table() {
        let m = TableMappings::parse(
            r#"{"rules":[{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{"schema-name":"%","table-name":"%"},"rule-action":"include"},
            {"rule-type":"table-settings","rule-id":"2","rule-name":"2","object-locator":{"schema-name":"s","table-name":"docs%"},
             "lob-settings":{"mode":"limited","bulk-max-size":"16"}},
            {"rule-type":"table-settings","rule-id":"3","rule-name":"3","object-locator":{"schema-name":"s","table-name":"docs_x"},
             "lob-settings":{"mode":"unlimited","bulk-max-size":64}}]}"#,
        )
        .unwrap();
        let r = m.lob_rule_for("s", "docs").unwrap().unwrap();
        assert_eq!(r.mode, TableLobMode::Limited { max_bytes: 16 * 1024 });
        assert!(m.lob_rule_for("s", "other").unwrap().is_none());
        let e = m.lob_rule_for("s", "docs_x").unwrap_err().to_string();
        assert!(e.contains("rule 3") && e.contains("rule 2"), "{e}");
        for (bad, path) in [
            (r#"{"mode":"partial"}"#, ".lob-settings.mode"),
            (r#"{"mode":"limited"}"#, ".lob-settings.bulk-max-size"),
            (
                r#"{"mode":"limited","bulk-max-size":"lots"}"#,
                ".lob-settings.bulk-max-size",
            ),
            (r#"{"mode":"none","chunk":1}"#, ".lob-settings.chunk"),
        ] {
            let e = TableMappings::parse(&format!(
                r#"{{"rules":[{{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{{"schema-name":"%","table-name":"%"}},"rule-action":"include"}},
                {{"rule-type":"table-settings","rule-id":"7","rule-name":"7","object-locator":{{"schema-name":"s","table-name":"t"}},"lob-settings":{bad}}}]}}"#
            ))
            .unwrap_err()
            .to_string();
            assert!(e.contains("rule 7") && e.contains(path), "{e}");
        }
    }

    #[test]
    fn wildcards() {
        assert!(matches("%", "anything"));
        assert!(matches("tmp_%", "tmp_x"));
        assert!(matches("tmp_%", "tmpax"));
        assert!(!matches("tmp[_]%", "tmpax"));
        assert!(matches("tmp[_]%", "tmp_ax"));
        assert!(matches("t[a-c]b", "tbb"));
        assert!(!matches("t[a-c]b", "tdb"));
        assert!(matches("%ord%", "big_orders"));
        assert!(!matches("Orders", "orders"));
        assert!(matches("a%b%c", "aXXbYYc"));
        assert!(!matches("a%b%c", "aXXbYY"));
    }

    #[test]
    fn selection_include_exclude_explicit() {
        let m = TableMappings::parse(
            r#"{"rules":[
            {"rule-type":"selection","rule-id":"1","rule-name":"a","object-locator":{"schema-name":"shop","table-name":"%"},"rule-action":"include"},
            {"rule-type":"selection","rule-id":"2","rule-name":"b","object-locator":{"schema-name":"shop","table-name":"tmp_%"},"rule-action":"exclude"},
            {"rule-type":"selection","rule-id":"3","rule-name":"c","object-locator":{"schema-name":"other","table-name":"t%"},"rule-action":"explicit"}
            ]}"#,
        )
        .unwrap();
        assert!(m.selects("shop", "orders"));
        assert!(!m.selects("shop", "tmp_1"));
        assert!(!m.selects("other", "tx"));
        assert!(m.selects("other", "t%"));
        assert!(!m.selects("public", "orders"));
    }

    #[test]
    fn unsupported_rule_names_its_id() {
        let err = TableMappings::parse(
            r#"{"rules":[{"rule-type":"transformation","rule-id":"7","rule-name":"x","rule-action":"convert-lowercase","rule-target":"index","object-locator":{"schema-name":"a","table-name":"t"}}]}"#,
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("rule 7") && msg.contains("not supported"), "{msg}");
        assert!(msg.contains("$.rules[0].rule-target"), "{msg}");
        let err =
            TableMappings::parse(r#"{"rules":[{"rule-type":"object-mapping","rule-id":"8","object-locator":{}}]}"#)
                .unwrap_err()
                .to_string();
        assert!(err.contains("rule 8") && err.contains("$.rules[0].rule-type"), "{err}");
    }

    #[test]
    fn transformation_rules() {
        let m = TableMappings::parse(
            r#"{"rules":[
            {"rule-type":"selection","rule-id":"1","rule-name":"a","object-locator":{"schema-name":"%","table-name":"%"},"rule-action":"include"},
            {"rule-type":"transformation","rule-id":"2","rule-name":"s","rule-action":"rename","rule-target":"schema","object-locator":{"schema-name":"shop"},"value":"store"},
            {"rule-type":"transformation","rule-id":"3","rule-name":"t","rule-action":"replace-prefix","rule-target":"table","object-locator":{"schema-name":"%","table-name":"tmp%"},"old-value":"tmp","value":"t"},
            {"rule-type":"transformation","rule-id":"4","rule-name":"c","rule-action":"remove-column","rule-target":"column","object-locator":{"schema-name":"%","table-name":"%","column-name":"x"}}]}"#,
        )
        .unwrap();
        assert_eq!(m.transforms.len(), 3);
        assert_eq!(
            m.transforms[1].action,
            NameAction::ReplacePrefix {
                old: "tmp".into(),
                new: "t".into()
            }
        );
        let bad = |rule: &str, want: &str| {
            let e = TableMappings::parse(&format!(
                r#"{{"rules":[{{"rule-type":"selection","rule-id":"1","rule-name":"a","object-locator":{{"schema-name":"%","table-name":"%"}},"rule-action":"include"}},{rule}]}}"#
            ))
            .unwrap_err()
            .to_string();
            assert!(e.contains(want), "{e} (wanted {want})");
        };
        bad(
            r#"{"rule-type":"transformation","rule-id":"5","rule-action":"rename","rule-target":"table","object-locator":{"schema-name":"s","table-name":"t"}}"#,
            "rule 5 ($.rules[1].value)",
        );
        bad(
            r#"{"rule-type":"transformation","rule-id":"6","rule-action":"remove-column","rule-target":"table","object-locator":{"schema-name":"s","table-name":"t"}}"#,
            "rule 6 ($.rules[1].rule-target)",
        );
        bad(
            r#"{"rule-type":"transformation","rule-id":"7","rule-action":"convert-lowercase","rule-target":"column","object-locator":{"schema-name":"s","table-name":"t"}}"#,
            "rule 7 ($.rules[1].object-locator.column-name)",
        );
        bad(
            r#"{"rule-type":"transformation","rule-id":"8","rule-action":"convert-lowercase","rule-target":"index","object-locator":{"schema-name":"s"}}"#,
            "rule-target 'index'",
        );
        bad(
            r#"{"rule-type":"transformation","rule-id":"9","rule-action":"change-data-type","rule-target":"column","object-locator":{"schema-name":"s","table-name":"t","column-name":"c"}}"#,
            "rule 9 ($.rules[1].data-type)",
        );
        bad(
            r#"{"rule-type":"transformation","rule-id":"9","rule-action":"add-before-image-columns","rule-target":"column","object-locator":{"schema-name":"s","table-name":"t","column-name":"c"},"before-image-def":{"column-filter":"some"}}"#,
            "rule 9 ($.rules[1].before-image-def.column-filter)",
        );
        bad(
            r#"{"rule-type":"transformation","rule-id":"9","rule-action":"make-coffee","rule-target":"column","object-locator":{"schema-name":"s","table-name":"t","column-name":"c"}}"#,
            "unknown transformation 'make-coffee'",
        );
    }

    #[test]
    fn source_filters() {
        let m = TableMappings::parse(
            r#"{"rules":[
            {"rule-type":"selection","rule-id":"1","rule-name":"a","object-locator":{"schema-name":"shop","table-name":"%"},"rule-action":"include",
             "filters":[{"filter-type":"source","column-name":"empid","filter-conditions":[{"filter-operator":"lte","value":"10"},{"filter-operator":"between","start-value":50,"end-value":"75"}]},
                        {"filter-type":"source","column-name":"gone","filter-conditions":[{"filter-operator":"null"}]}]}]}"#,
        )
        .unwrap();
        let f = m.filter_for("shop", "emp").unwrap().unwrap();
        assert_eq!(f.rule_id, "1");
        assert_eq!(f.columns.len(), 2);
        assert_eq!(f.columns[0].conditions[1].values, vec!["50".to_string(), "75".into()]);
        assert_eq!(m.filter_for("other", "emp").unwrap(), None);

        let bad = |json: &str, want: &str| {
            let e = TableMappings::parse(json).unwrap_err().to_string();
            assert!(e.contains(want), "{e} (wanted {want})");
        };
        let rule = |filters: &str| {
            format!(
                r#"{{"rules":[{{"rule-type":"selection","rule-id":"4","rule-name":"a","object-locator":{{"schema-name":"s","table-name":"t"}},"rule-action":"include","filters":{filters}}}]}}"#
            )
        };
        bad(
            &rule(
                r#"[{"filter-type":"target","column-name":"a","filter-conditions":[{"filter-operator":"eq","value":"1"}]}]"#,
            ),
            "rule 4 ($.rules[0].filters[0].filter-type)",
        );
        bad(
            &rule(
                r#"[{"filter-type":"source","column-name":"a","filter-conditions":[{"filter-operator":"like","value":"1"}]}]"#,
            ),
            "unknown filter-operator 'like'",
        );
        bad(
            &rule(
                r#"[{"filter-type":"source","column-name":"a","filter-conditions":[{"filter-operator":"between","start-value":"1"}]}]"#,
            ),
            "filter-conditions[0].end-value",
        );
        bad(
            &rule(r#"[{"filter-type":"source","column-name":"a","filter-conditions":[]}]"#),
            "non-empty",
        );

        let two = TableMappings::parse(
            r#"{"rules":[
            {"rule-type":"selection","rule-id":"1","rule-name":"a","object-locator":{"schema-name":"s","table-name":"%"},"rule-action":"include",
             "filters":[{"filter-type":"source","column-name":"a","filter-conditions":[{"filter-operator":"notnull"}]}]},
            {"rule-type":"selection","rule-id":"2","rule-name":"b","object-locator":{"schema-name":"s","table-name":"t"},"rule-action":"explicit",
             "filters":[{"filter-type":"source","column-name":"b","filter-conditions":[{"filter-operator":"null"}]}]}]}"#,
        )
        .unwrap();
        let e = two.filter_for("s", "t").unwrap_err().to_string();
        assert!(e.contains("rule 2") && e.contains("rule 1"), "{e}");
        assert!(two.filter_for("s", "u").unwrap().is_some());
    }

    #[test]
    fn parallel_load_ranges() {
        let m = TableMappings::parse(
            r#"{"rules":[
            {"rule-type":"selection","rule-id":"1","rule-name":"a","object-locator":{"schema-name":"%","table-name":"%"},"rule-action":"include"},
            {"rule-type":"table-settings","rule-id":"2","rule-name":"p","object-locator":{"schema-name":"s","table-name":"t"},
             "parallel-load":{"type":"ranges","columns":["a","b"],"boundaries":[["1","x"],[5,"y"]]}}]}"#,
        )
        .unwrap();
        let r = m.ranges_for("s", "t").unwrap();
        assert_eq!(
            r.boundaries,
            vec![vec!["1".to_string(), "x".into()], vec!["5".into(), "y".into()]]
        );
        let bad = TableMappings::parse(
            r#"{"rules":[{"rule-type":"table-settings","rule-id":"9","rule-name":"p","object-locator":{"schema-name":"s","table-name":"t"},
             "parallel-load":{"type":"ranges","columns":["a","b"],"boundaries":[["1"]]}}]}"#,
        )
        .unwrap_err();
        assert!(bad.to_string().contains("rule 9"), "{bad}");
        assert!(bad.to_string().contains("boundaries[0]"), "{bad}");
    }
}
