//! Database endpoints as libpq URLs, and the rule that keeps secrets out of
//! the coordinator: an endpoint names *where* a password comes from
//! (`password_env=VAR`, `password_file=PATH`, else `PGPASSWORD` / `~/.pgpass`
//! on the worker), never the password itself. An `Endpoint` therefore holds
//! nothing secret and its `Display` is safe for logs, errors and Raft.

use crate::position::{Lsn, Position};
use std::fmt;
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum EndpointError {
    #[error("endpoint {0}: not a URL (expected postgres://user@host:port/dbname)")]
    NotAUrl(String),
    #[error("endpoint {0}: unsupported scheme '{1}' (supported: postgres, postgresql, mysql, mariadb)")]
    Scheme(String, String),
    #[error("endpoint {0}: inline passwords are not accepted; put the password in an environment variable and add ?password_env=VAR, or in a file and add ?password_file=PATH (PGPASSWORD and ~/.pgpass also work)")]
    InlinePassword(String),
    #[error("endpoint {0}: missing database name (postgres://user@host:port/dbname)")]
    NoDatabase(String),
    #[error("endpoint {0}: unknown parameter '{1}'")]
    UnknownParam(String, String),
    #[error("endpoint {0}: {1}")]
    Tls(String, String),
}

/// How a connection uses TLS: libpq's `sslmode` values, which MySQL's
/// `ssl-mode` maps onto (DISABLED, PREFERRED, REQUIRED, VERIFY_CA,
/// VERIFY_IDENTITY).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Plaintext only.
    Disable,
    /// Plaintext first; TLS if the server refuses plaintext.
    Allow,
    /// TLS if the server offers it, else plaintext; the certificate is not
    /// checked (as libpq and MySQL clients do by default).
    #[default]
    Prefer,
    /// TLS or nothing; the certificate is checked only against a root
    /// certificate given with it (libpq's rule).
    Require,
    /// TLS, the server's certificate chained to a trusted root.
    VerifyCa,
    /// As `VerifyCa`, and the certificate names the host connected to.
    VerifyFull,
}

impl TlsMode {
    /// The mode as the endpoint's engine spells it.
    pub fn name(self, engine: Engine) -> &'static str {
        match (engine, self) {
            (Engine::Postgres, TlsMode::Disable) => "disable",
            (Engine::Postgres, TlsMode::Allow) => "allow",
            (Engine::Postgres, TlsMode::Prefer) => "prefer",
            (Engine::Postgres, TlsMode::Require) => "require",
            (Engine::Postgres, TlsMode::VerifyCa) => "verify-ca",
            (Engine::Postgres, TlsMode::VerifyFull) => "verify-full",
            (Engine::Mysql, TlsMode::Disable) => "DISABLED",
            (Engine::Mysql, TlsMode::Allow | TlsMode::Prefer) => "PREFERRED",
            (Engine::Mysql, TlsMode::Require) => "REQUIRED",
            (Engine::Mysql, TlsMode::VerifyCa) => "VERIFY_CA",
            (Engine::Mysql, TlsMode::VerifyFull) => "VERIFY_IDENTITY",
        }
    }

    fn parse(engine: Engine, v: &str) -> Option<TlsMode> {
        [
            TlsMode::Disable,
            TlsMode::Allow,
            TlsMode::Prefer,
            TlsMode::Require,
            TlsMode::VerifyCa,
            TlsMode::VerifyFull,
        ]
        .into_iter()
        .find(|m| match engine {
            Engine::Postgres => m.name(engine) == v,
            Engine::Mysql => *m != TlsMode::Allow && m.name(engine).eq_ignore_ascii_case(v),
        })
    }

    /// Whether the connection fails rather than go without TLS.
    pub fn required(self) -> bool {
        matches!(self, TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull)
    }
}

/// An endpoint's TLS settings. Files are paths on the worker, read there
/// (like `password_file`): nothing here is secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tls {
    pub mode: TlsMode,
    /// PEM roots the server's certificate must chain to (`sslrootcert`,
    /// `ssl-ca`); without one, the verifying modes trust the public web
    /// PKI's roots.
    pub root_cert: Option<String>,
    /// A client certificate chain and its key, PEM (`sslcert`/`sslkey`,
    /// `ssl-cert`/`ssl-key`).
    pub cert: Option<String>,
    pub key: Option<String>,
}

impl Tls {
    /// Whether the server's certificate chain is checked: the verifying
    /// modes, and `require` given a root certificate (as libpq does).
    pub fn verifies_chain(&self) -> bool {
        matches!(self.mode, TlsMode::VerifyCa | TlsMode::VerifyFull)
            || (self.mode == TlsMode::Require && self.root_cert.is_some())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    #[default]
    Postgres,
    /// MySQL 8 and MariaDB 10.6+ (`mysql://` or `mariadb://`).
    Mysql,
}

/// Engine facts the engine-neutral control plane needs. The worker's
/// engine code lives behind its own boundary; these are the few the
/// coordinator and the CLI ask about.
impl Engine {
    /// The engine a URL scheme or `--target-engine` value names.
    pub fn from_name(name: &str) -> Option<Engine> {
        match name {
            "postgres" | "postgresql" => Some(Engine::Postgres),
            "mysql" | "mariadb" => Some(Engine::Mysql),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::Mysql => "mysql",
        }
    }

    /// The change log a source of this engine is read from, as status shows it.
    pub fn source_log(self) -> &'static str {
        match self {
            Engine::Postgres => "wal",
            Engine::Mysql => "binlog",
        }
    }

    /// Whether the source keeps a replication slot (and publications) per
    /// task, which `--slot-name` may name; a binlog is the server's.
    pub fn has_slots(self) -> bool {
        match self {
            Engine::Postgres => true,
            Engine::Mysql => false,
        }
    }

    /// Whether a target of this engine can fill a table it created in the
    /// same transaction frozen (PostgreSQL's `COPY ... FREEZE`), which makes
    /// loading such a table whole faster than in segments.
    pub fn copies_frozen(self) -> bool {
        match self {
            Engine::Postgres => true,
            Engine::Mysql => false,
        }
    }

    /// The engine's own spelling of the URL's TLS keys, as its clients take
    /// them: mode, root certificate, client certificate, client key.
    fn tls_keys(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Engine::Postgres => ("sslmode", "sslrootcert", "sslcert", "sslkey"),
            Engine::Mysql => ("ssl-mode", "ssl-ca", "ssl-cert", "ssl-key"),
        }
    }

    /// A source log position as users write it: PostgreSQL's `X/Y` LSN, or a
    /// binlog `file.NNNNNN:offset`.
    pub fn parse_position(self, s: &str) -> Result<Position, String> {
        let s = s.trim();
        match self {
            Engine::Postgres => s.parse::<Lsn>().map(Position::Wal),
            Engine::Mysql => s
                .rsplit_once(':')
                .and_then(|(file, off)| {
                    let seq = file.rsplit_once('.')?.1.parse::<u32>().ok()?;
                    Some(Position::binlog(seq, off.parse::<u64>().ok()?))
                })
                .ok_or_else(|| {
                    format!("'{s}' is not a binlog position (expected file:offset, e.g. mysql-bin.000003:1234)")
                }),
        }
    }
}

/// Where a worker finds the password.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordSource {
    /// `PGPASSWORD`, then `~/.pgpass`, then none.
    Default,
    Env(String),
    File(String),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    pub engine: Engine,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    pub password: PasswordSource,
    /// Absent in endpoints stored before TLS existed: the default, prefer.
    #[serde(default)]
    pub tls: Tls,
    pub application_name: Option<String>,
    /// `plaintext_password=allow`: a server that asks for the password in
    /// cleartext or as MD5 over a connection without TLS gets it. Off by
    /// default: such a server (or anyone on the path) learns the password.
    #[serde(default)]
    pub plaintext_password: bool,
}

/// A query key that carries a password under any spelling libpq or a MySQL
/// client might take (`password`, `PASSWORD`, `passwd`, `pwd`).
fn is_password_key(k: &str) -> bool {
    matches!(k.to_ascii_lowercase().as_str(), "password" | "passwd" | "pwd" | "pass")
}

/// Strips anything that could be a password from a URL-ish string, for error messages.
pub fn redact(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("REDACTED"));
            }
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let v = if is_password_key(&k) {
                        "REDACTED".to_string()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            if !pairs.is_empty() {
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        // Not a URL: show only the scheme-ish prefix, never the rest.
        Err(_) => match raw.find("://") {
            Some(i) => format!("{}://…", &raw[..i]),
            None => "<unparseable endpoint>".to_string(),
        },
    }
}

impl Endpoint {
    pub fn parse(raw: &str) -> Result<Endpoint, EndpointError> {
        let shown = redact(raw);
        let u = url::Url::parse(raw)
            .ok()
            // `postgres:x` (no `//`) has no host part: not an endpoint.
            .filter(|u| u.has_host())
            .ok_or_else(|| EndpointError::NotAUrl(shown.clone()))?;
        let engine = Engine::from_name(u.scheme())
            .ok_or_else(|| EndpointError::Scheme(shown.clone(), u.scheme().to_string()))?;
        if u.password().is_some() {
            return Err(EndpointError::InlinePassword(shown));
        }
        let mut password = PasswordSource::Default;
        let mut tls = Tls::default();
        let mut application_name = None;
        let mut plaintext_password = false;
        let (mode_key, ca_key, cert_key, key_key) = engine.tls_keys();
        for (k, v) in u.query_pairs() {
            match k.as_ref() {
                k if is_password_key(k) => return Err(EndpointError::InlinePassword(shown)),
                "password_env" => password = PasswordSource::Env(v.into_owned()),
                "password_file" => password = PasswordSource::File(v.into_owned()),
                "application_name" => application_name = Some(v.into_owned()),
                "plaintext_password" => {
                    plaintext_password = match v.as_ref() {
                        "allow" => true,
                        "refuse" => false,
                        other => {
                            return Err(EndpointError::Tls(
                                shown,
                                format!("plaintext_password={other} is not one of allow, refuse"),
                            ))
                        }
                    }
                }
                k if k == mode_key => {
                    tls.mode = TlsMode::parse(engine, &v).ok_or_else(|| {
                        let modes = match engine {
                            Engine::Postgres => "disable, allow, prefer, require, verify-ca, verify-full",
                            Engine::Mysql => "DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY",
                        };
                        EndpointError::Tls(shown.clone(), format!("{mode_key}={v} is not one of {modes}"))
                    })?
                }
                k if k == ca_key => tls.root_cert = Some(v.into_owned()),
                k if k == cert_key => tls.cert = Some(v.into_owned()),
                k if k == key_key => tls.key = Some(v.into_owned()),
                other => return Err(EndpointError::UnknownParam(shown, other.to_string())),
            }
        }
        if tls.cert.is_some() != tls.key.is_some() {
            return Err(EndpointError::Tls(
                shown,
                format!("a client certificate needs both {cert_key} and {key_key}"),
            ));
        }
        if tls.mode == TlsMode::Disable && (tls.root_cert.is_some() || tls.cert.is_some()) {
            return Err(EndpointError::Tls(
                shown,
                format!(
                    "{mode_key}={} contradicts the certificates given with it",
                    tls.mode.name(engine)
                ),
            ));
        }
        let dbname = percent_decode(u.path().trim_start_matches('/'));
        if dbname.is_empty() {
            return Err(EndpointError::NoDatabase(shown));
        }
        let user = if u.username().is_empty() {
            match engine {
                Engine::Postgres => std::env::var("PGUSER").unwrap_or_else(|_| "postgres".to_string()),
                Engine::Mysql => "root".to_string(),
            }
        } else {
            percent_decode(u.username())
        };
        Ok(Endpoint {
            engine,
            host: u.host_str().unwrap_or("localhost").to_string(),
            port: u.port().unwrap_or(match engine {
                Engine::Postgres => 5432,
                Engine::Mysql => 3306,
            }),
            user,
            dbname,
            password,
            tls,
            application_name,
            plaintext_password,
        })
    }

    /// The endpoint as a URL that parses back to it, with its secret
    /// reference and TLS keys (still nothing secret: names and paths).
    pub fn url(&self) -> String {
        let (mode_key, ca_key, cert_key, key_key) = self.engine.tls_keys();
        let mut q: Vec<(&str, String)> = vec![];
        match &self.password {
            PasswordSource::Default => {}
            PasswordSource::Env(v) => q.push(("password_env", v.clone())),
            PasswordSource::File(v) => q.push(("password_file", v.clone())),
        }
        if self.tls.mode != TlsMode::default() {
            q.push((mode_key, self.tls.mode.name(self.engine).to_string()));
        }
        for (k, v) in [
            (ca_key, &self.tls.root_cert),
            (cert_key, &self.tls.cert),
            (key_key, &self.tls.key),
        ] {
            if let Some(v) = v {
                q.push((k, v.clone()));
            }
        }
        if let Some(a) = &self.application_name {
            q.push(("application_name", a.clone()));
        }
        if self.plaintext_password {
            q.push(("plaintext_password", "allow".into()));
        }
        let mut out = self.to_string();
        for (i, (k, v)) in q.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            out.push_str(k);
            out.push('=');
            out.push_str(&percent_encode(v));
        }
        out
    }

    /// Whether the endpoint names a secret for the worker to read
    /// (`password_env` / `password_file`), rather than leaving it to
    /// authentication the client binds to the server itself (trust,
    /// certificates, `~/.pgpass`).
    pub fn names_secret(&self) -> bool {
        self.password != PasswordSource::Default
    }

    /// Whether `self` may use the secret `bound` was registered with: the same
    /// secret reference sent to the same server (engine, host, port) as the
    /// same user, over a transport no weaker (the same TLS settings and
    /// plaintext-password rule). Only the database and the application
    /// name may differ — neither changes who receives the password.
    pub fn uses_secret_of(&self, bound: &Endpoint) -> bool {
        self.names_secret()
            && (
                self.engine,
                &self.host,
                self.port,
                &self.user,
                &self.password,
                &self.tls,
                self.plaintext_password,
            ) == (
                bound.engine,
                &bound.host,
                bound.port,
                &bound.user,
                &bound.password,
                &bound.tls,
                bound.plaintext_password,
            )
    }
}

/// Decodes `%XX` escapes (invalid ones stay as they are).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl fmt::Display for Endpoint {
    /// Safe to log: an endpoint never holds a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.engine.name();
        // User and database percent-encoded, as they were given: the text
        // parses back to the same endpoint (a ':' in a user name would
        // otherwise read as a password, a control character be dropped).
        write!(
            f,
            "{scheme}://{}@{}:{}/{}",
            percent_encode(&self.user),
            self.host,
            self.port,
            percent_encode(&self.dbname)
        )
    }
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_escapes_decode_and_bad_ones_stay() {
        assert_eq!(percent_decode("task%20x%20not%20found"), "task x not found");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%a\u{e9}"), "%a\u{e9}");
    }

    #[test]
    fn positions_as_each_engine_writes_them() {
        assert_eq!(
            Engine::Postgres.parse_position(" 16/B374D848 ").unwrap(),
            Position::Wal(Lsn(0x16_B374_D848))
        );
        assert_eq!(
            Engine::Mysql.parse_position("mysql-bin.000003:1234").unwrap(),
            Position::binlog(3, 1234)
        );
        let e = Engine::Mysql.parse_position("0/16B3748").unwrap_err();
        assert!(e.contains("binlog position"), "{e}");
        assert!(Engine::Postgres.parse_position("mysql-bin.000003:1234").is_err());
        assert!(Engine::Postgres.has_slots() && !Engine::Mysql.has_slots());
    }

    #[test]
    fn parses_libpq_url() {
        let e = Endpoint::parse("postgres://app@db.example:6543/shop?password_env=SRC_PW").unwrap();
        assert_eq!(e.host, "db.example");
        assert_eq!(e.port, 6543);
        assert_eq!(e.user, "app");
        assert_eq!(e.dbname, "shop");
        assert_eq!(e.password, PasswordSource::Env("SRC_PW".into()));
        assert_eq!(e.to_string(), "postgres://app@db.example:6543/shop");
    }

    #[test]
    fn rejects_inline_password_without_echoing_it() {
        let err = Endpoint::parse("postgres://app:hunter2@h/db").unwrap_err();
        assert!(matches!(err, EndpointError::InlinePassword(_)));
        let msg = err.to_string();
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(msg.contains("password_env"), "{msg}");
        for key in ["password", "PASSWORD", "passwd", "Pwd"] {
            let err = Endpoint::parse(&format!("postgres://app@h/db?{key}=hunter2")).unwrap_err();
            assert!(matches!(err, EndpointError::InlinePassword(_)), "{key}: {err}");
            assert!(!err.to_string().contains("hunter2"), "{key}: {err}");
        }
    }

    #[test]
    fn rejects_other_garbage() {
        assert!(matches!(Endpoint::parse("nope"), Err(EndpointError::NotAUrl(_))));
        assert!(matches!(
            Endpoint::parse("oracle://u@h/db"),
            Err(EndpointError::Scheme(..))
        ));
        assert!(matches!(
            Endpoint::parse("postgres://u@h:5432"),
            Err(EndpointError::NoDatabase(_))
        ));
        assert!(matches!(
            Endpoint::parse("postgres://u@h/db?foo=1"),
            Err(EndpointError::UnknownParam(..))
        ));
    }

    #[test]
    fn parses_mysql_url() {
        let e = Endpoint::parse("mariadb://app@db:3307/shop?password_env=PW").unwrap();
        assert_eq!(e.engine, Engine::Mysql);
        assert_eq!((e.port, e.dbname.as_str()), (3307, "shop"));
        assert_eq!(e.to_string(), "mysql://app@db:3307/shop");
        assert_eq!(Endpoint::parse("mysql://h/db").unwrap().port, 3306);
    }

    #[test]
    fn tls_keys_in_each_engines_spelling() {
        let e =
            Endpoint::parse("postgres://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem&sslcert=/c.pem&sslkey=/k.pem")
                .unwrap();
        assert_eq!(e.tls.mode, TlsMode::VerifyFull);
        assert_eq!(e.tls.root_cert.as_deref(), Some("/ca.pem"));
        assert!(e.tls.verifies_chain());
        assert_eq!(Endpoint::parse("postgres://u@h/db").unwrap().tls.mode, TlsMode::Prefer);
        let m = Endpoint::parse("mysql://u@h/db?ssl-mode=verify_identity&ssl-ca=/ca.pem").unwrap();
        assert_eq!(m.tls.mode, TlsMode::VerifyFull);
        assert_eq!(m.tls.mode.name(Engine::Mysql), "VERIFY_IDENTITY");
        // require checks the chain only when given a root certificate.
        assert!(!Endpoint::parse("postgres://u@h/db?sslmode=require")
            .unwrap()
            .tls
            .verifies_chain());
        assert!(Endpoint::parse("postgres://u@h/db?sslmode=require&sslrootcert=/ca.pem")
            .unwrap()
            .tls
            .verifies_chain());

        for (url, says) in [
            (
                "postgres://u@h/db?sslmode=verify_full",
                "sslmode=verify_full is not one of disable",
            ),
            ("mysql://u@h/db?ssl-mode=allow", "ssl-mode=allow is not one of DISABLED"),
            ("postgres://u@h/db?sslcert=/c.pem", "needs both sslcert and sslkey"),
            ("mysql://u@h/db?ssl-key=/k.pem", "needs both ssl-cert and ssl-key"),
            (
                "postgres://u@h/db?sslmode=disable&sslrootcert=/ca.pem",
                "sslmode=disable contradicts",
            ),
        ] {
            let e = Endpoint::parse(url).unwrap_err().to_string();
            assert!(e.contains(says), "{url}: {e}");
        }
        // The other engine's key is not silently taken.
        assert!(matches!(
            Endpoint::parse("mysql://u@h/db?sslmode=require"),
            Err(EndpointError::UnknownParam(..))
        ));
    }

    #[test]
    fn url_round_trips_secret_references_and_tls() {
        for raw in [
            "postgres://app@db:5433/shop?password_env=SRC_PW&sslmode=verify-full&sslrootcert=/etc/ca%20dir/ca.pem",
            "mysql://r%3Aoot@db:3306/a%2Fb?password_file=/run/secrets/pw&ssl-mode=REQUIRED&plaintext_password=allow",
            "postgres://u@h:5432/db?application_name=x%26y",
        ] {
            let e = Endpoint::parse(raw).unwrap();
            assert_eq!(Endpoint::parse(&e.url()).unwrap(), e, "{raw} -> {}", e.url());
        }
        assert!(Endpoint::parse("postgres://u@h/db?plaintext_password=yes").is_err());
    }

    #[test]
    fn a_secret_is_bound_to_server_user_and_transport() {
        let bound = Endpoint::parse("postgres://app@db:5432/shop?password_env=PW&sslmode=verify-full").unwrap();
        let same_server_other_db =
            Endpoint::parse("postgres://app@db:5432/other?password_env=PW&sslmode=verify-full").unwrap();
        assert!(same_server_other_db.uses_secret_of(&bound));
        for foreign in [
            "postgres://app@evil:5432/shop?password_env=PW&sslmode=verify-full",
            "postgres://app@db:5433/shop?password_env=PW&sslmode=verify-full",
            "postgres://admin@db:5432/shop?password_env=PW&sslmode=verify-full",
            "postgres://app@db:5432/shop?password_env=PW",
            "postgres://app@db:5432/shop?password_env=PW&sslmode=verify-full&plaintext_password=allow",
            "postgres://app@db:5432/shop?password_env=OTHER&sslmode=verify-full",
            "mysql://app@db:5432/shop?password_env=PW&ssl-mode=VERIFY_IDENTITY",
        ] {
            assert!(!Endpoint::parse(foreign).unwrap().uses_secret_of(&bound), "{foreign}");
        }
        // No secret named: nothing to bind.
        let pgpass = Endpoint::parse("postgres://app@db:5432/shop?sslmode=verify-full").unwrap();
        assert!(!pgpass.names_secret() && !pgpass.uses_secret_of(&pgpass));
    }

    #[test]
    fn decodes_percent_escapes() {
        let e = Endpoint::parse("postgres://my%20user@h/my%2Ddb").unwrap();
        assert_eq!(e.user, "my user");
        assert_eq!(e.dbname, "my-db");
    }
}
