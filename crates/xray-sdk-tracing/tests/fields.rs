//! Span fields as annotations and metadata.

#![allow(clippy::unwrap_used)]

mod common;

use common::{harness, named};
use serde_json::json;
use tracing::{field, info_span, instrument};
use xray_sdk::FutureExt;
use xray_sdk_tracing::XRayTracingLayer;

#[instrument(fields(
    annotation.customer = %customer,
    xray.annotation.tier = "gold",
    annotation.items = 3u64,
    annotation.wide = -7i128,
    annotation.huge = u128::MAX,
    annotation.vip = true,
    annotation.http.route = "/cart/{id}",
    annotation.ratio = 0.5,
    annotation.bad = f64::NAN,
    cart_size = 42,
    note = ?Some("x"),
    annotation.late = field::Empty,
))]
async fn checkout(customer: &str) {
    tracing::Span::current().record("annotation.late", "recorded");
    tracing::Span::current().record("cart_size", 43);
}

#[test]
fn fields_become_annotations_and_metadata() {
    let h = harness(XRayTracingLayer::new());
    let segment = h.recorder.segment("svc").begin();
    h.block_on(checkout("c-42").in_context(segment.context()));
    segment.end();
    let e = h.entities();
    let doc = &named(&e, "checkout").2;
    let ann = &doc["annotations"];
    assert_eq!(ann["customer"], "c-42");
    assert_eq!(ann["tier"], "gold");
    assert_eq!(ann["items"], 3);
    assert_eq!(
        ann["wide"], -7,
        "a 128-bit integer that fits stays a number"
    );
    assert_eq!(
        ann["huge"],
        u128::MAX.to_string(),
        "one that does not becomes text"
    );
    assert_eq!(ann["vip"], true);
    assert_eq!(ann["http_route"], "/cart/{id}", "key sanitized");
    assert_eq!(ann["ratio"], 0.5);
    assert_eq!(ann["late"], "recorded", "from Span::record");
    assert!(ann.get("bad").is_none(), "NaN cannot be an annotation");
    let meta = &doc["metadata"]["tracing"];
    assert_eq!(meta["bad"], "NaN");
    assert_eq!(meta["cart_size"], 43, "on_record after first enter wins");
    assert_eq!(meta["customer"], "c-42", "the instrumented argument");
    assert_eq!(meta["note"], "Some(\"x\")");
}

#[test]
fn custom_prefixes_namespace_and_fields() {
    let layer = XRayTracingLayer::new()
        .annotation_prefixes(["idx."])
        .annotate_field("user_id")
        .metadata_namespace("app");
    let h = harness(layer);
    let segment = h.recorder.segment("svc").begin();
    h.run(|| {
        segment.in_scope(|| {
            let span = info_span!(
                "step",
                idx.order = 7,
                user_id = "u1",
                annotation.x = 1,
                other = 2
            );
            span.in_scope(|| {});
            // Recorded before the first enter: kept until the subsegment begins.
            let later = info_span!("later", idx.v = field::Empty);
            later.record("idx.v", "early");
            later.in_scope(|| {});
        })
    });
    segment.end();
    let e = h.entities();
    let doc = &named(&e, "step").2;
    assert_eq!(doc["annotations"], json!({"order": 7, "user_id": "u1"}));
    assert_eq!(
        doc["metadata"],
        json!({"app": {"annotation.x": 1, "other": 2}})
    );
    assert_eq!(named(&e, "later").2["annotations"]["v"], "early");
}

#[test]
fn without_metadata_keeps_only_annotations() {
    let h = harness(XRayTracingLayer::new().without_metadata());
    let segment = h.recorder.segment("svc").begin();
    h.run(|| segment.in_scope(|| info_span!("step", annotation.a = 1, b = 2).in_scope(|| {})));
    segment.end();
    let e = h.entities();
    let doc = &named(&e, "step").2;
    assert_eq!(doc["annotations"], json!({"a": 1}));
    assert!(doc.get("metadata").is_none());
}
