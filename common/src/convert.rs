//! Table conversion between engines for heterogeneous pairs: a source table
//! in its engine's dialect becomes the table the target creates, with column
//! types from [`crate::typemap`] (the same table the data path uses) and
//! keys, indexes and foreign keys rendered for the target.
//!
//! Naming: a MySQL database becomes a PostgreSQL schema of the same name
//! (`TableSchema::schema` is the database), and back.
//!
//! What this conversion leaves out, on purpose, until full schema conversion
//! exists: column defaults other than plain literals, generated-column
//! expressions (their values are copied instead), CHECK constraints,
//! FULLTEXT and SPATIAL indexes, index prefix lengths (the whole column is
//! indexed), PostgreSQL expression, partial and non-btree indexes, and
//! foreign keys MySQL cannot declare. None of these changes a value that is
//! copied.

use crate::endpoint::Engine;
use crate::schema::*;
use crate::typemap::{convert_type, MysqlType, Unsupported};

/// A default that means the same on both engines: a number or a plain
/// string literal without escapes.
pub fn portable_default(d: &str) -> Option<String> {
    let d = d.trim();
    if d.parse::<f64>().is_ok() && !d.contains(['e', 'E', 'n', 'N', 'i', 'I']) {
        return Some(d.to_string());
    }
    let inner = d.strip_prefix('\'')?.strip_suffix('\'')?;
    (!inner.contains(['\'', '\\'])).then(|| d.to_string())
}

/// `enum('a','b')` → `CHECK (col IN ('a','b'))`, keeping the value domain.
fn enum_check(col: &Column) -> Option<Constraint> {
    let t = MysqlType::parse(&col.type_sql);
    (t.base == "enum").then(|| Constraint {
        name: format!("{}_check", col.name),
        kind: ConstraintKind::Check,
        definition: format!("CHECK ({} IN ({}))", quote_ident(&col.name), t.args.unwrap_or("''")),
    })
}

/// InnoDB keys hold at most 3072 bytes (768 utf8mb4 characters).
const MYSQL_KEY_BYTES: u32 = 3072;

/// MySQL cannot key a TEXT or BLOB column whole; the primary key's and
/// unique keys' such columns get bounded types instead (`varchar(n)`,
/// `varbinary(n)`), the key's budget shared among them. A longer value is
/// then refused by the target, never cut. `(column, type)` for each column
/// of `t` (a source table) whose MySQL type changes.
pub fn mysql_key_types(t: &TableSchema) -> Vec<(String, String)> {
    let mut keys: Vec<Vec<String>> = t.primary_key.iter().map(|p| p.columns.clone()).collect();
    let unique = t
        .index_list
        .iter()
        .filter(|i| i.unique)
        .cloned()
        .chain(t.indexes.iter().filter_map(|d| postgres_index(d)).filter(|i| i.unique))
        .chain(
            t.constraints
                .iter()
                .filter(|c| c.kind == ConstraintKind::Unique)
                .filter_map(unique_constraint),
        );
    // Prefixed key parts already have a length.
    keys.extend(unique.map(|i| {
        i.columns
            .iter()
            .filter(|c| c.prefix.is_none())
            .map(|c| c.name.clone())
            .collect()
    }));
    let mut out: Vec<(String, String)> = vec![];
    for key in keys {
        let unbounded: Vec<(&String, bool)> = key
            .iter()
            .filter_map(|c| {
                let ty = convert_type(t.engine, Engine::Mysql, &t.column(c)?.type_sql).ok()?;
                let base = ty.split('(').next().unwrap_or_default().to_string();
                match base.as_str() {
                    "tinytext" | "text" | "mediumtext" | "longtext" => Some((c, false)),
                    "tinyblob" | "blob" | "mediumblob" | "longblob" => Some((c, true)),
                    _ => None,
                }
            })
            .collect();
        let n = unbounded.len() as u32;
        for (c, binary) in unbounded {
            let ty = if binary {
                format!("varbinary({})", MYSQL_KEY_BYTES / n)
            } else {
                format!("varchar({})", MYSQL_KEY_BYTES / 4 / n)
            };
            let len = |s: &str| {
                s.trim_end_matches(')')
                    .rsplit('(')
                    .next()
                    .and_then(|v| v.parse::<u32>().ok())
            };
            match out.iter_mut().find(|(x, _)| x == c) {
                Some((_, old)) if len(old) > len(&ty) => *old = ty,
                Some(_) => {}
                None => out.push((c.clone(), ty)),
            }
        }
    }
    out
}

/// The table as the target engine creates it.
pub fn convert_table(t: &TableSchema, to: Engine) -> Result<TableSchema, Unsupported> {
    // The target's form carries no source filter: it holds what passed.
    if t.engine == to {
        return Ok(TableSchema {
            filter: None,
            transform: None,
            lob: None,
            ..t.clone()
        });
    }
    let mut out = t.clone();
    out.filter = None;
    out.transform = None;
    out.lob = None;
    out.engine = to;
    out.copy_format = CopyFormat::Text;
    out.partition_key = None;
    out.partitions = vec![];
    out.sequences = vec![];
    out.index_list = vec![];
    out.indexes = vec![];
    out.constraints = vec![];
    let mut auto_increment = false;
    for (col, src) in out.columns.iter_mut().zip(&t.columns) {
        col.type_sql = convert_type(t.engine, to, &src.type_sql)?;
        col.default = src.default.as_deref().and_then(portable_default);
        col.generated = None;
        col.collation = None;
        col.identity = None;
        let generated = src.identity.is_some() || src.default.as_deref().is_some_and(|d| d.starts_with("nextval("));
        match to {
            // PostgreSQL identity needs an integer type: an AUTO_INCREMENT
            // BIGINT UNSIGNED (numeric(20,0)) keeps its values but no generator.
            Engine::Postgres if generated && matches!(col.type_sql.as_str(), "smallint" | "integer" | "bigint") => {
                col.identity = Some("d".into());
                col.default = None;
                out.sequences.push(Sequence {
                    schema: t.schema.clone(),
                    name: String::new(),
                    column: col.name.clone(),
                    identity: true,
                    options: String::new(),
                    owned: true,
                });
            }
            // MySQL allows one AUTO_INCREMENT column; it continues past the
            // largest loaded value by itself.
            Engine::Mysql
                if generated && !auto_increment && matches!(col.type_sql.as_str(), "smallint" | "int" | "bigint") =>
            {
                auto_increment = true;
                col.identity = Some("auto_increment".into());
                col.default = None;
            }
            _ => {}
        }
    }
    if t.engine == Engine::Mysql {
        out.constraints.extend(t.columns.iter().filter_map(enum_check));
    }
    if to == Engine::Mysql {
        for (c, ty) in mysql_key_types(t) {
            if let Some(col) = out.columns.iter_mut().find(|x| x.name == c) {
                col.type_sql = ty;
            }
        }
    }
    let mut indexes = t.index_list.clone();
    if t.engine == Engine::Postgres {
        indexes.extend(t.indexes.iter().filter_map(|d| postgres_index(d)));
        indexes.extend(
            t.constraints
                .iter()
                .filter(|c| c.kind == ConstraintKind::Unique)
                .filter_map(unique_constraint),
        );
    }
    for idx in &indexes {
        if idx.method == "FULLTEXT" || idx.method == "SPATIAL" {
            continue;
        }
        match to {
            Engine::Postgres => {
                let cols: Vec<String> = idx.columns.iter().map(|c| quote_ident(&c.name)).collect();
                out.indexes.push(format!(
                    "CREATE {}INDEX {} ON {} ({})",
                    if idx.unique { "UNIQUE " } else { "" },
                    quote_ident(&format!("{}_{}", t.name, idx.name)),
                    t.qualified(),
                    cols.join(", ")
                ));
            }
            Engine::Mysql => out.index_list.push(idx.clone()),
        }
    }
    // Foreign keys: the MySQL connector keeps them in ANSI form; from
    // PostgreSQL, those MySQL cannot declare (deferrable, MATCH FULL) are left out.
    out.constraints.extend(
        t.constraints
            .iter()
            .filter(|c| c.kind == ConstraintKind::ForeignKey)
            .filter(|c| to != Engine::Mysql || !(c.definition.contains("DEFERRABLE") || c.definition.contains("MATCH")))
            .map(|c| foreign_key_for(t, c, to)),
    );
    Ok(out)
}

/// Foreign key `c` of table `t` as a target of engine `to` declares it.
pub fn foreign_key_for(t: &TableSchema, c: &Constraint, to: Engine) -> Constraint {
    match to {
        Engine::Mysql => set_null_on_not_null(t, c),
        Engine::Postgres => c.clone(),
    }
}

/// A foreign key whose action sets a NOT NULL column to NULL: PostgreSQL
/// declares it and fails each such delete or update at run time (the NOT
/// NULL check); InnoDB refuses to declare it (error 1825). NO ACTION fails
/// the same statements, so it keeps the behaviour.
fn set_null_on_not_null(t: &TableSchema, c: &Constraint) -> Constraint {
    let cols = c
        .definition
        .strip_prefix("FOREIGN KEY (")
        .and_then(|d| d.split_once(')'))
        .and_then(|(cols, _)| column_list(cols))
        .unwrap_or_default();
    let not_null = cols.iter().any(|ic| t.column(&ic.name).is_some_and(|col| col.not_null));
    let mut c = c.clone();
    if not_null {
        for action in ["ON DELETE", "ON UPDATE"] {
            c.definition = c
                .definition
                .replace(&format!("{action} SET NULL"), &format!("{action} NO ACTION"));
        }
    }
    c
}

/// Plain column list of `(a, "B")`, or None if any part is an expression.
pub fn column_list(inner: &str) -> Option<Vec<IndexColumn>> {
    inner
        .split(',')
        .map(|c| {
            let c = c.trim();
            let name = match c.strip_prefix('"').and_then(|c| c.strip_suffix('"')) {
                Some(q) => q.replace("\"\"", "\""),
                None if !c.is_empty() && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') => c.to_string(),
                None => return None,
            };
            Some(IndexColumn { name, prefix: None })
        })
        .collect()
}

/// `CREATE [UNIQUE] INDEX name ON t USING btree (a, b)` as an index over
/// plain columns; expression, partial and non-btree indexes give None.
/// The index name of a `pg_get_indexdef` text.
pub fn postgres_index_name(ddl: &str) -> String {
    let rest = ddl
        .strip_prefix("CREATE UNIQUE INDEX ")
        .or_else(|| ddl.strip_prefix("CREATE INDEX "))
        .unwrap_or(ddl);
    rest.split(" ON ")
        .next()
        .unwrap_or_default()
        .trim()
        .trim_matches('"')
        .to_string()
}

pub fn postgres_index(ddl: &str) -> Option<Index> {
    let unique = ddl.starts_with("CREATE UNIQUE INDEX ");
    ddl.strip_prefix(if unique {
        "CREATE UNIQUE INDEX "
    } else {
        "CREATE INDEX "
    })?;
    let name = postgres_index_name(ddl);
    let (_, cols) = ddl.split_once(" USING btree (")?;
    let cols = cols.strip_suffix(')')?;
    Some(Index {
        name,
        unique,
        method: "BTREE".into(),
        columns: column_list(cols)?,
    })
}

/// `UNIQUE (a, b)` as a unique index named after the constraint.
pub fn unique_constraint(c: &Constraint) -> Option<Index> {
    let cols = c.definition.strip_prefix("UNIQUE (")?.strip_suffix(')')?;
    Some(Index {
        name: c.name.clone(),
        unique: true,
        method: "BTREE".into(),
        columns: column_list(cols)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, ty: &str) -> Column {
        Column::plain(name, ty)
    }

    #[test]
    fn converts_a_mysql_table() {
        let mut id = col("id", "int(10) unsigned");
        id.identity = Some("auto_increment".into());
        let mut mood = col("mood", "enum('ok','bad')");
        mood.default = Some("'ok'".into());
        let mut ts = col("ts", "timestamp");
        ts.default = Some("current_timestamp()".into());
        let t = TableSchema {
            engine: Engine::Mysql,
            schema: "shop".into(),
            name: "t".into(),
            columns: vec![id, mood, ts],
            primary_key: None,
            partition_key: None,
            partitions: vec![],
            indexes: vec![],
            index_list: vec![Index {
                name: "by_mood".into(),
                unique: false,
                method: "BTREE".into(),
                columns: vec![IndexColumn {
                    name: "mood".into(),
                    prefix: Some(2),
                }],
            }],
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
        };
        let p = convert_table(&t, Engine::Postgres).unwrap();
        assert_eq!(p.columns[0].type_sql, "bigint");
        assert_eq!(p.columns[0].identity.as_deref(), Some("d"));
        assert_eq!(p.columns[1].default.as_deref(), Some("'ok'"));
        assert_eq!(p.columns[2].default, None);
        assert_eq!(p.indexes, vec![r#"CREATE INDEX "t_by_mood" ON "shop"."t" ("mood")"#]);
        assert_eq!(p.constraints[0].definition, r#"CHECK ("mood" IN ('ok','bad'))"#);
        assert_eq!(p.sequences.len(), 1);
    }

    /// Sakila's payment.rental_id: NOT NULL, yet ON DELETE SET NULL.
    #[test]
    fn set_null_on_a_not_null_column_becomes_no_action_on_mysql() {
        let mut rental = col("rental_id", "integer");
        rental.not_null = true;
        let mut t = TableSchema::bare(
            Engine::Postgres,
            "public",
            "payment",
            vec![col("id", "integer"), rental],
        );
        let fk = |name: &str, def: &str| Constraint {
            name: name.into(),
            kind: ConstraintKind::ForeignKey,
            definition: def.into(),
        };
        t.constraints = vec![
            fk(
                "to_rental",
                "FOREIGN KEY (rental_id) REFERENCES public.rental(rental_id) ON UPDATE CASCADE ON DELETE SET NULL",
            ),
            fk(
                "nullable",
                "FOREIGN KEY (id) REFERENCES public.other(id) ON DELETE SET NULL",
            ),
        ];
        let m = convert_table(&t, Engine::Mysql).unwrap();
        assert_eq!(
            m.constraints[0].definition,
            "FOREIGN KEY (rental_id) REFERENCES public.rental(rental_id) ON UPDATE CASCADE ON DELETE NO ACTION"
        );
        assert!(m.constraints[1].definition.ends_with("ON DELETE SET NULL"));
        // PostgreSQL keeps what it declared.
        let p = convert_table(&t, Engine::Postgres).unwrap();
        assert!(p.constraints[0].definition.ends_with("ON DELETE SET NULL"));
    }

    #[test]
    fn bounds_text_keys_for_mysql() {
        let mut t = TableSchema::bare(
            Engine::Postgres,
            "app",
            "t",
            vec![
                col("a", "text"),
                col("b", "text"),
                col("c", "bytea"),
                col("d", "integer"),
            ],
        );
        t.primary_key = Some(PrimaryKey {
            name: "t_pkey".into(),
            columns: vec!["a".into(), "d".into()],
        });
        t.constraints = vec![Constraint {
            name: "t_a_b_key".into(),
            kind: ConstraintKind::Unique,
            definition: "UNIQUE (a, b)".into(),
        }];
        let k = mysql_key_types(&t);
        assert_eq!(
            k,
            vec![
                ("a".to_string(), "varchar(384)".to_string()),
                ("b".into(), "varchar(384)".into())
            ]
        );
        t.indexes
            .push("CREATE UNIQUE INDEX c_key ON app.t USING btree (c)".into());
        assert!(mysql_key_types(&t).contains(&("c".into(), "varbinary(3072)".into())));
        let m = convert_table(&t, Engine::Mysql).unwrap();
        assert_eq!(m.columns[0].type_sql, "varchar(384)");
        assert_eq!(m.columns[3].type_sql, "int");
    }

    #[test]
    fn reads_postgres_indexes() {
        let i = postgres_index(r#"CREATE UNIQUE INDEX "Big_k" ON shop.big USING btree (k, "Mixed")"#).unwrap();
        assert!(i.unique);
        assert_eq!(i.columns[1].name, "Mixed");
        assert!(postgres_index("CREATE INDEX e ON t USING btree (lower(x))").is_none());
        assert!(postgres_index("CREATE INDEX p ON t USING btree (a) WHERE (a > 0)").is_none());
        assert!(postgres_index("CREATE INDEX g ON t USING gin (a)").is_none());
    }
}
