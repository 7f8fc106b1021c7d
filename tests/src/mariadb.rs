//! Throwaway MariaDB servers: `mariadb-install-db` into a temp dir, a random
//! port, ROW binlog with full images and metadata (what binlog CDC needs),
//! killed on Drop. Never touches the machine's own MariaDB service.

use super::free_port;
use anyhow::{bail, Context, Result};
use mysql_async::prelude::Queryable;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `mariadbd` lives in /usr/sbin, which a non-login PATH may lack.
fn server_binary() -> PathBuf {
    let sbin = PathBuf::from("/usr/sbin/mariadbd");
    if sbin.exists() {
        sbin
    } else {
        PathBuf::from("mariadbd")
    }
}

pub struct MariaDbServer {
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub port: u16,
    /// Options beyond the fixed ones, kept for restarts.
    extra: Vec<String>,
}

impl MariaDbServer {
    pub fn start() -> Result<MariaDbServer> {
        Self::start_with(&[])
    }

    /// A server started with further options (e.g. `--ssl-cert=...`).
    pub fn start_with(extra: &[String]) -> Result<MariaDbServer> {
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
            // Bootstraps sharing /tmp collide on their temporary tables
            // ("Unknown table 'mysql.tmp_user_sys'"): a temp dir of its own.
            .env("TMPDIR", dir.path())
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
            extra: extra.to_vec(),
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
        // Readiness is our own socket file (below); a killed server leaves
        // its file behind.
        let _ = std::fs::remove_file(d.join("sock"));
        let child = Command::new(server_binary())
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
                // 2: a commit reaches the OS before it returns, so a killed server
                // loses nothing (0 would lose the last second of commits that the
                // binlog already holds).
                "--innodb-flush-log-at-trx-commit=2",
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
            // Its own temp dir: servers sharing /tmp name their internal
            // temporary tables alike and delete each other's files.
            .arg(format!("--tmpdir={}", d.display()))
            .args(&self.extra)
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
            // The port alone is not proof: another test's server may hold
            // it (ours then fails to bind and exits). The socket file in our
            // directory appears only once our server listens.
            if d.join("sock").exists() && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
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

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the server process.
    pub fn freeze(&self, stop: bool) -> Result<()> {
        let pid = self.child.as_ref().map(|c| c.id().to_string()).unwrap_or_default();
        crate::signal(&[pid], stop)
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

/// The MySQL sample dataset of the end-to-end tests: a column of every type
/// family with edge values (`kinds`), 60,000 rows with keys past 2^63
/// (`big`), 20,000 composite-key rows (`pairs`), a table without a key,
/// rows PostgreSQL cannot store (`odd`), and a foreign key.
pub const SAMPLE_SQL: &str = r#"
CREATE TABLE kinds (
  id INT AUTO_INCREMENT PRIMARY KEY,
  i8 TINYINT, u8 TINYINT UNSIGNED, i16 SMALLINT, u16 SMALLINT UNSIGNED, u24 MEDIUMINT UNSIGNED,
  i32 INT, u32 INT UNSIGNED, i64 BIGINT, u64 BIGINT UNSIGNED,
  dec65 DECIMAL(65,30), money DECIMAL(12,2), f FLOAT, d DOUBLE,
  dt DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL, dd DATE, tm TIME(6), yr YEAR,
  b BIT(12), e ENUM('small','medium','large'), s SET('a','b','c'),
  j JSON, bl BLOB, vb VARBINARY(16), c CHAR(10), vc VARCHAR(100), tx TEXT
);
CREATE TABLE big (id BIGINT UNSIGNED PRIMARY KEY, k INT NOT NULL, label VARCHAR(64), at DATETIME(3), KEY by_k (k));
CREATE TABLE pairs (region VARCHAR(10), n INT, payload CHAR(32), PRIMARY KEY (region, n));
CREATE TABLE loose (a INT, b TEXT);
CREATE TABLE odd (id INT PRIMARY KEY, v TEXT, d DATE);
CREATE TABLE parent (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL UNIQUE);
CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE);
"#;

/// Edge values, inserted with zero dates allowed.
pub const SAMPLE_ROWS: &str = r#"
INSERT INTO kinds VALUES
 (1, -128, 255, -32768, 65535, 16777215, -2147483648, 4294967295, -9223372036854775808, 18446744073709551615,
  '99999999999999999999999999999999999.999999999999999999999999999999', -0.01, 3.40282e38, -1.7976931348623157e308,
  '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999', '1000-01-01', '838:59:59.000000', 2155,
  b'101010101010', 'large', 'a,c', '{"k": [1, 2.5, "ü"], "n": null}', x'00ff10', x'', 'padded', 'emoji 😀 ok', 'tab\there\nnewline \\ backslash'),
 (2, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  '-0.000000000000000000000000000001', 0, 1.5e-38, 2.2250738585072014e-308,
  '1000-01-01 00:00:00', '1970-01-01 00:00:01', '0000-00-00', '-838:59:59.000000', 1901,
  b'0', 'small', '', '[]', x'', x'0000', '', '', ''),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (4, 1, 1, 1, 1, 1, 1, 1, 1, 9223372036854775808,
  '1.5', 1.25, 1.2345678, 0.1, '2024-02-29 12:00:00.5', '2024-02-29 12:00:00.5', '2024-02-29', '-00:00:01.250000', 2024,
  b'111111111111', 'medium', 'a,b,c', '"just a string"', REPEAT(x'ab', 60000), x'7f', 'x', REPEAT('é', 100), REPEAT('long text ', 6000));
INSERT INTO parent VALUES (1, 'one'), (2, 'two');
INSERT INTO child VALUES (10, 1), (11, NULL), (12, 2);
INSERT INTO loose VALUES (1, 'a'), (1, 'a'), (NULL, NULL);
INSERT INTO odd VALUES (1, 'fine', '2024-01-01'), (2, CONCAT('a', CHAR(0), 'b'), '2024-01-01'), (3, 'fine', '0000-01-01');
"#;

/// Creates the sample in the connection's database.
pub async fn create_sample(m: &mut mysql_async::Conn) -> Result<()> {
    m.query_drop("SET time_zone = '+00:00', sql_mode = ''").await?;
    for stmt in SAMPLE_SQL.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        m.query_drop(stmt).await?;
    }
    m.query_drop(SAMPLE_ROWS).await?;
    // 60,000 rows in 3 statements (keys up past 2^63) and 20,000 composite-key rows.
    for part in 0..3u64 {
        let values: Vec<String> = (part * 20_000..(part + 1) * 20_000)
            .map(|i| {
                format!(
                    "({}, {}, 'row {i}', '2024-01-01 00:00:00' + INTERVAL {i} SECOND)",
                    9_223_372_036_854_000_000u64 + i * 17,
                    i % 997
                )
            })
            .collect();
        m.query_drop(format!("INSERT INTO big VALUES {}", values.join(",")))
            .await?;
    }
    let values: Vec<String> = (0..20_000)
        .map(|i| format!("('{}', {i}, MD5({i}))", ["north", "south", "east", "west"][i % 4]))
        .collect();
    m.query_drop(format!("INSERT INTO pairs VALUES {}", values.join(",")))
        .await?;
    m.query_drop("ANALYZE TABLE big, pairs").await?;
    Ok(())
}

/// Round `r` of a deterministic write load on the sample: inserts with edge
/// values, updates (some changing the primary key), deletes, into keyed and
/// keyless tables, some in multi-statement transactions. The session keeps
/// the server's +05:30 zone, so TIMESTAMP values are converted on the way in.
pub async fn sample_writes(m: &mut mysql_async::Conn, r: u64) -> Result<()> {
    let base = 9_223_372_036_854_000_000u64;
    let mut stmts = vec![
        "SET sql_mode = ''".to_string(),
        format!(
            "INSERT INTO kinds (id, i8, u8, u32, u64, dec65, f, d, dt, ts, dd, tm, yr, b, e, s, j, bl, vb, c, vc, tx) VALUES
             ({id}, -{i8}, {u8}, 4294967295, 18446744073709551615 - {r}, '-{r}.000000000000000000000000000001', {f}, -1e300 / {r1},
              '2024-02-29 23:59:59.999999' + INTERVAL {r} SECOND, '2038-01-19 03:14:07' - INTERVAL {r} HOUR,
              IF({r} % 7 = 0, '0000-00-00', '1999-12-31'), '-{h}:00:00.5', {yr}, b'100000000001',
              ELT(1 + {r} % 3, 'small', 'medium', 'large'), IF({r} % 2 = 0, 'a,b', 'c'),
              JSON_OBJECT('r', {r}, 's', 'ü😀', 'a', JSON_ARRAY(1.5, NULL, TRUE)), UNHEX(REPEAT('00ff', {r} % 50)),
              x'00', 'c{r}', 'v{r} 😀', REPEAT('t\\\\\\n', {r} % 10))",
            id = 100 + r,
            i8 = r % 128,
            u8 = 255 - r % 256,
            r1 = r + 1,
            f = 1.25 * r as f64,
            h = r % 839,
            yr = 1901 + r % 255,
        ),
        format!("UPDATE kinds SET u64 = u64 - 1, tx = CONCAT(tx, 'x'), ts = '2001-01-01 00:00:00.25', e = 'large' WHERE id = {}", 99 + r),
        format!("UPDATE big SET label = 'upd {r}', k = k + 1 WHERE id = {}", base + (r * 131 % 60_000) * 17),
        format!("INSERT INTO big VALUES ({}, {r}, 'top {r}', '2030-01-01 00:00:00.001')", u64::MAX - r),
        format!("INSERT INTO pairs VALUES ('new', {r}, MD5({r}))"),
        format!("UPDATE pairs SET payload = 'changed {r}' WHERE region = 'south' AND n = {}", 4 * r + 1),
        format!("DELETE FROM pairs WHERE region = 'east' AND n = {}", 4 * r + 2),
        format!("INSERT INTO loose VALUES ({}, 'dup')", r % 3),
        format!("INSERT INTO parent VALUES ({}, 'p{r}')", 100 + r),
        format!("INSERT INTO child VALUES ({}, {})", 100 + r, 100 + r),
    ];
    if r.is_multiple_of(5) {
        // Primary key changes, in one transaction with other changes.
        stmts.push("START TRANSACTION".into());
        stmts.push(format!("UPDATE kinds SET id = id + 500 WHERE id = {}", 98 + r));
        stmts.push(format!(
            "UPDATE big SET id = id + 1 WHERE id = {}",
            base + (r * 977 % 60_000) * 17
        ));
        stmts.push(format!(
            "UPDATE pairs SET region = 'moved', n = {r} WHERE region = 'north' AND n = {}",
            4 * r
        ));
        stmts.push("COMMIT".into());
    }
    if r.is_multiple_of(3) {
        stmts.push(format!("DELETE FROM kinds WHERE id = {}", 97 + r));
        stmts.push(format!("DELETE FROM big WHERE id = {}", base + (r * 313 % 60_000) * 17));
        stmts.push(format!("DELETE FROM child WHERE id = {}", 99 + r));
        stmts.push(format!("DELETE FROM parent WHERE id = {}", 99 + r));
    }
    if r.is_multiple_of(2) {
        stmts.push(format!(
            "UPDATE loose SET b = CONCAT(b, '!') WHERE a = {} LIMIT 1",
            r % 3
        ));
    }
    if r.is_multiple_of(4) {
        stmts.push(format!(
            "DELETE FROM loose WHERE a = {} AND b = 'dup' LIMIT 1",
            (r + 1) % 3
        ));
    }
    for s in stmts {
        m.query_drop(&s).await.map_err(|e| anyhow::anyhow!("{s}: {e}"))?;
    }
    Ok(())
}
