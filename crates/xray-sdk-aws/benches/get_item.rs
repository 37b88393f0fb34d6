//! The cost `XRayInterceptor` adds to a DynamoDB GetItem, with a sampled segment current.
//!
//! Both variants run the full AWS SDK stack (endpoint resolution, SigV4 signing, retry
//! strategy, JSON (de)serialization) against an in-process HTTP client that answers every
//! request with the same canned GetItem response: `plain` without the interceptor, `xray`
//! with it (subsegment, trace header, the facts its `aws` block is written from). `xray` runs
//! 10 calls to a segment, which is then ended and handed to the emitter (which sends it to
//! a UDP socket nobody reads); the emitter is flushed outside the timed part. Each segment's
//! calls are paired with as many `plain` calls right after, timed on the side: the bench
//! prints the median over criterion's samples of the difference (`paired get_item/xray`),
//! which both halves measure under the same machine load.
//!
//! ```text
//! cargo bench -p xray-sdk-aws --bench get_item -- --warm-up-time 1 --measurement-time 3
//! ```

#![allow(clippy::print_stdout)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use common::{Canned, ReplayClient, sdk_config};
use criterion::{Criterion, criterion_group, criterion_main};
use xray_sdk::context::FutureExt;
use xray_sdk::plugins::Plugins;
use xray_sdk::sampling::AlwaysSample;
use xray_sdk::{Entity, Recorder};
use xray_sdk_aws::XRayInterceptor;

/// AWS calls per segment (request): a busy handler's worth.
const CALLS_PER_SEGMENT: u64 = 10;
const ENDPOINT: &str = "http://dynamodb.bench";
const RESPONSE: &str = r#"{"ConsumedCapacity":{"CapacityUnits":0.5,"TableName":"users"},"Item":{"id":{"S":"42"},"name":{"S":"Ada"},"visits":{"N":"7"}}}"#;

fn client(with_xray: bool) -> Client {
    let http = ReplayClient::fixed(Canned::json(200, "REQ1234567890", RESPONSE));
    let sdk = sdk_config(SharedHttpClient::new(http), ENDPOINT);
    let mut conf = aws_sdk_dynamodb::config::Builder::from(&sdk);
    if with_xray {
        conf = conf.interceptor(XRayInterceptor::new());
    }
    Client::from_conf(conf.build())
}

fn bench(c: &mut Criterion) {
    let sink = UdpSocket::bind("127.0.0.1:0").expect("udp sink");
    let recorder = Recorder::builder()
        .ignore_env()
        .service_name("bench")
        .daemon_address(sink.local_addr().expect("addr").to_string())
        .sampler(AlwaysSample)
        .centralized_sampling(false)
        .plugins(Plugins::none())
        .build()
        .expect("recorder");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();

    let plain = client(false);
    let xray = client(true);
    // `n` GetItem calls on `client` in `segment`'s context; returns the time they took.
    let calls = |client: &Client, segment: &Entity, n: u64| {
        let ctx = segment.context();
        let start = Instant::now();
        rt.block_on(
            async {
                for _ in 0..n {
                    let out = client
                        .get_item()
                        .table_name("users")
                        .key("id", AttributeValue::S("42".into()))
                        .consistent_read(true)
                        .send()
                        .await;
                    assert!(black_box(out).is_ok(), "replayed GetItem failed");
                }
            }
            .in_context(ctx),
        );
        start.elapsed()
    };

    // `xray` is paired with `plain`: every segment's calls with the interceptor are followed
    // by as many calls without it, timed on the side, and the bench prints the median of the
    // per-sample differences. The segment is ended and the emitter flushed between the two
    // halves, outside the timed parts, so the emitter thread (which writes and sends the
    // documents) never runs beside timed calls.
    let mut group = c.benchmark_group("get_item");
    let mut added = Vec::new();
    group.bench_function("plain", |b| {
        b.iter_custom(|iters| {
            let segment = recorder.segment("bench").begin();
            calls(&plain, &segment, iters)
        });
    });
    group.bench_function("xray", |b| {
        b.iter_custom(|iters| {
            let (mut total, mut base) = (Duration::ZERO, Duration::ZERO);
            let mut left = iters;
            while left > 0 {
                let n = left.min(CALLS_PER_SEGMENT);
                let segment = recorder.segment("bench").begin();
                total += calls(&xray, &segment, n);
                segment.end();
                recorder.flush(Duration::from_secs(5)).expect("flush");
                let segment = recorder.segment("bench").begin();
                base += calls(&plain, &segment, n);
                drop(segment);
                left -= n;
            }
            let per_call = |d: Duration| d.as_nanos() as f64 / iters.max(1) as f64;
            added.push(per_call(total) - per_call(base));
            total
        });
    });
    group.finish();
    recorder.flush(Duration::from_secs(5)).expect("flush");
    let stats = recorder.stats();
    assert_eq!(stats.dropped_queue_full, 0, "the emitter dropped documents");
    assert!(stats.sent > 0, "no segment was sent");
    added.sort_by(f64::total_cmp);
    println!(
        "paired get_item/xray: median of {} samples, ns added per GetItem by the interceptor: {:.0}",
        added.len(),
        added.get(added.len() / 2).copied().unwrap_or(f64::NAN),
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
