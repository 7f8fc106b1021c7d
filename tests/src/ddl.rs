//! Helpers for the schema conversion tests: the DDL files applied with each
//! engine's own client (as a person would), the MariaDB sample loaded, and
//! report.json read.

use crate::mariadb::MariaDbServer;
use crate::samples::MARIADB_SCHEMA;
use crate::{Ferry, PgServer};
use anyhow::Result;
use mysql_async::prelude::Queryable;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// What `ferry schema convert` writes, in the order they run.
pub const DDL_FILES: [&str; 3] = ["pre-data.sql", "post-data.sql", "cutover.sql"];

/// `ferry schema convert` of `source` for `engine` into `out`; what it printed.
pub fn schema_convert(f: &Ferry, source: &str, engine: &str, out: &Path) -> String {
    f.ok(&[
        "schema",
        "convert",
        "--source",
        source,
        "--target-engine",
        engine,
        "--out",
        out.to_str().expect("a UTF-8 path"),
    ])
}

/// A psql command line for database `db` that stops at the first error.
pub fn psql(pg: &PgServer, db: &str) -> String {
    let bin = Command::new("pg_config").arg("--bindir").output().expect("pg_config");
    format!(
        "{}/psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p {} -U postgres -d {db}",
        String::from_utf8_lossy(&bin.stdout).trim(),
        pg.port
    )
}

fn run(what: &str, mut cmd: Command) {
    let o = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(o.status.success(), "{what}: {}", String::from_utf8_lossy(&o.stderr));
}

/// Runs every DDL file of `dir` with psql on database `db`.
pub fn apply_with_psql(pg: &PgServer, db: &str, dir: &Path) {
    for file in DDL_FILES {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!("{} -f {}", psql(pg, db), dir.join(file).display()));
        run(&format!("psql -f {file}"), c);
    }
}

/// Runs every DDL file of `dir` with the mariadb client.
pub fn apply_with_mariadb(my: &MariaDbServer, dir: &Path) {
    for file in DDL_FILES {
        let mut c = Command::new("mariadb");
        c.args([
            "--no-defaults",
            "--protocol=TCP",
            "-h",
            "127.0.0.1",
            "-u",
            "root",
            "mysql",
        ])
        .arg(format!("--port={}", my.port))
        .stdin(std::fs::File::open(dir.join(file)).expect("DDL file"));
        run(&format!("mariadb < {file}"), c);
    }
}

/// Database `shop` with [`MARIADB_SCHEMA`]; a session on it.
pub async fn load_mariadb_sample(my: &MariaDbServer) -> Result<mysql_async::Conn> {
    my.client("mysql")
        .await?
        .query_drop("CREATE DATABASE shop CHARACTER SET utf8mb4")
        .await?;
    let mut m = my.client("shop").await?;
    for s in MARIADB_SCHEMA {
        m.query_drop(*s).await.map_err(|e| anyhow::anyhow!("{s}: {e}"))?;
    }
    Ok(m)
}

pub fn read_report(dir: &Path) -> Result<Value> {
    Ok(serde_json::from_str(&std::fs::read_to_string(
        dir.join("report.json"),
    )?)?)
}

/// The ids of a report's action items.
pub fn item_ids(report: &Value) -> Vec<String> {
    report["action_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

pub fn category<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["categories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["category"] == name)
        .unwrap_or_else(|| panic!("no category {name}"))
}

/// Asserts `(total, needs_action)` per category.
pub fn assert_categories(report: &Value, expect: &[(&str, u64, u64)]) {
    for (name, total, action) in expect {
        let c = category(report, name);
        assert_eq!(
            (c["total"].as_u64(), c["needs_action"].as_u64()),
            (Some(*total), Some(*action)),
            "{name}: {c}"
        );
    }
}

pub fn check_status(report: &Value, id: &str) -> String {
    report["premigration_checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .map(|c| c["status"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no check {id}"))
}
