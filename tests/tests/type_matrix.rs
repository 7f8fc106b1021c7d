//! The type matrix: every documented type's edge values through the full
//! load and through CDC (insert, update, delete), for all four pairs of
//! PostgreSQL and MariaDB, each value compared with an expectation written
//! here — the source's own value (same engine), the target's text of the
//! documented mapping (docs/type-mapping.md), NULL by a documented policy,
//! or refused into `ferry.apply_exceptions` — never anything else.
//!
//! Each type gets a table `(id, v)` on the source. Row `j` (one per value)
//! is loaded; during CDC the same value is inserted as row 1000+j, written
//! by an update into row 2000+j (loaded as NULL), and row 3000+j (loaded
//! with it) is deleted. The four rows must come out as expected on both
//! targets, which two tasks fill from the one source at once.
use ferry_tests::compare::{mysql_rows, pg_rows};
use ferry_tests::mariadb::MariaDbServer;
use ferry_tests::*;
use mysql_async::prelude::Queryable;
use std::collections::BTreeMap;

/// What a target must hold for one source value.
#[derive(Clone, Debug)]
enum Exp {
    /// The source's value, rendered the same way (same engine).
    Same,
    /// The target renders exactly this text.
    Is(String),
    /// A float the target holds exactly this value of.
    Num(f64),
    /// NULL, by a documented policy (MySQL zero dates).
    Null,
    /// The target cannot hold it: the row is in `ferry.apply_exceptions`.
    Refused,
}
use Exp::*;

fn is(s: &str) -> Exp {
    Is(s.to_string())
}

struct Val {
    /// SQL expression of the value on the source.
    lit: String,
    on_pg: Exp,
    on_my: Exp,
}

struct Case {
    ty: &'static str,
    vals: Vec<Val>,
}

/// A value of a MySQL source: its text on PostgreSQL; on MySQL the same
/// value.
fn m(lit: &str, on_pg: Exp) -> Val {
    Val {
        lit: lit.into(),
        on_pg,
        on_my: Same,
    }
}

/// A value of a PostgreSQL source: its text on MySQL; on PostgreSQL the
/// same value.
fn p(lit: &str, on_my: Exp) -> Val {
    Val {
        lit: lit.into(),
        on_pg: Same,
        on_my,
    }
}

fn case(ty: &'static str, vals: Vec<Val>) -> Case {
    Case { ty, vals }
}

fn mysql_cases() -> Vec<Case> {
    let big_text = "é".repeat(1_500_000);
    let big_blob = format!("\\x{}", "00ff".repeat(1_500_000));
    vec![
        case(
            "TINYINT",
            vec![m("-128", is("-128")), m("127", is("127")), m("NULL", Null)],
        ),
        case("TINYINT UNSIGNED", vec![m("255", is("255")), m("0", is("0"))]),
        case("SMALLINT", vec![m("-32768", is("-32768")), m("32767", is("32767"))]),
        case("SMALLINT UNSIGNED", vec![m("65535", is("65535"))]),
        case(
            "MEDIUMINT",
            vec![
                m("-8388608", is("-8388608")),
                m("8388607", is("8388607")),
                m("-1", is("-1")),
            ],
        ),
        case("MEDIUMINT UNSIGNED", vec![m("16777215", is("16777215"))]),
        case(
            "INT",
            vec![m("-2147483648", is("-2147483648")), m("2147483647", is("2147483647"))],
        ),
        case("INT UNSIGNED", vec![m("4294967295", is("4294967295"))]),
        case(
            "BIGINT",
            vec![
                m("-9223372036854775808", is("-9223372036854775808")),
                m("9223372036854775807", is("9223372036854775807")),
            ],
        ),
        case(
            "BIGINT UNSIGNED",
            vec![m("18446744073709551615", is("18446744073709551615"))],
        ),
        case(
            "DECIMAL(65,30)",
            vec![
                m(
                    "-99999999999999999999999999999999999.999999999999999999999999999999",
                    is("-99999999999999999999999999999999999.999999999999999999999999999999"),
                ),
                m(
                    "0.000000000000000000000000000001",
                    is("0.000000000000000000000000000001"),
                ),
            ],
        ),
        // PostgreSQL prints a real as the shortest text that reads back as it.
        case("FLOAT", vec![m("3.40282e38", Num(3.40282e38)), m("-1.5", Num(-1.5))]),
        case(
            "DOUBLE",
            vec![
                m("1.7976931348623157e308", Num(f64::MAX)),
                m("-2.2250738585072014e-308", Num(-2.2250738585072014e-308)),
                m("0.1", Num(0.1)),
            ],
        ),
        case(
            "BIT(12)",
            vec![m("b'101010101010'", is("101010101010")), m("b'0'", is("000000000000"))],
        ),
        case(
            "DATE",
            vec![
                m("'1000-01-01'", is("1000-01-01")),
                m("'9999-12-31'", is("9999-12-31")),
                Val {
                    lit: "'0000-00-00'".into(),
                    on_pg: Null,
                    on_my: Null,
                },
            ],
        ),
        case(
            "DATETIME(6)",
            vec![
                m("'1000-01-01 00:00:00'", is("1000-01-01 00:00:00")),
                m("'9999-12-31 23:59:59.999999'", is("9999-12-31 23:59:59.999999")),
                Val {
                    lit: "'0000-00-00 00:00:00'".into(),
                    on_pg: Null,
                    on_my: Null,
                },
            ],
        ),
        case(
            "TIMESTAMP(6) NULL",
            vec![
                m("'1970-01-01 00:00:01'", is("1970-01-01 00:00:01+00")),
                m("'2038-01-19 03:14:07.999999'", is("2038-01-19 03:14:07.999999+00")),
            ],
        ),
        case(
            "TIME(6)",
            vec![
                m("'-838:59:59'", is("-838:59:59")),
                m("'838:59:59'", is("838:59:59")),
                m("'-00:00:00.000001'", is("-00:00:00.000001")),
            ],
        ),
        case(
            "TIME(1)",
            vec![
                m("'-00:00:01.5'", is("-00:00:01.5")),
                m("'12:00:00.1'", is("12:00:00.1")),
            ],
        ),
        case("TIME(2)", vec![m("'-12:34:56.99'", is("-12:34:56.99"))]),
        case("TIME(4)", vec![m("'-01:00:00.0001'", is("-01:00:00.0001"))]),
        case("TIME", vec![m("'-01:02:03'", is("-01:02:03"))]),
        case(
            "YEAR",
            vec![m("1901", is("1901")), m("2155", is("2155")), m("0", is("0"))],
        ),
        case("CHAR(10)", vec![m("'ab'", is("ab")), m("''", is(""))]),
        case("VARCHAR(20)", vec![m("'🚀 Grüße'", is("🚀 Grüße")), m("''", is(""))]),
        case(
            "VARCHAR(20) CHARACTER SET latin1",
            vec![m("'café €'", is("café €")), m("'ÿ'", is("ÿ"))],
        ),
        case("TEXT CHARACTER SET cp1251", vec![m("'Привет'", is("Привет"))]),
        case("VARCHAR(10) CHARACTER SET ucs2", vec![m("'añ€'", is("añ€"))]),
        case("TEXT", vec![m("'a\\0b'", Refused), m("'tab\\there'", is("tab\there"))]),
        case("LONGTEXT", vec![m("REPEAT('é', 1500000)", Is(big_text))]),
        case(
            "BINARY(4)",
            vec![
                m("X'01'", is("\\x01000000")),
                m("X''", is("\\x00000000")),
                m("X'00000000'", is("\\x00000000")),
            ],
        ),
        case(
            "VARBINARY(10)",
            vec![m("X'00FF00'", is("\\x00ff00")), m("X''", is("\\x"))],
        ),
        case("LONGBLOB", vec![m("REPEAT(X'00FF', 1500000)", Is(big_blob))]),
        case(
            "ENUM('a','b','it''s')",
            vec![m("'it''s'", is("it's")), m("'a'", is("a"))],
        ),
        case("SET('x','y','z')", vec![m("'x,z'", is("x,z")), m("''", is(""))]),
        case(
            "JSON",
            vec![m(
                r#"'{"a": [1, 2.5, null], "b": "é"}'"#,
                is(r#"{"a": [1, 2.5, null], "b": "é"}"#),
            )],
        ),
    ]
}

fn postgres_cases() -> Vec<Case> {
    vec![
        case("smallint", vec![p("-32768", is("-32768")), p("NULL", Null)]),
        case("integer", vec![p("-2147483648", is("-2147483648"))]),
        case(
            "bigint",
            vec![
                p("-9223372036854775808", is("-9223372036854775808")),
                p("9223372036854775807", is("9223372036854775807")),
            ],
        ),
        case(
            "numeric(40,10)",
            vec![p(
                "-123456789012345678901234567890.0123456789",
                is("-123456789012345678901234567890.0123456789"),
            )],
        ),
        case(
            "numeric",
            vec![p("1.5", is("1.500000000000000000000000000000")), p("'NaN'", Refused)],
        ),
        case("real", vec![p("'-1.5'", Num(-1.5)), p("'Infinity'", Refused)]),
        case(
            "double precision",
            vec![
                p("'1.7976931348623157e308'", Num(f64::MAX)),
                p("'-0'", Num(0.0)),
                p("'NaN'", Refused),
            ],
        ),
        case("boolean", vec![p("true", is("1")), p("false", is("0"))]),
        case("text", vec![p("'Grüße 🚀'", is("Grüße 🚀")), p("''", is(""))]),
        case("character varying(5)", vec![p("'abc'", is("abc"))]),
        case("bytea", vec![p("'\\x00ff'", is("00FF")), p("''", is(""))]),
        case("bit(5)", vec![p("B'10101'", is("10101"))]),
        case(
            "date",
            vec![p("'0001-01-01'", is("0001-01-01")), p("'9999-12-31'", is("9999-12-31"))],
        ),
        case(
            "timestamp(6) without time zone",
            vec![p("'2024-02-29 12:34:56.789'", is("2024-02-29 12:34:56.789000"))],
        ),
        case(
            "timestamp(6) with time zone",
            vec![p("'2024-02-29 12:34:56.789+05:30'", is("2024-02-29 07:04:56.789000"))],
        ),
        case(
            "time(6) without time zone",
            vec![p("'23:59:59.999999'", is("23:59:59.999999"))],
        ),
        case("interval", vec![p("'1 day -01:00:00'", is("1 day -01:00:00"))]),
        case(
            "uuid",
            vec![p(
                "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
                is("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            )],
        ),
        case("jsonb", vec![p(r#"'{"a": [1, null]}'"#, is(r#"{"a": [1, null]}"#))]),
    ]
}

/// How each engine renders a value as text for comparison.
#[derive(Clone, Copy, PartialEq)]
enum Side {
    Pg,
    My,
}

/// `(id, rendered v)` of a table, by id.
async fn rendered(
    side: Side,
    pg: Option<&tokio_postgres::Client>,
    my: Option<&mut mysql_async::Conn>,
    schema: &str,
    table: &str,
) -> anyhow::Result<BTreeMap<i64, Option<String>>> {
    let rows = match side {
        Side::Pg => {
            let c = pg.expect("a PostgreSQL client");
            pg_rows(c, &format!("SELECT id::text, v::text FROM \"{schema}\".\"{table}\"")).await?
        }
        Side::My => {
            let c = my.expect("a MySQL connection");
            let ty: Option<String> = c
                .exec_first(
                    "SELECT DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLUMN_NAME = 'v'",
                    (schema, table),
                )
                .await?;
            let expr = match ty.as_deref().unwrap_or("") {
                "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => "HEX(v)",
                "bit" => "BIN(v)",
                "float" | "double" => "CAST(v AS DOUBLE)",
                _ => "CAST(v AS CHAR)",
            };
            mysql_rows(c, &format!("SELECT CAST(id AS CHAR), {expr} FROM `{schema}`.`{table}`")).await?
        }
    };
    Ok(rows
        .into_iter()
        .map(|r| (r[0].as_deref().unwrap().parse().unwrap(), r[1].clone()))
        .collect())
}

/// Compares a target's tables with the cases; returns every difference.
#[allow(clippy::too_many_arguments)]
async fn check_target(
    cases: &[Case],
    source: &BTreeMap<String, BTreeMap<i64, Option<String>>>,
    side: Side,
    pg: Option<&tokio_postgres::Client>,
    mut my: Option<&mut mysql_async::Conn>,
    exceptions: &BTreeMap<String, i64>,
    label: &str,
) -> anyhow::Result<Vec<String>> {
    let mut bad = vec![];
    for (i, c) in cases.iter().enumerate() {
        let table = format!("t{i}");
        let got = rendered(side, pg, my.as_deref_mut(), "mx", &table).await?;
        let src = &source[&table];
        for (j, v) in c.vals.iter().enumerate() {
            let exp = if side == Side::Pg { &v.on_pg } else { &v.on_my };
            let j = j as i64 + 1;
            for (path, id) in [("load", j), ("insert", 1000 + j), ("update", 2000 + j)] {
                let have = got.get(&id);
                let want_src = src.get(&id).cloned().flatten();
                let ok = match exp {
                    Same => have == Some(&want_src),
                    Is(s) => have == Some(&Some(s.clone())),
                    Num(x) => have
                        .cloned()
                        .flatten()
                        .and_then(|h| h.parse::<f64>().ok())
                        .is_some_and(|h| h == *x),
                    Null => have == Some(&None),
                    // The update leaves the row as it was (NULL).
                    Refused => {
                        (path == "update" && have == Some(&None) || path != "update" && have.is_none())
                            && exceptions.get(&table).copied().unwrap_or(0) >= 3
                    }
                };
                if !ok {
                    let shown = |s: &Option<String>| match s {
                        Some(s) if s.len() > 80 => format!("{}... ({} bytes)", &s[..80], s.len()),
                        s => format!("{s:?}"),
                    };
                    bad.push(format!(
                        "{label} {} value {} via {path}: expected {:?}, target has {}",
                        c.ty,
                        v.lit.chars().take(60).collect::<String>(),
                        match exp {
                            Is(s) if s.len() > 80 => Is(format!("{}... ({} bytes)", &s[..80], s.len())),
                            e => e.clone(),
                        },
                        have.map_or("no row".into(), shown)
                    ));
                }
            }
            if got.contains_key(&(3000 + j)) {
                bad.push(format!("{label} {} value {}: deleted row still there", c.ty, v.lit));
            }
        }
    }
    Ok(bad)
}

fn start_and_load(f: &Ferry, task: &str) {
    f.ok(&["task", "start", task]);
    let (ok, out, err) = f.ferry(&["task", "wait", task, "--for", "full-load", "--timeout", "600"]);
    assert!(ok, "{task}: full load failed: {out}{err}\n{:?}", f.status(task));
}

async fn pg_exceptions(c: &tokio_postgres::Client, task: &str) -> anyhow::Result<BTreeMap<String, i64>> {
    let rows = pg_rows(
        c,
        &format!(
            "SELECT split_part(table_name, '.', 2), count(*)::text FROM ferry.apply_exceptions WHERE task = '{task}' GROUP BY 1"
        ),
    )
    .await?;
    let mut out = BTreeMap::new();
    for r in rows {
        let t = r[0].clone().unwrap().trim_matches('"').to_string();
        *out.entry(t).or_insert(0) += r[1].as_deref().unwrap().parse::<i64>().unwrap();
    }
    Ok(out)
}

async fn my_exceptions(c: &mut mysql_async::Conn, task: &str) -> anyhow::Result<BTreeMap<String, i64>> {
    let rows = mysql_rows(
        c,
        &format!(
            "SELECT table_name, CAST(count(*) AS CHAR) FROM ferry.apply_exceptions WHERE task = '{task}' GROUP BY 1"
        ),
    )
    .await?;
    // The load and the change path may spell the table differently.
    let mut out = BTreeMap::new();
    for r in rows {
        let t = r[0].clone().unwrap();
        let t = t
            .rsplit('.')
            .next()
            .unwrap()
            .trim_matches(|c| c == '"' || c == '`')
            .to_string();
        *out.entry(t).or_insert(0) += r[1].as_deref().unwrap().parse::<i64>().unwrap();
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_values_through_load_and_cdc() -> anyhow::Result<()> {
    let src = MariaDbServer::start()?;
    let my_dst = MariaDbServer::start()?;
    let pg_dst = PgServer::start()?;
    let mut s = src.client("mysql").await?;
    s.query_drop("CREATE DATABASE mx CHARACTER SET utf8mb4").await?;
    let mut s = src.client("mx").await?;
    // UTC literals, zero dates allowed, backslash escapes on.
    s.query_drop("SET time_zone = '+00:00', sql_mode = ''").await?;
    let cases = mysql_cases();
    for (i, c) in cases.iter().enumerate() {
        s.query_drop(format!("CREATE TABLE t{i} (id INT PRIMARY KEY, v {})", c.ty))
            .await?;
        for (j, v) in c.vals.iter().enumerate() {
            let j = j + 1;
            s.query_drop(format!(
                "INSERT INTO t{i} VALUES ({j}, {lit}), ({}, NULL), ({}, {lit})",
                2000 + j,
                3000 + j,
                lit = v.lit
            ))
            .await?;
        }
    }
    my_dst
        .client("mysql")
        .await?
        .query_drop("CREATE DATABASE landing")
        .await?;
    let f = Ferry::start(2, 5000, &[])?;
    let settings = r#"{"FullLoadSettings": {"TargetTablePrepMode": "DROP_AND_CREATE"}}"#;
    create_typed(
        &f,
        "to-pg",
        &src.url("mx"),
        &pg_dst.url("postgres"),
        "full-load-and-cdc",
        settings,
        &[],
    );
    create_typed(
        &f,
        "to-my",
        &src.url("mx"),
        &my_dst.url("landing"),
        "full-load-and-cdc",
        settings,
        &[],
    );
    start_and_load(&f, "to-pg");
    start_and_load(&f, "to-my");

    for (i, c) in cases.iter().enumerate() {
        for (j, v) in c.vals.iter().enumerate() {
            let j = j + 1;
            s.query_drop(format!(
                "INSERT INTO t{i} VALUES ({}, {lit}); UPDATE t{i} SET v = {lit} WHERE id = {}; DELETE FROM t{i} WHERE id = {}",
                1000 + j,
                2000 + j,
                3000 + j,
                lit = v.lit
            ))
            .await?;
        }
    }
    wait_caught_up(&f, "to-pg");
    wait_caught_up(&f, "to-my");

    let mut source = BTreeMap::new();
    for i in 0..cases.len() {
        let t = format!("t{i}");
        source.insert(t.clone(), rendered(Side::My, None, Some(&mut s), "mx", &t).await?);
    }
    let p = pg_dst.client("postgres").await?;
    p.batch_execute("SET TimeZone = 'UTC'").await?;
    let mut d = my_dst.client("landing").await?;
    d.query_drop("SET time_zone = '+00:00'").await?;
    let pg_ex = pg_exceptions(&p, "to-pg").await?;
    let my_ex = my_exceptions(&mut d, "to-my").await?;
    let mut bad = check_target(
        &cases,
        &source,
        Side::Pg,
        Some(&p),
        None,
        &pg_ex,
        "MariaDB → PostgreSQL",
    )
    .await?;
    bad.extend(
        check_target(
            &cases,
            &source,
            Side::My,
            None,
            Some(&mut d),
            &my_ex,
            "MariaDB → MariaDB",
        )
        .await?,
    );
    for task in ["to-pg", "to-my"] {
        let st = f.status(task).unwrap();
        assert_eq!(st["degraded"], false, "{task}: {}", st["tables_in_error"]);
    }
    assert!(
        bad.is_empty(),
        "{} values differ:\n{}\nexceptions per table: {pg_ex:?} {my_ex:?}",
        bad.len(),
        bad.join("\n")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_values_through_load_and_cdc() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let pg_dst = PgServer::start()?;
    let my_dst = MariaDbServer::start()?;
    let s = src.client("postgres").await?;
    s.batch_execute("CREATE SCHEMA mx; SET TimeZone = 'UTC'").await?;
    let cases = postgres_cases();
    for (i, c) in cases.iter().enumerate() {
        s.batch_execute(&format!("CREATE TABLE mx.t{i} (id integer PRIMARY KEY, v {})", c.ty))
            .await?;
        for (j, v) in c.vals.iter().enumerate() {
            let j = j + 1;
            s.batch_execute(&format!(
                "INSERT INTO mx.t{i} VALUES ({j}, {lit}), ({}, NULL), ({}, {lit})",
                2000 + j,
                3000 + j,
                lit = v.lit
            ))
            .await?;
        }
    }
    my_dst.client("mysql").await?.query_drop("CREATE DATABASE mx").await?;
    let f = Ferry::start(2, 5000, &[])?;
    let settings = r#"{"FullLoadSettings": {"TargetTablePrepMode": "DROP_AND_CREATE"}}"#;
    create_typed(
        &f,
        "to-pg",
        &src.url("postgres"),
        &pg_dst.url("postgres"),
        "full-load-and-cdc",
        settings,
        &[],
    );
    create_typed(
        &f,
        "to-my",
        &src.url("postgres"),
        &my_dst.url("mx"),
        "full-load-and-cdc",
        settings,
        &[],
    );
    start_and_load(&f, "to-pg");
    start_and_load(&f, "to-my");
    for (i, c) in cases.iter().enumerate() {
        for (j, v) in c.vals.iter().enumerate() {
            let j = j + 1;
            s.batch_execute(&format!(
                "INSERT INTO mx.t{i} VALUES ({}, {lit}); UPDATE mx.t{i} SET v = {lit} WHERE id = {}; DELETE FROM mx.t{i} WHERE id = {}",
                1000 + j,
                2000 + j,
                3000 + j,
                lit = v.lit
            ))
            .await?;
        }
    }
    wait_caught_up(&f, "to-pg");
    wait_caught_up(&f, "to-my");

    let mut source = BTreeMap::new();
    for i in 0..cases.len() {
        let t = format!("t{i}");
        source.insert(t.clone(), rendered(Side::Pg, Some(&s), None, "mx", &t).await?);
    }
    let p = pg_dst.client("postgres").await?;
    p.batch_execute("SET TimeZone = 'UTC'").await?;
    let mut d = my_dst.client("mx").await?;
    d.query_drop("SET time_zone = '+00:00'").await?;
    let pg_ex = pg_exceptions(&p, "to-pg").await?;
    let my_ex = my_exceptions(&mut d, "to-my").await?;
    let mut bad = check_target(
        &cases,
        &source,
        Side::Pg,
        Some(&p),
        None,
        &pg_ex,
        "PostgreSQL → PostgreSQL",
    )
    .await?;
    bad.extend(
        check_target(
            &cases,
            &source,
            Side::My,
            None,
            Some(&mut d),
            &my_ex,
            "PostgreSQL → MariaDB",
        )
        .await?,
    );
    for task in ["to-pg", "to-my"] {
        let st = f.status(task).unwrap();
        assert_eq!(st["degraded"], false, "{task}: {}", st["tables_in_error"]);
    }
    assert!(
        bad.is_empty(),
        "{} values differ:\n{}\nexceptions per table: {pg_ex:?} {my_ex:?}",
        bad.len(),
        bad.join("\n")
    );
    Ok(())
}
