//! The fuzz tests' shared parts: a seedable generator and the run budget
//! (`XRAY_FUZZ_RUNS`, `XRAY_FUZZ_SECS`, `XRAY_FUZZ_SEED`).
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use xray_local::App;

/// xorshift64*: small, seedable, good enough to drive mutations.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// How long a target runs: `runs` inputs by default, or `XRAY_FUZZ_SECS`.
pub struct Budget {
    runs: u64,
    time: Option<Duration>,
    started: Instant,
}

impl Budget {
    pub fn more(&self, n: u64) -> bool {
        match self.time {
            Some(t) => self.started.elapsed() < t,
            None => n < self.runs,
        }
    }
}

pub fn budget(default_runs: u64) -> Budget {
    let var = |name: &str| std::env::var(name).ok();
    let time = var("XRAY_FUZZ_SECS")
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(3600.0)));
    let runs = var("XRAY_FUZZ_RUNS")
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_runs);
    Budget {
        runs,
        time,
        started: Instant::now(),
    }
}

pub fn seed(default: u64) -> u64 {
    let s = std::env::var("XRAY_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    println!("fuzz seed: {s} (replay with XRAY_FUZZ_SEED={s})");
    s | 1
}

/// The intake's counts add up, and the store is within its caps and agrees
/// with itself.
pub fn check_consistent(app: &App) {
    let i = app.intake.snapshot();
    assert_eq!(
        i.received + i.api_documents + i.otlp.documents,
        i.accepted + i.rejected_total + i.otlp.datagrams,
        "{i:?}"
    );
    let store = app.store();
    let c = store.counters();
    assert_eq!(
        i.accepted,
        c.stored + c.stale_in_progress + c.unfiled,
        "{c:?}"
    );
    assert_eq!(store.validation().documents_checked, i.accepted);
    let (max_traces, max_bytes) = store.caps();
    assert!(store.len() <= max_traces);
    assert!(store.approx_bytes() <= max_bytes);
    let sum: usize = store.traces().map(|t| t.approx_bytes()).sum();
    assert_eq!(sum, store.approx_bytes());
}
