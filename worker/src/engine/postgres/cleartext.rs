//! Refusing to send a password in cleartext or as MD5 over a connection
//! without TLS (unless the endpoint says `plaintext_password=allow`).
//!
//! Under `sslmode=prefer` (the default) or weaker a connection may end up
//! unencrypted, and the *server* picks the authentication method: one that
//! asks for `password` hands the password to anyone who can answer on that
//! address or read the path; `md5` hands over a hash that logs in as well as
//! the password does. libpq 16 has `require_auth` for this; tokio-postgres
//! answers whatever the server asks. So the socket under it is wrapped in
//! [`Guarded`], which reads the startup exchange as it passes: if the client
//! asked for TLS and the server agreed, everything after is encrypted and the
//! guard steps aside; otherwise it parses the backend's messages until
//! authentication ends, and fails the read that carries a cleartext or MD5
//! request — before the client could answer it. The guard sees exactly the
//! bytes the client sees, so no server behaviour gets past it (a server
//! cannot ask differently of the guard and of the client).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The startup packet that asks for TLS: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// The error a guarded read fails with; `connect` recognizes it.
#[derive(Debug, thiserror::Error)]
#[error("the server asked for the password {0} over a connection without TLS; Ferry refused to send it")]
pub(crate) struct Refused(pub &'static str);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing written yet.
    Start,
    /// SSLRequest sent: the next byte read is the answer.
    SslAnswer,
    /// Plaintext: backend messages are parsed until authentication ends.
    Inspect,
    /// Encrypted, or authenticated: bytes pass untouched.
    Pass,
}

pub(crate) struct Guarded<S> {
    inner: S,
    phase: Phase,
    /// The current message's type and length bytes, and as much of the
    /// body as decides (an Authentication message's 4-byte code).
    header: Vec<u8>,
    /// Body bytes of the current message still to skip.
    skip: usize,
}

impl<S> Guarded<S> {
    pub(crate) fn new(inner: S) -> Guarded<S> {
        Guarded {
            inner,
            phase: Phase::Start,
            header: Vec::with_capacity(9),
            skip: 0,
        }
    }

    /// Feeds bytes the client is about to see; an error when they carry a
    /// cleartext or MD5 password request on an unencrypted connection.
    fn inspect(&mut self, mut bytes: &[u8]) -> Result<(), Refused> {
        while !bytes.is_empty() && self.phase != Phase::Pass {
            match self.phase {
                Phase::Start | Phase::Pass => return Ok(()),
                Phase::SslAnswer => {
                    self.phase = if bytes[0] == b'S' { Phase::Pass } else { Phase::Inspect };
                    bytes = &bytes[1..];
                }
                Phase::Inspect if self.skip > 0 => {
                    let n = self.skip.min(bytes.len());
                    self.skip -= n;
                    bytes = &bytes[n..];
                }
                Phase::Inspect => {
                    let want = if self.header.first() == Some(&b'R') { 9 } else { 5 };
                    let n = (want - self.header.len()).min(bytes.len());
                    self.header.extend_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    if self.header.len() < 5 {
                        continue;
                    }
                    let len =
                        u32::from_be_bytes([self.header[1], self.header[2], self.header[3], self.header[4]]) as usize;
                    if self.header[0] == b'R' && self.header.len() < 9 && len >= 8 {
                        continue;
                    }
                    match self.header[0] {
                        b'R' if len >= 8 => {
                            let code =
                                u32::from_be_bytes([self.header[5], self.header[6], self.header[7], self.header[8]]);
                            match code {
                                0 => self.phase = Phase::Pass,
                                3 => return Err(Refused("in cleartext")),
                                5 => return Err(Refused("as MD5")),
                                _ => {}
                            }
                            self.skip = len - 8;
                        }
                        // An error ends the exchange; the client reports it.
                        b'E' => self.phase = Phase::Pass,
                        _ => self.skip = len.saturating_sub(4),
                    }
                    self.header.clear();
                }
            }
        }
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut me.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if me.phase != Phase::Pass => {
                let new = buf.filled()[before..].to_vec();
                match me.inspect(&new) {
                    Ok(()) => Poll::Ready(Ok(())),
                    Err(refused) => {
                        buf.set_filled(before);
                        Poll::Ready(Err(io::Error::new(io::ErrorKind::PermissionDenied, refused)))
                    }
                }
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        if me.phase == Phase::Start && !buf.is_empty() {
            me.phase = if buf.starts_with(&SSL_REQUEST) {
                Phase::SslAnswer
            } else {
                Phase::Inspect
            };
        }
        Pin::new(&mut me.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(code: u32, body: &[u8]) -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend_from_slice(&(8 + body.len() as u32).to_be_bytes());
        m.extend_from_slice(&code.to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    /// Feeds `stream` one byte at a time (the worst split) and whole.
    fn verdict(first_write: &[u8], stream: &[u8]) -> Result<Phase, &'static str> {
        let mut outcomes = vec![];
        for chunk in [1, stream.len().max(1)] {
            let mut g = Guarded::new(());
            g.phase = if first_write.starts_with(&SSL_REQUEST) {
                Phase::SslAnswer
            } else {
                Phase::Inspect
            };
            let r = stream
                .chunks(chunk)
                .try_for_each(|c| g.inspect(c))
                .map(|_| g.phase)
                .map_err(|e| e.0);
            outcomes.push(r);
        }
        assert_eq!(outcomes[0], outcomes[1]);
        outcomes.pop().unwrap()
    }

    #[test]
    fn cleartext_and_md5_are_refused_without_tls() {
        let startup = [0u8, 0, 0, 9, 0, 3, 0, 0, 0];
        assert_eq!(verdict(&startup, &auth(3, &[])), Err("in cleartext"));
        assert_eq!(verdict(&startup, &auth(5, b"salt")), Err("as MD5"));
        // SSLRequest refused ('N'), then MD5 in plaintext.
        let mut s = vec![b'N'];
        s.extend(auth(5, b"salt"));
        assert_eq!(verdict(&SSL_REQUEST, &s), Err("as MD5"));
    }

    #[test]
    fn scram_trust_errors_and_tls_pass() {
        let startup = [0u8, 0, 0, 9, 0, 3, 0, 0, 0];
        let mut scram = auth(10, b"SCRAM-SHA-256\0\0");
        scram.extend(auth(11, b"r=abc,s=xyz,i=4096"));
        scram.extend(auth(12, b"v=proof"));
        scram.extend(auth(0, &[]));
        // After AuthenticationOk nothing is inspected, even bytes that look
        // like a request.
        scram.extend(auth(3, &[]));
        assert_eq!(verdict(&startup, &scram), Ok(Phase::Pass));
        assert_eq!(verdict(&startup, &auth(0, &[])), Ok(Phase::Pass));
        let mut error = vec![b'E', 0, 0, 0, 6, b'S', 0];
        error.extend(auth(3, &[]));
        assert_eq!(verdict(&startup, &error), Ok(Phase::Pass));
        // TLS accepted: the rest is ciphertext, never parsed.
        let mut tls = vec![b'S'];
        tls.extend(auth(3, &[]));
        assert_eq!(verdict(&SSL_REQUEST, &tls), Ok(Phase::Pass));
        // A NegotiateProtocolVersion before authentication is skipped over.
        let mut v = vec![b'v', 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0];
        v.extend(auth(3, &[]));
        assert_eq!(verdict(&startup, &v), Err("in cleartext"));
    }
}
