//! A small mutation fuzzer on stable Rust, for the parsers that take
//! outside input (URLs, JSON documents, replication messages, SQL). Each
//! target starts from valid seeds and mutates them — bit flips, byte
//! insertions and deletions, "interesting" values, splices of two inputs,
//! truncation — so most cases get past the first checks into the parser's
//! depths; any panic is a crash. A parser may reject input with an error;
//! it may not panic, hang or allocate without bound.
//!
//! The budget per target is `FERRY_FUZZ_SECONDS` (default 2: a short run in
//! every test run); `bench/fuzz.sh MINUTES` runs long ones. Each run is
//! seeded from `FERRY_FUZZ_SEED` or the clock, printed, so a crash can be
//! replayed.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// What a run did.
#[derive(Debug)]
pub struct Report {
    pub target: String,
    pub seed: u64,
    pub cases: u64,
    /// Inputs that panicked (hex), with the panic's message.
    pub crashes: Vec<(String, String)>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "fuzz {}: {} cases, {} crashes (seed {})",
            self.target,
            self.cases,
            self.crashes.len(),
            self.seed
        )
    }
}

/// xorshift64*: fast, and reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: &[&[u8]] = &[
    b"\0",
    b"\xff",
    b"\x7f",
    b"\x80",
    b"\xff\xff\xff\xff",
    b"\x00\x00\x00\x80",
    b"\xff\xff\xff\x7f",
    b"\x00\x00\x00\x00\x00\x00\x00\x80",
    b"%",
    b"%ff",
    b"\"",
    b"'",
    b"`",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b"@",
    b"/",
    b"?",
    b"&",
    b"=",
    b";",
    b"-1",
    b"99999999999999999999",
    b"1e999",
    b"null",
    b"\xe2\x82\xac",
    b"\xf0\x9f\x98\x80",
    b"\xc3",
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, other: &[u8]) {
    for _ in 0..1 + rng.below(4) {
        match rng.below(8) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] = rng.next() as u8;
            }
            2 => {
                let at = rng.below(input.len() + 1);
                let v = INTERESTING[rng.below(INTERESTING.len())];
                input.splice(at..at, v.iter().copied());
            }
            3 if !input.is_empty() => {
                let at = rng.below(input.len());
                let n = 1 + rng.below((input.len() - at).min(16));
                input.drain(at..at + n);
            }
            4 if !input.is_empty() => {
                let len = rng.below(input.len());
                input.truncate(len);
            }
            5 if !other.is_empty() => {
                // Splice: our head, the other input's tail.
                let at = rng.below(input.len() + 1);
                let from = rng.below(other.len());
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
            6 if !input.is_empty() => {
                // Repeat a slice (lengths, nesting).
                let at = rng.below(input.len());
                let n = 1 + rng.below((input.len() - at).min(32));
                let chunk = input[at..at + n].to_vec();
                input.splice(at..at, chunk);
            }
            _ => {
                let at = rng.below(input.len() + 1);
                input.insert(at, rng.next() as u8);
            }
        }
    }
    // Bounded: a mutated input never outgrows what the parser is fed.
    input.truncate(1 << 16);
}

thread_local! {
    static FUZZING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Where the last caught panic happened (file:line).
    static WHERE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Panics on a fuzzing thread are caught and reported once by `run`; other
/// threads (tests running beside it) keep the usual panic output.
fn quiet_panics_while_fuzzing() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if FUZZING.with(|f| f.get()) {
                let at = info.location().map(|l| l.to_string()).unwrap_or_default();
                WHERE.with(|w| *w.borrow_mut() = at);
            } else {
                default(info)
            }
        }));
    });
}

/// The budget per target: `FERRY_FUZZ_SECONDS`, default 2.
pub fn budget() -> Duration {
    let secs = std::env::var("FERRY_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(2.0);
    Duration::from_secs_f64(secs.max(0.01))
}

/// Runs `check` on mutations of `seeds` (and the seeds themselves) for
/// `budget`, catching panics. Prints the report to stderr.
pub fn run(target: &str, seeds: &[Vec<u8>], budget: Duration, mut check: impl FnMut(&[u8])) -> Report {
    let seed = std::env::var("FERRY_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| crate::now_ms() ^ (std::process::id() as u64) << 32)
        | 1;
    let mut rng = Rng(seed);
    let mut report = Report {
        target: target.to_string(),
        seed,
        cases: 0,
        crashes: vec![],
    };
    let empty = [vec![]];
    let seeds = if seeds.is_empty() { &empty[..] } else { seeds };
    quiet_panics_while_fuzzing();
    FUZZING.with(|f| f.set(true));
    let deadline = Instant::now() + budget;
    let mut try_one = |input: &[u8], report: &mut Report| {
        report.cases += 1;
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| check(input))) {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let at = WHERE.with(|w| w.borrow().clone());
            if report.crashes.len() < 20 {
                let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
                report.crashes.push((hex, format!("{msg} (at {at})")));
            }
        }
    };
    for s in seeds {
        try_one(s, &mut report);
    }
    while Instant::now() < deadline {
        // A batch between clock reads.
        for _ in 0..64 {
            let mut input = seeds[rng.below(seeds.len())].clone();
            let other = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, &mut input, other);
            try_one(&input, &mut report);
        }
    }
    FUZZING.with(|f| f.set(false));
    eprintln!("{report}");
    for (hex, msg) in report.crashes.iter().take(5) {
        let shown = if hex.len() > 512 { &hex[..512] } else { hex };
        eprintln!("  crash: {msg}\n    input (hex, {} bytes): {shown}", hex.len() / 2);
    }
    report
}

/// `run` over UTF-8 text: inputs that are not UTF-8 are decoded lossily,
/// as a text parser would receive them.
pub fn run_text(target: &str, seeds: &[&str], budget: Duration, mut check: impl FnMut(&str)) -> Report {
    let seeds: Vec<Vec<u8>> = seeds.iter().map(|s| s.as_bytes().to_vec()).collect();
    run(target, &seeds, budget, |b| check(&String::from_utf8_lossy(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_planted_crash_and_counts_cases() {
        let r = run("planted", &[b"abcd".to_vec()], Duration::from_millis(300), |b| {
            assert!(!b.starts_with(b"ab\0"), "planted")
        });
        assert!(r.cases > 100, "{r}");
        assert!(!r.crashes.is_empty(), "the fuzzer should reach a one-byte change: {r}");
        assert!(r.crashes[0].1.starts_with("planted (at "), "{:?}", r.crashes[0]);
    }
}
