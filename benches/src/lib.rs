//! Harness for the side-by-side benchmarks (`benches/peers.rs`) and the allocation tests
//! (`tests/allocations.rs`): a loopback UDP receiver that counts every datagram that arrives,
//! fresh trace headers, and one driver per library that records the same fields.
//!
//! Workloads, the same for every library:
//!
//! - **W1**: one DynamoDB call in an open segment: a subsegment named `DynamoDB` in the `aws`
//!   namespace with four `aws` fields (operation, region and table name when it begins,
//!   request ID when it ends) and its HTTP response status (200).
//! - **W2**: one request: continue the trace of the incoming `X-Amzn-Trace-Id`, a segment
//!   with its `http` block (method, URL, client IP from `X-Forwarded-For`, status 200) and
//!   three such calls.
//! - **Unsampled**: W2 with `Sampled=0` in the incoming header.
//!
//! The URL, the client IP and the request IDs are owned by the request ([`Request`]), as in a
//! service where they come from the incoming request and from the calls' responses: a
//! library that needs owned or `'static` strings copies them.
//!
//! | library | model | datagrams per W2 request |
//! |---|---|---|
//! | `xray-sdk` (this workspace) | segment queued when it ends, rendered and sent by the `xray-emitter` thread | 1 (subsegments embedded) |
//! | `xray-lite` 0.0.9 | synchronous `send` in the caller: each subsegment twice (in progress, then complete) | 7 (3 × 2 + the segment) |
//! | `opentelemetry-aws` 0.21 | OTel spans, `BatchSpanProcessor` thread, `XrayExporter` + `XrayDaemonClient` | 4 (one per span) |
//!
//! What xray-lite's API cannot express (it records what it can): a segment that continues
//! the incoming trace (`Segment::begin` draws a new trace ID and the ID fields are private),
//! subsegments under that segment (its only context is read from `_X_AMZN_TRACE_ID`, so they
//! hang off the header's `Parent`), `x_forwarded_for` as a boolean (it is a string there),
//! and the unsampled request (it ignores `Sampled=0` and sends everything). The DynamoDB
//! fields are set by a custom `Namespace`, the way its docs say to extend it.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{Span, SpanKind, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context as OtelContext, KeyValue};
use opentelemetry_aws::trace::{XrayIdGenerator, XrayPropagator};
use opentelemetry_aws::xray_exporter::XrayExporter;
use opentelemetry_aws::xray_exporter::daemon_client::XrayDaemonClient;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider,
};
use xray_lite::Client as _;
use xray_sdk::plugins::Plugins;
use xray_sdk::{Entity, Namespace, Record, Recorder, TraceHeader};

/// The environment variable `xray-lite` reads the trace header from (its only constructor).
pub const LAMBDA_TRACE_ENV: &str = "_X_AMZN_TRACE_ID";

/// The segment's name.
pub const SERVICE: &str = "orders-api";
/// The URL of the incoming request.
pub const URL: &str = "https://orders.example.com/orders/42";
/// The client address, as read from `X-Forwarded-For`.
pub const CLIENT_IP: &str = "203.0.113.7";
/// Request IDs as DynamoDB returns them (52 characters).
pub const REQUEST_IDS: [&str; 3] = [
    "V4KL2QAGFH8IL1L7S5N2S8HUGRVV4KQNSO5AEMVJF66Q9ASUAAJG",
    "8NQ2P0V6CL1B8PRVG9N7Q6S3HTFV4KQNSO5AEMVJF66Q9ASUAAJG",
    "J1S0R8AK4M2VHQ7T3L9GSE6UDTFV4KQNSO5AEMVJF66Q9ASUAAJG",
];

/// What one incoming request carries, owned by the request.
#[derive(Debug, Clone)]
pub struct Request {
    /// The incoming `X-Amzn-Trace-Id`.
    pub header: String,
    /// The request's URL.
    pub url: String,
    /// The client address.
    pub client_ip: String,
    /// The request IDs of the three DynamoDB calls' responses.
    pub request_ids: [String; 3],
}

impl Request {
    /// A request carrying `header`.
    pub fn new(header: &str) -> Self {
        Request {
            header: header.to_owned(),
            url: URL.to_owned(),
            client_ip: CLIENT_IP.to_owned(),
            request_ids: REQUEST_IDS.map(str::to_owned),
        }
    }

    /// The same request with `Sampled=0` in its header.
    pub fn unsampled(&self) -> Self {
        Request {
            header: self.header.replace("Sampled=1", "Sampled=0"),
            ..self.clone()
        }
    }
}

/// A sampled incoming header whose trace ID carries the current time (opentelemetry-aws drops
/// documents whose trace ID is more than 30 days old).
pub fn fresh_header() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("Root=1-{now:08x}-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
}

/// Sets `_X_AMZN_TRACE_ID`, which `xray-lite` reads on every request.
///
/// Call it at the start of `main`, before any thread is started: changing the environment
/// while another thread reads it is undefined behaviour on some platforms.
#[allow(unsafe_code)]
pub fn set_lambda_trace_env(header: &str) {
    // SAFETY: documented precondition: called while the process has a single thread.
    unsafe { std::env::set_var(LAMBDA_TRACE_ENV, header) };
}

/// A receiver on 127.0.0.1 that counts datagrams and their bytes on its own thread, with a
/// receive buffer as large as the kernel allows (`net.core.rmem_max`), so that the count
/// measures what the library delivered rather than how fast the receiver reads.
#[derive(Debug)]
pub struct Sink {
    addr: SocketAddr,
    count: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Sink {
    /// Binds a free port on 127.0.0.1 and starts counting.
    pub fn start() -> io::Result<Sink> {
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )?;
        // Best effort: the kernel caps this at rmem_max.
        let _ = socket.set_recv_buffer_size(16 << 20);
        let bind: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
        socket.bind(&bind.into())?;
        let socket: UdpSocket = socket.into();
        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
        let addr = socket.local_addr()?;
        let count = Arc::new(AtomicU64::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, b, s) = (Arc::clone(&count), Arc::clone(&bytes), Arc::clone(&stop));
        std::thread::Builder::new()
            .name("bench-udp-sink".into())
            .spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !s.load(Ordering::Relaxed) {
                    if let Ok(n) = socket.recv(&mut buf) {
                        b.fetch_add(n as u64, Ordering::Relaxed);
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })?;
        Ok(Sink {
            addr,
            count,
            bytes,
            stop,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Datagrams received so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Bytes received so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Waits until `target` datagrams have arrived in total, or until nothing arrived for
    /// 100 ms, or `max_wait` passed; returns the total count.
    pub fn settle(&self, target: u64, max_wait: Duration) -> u64 {
        let deadline = Instant::now() + max_wait;
        let mut last = self.count();
        let mut last_change = Instant::now();
        loop {
            let now = self.count();
            if now >= target || Instant::now() >= deadline {
                return now;
            }
            if now != last {
                last = now;
                last_change = Instant::now();
            } else if last_change.elapsed() > Duration::from_millis(100) {
                return now;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One library driven with the common workloads. Only what the library does on the request
/// path is in [`Peer::request`] and [`Peer::call`].
pub trait Peer {
    /// Short name used in benchmark IDs.
    fn name(&self) -> &'static str;
    /// W2, or the unsampled request when the header says `Sampled=0`.
    fn request(&mut self, req: &Request);
    /// Opens the segment W1's calls are recorded in (not part of W1).
    fn open(&mut self, req: &Request);
    /// W1: one DynamoDB call in the open segment.
    fn call(&mut self, request_id: &str);
    /// Ends the open segment (not part of W1).
    fn close(&mut self);
    /// Waits until everything recorded so far has been handed to the operating system (a
    /// no-op for synchronous libraries).
    fn flush(&self);
    /// Datagrams one W2 request produces when nothing is dropped.
    fn datagrams_per_request(&self) -> u64;
    /// Datagrams `calls` W1 calls and their open segment produce when nothing is dropped.
    fn datagrams_per_segment(&self, calls: u64) -> u64;
    /// Whether an unsampled request records and sends anything.
    fn records_unsampled(&self) -> bool {
        false
    }
}

/// One DynamoDB call recorded through xray-sdk, as a real AWS call is: namespace, operation,
/// region and table when it begins, status and request ID when it ends (W1).
pub fn xray_sdk_call(parent: &xray_sdk::Context, request_id: &str) {
    let sub = parent.begin_subsegment_with("DynamoDB", |p| {
        p.set_namespace(Namespace::Aws);
        p.set_aws_operation("GetItem");
        p.set_aws_region("us-east-1");
        p.set_aws_table_name("orders");
    });
    sub.end_with(|p| {
        p.set_http_response(200, None);
        p.set_aws_request_id(request_id);
    });
}

/// The segment of a W2 request through xray-sdk, begun with its `http` request fields under
/// the parsed incoming header.
#[inline]
pub fn xray_sdk_segment(recorder: &Recorder, incoming: &TraceHeader, req: &Request) -> Entity {
    recorder.segment(SERVICE).header(incoming).begin_with(|p| {
        p.set_http_method("GET");
        p.set_http_url(req.url.as_str());
        p.set_http_client_ip(req.client_ip.as_str(), true);
    })
}

/// One W2 request (or the unsampled one) through xray-sdk.
pub fn xray_sdk_request(recorder: &Recorder, req: &Request) {
    let incoming = TraceHeader::parse(&req.header);
    let segment = xray_sdk_segment(recorder, &incoming, req);
    for id in &req.request_ids {
        xray_sdk_call(&segment, id);
    }
    segment.end_with(|p| p.set_http_response(200, None));
}

/// This workspace's SDK, default configuration (queue of 8192 segments).
#[derive(Debug)]
pub struct XraySdkPeer {
    recorder: Recorder,
    open: Option<Entity>,
}

impl XraySdkPeer {
    /// A recorder sending to `addr`; sampling follows the incoming header.
    pub fn new(addr: SocketAddr) -> Self {
        let recorder = Recorder::builder()
            .ignore_env()
            .service_name(SERVICE)
            .daemon_address(addr.to_string())
            .centralized_sampling(false)
            .plugins(Plugins::none())
            .build()
            .unwrap_or_else(|_| Recorder::disabled());
        XraySdkPeer {
            recorder,
            open: None,
        }
    }

    /// The recorder, for its counters.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }
}

impl Peer for XraySdkPeer {
    fn name(&self) -> &'static str {
        "xray-sdk"
    }

    fn request(&mut self, req: &Request) {
        xray_sdk_request(&self.recorder, req);
    }

    fn open(&mut self, req: &Request) {
        let incoming = TraceHeader::parse(&req.header);
        self.open = Some(self.recorder.segment(SERVICE).header(&incoming).begin());
    }

    fn call(&mut self, request_id: &str) {
        if let Some(segment) = &self.open {
            xray_sdk_call(segment, request_id);
        }
    }

    fn close(&mut self) {
        if let Some(segment) = self.open.take() {
            segment.end();
        }
    }

    fn flush(&self) {
        let _ = self.recorder.flush(Duration::from_secs(30));
    }

    fn datagrams_per_request(&self) -> u64 {
        1
    }

    fn datagrams_per_segment(&self, calls: u64) -> u64 {
        // Completed subsegments are streamed ahead of their segment in groups past the
        // streaming threshold (100); the W1 chunks stay under it.
        if calls == 0 { 1 } else { 1 + (calls - 1) / 100 }
    }
}

/// A DynamoDB call for xray-lite: its `Namespace` extension point, which writes the
/// subsegment's fields when it is entered and again when it is dropped.
#[derive(Debug)]
pub struct DynamoDbNamespace {
    /// The response's request ID, known when the call returns.
    pub request_id: Option<String>,
    /// The response's status, known when the call returns.
    pub status: Option<u16>,
}

impl xray_lite::Namespace for DynamoDbNamespace {
    fn name(&self, _prefix: &str) -> String {
        "DynamoDB".to_owned()
    }

    fn update_subsegment(&self, subsegment: &mut xray_lite::Subsegment) {
        subsegment.namespace = Some("aws".to_owned());
        subsegment.aws = Some(xray_lite::AwsOperation {
            operation: Some("GetItem".to_owned()),
            region: Some("us-east-1".to_owned()),
            table_name: Some("orders".to_owned()),
            request_id: self.request_id.clone(),
            ..Default::default()
        });
        if let Some(status) = self.status {
            subsegment.http = Some(xray_lite::Http {
                request: None,
                response: Some(xray_lite::Response {
                    status: Some(status),
                    content_length: None,
                }),
            });
        }
    }
}

/// `xray-lite` 0.0.9: the context comes from `_X_AMZN_TRACE_ID` (set it before building this),
/// subsegments are sent synchronously when entered and when dropped, and the segment, which
/// xray-lite has no API to send, is built as its `Segment` struct and sent with
/// `Client::send`.
#[derive(Debug)]
pub struct XrayLitePeer {
    client: xray_lite::DaemonClient,
    open: Option<xray_lite::SubsegmentContext<xray_lite::DaemonClient>>,
}

impl XrayLitePeer {
    /// A daemon client connected to `addr`.
    pub fn new(addr: SocketAddr) -> io::Result<Self> {
        let client = xray_lite::DaemonClient::new(addr).map_err(io::Error::other)?;
        Ok(XrayLitePeer { client, open: None })
    }

    fn call_in(ctx: &impl xray_lite::Context, request_id: &str) {
        let mut session = ctx.enter_subsegment(DynamoDbNamespace {
            request_id: None,
            status: None,
        });
        if let Some(ns) = session.namespace_mut() {
            ns.request_id = Some(request_id.to_owned());
            ns.status = Some(200);
        }
        drop(session);
    }
}

impl Peer for XrayLitePeer {
    fn name(&self) -> &'static str {
        "xray-lite"
    }

    fn request(&mut self, req: &Request) {
        let mut segment = xray_lite::Segment::begin(SERVICE);
        segment.http = Some(xray_lite::Http {
            request: Some(xray_lite::Request {
                method: Some("GET".to_owned()),
                url: Some(req.url.clone()),
                client_ip: Some(req.client_ip.clone()),
                x_forwarded_for: Some("true".to_owned()),
                ..Default::default()
            }),
            response: None,
        });
        // The only way to get a context: parse the Lambda environment variable.
        if let Ok(ctx) = xray_lite::SubsegmentContext::from_lambda_env(self.client.clone()) {
            for id in &req.request_ids {
                Self::call_in(&ctx, id);
            }
        }
        if let Some(http) = segment.http.as_mut() {
            http.response = Some(xray_lite::Response {
                status: Some(200),
                content_length: None,
            });
        }
        segment.end();
        let _ = self.client.send(&segment);
    }

    fn open(&mut self, _req: &Request) {
        self.open = xray_lite::SubsegmentContext::from_lambda_env(self.client.clone()).ok();
    }

    fn call(&mut self, request_id: &str) {
        if let Some(ctx) = &self.open {
            Self::call_in(ctx, request_id);
        }
    }

    fn close(&mut self) {
        self.open = None;
    }

    fn flush(&self) {}

    fn datagrams_per_request(&self) -> u64 {
        7
    }

    fn datagrams_per_segment(&self, calls: u64) -> u64 {
        2 * calls
    }

    fn records_unsampled(&self) -> bool {
        true
    }
}

/// The incoming header as an OpenTelemetry carrier, borrowed (what an `http::HeaderMap`
/// extractor does, without a map).
#[derive(Debug)]
pub struct TraceHeaderCarrier<'a>(pub &'a str);

impl Extractor for TraceHeaderCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        key.eq_ignore_ascii_case("x-amzn-trace-id")
            .then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec!["x-amzn-trace-id"]
    }
}

/// `opentelemetry-aws` 0.21: the `XrayPropagator` extracts the parent, a `Server` span (the
/// segment) and `Client` spans (the subsegments) are recorded through an `SdkTracerProvider`
/// (default sampler: parent-based, always on) with the `XrayIdGenerator` and a
/// `BatchSpanProcessor` exporting through `XrayExporter` and `XrayDaemonClient`. Attributes
/// carry the semantic-convention names its translator maps to the `http` and `aws` blocks.
#[derive(Debug)]
pub struct OtelAwsPeer {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    propagator: XrayPropagator,
    open: Option<OtelContext>,
    label: &'static str,
}

impl OtelAwsPeer {
    /// A provider exporting to `addr`; `queue` overrides the `BatchSpanProcessor` queue size
    /// (default 2048).
    pub fn new(addr: SocketAddr, queue: Option<usize>) -> io::Result<Self> {
        let exporter = XrayExporter::new(XrayDaemonClient::new(addr)?);
        let mut config = BatchConfigBuilder::default();
        if let Some(q) = queue {
            config = config.with_max_queue_size(q);
        }
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(config.build())
            .build();
        // Its translator names a segment after the resource's `service.name`.
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_id_generator(XrayIdGenerator::default())
            .with_resource(Resource::builder().with_service_name(SERVICE).build())
            .build();
        let tracer = provider.tracer("bench");
        Ok(OtelAwsPeer {
            provider,
            tracer,
            propagator: XrayPropagator::default(),
            open: None,
            label: if queue.is_some() {
                "opentelemetry-aws (queue 1M)"
            } else {
                "opentelemetry-aws"
            },
        })
    }

    fn call_in(&self, parent: &OtelContext, request_id: &str) {
        let mut span = self
            .tracer
            .span_builder("DynamoDB")
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("rpc.system", "aws-api"),
                KeyValue::new("aws.operation", "GetItem"),
                KeyValue::new("aws.region", "us-east-1"),
                KeyValue::new("aws.table.name", "orders"),
            ])
            .start_with_context(&self.tracer, parent);
        span.set_attribute(KeyValue::new("http.response.status_code", 200));
        span.set_attribute(KeyValue::new("aws.request_id", request_id.to_owned()));
        span.end();
    }
}

impl Peer for OtelAwsPeer {
    fn name(&self) -> &'static str {
        self.label
    }

    fn request(&mut self, req: &Request) {
        let parent = self.propagator.extract(&TraceHeaderCarrier(&req.header));
        let server = self
            .tracer
            .span_builder(SERVICE)
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("url.full", req.url.clone()),
                KeyValue::new("client.address", req.client_ip.clone()),
            ])
            .start_with_context(&self.tracer, &parent);
        let cx = parent.with_span(server);
        for id in &req.request_ids {
            self.call_in(&cx, id);
        }
        let span = cx.span();
        span.set_attribute(KeyValue::new("http.response.status_code", 200));
        span.end();
    }

    fn open(&mut self, req: &Request) {
        let parent = self.propagator.extract(&TraceHeaderCarrier(&req.header));
        let server = self
            .tracer
            .span_builder(SERVICE)
            .with_kind(SpanKind::Server)
            .start_with_context(&self.tracer, &parent);
        self.open = Some(parent.with_span(server));
    }

    fn call(&mut self, request_id: &str) {
        if let Some(cx) = &self.open {
            self.call_in(cx, request_id);
        }
    }

    fn close(&mut self) {
        if let Some(cx) = self.open.take() {
            cx.span().end();
        }
    }

    fn flush(&self) {
        let _ = self.provider.force_flush();
    }

    fn datagrams_per_request(&self) -> u64 {
        4
    }

    fn datagrams_per_segment(&self, calls: u64) -> u64 {
        calls + 1
    }
}

impl Drop for OtelAwsPeer {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// The three libraries, each sending to its own receiver: xray-sdk first.
pub fn all_peers() -> io::Result<Vec<(Box<dyn Peer>, Sink)>> {
    let mut out: Vec<(Box<dyn Peer>, Sink)> = Vec::new();
    let sink = Sink::start()?;
    out.push((Box::new(XraySdkPeer::new(sink.addr())), sink));
    let sink = Sink::start()?;
    out.push((Box::new(XrayLitePeer::new(sink.addr())?), sink));
    let sink = Sink::start()?;
    out.push((Box::new(OtelAwsPeer::new(sink.addr(), None)?), sink));
    Ok(out)
}

/// Runs `n` W2 (or unsampled) requests and returns the time they took.
pub fn time_requests(peer: &mut dyn Peer, req: &Request, n: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        peer.request(req);
    }
    start.elapsed()
}

/// Opens a segment, runs `n` W1 calls in it and closes it; returns the time the calls took.
pub fn time_calls(peer: &mut dyn Peer, req: &Request, n: u64) -> Duration {
    peer.open(req);
    let start = Instant::now();
    for i in 0..n {
        peer.call(&req.request_ids[(i % 3) as usize]);
    }
    let elapsed = start.elapsed();
    peer.close();
    elapsed
}

/// CPU time (user + system) one thread has used, from its `schedstat` (nanoseconds).
pub fn thread_cpu(task: &Path) -> Duration {
    let stat = std::fs::read_to_string(task.join("schedstat")).unwrap_or_default();
    let ns = stat
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(ns)
}

/// CPU time the calling thread has used.
pub fn this_thread_cpu() -> Duration {
    thread_cpu(Path::new("/proc/thread-self"))
}

/// The `/proc/self/task` directories of the threads whose name starts with `prefix` (names
/// are cut to 15 bytes by the kernel).
pub fn threads_named(prefix: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim_end().starts_with(prefix) {
                out.push(task.path());
            }
        }
    }
    out
}

/// CPU time used so far by the threads whose name starts with `prefix`.
pub fn cpu_of_threads(prefix: &str) -> Duration {
    threads_named(prefix).iter().map(|t| thread_cpu(t)).sum()
}

/// How often a thread has gone to sleep and been woken (`voluntary_ctxt_switches`).
pub fn voluntary_switches(task: &Path) -> u64 {
    std::fs::read_to_string(task.join("status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The name prefix of each library's background thread, as the kernel shows it.
pub const XRAY_EMITTER_THREAD: &str = "xray-emitter";
/// opentelemetry_sdk's `BatchSpanProcessor` thread (`OpenTelemetry.Traces.BatchProcessor`).
pub const OTEL_BATCH_THREAD: &str = "OpenTelemetry.T";

/// The floor for the emitter's work per W2 document: render the document as the emitter does
/// (a segment recorded like W2) and send it on a connected UDP socket to `addr`, `n` times,
/// in chunks of 256 with a 1 ms pause between chunks (as the emitter gets its work). Returns
/// this thread's CPU time per document and the datagram's size.
pub fn render_and_send_floor(addr: SocketAddr, n: u64) -> io::Result<(Duration, usize)> {
    use xray_sdk::testing::{RecordedSegment, RenderScratch};
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    sock.connect(addr)?;
    let segment = RecordedSegment::w2();
    let mut scratch = RenderScratch::default();
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut size = 0;
    let cpu0 = this_thread_cpu();
    for i in 0..n {
        segment.render(&mut buf, &mut scratch);
        size = buf.len();
        let _ = sock.send(&buf);
        if i % 256 == 255 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let cpu = this_thread_cpu().saturating_sub(cpu0);
    Ok((cpu / u32::try_from(n.max(1)).unwrap_or(u32::MAX), size))
}

/// A small test runner for the test binaries that must set `_X_AMZN_TRACE_ID` before any
/// thread starts (xray-lite reads it; the standard harness runs tests on threads): runs each
/// named check whose name contains the first free-standing command-line argument (all when
/// there is none), reports it as the standard harness does, and exits with status 1 when one
/// failed.
pub fn run_checks(checks: &[(&str, fn())]) {
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, check) in checks {
        if !name.contains(filter.as_str()) {
            continue;
        }
        ran += 1;
        let ok = std::panic::catch_unwind(check).is_ok();
        report(name, ok);
        if !ok {
            failed.push(*name);
        }
    }
    summarize(ran, &failed);
}

#[allow(clippy::print_stdout)]
fn report(name: &str, ok: bool) {
    println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
}

#[allow(clippy::print_stdout)]
fn summarize(ran: usize, failed: &[&str]) {
    if failed.is_empty() {
        println!("\ntest result: ok. {ran} passed; 0 failed");
    } else {
        println!(
            "\ntest result: FAILED. {} passed; {} failed: {}",
            ran - failed.len(),
            failed.len(),
            failed.join(", ")
        );
        std::process::exit(1);
    }
}
