//! A PostgreSQL connection in logical replication mode (`replication=database`).
//!
//! tokio-postgres has no replication mode (no CopyBoth), so this is a small
//! client on `postgres-protocol`: startup and authentication (trust,
//! cleartext, MD5, SCRAM-SHA-256), simple queries for the replication
//! commands (`CREATE_REPLICATION_SLOT`, `IDENTIFY_SYSTEM`), and the CopyBoth
//! stream that `START_REPLICATION` opens: XLogData and keepalives in, standby
//! status updates out.
//!
//! Reads go through one buffer and are cancel-safe: a `recv` dropped by a
//! `select!` loses nothing, because bytes are only consumed once a whole
//! message has arrived.

use crate::engine::postgres::connect::password;
use crate::engine::ConnectorError;
use bytes::{Buf, BufMut, BytesMut};
use fallible_iterator::FallibleIterator;
use ferry_common::endpoint::{Endpoint, TlsMode};
use ferry_common::position::Lsn;
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::{backend, frontend};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

trait Socket: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Socket for T {}

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// PostgreSQL timestamps (µs since 2000-01-01) to Unix milliseconds.
pub fn pg_time_to_unix_ms(t: i64) -> u64 {
    ((t + PG_EPOCH_OFFSET_US) / 1000).max(0) as u64
}

fn now_pg_us() -> i64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    d.as_micros() as i64 - PG_EPOCH_OFFSET_US
}

/// What the server sends inside the CopyBoth stream.
#[derive(Debug)]
pub enum ReplicationMessage {
    /// A pgoutput message.
    XLogData { data: bytes::Bytes },
    /// `wal_end` is the position the walsender has processed up to.
    Keepalive { wal_end: Lsn, reply_requested: bool },
}

pub struct ReplicationClient {
    sock: Box<dyn Socket>,
    buf: BytesMut,
    what: String,
    /// TLS, or a Unix socket (no network path to read): a password may be
    /// sent as the server asks (see `postgres::cleartext`).
    private: bool,
}

/// A row of a simple-query result, as text.
pub type Row = Vec<Option<String>>;

/// Output settings of the walsender session.
const SESSION_OPTIONS: &str =
    "-c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=postgres -c extra_float_digits=1 -c bytea_output=hex -c lc_monetary=C";

impl ReplicationClient {
    pub async fn connect(ep: &Endpoint) -> Result<ReplicationClient, ConnectorError> {
        match ep.tls.mode {
            // libpq's allow: plaintext first, TLS only if the server refuses it.
            TlsMode::Allow => match Self::connect_with(ep, false).await {
                Err(ConnectorError::Definite(_)) => Self::connect_with(ep, true).await,
                other => other,
            },
            TlsMode::Disable => Self::connect_with(ep, false).await,
            _ => Self::connect_with(ep, true).await,
        }
    }

    /// Connects, asking for TLS first when `tls` (a server that declines
    /// is used in plaintext unless the endpoint's mode requires TLS).
    async fn connect_with(ep: &Endpoint, tls: bool) -> Result<ReplicationClient, ConnectorError> {
        let what = format!("replication connection to {ep}");
        let io = |e: std::io::Error| ConnectorError::Transient(format!("replication connection to {ep}: {e}"));
        let mut private = true;
        let sock: Box<dyn Socket> = if ep.host.starts_with('/') {
            let path = format!("{}/.s.PGSQL.{}", ep.host, ep.port);
            Box::new(
                tokio::time::timeout(Duration::from_secs(10), tokio::net::UnixStream::connect(path))
                    .await
                    .map_err(|_| ConnectorError::Transient(format!("{what}: timed out")))?
                    .map_err(io)?,
            )
        } else {
            let mut s = tokio::time::timeout(
                Duration::from_secs(10),
                tokio::net::TcpStream::connect((ep.host.as_str(), ep.port)),
            )
            .await
            .map_err(|_| ConnectorError::Transient(format!("{what}: timed out")))?
            .map_err(io)?;
            s.set_nodelay(true).map_err(io)?;
            if tls && Self::server_takes_tls(&mut s, ep).await.map_err(io)? {
                let config = crate::engine::tls::pg_client_config(ep)?;
                let name = rustls::pki_types::ServerName::try_from(ep.host.clone())
                    .map_err(|e| ConnectorError::Definite(format!("{what}: host name for TLS: {e}")))?;
                let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
                    .connect(name, s)
                    .await
                    .map_err(|e| {
                        ConnectorError::Definite(format!(
                            "{what} (sslmode={}): TLS handshake: {e}",
                            ep.tls.mode.name(ep.engine)
                        ))
                    })?;
                Box::new(stream)
            } else if ep.tls.mode.required() {
                return Err(ConnectorError::Definite(format!(
                    "{what} (sslmode={}): the server does not support TLS",
                    ep.tls.mode.name(ep.engine)
                )));
            } else {
                private = false;
                Box::new(s)
            }
        };
        let mut c = ReplicationClient {
            sock,
            buf: BytesMut::with_capacity(64 * 1024),
            what,
            private,
        };
        let app = ep.application_name.clone().unwrap_or_else(|| "ferry".into());
        let params = [
            ("user", ep.user.as_str()),
            ("database", ep.dbname.as_str()),
            ("replication", "database"),
            ("application_name", app.as_str()),
            ("client_encoding", "UTF8"),
            // pgoutput writes values with this session's output settings:
            // fixed, so a value's text has one form (the same the full
            // load's reads use; see `postgres/read`).
            ("options", SESSION_OPTIONS),
        ];
        let mut out = BytesMut::new();
        frontend::startup_message(params.iter().copied(), &mut out).map_err(io)?;
        c.send(&out).await?;
        c.authenticate(ep).await?;
        // ParameterStatus, BackendKeyData, then ReadyForQuery.
        loop {
            match c.next_backend().await? {
                backend::Message::ReadyForQuery(_) => return Ok(c),
                backend::Message::ErrorResponse(e) => return Err(c.server_error("startup", &e)),
                _ => {}
            }
        }
    }

    /// Sends SSLRequest; true when the server answers that it will speak TLS.
    async fn server_takes_tls(s: &mut tokio::net::TcpStream, ep: &Endpoint) -> std::io::Result<bool> {
        let mut out = BytesMut::new();
        frontend::ssl_request(&mut out);
        s.write_all(&out).await?;
        match s.read_u8().await? {
            b'S' => Ok(true),
            b'N' => Ok(false),
            other => Err(std::io::Error::other(format!(
                "{ep}: unexpected answer {other:#x} to the TLS request"
            ))),
        }
    }

    async fn authenticate(&mut self, ep: &Endpoint) -> Result<(), ConnectorError> {
        let io = |w: &str, e: std::io::Error| ConnectorError::Definite(format!("{w}: {e}"));
        let need_password = || -> Result<String, ConnectorError> {
            password(ep)?.ok_or_else(|| {
                ConnectorError::Definite(format!(
                    "{ep}: the server asks for a password; pass one with password_env=VAR or password_file=PATH"
                ))
            })
        };
        let mut scram: Option<sasl::ScramSha256> = None;
        let what = self.what.clone();
        let refuse = |how: &str| {
            ConnectorError::Definite(format!(
                "{what}: the server asked for the password {how} over a connection without TLS; Ferry refused to send it \
                 (use sslmode=require or stronger, have the server ask for scram-sha-256, \
                 or add plaintext_password=allow to the endpoint)"
            ))
        };
        let plaintext_ok = self.private || ep.plaintext_password;
        loop {
            let mut out = BytesMut::new();
            match self.next_backend().await? {
                backend::Message::AuthenticationOk => return Ok(()),
                backend::Message::AuthenticationCleartextPassword if !plaintext_ok => {
                    return Err(refuse("in cleartext"))
                }
                backend::Message::AuthenticationMd5Password(_) if !plaintext_ok => return Err(refuse("as MD5")),
                backend::Message::AuthenticationCleartextPassword => {
                    frontend::password_message(need_password()?.as_bytes(), &mut out).map_err(|e| io(&self.what, e))?;
                }
                backend::Message::AuthenticationMd5Password(b) => {
                    let h = md5_hash(ep.user.as_bytes(), need_password()?.as_bytes(), b.salt());
                    frontend::password_message(h.as_bytes(), &mut out).map_err(|e| io(&self.what, e))?;
                }
                backend::Message::AuthenticationSasl(b) => {
                    let mut mechs = b.mechanisms();
                    let mut ok = false;
                    while let Some(m) = mechs.next().map_err(|e| io(&self.what, e))? {
                        ok |= m == sasl::SCRAM_SHA_256;
                    }
                    if !ok {
                        return Err(ConnectorError::Definite(format!(
                            "{}: server offers no SASL mechanism Ferry supports (SCRAM-SHA-256)",
                            self.what
                        )));
                    }
                    let s = sasl::ScramSha256::new(need_password()?.as_bytes(), sasl::ChannelBinding::unsupported());
                    frontend::sasl_initial_response(sasl::SCRAM_SHA_256, s.message(), &mut out)
                        .map_err(|e| io(&self.what, e))?;
                    scram = Some(s);
                }
                backend::Message::AuthenticationSaslContinue(b) => {
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| self.protocol("SASL continue before start"))?;
                    s.update(b.data()).map_err(|e| io(&self.what, e))?;
                    frontend::sasl_response(s.message(), &mut out).map_err(|e| io(&self.what, e))?;
                }
                backend::Message::AuthenticationSaslFinal(b) => {
                    let s = scram.as_mut().ok_or_else(|| self.protocol("SASL final before start"))?;
                    s.finish(b.data()).map_err(|e| io(&self.what, e))?;
                    continue;
                }
                backend::Message::ErrorResponse(e) => return Err(self.server_error("authentication", &e)),
                _ => {
                    return Err(ConnectorError::Definite(format!(
                        "{}: unsupported authentication method requested by the server",
                        self.what
                    )))
                }
            }
            self.send(&out).await?;
        }
    }

    fn protocol(&self, msg: &str) -> ConnectorError {
        ConnectorError::Transient(format!("{}: protocol error: {msg}", self.what))
    }

    fn server_error(&self, doing: &str, e: &backend::ErrorResponseBody) -> ConnectorError {
        let mut code = String::new();
        let mut msg = String::new();
        let mut detail = String::new();
        let mut fields = e.fields();
        while let Ok(Some(f)) = fields.next() {
            let v = String::from_utf8_lossy(f.value_bytes()).into_owned();
            match f.type_() {
                b'C' => code = v,
                b'M' => msg = v,
                b'D' => detail = format!(" ({v})"),
                _ => {}
            }
        }
        let text = format!("{} ({doing}): {msg}{detail}", self.what);
        // Connection, resources, operator intervention (shutdown), and
        // "object in use" (a slot still held by a dying session) pass.
        let transient = ["08", "40", "53", "57"].iter().any(|p| code.starts_with(p)) || code == "55006";
        if transient {
            ConnectorError::Transient(text)
        } else {
            ConnectorError::Definite(text)
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), ConnectorError> {
        self.sock
            .write_all(bytes)
            .await
            .map_err(|e| ConnectorError::Transient(format!("{}: {e}", self.what)))
    }

    /// Reads into the buffer; cancel-safe.
    async fn fill(&mut self) -> Result<(), ConnectorError> {
        // Room for the rest of the message being read, at once: growing by
        // doubling would hold up to twice a large one (a LOB value).
        let missing = match self.buf.get(1..5) {
            Some(l) => (1 + u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize).saturating_sub(self.buf.len()),
            None => 0,
        };
        self.buf.reserve(missing.max(64 * 1024));
        let n = self
            .sock
            .read_buf(&mut self.buf)
            .await
            .map_err(|e| ConnectorError::Transient(format!("{}: {e}", self.what)))?;
        if n == 0 {
            return Err(ConnectorError::Transient(format!(
                "{}: server closed the connection",
                self.what
            )));
        }
        Ok(())
    }

    /// Length (tag byte included) of the whole message at the head of the
    /// buffer, once it has all arrived.
    fn complete_frame(&self) -> Option<usize> {
        if self.buf.len() < 5 {
            return None;
        }
        let len = 1 + u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        (self.buf.len() >= len).then_some(len)
    }

    /// Whether a whole message of type `tag` is buffered; takes its body.
    fn take_raw(&mut self, tag: u8) -> Option<bytes::Bytes> {
        if self.buf.first() != Some(&tag) {
            return None;
        }
        let len = self.complete_frame()?;
        let mut m = self.buf.split_to(len);
        m.advance(5);
        Some(m.freeze())
    }

    async fn next_backend(&mut self) -> Result<backend::Message, ConnectorError> {
        loop {
            if self.buf.first() == Some(&b'W') {
                return Err(self.protocol("unexpected CopyBothResponse"));
            }
            match backend::Message::parse(&mut self.buf) {
                Ok(Some(backend::Message::NoticeResponse(_))) => continue,
                Ok(Some(m)) => return Ok(m),
                Ok(None) => self.fill().await?,
                Err(e) => return Err(self.protocol(&e.to_string())),
            }
        }
    }

    /// Runs a replication command (or plain SQL) and returns its rows as text.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<Row>, ConnectorError> {
        let mut out = BytesMut::new();
        frontend::query(sql, &mut out).map_err(|e| self.protocol(&e.to_string()))?;
        self.send(&out).await?;
        let mut rows = vec![];
        let mut error = None;
        loop {
            match self.next_backend().await? {
                backend::Message::DataRow(r) => {
                    let buf = r.buffer();
                    let mut row = vec![];
                    let mut ranges = r.ranges();
                    while let Some(range) = ranges.next().map_err(|e| self.protocol(&e.to_string()))? {
                        row.push(range.map(|r| String::from_utf8_lossy(&buf[r]).into_owned()));
                    }
                    rows.push(row);
                }
                backend::Message::ErrorResponse(e) => error = Some(self.server_error(sql_head(sql), &e)),
                backend::Message::ReadyForQuery(_) => break,
                _ => {}
            }
        }
        match error {
            Some(e) => Err(e),
            None => Ok(rows),
        }
    }

    /// Sends `START_REPLICATION ...` and waits for the CopyBoth stream.
    pub async fn start_replication(&mut self, sql: &str) -> Result<(), ConnectorError> {
        let mut out = BytesMut::new();
        frontend::query(sql, &mut out).map_err(|e| self.protocol(&e.to_string()))?;
        self.send(&out).await?;
        loop {
            if self.take_raw(b'W').is_some() {
                return Ok(());
            }
            if self.buf.first() == Some(&b'W') {
                self.fill().await?;
                continue;
            }
            match backend::Message::parse(&mut self.buf) {
                Ok(Some(backend::Message::ErrorResponse(e))) => {
                    let err = self.server_error("START_REPLICATION", &e);
                    return Err(err);
                }
                Ok(Some(_)) => {}
                Ok(None) => self.fill().await?,
                Err(e) => return Err(self.protocol(&e.to_string())),
            }
        }
    }

    /// The next message of the replication stream. Cancel-safe.
    pub async fn recv(&mut self) -> Result<ReplicationMessage, ConnectorError> {
        loop {
            if let Some(mut body) = self.take_raw(b'd') {
                if body.is_empty() {
                    return Err(self.protocol("empty CopyData"));
                }
                let kind = body.get_u8();
                return match kind {
                    b'w' if body.len() >= 24 => {
                        // WAL start, WAL end, server clock: positions that
                        // matter come inside the pgoutput messages.
                        body.advance(24);
                        Ok(ReplicationMessage::XLogData { data: body })
                    }
                    b'k' if body.len() >= 17 => {
                        let wal_end = Lsn(body.get_u64());
                        let _clock = body.get_i64();
                        Ok(ReplicationMessage::Keepalive {
                            wal_end,
                            reply_requested: body.get_u8() == 1,
                        })
                    }
                    k => Err(self.protocol(&format!("unknown replication message '{}'", k as char))),
                };
            }
            if self.buf.len() >= 5 && self.buf[0] != b'd' {
                match backend::Message::parse(&mut self.buf) {
                    Ok(Some(backend::Message::ErrorResponse(e))) => return Err(self.server_error("streaming", &e)),
                    Ok(Some(backend::Message::CopyDone)) => {
                        return Err(ConnectorError::Transient(format!(
                            "{}: server ended the stream",
                            self.what
                        )))
                    }
                    Ok(Some(_)) => continue,
                    Ok(None) => {}
                    Err(e) => return Err(self.protocol(&e.to_string())),
                }
            }
            self.fill().await?;
        }
    }

    /// Waits until the server closes the connection (an idle holder).
    pub async fn closed(&mut self) -> ConnectorError {
        loop {
            if let Err(e) = self.fill().await {
                return e;
            }
            self.buf.clear();
        }
    }

    /// Whether a whole CopyData message is already buffered (more of the
    /// stream is available without waiting).
    pub fn has_buffered(&self) -> bool {
        self.complete_frame().is_some()
    }

    /// Standby status update: tells the walsender what is written, flushed
    /// (safe to discard on the source) and applied.
    pub async fn send_status(&mut self, flushed: Lsn, reply: bool) -> Result<(), ConnectorError> {
        let mut body = BytesMut::with_capacity(34);
        body.put_u8(b'r');
        body.put_u64(flushed.0);
        body.put_u64(flushed.0);
        body.put_u64(flushed.0);
        body.put_i64(now_pg_us());
        body.put_u8(reply as u8);
        let mut out = BytesMut::new();
        frontend::CopyData::new(&body[..])
            .map_err(|e| self.protocol(&e.to_string()))?
            .write(&mut out);
        self.send(&out).await
    }
}

fn sql_head(sql: &str) -> &str {
    sql.split_whitespace().next().unwrap_or(sql)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server as an attacker would run it (or a misconfigured one): it
    /// declines TLS and asks for `code` (3 cleartext, 5 MD5). Answers
    /// whether the client sent anything after its startup packet.
    async fn hostile_server(code: u32) -> (u16, tokio::task::JoinHandle<Vec<u8>>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let h = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut ssl = [0u8; 8];
            s.read_exact(&mut ssl).await.unwrap();
            s.write_all(b"N").await.unwrap();
            let len = s.read_u32().await.unwrap() as usize;
            let mut startup = vec![0u8; len - 4];
            s.read_exact(&mut startup).await.unwrap();
            let mut req = vec![b'R', 0, 0, 0, if code == 5 { 12 } else { 8 }];
            req.extend_from_slice(&code.to_be_bytes());
            if code == 5 {
                req.extend_from_slice(b"salt");
            }
            s.write_all(&req).await.unwrap();
            let mut after = vec![];
            let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut after)).await;
            after
        });
        (port, h)
    }

    #[tokio::test]
    async fn no_password_in_cleartext_or_md5_without_tls() {
        let pw = std::env::temp_dir().join(format!("ferry-repl-test-pw-{}", std::process::id()));
        std::fs::write(&pw, "secret-pw").unwrap();
        for (code, says) in [(3, "in cleartext"), (5, "as MD5")] {
            let (port, server) = hostile_server(code).await;
            let ep = Endpoint::parse(&format!(
                "postgres://app@127.0.0.1:{port}/db?password_file={}",
                pw.display()
            ))
            .unwrap();
            let err = match ReplicationClient::connect(&ep).await {
                Err(e) => e.to_string(),
                Ok(_) => panic!("connected to a server asking for the password {says}"),
            };
            assert!(err.contains(&format!("asked for the password {says}")), "{err}");
            let sent = server.await.unwrap();
            assert!(sent.is_empty(), "the client answered: {sent:?}");
        }
        // Allowed: the same server gets its answer.
        let (port, server) = hostile_server(3).await;
        let ep = Endpoint::parse(&format!(
            "postgres://app@127.0.0.1:{port}/db?password_file={}&plaintext_password=allow",
            pw.display()
        ))
        .unwrap();
        let _ = ReplicationClient::connect(&ep).await;
        let sent = server.await.unwrap();
        assert!(sent.windows(9).any(|w| w == b"secret-pw"), "{sent:?}");
        let _ = std::fs::remove_file(&pw);
    }
}
