//! Side by side: `xray-sdk` against `xray-lite` 0.0.9 and `opentelemetry-aws` 0.21, with the
//! same workload (see the `xray_benches` crate docs) and the same loopback UDP receiver, in one
//! criterion run.
//!
//! `cargo bench -p xray-benches -- --warm-up-time 1 --measurement-time 3`
//!
//! Groups:
//! - `request_path`: what one request costs the thread that serves it. Background queues are
//!   drained between chunks of 256 requests, outside the timed part, so nothing is dropped.
//! - `request_path_paired`: each peer and xray-sdk in turn within the same samples; prints the
//!   median ratio of their request-path costs.
//! - `delivered`: bursts of 1,000 requests, then a flush; the time is divided by the requests
//!   that actually **arrived** at the receiver (elapsed × produced / delivered), so a library
//!   that drops does not look faster. The delivered/produced ratio is printed.
//! - `flush_per_request`: one request then a flush, the AWS Lambda pattern (every invocation
//!   must hand its documents over before the runtime freezes the process).
//!
//! Each group ends with a `summary` line on stderr per library: requests, datagrams produced
//! (requests × datagrams per request), datagrams delivered, and the ratio.

#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use xray_benches::{
    OtelAwsPeer, Peer, Sink, XrayLitePeer, XraySdkPeer, fresh_header, set_lambda_trace_env,
};

const CHUNK: u64 = 256;
const BURST: u64 = 1_000;

/// Builds every library's driver, each with its own receiver.
fn peers(header: &str, with_big_queue: bool) -> Vec<(Box<dyn Peer>, Sink)> {
    let mut out: Vec<(Box<dyn Peer>, Sink)> = Vec::new();
    let sink = Sink::start().unwrap();
    out.push((Box::new(XraySdkPeer::new(sink.addr(), header)), sink));
    let sink = Sink::start().unwrap();
    out.push((Box::new(XrayLitePeer::new(sink.addr()).unwrap()), sink));
    let sink = Sink::start().unwrap();
    out.push((
        Box::new(OtelAwsPeer::new(sink.addr(), header, None).unwrap()),
        sink,
    ));
    if with_big_queue {
        let sink = Sink::start().unwrap();
        out.push((
            Box::new(OtelAwsPeer::new(sink.addr(), header, Some(1 << 20)).unwrap()),
            sink,
        ));
    }
    out
}

fn summary(group: &str, peer: &dyn Peer, sink: &Sink, requests: u64) {
    peer.flush();
    let produced = requests * peer.datagrams_per_request();
    let delivered = sink.settle(produced, Duration::from_secs(5));
    let ratio = if produced == 0 {
        0.0
    } else {
        delivered as f64 * 100.0 / produced as f64
    };
    eprintln!(
        "summary {group} {}: requests {requests}, datagrams produced {produced}, delivered {delivered} ({ratio:.1} %)",
        peer.name()
    );
}

fn request_path(c: &mut Criterion, header: &str) {
    let mut g = c.benchmark_group("request_path");
    g.throughput(Throughput::Elements(1));
    for (mut peer, sink) in peers(header, false) {
        let mut requests = 0u64;
        g.bench_function(peer.name(), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(CHUNK);
                    let start = Instant::now();
                    for _ in 0..n {
                        peer.request();
                    }
                    timed += start.elapsed();
                    // Not timed: drain the background queue so the next chunk finds it empty.
                    peer.flush();
                    left -= n;
                }
                requests += iters;
                timed
            })
        });
        summary("request_path", &*peer, &sink, requests);
    }
    g.finish();
}

/// Each peer against xray-sdk in the same samples: per chunk, `CHUNK` requests of the peer,
/// then `CHUNK` of xray-sdk, each timed, queues drained after both (untimed). Per criterion
/// sample the ratio of the two; prints the median ratio, which both sides measure at the
/// same moment of the machine.
fn request_path_paired(c: &mut Criterion, header: &str) {
    let mut g = c.benchmark_group("request_path_paired");
    g.throughput(Throughput::Elements(1));
    let mut all = peers(header, false);
    let (ours, others) = all.split_at_mut(1);
    let ours = &mut ours[0].0;
    for (peer, _sink) in others.iter_mut() {
        let mut ratios = Vec::new();
        g.bench_function(format!("{} vs xray-sdk", peer.name()), |b| {
            b.iter_custom(|iters| {
                let (mut theirs, mut mine) = (Duration::ZERO, Duration::ZERO);
                let mut left = iters;
                while left > 0 {
                    let n = left.min(CHUNK);
                    let start = Instant::now();
                    for _ in 0..n {
                        peer.request();
                    }
                    theirs += start.elapsed();
                    let start = Instant::now();
                    for _ in 0..n {
                        ours.request();
                    }
                    mine += start.elapsed();
                    peer.flush();
                    ours.flush();
                    left -= n;
                }
                ratios.push(theirs.as_secs_f64() / mine.as_secs_f64().max(1e-12));
                theirs
            })
        });
        ratios.sort_by(f64::total_cmp);
        eprintln!(
            "paired request_path {}: median of {} samples, {} / xray-sdk = {:.2}",
            peer.name(),
            ratios.len(),
            peer.name(),
            ratios.get(ratios.len() / 2).copied().unwrap_or(f64::NAN),
        );
    }
    g.finish();
}

fn delivered(c: &mut Criterion, header: &str) {
    let mut g = c.benchmark_group("delivered");
    g.throughput(Throughput::Elements(BURST));
    g.sample_size(10);
    for (mut peer, sink) in peers(header, true) {
        let mut requests = 0u64;
        let per_request = peer.datagrams_per_request();
        g.bench_function(peer.name(), |b| {
            b.iter_custom(|iters| {
                let mut charged = Duration::ZERO;
                for _ in 0..iters {
                    let before = sink.count();
                    let start = Instant::now();
                    for _ in 0..BURST {
                        peer.request();
                    }
                    peer.flush();
                    let elapsed = start.elapsed();
                    let produced = BURST * per_request;
                    let arrived = sink
                        .settle(before + produced, Duration::from_secs(2))
                        .saturating_sub(before);
                    // Charge the time to what arrived: dropping must not look fast.
                    let factor = produced as f64 / arrived.max(1) as f64;
                    charged += elapsed.mul_f64(factor);
                }
                requests += iters * BURST;
                charged
            })
        });
        summary("delivered", &*peer, &sink, requests);
    }
    g.finish();
}

fn flush_per_request(c: &mut Criterion, header: &str) {
    let mut g = c.benchmark_group("flush_per_request");
    g.throughput(Throughput::Elements(1));
    for (mut peer, sink) in peers(header, false) {
        let mut requests = 0u64;
        g.bench_function(peer.name(), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    peer.request();
                    peer.flush();
                }
                requests += iters;
                start.elapsed()
            })
        });
        summary("flush_per_request", &*peer, &sink, requests);
    }
    g.finish();
}

fn main() {
    // Before any thread exists: xray-lite reads its context from this variable.
    let header = fresh_header();
    set_lambda_trace_env(&header);
    let mut c = Criterion::default().configure_from_args();
    request_path(&mut c, &header);
    request_path_paired(&mut c, &header);
    delivered(&mut c, &header);
    flush_per_request(&mut c, &header);
    c.final_summary();
}
