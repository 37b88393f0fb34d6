//! An invocation's own cost: a handler that records a `compute` subsegment and three
//! AWS-style subsegments, called through the layer (which begins the invocation, makes it
//! current, ends it and sends every document over UDP before the call returns) against the
//! same handler without the layer.
//!
//! Variants:
//! - `without_layer`: the bare handler (its recording finds no context and does nothing);
//! - `layer_stream_each`: the layer with the recorder of `xray_sdk_lambda::recorder_builder`:
//!   every subsegment is sent as it ends (five datagrams per invocation);
//! - `layer_one_datagram`: the same with a streaming threshold of 100, so the invocation
//!   goes out as one document when it ends (one datagram), as a function that accepts
//!   losing unfinished work on a timeout could configure it;
//! - `layer_unsampled`: the layer, `Sampled=0`.
//!
//! The documents go to a loopback UDP socket that nobody reads (the kernel drops what does
//! not fit its buffer; the send costs the same). Futures are polled with a no-op waker: the
//! handler never waits, so no executor is measured.
//!
//! Besides criterion's figures, the bench prints for each layered variant the median, over
//! 31 rounds, of the difference between 2,000 invocations with the layer and 2,000 without,
//! run back to back (`paired ... added`): both halves see the same moment of the machine.
//!
//! `cargo bench -p xray-sdk-lambda --bench invocation -- --warm-up-time 1 --measurement-time 3`
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use std::future::Future;
use std::hint::black_box;
use std::net::UdpSocket;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use lambda_runtime::{Config, Context, Diagnostic, LambdaEvent, service_fn};
use tower::{Layer, Service};
use xray_sdk::{Namespace, Record, Recorder};
use xray_sdk_lambda::XRayLambdaLayer;

const SAMPLED: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
const UNSAMPLED: &str =
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0";

/// The handler: a compute step and three DynamoDB-like calls, recorded on whatever is
/// current (nothing without the layer).
async fn handler(event: LambdaEvent<u32>) -> Result<u32, Diagnostic> {
    let current = xray_sdk::Context::current();
    let mut total = event.payload;
    if let Some(ctx) = &current {
        let compute = ctx.begin_subsegment("compute");
        compute.annotate("items", 3);
        total = black_box(total.wrapping_mul(31));
        compute.end();
        for operation in ["GetItem", "PutItem", "Query"] {
            let call = ctx.begin_subsegment_with("DynamoDB", |p| {
                p.set_namespace(Namespace::Aws);
                p.set_aws_operation(operation);
                p.set_aws_region("us-west-2");
                p.set_aws_table_name("orders");
            });
            call.end_with(|p| {
                p.set_http_response(200, Some(2));
                p.set_aws_request_id("4Q0SJ8L1G4AUBDIBGSA2VBEJNBVV4KQNSO5AEMVJF66Q9ASUAAJG");
            });
        }
    } else {
        total = black_box(total.wrapping_mul(31));
    }
    Ok(total)
}

fn context(header: &str) -> Context {
    let mut context = Context::default();
    context.request_id = "8476a536-e9f4-11e8-9739-2dfe598c3fcd".into();
    context.deadline = 1_796_630_400_000;
    context.invoked_function_arn = "arn:aws:lambda:us-west-2:123456789012:function:orders".into();
    context.xray_trace_id = Some(header.into());
    context.env_config = Arc::new(Config {
        function_name: "orders".into(),
        memory: 128,
        version: "$LATEST".into(),
        log_stream: String::new(),
        log_group: String::new(),
    });
    context
}

/// Calls the service once and polls its future to the end.
fn invoke<S>(service: &mut S, context: &Context) -> u32
where
    S: Service<LambdaEvent<u32>, Response = u32>,
    S::Error: std::fmt::Debug,
{
    let future = pin!(service.call(LambdaEvent::new(7, context.clone())));
    let mut cx = TaskContext::from_waker(Waker::noop());
    match future.poll(&mut cx) {
        Poll::Ready(out) => out.unwrap(),
        Poll::Pending => unreachable!("the handler never waits"),
    }
}

fn recorder(daemon: &UdpSocket, threshold: u32) -> Recorder {
    xray_sdk_lambda::recorder_builder()
        .ignore_env()
        .daemon_address(daemon.local_addr().unwrap().to_string())
        .streaming_threshold(threshold)
        .build()
        .unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median over rounds of (chunk with the layer − chunk without), per invocation, in µs.
fn paired<S>(layered: &mut S, context: &Context) -> f64
where
    S: Service<LambdaEvent<u32>, Response = u32>,
    S::Error: std::fmt::Debug,
{
    const CHUNK: u32 = 2_000;
    let mut bare = service_fn(handler);
    let mut diffs = Vec::new();
    for _ in 0..31 {
        let t = Instant::now();
        for _ in 0..CHUNK {
            black_box(invoke(layered, context));
        }
        let with = t.elapsed();
        let t = Instant::now();
        for _ in 0..CHUNK {
            black_box(invoke(&mut bare, context));
        }
        let without = t.elapsed();
        diffs.push((with.as_secs_f64() - without.as_secs_f64()) * 1e6 / f64::from(CHUNK));
    }
    median(diffs)
}

fn bench(c: &mut Criterion) {
    let daemon = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sampled = context(SAMPLED);
    let unsampled = context(UNSAMPLED);
    let mut group = c.benchmark_group("invocation");

    let mut bare = service_fn(handler);
    group.bench_function("without_layer", |b| b.iter(|| invoke(&mut bare, &sampled)));

    let variants = [
        ("layer_stream_each", 0, &sampled),
        ("layer_one_datagram", 100, &sampled),
        ("layer_unsampled", 0, &unsampled),
    ];
    let mut added = Vec::new();
    for (name, threshold, ctx) in variants {
        let recorder = recorder(&daemon, threshold);
        let mut layered = XRayLambdaLayer::new(recorder.clone()).layer(service_fn(handler));
        group.bench_function(name, |b| b.iter(|| invoke(&mut layered, ctx)));
        added.push((name, paired(&mut layered, ctx)));
        let stats = recorder.stats();
        assert_eq!(stats.send_errors, 0, "{stats:?}");
    }
    group.finish();
    for (name, us) in added {
        println!("paired {name}: {us:.2} µs added per invocation");
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = bench
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
