//! `ferry up`'s workers' series in its own `/metrics`: each worker child
//! serves `/metrics` on a loopback port `ferry up` chose for it, and a
//! scrape of `ferry up` fetches them all and merges them in, every sample
//! labelled `worker="N"` (the child's number), so one scrape target shows
//! the whole laptop cluster.
//!
//! OpenMetrics wants a family's samples together under one HELP/TYPE
//! header, so the merge groups by family rather than concatenating the
//! workers' texts. A worker that does not answer within a second is left
//! out of that scrape (a worker starting or exiting), never waited for.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The metrics addresses of the running workers, by worker number.
#[derive(Clone, Default)]
pub struct Workers(Arc<Mutex<BTreeMap<u32, SocketAddr>>>);

impl Workers {
    /// A loopback address for worker `index` to serve its metrics on.
    pub fn assign(&self, index: u32) -> std::io::Result<SocketAddr> {
        // Bound and released at once: the worker binds it a moment later.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        self.0.lock().expect("workers lock").insert(index, addr);
        Ok(addr)
    }

    pub fn remove(&self, index: u32) {
        self.0.lock().expect("workers lock").remove(&index);
    }

    /// Every worker's series, merged into OpenMetrics text without `# EOF`.
    pub async fn scrape(&self) -> String {
        let targets: Vec<(u32, SocketAddr)> = self
            .0
            .lock()
            .expect("workers lock")
            .iter()
            .map(|(i, a)| (*i, *a))
            .collect();
        let bodies = futures::future::join_all(targets.into_iter().map(|(i, a)| async move {
            let body = tokio::time::timeout(Duration::from_secs(1), fetch(a))
                .await
                .ok()
                .flatten();
            (i, body)
        }))
        .await;
        let mut merged = Merged::default();
        for (index, body) in bodies {
            if let Some(body) = body {
                merged.add(&index.to_string(), &body);
            }
        }
        merged.text()
    }
}

/// GET /metrics over HTTP/1.0 (never chunked): the body, if 200.
async fn fetch(addr: SocketAddr) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    (head.split_whitespace().nth(1) == Some("200")).then(|| body.to_string())
}

/// Families in first-seen order: their header lines (from the first
/// worker that had them) and every worker's samples.
#[derive(Default)]
struct Merged {
    order: Vec<String>,
    families: BTreeMap<String, (Vec<String>, Vec<String>)>,
}

impl Merged {
    /// Adds one worker's exposition, its samples labelled `worker`.
    fn add(&mut self, worker: &str, body: &str) {
        let mut seen_header: Vec<String> = vec![];
        let mut family = String::new();
        for line in body.lines() {
            if line == "# EOF" || line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# ") {
                // "# HELP name ...", "# TYPE name ...", "# UNIT name ...".
                let name = rest.split_whitespace().nth(1).unwrap_or("").to_string();
                if name != family {
                    family = name.clone();
                    seen_header.clear();
                }
                let entry = self.entry(&family);
                if !seen_header.contains(&line.to_string()) && !entry.0.iter().any(|h| h == line) {
                    entry.0.push(line.to_string());
                }
                seen_header.push(line.to_string());
            } else {
                let labelled = with_label(line, "worker", worker);
                self.entry(&family).1.push(labelled);
            }
        }
    }

    fn entry(&mut self, family: &str) -> &mut (Vec<String>, Vec<String>) {
        if !self.families.contains_key(family) {
            self.order.push(family.to_string());
        }
        self.families.entry(family.to_string()).or_default()
    }

    fn text(&self) -> String {
        let mut out = String::new();
        for f in &self.order {
            let (header, samples) = &self.families[f];
            for l in header.iter().chain(samples) {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

/// `name{a="b"} v` → `name{key="value",a="b"} v`; `name v` → `name{key="value"} v`.
fn with_label(sample: &str, key: &str, value: &str) -> String {
    let label = format!("{key}=\"{value}\"");
    match sample.find(['{', ' ']) {
        Some(i) if sample.as_bytes()[i] == b'{' => {
            let close = if sample[i + 1..].starts_with('}') { "" } else { "," };
            format!("{}{{{label}{close}{}", &sample[..i], &sample[i + 1..])
        }
        Some(i) => format!("{}{{{label}}}{}", &sample[..i], &sample[i..]),
        None => sample.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = "# HELP ferry_worker_slots Slots\n# TYPE ferry_worker_slots gauge\nferry_worker_slots 1\n\
        # HELP ferry_worker_cpu_seconds CPU\n# TYPE ferry_worker_cpu_seconds counter\nferry_worker_cpu_seconds_total 0.5\n# EOF\n";

    #[test]
    fn families_keep_one_header_and_every_workers_samples() {
        let mut m = Merged::default();
        m.add("1", ONE);
        m.add("2", &ONE.replace(" 1\n", " 2\n"));
        assert_eq!(
            m.text(),
            "# HELP ferry_worker_slots Slots\n# TYPE ferry_worker_slots gauge\n\
             ferry_worker_slots{worker=\"1\"} 1\nferry_worker_slots{worker=\"2\"} 2\n\
             # HELP ferry_worker_cpu_seconds CPU\n# TYPE ferry_worker_cpu_seconds counter\n\
             ferry_worker_cpu_seconds_total{worker=\"1\"} 0.5\nferry_worker_cpu_seconds_total{worker=\"2\"} 0.5\n"
        );
    }

    #[test]
    fn a_label_goes_first_in_any_sample() {
        assert_eq!(with_label("a 1", "w", "3"), "a{w=\"3\"} 1");
        assert_eq!(with_label("a{x=\"y\"} 1", "w", "3"), "a{w=\"3\",x=\"y\"} 1");
        assert_eq!(with_label("a{} 1", "w", "3"), "a{w=\"3\"} 1");
    }
}
