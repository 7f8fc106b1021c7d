//! Code objects: views through the SQL translator, and the simple shapes
//! of triggers, functions and procedures (assignments to NEW, DML, a lone
//! RETURN / SELECT expression); everything else an action item with a
//! skeleton of the target's signature.

use super::*;
use translate::Types;

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
fn body_statement(
    from: Engine,
    to: Engine,
    stmt: &str,
    schema: &str,
    types: Types<'_>,
) -> Result<translate::Translated, Untranslatable> {
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
            let tr = translate::trigger_expr(from, to, rhs.trim(), types)?;
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
    if !matches!(first.as_str(), "INSERT" | "UPDATE" | "DELETE") {
        return Err(Untranslatable(format!("a {first} statement in the body")));
    }
    let tr = translate::dml(from, to, stmt, schema, types)?;
    Ok(translate::Translated {
        sql: format!("{};", tr.sql),
        notes: tr.notes,
    })
}

/// A raised error in the target's terms: MySQL `SIGNAL SQLSTATE 's' SET
/// MESSAGE_TEXT = 'm'` ⇄ PL/pgSQL `RAISE EXCEPTION USING MESSAGE = 'm',
/// ERRCODE = 's'`; only literal messages (no format arguments).
fn raise(from: Engine, to: Engine, stmt: &str) -> Result<Option<String>, Untranslatable> {
    let refuse = || Untranslatable(format!("a raised error in this form (literal messages only): {stmt}"));
    let words: Vec<&str> = stmt.split_whitespace().collect();
    let upper = |i: usize| words.get(i).map(|w| w.to_ascii_uppercase()).unwrap_or_default();
    let plain = |lit: &str| {
        let body = lit.strip_prefix('\'')?.strip_suffix('\'')?;
        (!body.contains(['\\', '%']) && !body.replace("''", "").contains('\'')).then(|| lit.to_string())
    };
    let (state, message) = match (from, upper(0).as_str()) {
        (Engine::Mysql, "SIGNAL") => {
            let rest = stmt.split_once(|c: char| c.is_whitespace()).map_or("", |x| x.1).trim();
            let (state, set) = rest
                .strip_prefix("SQLSTATE")
                .or_else(|| rest.strip_prefix("sqlstate"))
                .and_then(|r| r.trim().split_once(char::is_whitespace))
                .ok_or_else(refuse)?;
            let message = set
                .trim()
                .split_once('=')
                .filter(|(k, _)| k.trim().eq_ignore_ascii_case("SET MESSAGE_TEXT"))
                .and_then(|(_, m)| plain(m.trim()))
                .ok_or_else(refuse)?;
            (state.trim().to_string(), message)
        }
        (Engine::Postgres, "RAISE") if upper(1) == "EXCEPTION" => {
            let rest = stmt.splitn(3, char::is_whitespace).nth(2).unwrap_or_default().trim();
            let (message, using) = match rest.split_once(" USING ") {
                Some((m, u)) => (m.trim(), Some(u)),
                None => (rest, None),
            };
            let message = plain(message).ok_or_else(refuse)?;
            let state = match using {
                None => "'P0001'".to_string(),
                Some(u) => u
                    .trim()
                    .split_once('=')
                    .filter(|(k, _)| k.trim().eq_ignore_ascii_case("ERRCODE"))
                    .map(|(_, v)| v.trim().to_string())
                    .filter(|v| v.len() == 7 && v.starts_with('\''))
                    .ok_or_else(refuse)?,
            };
            (state, message)
        }
        _ => return Ok(None),
    };
    Ok(Some(match to {
        Engine::Postgres => format!("RAISE EXCEPTION USING MESSAGE = {message}, ERRCODE = {state};"),
        // MySQL's user-defined class is 45000; P0001 is PostgreSQL's default.
        Engine::Mysql => {
            let state = if state == "'P0001'" {
                "'45000'".to_string()
            } else {
                state
            };
            format!("SIGNAL SQLSTATE {state} SET MESSAGE_TEXT = {message};")
        }
    }))
}

/// `cond THEN rest` split at the first THEN outside quotes.
fn split_then(s: &str) -> Option<(&str, &str)> {
    let upper = s.to_ascii_uppercase();
    let mut quote = None::<char>;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"' | '`') => quote = Some(c),
            (None, _)
                if upper[i..].starts_with("THEN")
                    && s[..i].ends_with(char::is_whitespace)
                    && upper[i + 4..].chars().next().is_none_or(char::is_whitespace) =>
            {
                return Some((s[..i].trim(), s[i + 4..].trim()));
            }
            _ => {}
        }
    }
    None
}

fn first_words(s: &str, n: usize) -> String {
    s.split_whitespace()
        .take(n)
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_uppercase()
}

/// The statements of a procedural body, IF blocks included, in the target's
/// terms (one line per statement, nested blocks indented).
struct Body<'a> {
    from: Engine,
    to: Engine,
    schema: &'a str,
    pieces: &'a [String],
    pos: usize,
    /// A trigger body: assignments to `NEW` columns are allowed.
    record: bool,
    types: Types<'a>,
    notes: Vec<String>,
}

impl Body<'_> {
    /// Statements up to a closer (`END IF`, `ELSE ...`, `ELSIF ...`), which
    /// is returned; `first` is a statement that shared its piece with `THEN`.
    fn block(&mut self, first: Option<String>) -> Result<(Vec<String>, Option<String>), Untranslatable> {
        let mut lines = vec![];
        let mut next = first.filter(|f| !f.is_empty());
        loop {
            let piece = match next.take() {
                Some(p) => p,
                None => match self.pieces.get(self.pos) {
                    Some(p) => {
                        self.pos += 1;
                        p.trim().to_string()
                    }
                    None => return Ok((lines, None)),
                },
            };
            let head = first_words(&piece, 2);
            if head == "END IF" || head.starts_with("ELSE") || head.starts_with("ELSIF") {
                return Ok((lines, Some(piece)));
            }
            if head.starts_with("IF ") {
                lines.extend(self.if_block(&piece)?);
            } else if let Some(r) = raise(self.from, self.to, &piece)? {
                lines.push(r);
            } else if !self.record && !matches!(first_words(&piece, 1).as_str(), "INSERT" | "UPDATE" | "DELETE") {
                return Err(Untranslatable(format!(
                    "a {} statement in the body",
                    first_words(&piece, 1)
                )));
            } else {
                let tr = body_statement(self.from, self.to, &piece, self.schema, self.types)?;
                self.notes.extend(tr.notes);
                lines.push(tr.sql);
            }
        }
    }

    fn cond(&mut self, c: &str) -> Result<String, Untranslatable> {
        let tr = translate::trigger_condition(self.from, self.to, c, self.types)?;
        self.notes.extend(tr.notes);
        Ok(tr.sql)
    }

    fn if_block(&mut self, piece: &str) -> Result<Vec<String>, Untranslatable> {
        let unfinished = || Untranslatable(format!("an IF without END IF: {piece}"));
        let (cond, rest) = split_then(piece[2..].trim()).ok_or_else(unfinished)?;
        let mut out = vec![format!("IF {} THEN", self.cond(cond)?)];
        let mut first = Some(rest.to_string());
        loop {
            let (lines, closer) = self.block(first.take())?;
            out.extend(lines.iter().flat_map(|l| l.lines()).map(|l| format!("  {l}")));
            let closer = closer.ok_or_else(unfinished)?;
            let head = first_words(&closer, 1);
            match head.as_str() {
                "END" => break,
                "ELSE" => {
                    out.push("ELSE".into());
                    first = Some(closer[4..].trim().to_string());
                }
                _ => {
                    // ELSEIF (MySQL) / ELSIF (PL/pgSQL)
                    let (c, rest) = split_then(closer[head.len()..].trim()).ok_or_else(unfinished)?;
                    let kw = if self.to == Engine::Postgres { "ELSIF" } else { "ELSEIF" };
                    out.push(format!("{kw} {} THEN", self.cond(c)?));
                    first = Some(rest.to_string());
                }
            }
        }
        out.push("END IF;".into());
        Ok(out)
    }
}

/// A whole simple body in the target's terms.
fn body_lines(
    from: Engine,
    to: Engine,
    stmts: &[String],
    schema: &str,
    record: bool,
    types: Types<'_>,
) -> Result<(Vec<String>, Vec<String>), Untranslatable> {
    let mut b = Body {
        from,
        to,
        schema,
        pieces: stmts,
        pos: 0,
        record,
        types,
        notes: vec![],
    };
    let (lines, closer) = b.block(None)?;
    if let Some(c) = closer {
        return Err(Untranslatable(format!("`{c}` outside an IF")));
    }
    Ok((lines, b.notes))
}

/// A routine's parameters as the columns of a table, so that the
/// translator knows their types (bare names in the body).
fn params_table(engine: Engine, r: &Routine) -> TableSchema {
    let columns = r.params.iter().map(|p| Column::plain(&p.name, &p.type_sql)).collect();
    TableSchema::bare(engine, &r.schema, &r.name, columns)
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
        // Parameters typed like a row's columns, for the translator.
        let params_row = params_table(self.from(), r);
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
                let tr = translate::expr(
                    Engine::Mysql,
                    Engine::Postgres,
                    expr.trim().trim_end_matches(';'),
                    self.types(Some(&params_row)),
                )?;
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
                let tr = translate::expr(Engine::Postgres, Engine::Mysql, &expr, self.types(Some(&params_row)))?;
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
                let (lines, notes) = body_lines(
                    self.from(),
                    self.to,
                    &stmts,
                    &r.schema,
                    false,
                    self.types(Some(&params_row)),
                )?;
                let lines: Vec<String> = lines.iter().flat_map(|l| l.lines()).map(str::to_string).collect();
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

    pub(super) fn routine(&mut self, r: &Routine) {
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

    pub(super) fn view(&mut self, v: &View) {
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
        match translate::query(self.from(), self.to, &v.query, &v.schema, self.types(None)) {
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

    pub(super) fn trigger(&mut self, t: &Trigger) {
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
        let row = self
            .cat
            .tables
            .iter()
            .find(|x| x.schema == t.schema && x.name == t.table);
        let (lines, notes) = body_lines(self.from(), self.to, &stmts, &t.schema, true, self.types(row))?;
        let lines: Vec<String> = lines.iter().flat_map(|l| l.lines()).map(str::to_string).collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use Engine::{Mysql, Postgres};

    fn lines(from: Engine, to: Engine, body: &str) -> Result<String, Untranslatable> {
        let pieces = translate::body_statements(from, body).expect("a simple body");
        body_lines(from, to, &pieces, "s", true, Types::default()).map(|(l, _)| l.join("\n"))
    }

    #[test]
    fn converts_if_blocks_and_raised_errors() {
        let mysql = "BEGIN IF NEW.a < 0 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'neg'; \
                     ELSEIF NEW.a > 9 THEN SET NEW.a = 9; ELSE SET NEW.b = 'ok'; END IF; END";
        assert_eq!(
            lines(Mysql, Postgres, mysql).unwrap(),
            "IF new.a < 0 THEN\n  RAISE EXCEPTION USING MESSAGE = 'neg', ERRCODE = '45000';\n\
             ELSIF new.a > 9 THEN\n  new.a := 9;\nELSE\n  new.b := 'ok';\nEND IF;"
        );
        let pg = "BEGIN IF NEW.a IS NULL THEN RAISE EXCEPTION 'no a'; END IF; END";
        assert_eq!(
            lines(Postgres, Mysql, pg).unwrap(),
            "IF NEW.a IS NULL THEN\n  SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'no a';\nEND IF;"
        );
        // Format arguments, an IF left open, NOTICE: refused.
        assert!(lines(Postgres, Mysql, "BEGIN RAISE EXCEPTION 'bad %', NEW.a; END").is_err());
        assert!(lines(Mysql, Postgres, "BEGIN IF NEW.a < 0 THEN SET NEW.a = 0; END").is_err());
        assert!(lines(Postgres, Mysql, "BEGIN RAISE NOTICE 'hi'; END").is_err());
    }
}
