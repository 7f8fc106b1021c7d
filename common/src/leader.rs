//! Following the leader among several coordinators.
//!
//! Only the Raft leader accepts writes (and fresh reads); a follower answers
//! them with UNAVAILABLE "this coordinator is not the leader (leader:
//! HOST:PORT)". A client given several coordinator URLs (`--coordinator
//! URL,URL,...`) sends each call to the node it currently believes leads;
//! when the answer says another node leads, or the node cannot be reached,
//! the *next* call goes to the named leader, or else to the next URL in the
//! list. The failed call itself fails: callers (a worker's loops, the CLI)
//! already retry, and a call is never sent twice behind their back — which
//! matters, because a write a dead leader may have committed must be retried
//! by the caller that knows whether it is idempotent (every worker call is:
//! each carries its assignment's epoch).

use crate::access::LinkError;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::codegen::{http, Service};
use tonic::transport::Channel;

type MakeChannel = Box<dyn Fn(&str) -> Result<Channel, LinkError> + Send + Sync>;

/// A channel to the coordinator that leads, among `urls`.
#[derive(Clone)]
pub struct Leader {
    shared: Arc<Shared>,
}

struct Shared {
    urls: Vec<String>,
    make: MakeChannel,
    current: Mutex<Current>,
}

struct Current {
    /// Bumped on every switch, so that calls failing together switch once.
    generation: u64,
    url: String,
    /// Position in `urls` of the last URL tried from the list.
    index: usize,
    channel: Channel,
}

impl Leader {
    /// Starts with `channel` to `urls[0]`; `make` opens (lazily) a channel to
    /// another URL when the leader moves.
    pub fn new(urls: Vec<String>, channel: Channel, make: MakeChannel) -> Leader {
        let url = urls.first().cloned().unwrap_or_default();
        Leader {
            shared: Arc::new(Shared {
                urls,
                make,
                current: Mutex::new(Current {
                    generation: 0,
                    url,
                    index: 0,
                    channel,
                }),
            }),
        }
    }

    /// The URL calls go to now.
    pub fn url(&self) -> String {
        self.shared.current.lock().expect("leader lock").url.clone()
    }
}

impl Shared {
    fn current(&self) -> (u64, Channel) {
        let c = self.current.lock().expect("leader lock");
        (c.generation, c.channel.clone())
    }

    /// After a call at `generation` failed: to the named leader, or the next
    /// URL of the list. A single URL is kept (nothing else to try).
    fn follow(&self, generation: u64, leader: Option<String>) {
        let mut c = self.current.lock().expect("leader lock");
        if c.generation != generation || (self.urls.len() < 2 && leader.is_none()) {
            return;
        }
        let url = match leader {
            Some(addr) => url_like(&c.url, &addr),
            // The next URL of the list that is not the one that failed.
            None => {
                for _ in 0..self.urls.len() {
                    c.index = (c.index + 1) % self.urls.len();
                    if self.urls[c.index] != c.url {
                        break;
                    }
                }
                self.urls[c.index].clone()
            }
        };
        if url == c.url {
            return;
        }
        match (self.make)(&url) {
            Ok(ch) => {
                tracing::info!(coordinator = %url, "following the coordinators' leader");
                c.channel = ch;
                c.url = url;
                c.generation += 1;
            }
            Err(e) => tracing::warn!(coordinator = %url, error = %e, "cannot open a channel to the coordinator"),
        }
    }
}

/// The leader a follower's refusal names, from its gRPC message: `None`
/// when the message is not such a refusal, `Some(None)` when it names no
/// leader ("not the leader (leader: unknown)"), else `Some(Some(H:P))`.
pub fn named_in(message: &str) -> Option<Option<String>> {
    if !message.contains("not the leader") {
        return None;
    }
    Some(
        message
            .split("(leader: ")
            .nth(1)
            .and_then(|r| r.split(')').next())
            // Only a bare host:port is an address; anything else (another
            // node's wording) names no leader rather than a bogus URL.
            .filter(|a| a.contains(':') && !a.contains(char::is_whitespace))
            .map(str::to_string),
    )
}

/// The URL of the node at `addr` (host:port), with the scheme of `like`.
pub fn url_like(like: &str, addr: &str) -> String {
    let scheme = like.split("://").next().unwrap_or("http");
    format!("{scheme}://{addr}")
}

/// [`named_in`] for a response: an UNAVAILABLE status carries the refusal.
fn named_leader(headers: &http::HeaderMap) -> Option<Option<String>> {
    if headers.get("grpc-status").and_then(|v| v.to_str().ok()) != Some("14") {
        return None;
    }
    named_in(&crate::endpoint::percent_decode(
        headers.get("grpc-message")?.to_str().ok()?,
    ))
}

impl Service<http::Request<Body>> for Leader {
    type Response = http::Response<Body>;
    type Error = tonic::transport::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each call readies the channel it picks.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move {
            let (generation, mut ch) = shared.current();
            if let Err(e) = std::future::poll_fn(|cx| ch.poll_ready(cx)).await {
                shared.follow(generation, None);
                return Err(e);
            }
            let res = ch.call(req).await;
            match &res {
                Ok(resp) => {
                    if let Some(leader) = named_leader(resp.headers()) {
                        shared.follow(generation, leader);
                    }
                }
                Err(_) => shared.follow(generation, None),
            }
            res
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(status: &str, msg: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert("grpc-status", status.parse().unwrap());
        h.insert("grpc-message", msg.parse().unwrap());
        h
    }

    #[test]
    fn a_followers_refusal_names_the_leader() {
        let h = headers(
            "14",
            "this%20coordinator%20is%20not%20the%20leader%20(leader:%20127.0.0.1:7401)",
        );
        assert_eq!(named_leader(&h), Some(Some("127.0.0.1:7401".into())));
        let h = headers("14", "this coordinator is not the leader (leader: unknown)");
        assert_eq!(named_leader(&h), Some(None));
        assert_eq!(named_leader(&headers("14", "database unreachable")), None);
        assert_eq!(named_leader(&headers("9", "not the leader (leader: x:1)")), None);
        // openraft's own wording is never taken for an address.
        assert_eq!(
            named_in("not the leader (leader: has to forward request to: Some(3), Some(BasicNode { addr: \"h:1\" }))"),
            Some(None)
        );
    }
}
