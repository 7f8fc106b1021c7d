//! Who may do what on a coordinator, and how a client (the CLI, a worker,
//! another coordinator) proves who it is.
//!
//! A caller is identified by a bearer token (`authorization: Bearer T`) or by
//! a client certificate from the cluster's CA; either maps to one [`Role`].
//! The coordinator stores only a token's SHA-256 digest ([`token_digest`]):
//! tokens are 256 random bits, so a plain digest cannot be reversed and a
//! leaked store grants nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// What a caller may do. `Viewer < Operator < Admin` for the admin API;
/// `Worker` and `Node` are separate: a worker token pulls assignments and
/// can do nothing an operator can, a node certificate speaks Raft only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
    Worker,
    Node,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Viewer, Role::Operator, Role::Admin, Role::Worker, Role::Node];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
            Role::Worker => "worker",
            Role::Node => "node",
        }
    }

    pub fn parse(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role '{s}' (viewer, operator, admin, worker or node)"))
    }

    /// Whether a caller with this role may do what `needed` allows.
    pub fn allows(self, needed: Role) -> bool {
        let rank = |r: Role| match r {
            Role::Viewer => Some(0),
            Role::Operator => Some(1),
            Role::Admin => Some(2),
            Role::Worker | Role::Node => None,
        };
        match (rank(self), rank(needed)) {
            (Some(have), Some(need)) => have >= need,
            _ => self == needed,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The digest a coordinator keeps of a token: lowercase hex SHA-256.
pub fn token_digest(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.trim().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The token an `authorization` header carries: `Bearer TOKEN`, or
/// `Basic` with the token as the password (what a browser sends for a
/// page that asks; the user name is not read).
pub fn presented_token(header: &str) -> Option<String> {
    if let Some(t) = header.strip_prefix("Bearer ") {
        return Some(t.trim().to_string());
    }
    basic_password(header)
}

/// The password of a `Basic` authorization header.
pub fn basic_password(header: &str) -> Option<String> {
    let raw = base64_decode(header.strip_prefix("Basic ")?.trim())?;
    let pair = String::from_utf8(raw).ok()?;
    pair.split_once(':').map(|(_, password)| password.to_string())
}

/// Standard base64 (with or without padding); None if it is not.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.trim_end_matches('=').bytes() {
        acc = (acc << 6) | value(c)? as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// A new token for `role`: the role in clear (so a reader of a config file
/// knows what it grants) and 256 random bits.
pub fn new_token(role: Role) -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("ferry-{role}-{hex}")
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("coordinator address '{0}' is not a valid URL")]
    Url(String),
    #[error("reading {what} {path}: {cause}")]
    File {
        what: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
    #[error("TLS to the coordinator at {url}: {cause}")]
    Tls { url: String, cause: String },
    #[error("cannot reach the coordinator at {url}: {cause}")]
    Unreachable { url: String, cause: String },
}

/// How a client reaches a coordinator: its URL (`https://` for TLS), a
/// bearer token, the CA that signed the coordinator's certificate, and an
/// optional client certificate.
#[derive(Clone, Debug, Default)]
pub struct ClientLink {
    pub url: String,
    pub token: Option<String>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// Adds the bearer token to every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A channel to a coordinator (the leader, among several URLs: see
/// [`crate::leader`]) that carries the caller's credentials.
pub type Link = InterceptedService<crate::leader::Leader, Bearer>;

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, LinkError> {
    std::fs::read(path).map_err(|cause| LinkError::File {
        what,
        path: path.to_path_buf(),
        cause,
    })
}

/// The flags every client of a coordinator takes (the CLI's commands and
/// `ferry-worker`). The token is best passed as `FERRY_TOKEN` or a file:
/// a flag's value is visible in the process list.
#[derive(clap::Args, Clone, Debug)]
pub struct LinkArgs {
    /// The coordinator: http://HOST:PORT, or https:// for TLS; several
    /// nodes of a cluster comma-separated (calls go to the leader).
    #[arg(long, env = "FERRY_COORDINATOR", default_value = crate::DEFAULT_COORDINATOR, global = true)]
    pub coordinator: String,
    /// Bearer token (a coordinator outside laptop mode requires one, or a
    /// client certificate).
    #[arg(long, env = "FERRY_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// File holding the token.
    #[arg(long, env = "FERRY_TOKEN_FILE", global = true, conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// CA certificate that signed the coordinator's (PEM).
    #[arg(long, env = "FERRY_TLS_CA", global = true)]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM), its role in its OU.
    #[arg(long, env = "FERRY_TLS_CERT", global = true)]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, env = "FERRY_TLS_KEY", global = true)]
    pub tls_key: Option<PathBuf>,
}

impl LinkArgs {
    pub fn link(&self) -> Result<ClientLink, LinkError> {
        let token = match (&self.token, &self.token_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(f)) => Some(String::from_utf8_lossy(&read(f, "token file")?).trim().to_string()),
            (None, None) => None,
        };
        Ok(ClientLink {
            url: self.coordinator.clone(),
            token,
            ca: self.tls_ca.clone(),
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
        })
    }
}

impl ClientLink {
    pub fn new(url: impl Into<String>) -> ClientLink {
        ClientLink {
            url: url.into(),
            ..Default::default()
        }
    }

    fn bearer(&self) -> Result<Bearer, LinkError> {
        match self.token.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            None => Ok(Bearer(None)),
            Some(t) => MetadataValue::try_from(format!("Bearer {t}"))
                .map(|v| Bearer(Some(v)))
                .map_err(|_| LinkError::Config("the token contains characters a header cannot carry".into())),
        }
    }

    fn tls(&self) -> Result<Option<ClientTlsConfig>, LinkError> {
        let https = self.url.starts_with("https://");
        if !https {
            if self.ca.is_some() || self.cert.is_some() {
                return Err(LinkError::Config(format!(
                    "TLS files were given but the coordinator address {} is not https://",
                    self.url
                )));
            }
            return Ok(None);
        }
        let mut cfg = ClientTlsConfig::new();
        cfg = match &self.ca {
            Some(ca) => cfg.ca_certificate(Certificate::from_pem(read(ca, "CA certificate")?)),
            None => cfg.with_webpki_roots(),
        };
        match (&self.cert, &self.key) {
            (Some(c), Some(k)) => {
                cfg = cfg.identity(Identity::from_pem(
                    read(c, "client certificate")?,
                    read(k, "client key")?,
                ))
            }
            (None, None) => {}
            _ => {
                return Err(LinkError::Config(
                    "a client certificate needs both --tls-cert and --tls-key".into(),
                ))
            }
        }
        Ok(Some(cfg))
    }

    /// The coordinator URLs given (`URL,URL,...`).
    fn urls(&self) -> Vec<String> {
        self.url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// This link to one of its URLs.
    pub fn at(&self, url: &str) -> ClientLink {
        ClientLink {
            url: url.to_string(),
            ..self.clone()
        }
    }

    /// Follows the leader among this link's URLs, starting at `first`.
    fn leader(
        &self,
        first: Channel,
        connect_timeout: Duration,
        call_timeout: Option<Duration>,
    ) -> crate::leader::Leader {
        let me = self.clone();
        crate::leader::Leader::new(
            self.urls(),
            first,
            Box::new(move |url| {
                let mut ep = me.at(url).endpoint()?.connect_timeout(connect_timeout);
                if let Some(t) = call_timeout {
                    ep = ep.timeout(t);
                }
                Ok(ep.connect_lazy())
            }),
        )
    }

    fn endpoint(&self) -> Result<tonic::transport::Endpoint, LinkError> {
        let url = self.urls().into_iter().next().unwrap_or_default();
        let mut ep = Channel::from_shared(url.clone()).map_err(|_| LinkError::Url(url.clone()))?;
        if let Some(tls) = self.tls()? {
            ep = ep.tls_config(tls).map_err(|e| LinkError::Tls {
                url: self.url.clone(),
                cause: e.to_string(),
            })?;
        }
        Ok(ep)
    }

    /// Connects now (TLS handshake included) to the first URL.
    pub async fn connect(&self, timeout: Duration) -> Result<Link, LinkError> {
        let bearer = self.bearer()?;
        let ch = self
            .endpoint()?
            .connect_timeout(timeout)
            .connect()
            .await
            .map_err(|e| LinkError::Unreachable {
                url: self.url.clone(),
                cause: crate::error_chain(&e),
            })?;
        Ok(InterceptedService::new(self.leader(ch, timeout, None), bearer))
    }

    /// A channel that connects on first use (and reconnects), following
    /// the leader among the URLs.
    pub fn connect_lazy(&self, connect_timeout: Duration, call_timeout: Duration) -> Result<Link, LinkError> {
        let bearer = self.bearer()?;
        let ch = self
            .endpoint()?
            .connect_timeout(connect_timeout)
            .timeout(call_timeout)
            .connect_lazy();
        Ok(InterceptedService::new(
            self.leader(ch, connect_timeout, Some(call_timeout)),
            bearer,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_rank_for_the_admin_api_only() {
        assert!(Role::Admin.allows(Role::Operator));
        assert!(Role::Operator.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::Operator));
        assert!(!Role::Worker.allows(Role::Viewer));
        assert!(!Role::Admin.allows(Role::Worker));
        assert!(!Role::Admin.allows(Role::Node));
        assert!(Role::Worker.allows(Role::Worker));
        assert_eq!(Role::parse("operator"), Ok(Role::Operator));
        assert!(Role::parse("root").is_err());
    }

    #[test]
    fn tokens_are_random_and_digests_stable() {
        let (a, b) = (new_token(Role::Viewer), new_token(Role::Viewer));
        assert_ne!(a, b);
        assert!(a.starts_with("ferry-viewer-") && a.len() == "ferry-viewer-".len() + 64);
        assert_eq!(token_digest(&a), token_digest(&format!(" {a}\n")));
        assert_ne!(token_digest(&a), token_digest(&b));
        assert_eq!(token_digest("abc").len(), 64);
    }

    #[test]
    fn tokens_come_as_bearer_or_as_a_basic_password() {
        assert_eq!(
            presented_token("Bearer ferry-viewer-xyz").as_deref(),
            Some("ferry-viewer-xyz")
        );
        // base64("viewer:ferry-viewer-xyz")
        assert_eq!(
            presented_token("Basic dmlld2VyOmZlcnJ5LXZpZXdlci14eXo=").as_deref(),
            Some("ferry-viewer-xyz")
        );
        assert_eq!(base64_decode("YQ").as_deref(), Some(&b"a"[..]));
        assert_eq!(presented_token("Basic not base64!"), None);
        assert_eq!(presented_token("Digest x"), None);
    }
}
