//! Spans nest as subsegments across `.await`, spawned tasks and adapters.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{harness, id_of, named, names, parent_of};
use tracing::instrument::WithSubscriber;
use tracing::{Instrument, info_span, instrument};
use xray_sdk::{Context, FutureExt};
use xray_sdk_tracing::XRayTracingLayer;

#[instrument]
async fn leaf(n: u32) -> u32 {
    tokio::time::sleep(Duration::from_millis(2)).await;
    n * 2
}

#[instrument]
async fn middle() -> u32 {
    let a = leaf(1).await;
    tokio::task::yield_now().await;
    a + leaf(2).await
}

#[instrument]
async fn handler() -> u32 {
    middle().await
}

#[test]
fn nested_instrument_functions_across_await() {
    let h = harness(XRayTracingLayer::new());
    let segment = h.recorder.segment("svc").begin();
    let ctx = segment.context();
    let out = h.block_on(handler().in_context(ctx));
    assert_eq!(out, 6);
    let segment_id = segment.id().to_string();
    segment.end();
    let e = h.entities();
    assert_eq!(e.len(), 5, "{:?}", names(&e));
    assert_eq!(parent_of(&e, "handler"), Some(segment_id));
    assert_eq!(parent_of(&e, "middle"), Some(id_of(&e, "handler")));
    let leaves: Vec<_> = e.iter().filter(|x| x.2["name"] == "leaf").collect();
    assert_eq!(leaves.len(), 2);
    for l in &leaves {
        assert_eq!(l.1, Some(id_of(&e, "middle")));
        assert!(l.2["end_time"].as_f64().unwrap() - l.2["start_time"].as_f64().unwrap() >= 0.0015);
        // Each leaf is polled at least twice (a sleep) but is one subsegment.
        assert!(l.2["metadata"]["tracing"]["n"].as_u64().is_some());
    }
    let m = &named(&e, "middle").2;
    let hd = &named(&e, "handler").2;
    assert!(hd["start_time"].as_f64() <= m["start_time"].as_f64());
    assert!(hd["end_time"].as_f64() >= m["end_time"].as_f64());
}

#[instrument]
async fn spawned_work(label: &'static str) {
    tokio::time::sleep(Duration::from_millis(1)).await;
    leaf(7).await;
}

#[test]
fn spawned_tasks_nest_under_the_spawning_span() {
    let h = harness(XRayTracingLayer::new());
    let segment = h.recorder.segment("svc").begin();
    // The registry closes a parent span through the thread's default dispatcher, so worker
    // threads need it (with a global subscriber, as in a real service, they have it).
    let dispatch = h.dispatch.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_start(move || {
            std::mem::forget(tracing::dispatcher::set_default(&dispatch));
        })
        .enable_all()
        .build()
        .unwrap();
    let ctx = segment.context();
    h.run(|| {
        rt.block_on(
            async {
                let parent = tracing::info_span!("fan_out");
                async {
                    // Order 1: the context outside the span.
                    let a = tokio::spawn(
                        leaf(1)
                            .instrument(info_span!("task_a"))
                            .in_current_context()
                            .with_current_subscriber(),
                    );
                    // Order 2: the span outside the context.
                    let b = tokio::spawn(
                        leaf(2)
                            .in_current_context()
                            .instrument(info_span!("task_b"))
                            .with_current_subscriber(),
                    );
                    // Only the span travels: the layer makes its subsegment current.
                    let c = tokio::spawn(
                        spawned_work("c")
                            .instrument(info_span!("task_c"))
                            .with_current_subscriber(),
                    );
                    a.await.unwrap();
                    b.await.unwrap();
                    c.await.unwrap();
                }
                .instrument(parent)
                .await;
            }
            .in_context(ctx),
        )
    });
    segment.end();
    drop(rt);
    let e = h.entities();
    let fan_out = id_of(&e, "fan_out");
    for task in ["task_a", "task_b", "task_c"] {
        assert_eq!(parent_of(&e, task), Some(fan_out.clone()), "{task}");
    }
    assert_eq!(parent_of(&e, "spawned_work"), Some(id_of(&e, "task_c")));
    for (_, parent, doc) in e.iter().filter(|x| x.2["name"] == "leaf") {
        let p = parent.clone().unwrap();
        let pname = e.iter().find(|x| x.0 == p).unwrap().2["name"].clone();
        assert!(
            ["task_a", "task_b", "spawned_work"].contains(&pname.as_str().unwrap()),
            "leaf {doc} under {pname}"
        );
    }
    assert_eq!(e.iter().filter(|x| x.2["name"] == "leaf").count(), 3);
}

#[test]
fn span_subsegment_is_the_current_context_inside_the_span() {
    let h = harness(XRayTracingLayer::new());
    let segment = h.recorder.segment("svc").begin();
    let seg_id = segment.id();
    h.run(|| {
        segment.in_scope(|| {
            let span = info_span!("step");
            let inside = span.in_scope(|| {
                let current = Context::current().unwrap();
                // An adapter (here: the core API) nests under the span.
                xray_sdk::with_subsegment("adapter_call", |_| {});
                current.id()
            });
            assert_ne!(inside, seg_id);
            // Restored on exit.
            assert_eq!(Context::current().unwrap().id(), seg_id);
        })
    });
    segment.end();
    let e = h.entities();
    assert_eq!(parent_of(&e, "step"), Some(seg_id.to_string()));
    assert_eq!(parent_of(&e, "adapter_call"), Some(id_of(&e, "step")));
}

#[test]
fn adapter_subsegment_inside_async_span() {
    #[instrument]
    async fn with_adapter() {
        xray_sdk::subsegment("DynamoDB", async {
            // A span inside the adapter's subsegment nests under it.
            leaf(3).await;
        })
        .await;
    }
    let h = harness(XRayTracingLayer::new());
    let segment = h.recorder.segment("svc").begin();
    h.block_on(with_adapter().in_context(segment.context()));
    segment.end();
    let e = h.entities();
    assert_eq!(parent_of(&e, "DynamoDB"), Some(id_of(&e, "with_adapter")));
    assert_eq!(parent_of(&e, "leaf"), Some(id_of(&e, "DynamoDB")));
}

#[test]
fn adapter_covered_library_spans_are_not_duplicated() {
    #[instrument]
    async fn get_item() {
        // What the AWS SDK emits around an operation, with the X-Ray interceptor's
        // subsegment (here made with the core API) inside it.
        let op = info_span!(target: "aws_sdk_dynamodb::operation::get_item", "DynamoDB.GetItem");
        async {
            let attempt =
                info_span!(target: "aws_smithy_runtime::client::orchestrator", "try_attempt");
            let _g = attempt.enter();
            xray_sdk::with_subsegment("DynamoDB", |_| {});
        }
        .instrument(op)
        .await;
        // reqwest-tracing's span around a reqwest-middleware call.
        let http = info_span!(target: "reqwest_tracing::reqwest_otel_span_builder", "HTTP request");
        http.in_scope(|| xray_sdk::with_subsegment("api.example.com", |_| {}));
        // tower-http's TraceLayer span.
        let req = info_span!(target: "tower_http::trace::make_span", "request");
        req.in_scope(|| {});
    }
    let h = harness(XRayTracingLayer::new());
    let segment = h.recorder.segment("svc").begin();
    h.block_on(get_item().in_context(segment.context()));
    segment.end();
    let e = h.entities();
    assert_eq!(
        names(&e),
        ["DynamoDB", "api.example.com", "get_item", "svc"]
    );
    assert_eq!(parent_of(&e, "DynamoDB"), Some(id_of(&e, "get_item")));
    assert_eq!(
        parent_of(&e, "api.example.com"),
        Some(id_of(&e, "get_item"))
    );
}

#[test]
fn spans_outside_a_traced_context_record_nothing() {
    let h = harness(XRayTracingLayer::new());
    h.block_on(async {
        handler().await;
        assert_eq!(xray_sdk_tracing::log_correlation_id(), None);
    });
    // An unsampled request records nothing either.
    let segment = h.recorder.segment("svc").sampled(false).begin();
    h.block_on(handler().in_context(segment.context()));
    segment.end();
    assert!(h.entities().is_empty());
}

#[test]
fn explicit_parent_and_first_enter_timing() {
    let h = harness(XRayTracingLayer::new());
    let segment = h.recorder.segment("svc").begin();
    let created_at = h.run(|| {
        segment.in_scope(|| {
            let root = info_span!("root");
            let child = info_span!(parent: &root, "child");
            let created_at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            std::thread::sleep(Duration::from_millis(30));
            child.in_scope(|| {});
            drop(child);
            root.in_scope(|| {});
            created_at
        })
    });
    segment.end();
    let e = h.entities();
    assert_eq!(parent_of(&e, "child"), Some(id_of(&e, "root")));
    let start = named(&e, "child").2["start_time"].as_f64().unwrap();
    assert!(start >= created_at + 0.025, "timed from first enter");
}

#[test]
fn two_layers_in_one_subscriber_record_each_span_once() {
    use tracing_subscriber::prelude::*;
    let capture = xray_sdk::testing::UdpCapture::start().unwrap();
    let recorder = capture.recorder("two-layers");
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(XRayTracingLayer::new())
            .with(XRayTracingLayer::new()),
    );
    let segment = recorder.segment("svc").begin();
    let ctx = segment.context();
    tracing::dispatcher::with_default(&dispatch, || {
        let _in = ctx.enter();
        let outer = info_span!("outer");
        let _o = outer.enter();
        let inner = info_span!("inner");
        let _i = inner.enter();
        assert_eq!(
            Context::current().map(|c| c.is_sampled()),
            Some(true),
            "the innermost span is current"
        );
    });
    let segment_id = segment.id().to_string();
    segment.end();
    recorder.flush(common::WAIT).unwrap();
    let docs: Vec<serde_json::Value> = capture.drain_documents(Duration::from_millis(200));
    let e = xray_sdk::testing::flatten(&docs);
    assert_eq!(names(&e).len(), 3, "{:?}", names(&e));
    assert_eq!(parent_of(&e, "outer"), Some(segment_id));
    assert_eq!(parent_of(&e, "inner"), Some(id_of(&e, "outer")));
}

/// A span kept in a shared object (a pool, a client) and entered by a later request: the
/// later request's work stays in its own trace, its subsegments under its own segment.
#[test]
fn a_span_of_another_trace_entered_later_does_not_capture_the_request() {
    let h = harness(XRayTracingLayer::new());
    let first = h.recorder.segment("first").begin();
    let pool_span = h.run(|| {
        let _in_first = first.context().enter();
        let span = info_span!("db_pool");
        // Entered once in its own request: its subsegment begins there.
        span.in_scope(|| {});
        span
    });
    let second = h.recorder.segment("second").begin();
    let (seen, query) = h.run(|| {
        let _in_second = second.context().enter();
        pool_span.in_scope(|| {
            let seen = Context::current().map(|c| c.trace_id());
            let query = xray_sdk::with_subsegment("query", |s| s.trace_id());
            (seen, query)
        })
    });
    assert_eq!(seen, Some(second.trace_id()));
    assert_eq!(query, second.trace_id());
    let second_id = second.id().to_string();
    second.end();
    drop(pool_span);
    first.end();
    let e = h.entities();
    assert_eq!(parent_of(&e, "query"), Some(second_id));
}
