//! deploy/systemd: the units are valid (`systemd-analyze verify`, with the
//! built binaries in place of /usr/local/bin) and their command lines, only
//! the paths and the port replaced, run a migration end to end.
use ferry_tests::*;
use std::path::Path;
use std::process::Command;

/// The unit's `ExecStart=` command line, split into words.
fn exec_start(unit: &str) -> Vec<String> {
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("no ExecStart in {unit}"));
    line.split_whitespace().map(str::to_string).collect()
}

fn command(words: &[String]) -> Command {
    let mut c = Command::new(&words[0]);
    c.args(&words[1..]);
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn systemd_units_run_a_migration() -> anyhow::Result<()> {
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd");
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let data = dir.path().join("state");
    let localize = |text: String| {
        text.replace("/usr/local/bin/", &format!("{}/", bin_dir().display()))
            .replace("127.0.0.1:7400", &format!("127.0.0.1:{port}"))
            .replace("/var/lib/ferry", &data.display().to_string())
    };
    let mut lines = vec![];
    for (file, instance) in [
        ("ferry-coordinator.service", "ferry-coordinator.service"),
        ("ferry-worker@.service", "ferry-worker@1.service"),
    ] {
        let unit = localize(std::fs::read_to_string(units.join(file))?);
        let path = dir.path().join(instance);
        std::fs::write(&path, &unit)?;
        let out = Command::new("systemd-analyze").arg("verify").arg(&path).output()?;
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        lines.push(exec_start(&unit));
    }
    let f = Ferry::adopt(port, command(&lines[0]), vec![command(&lines[1]), command(&lines[1])])?;

    let src = PgServer::start()?;
    let dst = PgServer::start()?;
    src.client("postgres")
        .await?
        .batch_execute(
            "CREATE TABLE t (id bigint PRIMARY KEY, v text);
             INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, 20000) i;",
        )
        .await?;
    create_typed(
        &f,
        "unit",
        &src.url("postgres"),
        &dst.url("postgres"),
        "full-load",
        "{}",
        &[],
    );
    f.ok(&["task", "start", "unit"]);
    let (ok, out, err) = f.ferry(&["task", "wait", "unit", "--for", "full-load", "--timeout", "120"]);
    assert!(ok, "{out}{err}");
    assert_tables_identical(&src, &dst, &["t"]).await?;
    Ok(())
}
