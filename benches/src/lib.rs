//! Harness for the side-by-side benchmarks (`benches/peers.rs`): a loopback UDP receiver that
//! counts every datagram that arrives, fresh trace headers, and one driver per library that
//! runs the same workload: continue the trace of an incoming `X-Amzn-Trace-Id` header, record a
//! segment with three subsegments and an HTTP response status, and end it.
//!
//! | library | model | datagrams per request |
//! |---|---|---|
//! | `xray-sdk` (this workspace) | segment queued on `end()`, serialized and sent by a background thread | 1 (subsegments embedded) |
//! | `xray-lite` 0.0.9 | synchronous `send` in the caller: each subsegment twice (in progress, then complete) | 7 (3 × 2 + the segment) |
//! | `opentelemetry-aws` 0.21 | OTel spans, `BatchSpanProcessor` thread, `XrayExporter` + `XrayDaemonClient` | 4 (one per span) |

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use xray_sdk::Record;

use opentelemetry::KeyValue;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Span, SpanKind, TraceContextExt, Tracer, TracerProvider};
use opentelemetry_aws::trace::{XrayIdGenerator, XrayPropagator};
use opentelemetry_aws::xray_exporter::XrayExporter;
use opentelemetry_aws::xray_exporter::daemon_client::XrayDaemonClient;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider,
};
use xray_lite::{Client as _, Context as _};
use xray_sdk::plugins::Plugins;
use xray_sdk::{Recorder, TraceHeader};

/// The names of the three subsegments (spans) every request records.
pub const STEPS: [&str; 3] = ["auth", "load", "render"];

/// The environment variable `xray-lite` reads the trace header from (its only constructor).
pub const LAMBDA_TRACE_ENV: &str = "_X_AMZN_TRACE_ID";

/// A receiver on 127.0.0.1 that counts datagrams on its own thread, with a receive buffer as
/// large as the kernel allows (`net.core.rmem_max`), so that the count measures what the
/// library delivered rather than how fast the receiver reads.
#[derive(Debug)]
pub struct Sink {
    addr: SocketAddr,
    count: Arc<AtomicU64>,
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
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (Arc::clone(&count), Arc::clone(&stop));
        std::thread::Builder::new()
            .name("bench-udp-sink".into())
            .spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !s.load(Ordering::Relaxed) {
                    if socket.recv(&mut buf).is_ok() {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })?;
        Ok(Sink { addr, count, stop })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Datagrams received so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
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

/// A sampled incoming header whose trace ID carries the current time (opentelemetry-aws drops
/// documents whose trace ID is more than 30 days old).
pub fn fresh_header() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("Root=1-{now:08x}-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
}

/// One library driven with the common workload.
pub trait Peer {
    /// Short name used in benchmark IDs.
    fn name(&self) -> &'static str;
    /// One request: continue the incoming trace, a segment with three subsegments and an HTTP
    /// status, ended. Only what the library does on the request path.
    fn request(&mut self);
    /// Waits until everything recorded so far has been handed to the operating system (a
    /// no-op for synchronous libraries).
    fn flush(&self);
    /// Datagrams one request produces when nothing is dropped.
    fn datagrams_per_request(&self) -> u64;
}

/// This workspace's SDK, default configuration (queue of 8192 segments).
#[derive(Debug)]
pub struct XraySdkPeer {
    recorder: Recorder,
    header: String,
}

impl XraySdkPeer {
    /// A recorder sending to `addr`; sampling follows the incoming header (`Sampled=1`).
    pub fn new(addr: SocketAddr, header: &str) -> Self {
        let recorder = Recorder::builder()
            .ignore_env()
            .service_name("api")
            .daemon_address(addr.to_string())
            .centralized_sampling(false)
            .plugins(Plugins::none())
            .build()
            .unwrap_or_else(|_| Recorder::disabled());
        XraySdkPeer {
            recorder,
            header: header.to_owned(),
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

    fn request(&mut self) {
        let incoming = TraceHeader::parse(&self.header);
        let segment = self.recorder.segment("api").header(&incoming).begin();
        for step in STEPS {
            segment.begin_subsegment(step).end();
        }
        segment.set_http_response(200, Some(128));
        segment.end();
    }

    fn flush(&self) {
        let _ = self.recorder.flush(Duration::from_secs(30));
    }

    fn datagrams_per_request(&self) -> u64 {
        1
    }
}

/// `xray-lite` 0.0.9: the context comes from `_X_AMZN_TRACE_ID` (set it before building this),
/// subsegments are sent synchronously when entered and when dropped, and the segment, which
/// xray-lite has no API to send, is sent with its `Client::send`.
#[derive(Debug)]
pub struct XrayLitePeer {
    client: xray_lite::DaemonClient,
}

impl XrayLitePeer {
    /// A daemon client connected to `addr`.
    pub fn new(addr: SocketAddr) -> io::Result<Self> {
        let client = xray_lite::DaemonClient::new(addr).map_err(io::Error::other)?;
        Ok(XrayLitePeer { client })
    }
}

impl Peer for XrayLitePeer {
    fn name(&self) -> &'static str {
        "xray-lite"
    }

    fn request(&mut self) {
        let mut segment = xray_lite::Segment::begin("api");
        // The only way to get a context: parse the Lambda environment variable.
        if let Ok(ctx) = xray_lite::SubsegmentContext::from_lambda_env(self.client.clone()) {
            for step in STEPS {
                let session = ctx.enter_subsegment(xray_lite::CustomNamespace::new(step));
                drop(session);
            }
        }
        segment.http = Some(xray_lite::Http {
            request: None,
            response: Some(xray_lite::Response {
                status: Some(200),
                content_length: Some(128),
            }),
        });
        segment.end();
        let _ = self.client.send(&segment);
    }

    fn flush(&self) {}

    fn datagrams_per_request(&self) -> u64 {
        7
    }
}

/// `opentelemetry-aws` 0.21: the `XrayPropagator` extracts the parent, a `Server` span (the
/// segment) and three child spans are recorded through an `SdkTracerProvider` with the
/// `XrayIdGenerator` and a `BatchSpanProcessor` exporting through `XrayExporter` and
/// `XrayDaemonClient`.
#[derive(Debug)]
pub struct OtelAwsPeer {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    propagator: XrayPropagator,
    carrier: HashMap<String, String>,
    label: &'static str,
}

impl OtelAwsPeer {
    /// A provider exporting to `addr`; `queue` overrides the `BatchSpanProcessor` queue size
    /// (default 2048).
    pub fn new(addr: SocketAddr, header: &str, queue: Option<usize>) -> io::Result<Self> {
        let exporter = XrayExporter::new(XrayDaemonClient::new(addr)?);
        let mut config = BatchConfigBuilder::default();
        if let Some(q) = queue {
            config = config.with_max_queue_size(q);
        }
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(config.build())
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_id_generator(XrayIdGenerator::default())
            .build();
        let tracer = provider.tracer("bench");
        let mut carrier = HashMap::new();
        carrier.insert("x-amzn-trace-id".to_owned(), header.to_owned());
        Ok(OtelAwsPeer {
            provider,
            tracer,
            propagator: XrayPropagator::default(),
            carrier,
            label: if queue.is_some() {
                "opentelemetry-aws (queue 1M)"
            } else {
                "opentelemetry-aws"
            },
        })
    }
}

impl Peer for OtelAwsPeer {
    fn name(&self) -> &'static str {
        self.label
    }

    fn request(&mut self) {
        let parent = self.propagator.extract(&self.carrier);
        let mut server = self
            .tracer
            .span_builder("api")
            .with_kind(SpanKind::Server)
            .start_with_context(&self.tracer, &parent);
        server.set_attribute(KeyValue::new("http.response.status_code", 200));
        let cx = parent.with_span(server);
        for step in STEPS {
            let mut child = self
                .tracer
                .span_builder(step)
                .with_kind(SpanKind::Internal)
                .start_with_context(&self.tracer, &cx);
            child.end();
        }
        cx.span().end();
    }

    fn flush(&self) {
        let _ = self.provider.force_flush();
    }

    fn datagrams_per_request(&self) -> u64 {
        4
    }
}

impl Drop for OtelAwsPeer {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
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
