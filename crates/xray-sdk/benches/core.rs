//! Core benchmarks: header parse/format, the request-path cost of W1 (one DynamoDB call in an
//! open segment) and W2 (a request with its `http` block and three such calls; sampled and
//! unsampled), the rendering of a W2 document on the emitter thread, and the emitter's CPU
//! per W2 document against its floor (render + one connected UDP send of the same bytes) in
//! the same samples, to a loopback UDP receiver that counts what arrives.
//!
//! `cargo bench -p xray-sdk --bench core -- --warm-up-time 1 --measurement-time 3`

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::hint::black_box;
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use xray_sdk::Record;

use criterion::{Criterion, Throughput, criterion_group};
use xray_sdk::plugins::Plugins;
use xray_sdk::sampling::{AlwaysSample, NeverSample};
use xray_sdk::testing::{RecordedSegment, RenderScratch};
use xray_sdk::{Recorder, TraceHeader};

const HEADER: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

/// A receiver on its own thread counting datagrams, like a daemon would read them.
fn sink() -> (String, Arc<AtomicU64>) {
    // A large receive buffer (capped by net.core.rmem_max), as a daemon would ask for.
    let raw = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    let _ = raw.set_recv_buffer_size(8 * 1024 * 1024);
    raw.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    let sock: UdpSocket = raw.into();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let addr = sock.local_addr().unwrap().to_string();
    let count = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&count);
    std::thread::spawn(move || {
        let mut buf = [0u8; 65_536];
        loop {
            if sock.recv(&mut buf).is_ok() {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    (addr, count)
}

fn recorder(addr: &str, sampled: bool) -> Recorder {
    let b = Recorder::builder()
        .ignore_env()
        .daemon_address(addr)
        .centralized_sampling(false)
        .plugins(Plugins::none())
        .queue_capacity(1 << 16);
    if sampled {
        b.sampler(AlwaysSample)
    } else {
        b.sampler(NeverSample)
    }
    .build()
    .unwrap()
}

fn header(c: &mut Criterion) {
    let mut g = c.benchmark_group("header");
    g.bench_function("parse", |b| {
        b.iter(|| TraceHeader::parse(black_box(HEADER)))
    });
    let h = TraceHeader::parse(HEADER);
    g.bench_function("format", |b| b.iter(|| black_box(&h).to_header_value()));
    g.finish();
}

/// Request IDs as DynamoDB returns them (52 characters).
const REQUEST_IDS: [&str; 3] = [
    "V4KL2QAGFH8IL1L7S5N2S8HUGRVV4KQNSO5AEMVJF66Q9ASUAAJG",
    "8NQ2P0V6CL1B8PRVG9N7Q6S3HTFV4KQNSO5AEMVJF66Q9ASUAAJG",
    "J1S0R8AK4M2VHQ7T3L9GSE6UDTFV4KQNSO5AEMVJF66Q9ASUAAJG",
];

/// One DynamoDB-style call recorded as a real AWS call is: namespace, operation, region and
/// table when it begins, status and request ID when it ends (W1).
fn dynamodb_call(parent: &xray_sdk::Context, request_id: &str) {
    let sub = parent.begin_subsegment_with("DynamoDB", |p| {
        p.set_namespace(xray_sdk::Namespace::Aws);
        p.set_aws_operation("GetItem");
        p.set_aws_region("us-east-1");
        p.set_aws_table_name("orders");
    });
    sub.end_with(|p| {
        p.set_http_response(200, None);
        p.set_aws_request_id(request_id);
    });
}

/// A request as a service records it: a segment with its `http` block and three DynamoDB
/// calls (W2).
fn w2_request(rec: &Recorder, incoming: &TraceHeader) {
    let seg = rec.segment("orders-api").header(incoming).begin_with(|p| {
        p.set_http_method("GET");
        p.set_http_url("https://orders.example.com/orders/42");
        p.set_http_client_ip("203.0.113.7", true);
    });
    for id in REQUEST_IDS {
        dynamodb_call(&seg, id);
    }
    seg.end_with(|p| p.set_http_response(200, None));
}

fn request_path(c: &mut Criterion) {
    let (addr, _count) = sink();
    let mut g = c.benchmark_group("request_path");
    for (label, sampled) in [("W2 sampled", true), ("W2 unsampled", false)] {
        let rec = recorder(&addr, sampled);
        let incoming = TraceHeader::parse(HEADER).with_sampled(xray_sdk::SamplingFlag::Unknown);
        g.bench_function(label, |b| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(256);
                    let start = Instant::now();
                    for _ in 0..n {
                        w2_request(&rec, &incoming);
                    }
                    elapsed += start.elapsed();
                    rec.flush(Duration::from_secs(10)).ok();
                    left -= n;
                }
                elapsed
            })
        });
    }
    {
        let rec = recorder(&addr, true);
        g.bench_function("W1 one call in an open segment", |b| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(64);
                    let seg = rec.segment("orders-api").begin();
                    let start = Instant::now();
                    for _ in 0..n {
                        dynamodb_call(&seg, REQUEST_IDS[0]);
                    }
                    elapsed += start.elapsed();
                    seg.end();
                    rec.flush(Duration::from_secs(10)).ok();
                    left -= n;
                }
                elapsed
            })
        });
    }
    g.finish();
}

/// A subsegment with ten `aws` fields set one by one through the open-ended
/// `set_aws_field` (four of them known fields, six not).
fn subsegment_with_ten_aws_fields(seg: &xray_sdk::Context) {
    let sub = seg.begin_subsegment("DynamoDB");
    for (k, v) in [
        ("operation", "GetItem"),
        ("region", "us-east-1"),
        ("request_id", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
        ("table_name", "items"),
        ("a", "1"),
        ("b", "2"),
        ("c", "3"),
        ("d", "4"),
        ("e", "5"),
        ("f", "6"),
    ] {
        sub.set_aws_field(k, v);
    }
    sub.end();
}

fn recording(c: &mut Criterion) {
    let (addr, _count) = sink();
    let rec = recorder(&addr, true);
    let mut g = c.benchmark_group("recording");
    g.bench_function("subsegment + 10 aws fields", |b| {
        b.iter_custom(|iters| {
            let seg = rec.segment("api").begin();
            let start = Instant::now();
            for _ in 0..iters {
                subsegment_with_ten_aws_fields(&seg);
            }
            let elapsed = start.elapsed();
            drop(seg);
            rec.flush(Duration::from_secs(10)).ok();
            elapsed
        })
    });
    g.bench_function("subsegment + metadata", |b| {
        b.iter_custom(|iters| {
            let seg = rec.segment("api").begin();
            let start = Instant::now();
            for i in 0..iters {
                let sub = seg.begin_subsegment("work");
                sub.put_metadata_in("tracing", "field", i);
                sub.end();
            }
            let elapsed = start.elapsed();
            drop(seg);
            rec.flush(Duration::from_secs(10)).ok();
            elapsed
        })
    });
    g.finish();
}

fn serialization(c: &mut Criterion) {
    let batch = RecordedSegment::w2();
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut scratch = RenderScratch::default();
    c.bench_function("serialize/W2 document", |b| {
        b.iter(|| batch.render(&mut buf, &mut scratch))
    });
}

/// CPU time one thread has used, from its `schedstat` (nanoseconds).
fn thread_cpu(task: &std::path::Path) -> Duration {
    let stat = std::fs::read_to_string(task.join("schedstat")).unwrap_or_default();
    let ns = stat
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(ns)
}

/// CPU time used so far by the threads named `xray-emitter`.
fn emitter_cpu() -> Duration {
    let mut total = Duration::ZERO;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim() == "xray-emitter" {
                total += thread_cpu(&task.path());
            }
        }
    }
    total
}

/// Criterion's samples in the `emitter` group.
const EMITTER_SAMPLES: usize = 20;

/// The median of the last `EMITTER_SAMPLES` values: the measured samples, after the calls
/// criterion makes while warming up.
fn median(v: &mut Vec<f64>) -> f64 {
    let warm_up = v.len().saturating_sub(EMITTER_SAMPLES);
    v.drain(..warm_up);
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The emitter's CPU per W2 document against its floor, in the same samples: per sample, W2
/// requests in chunks of 256, each chunk flushed, with the `xray-emitter` thread's CPU time
/// read before and after; then as many iterations of the floor on this thread: the same
/// document rendered (`RecordedSegment::w2`) and sent on a connected UDP socket to the same
/// kind of receiver, with a 1 ms pause every 256 (as the emitter gets its work).
fn emitter(c: &mut Criterion) {
    let (addr, count) = sink();
    let rec = recorder(&addr, true);
    let incoming = TraceHeader::parse(HEADER).with_sampled(xray_sdk::SamplingFlag::Unknown);
    let floor_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    floor_sock.connect(&addr).unwrap();
    let segment = RecordedSegment::w2();
    let mut scratch = RenderScratch::default();
    let mut buf = Vec::with_capacity(64 * 1024);
    let this_thread = std::path::Path::new("/proc/thread-self");
    let (mut emitter_ns, mut floor_ns, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let stats_before = rec.stats();
    let count_before = count.load(Ordering::Relaxed);
    let mut floor_sent = 0u64;
    let mut g = c.benchmark_group("emitter");
    g.throughput(Throughput::Elements(1));
    g.sample_size(EMITTER_SAMPLES);
    g.bench_function(
        "W2 documents: emitter CPU vs render + connected send",
        |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                let mut cpu = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(256);
                    let before = emitter_cpu();
                    for _ in 0..n {
                        w2_request(&rec, &incoming);
                    }
                    rec.flush(Duration::from_secs(30)).ok();
                    cpu += emitter_cpu().saturating_sub(before);
                    left -= n;
                }
                let floor_before = thread_cpu(this_thread);
                for i in 0..iters {
                    segment.render(&mut buf, &mut scratch);
                    let _ = floor_sock.send(&buf);
                    if i % 256 == 255 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                let floor = thread_cpu(this_thread).saturating_sub(floor_before);
                floor_sent += iters;
                let per = |d: Duration| d.as_secs_f64() * 1e9 / iters as f64;
                emitter_ns.push(per(cpu));
                floor_ns.push(per(floor));
                ratios.push(cpu.as_secs_f64() / floor.as_secs_f64().max(1e-12));
                start.elapsed()
            })
        },
    );
    g.finish();
    let s = rec.stats();
    let sent = s.sent - stats_before.sent;
    // Let the receiver catch up, then check nothing vanished unaccounted.
    let deadline = Instant::now() + Duration::from_secs(5);
    while count.load(Ordering::Relaxed) - count_before < sent + floor_sent
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!(
        "emitter: median of {} samples: xray-emitter {:.0} ns of CPU per W2 document, floor \
         (render + connected send, {} bytes) {:.0} ns, emitter / floor = {:.2}; queued {} sent {} \
         dropped {} send errors {}; receiver counted {} of {} (emitter + floor)",
        ratios.len().min(EMITTER_SAMPLES),
        median(&mut emitter_ns),
        buf.len(),
        median(&mut floor_ns),
        median(&mut ratios),
        s.queued - stats_before.queued,
        sent,
        s.dropped_queue_full - stats_before.dropped_queue_full,
        s.send_errors - stats_before.send_errors,
        count.load(Ordering::Relaxed) - count_before,
        sent + floor_sent,
    );
}

criterion_group!(
    benches,
    header,
    request_path,
    recording,
    serialization,
    emitter
);
/// `CORE_BENCH_LOOP=<w1|w2|w2_unsampled|aws10>:<requests>`: runs that many requests of one
/// workload (`aws10`: a subsegment with ten `set_aws_field` calls), untimed, and exits: a fixed amount of work whose instructions callgrind counts
/// (see docs/PERFORMANCE.md).
fn fixed_loop(spec: &str) {
    let (what, n) = spec
        .split_once(':')
        .expect("CORE_BENCH_LOOP=<workload>:<requests>");
    let n: u64 = n.parse().expect("a number of requests");
    let (addr, _count) = sink();
    let rec = recorder(&addr, what != "w2_unsampled");
    let incoming = TraceHeader::parse(HEADER).with_sampled(xray_sdk::SamplingFlag::Unknown);
    run_loop(what, n, &rec, &incoming);
    rec.flush(Duration::from_secs(10)).ok();
}

/// The measured part of [`fixed_loop`], kept apart so callgrind can collect it alone
/// (`--toggle-collect=*run_loop*`).
#[inline(never)]
fn run_loop(what: &str, n: u64, rec: &Recorder, incoming: &TraceHeader) {
    let mut done = 0;
    while done < n {
        let chunk = (n - done).min(256);
        match what {
            "w1" => {
                let seg = rec.segment("orders-api").begin();
                for _ in 0..chunk.min(64) {
                    dynamodb_call(&seg, REQUEST_IDS[0]);
                }
                seg.end();
                done += chunk.min(64);
            }
            "aws10" => {
                let seg = rec.segment("api").begin();
                for _ in 0..chunk.min(64) {
                    subsegment_with_ten_aws_fields(&seg);
                }
                seg.end();
                done += chunk.min(64);
            }
            _ => {
                for _ in 0..chunk {
                    w2_request(rec, incoming);
                }
                done += chunk;
            }
        }
        rec.flush(Duration::from_secs(10)).ok();
    }
}

fn main() {
    if let Ok(spec) = std::env::var("CORE_BENCH_LOOP") {
        fixed_loop(&spec);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
