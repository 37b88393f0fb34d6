//! The cost `XRayInterceptor` adds to a DynamoDB GetItem, with a sampled segment current.
//!
//! Both variants run the full AWS SDK stack (endpoint resolution, SigV4 signing, retry
//! strategy, JSON (de)serialization) against an in-process HTTP client that answers every
//! request with the same canned GetItem response: `plain` without the interceptor, `xray`
//! with it (subsegment, trace header, whitelisted parameters from both bodies, request id).
//! The variants alternate call by call, each sample timing only its own, so that both see the
//! same machine load. Every 100 calls the segment is ended, handed to the emitter (which sends it to a UDP socket
//! nobody reads), and a new one begins, in both variants alike.
//!
//! ```text
//! cargo bench -p xray-sdk-aws --bench get_item -- --warm-up-time 1 --measurement-time 3
//! ```

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
use xray_sdk::{Recorder, Segment};
use xray_sdk_aws::XRayInterceptor;

const CALLS_PER_SEGMENT: u64 = 100;
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

    let clients = [client(false), client(true)];
    let mut segment: Option<Segment> = None;
    let mut calls = 0u64;
    // One call on `clients[which]` in the current segment; returns its duration.
    let mut call = |which: usize| {
        if calls.is_multiple_of(CALLS_PER_SEGMENT) {
            segment = Some(recorder.begin_segment("bench"));
        }
        calls += 1;
        let ctx = segment.as_ref().map(|s| s.context()).expect("segment");
        let start = Instant::now();
        let out = rt.block_on(
            clients[which]
                .get_item()
                .table_name("users")
                .key("id", AttributeValue::S("42".into()))
                .consistent_read(true)
                .send()
                .in_context(ctx),
        );
        let took = start.elapsed();
        black_box(out.is_ok());
        took
    };

    // The two variants alternate call by call (each sample times only its own variant), so
    // both see the same machine load, caches and allocator state.
    let mut group = c.benchmark_group("get_item");
    for (name, timed) in [("plain", 0usize), ("xray", 1usize)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let a = call(timed);
                    call(1 - timed);
                    total += a;
                }
                total
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
