//! `ferry demo`: two throwaway PostgreSQL servers (initdb into a temp dir),
//! generated data in the source, the coordinator and three workers, one
//! full load, and a row-count comparison at the end.

use crate::{server, supervisor};
use anyhow::{bail, Context};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

struct Pg {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
}

fn pg_bindir() -> anyhow::Result<PathBuf> {
    let out = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .context("running pg_config (install PostgreSQL server packages)")?;
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// initdb and postgres refuse to run as root: run them as `postgres` then.
fn as_pg(bin: &Path, args: &[&str]) -> Command {
    let root = unsafe { libc_geteuid() } == 0;
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin).args(args);
        c
    } else {
        let mut c = Command::new(bin);
        c.args(args);
        c
    }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

impl Pg {
    fn start(base: &Path, name: &str) -> anyhow::Result<Pg> {
        let bin = pg_bindir()?;
        let dir = base.join(name);
        std::fs::create_dir_all(&dir)?;
        if unsafe { libc_geteuid() } == 0 {
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(base)
                .status()?;
        }
        let d = dir.to_string_lossy().to_string();
        let st = as_pg(
            &bin.join("initdb"),
            &["--no-sync", "-A", "trust", "-U", "postgres", "-D", &d],
        )
        .stdout(std::process::Stdio::null())
        .status()?;
        anyhow::ensure!(st.success(), "initdb failed in {d}");
        let port = free_port()?;
        let opts = format!("-p {port} -k {d} -c listen_addresses=127.0.0.1 -c fsync=off -c wal_level=logical");
        let log = format!("{d}/log");
        let st = as_pg(&bin.join("pg_ctl"), &["-D", &d, "-l", &log, "-o", &opts, "-w", "start"])
            .stdout(std::process::Stdio::null())
            .status()?;
        anyhow::ensure!(st.success(), "starting postgres in {d} failed (see {log})");
        Ok(Pg { dir, port, bin })
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let d = self.dir.to_string_lossy().to_string();
        let _ = as_pg(&self.bin.join("pg_ctl"), &["-D", &d, "-m", "immediate", "stop"])
            .stdout(std::process::Stdio::null())
            .status();
    }
}

async fn sql(url: &str, q: &str) -> anyhow::Result<()> {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    c.batch_execute(q).await?;
    Ok(())
}

async fn count(url: &str, table: &str) -> anyhow::Result<i64> {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    Ok(c.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await?.get(0))
}

pub async fn run(rows: u64) -> anyhow::Result<()> {
    let tmp = std::env::temp_dir().join(format!("ferry-demo-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    println!("starting throwaway source and target PostgreSQL in {}", tmp.display());
    let src = Pg::start(&tmp, "source")?;
    let dst = Pg::start(&tmp, "target")?;
    println!("generating {rows} orders in the source");
    sql(
        &src.url(),
        &format!(
            "CREATE SCHEMA shop;
             CREATE TYPE shop.status AS ENUM ('new','paid','shipped');
             CREATE TABLE shop.customers (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE);
             INSERT INTO shop.customers (name, email) SELECT 'customer ' || i, 'c' || i || '@example.com' FROM generate_series(1, 1000) i;
             CREATE TABLE shop.orders (id bigint PRIMARY KEY, customer_id int REFERENCES shop.customers, status shop.status,
                                       amount numeric(12,2), placed_at timestamptz, note text);
             INSERT INTO shop.orders SELECT i, 1 + i % 1000, (ARRAY['new','paid','shipped'])[1 + i % 3]::shop.status,
                 (i % 10000) / 100.0, now() - i * interval '1 minute', md5(i::text) FROM generate_series(1, {rows}) i;
             CREATE INDEX ON shop.orders (customer_id);
             ANALYZE;"
        ),
    )
    .await?;
    let data = tmp.join("coordinator");
    let port = free_port()?;
    let listen: std::net::SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let coord = tokio::spawn(server::run(
        server::NodeConfig::single(data, listen, 10_000, server::Security::default()),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let url = format!("http://{listen}");
    let worker = supervisor::worker_binary()?;
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(
            tokio::process::Command::new(&worker)
                .args(["--coordinator", &url])
                .kill_on_drop(true)
                .spawn()?,
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let link = ferry_common::access::ClientLink::new(url.clone());
    let settings = tmp.join("settings.json");
    std::fs::write(&settings, r#"{"Ferry": {"SegmentTargetBytes": 4194304}}"#)?;
    let started = std::time::Instant::now();
    crate::cli::run(
        &link,
        crate::cli::TaskCmd::Create {
            name: "demo".into(),
            source: src.url(),
            target: dst.url(),
            migration_type: "full-load".into(),
            table_mappings: None,
            settings: Some(settings),
            cdc_start_position: None,
            slot_name: None,
            cdc_stop_position: None,
            schema_dir: None,
            min_capacity: None,
            max_capacity: None,
            test_endpoints: false,
        },
    )
    .await?;
    crate::cli::run(
        &link,
        crate::cli::TaskCmd::Start {
            name: "demo".into(),
            cdc_stop_position: None,
        },
    )
    .await?;
    crate::cli::run(
        &link,
        crate::cli::TaskCmd::Wait {
            name: "demo".into(),
            milestone: "full-load".into(),
            timeout: Some(600),
        },
    )
    .await?;
    let elapsed = started.elapsed();
    crate::cli::run(
        &link,
        crate::cli::TaskCmd::Status {
            name: "demo".into(),
            output: "table".into(),
        },
    )
    .await?;
    for t in ["shop.customers", "shop.orders"] {
        let (a, b) = (count(&src.url(), t).await?, count(&dst.url(), t).await?);
        println!("{t}: source {a} rows, target {b} rows");
        if a != b {
            bail!("{t}: row counts differ");
        }
    }
    println!("demo full load finished in {:.1}s", elapsed.as_secs_f64());
    for mut w in workers {
        let _ = w.kill().await;
    }
    let _ = stop_tx.send(());
    let _ = coord.await;
    drop((src, dst));
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}
