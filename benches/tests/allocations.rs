//! Heap allocations on the request path, counted by a global allocator that counts the
//! allocations made by the calling thread only (the emitter and exporter threads, which
//! render and send off the request path, are not counted).
//!
//! Workloads (see the `xray_benches` crate docs): W1, one DynamoDB call in an open segment;
//! W2, a request with its `http` block and three such calls; the unsampled request (W2 with
//! `Sampled=0`). Each is counted for xray-sdk, opentelemetry-aws 0.21 and xray-lite 0.0.9;
//! the figures are allocations per request (or per call), averaged over 1,024 of them after
//! 256 of warm-up, so that amortized growth (a queue's block, an arena doubling) counts.
//!
//! Also: the allocations the tower layer adds to one request, against the same bare service.
//!
//! `cargo test -p xray-benches --test allocations -- --nocapture` prints the counts. Its own
//! harness (`harness = false`): xray-lite reads `_X_AMZN_TRACE_ID`, which is set before any
//! thread starts; a free-standing argument filters the checks by name.

#![allow(unsafe_code, clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::pin;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::{Request as HttpRequest, Response};
use http_body_util::Full;

use tower_service::Service;
use xray_benches::{
    OtelAwsPeer, Peer, Request, Sink, XrayLitePeer, XraySdkPeer, fresh_header, run_checks,
    set_lambda_trace_env,
};
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

const WARM_UP: u64 = 256;
const COUNTED: u64 = 1_024;
/// W2 requests per chunk, and W1 calls per open segment (under the streaming threshold);
/// queues are flushed between chunks, outside the count.
const CHUNK: u64 = 256;
const CALLS: u64 = 64;

/// Allocations per W2 (or unsampled) request: `COUNTED` requests after `WARM_UP`.
fn per_request(peer: &mut dyn Peer, req: &Request) -> f64 {
    let mut total = 0;
    let mut done = 0;
    while done < WARM_UP + COUNTED {
        let (n, ()) = count(|| {
            for _ in 0..CHUNK {
                peer.request(req);
            }
        });
        if done >= WARM_UP {
            total += n;
        }
        peer.flush();
        done += CHUNK;
    }
    total as f64 / COUNTED as f64
}

/// Allocations per W1 call: `COUNTED` calls after `WARM_UP`, `CALLS` to an open segment
/// (opened and closed outside the count).
fn per_call(peer: &mut dyn Peer, req: &Request) -> f64 {
    let mut total = 0;
    let mut done = 0;
    while done < WARM_UP + COUNTED {
        peer.open(req);
        let (n, ()) = count(|| {
            for i in 0..CALLS {
                peer.call(&req.request_ids[(i % 3) as usize]);
            }
        });
        peer.close();
        peer.flush();
        if done >= WARM_UP {
            total += n;
        }
        done += CALLS;
    }
    total as f64 / COUNTED as f64
}

fn recorder_builder(sink: &Sink) -> RecorderBuilder {
    Recorder::builder()
        .ignore_env()
        .service_name("api")
        .daemon_address(sink.addr().to_string())
        .centralized_sampling(false)
        .plugins(Plugins::none())
}

fn header() -> String {
    std::env::var(xray_benches::LAMBDA_TRACE_ENV).unwrap()
}

/// The unsampled request allocates nothing at all, queues nothing and sends nothing.
fn xray_sdk_unsampled_request_allocates_nothing() {
    let sink = Sink::start().unwrap();
    let mut peer = XraySdkPeer::new(sink.addr());
    let req = Request::new(&header()).unsampled();
    let n = per_request(&mut peer, &req);
    eprintln!("xray-sdk unsampled request: {n:.2} allocations");
    assert_eq!(n, 0.0, "an unsampled request allocates nothing");
    peer.flush();
    assert_eq!(peer.recorder().stats().queued, 0);
}

/// A sampled W2 request: at most 4 allocations on the request thread (the trace's text
/// buffer, its entity arena and its shared state, when the pool and the thread's spare have
/// none to give; in steady state none), and every segment is queued and sent.
fn xray_sdk_sampled_w2_allocates_at_most_four() {
    let sink = Sink::start().unwrap();
    let mut peer = XraySdkPeer::new(sink.addr());
    let req = Request::new(&header());
    let n = per_request(&mut peer, &req);
    eprintln!("xray-sdk W2 request (segment + http block + 3 DynamoDB calls): {n:.2} allocations");
    assert!(n <= 4.0, "{n} allocations per sampled W2 request (limit 4)");
    peer.flush();
    let stats = peer.recorder().stats();
    assert_eq!(stats.queued, WARM_UP + COUNTED);
    assert_eq!(stats.sent, WARM_UP + COUNTED, "{stats:?}");
}

/// A W1 call in an open segment: nothing of its own; the entity arena doubling as 64 calls
/// fill one segment is what the average shows.
fn xray_sdk_w1_call_allocates_less_than_one() {
    let sink = Sink::start().unwrap();
    let mut peer = XraySdkPeer::new(sink.addr());
    let req = Request::new(&header());
    let n = per_call(&mut peer, &req);
    eprintln!("xray-sdk W1 call (one DynamoDB subsegment in an open segment): {n:.2} allocations");
    assert!(n < 1.0, "{n} allocations per W1 call");
}

/// The header for a downstream call is one `String`, sampled or not.
fn downstream_header_is_one_allocation() {
    let sink = Sink::start().unwrap();
    let recorder = recorder_builder(&sink).build().unwrap();
    for h in [header(), header().replace("Sampled=1", "Sampled=0")] {
        let incoming = TraceHeader::parse(&h);
        let segment = recorder.segment("api").header(&incoming).begin();
        let sub = segment.begin_subsegment("call");
        let _ = sub.downstream_header().to_header_value();
        let (n, value) = count(|| sub.downstream_header().to_header_value());
        assert_eq!(n, 1, "{value}: {n} allocations");
        assert!(value.ends_with(if segment.is_sampled() {
            "Sampled=1"
        } else {
            "Sampled=0"
        }));
        sub.end();
        segment.end();
    }
    recorder.flush(Duration::from_secs(5)).unwrap();
}

/// Extra keys (`Lineage`) are kept and propagated: parsing them costs the list of pairs, the
/// joined string as it grows, and the shared `Arc<str>` that every entity of the trace reuses.
fn sampled_request_with_extra_header_keys_stays_bounded() {
    let sink = Sink::start().unwrap();
    let mut peer = XraySdkPeer::new(sink.addr());
    let req = Request::new(&format!("{};Lineage=10:1234abcd:3", header()));
    let n = per_request(&mut peer, &req);
    eprintln!("xray-sdk W2 request with Lineage: {n:.2} allocations");
    assert!(n <= 6.0, "{n} allocations");
    let incoming = TraceHeader::parse(&req.header);
    let segment = peer.recorder().segment("api").header(&incoming).begin();
    let value = segment.downstream_header().to_header_value();
    assert!(
        value.ends_with(";Sampled=1;Lineage=10:1234abcd:3"),
        "{value}"
    );
    segment.end();
}

/// Every library, every workload: xray-sdk allocates less than each peer on the same work.
fn every_library_every_workload() {
    let req = Request::new(&header());
    let unsampled = req.unsampled();
    let mut rows = Vec::new();
    let sink = Sink::start().unwrap();
    let mut peers: Vec<Box<dyn Peer>> = vec![
        Box::new(XraySdkPeer::new(sink.addr())),
        Box::new(OtelAwsPeer::new(sink.addr(), None).unwrap()),
        Box::new(XrayLitePeer::new(sink.addr()).unwrap()),
    ];
    for peer in &mut peers {
        let w1 = per_call(&mut **peer, &req);
        let w2 = per_request(&mut **peer, &req);
        let un = per_request(&mut **peer, &unsampled);
        eprintln!(
            "{:<18} W1 {w1:>6.2}   W2 {w2:>6.2}   unsampled {un:>6.2}   allocations on the request thread",
            peer.name()
        );
        rows.push((peer.name(), [w1, w2, un]));
    }
    let ours = rows[0].1;
    for (name, theirs) in &rows[1..] {
        for (i, what) in ["W1", "W2", "unsampled"].iter().enumerate() {
            assert!(
                ours[i] < theirs[i],
                "{what}: xray-sdk {} allocations, {name} {}",
                ours[i],
                theirs[i]
            );
        }
    }
}

type HelloResponse = Response<Full<Bytes>>;
type Hello = fn(HttpRequest<Full<Bytes>>) -> Ready<Result<HelloResponse, Infallible>>;

/// A hello-world handler with the `content-type` header every framework response has.
fn hello(_req: HttpRequest<Full<Bytes>>) -> Ready<Result<HelloResponse, Infallible>> {
    let mut res = Response::new(Full::new(Bytes::from_static(b"Hello, World!")));
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    ready(Ok(res))
}

/// Calls `svc` and streams the response body to its end, polling with a no-op waker: the
/// handler is ready at once, so no runtime (and none of its allocations) is involved.
fn serve<S, B>(svc: &mut S, req: HttpRequest<Full<Bytes>>) -> u16
where
    S: Service<HttpRequest<Full<Bytes>>, Response = Response<B>, Error = Infallible>,
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

fn hello_request(trace_header: Option<&str>) -> HttpRequest<Full<Bytes>> {
    let mut req = HttpRequest::get("/hello?name=x")
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

impl Service<HttpRequest<Full<Bytes>>> for ServiceFnHello {
    type Response = HelloResponse;
    type Error = Infallible;
    type Future = Ready<Result<HelloResponse, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: HttpRequest<Full<Bytes>>) -> Self::Future {
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
    // Sampled, besides those, at most: the trace's text buffer (which the URL and user agent
    // of the `http.request` block are copied into), its entity arena and its shared state,
    // when the buffer pool and the thread's spare allocation have none to give.
    assert!(new_sampled <= 7, "{new_sampled}");
    assert!(continued_sampled <= 7, "{continued_sampled}");
    unsampled.flush(Duration::from_secs(5)).unwrap();
    assert_eq!(unsampled.stats().queued, 0);
    sampled.flush(Duration::from_secs(5)).unwrap();
    // 102 + 102 sampled requests, each one segment; the 102 `Sampled=0` ones queued nothing.
    assert_eq!(sampled.stats().queued, 204);
}

fn main() {
    // Before any thread exists: xray-lite reads its context from this variable.
    set_lambda_trace_env(&fresh_header());
    run_checks(&[
        (
            "xray_sdk_unsampled_request_allocates_nothing",
            xray_sdk_unsampled_request_allocates_nothing,
        ),
        (
            "xray_sdk_sampled_w2_allocates_at_most_four",
            xray_sdk_sampled_w2_allocates_at_most_four,
        ),
        (
            "xray_sdk_w1_call_allocates_less_than_one",
            xray_sdk_w1_call_allocates_less_than_one,
        ),
        (
            "downstream_header_is_one_allocation",
            downstream_header_is_one_allocation,
        ),
        (
            "sampled_request_with_extra_header_keys_stays_bounded",
            sampled_request_with_extra_header_keys_stays_bounded,
        ),
        ("every_library_every_workload", every_library_every_workload),
        (
            "tower_layer_allocations_per_request",
            tower_layer_allocations_per_request,
        ),
    ]);
}
