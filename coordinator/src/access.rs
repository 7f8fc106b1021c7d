//! The coordinator's gate: every gRPC call passes here before it reaches a
//! service, and is admitted only if its caller's role allows that method.
//!
//! Why this is enough: the gate is a tower layer in front of *all* routes,
//! so no service can be reached around it; the method table
//! ([`required`]) is keyed by the full gRPC path and an unknown path is
//! refused, so a method added later is closed until someone decides who
//! may call it. A caller is identified by a bearer token, whose digest must
//! match the bootstrap admin token or a token the admin API issued (the
//! Raft state holds digests only), or by a client certificate signed by the
//! cluster's CA — rustls verifies the chain during the handshake, so a
//! certificate from another CA never gets here — whose OU names its role.
//!
//! In laptop mode (loopback listener, no TLS, no tokens) everyone is
//! admitted, as before security existed; `server::Security` decides the mode.

use crate::raft::state_machine::SharedState;
use ferry_common::access::{token_digest, Role};
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::Status;

/// Who made a call, as the services and the audit log see it.
#[derive(Clone, Debug)]
pub struct Caller {
    pub who: String,
    pub role: Role,
}

/// The roles that may call a method (any one suffices, with
/// `Role::allows`'s ranking); `None` for paths nobody may call.
pub fn required(path: &str) -> Option<&'static [Role]> {
    // KEDA's external scaler API: capacity figures, read-only. KEDA
    // authenticates with a client certificate (its TriggerAuthentication).
    if let Some(method) = path.strip_prefix("/externalscaler.ExternalScaler/") {
        return matches!(method, "IsActive" | "StreamIsActive" | "GetMetricSpec" | "GetMetrics")
            .then_some(&[Role::Viewer, Role::Worker]);
    }
    let (service, method) = path.strip_prefix("/ferry.v1.")?.split_once('/')?;
    Some(match (service, method) {
        ("Admin", "ListTasks" | "ListEndpoints" | "Capacity") => &[Role::Viewer],
        // Workers and CLIs find the leader with it; nodes too.
        ("Admin", "ClusterStatus") => &[Role::Viewer, Role::Worker, Role::Node],
        // A node joins with its node certificate, or an admin adds it.
        ("Admin", "JoinCluster") => &[Role::Admin, Role::Node],
        // A worker validating during CDC waits for the stream's mark.
        ("Admin", "TaskStatus") => &[Role::Viewer, Role::Worker],
        ("Admin", "RequestMark") => &[Role::Operator, Role::Worker],
        (
            "Admin",
            "CreateTask" | "StartTask" | "StopTask" | "DeleteTask" | "Switch" | "ReloadTable" | "ResolveEndpoint"
            | "TestEndpoint",
        ) => &[Role::Operator],
        (
            "Admin",
            "CreateToken" | "ListTokens" | "RevokeToken" | "CreateEndpoint" | "DeleteEndpoint" | "RemoveNode",
        ) => &[Role::Admin],
        ("Worker", _) => &[Role::Worker],
        ("Raft", _) => &[Role::Node],
        _ => return None,
    })
}

/// Whether a call changes something (and so is audited when admitted).
fn mutates(path: &str) -> bool {
    required(path).is_some_and(|roles| roles.iter().any(|r| matches!(r, Role::Operator | Role::Admin)))
}

/// An append-only JSON-lines file: who did what, when, and how it ended.
pub struct Audit {
    file: Mutex<std::fs::File>,
}

impl Audit {
    pub fn open(path: PathBuf) -> std::io::Result<Audit> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(Audit { file: Mutex::new(file) })
    }

    fn record(&self, who: &str, role: Option<Role>, call: &str, object: Option<&str>, outcome: &str) {
        let (y, mo, d, h, mi, s) = ferry_common::civil_utc((ferry_common::now_ms() / 1000) as i64);
        let line = serde_json::json!({
            "time": format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
            "who": who,
            "role": role.map(Role::as_str),
            "call": call,
            "object": object,
            "outcome": outcome,
        });
        tracing::info!(target: "audit", who, call, object, outcome, "audit");
        let mut f = self.file.lock().expect("audit lock");
        if let Err(e) = writeln!(f, "{line}") {
            tracing::error!(error = %e, "cannot write the audit log");
        }
    }
}

/// The object an admitted call acted on (a task or token name), which a
/// service attaches to its response for the audit log.
#[derive(Clone, Debug)]
pub struct Object(pub String);

/// Attaches `object` to a response for the audit log.
pub fn audited<T>(mut resp: tonic::Response<T>, object: &str) -> tonic::Response<T> {
    resp.extensions_mut().insert(Object(object.to_string()));
    resp
}

/// The rules a coordinator enforces.
pub struct Gate {
    /// Laptop mode: every caller admitted as admin.
    pub open: bool,
    /// Digest of the bootstrap admin token (`--admin-token-file`).
    pub admin_digest: Option<String>,
    pub state: SharedState,
    pub audit: Arc<Audit>,
}

impl Gate {
    fn identify(&self, headers: &http::HeaderMap, ext: &http::Extensions) -> Result<Caller, Status> {
        if self.open {
            return Ok(Caller {
                who: "local".into(),
                role: Role::Admin,
            });
        }
        if let Some(h) = headers.get("authorization") {
            let token = h
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or_else(|| Status::unauthenticated("the authorization header is not 'Bearer <token>'"))?;
            let digest = token_digest(token);
            if self.admin_digest.as_deref() == Some(digest.as_str()) {
                return Ok(Caller {
                    who: "admin-token".into(),
                    role: Role::Admin,
                });
            }
            let s = self.state.read().expect("state lock");
            return s
                .tokens
                .iter()
                .find(|(_, t)| t.digest == digest)
                .map(|(name, t)| Caller {
                    who: format!("token:{name}"),
                    role: t.role,
                })
                .ok_or_else(|| Status::unauthenticated("unknown or revoked token"));
        }
        if let Some(cert) = ext
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|i| i.peer_certs())
            .and_then(|c| c.first().cloned())
        {
            return caller_of_certificate(&cert);
        }
        Err(Status::unauthenticated(
            "this coordinator requires credentials: a token (--token or FERRY_TOKEN) or a client certificate (--tls-cert/--tls-key)",
        ))
    }

    /// The caller of a request to `path`, if admitted; if not, who was
    /// refused (for the audit log) and why.
    pub fn admit(
        &self,
        path: &str,
        headers: &http::HeaderMap,
        ext: &http::Extensions,
    ) -> Result<Caller, (String, Status)> {
        let anonymous = |s: Status| ("anonymous".to_string(), s);
        let Some(roles) = required(path) else {
            return Err(anonymous(Status::permission_denied(format!("{path}: no such method"))));
        };
        let caller = self.identify(headers, ext).map_err(anonymous)?;
        // Laptop mode: every process on this machine is everyone.
        if self.open || roles.iter().any(|r| caller.role.allows(*r)) {
            Ok(caller)
        } else {
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            let status = Status::permission_denied(format!(
                "{} has role {}; {} needs {}",
                caller.who,
                caller.role,
                method_name(path),
                names.join(" or ")
            ));
            Err((caller.who, status))
        }
    }
}

impl Gate {
    /// A reader of the HTTP listener's `/metrics` and dashboard off
    /// loopback: a token of a viewer or above, as `Bearer` (Prometheus) or
    /// as the password of HTTP Basic (a browser asks for it; the user name
    /// is not read). The listener has no TLS, so no client certificate.
    /// Refusals say what to send, never what was sent.
    pub fn admit_reader(&self, headers: &http::HeaderMap) -> Result<Caller, Status> {
        let mut headers = headers.clone();
        let presented = headers.get("authorization").and_then(|h| h.to_str().ok());
        if let Some(token) = presented.and_then(ferry_common::access::basic_password) {
            let bearer = http::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| Status::unauthenticated("the Basic password is not a token"))?;
            headers.insert("authorization", bearer);
        }
        let caller = self.identify(&headers, &http::Extensions::new())?;
        if self.open || caller.role.allows(Role::Viewer) {
            Ok(caller)
        } else {
            Err(Status::permission_denied(format!(
                "{} has role {}; reading metrics needs viewer",
                caller.who, caller.role
            )))
        }
    }
}

fn method_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// A certificate's role is its subject's OU (`ferry certs init` writes
/// node, worker and admin certificates); who it is, its CN.
fn caller_of_certificate(der: &[u8]) -> Result<Caller, Status> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|_| Status::unauthenticated("the client certificate cannot be parsed"))?;
    let subject = cert.subject();
    let text = |a: &x509_parser::x509::AttributeTypeAndValue| a.as_str().ok().map(str::to_string);
    let cn = subject.iter_common_name().find_map(text).unwrap_or_default();
    let ou = subject.iter_organizational_unit().find_map(text).ok_or_else(|| {
        Status::permission_denied(format!(
            "client certificate '{cn}' has no OU naming its role (viewer, operator, admin, worker, node)"
        ))
    })?;
    let role = Role::parse(&ou).map_err(|e| Status::permission_denied(format!("client certificate '{cn}': {e}")))?;
    Ok(Caller {
        who: format!("cert:{cn}"),
        role,
    })
}

/// The gate as a tower layer over the gRPC routes.
#[derive(Clone)]
pub struct GateLayer(pub Arc<Gate>);

impl<S> tower::Layer<S> for GateLayer {
    type Service = GateService<S>;
    fn layer(&self, inner: S) -> GateService<S> {
        GateService {
            gate: self.0.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub struct GateService<S> {
    gate: Arc<Gate>,
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, RB> tower::Service<http::Request<B>> for GateService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = BoxFuture<Result<http::Response<RB>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_string();
        let gate = self.gate.clone();
        match gate.admit(&path, req.headers(), req.extensions()) {
            Err((who, status)) => {
                gate.audit.record(
                    &who,
                    None,
                    method_name(&path),
                    None,
                    &format!("refused: {}", status.message()),
                );
                Box::pin(async move { Ok(status.into_http()) })
            }
            Ok(caller) => {
                req.extensions_mut().insert(caller.clone());
                // The clone that was polled ready serves this call.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Box::pin(async move {
                    let resp = inner.call(req).await?;
                    if mutates(&path) && !gate.open {
                        let outcome = match resp.headers().get("grpc-status").and_then(|v| v.to_str().ok()) {
                            None | Some("0") => "ok".to_string(),
                            Some(code) => format!(
                                "error {code}: {}",
                                resp.headers()
                                    .get("grpc-message")
                                    .and_then(|v| v.to_str().ok())
                                    .map(ferry_common::endpoint::percent_decode)
                                    .unwrap_or_default()
                            ),
                        };
                        let object = resp.extensions().get::<Object>().map(|o| o.0.as_str());
                        gate.audit
                            .record(&caller.who, Some(caller.role), method_name(&path), object, &outcome);
                    }
                    Ok(resp)
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_has_a_rule_and_unknown_paths_none() {
        // Every rpc of every service in the contract, read from the .proto
        // itself: a method added there without a rule fails here.
        let proto = include_str!("../../proto/ferry.proto");
        let mut service = "";
        let mut n = 0;
        for line in proto.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("service ") {
                service = rest.split_whitespace().next().unwrap();
            } else if let Some(rest) = line.strip_prefix("rpc ") {
                let method = rest.split('(').next().unwrap().trim();
                let path = format!("/ferry.v1.{service}/{method}");
                assert!(required(&path).is_some(), "{path} has no rule");
                n += 1;
            }
        }
        assert!(n > 25, "read {n} methods from the proto");
        assert!(required("/ferry.v1.Admin/DropEverything").is_none());
        assert!(required("/grpc.reflection.v1.ServerReflection/Info").is_none());
        assert_eq!(required("/ferry.v1.Worker/PullAssignment"), Some(&[Role::Worker][..]));
        assert!(mutates("/ferry.v1.Admin/CreateTask") && !mutates("/ferry.v1.Admin/TaskStatus"));
    }

    fn gate(open: bool) -> (Gate, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let mut state = crate::state::State::default();
        state.tokens.insert(
            "w".into(),
            crate::state::TokenRecord {
                role: Role::Worker,
                digest: token_digest("worker-secret"),
                created_ms: 0,
            },
        );
        let gate = Gate {
            open,
            admin_digest: Some(token_digest("admin-secret")),
            state: Arc::new(std::sync::RwLock::new(state)),
            audit: Arc::new(Audit::open(dir.path().join("audit.log")).unwrap()),
        };
        (gate, dir)
    }

    fn bearer(token: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert("authorization", format!("Bearer {token}").parse().unwrap());
        h
    }

    #[test]
    fn laptop_mode_admits_every_service_and_secured_mode_by_role() {
        let ext = http::Extensions::new();
        let none = http::HeaderMap::new();
        let (open, _d) = gate(true);
        for path in [
            "/ferry.v1.Worker/Register",
            "/ferry.v1.Raft/Vote",
            "/ferry.v1.Admin/CreateTask",
        ] {
            assert!(open.admit(path, &none, &ext).is_ok(), "{path}");
        }
        assert!(open.admit("/ferry.v1.Admin/Nope", &none, &ext).is_err());

        let (secured, _d) = gate(false);
        let e = secured.admit("/ferry.v1.Admin/ListTasks", &none, &ext).unwrap_err().1;
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        let admin = bearer("admin-secret");
        assert!(secured.admit("/ferry.v1.Admin/CreateToken", &admin, &ext).is_ok());
        assert!(secured.admit("/ferry.v1.Worker/Register", &admin, &ext).is_err());
        let worker = bearer("worker-secret");
        assert!(secured.admit("/ferry.v1.Worker/PullAssignment", &worker, &ext).is_ok());
        assert!(secured.admit("/ferry.v1.Admin/TaskStatus", &worker, &ext).is_ok());
        let e = secured.admit("/ferry.v1.Admin/StartTask", &worker, &ext).unwrap_err().1;
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        assert!(
            e.message()
                .contains("token:w has role worker; StartTask needs operator"),
            "{e}"
        );
        assert!(secured.admit("/ferry.v1.Raft/AppendEntries", &worker, &ext).is_err());
        let e = secured
            .admit("/ferry.v1.Admin/ListTasks", &bearer("guess"), &ext)
            .unwrap_err()
            .1;
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
    }
}
