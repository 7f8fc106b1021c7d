//! Throwaway MariaDB servers: `mariadb-install-db` into a temp dir, a random
//! port, ROW binlog with full images and metadata (what binlog CDC needs),
//! killed on Drop. Never touches the machine's own MariaDB service.

use super::free_port;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct MariaDbServer {
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub port: u16,
}

impl MariaDbServer {
    pub fn start() -> Result<MariaDbServer> {
        let dir = tempfile::Builder::new().prefix("ferry-mariadb-").tempdir()?;
        let data = dir.path().join("data");
        let st = Command::new("mariadb-install-db")
            .args([
                "--no-defaults",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .arg(format!("--datadir={}", data.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("mariadb-install-db (apt-get install mariadb-server)")?;
        if !st.success() {
            bail!("mariadb-install-db failed");
        }
        let mut s = MariaDbServer {
            dir,
            child: None,
            port: 0,
        };
        for _ in 0..5 {
            s.port = free_port();
            if s.spawn().is_ok() {
                return Ok(s);
            }
        }
        bail!("could not start mariadbd")
    }

    fn spawn(&mut self) -> Result<()> {
        let d = self.dir.path();
        let child = Command::new("mariadbd")
            .args([
                "--no-defaults",
                "--user=root",
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--server-id=1",
                "--log-bin=binlog",
                "--binlog-format=ROW",
                "--binlog-row-image=FULL",
                "--binlog-row-metadata=FULL",
                "--local-infile=1",
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
                "--sync-binlog=0",
                "--innodb-buffer-pool-size=256M",
                "--max-allowed-packet=256M",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_bin",
                // Not UTC, so that TIMESTAMP handling that ignores zones shows.
                "--default-time-zone=+05:30",
            ])
            .arg(format!("--port={}", self.port))
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--socket={}", d.join("sock").display()))
            .arg(format!("--pid-file={}", d.join("pid").display()))
            .arg(format!("--log-error={}", d.join("log").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("mariadbd")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(st) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!("mariadbd exited at start ({st}); see {}", self.log().display());
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("mariadbd did not start listening")
    }

    pub fn log(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    /// kill -9 and start again on the same data and port (crash recovery).
    pub fn crash_restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn()
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self, db: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{db}", self.port)
    }

    pub async fn client(&self, db: &str) -> Result<mysql_async::Conn> {
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(self.port)
            .user(Some("root"))
            .db_name(Some(db));
        Ok(mysql_async::Conn::new(opts).await?)
    }
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        self.kill();
    }
}
