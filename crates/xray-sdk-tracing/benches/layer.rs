//! Cost of the layer: a traced request with 5 instrumented spans, and a span outside any
//! traced context, each with and without the layer in the same run.
//!
//! `cargo bench -p xray-sdk-tracing --bench layer -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::net::UdpSocket;
use xray_sdk::Record;

use criterion::{Criterion, criterion_group, criterion_main};
use tracing::{Dispatch, info_span, instrument};
use tracing_subscriber::prelude::*;
use xray_sdk::Recorder;
use xray_sdk::plugins::Plugins;
use xray_sdk::sampling::AlwaysSample;
use xray_sdk_tracing::XRayTracingLayer;

#[instrument]
fn load(id: u32) -> u32 {
    black_box(id + 1)
}

#[instrument]
fn price(n: u32) -> u32 {
    black_box(n * 3)
}

#[instrument]
fn store(n: u32) -> u32 {
    black_box(n)
}

#[instrument]
fn notify(n: u32) -> u32 {
    black_box(n)
}

#[instrument]
fn handler(id: u32) -> u32 {
    let n = load(id);
    let n = price(n);
    let n = store(n);
    notify(n)
}

fn recorder(sink: &UdpSocket) -> Recorder {
    Recorder::builder()
        .ignore_env()
        .service_name("bench")
        .daemon_address(sink.local_addr().expect("addr").to_string())
        .sampler(AlwaysSample)
        .centralized_sampling(false)
        .plugins(Plugins::none())
        .build()
        .expect("recorder")
}

fn traced_request(c: &mut Criterion) {
    // A socket nobody reads: the kernel drops what does not fit.
    let sink = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let recorder = recorder(&sink);
    let mut g = c.benchmark_group("traced_request_5_spans");
    let arms = [
        (
            "without_layer",
            Dispatch::new(tracing_subscriber::registry()),
        ),
        (
            "with_layer",
            Dispatch::new(tracing_subscriber::registry().with(XRayTracingLayer::new())),
        ),
    ];
    g.bench_function("core_api_5_subsegments_no_layer", |b| {
        b.iter(|| {
            let segment = recorder.segment("request").begin();
            segment.in_scope(|| {
                xray_sdk::with_subsegment("handler", |s| {
                    s.put_metadata_in("tracing", "id", 7);
                    for name in ["load", "price", "store", "notify"] {
                        xray_sdk::with_subsegment(name, |s| s.put_metadata_in("tracing", "n", 8));
                    }
                })
            });
            segment.end();
        })
    });
    for (name, dispatch) in arms {
        tracing::dispatcher::with_default(&dispatch, || {
            g.bench_function(name, |b| {
                b.iter(|| {
                    let segment = recorder.segment("request").begin();
                    let out = segment.in_scope(|| handler(black_box(7)));
                    segment.end();
                    out
                })
            });
        });
    }
    g.finish();
}

fn untraced_span(c: &mut Criterion) {
    let sink = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let recorder = recorder(&sink);
    let mut g = c.benchmark_group("untraced_span");
    let plain = Dispatch::new(tracing_subscriber::registry());
    let layered = Dispatch::new(tracing_subscriber::registry().with(XRayTracingLayer::new()));
    let span_lifecycle = || {
        let span = info_span!("outside", n = 1);
        let _entered = span.enter();
        black_box(&span);
    };
    tracing::dispatcher::with_default(&plain, || {
        // The first measurement of a run pays for page faults and a cold registry: warm up
        // both subscribers outside criterion so the two arms start equal.
        for _ in 0..200_000 {
            span_lifecycle();
        }
        tracing::dispatcher::with_default(&layered, || {
            for _ in 0..200_000 {
                span_lifecycle();
            }
        });
        g.bench_function("without_layer", |b| b.iter(span_lifecycle));
    });
    tracing::dispatcher::with_default(&layered, || {
        g.bench_function("with_layer", |b| b.iter(span_lifecycle));
        // The same untraced span while another request's span is open (the layer can no
        // longer skip the span lookup on enter and close).
        let segment = recorder.segment("other-request").begin();
        let busy = segment.in_scope(|| info_span!("in-flight"));
        busy.in_scope(|| {});
        g.bench_function("with_layer_while_traced_spans_open", |b| {
            b.iter(span_lifecycle)
        });
        drop(busy);
        segment.end();
    });
    g.finish();
}

// The untraced group first, before the emitter thread has a backlog to compete with.
criterion_group!(benches, untraced_span, traced_request);
criterion_main!(benches);
