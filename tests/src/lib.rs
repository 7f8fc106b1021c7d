//! End-to-end harness: throwaway PostgreSQL servers (initdb into a temp dir,
//! random port, wal_level=logical) and Ferry processes, all stopped on Drop
//! whatever happens. Never touches the machine's own database services.

pub mod compare;
pub mod ddl;
pub mod mariadb;
pub mod otlp;
pub mod proxy;
pub mod samples;
pub mod tls;

use anyhow::{bail, ensure, Context, Result};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

fn pg_cmd(bin: &Path, root: bool) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

/// GET http://addr/path: (status, body).
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    http_get_with(addr, path, &[])
}

/// GET http://addr/path with further request headers: (status, body).
pub fn http_get_with(addr: &str, path: &str, headers: &[(&str, &str)]) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, out.split("\r\n\r\n").nth(1).unwrap_or("").to_string()))
}

/// Held by the tests that want the machine's 2 cores to themselves (a
/// drain killed at a chosen moment, a worker held to a memory limit while
/// it applies a gigabyte): they run one at a time, and while one runs, the
/// other test thread waits here instead of starting one beside it.
pub async fn alone() -> tokio::sync::MutexGuard<'static, ()> {
    static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    HEAVY.lock().await
}

/// A port nothing listens on now, for a server a test starts next. All tests
/// share one process, so a port is never handed out twice: two tests must
/// not both pick one the kernel offered again between a pick and its bind.
pub fn free_port() -> u16 {
    free_ports(1)
}

/// The first of `n` consecutive ports nothing listens on now (as
/// [`free_port`], none handed out before).
pub fn free_ports(n: u16) -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let ports = port..port.saturating_add(n);
        if ports.len() == n as usize
            && ports.clone().all(|p| !given.contains(&p))
            && ports
                .clone()
                .skip(1)
                .all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok())
        {
            given.extend(ports);
            return port;
        }
    }
}

pub struct PgServer {
    _dir: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    root: bool,
    opts: String,
    /// The server's environment beyond the harness's own.
    env: Vec<(String, String)>,
    log: PathBuf,
    pub port: u16,
}

impl PgServer {
    pub fn start() -> Result<PgServer> {
        Self::start_with("")
    }

    /// A server started with further options (`-c name=value ...`), which
    /// override the fixed ones (e.g. `-c wal_level=replica`).
    pub fn start_with(extra: &str) -> Result<PgServer> {
        Self::start_with_env(extra, &[])
    }

    /// A server started with further options and environment variables
    /// (e.g. `LOCPATH`, where locales generated for the test are).
    pub fn start_with_env(extra: &str, env: &[(&str, &str)]) -> Result<PgServer> {
        let out = Command::new("pg_config")
            .arg("--bindir")
            .output()
            .context("pg_config")?;
        let bin = PathBuf::from(String::from_utf8(out.stdout)?.trim());
        let dir = tempfile::Builder::new().prefix("ferry-pg-").tempdir()?;
        let root = is_root();
        if root {
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()?;
        }
        let data = dir.path().join("data");
        let st = pg_cmd(&bin.join("initdb"), root)
            .args([
                "--no-sync",
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "-D",
            ])
            .arg(&data)
            .stdout(Stdio::null())
            .status()?;
        if !st.success() {
            bail!("initdb failed");
        }
        for _ in 0..5 {
            let port = free_port();
            let opts = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c wal_level=logical -c max_wal_size=4GB -c shared_buffers=256MB {extra}",
                dir.path().display()
            );
            let st = pg_cmd(&bin.join("pg_ctl"), root)
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.path().join("log"))
                .args(["-o", &opts, "-w", "start"])
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .status()?;
            if st.success() {
                return Ok(PgServer {
                    log: dir.path().join("log"),
                    _dir: dir,
                    data,
                    bin,
                    root,
                    opts,
                    env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                    port,
                });
            }
        }
        bail!("could not start postgres")
    }

    /// `pg_ctl restart -m fast`: sessions (walsenders included) are ended.
    pub fn restart(&self) -> Result<()> {
        let st = pg_cmd(&self.bin.join("pg_ctl"), self.root)
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-o", &self.opts, "-m", "fast", "-w", "restart"])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .status()?;
        if !st.success() {
            bail!("pg_ctl restart failed");
        }
        Ok(())
    }

    /// Runs pgbench against this server with the given arguments.
    pub fn pgbench(&self, db: &str, args: &[&str]) -> Command {
        let mut c = Command::new(self.bin.join("pgbench"));
        c.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres"])
            .args(args)
            .arg(db)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    pub async fn client(&self, db: &str) -> Result<tokio_postgres::Client> {
        let (c, conn) = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={} user=postgres dbname={db}", self.port),
            tokio_postgres::NoTls,
        )
        .await?;
        tokio::spawn(conn);
        Ok(c)
    }
}

impl PgServer {
    /// Turns TLS on with `certs`' server certificate (client certificates
    /// checked against its CA). With `cert_user`, that user may connect only
    /// over TLS with a client certificate naming it (`cert` authentication,
    /// replication included); others keep connecting as before.
    /// The server's log so far.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Databases `src` (table `t (id int PRIMARY KEY, v text)` with `rows`
    /// rows) and `dst` (empty); answers a session on `src`.
    pub async fn src_and_dst(&self, rows: u32) -> Result<tokio_postgres::Client> {
        let p = self.client("postgres").await?;
        p.batch_execute("CREATE DATABASE src").await?;
        p.batch_execute("CREATE DATABASE dst").await?;
        let src = self.client("src").await?;
        src.batch_execute(&format!(
            "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, {rows}) g"
        ))
        .await?;
        Ok(src)
    }

    /// Makes `users` authenticate with their passwords (scram-sha-256),
    /// replication connections included.
    pub async fn require_passwords(&self, users: &[&str]) -> Result<()> {
        let lines: Vec<String> = users
            .iter()
            .map(|u| format!("host all,replication {u} 127.0.0.1/32 scram-sha-256"))
            .collect();
        self.prepend_hba(&lines).await
    }

    /// Puts `lines` first in pg_hba.conf (the first match decides) and
    /// reloads the configuration.
    pub async fn prepend_hba(&self, lines: &[String]) -> Result<()> {
        let hba = self.data.join("pg_hba.conf");
        let old = std::fs::read_to_string(&hba)?;
        let new: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(&hba, format!("{new}{old}"))?;
        self.client("postgres")
            .await?
            .batch_execute("SELECT pg_reload_conf()")
            .await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(())
    }

    pub async fn enable_tls(&self, certs: &tls::Certs, cert_user: Option<&str>) -> Result<()> {
        if let Some(user) = cert_user {
            let hba = self.data.join("pg_hba.conf");
            let old = std::fs::read_to_string(&hba)?;
            std::fs::write(
                &hba,
                format!(
                    "hostssl all,replication {user} 127.0.0.1/32 cert\nhost all,replication {user} 127.0.0.1/32 reject\n{old}"
                ),
            )?;
        }
        let c = self.client("postgres").await?;
        for (k, v) in [
            ("ssl_cert_file", certs.arg("server.pem")),
            ("ssl_key_file", certs.arg("server.key")),
            ("ssl_ca_file", certs.arg("ca.pem")),
            ("ssl", "on".into()),
        ] {
            c.batch_execute(&format!("ALTER SYSTEM SET {k} = '{v}'")).await?;
        }
        c.batch_execute("SELECT pg_reload_conf()").await?;
        // The reload is asynchronous: wait until the postmaster took it.
        for _ in 0..50 {
            let on: String = c.query_one("SHOW ssl", &[]).await?.get(0);
            if on == "on" {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("ssl did not turn on; see {}", self.log.display())
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the postmaster and every backend:
    /// a server that stops answering without closing a connection.
    pub fn freeze(&self, stop: bool) -> Result<()> {
        let pid = std::fs::read_to_string(self.data.join("postmaster.pid"))?
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let children = Command::new("pgrep").args(["-P", &pid]).output()?;
        let mut pids = vec![pid];
        pids.extend(
            String::from_utf8_lossy(&children.stdout)
                .split_whitespace()
                .map(str::to_string),
        );
        signal(&pids, stop)
    }
}

/// SIGSTOP or SIGCONT to the given processes.
pub fn signal(pids: &[String], stop: bool) -> Result<()> {
    let st = Command::new("kill")
        .arg(if stop { "-STOP" } else { "-CONT" })
        .args(pids)
        .status()?;
    if !st.success() {
        bail!("kill failed for {pids:?}");
    }
    Ok(())
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = pg_cmd(&self.bin.join("pg_ctl"), self.root)
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Process ids of the children of `pid` whose command line contains `what`
/// (all its children for "").
pub fn children(pid: u32, what: &str) -> Vec<u32> {
    let mut cmd = Command::new("pgrep");
    cmd.args(["-P", &pid.to_string()]);
    if !what.is_empty() {
        cmd.args(["-f", what]);
    }
    let out = cmd.output().expect("pgrep");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// `ferry ARGS` against the coordinator(s) at `url` with `env` added:
/// (success, stdout followed by stderr). For coordinators a test runs
/// itself (`ferry up`, manifests' command lines) rather than a [`Ferry`].
pub fn ferry_at(url: &str, env: &[(&str, &std::ffi::OsStr)], args: &[&str]) -> (bool, String) {
    let out = Command::new(bin_dir().join("ferry"))
        .args(args)
        .env("FERRY_COORDINATOR", url)
        .envs(env.iter().copied())
        .output()
        .expect("running ferry");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Directory holding the built `ferry` and `ferry-worker` binaries.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/<test> -> target/debug
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A failing test keeps the processes' logs (and the coordinator's data)
/// in a directory it names, for the post-mortem.
impl Drop for Ferry {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let kept = std::env::temp_dir().join(format!("ferry-failed-{}", self.port));
            if copy_logs(self.dir.path(), &kept).is_ok() {
                eprintln!("ferry logs kept in {}", kept.display());
            }
        }
    }
}

fn copy_logs(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if e.path().extension().is_some_and(|x| x == "log") {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

/// A coordinator and workers as separate real processes.
pub struct Ferry {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub coordinator: Option<Proc>,
    pub workers: Vec<Proc>,
    lease_ms: u64,
    /// Secured mode: TLS and tokens (`Ferry::start_secured`).
    pub access: Option<Access>,
    /// Further `ferry coordinator` flags (`Ferry::start_args`).
    coordinator_args: Vec<String>,
    /// Environment every process of this Ferry gets: coordinators, workers
    /// and CLI calls (`Ferry::start_env`). Tests share one process, so
    /// they never set their own environment for children to inherit.
    env: Vec<(String, String)>,
}

/// A secured coordinator's credentials: `ferry certs init` output and the
/// bootstrap admin token the CLI calls use.
pub struct Access {
    pub certs: PathBuf,
    pub admin_token: String,
}

impl Ferry {
    pub fn start(workers: usize, lease_ms: u64, worker_env: &[(&str, &str)]) -> Result<Ferry> {
        Ferry::start_with(workers, lease_ms, worker_env, false, &[], &[])
    }

    /// A Ferry whose every process (coordinators, workers, CLI calls) gets
    /// `env`, its workers `worker_env` too.
    pub fn start_env(
        workers: usize,
        lease_ms: u64,
        worker_env: &[(&str, &str)],
        env: &[(&str, &str)],
    ) -> Result<Ferry> {
        Ferry::start_with(workers, lease_ms, worker_env, false, &[], env)
    }

    /// A coordinator given further flags (e.g. `--scale-down-cooldown`).
    pub fn start_args(workers: usize, lease_ms: u64, coordinator_args: &[&str]) -> Result<Ferry> {
        Ferry::start_with(workers, lease_ms, &[], false, coordinator_args, &[])
    }

    /// A coordinator with mutual TLS (`ferry certs init`) and a bootstrap
    /// admin token; its workers present the worker certificate, `ferry()`
    /// calls the admin token.
    pub fn start_secured(workers: usize, lease_ms: u64, worker_env: &[(&str, &str)]) -> Result<Ferry> {
        Ferry::start_with(workers, lease_ms, worker_env, true, &[], &[])
    }

    /// A secured coordinator given further flags.
    pub fn start_secured_args(workers: usize, lease_ms: u64, coordinator_args: &[&str]) -> Result<Ferry> {
        Ferry::start_with(workers, lease_ms, &[], true, coordinator_args, &[])
    }

    fn start_with(
        workers: usize,
        lease_ms: u64,
        worker_env: &[(&str, &str)],
        secured: bool,
        coordinator_args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Ferry> {
        let mut f = Ferry {
            dir: tempfile::Builder::new().prefix("ferry-run-").tempdir()?,
            port: free_port(),
            coordinator: None,
            workers: vec![],
            lease_ms,
            access: None,
            coordinator_args: coordinator_args.iter().map(|a| a.to_string()).collect(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        if secured {
            let certs = f.dir.path().join("certs");
            let out = Command::new(bin_dir().join("ferry"))
                .args(["certs", "init"])
                .arg(&certs)
                .output()?;
            ensure!(
                out.status.success(),
                "ferry certs init: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos();
            let admin_token = format!("test-admin-{:x}-{nanos:x}", std::process::id());
            std::fs::write(f.dir.path().join("admin-token"), &admin_token)?;
            f.access = Some(Access { certs, admin_token });
        }
        f.start_coordinator()?;
        for _ in 0..workers {
            f.add_worker(worker_env)?;
        }
        Ok(f)
    }

    /// Runs the given coordinator and worker command lines (e.g. from
    /// deploy/'s units) as a Ferry listening on `port`.
    pub fn adopt(port: u16, coordinator: Command, workers: Vec<Command>) -> Result<Ferry> {
        let mut f = Ferry {
            dir: tempfile::Builder::new().prefix("ferry-run-").tempdir()?,
            port,
            coordinator: None,
            workers: vec![],
            lease_ms: 10_000,
            access: None,
            coordinator_args: vec![],
            env: vec![],
        };
        f.coordinator = Some(f.spawn(coordinator, "coordinator")?);
        f.wait_for_coordinator()?;
        for (n, w) in workers.into_iter().enumerate() {
            let p = f.spawn(w, &format!("worker-{n}"))?;
            f.workers.push(p);
        }
        Ok(f)
    }

    pub fn url(&self) -> String {
        let scheme = if self.access.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// A certificate file of the secured mode's (`ca.pem`, `worker.pem`, ...).
    pub fn cert(&self, name: &str) -> PathBuf {
        self.access.as_ref().expect("a secured Ferry").certs.join(name)
    }

    fn spawn(&self, mut cmd: Command, name: &str) -> Result<Proc> {
        let log = self.dir.path().join(format!("{name}.log"));
        let f = std::fs::File::create(&log)?;
        let child = cmd
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(f.try_clone()?)
            .stderr(f)
            .spawn()
            .with_context(|| format!("spawning {name}"))?;
        Ok(Proc { child, log })
    }

    pub fn start_coordinator(&mut self) -> Result<()> {
        let mut cmd = Command::new(bin_dir().join("ferry"));
        cmd.args(["coordinator", "--node-id", "1", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args([
                "--listen",
                &format!("127.0.0.1:{}", self.port),
                "--lease-ms",
                &self.lease_ms.to_string(),
            ])
            .args(&self.coordinator_args);
        if let Some(a) = &self.access {
            cmd.arg("--tls-dir")
                .arg(&a.certs)
                .arg("--admin-token-file")
                .arg(self.dir.path().join("admin-token"));
        }
        let n = self.dir.path().read_dir()?.count();
        self.coordinator = Some(self.spawn(cmd, &format!("coordinator-{n}"))?);
        self.wait_for_coordinator()
    }

    /// Starts coordinator node `node_id` on a port of its own, joining the
    /// cluster through the first node (`--join`), with the same TLS and
    /// admin token; answers its port and process (the caller owns it).
    pub fn add_coordinator(&self, node_id: u64) -> Result<(u16, Proc)> {
        let port = free_port();
        Ok((port, self.coordinator_node(node_id, port, &self.url())?))
    }

    /// Starts (or restarts, on its data dir) coordinator node `node_id` on
    /// `port`, joining through `join` (URLs, comma-separated) if its data
    /// dir holds no cluster.
    pub fn coordinator_node(&self, node_id: u64, port: u16, join: &str) -> Result<Proc> {
        let mut cmd = Command::new(bin_dir().join("ferry"));
        cmd.args(["coordinator", "--node-id", &node_id.to_string(), "--data-dir"])
            .arg(self.node_data_dir(node_id))
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--lease-ms",
                &self.lease_ms.to_string(),
                "--join",
                join,
            ]);
        if let Some(a) = &self.access {
            cmd.arg("--tls-dir")
                .arg(&a.certs)
                .arg("--admin-token-file")
                .arg(self.dir.path().join("admin-token"));
        }
        let n = self.dir.path().read_dir()?.count();
        self.spawn(cmd, &format!("coordinator-node-{node_id}-{n}"))
    }

    /// `ferry cluster status --output json` through `coordinator` (URLs).
    pub fn cluster_status(&self, coordinator: &str) -> Option<serde_json::Value> {
        let (ok, out, _) = self.ferry(&["cluster", "status", "--output", "json", "--coordinator", coordinator]);
        ok.then(|| serde_json::from_str(&out).ok()).flatten()
    }

    /// Nodes 2..=`nodes` joined to this node 1, and waited for as voters:
    /// their ports and processes (the caller owns them), and every node's
    /// URL, comma-separated, node 1 first.
    pub fn start_cluster(&self, nodes: u64) -> Result<(Vec<(u16, Proc)>, String)> {
        let mut others = vec![];
        for n in 2..=nodes {
            others.push(self.add_coordinator(n)?);
        }
        let scheme = if self.access.is_some() { "https" } else { "http" };
        let all = std::iter::once(self.port)
            .chain(others.iter().map(|(p, _)| *p))
            .map(|p| format!("{scheme}://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        self.wait_until("every node a voter", Duration::from_secs(60), || {
            self.cluster_status(&all).is_some_and(|s| {
                s["members"]
                    .as_array()
                    .is_some_and(|m| m.iter().filter(|m| m["voter"] == true).count() == nodes as usize)
            })
        });
        Ok((others, all))
    }

    /// `ferry task wait NAME --for caught-up` through `coordinator`.
    pub fn wait_caught_up_at(&self, task: &str, coordinator: &str) {
        let (ok, out, err) = self.ferry(&[
            "task",
            "wait",
            task,
            "--for",
            "caught-up",
            "--timeout",
            "300",
            "--coordinator",
            coordinator,
        ]);
        assert!(ok, "caught-up wait failed: {out}{err}");
    }

    /// The data dir of coordinator node `node_id` (node 1: the first).
    pub fn node_data_dir(&self, node_id: u64) -> PathBuf {
        match node_id {
            1 => self.dir.path().join("data"),
            n => self.dir.path().join(format!("data-{n}")),
        }
    }

    fn wait_for_coordinator(&self) -> Result<()> {
        let start = Instant::now();
        while !self.ferry(&["task", "list"]).0 {
            if start.elapsed() > Duration::from_secs(30) {
                bail!(
                    "coordinator did not come up:\n{}",
                    self.coordinator.as_ref().unwrap().log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    pub fn add_worker(&mut self, env: &[(&str, &str)]) -> Result<()> {
        self.add_worker_at(&self.url(), env)
    }

    /// A worker given `coordinator` (a URL, or several comma-separated).
    pub fn add_worker_at(&mut self, coordinator: &str, env: &[(&str, &str)]) -> Result<()> {
        let mut cmd = Command::new(bin_dir().join("ferry-worker"));
        cmd.args(["--coordinator", coordinator]);
        // One slot each, whatever cgroup limits this machine has: tests
        // count workers. FERRY_SLOTS in `env` says otherwise.
        if !env.iter().any(|(k, _)| *k == "FERRY_SLOTS") {
            cmd.args(["--slots", "1"]);
        }
        if self.access.is_some() {
            cmd.arg("--tls-ca")
                .arg(self.cert("ca.pem"))
                .arg("--tls-cert")
                .arg(self.cert("worker.pem"))
                .arg("--tls-key")
                .arg(self.cert("worker-key.pem"));
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let n = self.workers.len();
        let p = self.spawn(cmd, &format!("worker-{n}"))?;
        self.workers.push(p);
        Ok(())
    }

    /// The worker holding the CDC stream: the one whose log shows the
    /// newest stream start (callers empty a killed worker's log).
    pub fn cdc_worker(&self) -> Option<usize> {
        self.workers
            .iter()
            .enumerate()
            .filter_map(|(i, w)| {
                let log = w.log_text();
                log.rfind("CDC stream started").map(|_| (i, log.len()))
            })
            .max_by_key(|(_, n)| *n)
            .map(|(i, _)| i)
    }

    /// `ferry task stop`, then waits until the task's CDC stream has
    /// stopped (changes from now on pile up as a backlog).
    pub fn stop_stream(&self, task: &str) {
        self.ok(&["task", "stop", task]);
        self.wait_until("the stream to stop", Duration::from_secs(60), || {
            self.status(task).is_some_and(|s| s["cdc"]["streaming"] == false)
        });
    }

    /// Runs `ferry task ...` and returns (success, stdout, stderr).
    pub fn ferry(&self, args: &[&str]) -> (bool, String, String) {
        let mut cmd = Command::new(bin_dir().join("ferry"));
        if let Some(a) = &self.access {
            cmd.env("FERRY_TLS_CA", self.cert("ca.pem"))
                .env("FERRY_TOKEN", &a.admin_token);
        }
        self.ferry_cmd(cmd, args)
    }

    /// Runs `ferry ARGS` as `cmd` (a caller's own environment: tokens,
    /// certificates) against this coordinator.
    pub fn ferry_cmd(&self, mut cmd: Command, args: &[&str]) -> (bool, String, String) {
        let out = cmd
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("FERRY_COORDINATOR", self.url())
            .output()
            .expect("running ferry");
        let mut err = String::from_utf8_lossy(&out.stderr).into_owned();
        if err.contains("cannot reach the coordinator") {
            err.push_str(&self.coordinator_state());
        }
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            err,
        )
    }

    /// Whether the coordinator process still runs, and its log's tail: what
    /// a failure to reach it needs to be understood.
    fn coordinator_state(&self) -> String {
        let Some(c) = &self.coordinator else {
            return "\n(no coordinator started)".into();
        };
        let pid = c.child.id();
        // Field 3 of /proc/PID/stat is the state; Z is a zombie (exited).
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|st| st.rsplit_once(") ").map(|(_, rest)| rest.chars().next().unwrap_or('?')))
            .unwrap_or('-');
        let log = c.log_text();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        format!(
            "\ncoordinator pid {pid}: state {state} (Z or - = exited); last lines of its log:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.ferry(args);
        assert!(ok, "ferry {args:?} failed: {err}{out}");
        out
    }

    pub fn status(&self, task: &str) -> Option<serde_json::Value> {
        let (ok, out, _) = self.ferry(&["task", "status", task, "--output", "json"]);
        if !ok {
            return None;
        }
        serde_json::from_str(&out).ok()
    }

    pub fn wait_until(&self, what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
        let start = Instant::now();
        while !f() {
            assert!(start.elapsed() < timeout, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Row-for-row comparison: count plus a digest over every row's text form,
/// ordered by that digest so tables without keys compare too.
pub async fn table_digest(c: &tokio_postgres::Client, table: &str) -> Result<(i64, String)> {
    let r = c
        .query_one(
            &format!("SELECT count(*), coalesce(md5(string_agg(h, '' ORDER BY h)), '') FROM (SELECT md5(t::text) h FROM {table} t) s"),
            &[],
        )
        .await
        .with_context(|| format!("digest of {table}"))?;
    Ok((r.get(0), r.get(1)))
}

/// The source dataset of the end-to-end tests: a 1,000,000-row table, a
/// composite-key table, a table without a primary key, large values, a
/// partitioned table, mixed-case and reserved identifiers, and a column of
/// every common type.
pub const SOURCE_SQL: &str = r#"
CREATE SCHEMA shop;
CREATE SCHEMA "Mixed Case";
CREATE TYPE shop.mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN shop.positive AS integer CHECK (VALUE > 0);
CREATE TABLE shop.big (id bigint PRIMARY KEY, k integer NOT NULL, label text, created timestamptz DEFAULT now());
INSERT INTO shop.big SELECT i, i % 997, 'row ' || i, '2024-01-01'::timestamptz + i * interval '1 second' FROM generate_series(1, 1000000) i;
CREATE INDEX big_k ON shop.big (k);
CREATE TABLE shop.composite (region text, n integer, payload text, PRIMARY KEY (region, n));
INSERT INTO shop.composite SELECT (ARRAY['north','south','east','west'])[1 + i % 4], i, md5(i::text) FROM generate_series(1, 50000) i;
CREATE TABLE shop.nokey (a integer, b text);
INSERT INTO shop.nokey SELECT i % 100, repeat('x', i % 50) FROM generate_series(1, 60000) i;
INSERT INTO shop.nokey SELECT 1, 'dup' FROM generate_series(1, 10);
CREATE TABLE shop.blobs (id serial PRIMARY KEY, t text, b bytea);
INSERT INTO shop.blobs (t, b) SELECT repeat(md5(i::text), 100000), decode(repeat(md5(i::text), 60000), 'hex') FROM generate_series(1, 4) i;
CREATE TABLE shop.events (id bigint, at date NOT NULL, what text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE shop.events_2024 PARTITION OF shop.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE shop.events_2025 PARTITION OF shop.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE shop.events_other PARTITION OF shop.events DEFAULT;
INSERT INTO shop.events SELECT i, '2024-01-01'::date + (i % 900), 'e' || i FROM generate_series(1, 20000) i;
CREATE INDEX events_what ON shop.events (what);
CREATE TABLE "Mixed Case"."Order" ("Select" integer PRIMARY KEY, "from" text, "Group" text UNIQUE);
INSERT INTO "Mixed Case"."Order" SELECT i, 'x' || i, 'g' || i FROM generate_series(1, 1000) i;
CREATE TABLE shop.types (
  id integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  n numeric, f float8, r real, ts timestamptz, i interval, j jsonb, by bytea, arr text[],
  u uuid, ip inet, m shop.mood, moods shop.mood[], p shop.positive, rng int4range, tr tstzrange,
  s text, d date, tm time, b boolean, sm smallint, ch char(3), vc varchar(10),
  total numeric GENERATED ALWAYS AS (coalesce(n, 0) * 2) STORED,
  CHECK (sm IS NULL OR sm > -1000));
INSERT INTO shop.types (n, f, r, ts, i, j, by, arr, u, ip, m, moods, p, rng, tr, s, d, tm, b, sm, ch, vc) VALUES
 ('NaN', 'Infinity', '-Infinity', '2024-02-29 12:34:56.789+05:30', '1 year 2 mons 3 days 04:05:06', '{"a": [1, 2, {"b": null}]}', '\x00ff10', ARRAY['a', NULL, 'c,d', '"q"'],
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '192.168.1.0/24', 'happy', ARRAY['sad','ok']::shop.mood[], 42, '[1,10)', '[2024-01-01,2024-02-01)',
  'Grüße, 世界 🚀', '2024-01-01', '23:59:59', true, 7, 'ab', 'hello'),
 (12345678901234567890.123456789, 'NaN', 1.5, '-infinity', '-1 day', '[]', '', '{}', NULL, '::1', 'sad', '{}', 1, 'empty', NULL,
  '', '0001-01-01', '00:00', false, -7, '', ''),
 (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE shop.child (id integer PRIMARY KEY, big_id bigint REFERENCES shop.big (id), note text);
INSERT INTO shop.child SELECT i, i * 10, 'c' FROM generate_series(1, 1000) i;
ANALYZE;
"#;

pub const TABLES: &[&str] = &[
    "shop.big",
    "shop.composite",
    "shop.nokey",
    "shop.blobs",
    "shop.events",
    r#""Mixed Case"."Order""#,
    "shop.types",
    "shop.child",
];

/// Settings that cut the test tables into many segments.
pub const SETTINGS_JSON: &str = r#"{"Ferry": {"SegmentTargetBytes": 2000000, "SplitTablesLargerThan": 0}, "FullLoadSettings": {"TargetTablePrepMode": "DROP_AND_CREATE"}}"#;

pub struct Scenario {
    pub src: PgServer,
    pub dst: PgServer,
    pub settings: PathBuf,
    _dir: tempfile::TempDir,
}

impl Scenario {
    pub async fn new() -> Result<Scenario> {
        let src = PgServer::start()?;
        let dst = PgServer::start()?;
        src.client("postgres")
            .await?
            .batch_execute(SOURCE_SQL)
            .await
            .context("loading source dataset")?;
        let dir = tempfile::tempdir()?;
        let settings = dir.path().join("settings.json");
        std::fs::write(&settings, SETTINGS_JSON)?;
        Ok(Scenario {
            src,
            dst,
            settings,
            _dir: dir,
        })
    }

    pub fn create_task(&self, f: &Ferry, name: &str) {
        create_task(f, name, &self.src, &self.dst, "full-load", &self.settings);
    }

    /// Every table compared row for row; plus the post-data objects.
    pub async fn assert_identical(&self) -> Result<()> {
        assert_tables_identical(&self.src, &self.dst, TABLES).await?;
        let s = self.src.client("postgres").await?;
        let d = self.dst.client("postgres").await?;
        for t in TABLES {
            assert!(table_digest(&s, t).await?.0 > 0, "table {t} is empty in the source");
        }
        let idx: i64 = d
            .query_one("SELECT count(*) FROM pg_indexes WHERE indexname IN ('big_k') OR (tablename = 'events' AND indexdef LIKE '%(what)%')", &[])
            .await?
            .get(0);
        assert_eq!(idx, 2, "secondary indexes were not built on the target");
        let fk: i64 = d
            .query_one(
                "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid = 'shop.child'::regclass",
                &[],
            )
            .await?
            .get(0);
        assert_eq!(fk, 1, "foreign key missing on the target");
        let next: i64 = d.query_one("SELECT nextval('shop.blobs_id_seq')", &[]).await?.get(0);
        assert_eq!(next, 5, "sequence not advanced on the target");
        Ok(())
    }
}

pub const PGBENCH_TABLES: &[&str] = &[
    "pgbench_accounts",
    "pgbench_branches",
    "pgbench_tellers",
    "pgbench_history",
];

/// Source and target for the CDC tests: `pgbench -i -s SCALE` on the source.
pub struct PgbenchPair {
    pub src: PgServer,
    pub dst: PgServer,
    pub settings: PathBuf,
    _dir: tempfile::TempDir,
}

impl PgbenchPair {
    pub fn new(scale: u32) -> Result<PgbenchPair> {
        let src = PgServer::start()?;
        let dst = PgServer::start()?;
        let out = src
            .pgbench("postgres", &["-i", "-q", "-s", &scale.to_string()])
            .output()?;
        if !out.status.success() {
            bail!("pgbench -i failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let dir = tempfile::tempdir()?;
        let settings = dir.path().join("settings.json");
        // Small segments: pgbench_accounts is cut into many, loaded in parallel.
        std::fs::write(&settings, r#"{"Ferry": {"SegmentTargetBytes": 4000000}}"#)?;
        Ok(PgbenchPair {
            src,
            dst,
            settings,
            _dir: dir,
        })
    }

    pub fn create_task(&self, f: &Ferry, name: &str, kind: &str) {
        create_task(f, name, &self.src, &self.dst, kind, &self.settings);
    }

    /// Starts pgbench writing to the source for `secs` seconds.
    pub fn write_load(&self, clients: u32, secs: u32) -> Result<Child> {
        Ok(self
            .src
            .pgbench(
                "postgres",
                &["-n", "-c", &clients.to_string(), "-j", "2", "-T", &secs.to_string()],
            )
            .spawn()?)
    }

    /// Every pgbench table identical, row for row.
    pub async fn assert_identical(&self) -> Result<()> {
        assert_tables_identical(&self.src, &self.dst, PGBENCH_TABLES).await
    }
}

/// Asserts that `sql` is refused because the database is read-only (a
/// frozen source).
pub async fn assert_read_only(c: &tokio_postgres::Client, sql: &str) {
    let refused = c
        .batch_execute(sql)
        .await
        .expect_err("a frozen database must refuse writes");
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION),
        "{refused:?}"
    );
}

/// Waits for a pgbench run to end; a run cut short by a server restart is
/// expected to fail, so only its exit is awaited.
pub fn finish(mut c: Child) {
    let _ = c.wait();
}

/// Waits until `task` fails; its status then.
pub fn wait_failed(f: &Ferry, task: &str, timeout: Duration) -> serde_json::Value {
    f.wait_until(&format!("task {task} to fail"), timeout, || {
        f.status(task).is_some_and(|st| st["state"] == "failed")
    });
    f.status(task).expect("a failed task has a status")
}

/// `ferry task wait NAME --for caught-up`, asserting success.
pub fn wait_caught_up(f: &Ferry, task: &str) {
    let (ok, out, err) = f.ferry(&["task", "wait", task, "--for", "caught-up", "--timeout", "300"]);
    assert!(ok, "caught-up wait failed: {out}{err}\nstatus: {:?}", f.status(task));
}

/// `ferry task create NAME --type full-load` between two endpoint URLs with
/// the given settings JSON, plus any further arguments.
pub fn create_full_load(f: &Ferry, name: &str, source: &str, target: &str, settings_json: &str, extra: &[&str]) {
    create_typed(f, name, source, target, "full-load", settings_json, extra)
}

/// `ferry task create NAME --type KIND` between two endpoint URLs with the
/// given settings JSON, plus any further arguments.
pub fn create_typed(
    f: &Ferry,
    name: &str,
    source: &str,
    target: &str,
    kind: &str,
    settings_json: &str,
    extra: &[&str],
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = dir.path().join("settings.json");
    std::fs::write(&settings, settings_json).expect("settings file");
    let mut args = vec![
        "task",
        "create",
        name,
        "--source",
        source,
        "--target",
        target,
        "--type",
        kind,
        "--settings",
        settings.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    f.ok(&args);
}

/// `ferry task create NAME` between two test servers' `postgres` databases.
pub fn create_task(f: &Ferry, name: &str, src: &PgServer, dst: &PgServer, kind: &str, settings: &Path) {
    f.ok(&[
        "task",
        "create",
        name,
        "--source",
        &src.url("postgres"),
        "--target",
        &dst.url("postgres"),
        "--type",
        kind,
        "--settings",
        settings.to_str().unwrap(),
    ]);
}

/// Each table compared row for row (count + ordered digest).
pub async fn assert_tables_identical(src: &PgServer, dst: &PgServer, tables: &[&str]) -> Result<()> {
    let s = src.client("postgres").await?;
    let d = dst.client("postgres").await?;
    for t in tables {
        let a = table_digest(&s, t).await?;
        let b = table_digest(&d, t).await?;
        assert_eq!(a, b, "table {t} differs (count, digest): source {a:?} target {b:?}");
    }
    Ok(())
}

/// No table of a task counted a CDC change of a row the target lacked: a
/// conflict where source and target were equal would be a false alarm
/// (or a row the apply path lost).
pub fn assert_no_apply_conflicts(status: &serde_json::Value) {
    for t in status["tables"].as_array().into_iter().flatten() {
        assert_eq!(
            t["apply_conflicts"], 0,
            "table {} counted changes of rows the target lacked: {status}",
            t["name"]
        );
    }
}

/// The status JSON of one table of a task.
pub fn table_status(status: &serde_json::Value, name: &str) -> serde_json::Value {
    status["tables"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("table {name} not in status {status}"))
}

/// The seconds `ferry cutover` reports as `write-freeze window: N s`.
pub fn freeze_window(cutover_output: &str) -> f64 {
    cutover_output
        .lines()
        .find_map(|l| l.strip_prefix("write-freeze window: "))
        .and_then(|w| w.trim_end_matches(" s").parse().ok())
        .unwrap_or_else(|| panic!("no write-freeze window reported: {cutover_output}"))
}

/// The value of field `name` in a worker's log line (its fields are
/// coloured: `name<ESC>[2m=<ESC>[0mvalue`).
pub fn log_field(line: &str, name: &str) -> Option<String> {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An escape sequence runs to its final letter.
            for e in chars.by_ref() {
                if e.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    let prefix = format!("{name}=");
    plain
        .split_whitespace()
        .find_map(|w| w.strip_prefix(prefix.as_str()).map(str::to_string))
}

/// A cgroup (v1 memory controller) holding one process, removed on drop.
pub struct MemoryCgroup(PathBuf);

impl MemoryCgroup {
    pub fn limit(pid: u32, bytes: u64) -> anyhow::Result<MemoryCgroup> {
        // Tests of one binary run at once: each cgroup gets its own name.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = PathBuf::from(format!("/sys/fs/cgroup/memory/ferry-test-{}-{n}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create memory cgroup {} (root and cgroup v1 memory needed): {e}",
                dir.display()
            )
        })?;
        let cg = MemoryCgroup(dir);
        std::fs::write(cg.0.join("memory.limit_in_bytes"), bytes.to_string())?;
        std::fs::write(cg.0.join("cgroup.procs"), pid.to_string())?;
        Ok(cg)
    }

    pub fn read(&self, file: &str) -> u64 {
        std::fs::read_to_string(self.0.join(file))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        // Emptied by the worker's exit (Ferry kills its workers first).
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Runs `write` (one source transaction larger than memory) while worker 0
/// of `f` is held to `limit` bytes by a memory cgroup, waits for `task` to
/// catch up, and fails if the worker died (OOM-killed) or the wait failed.
/// Stops the worker and returns its peak resident memory (`VmHWM` line;
/// the cgroup's own peak also counts the page cache of its log file).
pub async fn catch_up_under_memory_limit(
    f: &mut Ferry,
    task: &str,
    limit: u64,
    write: impl std::future::Future<Output = Result<()>>,
) -> Result<String> {
    let worker = f.workers[0].child.id();
    let cg = MemoryCgroup::limit(worker, limit)?;
    write.await?;
    let (ok, out, err) = f.ferry(&["task", "wait", task, "--for", "caught-up", "--timeout", "900"]);
    let hwm = std::fs::read_to_string(format!("/proc/{worker}/status"))
        .ok()
        .and_then(|st| st.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_string))
        .unwrap_or_default();
    assert_alive_in(f, &cg)?;
    assert!(ok, "caught-up wait failed: {out}{err}");
    f.workers[0].kill9();
    drop(cg);
    Ok(hwm)
}

/// Fails if worker 0 of `f`, held by `cg`, has died (OOM-killed).
pub fn assert_alive_in(f: &mut Ferry, cg: &MemoryCgroup) -> Result<()> {
    assert!(
        f.workers[0].child.try_wait()?.is_none(),
        "the worker died (OOM-killed: {} limit hits): {}",
        cg.read("memory.failcnt"),
        f.workers[0].log_text()
    );
    Ok(())
}

/// Whether any file under `dir` contains `needle` (a secret must not).
pub fn dir_contains(dir: &Path, needle: &[u8]) -> Result<bool> {
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        let path = e.path();
        let hit = if e.file_type()?.is_dir() {
            dir_contains(&path, needle)?
        } else {
            let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            bytes.windows(needle.len()).any(|w| w == needle)
        };
        if hit {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A small deterministic generator for random writes, so a failing run can
/// be repeated with the same changes.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    pub fn pick<'a>(&mut self, of: &[&'a str]) -> &'a str {
        of[self.below(of.len() as u64) as usize]
    }
}

/// Runs the statements `change` draws (from a generator seeded with
/// `seed`) on `c` for `secs` seconds in the background; the task returns
/// how many ran, or the first statement that failed.
pub fn spawn_writes(
    c: tokio_postgres::Client,
    secs: u64,
    seed: u64,
    mut change: impl FnMut(&mut Rng) -> String + Send + 'static,
) -> tokio::task::JoinHandle<Result<u64>> {
    tokio::spawn(async move {
        let (mut r, end) = (Rng(seed), Instant::now() + Duration::from_secs(secs));
        let mut n = 0u64;
        while Instant::now() < end {
            let sql = change(&mut r);
            c.batch_execute(&sql).await.with_context(|| sql.clone())?;
            n += 1;
        }
        Ok(n)
    })
}

/// Writes a table-mappings file into `dir`; returns its path.
pub fn mapping_file(dir: &tempfile::TempDir, json: &str) -> String {
    let path = dir.path().join("mappings.json");
    std::fs::write(&path, json).expect("mapping file");
    path.to_string_lossy().into_owned()
}

impl Ferry {
    /// Kills (kill -9) the worker applying the CDC stream and, once the
    /// stream's lease has expired, starts a replacement, so the stream (not
    /// a validation range, which would wait for it) takes the new slot.
    pub fn kill_stream_worker(&mut self) -> Result<()> {
        let mut streaming = None;
        self.wait_until("a worker to stream", Duration::from_secs(60), || {
            streaming = self.cdc_worker();
            streaming.is_some()
        });
        let i = streaming.expect("waited for");
        self.workers[i].kill9();
        std::fs::write(&self.workers[i].log, "")?;
        std::thread::sleep(Duration::from_secs(6));
        self.add_worker(&[])
    }
}
