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
    pub sslmode: Option<String>,
    pub application_name: Option<String>,
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
                    let v = if k == "password" {
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
        let u = url::Url::parse(raw).map_err(|_| EndpointError::NotAUrl(shown.clone()))?;
        let engine = Engine::from_name(u.scheme())
            .ok_or_else(|| EndpointError::Scheme(shown.clone(), u.scheme().to_string()))?;
        if u.password().is_some() {
            return Err(EndpointError::InlinePassword(shown));
        }
        let mut password = PasswordSource::Default;
        let mut sslmode = None;
        let mut application_name = None;
        for (k, v) in u.query_pairs() {
            match k.as_ref() {
                "password" => return Err(EndpointError::InlinePassword(shown)),
                "password_env" => password = PasswordSource::Env(v.into_owned()),
                "password_file" => password = PasswordSource::File(v.into_owned()),
                "sslmode" => sslmode = Some(v.into_owned()),
                "application_name" => application_name = Some(v.into_owned()),
                other => return Err(EndpointError::UnknownParam(shown, other.to_string())),
            }
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
            sslmode,
            application_name,
        })
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
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
        write!(
            f,
            "{scheme}://{}@{}:{}/{}",
            self.user, self.host, self.port, self.dbname
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let err = Endpoint::parse("postgres://app@h/db?password=hunter2").unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
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
    fn decodes_percent_escapes() {
        let e = Endpoint::parse("postgres://my%20user@h/my%2Ddb").unwrap();
        assert_eq!(e.user, "my user");
        assert_eq!(e.dbname, "my-db");
    }
}
