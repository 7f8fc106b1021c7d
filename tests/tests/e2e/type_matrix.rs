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
        case("DECIMAL(10,2)", vec![m("-12345678.90", is("-12345678.90"))]),
        // MySQL's internal form: SRID (4 bytes), then WKB.
        case(
            "POINT",
            vec![m(
                "ST_GeomFromText('POINT(1 2)')",
                is("\\x000000000101000000000000000000f03f0000000000000040"),
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
        case("money", vec![p("'-12.34'", is("-12.34"))]),
        case("integer[]", vec![p("'{1,NULL,3}'", is("[1,null,3]"))]),
        case("text[]", vec![p(r#"'{"a,b",NULL}'"#, is(r#"["a,b",null]"#))]),
        case("inet", vec![p("'192.168.1.0/24'", is("192.168.1.0/24"))]),
        case("macaddr", vec![p("'08:00:2b:01:02:03'", is("08:00:2b:01:02:03"))]),
        case("character(5)", vec![p("'ab'", is("ab"))]),
        case("int4range", vec![p("'[1,10)'", is("[1,10)"))]),
        case(
            "timestamp(6) without time zone",
            vec![
                p("'infinity'", Refused),
                p("'0001-01-01 00:00:00'", is("0001-01-01 00:00:00.000000")),
            ],
        ),
        case("date", vec![p("'infinity'", Refused), p("'0044-03-15 BC'", Refused)]),
    ]
}

/// A connection to one of the servers, source or target. Every table lives
/// in `mx` (a MySQL database keeps its name on a MySQL target; on
/// PostgreSQL it is a schema).
enum Db {
    Pg(tokio_postgres::Client),
    My(mysql_async::Conn),
}

impl Db {
    async fn exec(&mut self, sql: &str) -> anyhow::Result<()> {
        match self {
            Db::Pg(c) => c.batch_execute(sql).await?,
            Db::My(c) => c.query_drop(sql).await?,
        }
        Ok(())
    }

    /// `(id, v as text)` of table `mx.NAME`, by id, each engine rendering
    /// its values its own way (binary as hex, floats as doubles).
    async fn rendered(&mut self, table: &str) -> anyhow::Result<BTreeMap<i64, Option<String>>> {
        let rows = match self {
            Db::Pg(c) => pg_rows(c, &format!("SELECT id::text, v::text FROM mx.{table}")).await?,
            Db::My(c) => {
                let ty: Option<String> = c
                    .exec_first(
                        "SELECT DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'mx' AND TABLE_NAME = ? AND COLUMN_NAME = 'v'",
                        (table,),
                    )
                    .await?;
                let expr = match ty.as_deref().unwrap_or("") {
                    "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "point" | "geometry" => {
                        "HEX(v)"
                    }
                    "bit" => "BIN(v)",
                    "float" | "double" => "CAST(v AS DOUBLE)",
                    _ => "CAST(v AS CHAR)",
                };
                mysql_rows(c, &format!("SELECT CAST(id AS CHAR), {expr} FROM mx.{table}")).await?
            }
        };
        Ok(rows
            .into_iter()
            .map(|r| (r[0].as_deref().unwrap().parse().unwrap(), r[1].clone()))
            .collect())
    }

    /// Rows in `ferry.apply_exceptions` per table of the task.
    async fn exceptions(&mut self, task: &str) -> anyhow::Result<BTreeMap<String, i64>> {
        let sql = format!(
            "SELECT table_name, CAST(count(*) AS CHAR) FROM ferry.apply_exceptions WHERE task = '{task}' GROUP BY 1"
        );
        let rows = match self {
            Db::Pg(c) => pg_rows(c, &sql.replace("CAST(count(*) AS CHAR)", "count(*)::text")).await?,
            Db::My(c) => mysql_rows(c, &sql).await?,
        };
        // The load and the change path may spell the table differently.
        let mut out = BTreeMap::new();
        for r in rows {
            let t = r[0].clone().unwrap();
            let t = t.rsplit('.').next().unwrap().trim_matches(['"', '`']).to_string();
            *out.entry(t).or_insert(0) += r[1].as_deref().unwrap().parse::<i64>().unwrap();
        }
        Ok(out)
    }

    fn is_pg(&self) -> bool {
        matches!(self, Db::Pg(_))
    }
}

/// Compares a target's tables with the cases; returns every difference.
async fn check_target(
    cases: &[Case],
    source: &BTreeMap<String, BTreeMap<i64, Option<String>>>,
    target: &mut Db,
    task: &str,
    label: &str,
) -> anyhow::Result<Vec<String>> {
    let exceptions = target.exceptions(task).await?;
    let mut bad = vec![];
    for (i, c) in cases.iter().enumerate() {
        let table = format!("t{i}");
        let got = target.rendered(&table).await?;
        let src = &source[&table];
        for (j, v) in c.vals.iter().enumerate() {
            let exp = if target.is_pg() { &v.on_pg } else { &v.on_my };
            let j = j as i64 + 1;
            for (path, id) in [("load", j), ("insert", 1000 + j), ("update", 2000 + j)] {
                let have = got.get(&id);
                let ok = match exp {
                    Same => have == Some(&src.get(&id).cloned().flatten()),
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
                    let short = |s: &str| match s.len() > 80 {
                        true => format!("{}... ({} bytes)", &s[..80], s.len()),
                        false => s.to_string(),
                    };
                    let expected = match exp {
                        Is(s) => format!("{:?}", short(s)),
                        e => format!("{e:?}"),
                    };
                    let held = match have {
                        None => "no row".to_string(),
                        Some(None) => "NULL".to_string(),
                        Some(Some(h)) => format!("{:?}", short(h)),
                    };
                    bad.push(format!(
                        "{label} {} value {} via {path}: expected {expected}, target has {held}",
                        c.ty,
                        short(&v.lit)
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

/// One source, two targets: each case's table created and filled on the
/// source, loaded by a task per target, changed during CDC, then every
/// value compared on both targets.
async fn run_matrix(
    cases: &[Case],
    mut source: Db,
    source_url: &str,
    targets: [(Db, String, &str); 2],
) -> anyhow::Result<()> {
    // A MySQL session is in database mx already.
    let prefix = if source.is_pg() { "mx." } else { "" };
    let table = |i: usize| format!("{prefix}t{i}");
    for (i, c) in cases.iter().enumerate() {
        let t = table(i);
        source
            .exec(&format!("CREATE TABLE {t} (id INTEGER PRIMARY KEY, v {})", c.ty))
            .await?;
        for (j, v) in c.vals.iter().enumerate() {
            let (j, lit) = (j + 1, &v.lit);
            source
                .exec(&format!(
                    "INSERT INTO {t} VALUES ({j}, {lit}), ({}, NULL), ({}, {lit})",
                    2000 + j,
                    3000 + j
                ))
                .await?;
        }
    }
    let f = Ferry::start(2, 5000, &[])?;
    let settings = r#"{"FullLoadSettings": {"TargetTablePrepMode": "DROP_AND_CREATE"}}"#;
    for (i, (_, url, _)) in targets.iter().enumerate() {
        let task = format!("to-{i}");
        create_typed(&f, &task, source_url, url, "full-load-and-cdc", settings, &[]);
        f.ok(&["task", "start", &task]);
        let (ok, out, err) = f.ferry(&["task", "wait", &task, "--for", "full-load", "--timeout", "600"]);
        assert!(ok, "{task}: full load failed: {out}{err}\n{:?}", f.status(&task));
    }
    for (i, c) in cases.iter().enumerate() {
        let t = table(i);
        for (j, v) in c.vals.iter().enumerate() {
            let (j, lit) = (j + 1, &v.lit);
            source
                .exec(&format!(
                    "INSERT INTO {t} VALUES ({}, {lit}); UPDATE {t} SET v = {lit} WHERE id = {}; DELETE FROM {t} WHERE id = {}",
                    1000 + j,
                    2000 + j,
                    3000 + j
                ))
                .await?;
        }
    }
    let mut rendered = BTreeMap::new();
    for i in 0..cases.len() {
        rendered.insert(format!("t{i}"), source.rendered(&format!("t{i}")).await?);
    }
    let mut bad = vec![];
    for (i, (mut target, _, label)) in targets.into_iter().enumerate() {
        let task = format!("to-{i}");
        wait_caught_up(&f, &task);
        let st = f.status(&task).unwrap();
        assert_eq!(st["degraded"], false, "{task}: {}", st["tables_in_error"]);
        bad.extend(check_target(cases, &rendered, &mut target, &task, label).await?);
    }
    assert!(bad.is_empty(), "{} values differ:\n{}", bad.len(), bad.join("\n"));
    Ok(())
}

async fn pg_utc(pg: &PgServer) -> anyhow::Result<Db> {
    let c = pg.client("postgres").await?;
    c.batch_execute("SET TimeZone = 'UTC'").await?;
    Ok(Db::Pg(c))
}

async fn my_utc(my: &MariaDbServer, db: &str) -> anyhow::Result<Db> {
    let mut c = my.client(db).await?;
    c.query_drop("SET time_zone = '+00:00'").await?;
    Ok(Db::My(c))
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_values_through_load_and_cdc() -> anyhow::Result<()> {
    let src = MariaDbServer::start()?;
    let my_dst = MariaDbServer::start()?;
    let pg_dst = PgServer::start()?;
    src.client("mysql")
        .await?
        .query_drop("CREATE DATABASE mx CHARACTER SET utf8mb4")
        .await?;
    my_dst
        .client("mysql")
        .await?
        .query_drop("CREATE DATABASE landing")
        .await?;
    let mut s = my_utc(&src, "mx").await?;
    // Zero dates allowed, backslash escapes on.
    s.exec("SET sql_mode = ''").await?;
    let targets = [
        (pg_utc(&pg_dst).await?, pg_dst.url("postgres"), "MariaDB → PostgreSQL"),
        (
            my_utc(&my_dst, "landing").await?,
            my_dst.url("landing"),
            "MariaDB → MariaDB",
        ),
    ];
    run_matrix(&mysql_cases(), s, &src.url("mx"), targets).await
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_values_through_load_and_cdc() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let pg_dst = PgServer::start()?;
    let my_dst = MariaDbServer::start()?;
    my_dst.client("mysql").await?.query_drop("CREATE DATABASE mx").await?;
    let mut s = pg_utc(&src).await?;
    s.exec("CREATE SCHEMA mx").await?;
    let targets = [
        (
            pg_utc(&pg_dst).await?,
            pg_dst.url("postgres"),
            "PostgreSQL → PostgreSQL",
        ),
        (my_utc(&my_dst, "mx").await?, my_dst.url("mx"), "PostgreSQL → MariaDB"),
    ];
    run_matrix(&postgres_cases(), s, &src.url("postgres"), targets).await
}
