//! Side by side: `xray-sdk` against `xray-lite` 0.0.9 and `opentelemetry-aws` 0.21, each
//! recording the same fields (W1, W2 and the unsampled request: see the `xray_benches` crate
//! docs) and sending to its own loopback UDP receiver, in one criterion run.
//!
//! `cargo bench -p xray-benches --bench peers -- --warm-up-time 1 --measurement-time 3`
//!
//! Groups:
//! - `w2`, `w1`, `unsampled`: the time the serving thread spends per request (W1: per call),
//!   in chunks of 256 requests (W1: 64 calls to one open segment) with the library's
//!   background queue drained after each chunk, outside the timed part, so nothing is dropped
//!   and no exporter thread works beside a timed chunk. (The receivers may still be reading
//!   the previous chunk's datagrams: the peers send 4 to 7 times as many per request as
//!   xray-sdk, so in a pair this weighs more on xray-sdk's chunks than on theirs.) First xray-sdk alone (an `alone` line on stderr),
//!   then each peer **paired** with xray-sdk: per criterion sample, a chunk of the peer's
//!   requests and a chunk of xray-sdk's, each timed, in alternating order. Criterion reports
//!   the peer's time; each pair ends with a `paired` line on stderr: both sides' medians over
//!   the samples and the median of the per-sample ratios. (xray-lite ignores `Sampled=0`:
//!   its unsampled request is its W2 request, and is not run again.)
//! - `background`: CPU time of the background threads per W2 request, read from
//!   `/proc/self/task/<tid>/schedstat`: xray-sdk's `xray-emitter` against the floor, a loop
//!   that renders the same document (`RecordedSegment::w2`) and sends it on a connected UDP
//!   socket to the same kind of receiver; and opentelemetry-aws's `BatchSpanProcessor`
//!   thread against xray-sdk's emitter. Paired the same way; prints medians and ratios.
//! - `delivered`: bursts of 1,000 W2 requests, then a flush; the time is charged to what
//!   **arrived** at the receiver (elapsed × produced / delivered), so a library that drops
//!   does not look faster. The delivered/produced ratio is printed.
//! - `flush_per_request`: one W2 request then a flush, the AWS Lambda pattern (every
//!   invocation must hand its documents over before the runtime freezes the process).
//!
//! Groups that send end with a `summary` line on stderr per library: datagrams produced,
//! datagrams delivered, and the ratio.
//!
//! With `PEERS_BENCH_LOOP=<w2|unsampled>:<requests>` set, the binary runs only that many of
//! xray-sdk's requests, for an instruction count:
//! `valgrind --tool=callgrind --separate-threads=yes --toggle-collect='*run_loop*' <binary> --bench`.

#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use xray_benches::{
    OTEL_BATCH_THREAD, OtelAwsPeer, Peer, Request, Sink, XRAY_EMITTER_THREAD, XraySdkPeer,
    all_peers, cpu_of_threads, fresh_header, render_and_send_floor, set_lambda_trace_env,
    this_thread_cpu, time_calls, time_requests,
};

/// W2 requests per timed chunk.
const CHUNK: u64 = 256;
/// W1 calls per timed chunk (one open segment each; under the streaming threshold).
const CALLS: u64 = 64;
const BURST: u64 = 1_000;

/// Criterion's samples per benchmark in the timing groups (its default) and in `background`.
const SAMPLES: usize = 100;
const BACKGROUND_SAMPLES: usize = 20;

/// The median of the last `samples` values: the measured samples, after the calls criterion
/// makes while warming up.
fn median(v: &mut Vec<f64>, samples: usize) -> f64 {
    let warm_up = v.len().saturating_sub(samples);
    v.drain(..warm_up);
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Prints what arrived of what a peer produced since `before`; nothing when the bench was
/// filtered out (`ran` false).
fn summary(group: &str, peer: &dyn Peer, sink: &Sink, before: u64, produced: u64, ran: bool) {
    if !ran {
        return;
    }
    peer.flush();
    let delivered = sink
        .settle(before + produced, Duration::from_secs(5))
        .saturating_sub(before);
    let ratio = if produced == 0 {
        100.0
    } else {
        delivered as f64 * 100.0 / produced as f64
    };
    eprintln!(
        "summary {group} {}: datagrams produced {produced}, delivered {delivered} ({ratio:.1} %)",
        peer.name()
    );
}

#[derive(Clone, Copy, PartialEq)]
enum Workload {
    W2,
    W1,
    Unsampled,
}

impl Workload {
    fn group(self) -> &'static str {
        match self {
            Workload::W2 => "w2",
            Workload::W1 => "w1",
            Workload::Unsampled => "unsampled",
        }
    }

    fn chunk(self) -> u64 {
        if self == Workload::W1 { CALLS } else { CHUNK }
    }

    /// Runs `n` requests (or calls) of the workload; returns the timed part and the datagrams
    /// they should produce.
    fn run(self, peer: &mut dyn Peer, req: &Request, n: u64) -> (Duration, u64) {
        match self {
            Workload::W1 => (time_calls(peer, req, n), peer.datagrams_per_segment(n)),
            Workload::W2 => (
                time_requests(peer, req, n),
                n * peer.datagrams_per_request(),
            ),
            Workload::Unsampled => (
                time_requests(peer, req, n),
                if peer.records_unsampled() {
                    n * peer.datagrams_per_request()
                } else {
                    0
                },
            ),
        }
    }
}

/// Each peer against xray-sdk in the same samples.
fn paired(c: &mut Criterion, workload: Workload, sampled: &Request) {
    let req = if workload == Workload::Unsampled {
        sampled.unsampled()
    } else {
        sampled.clone()
    };
    let mut g = c.benchmark_group(workload.group());
    g.throughput(Throughput::Elements(1));
    let mut all = all_peers().unwrap();
    let (ours, others) = all.split_at_mut(1);
    let (ours, our_sink) = &mut ours[0];

    // xray-sdk alone, for its own figure (the pairs below share the caches and the allocator
    // with the other library's chunks).
    let mut alone = Vec::new();
    g.bench_function("xray-sdk", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(workload.chunk());
                timed += workload.run(&mut **ours, &req, n).0;
                ours.flush();
                left -= n;
            }
            alone.push(timed.as_secs_f64() * 1e9 / iters as f64);
            timed
        })
    });
    if !alone.is_empty() {
        eprintln!(
            "alone {} xray-sdk: median of {} samples: {:.0} ns",
            workload.group(),
            alone.len().min(SAMPLES),
            median(&mut alone, SAMPLES)
        );
    }

    for (peer, sink) in others.iter_mut() {
        if workload == Workload::Unsampled && peer.records_unsampled() {
            eprintln!(
                "paired {} {}: not run (it ignores Sampled=0: its unsampled request is its W2 request)",
                workload.group(),
                peer.name()
            );
            continue;
        }
        let (mut theirs_ns, mut ours_ns, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        let (their_before, our_before) = (sink.count(), our_sink.count());
        let (mut their_produced, mut our_produced) = (0, 0);
        let mut sample = 0u64;
        g.bench_function(format!("{} vs xray-sdk", peer.name()), |b| {
            b.iter_custom(|iters| {
                let (mut theirs, mut mine) = (Duration::ZERO, Duration::ZERO);
                let mut left = iters;
                sample += 1;
                while left > 0 {
                    let n = left.min(workload.chunk());
                    // Alternate which side goes first from sample to sample.
                    for side in [sample % 2, (sample + 1) % 2] {
                        if side == 0 {
                            let (t, d) = workload.run(&mut **peer, &req, n);
                            theirs += t;
                            their_produced += d;
                            peer.flush();
                        } else {
                            let (t, d) = workload.run(&mut **ours, &req, n);
                            mine += t;
                            our_produced += d;
                            ours.flush();
                        }
                    }
                    left -= n;
                }
                let per = |d: Duration| d.as_secs_f64() * 1e9 / iters as f64;
                theirs_ns.push(per(theirs));
                ours_ns.push(per(mine));
                ratios.push(theirs.as_secs_f64() / mine.as_secs_f64().max(1e-12));
                theirs
            })
        });
        if ratios.is_empty() {
            continue;
        }
        eprintln!(
            "paired {} {}: median of {} samples: xray-sdk {:.0} ns, {} {:.0} ns, {} / xray-sdk = {:.2}",
            workload.group(),
            peer.name(),
            ratios.len().min(SAMPLES),
            median(&mut ours_ns, SAMPLES),
            peer.name(),
            median(&mut theirs_ns, SAMPLES),
            peer.name(),
            median(&mut ratios, SAMPLES),
        );
        summary(
            workload.group(),
            &**peer,
            sink,
            their_before,
            their_produced,
            true,
        );
        summary(
            workload.group(),
            &**ours,
            our_sink,
            our_before,
            our_produced,
            true,
        );
    }
    g.finish();
}

/// Background CPU per W2 request: xray-sdk's emitter against the render-and-send floor, and
/// opentelemetry-aws's batch thread against xray-sdk's emitter, paired per sample.
fn background(c: &mut Criterion, req: &Request) {
    let mut g = c.benchmark_group("background");
    g.throughput(Throughput::Elements(1));
    g.sample_size(BACKGROUND_SAMPLES);
    let our_sink = Sink::start().unwrap();
    let mut ours = XraySdkPeer::new(our_sink.addr());
    let floor_sink = Sink::start().unwrap();
    let other_sink = Sink::start().unwrap();
    let mut otel = OtelAwsPeer::new(other_sink.addr(), None).unwrap();

    // xray-sdk's emitter CPU for `n` W2 requests, in chunks, each flushed.
    let emitter = |ours: &mut XraySdkPeer, n: u64| {
        let mut cpu = Duration::ZERO;
        let mut left = n;
        while left > 0 {
            let k = left.min(CHUNK);
            let before = cpu_of_threads(XRAY_EMITTER_THREAD);
            time_requests(ours, req, k);
            ours.flush();
            cpu += cpu_of_threads(XRAY_EMITTER_THREAD).saturating_sub(before);
            left -= k;
        }
        cpu
    };

    let (mut emitter_ns, mut floor_ns, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (ours_before, floor_before) = (our_sink.bytes(), floor_sink.bytes());
    let (ours_count, floor_count) = (our_sink.count(), floor_sink.count());
    let mut floor_size = 0;
    g.bench_function("xray-sdk emitter vs render + connected send", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            let cpu = emitter(&mut ours, iters);
            let (floor, size) = render_and_send_floor(floor_sink.addr(), iters).unwrap();
            floor_size = size;
            let per = |d: Duration| d.as_secs_f64() * 1e9 / iters as f64;
            emitter_ns.push(per(cpu));
            floor_ns.push(floor.as_secs_f64() * 1e9);
            ratios.push(per(cpu) / (floor.as_secs_f64() * 1e9).max(1e-3));
            start.elapsed()
        })
    });
    if !ratios.is_empty() {
        let sent =
            our_sink.settle(ours.recorder().stats().sent, Duration::from_secs(5)) - ours_count;
        let our_size = (our_sink.bytes() - ours_before) / sent.max(1);
        let floor_sent = floor_sink.settle(u64::MAX, Duration::from_secs(1)) - floor_count;
        let floor_avg = (floor_sink.bytes() - floor_before) / floor_sent.max(1);
        eprintln!(
            "paired background: median of {} samples: xray-emitter {:.0} ns of CPU per W2 document, \
         floor (render + connected send of the same document) {:.0} ns, emitter / floor = {:.2}; \
         datagrams: emitter {our_size} bytes on average ({sent} received), floor {floor_size} bytes ({floor_avg} on average, {floor_sent} received)",
            ratios.len().min(BACKGROUND_SAMPLES),
            median(&mut emitter_ns, BACKGROUND_SAMPLES),
            median(&mut floor_ns, BACKGROUND_SAMPLES),
            median(&mut ratios, BACKGROUND_SAMPLES),
        );
    }

    let (mut theirs_ns, mut ours_ns, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let other_before = other_sink.count();
    let mut requests = 0;
    g.bench_function("opentelemetry-aws exporter vs xray-sdk emitter", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            let mut theirs = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let k = left.min(CHUNK);
                let before = cpu_of_threads(OTEL_BATCH_THREAD);
                time_requests(&mut otel, req, k);
                otel.flush();
                theirs += cpu_of_threads(OTEL_BATCH_THREAD).saturating_sub(before);
                left -= k;
            }
            requests += iters;
            let mine = emitter(&mut ours, iters);
            let per = |d: Duration| d.as_secs_f64() * 1e9 / iters as f64;
            theirs_ns.push(per(theirs));
            ours_ns.push(per(mine));
            ratios.push(theirs.as_secs_f64() / mine.as_secs_f64().max(1e-12));
            start.elapsed()
        })
    });
    if ratios.is_empty() {
        g.finish();
        return;
    }
    eprintln!(
        "paired background opentelemetry-aws: median of {} samples: xray-emitter {:.0} ns of CPU per W2 request, \
         opentelemetry-aws batch thread {:.0} ns (4 spans), opentelemetry-aws / xray-sdk = {:.2}",
        ratios.len().min(BACKGROUND_SAMPLES),
        median(&mut ours_ns, BACKGROUND_SAMPLES),
        median(&mut theirs_ns, BACKGROUND_SAMPLES),
        median(&mut ratios, BACKGROUND_SAMPLES),
    );
    summary(
        "background",
        &otel,
        &other_sink,
        other_before,
        requests * 4,
        true,
    );
    g.finish();
}

fn delivered(c: &mut Criterion, req: &Request) {
    let mut g = c.benchmark_group("delivered");
    g.throughput(Throughput::Elements(BURST));
    g.sample_size(10);
    let mut peers = all_peers().unwrap();
    let sink = Sink::start().unwrap();
    peers.push((
        Box::new(OtelAwsPeer::new(sink.addr(), Some(1 << 20)).unwrap()),
        sink,
    ));
    for (mut peer, sink) in peers {
        let mut requests = 0u64;
        let per_request = peer.datagrams_per_request();
        let start_count = sink.count();
        g.bench_function(peer.name(), |b| {
            b.iter_custom(|iters| {
                let mut charged = Duration::ZERO;
                for _ in 0..iters {
                    let before = sink.count();
                    let start = Instant::now();
                    for _ in 0..BURST {
                        peer.request(req);
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
        summary(
            "delivered",
            &*peer,
            &sink,
            start_count,
            requests * per_request,
            requests > 0,
        );
    }
    g.finish();
}

fn flush_per_request(c: &mut Criterion, req: &Request) {
    let mut g = c.benchmark_group("flush_per_request");
    g.throughput(Throughput::Elements(1));
    for (mut peer, sink) in all_peers().unwrap() {
        let mut requests = 0u64;
        let start_count = sink.count();
        g.bench_function(peer.name(), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    peer.request(req);
                    peer.flush();
                }
                requests += iters;
                start.elapsed()
            })
        });
        let produced = requests * peer.datagrams_per_request();
        summary(
            "flush_per_request",
            &*peer,
            &sink,
            start_count,
            produced,
            requests > 0,
        );
    }
    g.finish();
}

/// `PEERS_BENCH_LOOP=<w2|unsampled>:<requests>`: that many of xray-sdk's requests as the
/// `w2` or `unsampled` group runs them (header parsed per request), in chunks of 256 with the
/// queue drained after each, and nothing else; for callgrind (`--toggle-collect=*run_loop*`).
fn fixed_loop(spec: &str) {
    let (what, n) = spec
        .split_once(':')
        .expect("PEERS_BENCH_LOOP=<w2|unsampled>:<requests>");
    let n: u64 = n.parse().expect("a number of requests");
    let sink = Sink::start().unwrap();
    let mut ours = XraySdkPeer::new(sink.addr());
    let req = Request::new(&fresh_header());
    let req = match what {
        "w2" => req,
        "unsampled" => req.unsampled(),
        other => panic!("PEERS_BENCH_LOOP: {other}? (w2 or unsampled)"),
    };
    let mut left = n;
    while left > 0 {
        let chunk = left.min(CHUNK);
        run_loop(&mut ours, &req, chunk);
        ours.flush();
        left -= chunk;
    }
}

/// The measured part of [`fixed_loop`]: one chunk.
#[inline(never)]
fn run_loop(peer: &mut dyn Peer, req: &Request, n: u64) {
    time_requests(peer, req, n);
}

fn main() {
    if let Ok(spec) = std::env::var("PEERS_BENCH_LOOP") {
        fixed_loop(&spec);
        return;
    }
    // Before any thread exists: xray-lite reads its context from this variable.
    let header = fresh_header();
    set_lambda_trace_env(&header);
    let req = Request::new(&header);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!("load average at start: {}", load.trim());
    let cpu0 = this_thread_cpu();
    let mut c = Criterion::default().configure_from_args();
    paired(&mut c, Workload::W2, &req);
    paired(&mut c, Workload::W1, &req);
    paired(&mut c, Workload::Unsampled, &req);
    background(&mut c, &req);
    delivered(&mut c, &req);
    flush_per_request(&mut c, &req);
    c.final_summary();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!(
        "load average at end: {} (benchmark thread CPU {:.1} s)",
        load.trim(),
        this_thread_cpu().saturating_sub(cpu0).as_secs_f64()
    );
}
