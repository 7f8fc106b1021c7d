//! SQL text from one engine's dialect into the other's, through a real
//! parser (sqlparser): view queries, default / check / generated
//! expressions, and the plain statements of simple trigger bodies.
//!
//! The rule is to refuse rather than guess. The source is parsed with its own
//! dialect; every expression must be of a kind this module knows to mean the
//! same on both engines (anything else is [`Untranslatable`], naming the
//! construct); functions pass only through a table of equivalents
//! ([`function`]), some rewritten (`IFNULL` → `COALESCE`, PostgreSQL `||` →
//! `CONCAT`, MySQL `CONCAT` → `||`, which also yields NULL on a NULL
//! argument); identifiers are requoted for the target. The result is parsed
//! again with the target's dialect before it is returned, so text that would
//! not even parse there never reaches a DDL file. Where the meaning shifts
//! in a way a reviewer should know (division of integers), the translation
//! succeeds with a note that becomes a low-severity action item.

use ferry_common::endpoint::Engine;
use ferry_common::schema::TableSchema;
use sqlparser::ast::*;
use sqlparser::dialect::{Dialect, MySqlDialect, PostgreSqlDialect};
use sqlparser::parser::Parser;
use std::ops::ControlFlow;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Untranslatable(pub String);

/// Translated SQL with what a reviewer should know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translated {
    pub sql: String,
    pub notes: Vec<String>,
}

fn dialect(e: Engine) -> Box<dyn Dialect> {
    match e {
        Engine::Postgres => Box::new(PostgreSqlDialect {}),
        Engine::Mysql => Box::new(MySqlDialect {}),
    }
}

fn parser_err(what: &str, e: impl std::fmt::Display) -> Untranslatable {
    Untranslatable(format!("cannot parse the {what}: {e}"))
}

/// Words either engine reserves (sorted): quoted when used as names.
const RESERVED: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "binary",
    "both",
    "by",
    "case",
    "cast",
    "change",
    "check",
    "collate",
    "column",
    "condition",
    "constraint",
    "convert",
    "create",
    "cross",
    "current_date",
    "current_role",
    "current_time",
    "current_timestamp",
    "current_user",
    "database",
    "databases",
    "default",
    "deferrable",
    "delete",
    "desc",
    "describe",
    "distinct",
    "div",
    "do",
    "drop",
    "else",
    "end",
    "except",
    "exists",
    "explain",
    "false",
    "fetch",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "fulltext",
    "grant",
    "group",
    "having",
    "if",
    "ignore",
    "ilike",
    "in",
    "index",
    "initially",
    "inner",
    "insert",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "key",
    "keys",
    "kill",
    "lateral",
    "leading",
    "leave",
    "left",
    "like",
    "limit",
    "lines",
    "load",
    "localtime",
    "localtimestamp",
    "lock",
    "long",
    "loop",
    "match",
    "mod",
    "natural",
    "not",
    "notnull",
    "null",
    "offset",
    "on",
    "only",
    "option",
    "or",
    "order",
    "outer",
    "over",
    "overlaps",
    "partition",
    "placing",
    "primary",
    "procedure",
    "range",
    "read",
    "references",
    "regexp",
    "release",
    "rename",
    "repeat",
    "replace",
    "require",
    "return",
    "returning",
    "right",
    "rlike",
    "rows",
    "schema",
    "select",
    "separator",
    "session_user",
    "set",
    "show",
    "signal",
    "similar",
    "some",
    "spatial",
    "sql",
    "symmetric",
    "table",
    "tablesample",
    "then",
    "to",
    "trailing",
    "trigger",
    "true",
    "undo",
    "union",
    "unique",
    "unlock",
    "unsigned",
    "update",
    "usage",
    "use",
    "user",
    "using",
    "values",
    "variadic",
    "verbose",
    "when",
    "where",
    "while",
    "window",
    "with",
    "write",
    "xor",
    "zerofill",
];

/// An identifier as the target writes it: bare when that means the same
/// (PostgreSQL folds bare names to lower case), quoted otherwise.
pub fn ident(to: Engine, name: &str) -> String {
    let bare = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && RESERVED.binary_search(&name).is_err();
    match (to, bare) {
        (_, true) => name.to_string(),
        (Engine::Postgres, false) => format!("\"{}\"", name.replace('"', "\"\"")),
        (Engine::Mysql, false) => format!("`{}`", name.replace('`', "``")),
    }
}

/// What the translator knows of column types: `date ± n` means different
/// things on the two engines, so arithmetic on a date or time column is
/// refused, which needs the column's type.
#[derive(Debug, Clone, Copy, Default)]
pub struct Types<'a> {
    /// Every table of the source catalog (views name them in FROM).
    pub tables: &'a [TableSchema],
    /// The table bare column names and `NEW` / `OLD` belong to (a trigger's
    /// table; the table of a default, check or generated expression).
    pub row: Option<&'a TableSchema>,
}

impl<'a> Types<'a> {
    pub fn of_row(t: &'a TableSchema) -> Types<'a> {
        Types {
            tables: &[],
            row: Some(t),
        }
    }
}

/// Date, time and interval types (in their engine's spelling).
fn temporal(engine: Engine, type_sql: &str) -> bool {
    use ferry_common::typemap::{kind, Kind};
    matches!(
        kind(engine, type_sql),
        Kind::Date | Kind::DateTime | Kind::Timestamp | Kind::Duration
    ) || (engine == Engine::Postgres && type_sql.starts_with("interval"))
}

struct Rewriter<'a> {
    from: Engine,
    to: Engine,
    /// Inside a trigger body: `NEW` / `OLD` are the row records.
    trigger: bool,
    /// Where unqualified tables live (a MySQL body's database; the source
    /// function's schema), so the target does not depend on a search path.
    schema: Option<String>,
    types: Types<'a>,
    /// FROM entries: `(alias or table name, table)`.
    scope: Vec<(String, &'a TableSchema)>,
    notes: Vec<String>,
}

/// An already-rendered target expression, carried in the tree as a bare
/// identifier (it prints verbatim).
fn raw(sql: String) -> Expr {
    Expr::Identifier(Ident::new(sql))
}

fn args_of(f: &Function) -> Result<(bool, Vec<String>), Untranslatable> {
    match &f.args {
        FunctionArguments::None => Ok((false, vec![])),
        FunctionArguments::Subquery(_) => Err(Untranslatable(format!("function {} over a subquery", f.name))),
        FunctionArguments::List(l) => {
            if !l.clauses.is_empty() {
                return Err(Untranslatable(format!(
                    "clauses inside {}(...) ({})",
                    f.name,
                    l.clauses.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(" ")
                )));
            }
            let distinct = matches!(l.duplicate_treatment, Some(DuplicateTreatment::Distinct));
            Ok((distinct, l.args.iter().map(|a| a.to_string()).collect()))
        }
    }
}

/// The body of a plain string literal (`'...'` without quotes inside).
fn literal_body(lit: &str) -> Option<&str> {
    let body = lit.strip_prefix('\'')?.strip_suffix('\'')?;
    (!body.contains(['\'', '\\'])).then_some(body)
}

/// MySQL DATE_FORMAT specifiers as PostgreSQL to_char patterns. Letters
/// outside specifiers would be patterns to to_char: refused, as is any
/// specifier without an exact counterpart.
fn date_format_to_char(lit: &str) -> Result<String, Untranslatable> {
    let refuse = || Untranslatable(format!("DATE_FORMAT pattern {lit}"));
    let body = literal_body(lit).ok_or_else(refuse)?;
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            if c.is_alphabetic() {
                return Err(refuse());
            }
            out.push(c);
            continue;
        }
        out.push_str(match chars.next().ok_or_else(refuse)? {
            'Y' => "YYYY",
            'y' => "YY",
            'm' => "MM",
            'c' => "FMMM",
            'd' => "DD",
            'e' => "FMDD",
            'H' => "HH24",
            'k' => "FMHH24",
            'h' | 'I' => "HH12",
            'i' => "MI",
            's' | 'S' => "SS",
            'f' => "US",
            'p' => "AM",
            'j' => "DDD",
            '%' => "%",
            _ => return Err(refuse()),
        });
    }
    Ok(format!("'{out}'"))
}

/// The reverse for the to_char date patterns; digits (number patterns) and
/// other letters are refused.
fn to_char_to_date_format(lit: &str) -> Result<String, Untranslatable> {
    let refuse = || Untranslatable(format!("to_char pattern {lit}"));
    let body = literal_body(lit).ok_or_else(refuse)?;
    const TOKENS: [(&str, &str); 8] = [
        ("YYYY", "%Y"),
        ("HH24", "%H"),
        ("HH12", "%h"),
        ("YY", "%y"),
        ("MM", "%m"),
        ("DD", "%d"),
        ("MI", "%i"),
        ("SS", "%s"),
    ];
    let (mut out, mut rest, mut dated) = (String::new(), body, false);
    'outer: while let Some(c) = rest.chars().next() {
        for (pg, my) in TOKENS {
            if let Some(r) = rest.strip_prefix(pg) {
                out.push_str(my);
                rest = r;
                dated = true;
                continue 'outer;
            }
        }
        if c.is_alphanumeric() {
            return Err(refuse());
        }
        if c == '%' {
            out.push('%');
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    if !dated {
        return Err(refuse());
    }
    Ok(format!("'{out}'"))
}

impl<'a> Rewriter<'a> {
    /// The type of a column reference, when it names a known column.
    fn column_type(&self, e: &Expr) -> Option<&'a str> {
        let plain = |i: &Ident| i.value.trim_matches(['"', '`']).to_string();
        let find = |t: &'a TableSchema, c: &str| t.columns.iter().find(|x| x.name.eq_ignore_ascii_case(c));
        match e {
            Expr::Identifier(c) => {
                let c = plain(c);
                let mut hits = self
                    .types
                    .row
                    .into_iter()
                    .chain(self.scope.iter().map(|(_, t)| *t))
                    .filter_map(|t| find(t, &c));
                let first = hits.next()?;
                hits.next().is_none().then_some(first.type_sql.as_str())
            }
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                let col = plain(&parts[parts.len() - 1]);
                let table = plain(&parts[parts.len() - 2]);
                let t = if self.trigger && (table.eq_ignore_ascii_case("new") || table.eq_ignore_ascii_case("old")) {
                    self.types.row?
                } else {
                    self.scope
                        .iter()
                        .find(|(a, _)| a.eq_ignore_ascii_case(&table))
                        .map(|(_, t)| *t)?
                };
                find(t, &col).map(|c| c.type_sql.as_str())
            }
            Expr::Nested(inner) => self.column_type(inner),
            _ => None,
        }
    }

    fn is_temporal(&self, e: &Expr) -> bool {
        self.column_type(e).is_some_and(|t| temporal(self.from, t))
    }

    /// MySQL takes a number as a truth value (non-zero is true; BOOLEAN is
    /// TINYINT(1)); PostgreSQL wants a boolean there. A numeric column in a
    /// boolean context (`CASE WHEN col`, `IF(col, ...)`, `WHERE col`, an
    /// operand of AND / OR / NOT) becomes `(col <> 0)`.
    fn as_condition(&self, e: &mut Expr) {
        if self.from != Engine::Mysql || self.to != Engine::Postgres {
            return;
        }
        use ferry_common::typemap::{mysql_kind, Kind};
        let numeric = self.column_type(e).is_some_and(|t| {
            matches!(
                mysql_kind(t),
                Kind::Int | Kind::UInt | Kind::Decimal | Kind::Float | Kind::Double | Kind::Bool
            )
        });
        if numeric {
            *e = raw(format!("({e} <> 0)"));
        }
    }

    /// Boolean contexts inside an expression (see `as_condition`).
    fn conditions_in(&self, e: &mut Expr) {
        match e {
            Expr::Case {
                operand: None,
                conditions,
                ..
            } => {
                for c in conditions {
                    self.as_condition(&mut c.condition);
                }
            }
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And | BinaryOperator::Or,
                right,
            } => {
                self.as_condition(left);
                self.as_condition(right);
            }
            Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr,
            } => self.as_condition(expr),
            Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("if") => {
                if let FunctionArguments::List(l) = &mut f.args {
                    if let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(c))) = l.args.first_mut() {
                        self.as_condition(c);
                    }
                }
            }
            _ => {}
        }
    }

    /// A function call in the target's terms.
    fn function(&mut self, f: &Function) -> Result<String, Untranslatable> {
        if f.over.is_some() || f.filter.is_some() || !f.within_group.is_empty() || f.null_treatment.is_some() {
            return Err(Untranslatable(format!("window or filtered call {f}")));
        }
        let name = f.name.to_string().to_ascii_lowercase();
        let (distinct, args) = args_of(f)?;
        let no_args = matches!(f.args, FunctionArguments::None);
        let list = |args: &[String]| format!("{}{}", if distinct { "DISTINCT " } else { "" }, args.join(", "));
        let call = |n: &str| format!("{n}({})", list(&args));
        let same = [
            "coalesce",
            "lower",
            "upper",
            "abs",
            "floor",
            "ceil",
            "ceiling",
            "count",
            "sum",
            "avg",
            "min",
            "max",
            "greatest",
            "least",
            "nullif",
            "replace",
            "mod",
            "sign",
            "sqrt",
            "power",
            "exp",
            "ln",
            "char_length",
            "character_length",
            "trim",
            "ltrim",
            "rtrim",
            "lpad",
            "rpad",
            "reverse",
            "left",
            "right",
            "md5",
        ];
        let niladic = [
            "current_timestamp",
            "current_date",
            "current_time",
            "localtimestamp",
            "localtime",
        ];
        Ok(match (self.from, self.to, name.as_str()) {
            (_, _, n) if niladic.contains(&n) && (no_args || args.is_empty()) => n.to_ascii_uppercase(),
            (_, _, "now") => "CURRENT_TIMESTAMP".into(),
            (_, _, n) if niladic.contains(&n) => call(&n.to_ascii_uppercase()),
            (_, _, n) if same.contains(&n) => call(n),
            (_, _, "round") => {
                if args.len() == 2 && self.to == Engine::Postgres {
                    // PostgreSQL rounds to a scale only on numeric.
                    format!("round(CAST({} AS numeric), {})", args[0], args[1])
                } else {
                    call("round")
                }
            }
            (Engine::Mysql, Engine::Postgres, "ifnull") => call("coalesce"),
            (Engine::Mysql, Engine::Postgres, "if") if args.len() == 3 => {
                format!("CASE WHEN {} THEN {} ELSE {} END", args[0], args[1], args[2])
            }
            (Engine::Mysql, Engine::Postgres, "lcase") => call("lower"),
            (Engine::Mysql, Engine::Postgres, "ucase") => call("upper"),
            // MySQL LENGTH counts bytes.
            (Engine::Mysql, Engine::Postgres, "length") => call("octet_length"),
            (Engine::Mysql, Engine::Postgres, "substring" | "substr" | "mid") if args.len() == 3 => call("substr"),
            (Engine::Mysql, Engine::Postgres, "curdate") => "CURRENT_DATE".into(),
            // MySQL CONCAT is NULL when any argument is; so is `||`.
            (Engine::Mysql, Engine::Postgres, "concat") if !args.is_empty() => {
                format!(
                    "({})",
                    args.iter()
                        .map(|a| format!("CAST({a} AS text)"))
                        .collect::<Vec<_>>()
                        .join(" || ")
                )
            }
            (Engine::Mysql, Engine::Postgres, "concat_ws") => call("concat_ws"),
            (Engine::Mysql, Engine::Postgres, p @ ("year" | "month" | "day" | "hour" | "minute" | "second"))
                if args.len() == 1 =>
            {
                format!("CAST(EXTRACT({} FROM {}) AS integer)", p.to_ascii_uppercase(), args[0])
            }
            (Engine::Mysql, Engine::Postgres, "date_format") if args.len() == 2 => {
                format!("to_char({}, {})", args[0], date_format_to_char(&args[1])?)
            }
            (Engine::Postgres, Engine::Mysql, "to_char") if args.len() == 2 => {
                format!("DATE_FORMAT({}, {})", args[0], to_char_to_date_format(&args[1])?)
            }
            // PostgreSQL LENGTH counts characters; MySQL LENGTH, bytes.
            (Engine::Postgres, Engine::Mysql, "length") => call("char_length"),
            (Engine::Postgres, Engine::Mysql, "octet_length") => call("length"),
            (Engine::Postgres, Engine::Mysql, "substr" | "substring") if args.len() == 3 => call("substring"),
            // PostgreSQL concat() skips NULLs, like MySQL CONCAT_WS.
            (Engine::Postgres, Engine::Mysql, "concat") => format!("CONCAT_WS('', {})", list(&args)),
            (Engine::Postgres, Engine::Mysql, "concat_ws") => call("CONCAT_WS"),
            _ => return Err(Untranslatable(format!("function {name}() has no known equivalent"))),
        })
    }

    /// A type for CAST in the target's terms.
    fn cast_type(&self, t: &DataType) -> Result<String, Untranslatable> {
        let src = t.to_string();
        let lower = src.to_ascii_lowercase();
        let unsupported = || Untranslatable(format!("CAST to {src}"));
        Ok(match (self.from, self.to) {
            (Engine::Mysql, Engine::Postgres) => match lower.as_str() {
                "signed" | "signed integer" | "int" | "integer" => "bigint".into(),
                "unsigned" | "unsigned integer" => "numeric(20,0)".into(),
                "char" | "nchar" => "text".into(),
                "date" => "date".into(),
                "json" => "jsonb".into(),
                "double" => "double precision".into(),
                "float" => "real".into(),
                "datetime" => "timestamp(0)".into(),
                d if d.starts_with("decimal") => d.replacen("decimal", "numeric", 1),
                d if d.starts_with("char(") => d.replacen("char", "varchar", 1),
                _ => return Err(unsupported()),
            },
            (Engine::Postgres, Engine::Mysql) => {
                let name = match lower.as_str() {
                    "int" | "integer" | "bigint" | "smallint" | "int4" | "int8" | "int2" => return Ok("SIGNED".into()),
                    "text" | "varchar" | "character varying" => return Ok("CHAR".into()),
                    "numeric" | "decimal" => return Ok("DECIMAL(65,30)".into()),
                    other => other,
                };
                let my = ferry_common::typemap::postgres_to_mysql(name).map_err(|_| unsupported())?;
                match my.split('(').next().unwrap_or_default() {
                    "decimal" | "date" | "datetime" | "time" | "json" | "double" | "float" => my.to_ascii_uppercase(),
                    "varchar" | "char" => "CHAR".into(),
                    _ => return Err(unsupported()),
                }
            }
            _ => src,
        })
    }

    fn expr(&mut self, e: &mut Expr) -> Result<(), Untranslatable> {
        self.conditions_in(e);
        let replacement = match e {
            Expr::Function(f) => Some(self.function(f)?),
            Expr::Cast {
                kind: CastKind::Cast | CastKind::DoubleColon,
                expr,
                data_type,
                format: None,
            } => Some(format!("CAST({expr} AS {})", self.cast_type(data_type)?)),
            Expr::BinaryOp { left, op, right } => match (self.from, self.to, &*op) {
                (Engine::Postgres, Engine::Mysql, BinaryOperator::StringConcat) => {
                    Some(format!("CONCAT({left}, {right})"))
                }
                // MySQL `||` is OR unless PIPES_AS_CONCAT is set: ambiguous.
                (Engine::Mysql, _, BinaryOperator::StringConcat) => {
                    return Err(Untranslatable(
                        "`||` (OR or concatenation, depending on sql_mode)".into(),
                    ))
                }
                (Engine::Mysql, Engine::Postgres, BinaryOperator::MyIntegerDivide) => {
                    Some(format!("div({left}, {right})"))
                }
                (Engine::Mysql, Engine::Postgres, BinaryOperator::Divide) => {
                    self.notes.push(
                        "MySQL `/` always divides exactly (DECIMAL or DOUBLE); converted as a numeric division, whose result carries more digits".into(),
                    );
                    Some(format!("(CAST({left} AS numeric) / {right})"))
                }
                (Engine::Postgres, Engine::Mysql, BinaryOperator::Divide) => {
                    self.notes.push(
                        "PostgreSQL `/` truncates between integers, MySQL's never does; check the operand types (use DIV for integer division)".into(),
                    );
                    None
                }
                (_, _, BinaryOperator::Plus | BinaryOperator::Minus)
                    if self.is_temporal(left)
                        || self.is_temporal(right)
                        || [left.to_string(), right.to_string()].iter().any(|s| {
                            let s = s.to_ascii_uppercase();
                            s.contains("CURRENT_DATE") || s.contains("CURRENT_TIMESTAMP") || s.contains("INTERVAL")
                        }) =>
                {
                    return Err(Untranslatable(format!(
                        "date arithmetic ({left} {op} {right}) means different things on each engine"
                    )))
                }
                (
                    _,
                    _,
                    BinaryOperator::Plus
                    | BinaryOperator::Minus
                    | BinaryOperator::Multiply
                    | BinaryOperator::Modulo
                    | BinaryOperator::Gt
                    | BinaryOperator::Lt
                    | BinaryOperator::GtEq
                    | BinaryOperator::LtEq
                    | BinaryOperator::Eq
                    | BinaryOperator::NotEq
                    | BinaryOperator::And
                    | BinaryOperator::Or,
                ) => None,
                (_, _, op) => return Err(Untranslatable(format!("operator {op}"))),
            },
            Expr::CompoundIdentifier(parts) if self.trigger && parts.len() == 2 => {
                // Already requoted by the identifier pass.
                let rec = parts[0].value.trim_matches(['"', '`']).to_ascii_lowercase();
                if rec == "new" || rec == "old" {
                    parts[0] = Ident::new(match self.to {
                        Engine::Postgres => rec,
                        Engine::Mysql => rec.to_ascii_uppercase(),
                    });
                }
                None
            }
            Expr::Value(v) => {
                match &v.value {
                    Value::DoubleQuotedString(s) if self.from == Engine::Mysql => {
                        v.value = Value::SingleQuotedString(s.clone());
                    }
                    Value::Number(..) | Value::SingleQuotedString(_) | Value::Boolean(_) | Value::Null => {}
                    other => return Err(Untranslatable(format!("literal {other}"))),
                }
                None
            }
            Expr::Identifier(_)
            | Expr::CompoundIdentifier(_)
            | Expr::Nested(_)
            | Expr::IsNull(_)
            | Expr::IsNotNull(_)
            | Expr::IsTrue(_)
            | Expr::IsFalse(_)
            | Expr::IsNotTrue(_)
            | Expr::IsNotFalse(_)
            | Expr::In { .. }
            | Expr::Between { .. }
            | Expr::Case { .. }
            | Expr::Exists { .. }
            | Expr::Subquery(_)
            | Expr::Wildcard(_)
            | Expr::QualifiedWildcard(..) => None,
            Expr::UnaryOp {
                op: UnaryOperator::Not | UnaryOperator::Minus | UnaryOperator::Plus,
                ..
            } => None,
            Expr::Like { any: false, .. } => {
                self.notes.push("LIKE compares with the column's collation on MySQL (case-insensitive by default) and exactly on PostgreSQL".into());
                None
            }
            other => return Err(Untranslatable(format!("expression {other}"))),
        };
        if let Some(sql) = replacement {
            *e = raw(sql);
        }
        Ok(())
    }
}

/// Function names were requoted with every other identifier; undo that so
/// `function` sees the plain name.
fn unquote_function_names(v: &mut impl VisitMut) {
    let _ = visit_expressions_mut(v, |e| {
        if let Expr::Function(f) = e {
            for part in &mut f.name.0 {
                if let ObjectNamePart::Identifier(id) = part {
                    id.value = id.value.trim_matches(['"', '`']).to_string();
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

fn rewrite<N: VisitMut>(
    from: Engine,
    to: Engine,
    trigger: bool,
    schema: Option<&str>,
    types: Types<'_>,
    node: &mut N,
    finish: impl FnOnce(&Rewriter<'_>, &mut N),
) -> Result<Vec<String>, Untranslatable> {
    let mut r = Rewriter {
        from,
        to,
        trigger,
        schema: schema.map(str::to_string),
        types,
        scope: vec![],
        notes: vec![],
    };
    // Identifiers first (pre-order), then expressions bottom-up; function
    // names are plain again before the expression pass reads them.
    struct Idents<'r, 'a>(&'r mut Rewriter<'a>);
    impl VisitorMut for Idents<'_, '_> {
        type Break = Untranslatable;
        fn pre_visit_ident(&mut self, id: &mut Ident) -> ControlFlow<Self::Break> {
            // The target's spelling; quote_style None prints it verbatim.
            *id = Ident::new(ident(self.0.to, &id.value));
            ControlFlow::Continue(())
        }
        fn pre_visit_table_factor(&mut self, f: &mut TableFactor) -> ControlFlow<Self::Break> {
            // Before its identifiers are requoted: the names as written.
            if let TableFactor::Table { name, alias, .. } = f {
                let parts: Vec<String> = name
                    .0
                    .iter()
                    .filter_map(|p| p.as_ident().map(|i| i.value.clone()))
                    .collect();
                let table = self.0.types.tables.iter().find(|t| {
                    parts.last().is_some_and(|n| n.eq_ignore_ascii_case(&t.name))
                        && (parts.len() < 2 || parts[parts.len() - 2].eq_ignore_ascii_case(&t.schema))
                });
                if let Some(t) = table {
                    let key = alias.as_ref().map_or(t.name.clone(), |a| a.name.value.clone());
                    self.0.scope.push((key, t));
                }
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_relation(&mut self, rel: &mut ObjectName) -> ControlFlow<Self::Break> {
            if let (Some(s), 1) = (&self.0.schema, rel.0.len()) {
                rel.0.insert(0, ObjectNamePart::Identifier(Ident::new(s.clone())));
            }
            ControlFlow::Continue(())
        }
    }
    if let ControlFlow::Break(u) = node.visit(&mut Idents(&mut r)) {
        return Err(u);
    }
    unquote_function_names(node);
    struct Exprs<'r, 'a>(&'r mut Rewriter<'a>);
    impl VisitorMut for Exprs<'_, '_> {
        type Break = Untranslatable;
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<Self::Break> {
            match self.0.expr(e) {
                Ok(()) => ControlFlow::Continue(()),
                Err(u) => ControlFlow::Break(u),
            }
        }
        fn post_visit_query(&mut self, q: &mut Query) -> ControlFlow<Self::Break> {
            if let SetExpr::Select(s) = &mut *q.body {
                for c in [&mut s.selection, &mut s.having].into_iter().flatten() {
                    self.0.as_condition(c);
                }
            }
            ControlFlow::Continue(())
        }
    }
    if let ControlFlow::Break(u) = node.visit(&mut Exprs(&mut r)) {
        return Err(u);
    }
    finish(&r, node);
    r.notes.sort();
    r.notes.dedup();
    Ok(r.notes)
}

/// Parses `sql` with the target's dialect: text that does not is refused.
fn check_parses(to: Engine, what: &str, sql: &str, expr: bool) -> Result<(), Untranslatable> {
    let d = dialect(to);
    let res = if expr {
        Parser::new(d.as_ref())
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_expr())
            .map(|_| ())
    } else {
        Parser::parse_sql(d.as_ref(), sql).map(|_| ())
    };
    res.map_err(|e| {
        Untranslatable(format!(
            "the translated {what} does not parse on the target ({e}): {sql}"
        ))
    })
}

/// A scalar expression (default, check, generated column, partition key).
pub fn expr(from: Engine, to: Engine, sql: &str, types: Types<'_>) -> Result<Translated, Untranslatable> {
    expr_in(from, to, sql, false, false, types)
}

/// An expression inside a trigger body, where `NEW` / `OLD` are records.
pub fn trigger_expr(from: Engine, to: Engine, sql: &str, types: Types<'_>) -> Result<Translated, Untranslatable> {
    expr_in(from, to, sql, true, false, types)
}

/// The condition of an IF in a trigger or routine body (a number is a
/// truth value in MySQL: see `Rewriter::as_condition`).
pub fn trigger_condition(from: Engine, to: Engine, sql: &str, types: Types<'_>) -> Result<Translated, Untranslatable> {
    expr_in(from, to, sql, true, true, types)
}

fn expr_in(
    from: Engine,
    to: Engine,
    sql: &str,
    trigger: bool,
    condition: bool,
    types: Types<'_>,
) -> Result<Translated, Untranslatable> {
    let d = dialect(from);
    let mut e = Parser::new(d.as_ref())
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| parser_err("expression", e))?;
    let notes = rewrite(from, to, trigger, None, types, &mut e, |r, e| {
        if condition {
            r.as_condition(e)
        }
    })?;
    let out = e.to_string();
    check_parses(to, "expression", &out, true)?;
    Ok(Translated { sql: out, notes })
}

/// A view's SELECT.
pub fn query(
    from: Engine,
    to: Engine,
    sql: &str,
    schema: &str,
    types: Types<'_>,
) -> Result<Translated, Untranslatable> {
    let d = dialect(from);
    let mut q = Parser::new(d.as_ref())
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_query())
        .map_err(|e| parser_err("view query", e))?;
    let notes = rewrite(from, to, false, Some(schema), types, &mut q, |_, _| {})?;
    let out = q.to_string();
    check_parses(to, "view query", &out, false)?;
    Ok(Translated { sql: out, notes })
}

/// One INSERT, UPDATE or DELETE of a trigger body.
pub fn dml(from: Engine, to: Engine, sql: &str, schema: &str, types: Types<'_>) -> Result<Translated, Untranslatable> {
    let d = dialect(from);
    let mut stmts = Parser::parse_sql(d.as_ref(), sql).map_err(|e| parser_err("statement", e))?;
    let [stmt] = stmts.as_mut_slice() else {
        return Err(Untranslatable(format!("expected one statement: {sql}")));
    };
    if !matches!(stmt, Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_)) {
        return Err(Untranslatable(format!("statement kind: {}", first_word(sql))));
    }
    let notes = rewrite(from, to, true, Some(schema), types, stmt, |_, _| {})?;
    let out = stmt.to_string();
    check_parses(to, "statement", &out, false)?;
    Ok(Translated { sql: out, notes })
}

fn first_word(s: &str) -> String {
    s.split_whitespace().next().unwrap_or_default().to_ascii_uppercase()
}

/// The statements of a procedural body, as text: `BEGIN ... END` unwrapped,
/// split at top-level semicolons (the tokenizer keeps strings and quoted
/// names whole). None when the body has nested blocks the caller should not
/// attempt (a `BEGIN` inside, labels, handlers).
pub fn body_statements(from: Engine, body: &str) -> Option<Vec<String>> {
    use sqlparser::tokenizer::{Token, Tokenizer};
    let d = dialect(from);
    let tokens = Tokenizer::new(d.as_ref(), body).tokenize().ok()?;
    let mut toks: Vec<&Token> = tokens
        .iter()
        .filter(|t| {
            !matches!(
                t,
                Token::Whitespace(
                    sqlparser::tokenizer::Whitespace::SingleLineComment { .. }
                        | sqlparser::tokenizer::Whitespace::MultiLineComment(_)
                )
            )
        })
        .collect();
    let word =
        |t: &Token, w: &str| matches!(t, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w));
    let is_space = |t: &Token| matches!(t, Token::Whitespace(_));
    while toks.first().is_some_and(|t| is_space(t)) {
        toks.remove(0);
    }
    while toks
        .last()
        .is_some_and(|t| is_space(t) || matches!(t, Token::SemiColon))
    {
        toks.pop();
    }
    if toks.first().is_some_and(|t| word(t, "BEGIN")) {
        if !toks.last().is_some_and(|t| word(t, "END")) {
            return None;
        }
        toks.remove(0);
        toks.pop();
    }
    if toks
        .iter()
        .any(|t| word(t, "BEGIN") || word(t, "DECLARE") || word(t, "LOOP") || word(t, "HANDLER"))
    {
        return None;
    }
    let mut out = vec![];
    let mut cur = String::new();
    let mut depth = 0i32;
    for t in toks {
        match t {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::SemiColon if depth == 0 => {
                if !cur.trim().is_empty() {
                    out.push(cur.trim().to_string());
                }
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push_str(&t.to_string());
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    Some(out)
}

/// `SELECT <expr>` without FROM: the expression's text.
pub fn lone_select(from: Engine, sql: &str) -> Option<String> {
    let d = dialect(from);
    let q = Parser::new(d.as_ref())
        .try_with_sql(sql.trim().trim_end_matches(';'))
        .ok()?
        .parse_query()
        .ok()?;
    if q.with.is_some() || q.order_by.is_some() || q.limit_clause.is_some() {
        return None;
    }
    let SetExpr::Select(s) = *q.body else { return None };
    if !s.from.is_empty() || s.selection.is_some() || s.projection.len() != 1 {
        return None;
    }
    match &s.projection[0] {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Engine::{Mysql, Postgres};

    #[test]
    fn translates_a_mariadb_view() {
        let q = "select `c`.`id` AS `id`,ifnull(sum(`o`.`amount`),0) AS `spent`,concat(`c`.`email`,' ',`c`.`Name`) AS `label` from (`shop`.`customers` `c` left join `shop`.`orders` `o` on(`o`.`customer_id` = `c`.`id`)) group by `c`.`id`";
        let t = query(Mysql, Postgres, q, "shop", Types::default()).unwrap();
        assert!(t.sql.contains("coalesce(sum(o.amount), 0) AS spent"), "{}", t.sql);
        assert!(
            t.sql
                .contains("(CAST(c.email AS text) || CAST(' ' AS text) || CAST(c.\"Name\" AS text))"),
            "{}",
            t.sql
        );
        assert!(
            t.sql.contains("shop.customers AS c") || t.sql.contains("shop.customers c"),
            "{}",
            t.sql
        );
        assert!(!t.sql.contains('`'));
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        let e = query(
            Mysql,
            Postgres,
            "select soundex(`d`) AS `y` from `t`",
            "shop",
            Types::default(),
        )
        .unwrap_err();
        assert!(e.0.contains("soundex"), "{e}");
        assert!(expr(Mysql, Postgres, "a || b", Types::default()).is_err());
    }

    #[test]
    fn translates_a_postgres_view() {
        let q = "SELECT u.id, 'user '::text || u.name AS label, COALESCE(sum(i.total), 0::numeric) AS spent FROM app.users u LEFT JOIN app.invoices i ON i.user_id = u.id GROUP BY u.id";
        let t = query(Postgres, Mysql, q, "app", Types::default()).unwrap();
        assert!(
            t.sql.contains("CONCAT(CAST('user ' AS CHAR), u.name) AS label"),
            "{}",
            t.sql
        );
        assert!(RESERVED.windows(2).all(|w| w[0] < w[1]));
        assert!(
            t.sql.contains("coalesce(sum(i.total), CAST(0 AS DECIMAL(65,30)))"),
            "{}",
            t.sql
        );
    }

    #[test]
    fn translates_trigger_statements() {
        let t = trigger_expr(Mysql, Postgres, "upper(NEW.sku)", Types::default()).unwrap();
        assert_eq!(t.sql, "upper(new.sku)");
        let s = dml(
            Mysql,
            Postgres,
            "INSERT INTO audit_log (product_id, action) VALUES (NEW.id, 'update')",
            "shop",
            Types::default(),
        )
        .unwrap();
        assert_eq!(
            s.sql,
            "INSERT INTO shop.audit_log (product_id, action) VALUES (new.id, 'update')"
        );
        let t = trigger_expr(Postgres, Mysql, "now()", Types::default()).unwrap();
        assert_eq!(t.sql, "CURRENT_TIMESTAMP");
    }

    #[test]
    fn translates_date_patterns() {
        let t = expr(Mysql, Postgres, "date_format(`d`, '%Y-%m-%d %H:%i')", Types::default()).unwrap();
        assert_eq!(t.sql, "to_char(d, 'YYYY-MM-DD HH24:MI')");
        assert!(expr(Mysql, Postgres, "date_format(`d`, '%W')", Types::default()).is_err());
        assert!(expr(Mysql, Postgres, "date_format(`d`, 'Week %u')", Types::default()).is_err());
        let t = expr(Postgres, Mysql, "to_char(d, 'YYYY-MM')", Types::default()).unwrap();
        assert_eq!(t.sql, "DATE_FORMAT(d, '%Y-%m')");
        assert!(
            expr(Postgres, Mysql, "to_char(n, '999')", Types::default()).is_err(),
            "number patterns"
        );
    }

    fn table(cols: &[(&str, &str)]) -> TableSchema {
        let columns = cols
            .iter()
            .map(|(n, t)| ferry_common::schema::Column::plain(n, t))
            .collect();
        TableSchema::bare(Postgres, "app", "t", columns)
    }

    #[test]
    fn refuses_arithmetic_on_date_columns() {
        let tables = [table(&[("d", "date"), ("n", "integer")])];
        let types = Types {
            tables: &tables,
            row: None,
        };
        assert!(query(Postgres, Mysql, "SELECT x.d + 1 AS e FROM app.t x", "app", types).is_err());
        assert!(query(Postgres, Mysql, "SELECT d - 7 AS e FROM app.t", "app", types).is_err());
        assert!(query(Postgres, Mysql, "SELECT x.n + 1 AS e FROM app.t x", "app", types).is_ok());
        let row = Types::of_row(&tables[0]);
        assert!(trigger_expr(Postgres, Mysql, "NEW.d + 1", row).is_err());
        assert!(trigger_expr(Postgres, Mysql, "NEW.n + 1", row).is_ok());
    }

    #[test]
    fn numbers_in_boolean_contexts_become_comparisons() {
        let cols = [("active", "tinyint(1)"), ("n", "int(11)"), ("name", "varchar(20)")]
            .iter()
            .map(|(n, t)| ferry_common::schema::Column::plain(n, t))
            .collect();
        let tables = [TableSchema::bare(Mysql, "shop", "customer", cols)];
        let types = Types {
            tables: &tables,
            row: None,
        };
        // Sakila's customer_list.
        let q = "select `cu`.`name` AS `name`,case when `cu`.`active` then 'active' else '' end AS `notes` from `shop`.`customer` `cu` where `cu`.`n` and not `cu`.`active`";
        let t = query(Mysql, Postgres, q, "shop", types).unwrap();
        assert!(t.sql.contains("CASE WHEN (cu.active <> 0) THEN 'active'"), "{}", t.sql);
        assert!(
            t.sql.contains("WHERE (cu.n <> 0) AND NOT (cu.active <> 0)"),
            "{}",
            t.sql
        );
        let q = "select if(`active`, 1, 0) AS `a` from `shop`.`customer`";
        let t = query(Mysql, Postgres, q, "shop", types).unwrap();
        assert!(t.sql.contains("CASE WHEN (active <> 0) THEN 1 ELSE 0 END"), "{}", t.sql);
        // A boolean-valued expression, and a text column, are left alone.
        let q = "select case when `n` > 1 then 1 end AS `a` from `shop`.`customer` where `name` = 'x'";
        let t = query(Mysql, Postgres, q, "shop", types).unwrap();
        assert!(
            t.sql.contains("WHEN n > 1") && t.sql.contains("WHERE name = 'x'"),
            "{}",
            t.sql
        );
        let row = Types::of_row(&tables[0]);
        assert_eq!(
            trigger_condition(Mysql, Postgres, "NEW.active", row).unwrap().sql,
            "(new.active <> 0)"
        );
        assert_eq!(
            trigger_condition(Mysql, Postgres, "NEW.n > 2", row).unwrap().sql,
            "new.n > 2"
        );
    }

    #[test]
    fn notes_division() {
        let t = expr(Mysql, Postgres, "`price` * (1 - `rate` / 100)", Types::default()).unwrap();
        assert_eq!(t.sql, "price * (1 - (CAST(rate AS numeric) / 100))");
        assert_eq!(t.notes.len(), 1);
    }

    /// SQL from outside (view queries, defaults, check expressions, trigger
    /// bodies read from a source catalog), mutated; translation must answer
    /// with SQL or an `Untranslatable`, never panic.
    #[test]
    fn fuzz_translator() {
        let seeds = [
            "select `c`.`id` AS `id`,ifnull(sum(`o`.`amount`),0) AS `spent`,concat(`c`.`email`,' ',`c`.`Name`) AS `label` from (`shop`.`customers` `c` left join `shop`.`orders` `o` on(`o`.`customer_id` = `c`.`id`)) group by `c`.`id`",
            "SELECT o.id, (o.total * 1.2)::numeric(12,2) AS gross, now() - o.created_at AS age, COALESCE(o.note, 'none') FROM shop.orders o WHERE o.status = ANY (ARRAY['new'::text, 'paid'::text])",
            "date_format(`created`,'%Y-%m-%d %H:%i')",
            "to_char(created, 'YYYY-MM-DD HH24:MI')",
            "BEGIN UPDATE stock SET qty = qty - NEW.qty WHERE sku = NEW.sku; INSERT INTO audit (what) VALUES (concat('sold ', NEW.sku)); END",
            "INSERT INTO shop.audit (id, what) VALUES (NEW.id, 'x''y')",
            "(`price` > 0 and `price` < 1000000)",
            "CASE WHEN a IS NULL THEN 'n' ELSE substring(b from 2 for 3) END",
        ];
        let r = ferry_common::fuzz::run_text("sql-translator", &seeds, ferry_common::fuzz::budget(), |sql| {
            for (from, to) in [
                (Mysql, Postgres),
                (Postgres, Mysql),
                (Mysql, Mysql),
                (Postgres, Postgres),
            ] {
                let _ = query(from, to, sql, "shop", Types::default());
                let _ = expr(from, to, sql, Types::default());
                let _ = dml(from, to, sql, "shop", Types::default());
                let _ = trigger_condition(from, to, sql, Types::default());
                let _ = body_statements(from, sql);
                let _ = lone_select(from, sql);
                let _ = ident(to, sql);
            }
        });
        assert!(r.crashes.is_empty(), "{r}");
    }
}
