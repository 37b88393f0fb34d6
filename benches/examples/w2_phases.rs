//! Where a W2 request's time goes, phase by phase: the header parse, the segment's begin, the
//! first DynamoDB call, the other two, and the segment's end.
//!
//! Runs W2 in bursts of 256 requests with a flush after each (as the `w2` group of the `peers`
//! bench does), times each phase of every request with `Instant`, and prints the median over
//! rounds of each phase's mean. The reads of the clock add about 25 ns to each phase; compare
//! runs of this program with each other, not with the bench's figures.
//!
//! ```text
//! cargo build --release -p xray-benches --example w2_phases
//! target/release/examples/w2_phases                 # both processors
//! taskset -c 0 target/release/examples/w2_phases    # request thread and emitter on one
//! ```
//!
//! `W2_PHASES_ROUNDS` (default 9) and `W2_PHASES_BURSTS` (default 200) set the amount of work;
//! with `W2_PHASES_EVICT=<MiB>` the request thread writes one byte per cache line over that
//! many MiB of its own after each flush (`W2_PHASES_STRIDE=<bytes>` writes one per stride
//! instead, 4096 touching only pages), so that each burst starts with its caches (or its
//! address translations) holding none of the traces' buffers.

#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::time::{Duration, Instant};

use xray_benches::{Request, Sink, XraySdkPeer, fresh_header, xray_sdk_call, xray_sdk_segment};
use xray_sdk::{Record, TraceHeader};

const PHASES: [&str; 6] = ["parse", "begin", "call 1", "calls 2+3", "end", "total"];
const BURST: u64 = 256;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let rounds = env_or("W2_PHASES_ROUNDS", 9).max(1);
    let bursts = env_or("W2_PHASES_BURSTS", 200).max(1);
    let evict_mib = env_or("W2_PHASES_EVICT", 0) as usize;
    let stride = env_or("W2_PHASES_STRIDE", 64).max(1) as usize;
    let sink = Sink::start().unwrap();
    let peer = XraySdkPeer::new(sink.addr());
    let recorder = peer.recorder();
    let req = Request::new(&fresh_header());
    let mut junk = vec![0u8; evict_mib << 20];
    let mut means: Vec<[f64; 6]> = Vec::new();
    // Two rounds of warm-up, not kept.
    for round in 0..rounds + 2 {
        let mut sums = [Duration::ZERO; 6];
        for _ in 0..bursts {
            for _ in 0..BURST {
                let t0 = Instant::now();
                let incoming = TraceHeader::parse(&req.header);
                let t1 = Instant::now();
                let segment = xray_sdk_segment(recorder, &incoming, &req);
                let t2 = Instant::now();
                xray_sdk_call(&segment, &req.request_ids[0]);
                let t3 = Instant::now();
                xray_sdk_call(&segment, &req.request_ids[1]);
                xray_sdk_call(&segment, &req.request_ids[2]);
                let t4 = Instant::now();
                segment.end_with(|p| p.set_http_response(200, None));
                let t5 = Instant::now();
                let spans = [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5), (t0, t5)];
                for (sum, (from, to)) in sums.iter_mut().zip(spans) {
                    *sum += to - from;
                }
            }
            recorder.flush(Duration::from_secs(5)).unwrap();
            for byte in junk.iter_mut().step_by(stride) {
                *byte = byte.wrapping_add(1);
            }
            std::hint::black_box(&junk);
        }
        if round >= 2 {
            let n = (bursts * BURST) as f64;
            means.push(sums.map(|d| d.as_secs_f64() * 1e9 / n));
        }
    }
    let medians: Vec<String> = (0..PHASES.len())
        .map(|i| {
            let mut v: Vec<f64> = means.iter().map(|m| m[i]).collect();
            v.sort_by(f64::total_cmp);
            format!("{} {:.0}", PHASES[i], v[v.len() / 2])
        })
        .collect();
    println!(
        "W2 phases, ns per request (median of {rounds} rounds of {bursts} bursts): {}",
        medians.join(", ")
    );
}
