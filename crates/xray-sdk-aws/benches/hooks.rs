//! The interceptor's own work per call, without the AWS SDK around it: the hooks one
//! successful GetItem runs (before execution, before/after serialization, before transmit,
//! after attempt, after execution) on a hand-built interceptor context holding a real
//! serialized GetItem request and response, with a sampled segment current.
//!
//! `none` builds and advances the same context and config bag without calling the
//! interceptor; `xray` calls it. The difference is the interceptor's cost.
//!
//! Calls run 100 to a segment, and the emitter's queue is flushed after each segment outside
//! the timed part. `xray` is also paired with `none` within its samples; the bench prints the
//! median of the per-sample differences (`paired hooks/xray`).
//!
//! ```text
//! cargo bench -p xray-sdk-aws --bench hooks -- --warm-up-time 1 --measurement-time 3
//! ```

#![allow(clippy::print_stdout)]

use std::hint::black_box;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{Input, InterceptorContext, Output};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse, Metadata};
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponentsBuilder;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{ConfigBag, Layer};
use aws_types::region::Region;
use criterion::{Criterion, criterion_group, criterion_main};
use xray_sdk::Recorder;
use xray_sdk::plugins::Plugins;
use xray_sdk::sampling::AlwaysSample;
use xray_sdk_aws::XRayInterceptor;

const CALLS_PER_SEGMENT: u64 = 100;
const REQUEST: &str = r#"{"TableName":"users","Key":{"id":{"S":"42"}},"ConsistentRead":true}"#;
const RESPONSE: &str = r#"{"ConsumedCapacity":{"CapacityUnits":0.5,"TableName":"users"},"Item":{"id":{"S":"42"},"name":{"S":"Ada"},"visits":{"N":"7"}}}"#;

fn request() -> HttpRequest {
    let mut r = HttpRequest::new(SdkBody::from(REQUEST));
    r.set_uri("http://dynamodb.us-west-2.amazonaws.com/")
        .expect("uri");
    r.set_method("POST").expect("method");
    r.headers_mut()
        .insert("x-amz-target", "DynamoDB_20120810.GetItem");
    r.headers_mut()
        .insert("content-type", "application/x-amz-json-1.0");
    r
}

fn response() -> HttpResponse {
    let mut r = HttpResponse::new(
        StatusCode::try_from(200).expect("status"),
        SdkBody::from(RESPONSE),
    );
    r.headers_mut().insert("x-amzn-requestid", "REQ1234567890");
    r.headers_mut()
        .insert("content-length", RESPONSE.len().to_string());
    r
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
    let rc = RuntimeComponentsBuilder::for_tests()
        .build()
        .expect("components");
    let mut op_layer = Layer::new("GetItem");
    op_layer.store_put(Metadata::new("GetItem", "DynamoDB"));
    op_layer.store_put(Region::new("us-west-2"));
    let op_layer = op_layer.freeze();
    let interceptor = XRayInterceptor::new();

    // One call's phases on a fresh context; the interceptor's hooks only when `with_xray`.
    let call = |with_xray: bool| {
        let mut cfg = ConfigBag::base();
        cfg.push_shared_layer(op_layer.clone());
        let mut ctx = InterceptorContext::new(Input::doesnt_matter());
        if with_xray {
            let _ = interceptor.read_before_execution(&(&ctx).into(), &mut cfg);
            let _ = interceptor.read_before_serialization(&(&ctx).into(), &rc, &mut cfg);
        }
        ctx.take_input();
        ctx.enter_serialization_phase();
        ctx.set_request(request());
        ctx.enter_before_transmit_phase();
        if with_xray {
            let _ = interceptor.read_after_serialization(&(&ctx).into(), &rc, &mut cfg);
        }
        cfg.interceptor_state()
            .store_put(RequestAttempts::from(1u32));
        if with_xray {
            let _ = interceptor.modify_before_transmit(&mut (&mut ctx).into(), &rc, &mut cfg);
        }
        black_box(ctx.take_request());
        ctx.enter_transmit_phase();
        ctx.set_response(response());
        ctx.enter_before_deserialization_phase();
        ctx.enter_deserialization_phase();
        ctx.set_output_or_error(Ok(Output::doesnt_matter()));
        ctx.enter_after_deserialization_phase();
        if with_xray {
            let _ = interceptor.read_after_attempt(&(&ctx).into(), &rc, &mut cfg);
            let _ = interceptor.read_after_execution(&(&ctx).into(), &rc, &mut cfg);
        }
        black_box(ctx);
    };

    // Calls run in segments of `CALLS_PER_SEGMENT`; after each segment the emitter sends it
    // (flush, not timed), so it never runs beside the timed calls. `xray` is paired: each
    // segment's calls with the interceptor are followed by as many without, timed on the side.
    let mut group = c.benchmark_group("hooks");
    let mut added = Vec::new();
    for (name, with_xray) in [("none", false), ("xray", true)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let (mut total, mut base) = (Duration::ZERO, Duration::ZERO);
                let mut left = iters;
                while left > 0 {
                    let n = left.min(CALLS_PER_SEGMENT);
                    left -= n;
                    let segment = recorder.segment("bench").begin();
                    {
                        let _current = segment.enter();
                        let start = Instant::now();
                        for _ in 0..n {
                            call(with_xray);
                        }
                        total += start.elapsed();
                        if with_xray {
                            let start = Instant::now();
                            for _ in 0..n {
                                call(false);
                            }
                            base += start.elapsed();
                        }
                    }
                    segment.end();
                    recorder.flush(Duration::from_secs(5)).expect("flush");
                }
                if with_xray {
                    let per = |d: Duration| d.as_nanos() as f64 / iters.max(1) as f64;
                    added.push(per(total) - per(base));
                }
                total
            });
        });
    }
    group.finish();
    added.sort_by(f64::total_cmp);
    println!(
        "paired hooks/xray: median of {} samples, ns added per call by the interceptor: {:.0}",
        added.len(),
        added.get(added.len() / 2).copied().unwrap_or(f64::NAN),
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
