//! The cost the middleware adds to a call, with a sampled segment current.
//!
//! - `loopback_http/*`: a GET to an axum server on 127.0.0.1 over a keep-alive connection,
//!   through a `ClientWithMiddleware` without and with `XRayMiddleware`.
//!   The server runs on a thread of its own, so every call wakes that thread and is woken back:
//!   a round trip of about 110 µs on a small VM, in which any extra work on either side can
//!   cost more than itself (the scheduler's wake-ups shift; one more short header adds 1-2 µs).
//! - `loopback_same_thread/*`: the same calls to the same kind of server, which runs as a task
//!   on the client's own single-threaded runtime: a real TCP round trip over loopback without
//!   the cross-thread wake-ups (about 30 µs), closer to the work each side does.
//! - `{pass_through,fixed_header}_middleware` (every loopback group): references on the same
//!   calls, a middleware that only passes the request on, and one that also adds a fixed
//!   `X-Amzn-Trace-Id` (which the server then parses): the floor under any tracing middleware.
//! - `loopback_client_cpu/*`: the calls of `loopback_http` (server on its own thread), timed
//!   in CPU time of the client's thread only: what a call costs the calling service, without
//!   the server's work (which a same-thread server adds to the caller's figures) and without
//!   the cross-thread wake-ups (which make wall time jump). The kernel's send and receive work
//!   done on the client's thread is counted.
//! - `middleware_only/*`: the same client stack ending in a middleware that answers at once
//!   (no I/O), without and with `XRayMiddleware`: the middleware's own cost without network
//!   noise.
//!
//! Every 10 calls the segment is ended (and handed to the emitter, which sends it to a UDP
//! socket nobody reads) and a new one begins, in both variants alike, outside the timed part;
//! the emitter is flushed after each segment, so its thread never runs beside timed calls.
//!
//! `with_middleware` is paired: each chunk of 10 calls with the middleware is followed by 10
//! calls without it, timed on the side, and the bench prints the median over criterion's
//! samples of the per-call difference (`paired ...`), a figure that sees both variants at the
//! same moment of the machine.
//!
//! ```text
//! cargo bench -p xray-sdk-reqwest --bench middleware -- --warm-up-time 1 --measurement-time 3
//! ```

#![allow(clippy::print_stdout)]

use std::hint::black_box;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use cpu_time::ThreadTime;
use criterion::{Criterion, criterion_group};
use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use xray_sdk::Recorder;
use xray_sdk::context::FutureExt;
use xray_sdk::plugins::Plugins;
use xray_sdk::sampling::AlwaysSample;
use xray_sdk_reqwest::XRayMiddleware;

const CALLS_PER_SEGMENT: u64 = 10;

/// Answers every request with `200 ok` without touching the network.
struct Canned;

#[async_trait::async_trait]
impl Middleware for Canned {
    async fn handle(
        &self,
        _req: Request,
        _ext: &mut Extensions,
        _next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let mut response = http::Response::new("ok");
        response.headers_mut().insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from_static("2"),
        );
        Ok(Response::from(response))
    }
}

fn app() -> axum::Router {
    axum::Router::new().route("/", axum::routing::get(|| async { "ok" }))
}

/// The server on a thread (and runtime) of its own: each call wakes the other thread, twice.
fn start_server() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("server runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr")).ok();
            axum::serve(listener, app()).await.ok();
        });
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("server started")
}

/// The server as a task on the client's own single-threaded runtime: the same TCP round trip
/// over loopback, without waking another thread.
fn start_server_on(rt: &tokio::runtime::Runtime) -> SocketAddr {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(async move {
        axum::serve(listener, app()).await.ok();
    });
    addr
}

/// A middleware that only passes the request on, optionally adding a fixed trace header: the
/// least any middleware, and any middleware that propagates a trace, adds to a real call.
struct Reference {
    header: bool,
}

#[async_trait::async_trait]
impl Middleware for Reference {
    async fn handle(
        &self,
        mut req: Request,
        ext: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        if self.header {
            req.headers_mut().insert(
                "x-amzn-trace-id",
                http::HeaderValue::from_static(
                    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
                ),
            );
        }
        next.run(req, ext).await
    }
}

/// The middleware a client variant has in front of the network (or of `Canned`).
#[derive(Clone, Copy)]
enum Added {
    Nothing,
    XRay,
    PassThrough,
    FixedHeader,
}

fn client(added: Added, canned: bool) -> ClientWithMiddleware {
    let mut builder = ClientBuilder::new(reqwest::Client::new());
    builder = match added {
        Added::Nothing => builder,
        Added::XRay => builder.with(XRayMiddleware::new()),
        Added::PassThrough => builder.with(Reference { header: false }),
        Added::FixedHeader => builder.with(Reference { header: true }),
    };
    if canned {
        builder = builder.with(Canned);
    }
    builder.build()
}

/// How a group times its calls.
#[derive(Clone, Copy)]
enum Clock {
    /// Wall-clock time.
    Wall,
    /// CPU time of the calling thread.
    ThreadCpu,
}

/// A started measurement of either clock.
enum Started {
    Wall(Instant),
    ThreadCpu(ThreadTime),
}

impl Clock {
    fn start(self) -> Started {
        match self {
            Clock::Wall => Started::Wall(Instant::now()),
            Clock::ThreadCpu => Started::ThreadCpu(ThreadTime::now()),
        }
    }
}

impl Started {
    fn elapsed(&self) -> Duration {
        match self {
            Started::Wall(t) => t.elapsed(),
            Started::ThreadCpu(t) => t.elapsed(),
        }
    }
}

/// Runs `iters` calls in segments of `CALLS_PER_SEGMENT`, each segment current while its calls
/// run, and returns the time the calls took by `clock`. Segments begin and end outside the
/// timed part, and the emitter is flushed after each one, so that its thread (which writes and
/// sends the documents) never runs beside timed calls.
fn run(
    rt: &tokio::runtime::Runtime,
    recorder: &Recorder,
    client: &ClientWithMiddleware,
    (url, clock): (&str, Clock),
    iters: u64,
) -> Duration {
    rt.block_on(async {
        let mut took = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let n = left.min(CALLS_PER_SEGMENT);
            left -= n;
            let segment = recorder.segment("bench").begin();
            let start = clock.start();
            async {
                for _ in 0..n {
                    let response = client.get(url).send().await.expect("call");
                    black_box(response.bytes().await.expect("body"));
                }
            }
            .in_context(segment.context())
            .await;
            took += start.elapsed();
            segment.end();
            recorder.flush(Duration::from_secs(5)).expect("flush");
        }
        took
    })
}

fn bench(c: &mut Criterion) {
    // The "daemon": a bound UDP socket that is never read (the kernel drops what overflows).
    let sink = UdpSocket::bind("127.0.0.1:0").expect("udp sink");
    let recorder = Recorder::builder()
        .ignore_env()
        .service_name("bench")
        .daemon_address(sink.local_addr().expect("udp addr").to_string())
        .sampler(AlwaysSample)
        .centralized_sampling(false)
        .plugins(Plugins::none())
        .build()
        .expect("recorder");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let url = format!("http://{}/", start_server());
    let same_thread_url = format!("http://{}/", start_server_on(&rt));

    for group_name in [
        "loopback_http",
        "loopback_client_cpu",
        "loopback_same_thread",
        "middleware_only",
    ] {
        let canned = group_name == "middleware_only";
        let target = match group_name {
            "loopback_same_thread" => (same_thread_url.as_str(), Clock::Wall),
            "loopback_client_cpu" => (url.as_str(), Clock::ThreadCpu),
            _ => (url.as_str(), Clock::Wall),
        };
        let without = client(Added::Nothing, canned);
        let mut group = c.benchmark_group(group_name);
        group.bench_function("without_middleware", |b| {
            b.iter_custom(|iters| run(&rt, &recorder, &without, target, iters));
        });
        // Over the network, also the two reference middlewares: what passing a call through
        // any middleware costs, and what sending one more header costs (the server parses it).
        let variants: &[(&str, Added)] = if canned {
            &[("with_middleware", Added::XRay)]
        } else {
            &[
                ("with_middleware", Added::XRay),
                ("pass_through_middleware", Added::PassThrough),
                ("fixed_header_middleware", Added::FixedHeader),
            ]
        };
        let mut paired = Vec::new();
        for &(name, added) in variants {
            let with = client(added, canned);
            // Paired: every chunk of calls with the middleware is followed by as many calls
            // without it, timed on the side; per criterion sample, the difference.
            let mut diffs = Vec::new();
            group.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    let (mut total, mut base) = (Duration::ZERO, Duration::ZERO);
                    let mut left = iters;
                    while left > 0 {
                        let n = left.min(CALLS_PER_SEGMENT);
                        left -= n;
                        total += run(&rt, &recorder, &with, target, n);
                        base += run(&rt, &recorder, &without, target, n);
                    }
                    let per = |d: Duration| d.as_nanos() as f64 / iters.max(1) as f64;
                    diffs.push(per(total) - per(base));
                    total
                });
            });
            if !diffs.is_empty() {
                diffs.sort_by(f64::total_cmp);
                paired.push(format!(
                    "paired {group_name}/{name}: median of {} samples, ns added per call: {:.0}",
                    diffs.len(),
                    diffs[diffs.len() / 2],
                ));
            }
        }
        group.finish();
        for line in paired {
            println!("{line}");
        }
    }
    drop(sink);
}

criterion_group!(benches, bench);

/// `MIDDLEWARE_BENCH_LOOP=<with|without>:<calls>`: that many calls of `middleware_only`
/// (no I/O) with or without the middleware, untimed, then exit: a fixed amount of work whose
/// instructions callgrind counts. The middleware's own work per call is the difference of
/// the two runs divided by the calls (see docs/PERFORMANCE.md).
fn fixed_loop(spec: &str) {
    let (variant, calls) = spec
        .split_once(':')
        .expect("MIDDLEWARE_BENCH_LOOP=<with|without>:<calls>");
    let calls: u64 = calls.parse().expect("a number of calls");
    let sink = UdpSocket::bind("127.0.0.1:0").expect("udp sink");
    let recorder = Recorder::builder()
        .ignore_env()
        .service_name("bench")
        .daemon_address(sink.local_addr().expect("udp addr").to_string())
        .sampler(AlwaysSample)
        .centralized_sampling(false)
        .plugins(Plugins::none())
        .build()
        .expect("recorder");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let added = if variant == "with" {
        Added::XRay
    } else {
        Added::Nothing
    };
    let client = client(added, true);
    run(
        &rt,
        &recorder,
        &client,
        ("http://canned.invalid/", Clock::Wall),
        calls,
    );
}

fn main() {
    if let Ok(spec) = std::env::var("MIDDLEWARE_BENCH_LOOP") {
        fixed_loop(&spec);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
