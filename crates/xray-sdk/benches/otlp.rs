//! The OTLP exporter's costs, side by side in one run (feature `otlp`):
//!
//! - `otlp_request_path`: the W2 request (a segment with its `http` block and three
//!   DynamoDB calls, as in the `core` bench) timed on the serving thread with the UDP exporter
//!   and with the OTLP exporter, **paired**: per criterion sample, a chunk of 256 requests to
//!   each recorder in alternating order, each recorder flushed outside the timed part. Ends
//!   with a `paired` line on stderr: both medians and the median of the per-sample ratios.
//! - `otlp_background`: background CPU per W2 request (4 spans) sent as OTLP/HTTP protobuf to
//!   the same local receiver: xray-sdk's `xray-emitter` thread against opentelemetry_sdk's
//!   `BatchSpanProcessor` thread plus the blocking reqwest client's runtime thread (the
//!   HTTP exporter of `opentelemetry-otlp` with its default client sends through it), the same
//!   four spans with the same attributes, both with the batch processor's defaults (batches of
//!   512 spans, a queue of 2048). Per sample: a chunk of 256 requests to each, then a flush,
//!   CPU read from `/proc/self/task/<tid>/schedstat` before and after. Ends with a `paired`
//!   line and the receiver's counts per library (requests, spans, attributes, bytes), so that
//!   both are seen sending the same spans and nothing dropped.
//!
//! `cargo bench -p xray-sdk --features otlp --bench otlp -- --warm-up-time 1 --measurement-time 3`
//!
//! With `OTLP_BENCH_LOOP=udp:N` (or `otlp:N`, `otel:N`) it runs N W2 requests and nothing else, for
//! instruction counts under `valgrind --tool=callgrind --separate-threads=yes`.

#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use criterion::{Criterion, Throughput};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId as OtelTraceId, TraceState,
    Tracer, TracerProvider as _,
};
use opentelemetry::{Array, KeyValue, StringValue, Value};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracer, SdkTracerProvider};
use prost::Message as _;
use xray_sdk::otlp::OtlpSettings;
use xray_sdk::plugins::Plugins;
use xray_sdk::sampling::AlwaysSample;
use xray_sdk::{Record, Recorder, TraceHeader, TracesExporter};

const HEADER: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
const SERVICE: &str = "orders-api";
/// Request IDs as DynamoDB returns them (52 characters).
const REQUEST_IDS: [&str; 3] = [
    "V4KL2QAGFH8IL1L7S5N2S8HUGRVV4KQNSO5AEMVJF66Q9ASUAAJG",
    "8NQ2P0V6CL1B8PRVG9N7Q6S3HTFV4KQNSO5AEMVJF66Q9ASUAAJG",
    "J1S0R8AK4M2VHQ7T3L9GSE6UDTFV4KQNSO5AEMVJF66Q9ASUAAJG",
];
/// W2 requests per chunk.
const CHUNK: u64 = 256;
/// Criterion's samples in each group.
const SAMPLES: usize = 20;

/// What one library's requests brought to the receiver.
#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    spans: AtomicU64,
    attributes: AtomicU64,
    bytes: AtomicU64,
    undecodable: AtomicU64,
}

/// An OTLP/HTTP receiver on 127.0.0.1 (one tokio worker) that decodes every request with the
/// generated types, counts what it holds, and answers 200 with an empty response.
struct Receiver {
    addr: SocketAddr,
    counts: Arc<Counts>,
    _runtime: tokio::runtime::Runtime,
}

impl Receiver {
    fn start() -> Receiver {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otlp-receiver")
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let counts = Arc::new(Counts::default());
        let app = Router::new()
            .route("/v1/traces", post(receive))
            .with_state(Arc::clone(&counts));
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            addr,
            counts,
            _runtime: runtime,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    fn line(&self) -> String {
        let c = &self.counts;
        let requests = c.requests.load(Ordering::Relaxed);
        let spans = c.spans.load(Ordering::Relaxed);
        format!(
            "{requests} requests, {spans} spans, {:.2} attributes per span, {:.0} bytes per span, {} undecodable",
            c.attributes.load(Ordering::Relaxed) as f64 / spans.max(1) as f64,
            c.bytes.load(Ordering::Relaxed) as f64 / spans.max(1) as f64,
            c.undecodable.load(Ordering::Relaxed),
        )
    }
}

async fn receive(
    State(counts): State<Arc<Counts>>,
    body: Bytes,
) -> impl axum::response::IntoResponse {
    counts.requests.fetch_add(1, Ordering::Relaxed);
    counts.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    match ExportTraceServiceRequest::decode(&body[..]) {
        Ok(request) => {
            for scope in request.resource_spans.iter().flat_map(|r| &r.scope_spans) {
                counts
                    .spans
                    .fetch_add(scope.spans.len() as u64, Ordering::Relaxed);
                let attributes: usize = scope.spans.iter().map(|s| s.attributes.len()).sum();
                counts
                    .attributes
                    .fetch_add(attributes as u64, Ordering::Relaxed);
            }
        }
        Err(_) => {
            counts.undecodable.fetch_add(1, Ordering::Relaxed);
        }
    }
    (
        [("content-type", "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
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

/// CPU time used so far by this process's threads whose name starts with one of `prefixes`.
fn cpu_of(prefixes: &[&str]) -> Duration {
    let mut total = Duration::ZERO;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if prefixes.iter().any(|p| comm.trim().starts_with(p)) {
                total += thread_cpu(&task.path());
            }
        }
    }
    total
}

/// The kernel's names (15 bytes) of the threads measured.
const XRAY_EMITTER: &[&str] = &["xray-emitter"];
/// opentelemetry_sdk's `OpenTelemetry.Traces.BatchProcessor` and reqwest's blocking client's
/// `reqwest-internal-sync-runtime`.
const OTEL_EXPORT: &[&str] = &["OpenTelemetry.T", "reqwest-interna"];

fn median(v: &mut Vec<f64>) -> f64 {
    let warm_up = v.len().saturating_sub(SAMPLES);
    v.drain(..warm_up);
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn builder() -> xray_sdk::RecorderBuilder {
    Recorder::builder()
        .ignore_env()
        .service_name(SERVICE)
        .centralized_sampling(false)
        .plugins(Plugins::none())
        .sampler(AlwaysSample)
        .queue_capacity(1 << 16)
}

fn udp_recorder(addr: &str) -> Recorder {
    builder().daemon_address(addr).build().unwrap()
}

fn otlp_recorder(url: &str) -> Recorder {
    builder()
        .exporter(TracesExporter::Otlp)
        .otlp(OtlpSettings::new().endpoint(url))
        .build()
        .unwrap()
}

/// One DynamoDB call as the AWS interceptor records it (W1).
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

/// The W2 request on xray-sdk.
fn w2_request(rec: &Recorder, incoming: &TraceHeader) {
    let seg = rec.segment(SERVICE).header(incoming).begin_with(|p| {
        p.set_http_method("GET");
        p.set_http_url("https://orders.example.com/orders/42");
        p.set_http_client_ip("203.0.113.7", true);
    });
    for id in REQUEST_IDS {
        dynamodb_call(&seg, id);
    }
    seg.end_with(|p| p.set_http_response(200, None));
}

/// The same W2 request on opentelemetry_sdk: the spans and attributes xray-sdk's mapping
/// sends (a SERVER span under the remote parent, three `aws-api` CLIENT spans).
struct OtelPeer {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    parent: opentelemetry::Context,
}

impl OtelPeer {
    fn new(url: &str) -> OtelPeer {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .build()
            .unwrap();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(BatchSpanProcessor::builder(exporter).build())
            .with_resource(Resource::builder().with_service_name(SERVICE).build())
            .build();
        let tracer = provider.tracer("bench");
        let remote = SpanContext::new(
            OtelTraceId::from_hex("5759e988bd862e3fe1be46a994272793").unwrap(),
            SpanId::from_hex("53995c3f42cd8ad8").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        OtelPeer {
            provider,
            tracer,
            parent: opentelemetry::Context::new().with_remote_span_context(remote),
        }
    }

    fn request(&self) {
        let server = self
            .tracer
            .span_builder(SERVICE)
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("url.full", "https://orders.example.com/orders/42"),
                KeyValue::new("client.address", "203.0.113.7"),
            ])
            .start_with_context(&self.tracer, &self.parent);
        let cx = self.parent.with_span(server);
        for id in REQUEST_IDS {
            let mut span = self
                .tracer
                .span_builder("DynamoDB")
                .with_kind(SpanKind::Client)
                .with_attributes([
                    KeyValue::new("rpc.system", "aws-api"),
                    KeyValue::new("rpc.service", "DynamoDB"),
                    KeyValue::new("rpc.method", "GetItem"),
                    KeyValue::new("cloud.region", "us-east-1"),
                    KeyValue::new("aws.region", "us-east-1"),
                    KeyValue::new(
                        "aws.dynamodb.table_names",
                        Value::Array(Array::String(vec![StringValue::from("orders")])),
                    ),
                ])
                .start_with_context(&self.tracer, &cx);
            opentelemetry::trace::Span::set_attribute(
                &mut span,
                KeyValue::new("http.response.status_code", 200),
            );
            opentelemetry::trace::Span::set_attribute(
                &mut span,
                KeyValue::new("aws.request_id", id),
            );
            opentelemetry::trace::Span::end(&mut span);
        }
        let span = cx.span();
        span.set_attribute(KeyValue::new("http.response.status_code", 200));
        span.end();
    }

    fn flush(&self) {
        self.provider.force_flush().unwrap();
    }
}

fn request_path(c: &mut Criterion) {
    let receiver = Receiver::start();
    let udp_sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp = udp_recorder(&udp_sink.local_addr().unwrap().to_string());
    // Read the datagrams so the socket's buffer never fills.
    std::thread::spawn(move || {
        let mut buf = [0u8; 65_536];
        while udp_sink.recv(&mut buf).is_ok() {}
    });
    let otlp = otlp_recorder(&receiver.url());
    let incoming = TraceHeader::parse(HEADER).with_sampled(xray_sdk::SamplingFlag::Unknown);
    let chunk = |rec: &Recorder, n: u64| {
        let start = Instant::now();
        for _ in 0..n {
            w2_request(rec, &incoming);
        }
        let elapsed = start.elapsed();
        rec.flush(Duration::from_secs(10)).unwrap();
        elapsed
    };
    let (mut udp_ns, mut otlp_ns, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut g = c.benchmark_group("otlp_request_path");
    g.throughput(Throughput::Elements(1));
    g.sample_size(SAMPLES);
    let mut turn = false;
    g.bench_function("W2 sampled: OTLP exporter vs UDP exporter", |b| {
        b.iter_custom(|iters| {
            let (mut u, mut o) = (Duration::ZERO, Duration::ZERO);
            let mut left = iters;
            while left > 0 {
                let n = left.min(CHUNK);
                turn = !turn;
                if turn {
                    u += chunk(&udp, n);
                    o += chunk(&otlp, n);
                } else {
                    o += chunk(&otlp, n);
                    u += chunk(&udp, n);
                }
                left -= n;
            }
            let per = |d: Duration| d.as_secs_f64() * 1e9 / iters as f64;
            udp_ns.push(per(u));
            otlp_ns.push(per(o));
            ratios.push(o.as_secs_f64() / u.as_secs_f64().max(1e-12));
            o
        })
    });
    g.finish();
    if ratios.is_empty() {
        return;
    }
    eprintln!(
        "paired otlp_request_path: median of {} samples: W2 request with the OTLP exporter {:.0} ns, with the UDP exporter {:.0} ns, OTLP / UDP = {:.3}",
        ratios.len().min(SAMPLES),
        median(&mut otlp_ns),
        median(&mut udp_ns),
        median(&mut ratios),
    );
    let (u, o) = (udp.stats(), otlp.stats());
    eprintln!(
        "summary otlp_request_path: UDP {} datagrams sent, {} dropped; OTLP {} spans exported, {} dropped, {} requests; receiver: {}",
        u.sent,
        u.dropped_queue_full + u.dropped_too_large + u.send_errors,
        o.spans_exported,
        o.spans_dropped + o.dropped_queue_full,
        o.sent,
        receiver.line()
    );
}

fn background(c: &mut Criterion) {
    let ours_rx = Receiver::start();
    let theirs_rx = Receiver::start();
    let ours = otlp_recorder(&ours_rx.url());
    let theirs = OtelPeer::new(&theirs_rx.url());
    let incoming = TraceHeader::parse(HEADER).with_sampled(xray_sdk::SamplingFlag::Unknown);
    let our_chunk = |n: u64| {
        let before = cpu_of(XRAY_EMITTER);
        for _ in 0..n {
            w2_request(&ours, &incoming);
        }
        ours.flush(Duration::from_secs(10)).unwrap();
        cpu_of(XRAY_EMITTER).saturating_sub(before)
    };
    let their_chunk = |n: u64| {
        let before = cpu_of(OTEL_EXPORT);
        for _ in 0..n {
            theirs.request();
        }
        theirs.flush();
        cpu_of(OTEL_EXPORT).saturating_sub(before)
    };
    let (mut ours_ns, mut theirs_ns, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut requests = 0;
    let mut g = c.benchmark_group("otlp_background");
    g.throughput(Throughput::Elements(1));
    g.sample_size(SAMPLES);
    let mut turn = false;
    g.bench_function(
        "W2 as OTLP/HTTP protobuf: opentelemetry-otlp batch export vs xray-sdk emitter",
        |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                let (mut mine, mut other) = (Duration::ZERO, Duration::ZERO);
                let mut left = iters;
                while left > 0 {
                    let n = left.min(CHUNK);
                    turn = !turn;
                    if turn {
                        mine += our_chunk(n);
                        other += their_chunk(n);
                    } else {
                        other += their_chunk(n);
                        mine += our_chunk(n);
                    }
                    left -= n;
                }
                requests += iters;
                let per = |d: Duration| d.as_secs_f64() * 1e9 / iters as f64;
                ours_ns.push(per(mine));
                theirs_ns.push(per(other));
                ratios.push(other.as_secs_f64() / mine.as_secs_f64().max(1e-12));
                start.elapsed()
            })
        },
    );
    g.finish();
    if ratios.is_empty() {
        return;
    }
    eprintln!(
        "paired otlp_background: median of {} samples: xray-emitter {:.0} ns of CPU per W2 request (4 spans), \
         opentelemetry-otlp batch processor + reqwest blocking client {:.0} ns, theirs / ours = {:.2}",
        ratios.len().min(SAMPLES),
        median(&mut ours_ns),
        median(&mut theirs_ns),
        median(&mut ratios),
    );
    let s = ours.stats();
    eprintln!(
        "summary otlp_background: {requests} W2 requests each; xray-sdk: {} spans exported, {} dropped, {} retries; receiver: {}",
        s.spans_exported,
        s.spans_dropped + s.dropped_queue_full,
        s.export_retries,
        ours_rx.line()
    );
    eprintln!(
        "summary otlp_background: opentelemetry-otlp: receiver: {}",
        theirs_rx.line()
    );
}

/// `OTLP_BENCH_LOOP=udp:N` or `otlp:N`: N W2 requests to a recorder with that exporter, in
/// chunks of 256 each flushed, outside criterion, for instruction counts under callgrind
/// (`--separate-threads=yes`: the main thread's count is the request path, the emitter's
/// the background work); `otel:N`: the same requests through opentelemetry_sdk and
/// opentelemetry-otlp.
fn fixed_loop(spec: &str) {
    let (what, n) = spec.split_once(':').unwrap();
    let n: u64 = n.parse().unwrap();
    let receiver = Receiver::start();
    if what == "otel" {
        let peer = OtelPeer::new(&receiver.url());
        let mut left = n;
        while left > 0 {
            let k = left.min(CHUNK);
            for _ in 0..k {
                peer.request();
            }
            peer.flush();
            left -= k;
        }
        eprintln!("otel: {n} W2 requests; receiver: {}", receiver.line());
        return;
    }
    let udp_sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let rec = match what {
        "udp" => udp_recorder(&udp_sink.local_addr().unwrap().to_string()),
        "otlp" => otlp_recorder(&receiver.url()),
        other => panic!("OTLP_BENCH_LOOP: {other}? (udp, otlp or otel)"),
    };
    let incoming = TraceHeader::parse(HEADER).with_sampled(xray_sdk::SamplingFlag::Unknown);
    let mut left = n;
    while left > 0 {
        let k = left.min(CHUNK);
        for _ in 0..k {
            w2_request(&rec, &incoming);
        }
        rec.flush(Duration::from_secs(30)).unwrap();
        left -= k;
    }
    let s = rec.stats();
    eprintln!(
        "{what}: {n} W2 requests; {} datagrams or requests sent, {} spans exported",
        s.sent, s.spans_exported
    );
}

fn main() {
    if let Ok(spec) = std::env::var("OTLP_BENCH_LOOP") {
        fixed_loop(&spec);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    request_path(&mut c);
    background(&mut c);
    c.final_summary();
}
