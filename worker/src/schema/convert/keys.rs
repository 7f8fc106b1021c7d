//! Indexes and constraints: what each engine can declare of the other's
//! (prefix, FULLTEXT, SPATIAL, expression and partial indexes; unique keys
//! over text; checks; foreign keys with their actions).

use super::*;

impl Converter<'_> {
    pub(super) fn indexes(&mut self, t: &TableSchema, qt: &str) {
        let tname = t.display_name();
        if self.from() == Engine::Postgres && self.to == Engine::Postgres {
            for idx in &t.indexes {
                self.post(&tname, format!("{idx};"));
                self.object(
                    Category::Indexes,
                    &format!("{tname}.{}", postgres_index_name(idx)),
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
                        let object = format!("{tname}.{}", postgres_index_name(ddl));
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
            let ty = self
                .key_type(&c.name)
                .map(str::to_string)
                .or_else(|| {
                    t.column(&c.name)
                        .and_then(|col| convert_type(self.from(), Engine::Mysql, &col.type_sql).ok())
                })
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

    pub(super) fn constraints(&mut self, t: &TableSchema, d: &TableDetails, qt: &str) {
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
            let translated = translate::expr(self.from(), self.to, &clause, translate::Types::of_row(t));
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
