//! Level, target and name filters, and the cap on subsegments.

#![allow(clippy::unwrap_used)]

mod common;

use common::{harness, id_of, named, names, parent_of};
use tracing::{Level, debug_span, info_span, instrument};
use xray_sdk::FutureExt;
use xray_sdk_tracing::XRayTracingLayer;

fn run_spans(
    layer: XRayTracingLayer,
    f: impl FnOnce(),
) -> Vec<(String, Option<String>, serde_json::Value)> {
    let h = harness(layer);
    let segment = h.recorder.segment("svc").begin();
    h.run(|| segment.in_scope(f));
    segment.end();
    h.entities()
}

#[test]
fn level_filter_defaults_to_info() {
    let spans = || {
        info_span!("kept").in_scope(|| {
            // Left out, and transparent: its child nests under `kept`.
            debug_span!("verbose").in_scope(|| info_span!("inner").in_scope(|| {}));
        });
    };
    let e = run_spans(XRayTracingLayer::new(), spans);
    assert_eq!(names(&e), ["inner", "kept", "svc"]);
    assert_eq!(parent_of(&e, "inner"), Some(id_of(&e, "kept")));

    let e = run_spans(XRayTracingLayer::new().max_level(Level::DEBUG), spans);
    assert_eq!(names(&e), ["inner", "kept", "svc", "verbose"]);
    assert_eq!(parent_of(&e, "inner"), Some(id_of(&e, "verbose")));
}

#[test]
fn target_and_name_filters() {
    let spans = || {
        info_span!(target: "hyper::client::pool", "checkout").in_scope(|| {});
        info_span!(target: "sqlx::query", "SELECT").in_scope(|| {});
        info_span!(target: "my_app::db", "request").in_scope(|| {});
        info_span!(target: "my_app::db", "query").in_scope(|| {});
        info_span!(target: "my_app::noise", "tick").in_scope(|| {});
    };
    let e = run_spans(XRayTracingLayer::new(), spans);
    assert_eq!(names(&e), ["SELECT", "query", "request", "svc", "tick"]);

    let layer = XRayTracingLayer::new()
        .exclude_target("sqlx")
        .include_target("hyper")
        .exclude_span_name("request")
        .span_filter(|m| m.target() != "my_app::noise");
    let e = run_spans(layer, spans);
    assert_eq!(names(&e), ["checkout", "query", "svc"]);

    let e = run_spans(XRayTracingLayer::new().without_default_exclusions(), || {
        info_span!(target: "aws_sdk_s3::operation::get_object", "S3.GetObject").in_scope(|| {});
    });
    assert_eq!(names(&e), ["S3.GetObject", "svc"]);
}

#[instrument]
async fn step(i: u32) {
    tokio::task::yield_now().await;
}

#[test]
fn cap_limits_subsegments_per_segment_and_counts_the_rest() {
    let h = harness(XRayTracingLayer::new().max_subsegments_per_segment(3));
    let segment = h.recorder.segment("svc").begin();
    h.block_on(
        async {
            // Sequential top-level spans share one budget...
            for i in 0..4 {
                step(i).await;
            }
            // ...and so do nested ones.
            async {
                for i in 10..13 {
                    step(i).await;
                }
            }
            .instrument_outer()
            .await;
        }
        .in_context(segment.context()),
    );
    segment.end();
    let e = h.entities();
    assert_eq!(e.len(), 4, "segment + 3 subsegments: {:?}", names(&e));
    let doc = &named(&e, "svc").2;
    // 4 + 1 (outer) + 3 spans, 3 recorded.
    assert_eq!(doc["metadata"]["tracing"]["omitted_subsegments"], 5);
}

trait InstrumentOuter: std::future::Future + Sized {
    fn instrument_outer(self) -> tracing::instrument::Instrumented<Self> {
        tracing::Instrument::instrument(self, info_span!("outer"))
    }
}
impl<F: std::future::Future> InstrumentOuter for F {}

/// Three `step` spans inside `segment`, which then ends.
fn three_steps(h: &common::Harness, segment: xray_sdk::Entity) {
    h.block_on(
        async {
            for i in 0..3 {
                step(i).await;
            }
        }
        .in_context(segment.context()),
    );
    segment.end();
}

#[test]
fn cap_is_per_segment() {
    let h = harness(XRayTracingLayer::new().max_subsegments_per_segment(2));
    for _ in 0..2 {
        let segment = h.recorder.segment("svc").begin();
        three_steps(&h, segment);
    }
    let e = h.entities();
    assert_eq!(e.iter().filter(|x| x.2["name"] == "step").count(), 4);
}

/// Two requests of one trace served by this process (a service calling itself, a retry):
/// each segment has its own budget and its own count of the spans left out.
#[test]
fn cap_is_per_segment_within_one_trace() {
    let h = harness(XRayTracingLayer::new().max_subsegments_per_segment(2));
    let incoming = xray_sdk::TraceHeader::parse(
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    );
    for name in ["first", "second"] {
        let segment = h.recorder.segment(name).header(&incoming).begin();
        three_steps(&h, segment);
    }
    let e = h.entities();
    for name in ["first", "second"] {
        let seg = &common::named(&e, name).2;
        let steps = e
            .iter()
            .filter(|x| x.2["name"] == "step" && x.1.as_deref() == seg["id"].as_str())
            .count();
        assert_eq!(steps, 2, "{name}");
        assert_eq!(
            seg["metadata"]["tracing"]["omitted_subsegments"], 1,
            "{name}"
        );
    }
}
