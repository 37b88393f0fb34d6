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
//! `cargo bench -p xray-sdk-tower --bench layer -- --warm-up-time 1 --measurement-time 3`
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use std::convert::Infallible;
use std::hint::black_box;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use cpu_time::ThreadTime;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;
use xray_sdk::Recorder;
use xray_sdk::plugins::Plugins;
use xray_sdk::sampling::{AlwaysSample, NeverSample};
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

fn run<M, S>(c: &mut Criterion<M>, group: &str)
where
    M: Measurement<Value = Duration> + 'static,
    S: Stopwatch,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sampled = recorder(&sink, true);
    let unsampled = recorder(&sink, false);
    let noop = tower::util::MapResponseLayer::new(|r: axum::response::Response| r);

    let variants: [(&str, Router, Option<&'static str>); 7] = [
        ("bare", hello(), None),
        ("bare_with_header", hello(), Some(CONTINUED)),
        ("noop_layer", hello().layer(noop), None),
        (
            "layer_unsampled_by_sampler",
            hello().layer(XRayLayer::new(unsampled.clone())),
            None,
        ),
        (
            "layer_unsampled_by_header",
            hello().layer(XRayLayer::new(sampled.clone())),
            Some(NOT_SAMPLED),
        ),
        (
            "layer_sampled_new_trace",
            hello().layer(XRayLayer::new(sampled.clone())),
            None,
        ),
        (
            "layer_sampled_continued",
            hello().layer(XRayLayer::new(sampled.clone())),
            Some(CONTINUED),
        ),
    ];

    // Unsampled variants run before sampled ones: after a sampled variant the emitter thread
    // is still freeing that variant's documents for a while, which slows the allocator of
    // whatever runs next.
    let mut g = c.benchmark_group(group);
    for (name, app, header) in variants {
        g.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let app = app.clone();
                let sampled = sampled.clone();
                async move {
                    let mut total = Duration::ZERO;
                    let mut done = 0;
                    while done < iters {
                        let n = CHUNK.min(iters - done);
                        let watch = S::start();
                        for _ in 0..n {
                            let res = app.clone().oneshot(request(header)).await.unwrap();
                            black_box(res.into_body().collect().await.unwrap());
                        }
                        total += watch.elapsed();
                        done += n;
                        sampled.flush(Duration::from_secs(5)).unwrap();
                    }
                    total
                }
            });
        });
    }

    // The same request to a bare `service_fn` (no router): the layer's own work, without
    // the boxing and routing that every axum layer brings.
    let plain = tower::service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(
            b"Hello, World!",
        ))))
    });
    let plain_variants = [
        ("service_fn_bare", None),
        ("service_fn_layer_unsampled", Some(unsampled.clone())),
        ("service_fn_layer_sampled", Some(sampled.clone())),
    ];
    for (name, rec) in plain_variants {
        let svc = rec.clone().map(|rec| XRay::new(plain, rec));
        g.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let svc = svc.clone();
                let rec = rec.clone();
                async move {
                    let mut total = Duration::ZERO;
                    let mut done = 0;
                    while done < iters {
                        let n = CHUNK.min(iters - done);
                        let watch = S::start();
                        for _ in 0..n {
                            let body = match &svc {
                                Some(svc) => {
                                    svc.clone()
                                        .oneshot(request(None))
                                        .await
                                        .unwrap()
                                        .into_body()
                                        .collect()
                                        .await
                                }
                                None => {
                                    plain
                                        .oneshot(request(None))
                                        .await
                                        .unwrap()
                                        .into_body()
                                        .collect()
                                        .await
                                }
                            };
                            black_box(body.unwrap());
                        }
                        total += watch.elapsed();
                        done += n;
                        if let Some(rec) = &rec {
                            rec.flush(Duration::from_secs(5)).unwrap();
                        }
                    }
                    total
                }
            });
        });
    }
    g.finish();
    let s = sampled.stats();
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
criterion_main!(wall_clock, cpu);
