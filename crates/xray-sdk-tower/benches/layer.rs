//! Cost of the layer on an axum hello-world request through `oneshot` (body collected), with
//! and without the layer, sampled and unsampled, in one run.
//!
//! Every variant is measured twice: in wall-clock time (`axum_hello_oneshot`), and in CPU
//! time of the benchmark thread only (`axum_hello_oneshot_thread_cpu`). The runtime is
//! single-threaded, so the second figure is all the work a request does on the thread that
//! serves it.
//!
//! Requests are timed in chunks of [`CHUNK`], and the emitter's queue is flushed between
//! chunks outside the timed part, as in the core's request-path benchmark: a chunk takes less
//! than the emitter's shortest idle sleep, so the emitter thread (which serializes, sends and
//! frees the documents) does not run beside the timed requests, and nothing is dropped.
//! Without this, a sampled variant floods the emitter, which then competes with the benchmark
//! thread for the allocator and makes identical runs differ by 2x.
//!
//! Every layered variant is also paired with its baseline (the bare router, or the bare
//! `service_fn`): after each timed chunk the same number of baseline requests runs, timed on
//! the side, and the bench prints, per variant, the median over criterion's samples of the
//! difference (`paired ... added`). Both halves of a pair see the same moment of the machine,
//! so this figure is much steadier than the difference of two criterion medians taken
//! seconds apart.
//!
//! Two `minimal_reference_*` variants run a hand-written layer that does only what any
//! layer answering the spec must do for an unsampled request, and nothing else: read the
//! incoming `X-Amzn-Trace-Id` (or draw a new trace ID), hand the trace ID to the handler in
//! the request extensions, and answer with `X-Amzn-Trace-Id: Root=...`. No sampling
//! decision, no current context, no panic handling, no body wrapper. Paired with the same
//! baselines, it is the floor the unsampled variants are compared with.
//!
//! `cargo bench -p xray-sdk-tower --bench layer -- --warm-up-time 1 --measurement-time 3`
//!
//! With `LAYER_BENCH_LOOP=<variant>:<requests>` set, the binary instead runs that many
//! requests of one variant, untimed, and exits: a fixed amount of work whose instructions
//! `valgrind --tool=callgrind` can count, a figure the machine's noise does not move (see
//! docs/PERFORMANCE.md for the command).
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::net::UdpSocket;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use cpu_time::ThreadTime;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, criterion_group};
use http::header::{HeaderName, HeaderValue};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceExt};
use xray_sdk::plugins::Plugins;
use xray_sdk::sampling::{AlwaysSample, NeverSample};
use xray_sdk::{Recorder, TraceHeader, TraceId};
use xray_sdk_tower::{XRay, XRayLayer};

const CONTINUED: &str =
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
const NOT_SAMPLED: &str =
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0";

/// Requests timed back to back before the queue is flushed (untimed).
const CHUNK: u64 = 128;

/// A clock for `iter_custom`: wall time or the calling thread's CPU time.
trait Stopwatch {
    fn start() -> Self;
    fn elapsed(&self) -> Duration;
}

impl Stopwatch for Instant {
    fn start() -> Self {
        Instant::now()
    }
    fn elapsed(&self) -> Duration {
        Instant::elapsed(self)
    }
}

impl Stopwatch for ThreadTime {
    fn start() -> Self {
        ThreadTime::now()
    }
    fn elapsed(&self) -> Duration {
        ThreadTime::elapsed(self)
    }
}

/// CPU time consumed by the calling thread.
struct ThreadCpu {
    wall: WallTime,
}

impl Measurement for ThreadCpu {
    type Intermediate = ThreadTime;
    type Value = Duration;

    fn start(&self) -> ThreadTime {
        ThreadTime::now()
    }
    fn end(&self, started: ThreadTime) -> Duration {
        started.elapsed()
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.wall.formatter()
    }
}

fn hello() -> Router {
    Router::new().route("/hello", get(|| async { "Hello, World!" }))
}

fn request(trace_header: Option<&'static str>) -> Request<Body> {
    let mut req = Request::get("/hello?name=bench")
        .header("host", "api.example.com")
        .header("user-agent", "bench/1.0");
    if let Some(h) = trace_header {
        req = req.header("x-amzn-trace-id", h);
    }
    req.body(Body::empty()).unwrap()
}

/// A recorder whose documents go to a socket nobody reads (the kernel drops what overflows).
fn recorder(sink: &UdpSocket, sample: bool) -> Recorder {
    let builder = Recorder::builder()
        .ignore_env()
        .service_name("bench")
        .daemon_address(sink.local_addr().unwrap().to_string())
        .centralized_sampling(false)
        .plugins(Plugins::none());
    let builder = if sample {
        builder.sampler(AlwaysSample)
    } else {
        builder.sampler(NeverSample)
    };
    builder.build().unwrap()
}

/// The plain `service_fn` the `service_fn_*` variants call.
type Plain = tower::util::ServiceFn<fn(Request<Body>) -> Ready<Result<PlainResponse, Infallible>>>;
type PlainResponse = http::Response<Full<Bytes>>;

fn plain_hello(_req: Request<Body>) -> Ready<Result<PlainResponse, Infallible>> {
    ready(Ok(http::Response::new(Full::new(Bytes::from_static(
        b"Hello, World!",
    )))))
}

const TRACE_HEADER: HeaderName = HeaderName::from_static("x-amzn-trace-id");

/// The reference layer's service (see the module documentation).
#[derive(Clone)]
struct MinimalReference<S> {
    inner: S,
}

impl<S, B> Service<Request<Body>> for MinimalReference<S>
where
    S: Service<Request<Body>, Response = Response<B>>,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = MinimalReferenceFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let trace_id = req
            .headers()
            .get(TRACE_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| TraceHeader::parse(v).root())
            .unwrap_or_else(TraceId::new);
        req.extensions_mut().insert(trace_id);
        MinimalReferenceFuture {
            inner: self.inner.call(req),
            trace_id,
        }
    }
}

pin_project_lite::pin_project! {
    struct MinimalReferenceFuture<F> {
        #[pin]
        inner: F,
        trace_id: TraceId,
    }
}

impl<F, B, E> Future for MinimalReferenceFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = match this.inner.poll(cx) {
            Poll::Ready(Ok(res)) => res,
            other => return other,
        };
        // `Root=` and the ID, on the stack, as the layer does.
        let mut buf = [0u8; 5 + TraceId::LEN];
        buf[..5].copy_from_slice(b"Root=");
        buf[5..].copy_from_slice(&this.trace_id.to_bytes());
        if let Ok(value) = HeaderValue::from_bytes(&buf) {
            res.headers_mut().insert(TRACE_HEADER, value);
        }
        Poll::Ready(Ok(res))
    }
}

/// What a variant calls.
#[derive(Clone)]
enum Target {
    Router(Router),
    Plain(Plain),
    Layered(XRay<Plain>),
    WrappedRouter(XRay<Router>),
    PlainReference(MinimalReference<Plain>),
    RouterReference(MinimalReference<Router>),
}

impl Target {
    /// One request, body collected.
    async fn call(&self, header: Option<&'static str>) {
        let req = request(header);
        match self {
            Target::Router(app) => once(app.clone(), req).await,
            Target::Plain(svc) => once(*svc, req).await,
            Target::Layered(svc) => once(svc.clone(), req).await,
            Target::WrappedRouter(svc) => once(svc.clone(), req).await,
            Target::PlainReference(svc) => once(svc.clone(), req).await,
            Target::RouterReference(svc) => once(svc.clone(), req).await,
        }
    }
}

/// Calls `svc` once with `req` and reads the response body to the end.
async fn once<S, B>(svc: S, req: Request<Body>)
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let res = svc.oneshot(req).await.unwrap();
    black_box(res.into_body().collect().await.unwrap());
}

struct Variant {
    name: &'static str,
    target: Target,
    header: Option<&'static str>,
    /// Run in turn with `target` (same header), timed on the side: the paired baseline.
    baseline: Option<Target>,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Every variant, `sampled` and `unsampled` being the two recorders.
fn variants(sampled: &Recorder, unsampled: &Recorder) -> Vec<Variant> {
    let noop = tower::util::MapResponseLayer::new(|r: axum::response::Response| r);
    let bare = Target::Router(hello());
    let layered = |rec: &Recorder| Target::Router(hello().layer(XRayLayer::new(rec.clone())));
    // The same request to a bare `service_fn` (no router): the layer's own work, without
    // the boxing and routing that every axum layer brings.
    let plain: Plain = tower::service_fn(plain_hello as fn(_) -> _);
    let plain_layered = |rec: &Recorder| Target::Layered(XRay::new(plain, rec.clone()));
    let v = |name, target, header, baseline| Variant {
        name,
        target,
        header,
        baseline,
    };

    // `wrapped_router_*`: the layer around the whole router (`XRay::new(router, ..)`) rather
    // than through `Router::layer`, which boxes every route once more.
    [
        v("bare", bare.clone(), None, None),
        v("bare_with_header", bare.clone(), Some(CONTINUED), None),
        v(
            "noop_layer",
            Target::Router(hello().layer(noop)),
            None,
            Some(bare.clone()),
        ),
        v(
            "layer_unsampled_by_sampler",
            layered(unsampled),
            None,
            Some(bare.clone()),
        ),
        v(
            "layer_unsampled_by_header",
            layered(sampled),
            Some(NOT_SAMPLED),
            Some(bare.clone()),
        ),
        v(
            "layer_sampled_new_trace",
            layered(sampled),
            None,
            Some(bare.clone()),
        ),
        v(
            "layer_sampled_continued",
            layered(sampled),
            Some(CONTINUED),
            Some(bare.clone()),
        ),
        v(
            "wrapped_router_unsampled",
            Target::WrappedRouter(XRay::new(hello(), unsampled.clone())),
            None,
            Some(bare.clone()),
        ),
        v(
            "wrapped_router_sampled",
            Target::WrappedRouter(XRay::new(hello(), sampled.clone())),
            None,
            Some(bare.clone()),
        ),
        v(
            "wrapped_router_minimal_reference",
            Target::RouterReference(MinimalReference { inner: hello() }),
            None,
            Some(bare.clone()),
        ),
        v(
            "service_fn_layer_unsampled_no_resp_header",
            Target::Layered(tower_layer::Layer::layer(
                &XRayLayer::new(unsampled.clone()).response_header(false),
                plain,
            )),
            None,
            Some(Target::Plain(plain)),
        ),
        v("service_fn_bare", Target::Plain(plain), None, None),
        v(
            "service_fn_layer_unsampled",
            plain_layered(unsampled),
            None,
            Some(Target::Plain(plain)),
        ),
        v(
            "service_fn_minimal_reference",
            Target::PlainReference(MinimalReference { inner: plain }),
            None,
            Some(Target::Plain(plain)),
        ),
        v(
            "service_fn_layer_sampled",
            plain_layered(sampled),
            None,
            Some(Target::Plain(plain)),
        ),
    ]
    .into()
}

/// What both modes start from: a current-thread runtime, the sampled recorder (flushed between
/// chunks), the socket both recorders send to (kept open while they run), and every variant.
struct Setup {
    rt: tokio::runtime::Runtime,
    _sink: UdpSocket,
    sampled: Recorder,
    variants: Vec<Variant>,
}

fn setup() -> Setup {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sampled = recorder(&sink, true);
    let variants = variants(&sampled, &recorder(&sink, false));
    Setup {
        rt,
        _sink: sink,
        sampled,
        variants,
    }
}

fn run<M, S>(c: &mut Criterion<M>, group: &str)
where
    M: Measurement<Value = Duration> + 'static,
    S: Stopwatch,
{
    let setup = setup();

    let mut g = c.benchmark_group(group);
    let mut paired = Vec::new();
    for variant in &setup.variants {
        // Per criterion sample, ns per request: the variant and its interleaved baseline.
        let samples: Rc<RefCell<Vec<(f64, f64)>>> = Rc::default();
        g.bench_function(variant.name, |b| {
            b.to_async(&setup.rt).iter_custom(|iters| {
                let samples = Rc::clone(&samples);
                let sampled = setup.sampled.clone();
                async move {
                    let mut total = Duration::ZERO;
                    let mut base = Duration::ZERO;
                    let mut done = 0;
                    while done < iters {
                        let n = CHUNK.min(iters - done);
                        let watch = S::start();
                        for _ in 0..n {
                            variant.target.call(variant.header).await;
                        }
                        total += watch.elapsed();
                        if let Some(baseline) = &variant.baseline {
                            let watch = S::start();
                            for _ in 0..n {
                                baseline.call(variant.header).await;
                            }
                            base += watch.elapsed();
                        }
                        done += n;
                        // Not timed: the emitter sends what the chunk produced.
                        sampled.flush(Duration::from_secs(5)).unwrap();
                    }
                    let per = |d: Duration| d.as_nanos() as f64 / iters.max(1) as f64;
                    samples.borrow_mut().push((per(total), per(base)));
                    total
                }
            });
        });
        // Variants left out by a filter have no samples: nothing to print.
        if variant.baseline.is_some() && !samples.borrow().is_empty() {
            let samples = samples.borrow();
            let mut with: Vec<f64> = samples.iter().map(|s| s.0).collect();
            let mut without: Vec<f64> = samples.iter().map(|s| s.1).collect();
            let mut added: Vec<f64> = samples.iter().map(|s| s.0 - s.1).collect();
            paired.push(format!(
                "paired {group}/{}: median of {} samples, ns per request: with {:.0}, interleaved baseline {:.0}, added {:.0}",
                variant.name,
                added.len(),
                median(&mut with),
                median(&mut without),
                median(&mut added),
            ));
        }
    }
    g.finish();
    for line in paired {
        println!("{line}");
    }
    let s = setup.sampled.stats();
    println!(
        "{group}: emitter queued {} dropped_queue_full {} sent {}",
        s.queued, s.dropped_queue_full, s.sent
    );
    assert_eq!(
        s.dropped_queue_full, 0,
        "the queue is flushed between chunks"
    );
}

fn wall(c: &mut Criterion) {
    run::<_, Instant>(c, "axum_hello_oneshot");
}

fn thread_cpu(c: &mut Criterion<ThreadCpu>) {
    run::<_, ThreadTime>(c, "axum_hello_oneshot_thread_cpu");
}

criterion_group!(wall_clock, wall);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(ThreadCpu { wall: WallTime });
    targets = thread_cpu
}

/// `LAYER_BENCH_LOOP=<variant>:<requests>`: runs that many requests of one variant (no
/// baseline, no timing) and exits, for counting instructions under `valgrind --tool=callgrind`.
/// Counting only inside the runtime's `block_on` leaves the start-up work out (see
/// docs/PERFORMANCE.md for the command).
fn request_loop(spec: &str) {
    let (name, requests) = spec
        .split_once(':')
        .expect("LAYER_BENCH_LOOP=<variant>:<requests>");
    let requests: u64 = requests.parse().expect("a number of requests");
    let setup = setup();
    let variant = setup
        .variants
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no variant {name:?}"));
    setup.rt.block_on(async {
        for done in 1..=requests {
            variant.target.call(variant.header).await;
            if done % CHUNK == 0 {
                setup.sampled.flush(Duration::from_secs(5)).unwrap();
            }
        }
    });
    setup.sampled.flush(Duration::from_secs(5)).unwrap();
    println!("{name}: {requests} requests");
}

fn main() {
    if let Ok(spec) = std::env::var("LAYER_BENCH_LOOP") {
        request_loop(&spec);
        return;
    }
    wall_clock();
    cpu();
    Criterion::default().configure_from_args().final_summary();
}
