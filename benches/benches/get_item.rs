//! Side by side: what each library's AWS SDK interceptor adds to one DynamoDB GetItem.
//!
//! Every arm runs the full AWS SDK stack (endpoint resolution, SigV4 signing, retry strategy,
//! JSON (de)serialization) against the same in-process HTTP client that answers every request
//! with one canned GetItem response: no network. Each library sends to its own loopback UDP
//! receiver ([`Sink`]), which counts the datagrams that arrive.
//!
//! ```text
//! cargo bench -p xray-benches --bench get_item -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Arms (group `peers_get_item`, time per call), in this order:
//! - `plain`: no interceptor, no tracing subscriber. The baseline of every arm but the last.
//! - `xray-sdk`: `xray_sdk_aws::XRayInterceptor` on the client, calls inside a sampled segment.
//! - `xray-lite`: `xray-lite-aws-sdk` 0.0.4, attached per call with
//!   `.customize().interceptor(ctx.intercept_operation("DynamoDB", "GetItem"))`; the context
//!   comes from `_X_AMZN_TRACE_ID` (set once at the start of `main`).
//! - `customize() + no-op interceptor`: not a library; the per-call `customize()` that
//!   xray-lite needs, with an interceptor that does nothing, to split xray-lite's added cost
//!   into its way of attaching and its own work.
//! - `awssdk-instrumentation (subscriber only)`: no interceptor, but the tracing subscriber
//!   `awssdk-instrumentation` 0.3 needs installed (registry + its `tracing-opentelemetry` layer
//!   over an `SdkTracerProvider` with `ParentBased(AlwaysOff)`, the X-Ray ID generator and a
//!   batch `XrayExporter`, as `default_tracer_provider` builds it under `env-lambda`). That
//!   subscriber already exports the SDK's own `DynamoDB.GetItem` span, so it costs by itself.
//! - `awssdk-instrumentation`: the same subscriber plus its `DefaultInterceptor` on the client;
//!   its baseline is the subscriber alone.
//!
//! The subscriber is installed with `tracing::dispatcher::set_default` (this thread only) for
//! the last two arms only, which run after the others: the first four run without any tracing
//! subscriber.
//!
//! Calls are grouped into requests of [`CALLS_PER_REQUEST`] calls, the way a handler makes a
//! few AWS calls per request: one `xray-sdk` segment, one xray-lite context, or one OTel
//! `Invocation` span (under a sampled remote parent, as awssdk-instrumentation's Lambda layer
//! makes it) per request, begun and ended outside the timed part, so that only the per-call
//! cost is timed. After every [`REQUESTS_PER_CHUNK`] requests the background queues are
//! drained (`Recorder::flush`, `SdkTracerProvider::force_flush`), outside the timed part, so
//! nothing is dropped.
//!
//! Each arm ends with a `summary` line on stderr: calls, failed calls, datagrams produced and
//! delivered, and delivered per call; and a `paired` line. Every request of an arm is
//! followed by one of its baseline (`plain`; for `awssdk-instrumentation`, the subscriber
//! alone), timed on the side, not reported to criterion: the median over criterion samples of
//! the difference is the added cost per call measured under the same machine load. On this
//! shared 2-core machine the plain call alone drifts by 20 % or more between arms run a few
//! seconds apart, so this paired figure is steadier than the difference of two criterion
//! medians.

#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region, SharedInterceptor};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::RetryConfig;
use aws_types::SdkConfig;
use aws_types::sdk_config::SharedCredentialsProvider;
use awssdk_instrumentation::interceptor::DefaultInterceptor;
use criterion::{BenchmarkGroup, Criterion, Throughput, measurement::WallTime};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_aws::trace::XrayIdGenerator;
use opentelemetry_aws::trace::xray_propagator::span_context_from_str;
use opentelemetry_aws::xray_exporter::daemon_client::XrayDaemonClient;
use opentelemetry_aws::xray_exporter::{SegmentTranslator, XrayExporter};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use xray_benches::{Sink, fresh_header, set_lambda_trace_env};
use xray_lite_aws_sdk::ContextExt as _;
use xray_sdk::context::FutureExt as _;
use xray_sdk::plugins::Plugins;
use xray_sdk::{Recorder, TraceHeader};
use xray_sdk_aws::XRayInterceptor;

/// AWS calls per request (one segment, context or invocation span).
const CALLS_PER_REQUEST: u64 = 10;
/// Requests between two drains of the background queues.
const REQUESTS_PER_CHUNK: u64 = 10;
const ENDPOINT: &str = "http://dynamodb.bench";
const RESPONSE: &str = r#"{"ConsumedCapacity":{"CapacityUnits":0.5,"TableName":"users"},"Item":{"id":{"S":"42"},"name":{"S":"Ada"},"visits":{"N":"7"}}}"#;

/// An in-process HTTP client that answers every request with the same GetItem response.
#[derive(Debug, Clone)]
struct Replay;

impl HttpConnector for Replay {
    fn call(
        &self,
        _request: aws_smithy_runtime_api::client::orchestrator::HttpRequest,
    ) -> HttpConnectorFuture {
        let mut response =
            HttpResponse::new(StatusCode::try_from(200).unwrap(), SdkBody::from(RESPONSE));
        let headers = response.headers_mut();
        headers.insert("content-type", "application/x-amz-json-1.0");
        headers.insert("x-amzn-requestid", "REQ1234567890");
        headers.insert("content-length", RESPONSE.len().to_string());
        HttpConnectorFuture::ready(Ok(response))
    }
}

impl HttpClient for Replay {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// A DynamoDB client on the replay HTTP client, with `interceptor` (if any) on its config.
fn client(interceptor: Option<SharedInterceptor>) -> Client {
    let sdk = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-west-2"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        )))
        .endpoint_url(ENDPOINT)
        .http_client(SharedHttpClient::new(Replay))
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(1)),
        )
        .build();
    let mut conf = aws_sdk_dynamodb::config::Builder::from(&sdk);
    if let Some(interceptor) = interceptor {
        conf.push_interceptor(interceptor);
    }
    Client::from_conf(conf.build())
}

/// One GetItem as built in every arm.
fn get_item(
    client: &Client,
) -> aws_sdk_dynamodb::operation::get_item::builders::GetItemFluentBuilder {
    client
        .get_item()
        .table_name("users")
        .key("id", AttributeValue::S("42".into()))
        .consistent_read(true)
}

/// `n` plain calls; returns how many failed.
async fn plain_calls(client: &Client, n: u64) -> u64 {
    let mut failed = 0;
    for _ in 0..n {
        let out = get_item(client).send().await;
        failed += u64::from(black_box(out.is_err()));
    }
    failed
}

/// Times one `block_on`; returns the elapsed time and what the future returned.
fn timed<F: Future<Output = u64>>(rt: &tokio::runtime::Runtime, fut: F) -> (Duration, u64) {
    let start = Instant::now();
    let failed = rt.block_on(fut);
    (start.elapsed(), failed)
}

/// One library (or baseline) driving GetItem calls.
trait Arm {
    fn name(&self) -> &'static str;
    /// One request of `n` calls; returns the time spent in the calls only, and the failures.
    fn request(&mut self, rt: &tokio::runtime::Runtime, n: u64) -> (Duration, u64);
    /// Hands everything recorded so far to the operating system (not timed).
    fn flush(&self) {}
    /// Datagrams produced for `calls` calls in `requests` requests, dropped or not.
    fn produced(&self, calls: u64, requests: u64) -> u64;
    /// The receiver this arm's library sends to, if any.
    fn sink(&self) -> Option<&Sink> {
        None
    }
}

/// No interceptor, no subscriber.
struct Plain {
    client: Client,
}

impl Arm for Plain {
    fn name(&self) -> &'static str {
        "plain"
    }

    fn request(&mut self, rt: &tokio::runtime::Runtime, n: u64) -> (Duration, u64) {
        timed(rt, plain_calls(&self.client, n))
    }

    fn produced(&self, _calls: u64, _requests: u64) -> u64 {
        0
    }
}

/// `XRayInterceptor` on the client; each request is one sampled segment (begun and ended
/// outside the timed part), whose context is current while the calls run.
struct XraySdk {
    client: Client,
    recorder: Recorder,
    incoming: TraceHeader,
    sink: Sink,
}

impl XraySdk {
    fn new(header: &str) -> Self {
        let sink = Sink::start().unwrap();
        let recorder = Recorder::builder()
            .ignore_env()
            .service_name("api")
            .daemon_address(sink.addr().to_string())
            .centralized_sampling(false)
            .plugins(Plugins::none())
            .build()
            .unwrap();
        XraySdk {
            client: client(Some(SharedInterceptor::new(XRayInterceptor::new()))),
            recorder,
            incoming: TraceHeader::parse(header),
            sink,
        }
    }
}

impl Arm for XraySdk {
    fn name(&self) -> &'static str {
        "xray-sdk"
    }

    fn request(&mut self, rt: &tokio::runtime::Runtime, n: u64) -> (Duration, u64) {
        let segment = self.recorder.segment("api").header(&self.incoming).begin();
        assert!(segment.is_sampled(), "the incoming header is sampled");
        let out = timed(
            rt,
            plain_calls(&self.client, n).in_context(segment.context()),
        );
        segment.end();
        out
    }

    fn flush(&self) {
        self.recorder.flush(Duration::from_secs(30)).unwrap();
    }

    fn produced(&self, _calls: u64, _requests: u64) -> u64 {
        let stats = self.recorder.stats();
        assert_eq!(
            stats.dropped_queue_full, 0,
            "xray-sdk queue dropped segments"
        );
        stats.sent + stats.send_errors + stats.dropped_too_large
    }

    fn sink(&self) -> Option<&Sink> {
        Some(&self.sink)
    }
}

/// `xray-lite-aws-sdk`: a context per request (from `_X_AMZN_TRACE_ID`, outside the timed
/// part), an interceptor per call through `customize()`. Two synchronous datagrams per call.
struct XrayLite {
    client: Client,
    daemon: xray_lite::DaemonClient,
    sink: Sink,
}

impl XrayLite {
    fn new() -> Self {
        let sink = Sink::start().unwrap();
        XrayLite {
            client: client(None),
            daemon: xray_lite::DaemonClient::new(sink.addr()).unwrap(),
            sink,
        }
    }
}

impl Arm for XrayLite {
    fn name(&self) -> &'static str {
        "xray-lite"
    }

    fn request(&mut self, rt: &tokio::runtime::Runtime, n: u64) -> (Duration, u64) {
        let ctx = xray_lite::SubsegmentContext::from_lambda_env(self.daemon.clone()).unwrap();
        let client = &self.client;
        timed(rt, async {
            let mut failed = 0;
            for _ in 0..n {
                let out = get_item(client)
                    .customize()
                    .interceptor(ctx.intercept_operation("DynamoDB", "GetItem"))
                    .send()
                    .await;
                failed += u64::from(black_box(out.is_err()));
            }
            failed
        })
    }

    fn produced(&self, calls: u64, _requests: u64) -> u64 {
        calls * 2
    }

    fn sink(&self) -> Option<&Sink> {
        Some(&self.sink)
    }
}

/// An interceptor that does nothing.
#[derive(Debug)]
struct Noop;

impl Intercept for Noop {
    fn name(&self) -> &'static str {
        "Noop"
    }
}

/// Not a library: a no-op interceptor attached per call through `customize()`, as
/// xray-lite-aws-sdk must be. It shows how much of xray-lite's added cost is that way of
/// attaching (a per-call config override) rather than its own work.
struct CustomizeNoop {
    client: Client,
}

impl Arm for CustomizeNoop {
    fn name(&self) -> &'static str {
        "customize() + no-op interceptor"
    }

    fn request(&mut self, rt: &tokio::runtime::Runtime, n: u64) -> (Duration, u64) {
        let client = &self.client;
        timed(rt, async {
            let mut failed = 0;
            for _ in 0..n {
                let out = get_item(client).customize().interceptor(Noop).send().await;
                failed += u64::from(black_box(out.is_err()));
            }
            failed
        })
    }

    fn produced(&self, _calls: u64, _requests: u64) -> u64 {
        0
    }
}

/// awssdk-instrumentation's tracing setup: a subscriber (registry + its OTel layer) and the
/// provider behind it, exporting to this arm's own receiver.
struct AwssdkInstr {
    client: Client,
    provider: SdkTracerProvider,
    subscriber: tracing::Dispatch,
    parent: opentelemetry::Context,
    sink: Sink,
    label: &'static str,
}

impl AwssdkInstr {
    /// With `interceptor`, the client has `DefaultInterceptor`; without, only the subscriber
    /// is installed.
    fn new(header: &str, interceptor: bool) -> Self {
        let sink = Sink::start().unwrap();
        // What `init::default_tracer_provider` builds under `env-lambda` (whose only other
        // addition is the Lambda resource detector), sending to this arm's receiver instead
        // of `AWS_XRAY_DAEMON_ADDRESS`.
        let exporter = XrayExporter::new(XrayDaemonClient::new(sink.addr()).unwrap())
            .with_translator(SegmentTranslator::new().metadata_all_attrs());
        let provider = SdkTracerProvider::builder()
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)))
            .with_id_generator(XrayIdGenerator::default())
            .with_batch_exporter(exporter)
            .build();
        let layer = awssdk_instrumentation::init::default_tracing_otel_layer(
            provider.tracer("awssdk-instrumentation"),
        );
        let subscriber = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        let sampled = span_context_from_str(header).unwrap();
        assert!(sampled.is_sampled() && sampled.is_remote());
        let parent = opentelemetry::Context::new().with_remote_span_context(sampled);
        let client = if interceptor {
            client(Some(SharedInterceptor::new(DefaultInterceptor::new())))
        } else {
            client(None)
        };
        AwssdkInstr {
            client,
            provider,
            subscriber,
            parent,
            sink,
            label: if interceptor {
                "awssdk-instrumentation"
            } else {
                "awssdk-instrumentation (subscriber only)"
            },
        }
    }
}

impl Arm for AwssdkInstr {
    fn name(&self) -> &'static str {
        self.label
    }

    fn request(&mut self, rt: &tokio::runtime::Runtime, n: u64) -> (Duration, u64) {
        let _installed = tracing::dispatcher::set_default(&self.subscriber);
        // As its Lambda layer does: an `Invocation` span whose parent is the (sampled)
        // X-Ray trace header.
        let invocation = tracing::info_span!("Invocation", otel.kind = "internal");
        invocation.set_parent(self.parent.clone()).unwrap();
        let out = timed(
            rt,
            plain_calls(&self.client, n).instrument(invocation.clone()),
        );
        drop(invocation);
        out
    }

    fn flush(&self) {
        self.provider.force_flush().unwrap();
    }

    fn produced(&self, calls: u64, requests: u64) -> u64 {
        // The SDK's `DynamoDB.GetItem` span per call, and the `Invocation` span per request.
        calls + requests
    }

    fn sink(&self) -> Option<&Sink> {
        Some(&self.sink)
    }
}

impl Drop for AwssdkInstr {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

fn no_subscriber() -> bool {
    tracing::dispatcher::get_default(|d| d.is::<tracing::subscriber::NoSubscriber>())
}

/// The median of `v` (sorted in place); 0 when empty.
fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[m - 1] + v[m]) / 2.0
    } else {
        v[m]
    }
}

/// Benchmarks `arm`. Every request of the arm is followed by a request of `pair` (its
/// baseline) with the same number of calls, timed on the side and not reported to criterion:
/// each criterion sample thus also yields a paired estimate of the added cost, measured under
/// the same machine load, printed in the `paired` line.
fn bench_arm(
    g: &mut BenchmarkGroup<'_, WallTime>,
    rt: &tokio::runtime::Runtime,
    arm: &mut dyn Arm,
    pair: &mut dyn Arm,
) {
    let mut calls = 0u64;
    let mut requests = 0u64;
    let mut failed = 0u64;
    // Per criterion sample, µs per call: the arm, the interleaved baseline, the difference.
    let (mut with, mut without, mut added) = (Vec::new(), Vec::new(), Vec::new());
    g.bench_function(arm.name(), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut paired = Duration::ZERO;
            let mut left = iters;
            let mut in_chunk = 0;
            while left > 0 {
                let n = left.min(CALLS_PER_REQUEST);
                let (took, f) = arm.request(rt, n);
                total += took;
                failed += f;
                let (took, f) = pair.request(rt, n);
                paired += took;
                failed += f;
                calls += n;
                requests += 1;
                left -= n;
                in_chunk += 1;
                if in_chunk == REQUESTS_PER_CHUNK || left == 0 {
                    // Not timed: drain the background queues.
                    arm.flush();
                    pair.flush();
                    in_chunk = 0;
                }
            }
            let per_call = |d: Duration| d.as_secs_f64() * 1e6 / iters.max(1) as f64;
            with.push(per_call(total));
            without.push(per_call(paired));
            added.push(per_call(total) - per_call(paired));
            total
        })
    });
    arm.flush();
    let produced = arm.produced(calls, requests);
    let delivered = arm
        .sink()
        .map_or(0, |s| s.settle(produced, Duration::from_secs(5)));
    let ratio = if produced == 0 {
        100.0
    } else {
        delivered as f64 * 100.0 / produced as f64
    };
    eprintln!(
        "summary peers_get_item {}: calls {calls}, requests {requests}, failed {failed}, datagrams produced {produced}, delivered {delivered} ({ratio:.1} %), delivered per call {:.3}",
        arm.name(),
        delivered as f64 / calls.max(1) as f64,
    );
    eprintln!(
        "paired peers_get_item {}: median of {} samples, µs per call: with {:.2}, interleaved {} {:.2}, added {:.2}",
        arm.name(),
        added.len(),
        median(&mut with),
        pair.name(),
        median(&mut without),
        median(&mut added),
    );
    assert_eq!(failed, 0, "{}: calls failed", arm.name());
}

fn main() {
    // Before any thread exists: xray-lite reads its context from this variable.
    let header = fresh_header();
    set_lambda_trace_env(&header);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut c = Criterion::default().configure_from_args();
    // Not `get_item`: crates/xray-sdk-aws/benches/get_item.rs owns target/criterion/get_item.
    let mut g = c.benchmark_group("peers_get_item");
    g.throughput(Throughput::Elements(1));

    let mut pair = Plain {
        client: client(None),
    };
    // No tracing subscriber anywhere for these four.
    let mut plain = Plain {
        client: client(None),
    };
    let mut ours = XraySdk::new(&header);
    let mut lite = XrayLite::new();
    let mut customize = CustomizeNoop {
        client: client(None),
    };
    for arm in [
        &mut plain as &mut dyn Arm,
        &mut ours,
        &mut lite,
        &mut customize,
    ] {
        assert!(no_subscriber(), "no tracing subscriber for {}", arm.name());
        bench_arm(&mut g, &rt, arm, &mut pair);
    }

    // awssdk-instrumentation: its subscriber, installed on this thread only while its own
    // requests run. The subscriber alone is paired with plain calls (no subscriber), the
    // interceptor with calls through the subscriber alone (another instance, its own receiver).
    let mut subscriber_only = AwssdkInstr::new(&header, false);
    bench_arm(&mut g, &rt, &mut subscriber_only, &mut pair);
    let mut instrumented = AwssdkInstr::new(&header, true);
    let mut subscriber_pair = AwssdkInstr::new(&header, false);
    bench_arm(&mut g, &rt, &mut instrumented, &mut subscriber_pair);
    assert!(no_subscriber(), "the subscriber is scoped");

    g.finish();
    c.final_summary();
}
