//! Heap allocations on the request path, counted by a global allocator that counts the
//! allocations made by the calling thread only (the emitter and exporter threads, which
//! serialize and send off the request path, are not counted).
//!
//! The workload: parse an incoming `X-Amzn-Trace-Id`, begin a segment from it, three
//! subsegments, the HTTP response status, format the header for a downstream call, end.
//!
//! Also: the allocations the tower layer adds to one request, against the same bare service.
//!
//! `cargo test -p xray-benches --test allocations -- --nocapture` prints the counts.

#![allow(unsafe_code, clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::pin;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;
use xray_sdk::Record;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Span, SpanKind, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context as OtelContext, KeyValue};
use opentelemetry_aws::trace::{XrayIdGenerator, XrayPropagator};
use opentelemetry_aws::xray_exporter::XrayExporter;
use opentelemetry_aws::xray_exporter::daemon_client::XrayDaemonClient;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
use tower_service::Service;
use xray_benches::{STEPS, Sink, fresh_header};
use xray_sdk::plugins::Plugins;
use xray_sdk::sampling::{AlwaysSample, NeverSample};
use xray_sdk::{Recorder, RecorderBuilder, TraceHeader};
use xray_sdk_tower::XRay;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn bump() {
    // `try_with`: the thread-local may be gone while a thread is being torn down.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a
// const-initialized thread-local `Cell` without a destructor, so counting never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by this thread while `f` runs.
fn count<R>(f: impl FnOnce() -> R) -> (u64, R) {
    let before = ALLOCATIONS.with(Cell::get);
    let r = f();
    (ALLOCATIONS.with(Cell::get) - before, r)
}

/// The median allocation count of `runs` runs (after a warm-up run: the first use of the
/// thread's random number generator allocates once per thread).
fn allocations_per_request(runs: usize, mut f: impl FnMut() -> String) -> u64 {
    let _ = f();
    let mut counts: Vec<u64> = (0..runs).map(|_| count(&mut f).0).collect();
    counts.sort_unstable();
    counts[runs / 2]
}

fn recorder_builder(sink: &Sink) -> RecorderBuilder {
    Recorder::builder()
        .ignore_env()
        .service_name("api")
        .daemon_address(sink.addr().to_string())
        .centralized_sampling(false)
        .plugins(Plugins::none())
}

fn recorder(sink: &Sink) -> Recorder {
    recorder_builder(sink).build().unwrap()
}

fn xray_sdk_request(recorder: &Recorder, incoming: &str) -> String {
    let incoming = TraceHeader::parse(incoming);
    let segment = recorder.segment("api").header(&incoming).begin();
    let mut downstream = String::new();
    for step in STEPS {
        let sub = segment.begin_subsegment(step);
        if step == "load" {
            downstream = sub.downstream_header().to_header_value();
        }
        sub.end();
    }
    segment.set_http_response(200, Some(128));
    segment.end();
    downstream
}

#[test]
fn unsampled_request_allocates_only_the_downstream_header_value() {
    let sink = Sink::start().unwrap();
    let recorder = recorder(&sink);
    let incoming = fresh_header().replace("Sampled=1", "Sampled=0");
    let n = allocations_per_request(101, || xray_sdk_request(&recorder, &incoming));
    eprintln!("xray-sdk unsampled request: {n} allocation(s)");
    assert_eq!(n, 1, "only the formatted header value may allocate");
    // Nothing was queued or sent for it.
    recorder.flush(Duration::from_secs(5)).unwrap();
    assert_eq!(recorder.stats().queued, 0);
    // The decision still goes downstream.
    assert!(xray_sdk_request(&recorder, &incoming).ends_with("Sampled=0"));
}

#[test]
fn sampled_request_allocates_a_handful() {
    let sink = Sink::start().unwrap();
    let recorder = recorder(&sink);
    let incoming = fresh_header();
    let n = allocations_per_request(101, || xray_sdk_request(&recorder, &incoming));
    eprintln!(
        "xray-sdk sampled request (segment + 3 subsegments + http + header): {n} allocation(s)"
    );
    // The arena vector, the shared trace state, the boxed extension holding the http block,
    // and the downstream header value.
    assert!(n <= 6, "{n} allocations");
    recorder.flush(Duration::from_secs(5)).unwrap();
    let stats = recorder.stats();
    assert_eq!(stats.queued, 102);
    assert_eq!(stats.sent, 102, "{stats:?}");
}

/// Extra keys (`Lineage`) are kept and propagated: parsing them costs the list of pairs, the
/// joined string as it grows, and the shared `Arc<str>` that every entity of the trace reuses.
#[test]
fn sampled_request_with_extra_header_keys_stays_bounded() {
    let sink = Sink::start().unwrap();
    let recorder = recorder(&sink);
    let incoming = format!("{};Lineage=10:1234abcd:3", fresh_header());
    let n = allocations_per_request(101, || xray_sdk_request(&recorder, &incoming));
    eprintln!("xray-sdk sampled request with Lineage: {n} allocation(s)");
    assert!(n <= 8, "{n} allocations");
    let header = xray_sdk_request(&recorder, &incoming);
    assert!(
        header.ends_with(";Sampled=1;Lineage=10:1234abcd:3"),
        "{header}"
    );
}

/// For comparison (not a property of this SDK): the same request through
/// opentelemetry-aws 0.21 with a `BatchSpanProcessor`, counted on the calling thread.
#[test]
fn opentelemetry_aws_for_comparison() {
    let sink = Sink::start().unwrap();
    let exporter = XrayExporter::new(XrayDaemonClient::new(sink.addr()).unwrap());
    let provider = SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter).build())
        .with_id_generator(XrayIdGenerator::default())
        .build();
    let tracer = provider.tracer("bench");
    let propagator = XrayPropagator::default();
    let mut carrier = std::collections::HashMap::new();
    carrier.insert("x-amzn-trace-id".to_owned(), fresh_header());
    let n = allocations_per_request(101, || {
        let parent = propagator.extract(&carrier);
        let mut server = tracer
            .span_builder("api")
            .with_kind(SpanKind::Server)
            .start_with_context(&tracer, &parent);
        server.set_attribute(KeyValue::new("http.response.status_code", 200));
        let cx = parent.with_span(server);
        let mut downstream = std::collections::HashMap::new();
        for step in STEPS {
            let mut child = tracer
                .span_builder(step)
                .with_kind(SpanKind::Internal)
                .start_with_context(&tracer, &cx);
            if step == "load" {
                let child_cx =
                    OtelContext::current().with_remote_span_context(child.span_context().clone());
                propagator.inject_context(&child_cx, &mut downstream);
            }
            child.end();
        }
        cx.span().end();
        downstream.remove("x-amzn-trace-id").unwrap_or_default()
    });
    eprintln!("opentelemetry-aws request (same workload): {n} allocation(s) on the calling thread");
    provider.force_flush().unwrap();
    provider.shutdown().unwrap();
}

type HelloResponse = Response<Full<Bytes>>;
type Hello = fn(Request<Full<Bytes>>) -> Ready<Result<HelloResponse, Infallible>>;

/// A hello-world handler with the `content-type` header every framework response has.
fn hello(_req: Request<Full<Bytes>>) -> Ready<Result<HelloResponse, Infallible>> {
    let mut res = Response::new(Full::new(Bytes::from_static(b"Hello, World!")));
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    ready(Ok(res))
}

/// Calls `svc` and streams the response body to its end, polling with a no-op waker: the
/// handler is ready at once, so no runtime (and none of its allocations) is involved.
fn serve<S, B>(svc: &mut S, req: Request<Full<Bytes>>) -> u16
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible>,
    B: http_body::Body,
{
    let mut cx = TaskContext::from_waker(Waker::noop());
    let Poll::Ready(Ok(())) = svc.poll_ready(&mut cx) else {
        panic!("the service is always ready")
    };
    let Poll::Ready(Ok(res)) = pin!(svc.call(req)).poll(&mut cx) else {
        panic!("the handler answers at once")
    };
    let status = res.status().as_u16();
    let mut body = pin!(res.into_body());
    while let Poll::Ready(Some(frame)) = body.as_mut().poll_frame(&mut cx) {
        assert!(frame.is_ok());
    }
    status
}

fn hello_request(trace_header: Option<&str>) -> Request<Full<Bytes>> {
    let mut req = Request::get("/hello?name=x")
        .header("host", "api.example.com")
        .header("user-agent", "bench/1.0");
    if let Some(h) = trace_header {
        req = req.header("x-amzn-trace-id", h);
    }
    req.body(Full::new(Bytes::new())).unwrap()
}

/// The median over 101 requests (after a warm-up) of the allocations the layer adds: the
/// layered request's count minus the bare service's, each request built outside the count.
fn layer_allocations(recorder: &Recorder, trace_header: Option<&str>) -> u64 {
    let mut bare = tower_service_fn();
    let mut layered = XRay::new(tower_service_fn(), recorder.clone());
    let mut added: Vec<u64> = (0..102)
        .map(|_| {
            let req = hello_request(trace_header);
            let (with, status) = count(|| serve(&mut layered, req));
            assert_eq!(status, 200);
            let req = hello_request(trace_header);
            let (without, _) = count(|| serve(&mut bare, req));
            with.saturating_sub(without)
        })
        .skip(1)
        .collect();
    added.sort_unstable();
    added[added.len() / 2]
}

fn tower_service_fn() -> ServiceFnHello {
    ServiceFnHello(hello)
}

/// A `Service` around [`hello`] (what `tower::service_fn` makes, without the dependency).
#[derive(Clone, Copy)]
struct ServiceFnHello(Hello);

impl Service<Request<Full<Bytes>>> for ServiceFnHello {
    type Response = HelloResponse;
    type Error = Infallible;
    type Future = Ready<Result<HelloResponse, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Full<Bytes>>) -> Self::Future {
        (self.0)(req)
    }
}

/// A recorder that samples every request, or none (unless the incoming header decides).
fn layer_recorder(sink: &Sink, sample: bool) -> Recorder {
    let builder = recorder_builder(sink);
    let builder = if sample {
        builder.sampler(AlwaysSample)
    } else {
        builder.sampler(NeverSample)
    };
    builder.build().unwrap()
}

#[test]
fn tower_layer_allocations_per_request() {
    let sink = Sink::start().unwrap();
    let unsampled = layer_recorder(&sink, false);
    let sampled = layer_recorder(&sink, true);
    let not_sampled_header = fresh_header().replace("Sampled=1", "Sampled=0");

    let new_unsampled = layer_allocations(&unsampled, None);
    let continued_unsampled = layer_allocations(&sampled, Some(&not_sampled_header));
    let new_sampled = layer_allocations(&sampled, None);
    let continued_sampled = layer_allocations(&sampled, Some(&fresh_header()));
    eprintln!(
        "tower layer, allocations added per request: unsampled {new_unsampled} (new trace), \
         {continued_unsampled} (Sampled=0); sampled {new_sampled} (new trace), \
         {continued_sampled} (Sampled=1)"
    );
    // Unsampled: the request extensions' map (its box and table) and the boxed `Context` in
    // it, and the response header's value. Nothing is recorded or queued.
    assert!(new_unsampled <= 4, "{new_unsampled}");
    assert!(continued_unsampled <= 4, "{continued_unsampled}");
    // Sampled, besides those: the entity arena, the shared trace state, and the URL and
    // user-agent strings of the `http.request` block (the segment name is shared).
    assert!(new_sampled <= 8, "{new_sampled}");
    assert!(continued_sampled <= 8, "{continued_sampled}");
    unsampled.flush(Duration::from_secs(5)).unwrap();
    assert_eq!(unsampled.stats().queued, 0);
    sampled.flush(Duration::from_secs(5)).unwrap();
    // 102 + 102 sampled requests, each one segment; the 102 `Sampled=0` ones queued nothing.
    assert_eq!(sampled.stats().queued, 204);
}
