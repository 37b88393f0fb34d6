//! Heap allocations on the request path, counted by a global allocator that counts the
//! allocations made by the calling thread only (the emitter and exporter threads, which
//! serialize and send off the request path, are not counted).
//!
//! The workload: parse an incoming `X-Amzn-Trace-Id`, begin a segment from it, three
//! subsegments, the HTTP response status, format the header for a downstream call, end.
//!
//! `cargo test -p xray-benches --test allocations -- --nocapture` prints the counts.

#![allow(unsafe_code, clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Span, SpanKind, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context as OtelContext, KeyValue};
use opentelemetry_aws::trace::{XrayIdGenerator, XrayPropagator};
use opentelemetry_aws::xray_exporter::XrayExporter;
use opentelemetry_aws::xray_exporter::daemon_client::XrayDaemonClient;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
use xray_benches::{STEPS, Sink, fresh_header};
use xray_sdk::plugins::Plugins;
use xray_sdk::{Recorder, TraceHeader};

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

fn recorder(sink: &Sink) -> Recorder {
    Recorder::builder()
        .ignore_env()
        .service_name("api")
        .daemon_address(sink.addr().to_string())
        .centralized_sampling(false)
        .plugins(Plugins::none())
        .build()
        .unwrap()
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
