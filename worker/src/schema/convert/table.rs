//! Tables and columns: types through the data path's mapping, defaults,
//! generators, generated columns, partitioning, comments, and MySQL's
//! `ON UPDATE CURRENT_TIMESTAMP` as a trigger.

use super::*;
use ferry_common::convert::mysql_key_types;

/// The pieces of one converted column.
struct ColumnOut {
    def: String,
    items: Vec<String>,
    /// A converted generator: MySQL AUTO_INCREMENT or PostgreSQL identity.
    identity: bool,
}

impl Converter<'_> {
    pub(super) fn table(&mut self, t: &TableSchema, d: &TableDetails) {
        self.key_types = if self.to == Engine::Mysql && self.from() != Engine::Mysql {
            mysql_key_types(t)
        } else {
            vec![]
        };
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
        // A TEXT / BLOB key column on MySQL: the bounded type the data path
        // declares too (common/src/convert.rs).
        let ty = match self.key_type(&col.name).map(str::to_string) {
            Some(bounded) => {
                items.push(self.item(
                    Category::Columns,
                    &object,
                    Finding {
                        code: "KEY-LENGTH",
                        severity: Severity::Low,
                        effort: Some(Effort::Simple),
                        message: format!(
                            "{} is part of a key, and MySQL keys TEXT and BLOB only by prefix: declared {bounded} ({ty} otherwise); a longer value is refused, never cut",
                            col.name
                        ),
                        action: "Check the longest value on the source fits.",
                        source_sql: format!("{} {}", col.name, col.type_sql),
                        proposed_sql: None,
                    },
                ));
                bounded
            }
            None => ty,
        };
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
            let proposed = translate::expr(self.from(), self.to, g, translate::Types::of_row(t))
                .ok()
                .map(|tr| {
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
            match translate::expr(self.from(), self.to, g, translate::Types::of_row(t)).or_else(|u| {
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
                "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring" | "multipolygon" | "geometrycollection" => Some(("TYPE-SPATIAL", Severity::Medium, "spatial values are kept as bytea in MySQL's internal form (SRID + WKB); spatial functions need PostGIS", "Install PostGIS and convert the column after the migration: its first 4 bytes are the SRID (little-endian), the rest is WKB, e.g. ST_SetSRID(ST_GeomFromWKB(substring(col from 5)), <srid>).")),
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
        match translate::expr(self.from(), self.to, dflt, translate::Types::default()) {
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

    pub(super) fn untranslatable(
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
    pub(super) fn notes(
        &mut self,
        category: Category,
        object: &str,
        notes: &[String],
        source: &str,
        items: &mut Vec<String>,
    ) {
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
            let why = match self.mysql_partitions(t) {
                Ok(clause) => return Some((clause, vec![])),
                Err(why) => why,
            };
            items.push(
                self.item(
                    Category::Tables,
                    &tname,
                    Finding {
                        code: "PARTITION",
                        severity: Severity::Medium,
                        effort: Some(Effort::Simple),
                        message: format!(
                            "PARTITION BY {} with {} partitions is created as one table: {why}",
                            t.partition_key.clone().unwrap_or_default(),
                            t.partitions.len()
                        ),
                        action: "Partition the table by hand after the load if its size calls for it.",
                        source_sql: t
                            .partitions
                            .iter()
                            .map(|p| format!("{}.{} {}", p.schema, p.name, p.bound))
                            .collect::<Vec<_>>()
                            .join("\n"),
                        proposed_sql: None,
                    },
                ),
            );
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

    /// PostgreSQL RANGE / LIST partitions on one column as MySQL `RANGE
    /// COLUMNS` / `LIST COLUMNS`, or why not. Ranges must chain (each lower
    /// bound the previous upper one) from MINVALUE, so that MySQL's `LESS
    /// THAN` accepts exactly the rows PostgreSQL does.
    fn mysql_partitions(&self, t: &TableSchema) -> Result<String, String> {
        let key = t.partition_key.as_deref().unwrap_or_default();
        let (method, column) = key
            .split_once(" (")
            .and_then(|(m, c)| Some((m, c.strip_suffix(')')?)))
            .ok_or_else(|| format!("partition key {key}"))?;
        let column = column.trim_matches('"').replace("\"\"", "\"");
        let col = t
            .column(&column)
            .ok_or_else(|| format!("the partition key {key} is an expression or several columns"))?;
        let ty = convert_type(Engine::Postgres, Engine::Mysql, &col.type_sql).map_err(|e| e.to_string())?;
        let base = ty.split('(').next().unwrap_or_default();
        let local_timestamp = col.type_sql.starts_with("timestamp") && col.type_sql.contains("without");
        let partitionable = matches!(base, "smallint" | "int" | "bigint" | "date" | "char" | "varchar")
            || (base == "datetime" && local_timestamp);
        if !partitionable {
            return Err(format!("MySQL cannot partition by a {ty} column"));
        }
        let refers = |def: &str| {
            def.contains(&format!("REFERENCES {}.{}(", t.schema, t.name))
                || def.contains(&format!("REFERENCES {}(", t.qualified()))
                || (t.schema == "public" && def.contains(&format!("REFERENCES {}(", t.name)))
        };
        let fk = t.constraints.iter().any(|c| c.kind == ConstraintKind::ForeignKey)
            || self.cat.tables.iter().any(|o| {
                o.constraints
                    .iter()
                    .any(|c| c.kind == ConstraintKind::ForeignKey && refers(&c.definition))
            });
        if fk {
            return Err("MySQL cannot keep foreign keys on or to partitioned tables (the keys are kept)".into());
        }
        if t.partitions
            .iter()
            .any(|p| p.partition_key.is_some() || p.bound == "DEFAULT")
        {
            return Err("sub-partitions and DEFAULT partitions have no MySQL form here".into());
        }
        let qc = self.q(&column);
        let parts: Vec<String> = match method {
            "RANGE" => {
                let mut ranges: Vec<(&str, String, String)> = vec![];
                for p in &t.partitions {
                    let b = p
                        .bound
                        .strip_prefix("FOR VALUES FROM (")
                        .and_then(|b| b.strip_suffix(')'))
                        .and_then(|b| b.split_once(") TO ("))
                        .ok_or_else(|| format!("bound {}", p.bound))?;
                    ranges.push((&p.name, b.0.to_string(), b.1.to_string()));
                }
                let mut out = vec![];
                let mut lower = "MINVALUE".to_string();
                while !ranges.is_empty() {
                    let i = ranges
                        .iter()
                        .position(|r| r.1 == lower)
                        .ok_or_else(|| "the ranges do not chain from MINVALUE without gaps".to_string())?;
                    let (name, _, upper) = ranges.remove(i);
                    out.push(if upper == "MAXVALUE" {
                        format!("PARTITION {} VALUES LESS THAN MAXVALUE", self.q(name))
                    } else {
                        format!("PARTITION {} VALUES LESS THAN ({upper})", self.q(name))
                    });
                    lower = upper;
                }
                out
            }
            "LIST" => t
                .partitions
                .iter()
                .map(|p| {
                    let values = p
                        .bound
                        .strip_prefix("FOR VALUES IN (")
                        .and_then(|b| b.strip_suffix(')'))
                        .filter(|v| !v.contains("NULL"))
                        .ok_or_else(|| format!("bound {}", p.bound))?;
                    Ok(format!("PARTITION {} VALUES IN ({values})", self.q(&p.name)))
                })
                .collect::<Result<_, String>>()?,
            other => return Err(format!("{other} partitioning hashes differently on MySQL")),
        };
        Ok(format!("PARTITION BY {method} COLUMNS({qc})\n({})", parts.join(",\n ")))
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
