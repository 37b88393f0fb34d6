//! The cost `XRayClientLayer` adds to a gRPC call: a unary tonic call to a local tonic server
//! (no X-Ray layer on the server), through the same `Channel` (one HTTP/2 connection) without
//! and with the layer, with a sampled segment current.
//!
//! - `grpc_unary_same_thread/*`: the server runs as a task on the client's own
//!   single-threaded runtime: a real HTTP/2 round trip over loopback without cross-thread
//!   wake-ups, timed in wall time.
//! - `grpc_unary_client_cpu/*`: the server on a thread (and runtime) of its own; the calls
//!   timed in CPU time of the client's thread only: what a call costs the calling service.
//!
//! `with_layer` is paired: each chunk of 10 calls with the layer is followed by 10 calls
//! without it, timed on the side, and the bench prints the median over criterion's samples of
//! the per-call difference (`paired ...`). `with_layer_unsampled` is the same with an
//! unsampled segment current (the call only carries `Sampled=0` downstream).
//! `unique_header_layer` is a reference, paired the same way: a layer that only adds an
//! `X-Amzn-Trace-Id` of the same length whose value changes with every call, as a trace
//! header does. Over HTTP/2 such a header is not in HPACK's tables: both ends encode and
//! decode it in full on every call, which is the floor under any propagating layer.
//!
//! Every 10 calls the segment is ended (and sent to a UDP socket nobody reads) and a new one
//! begins, in both variants alike, outside the timed part; the emitter is flushed after each
//! segment, so its thread never runs beside timed calls.
//!
//! ```text
//! cargo bench -p xray-sdk-tower --bench grpc_client -- --warm-up-time 1 --measurement-time 3
//! ```

#![allow(clippy::print_stdout, missing_docs, unreachable_pub)]

#[path = "../examples/grpc/demo.rs"]
mod demo;
#[path = "../examples/grpc/echo.rs"]
#[allow(clippy::all)]
mod echo;

use std::hint::black_box;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use cpu_time::ThreadTime;
use criterion::{Criterion, criterion_group};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Endpoint, Server};
use xray_sdk::Recorder;
use xray_sdk::context::FutureExt;
use xray_sdk::plugins::Plugins;
use xray_sdk::sampling::AlwaysSample;
use xray_sdk_tower::{XRayClient, XRayClientLayer};

use echo::EchoRequest;
use echo::echo_client::EchoClient;
use echo::echo_server::EchoServer;

const CALLS_PER_SEGMENT: u64 = 10;

async fn serve_plain(listener: tokio::net::TcpListener) {
    Server::builder()
        .add_service(EchoServer::new(demo::EchoService))
        .serve_with_incoming(TcpListenerStream::new(listener))
        .await
        .ok();
}

/// The server on a thread (and runtime) of its own.
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
            tx.send(listener.local_addr().expect("addr")).expect("send");
            serve_plain(listener).await;
        });
    });
    rx.recv().expect("server address")
}

/// The server as a task of `rt`, the client's runtime.
fn start_server_on(rt: &tokio::runtime::Runtime) -> SocketAddr {
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(serve_plain(listener));
        addr
    })
}

#[derive(Clone, Copy)]
enum Clock {
    Wall,
    ThreadCpu,
}

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

/// A layer that only adds a trace header of the usual length, new for every call.
#[derive(Clone)]
struct UniqueHeader<S> {
    inner: S,
    n: u64,
}

impl<S, B> tower::Service<http::Request<B>> for UniqueHeader<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> S::Future {
        self.n += 1;
        let value = format!(
            "Root=1-6b166bae-3ac0f12711e8a8df00aae2d8;Parent={:016x};Sampled=1",
            self.n
        );
        if let Ok(value) = http::HeaderValue::try_from(value) {
            req.headers_mut().insert("x-amzn-trace-id", value);
        }
        self.inner.call(req)
    }
}

/// The clients of one server, on one connection.
struct Clients {
    without: EchoClient<Channel>,
    with: EchoClient<XRayClient<Channel>>,
    unique_header: EchoClient<UniqueHeader<Channel>>,
}

#[derive(Clone, Copy)]
enum Variant {
    Without,
    With,
    UniqueHeader,
}

fn clients(rt: &tokio::runtime::Runtime, addr: SocketAddr) -> Clients {
    rt.block_on(async {
        let endpoint = Endpoint::from_shared(format!("http://{addr}")).expect("endpoint");
        let channel = endpoint.connect().await.expect("connect");
        let layer = XRayClientLayer::new().origin(endpoint.uri().clone());
        Clients {
            without: EchoClient::new(channel.clone()),
            with: EchoClient::new(tower::Layer::layer(&layer, channel.clone())),
            unique_header: EchoClient::new(UniqueHeader {
                inner: channel,
                n: 0,
            }),
        }
    })
}

fn request() -> EchoRequest {
    EchoRequest {
        message: "bench".to_owned(),
        ..EchoRequest::default()
    }
}

/// Runs `iters` calls in segments of `CALLS_PER_SEGMENT` (sampled or not), each segment
/// current while its calls run; returns the time the calls took by `clock`.
fn run(
    rt: &tokio::runtime::Runtime,
    recorder: &Recorder,
    clients: &mut Clients,
    variant: Variant,
    sampled: bool,
    clock: Clock,
    iters: u64,
) -> Duration {
    rt.block_on(async {
        let mut took = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let n = left.min(CALLS_PER_SEGMENT);
            left -= n;
            let segment = recorder.segment("bench").sampled(sampled).begin();
            let start = clock.start();
            async {
                for _ in 0..n {
                    match variant {
                        Variant::Without => {
                            black_box(clients.without.unary(request()).await.expect("call"));
                        }
                        Variant::With => {
                            black_box(clients.with.unary(request()).await.expect("call"));
                        }
                        Variant::UniqueHeader => {
                            black_box(clients.unique_header.unary(request()).await.expect("call"));
                        }
                    }
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
    let own_thread = start_server();
    let same_thread = start_server_on(&rt);

    for (group_name, addr, clock) in [
        ("grpc_unary_same_thread", same_thread, Clock::Wall),
        ("grpc_unary_client_cpu", own_thread, Clock::ThreadCpu),
    ] {
        let mut clients = clients(&rt, addr);
        let mut group = c.benchmark_group(group_name);
        group.bench_function("without_layer", |b| {
            b.iter_custom(|iters| {
                run(
                    &rt,
                    &recorder,
                    &mut clients,
                    Variant::Without,
                    true,
                    clock,
                    iters,
                )
            });
        });
        let mut paired = Vec::new();
        for (name, variant, sampled) in [
            ("with_layer", Variant::With, true),
            ("with_layer_unsampled", Variant::With, false),
            ("unique_header_layer", Variant::UniqueHeader, true),
        ] {
            let mut diffs = Vec::new();
            group.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    let (mut total, mut base) = (Duration::ZERO, Duration::ZERO);
                    let mut left = iters;
                    while left > 0 {
                        let n = left.min(CALLS_PER_SEGMENT);
                        left -= n;
                        total += run(&rt, &recorder, &mut clients, variant, sampled, clock, n);
                        base += run(
                            &rt,
                            &recorder,
                            &mut clients,
                            Variant::Without,
                            sampled,
                            clock,
                            n,
                        );
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

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
