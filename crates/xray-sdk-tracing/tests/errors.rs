//! Error events as causes and faults.

#![allow(clippy::unwrap_used)]

mod common;

use std::fmt;
use xray_sdk::Record;

use common::{harness, named};
use tracing::{error, info_span, instrument, warn};
use xray_sdk::FutureExt;
use xray_sdk_tracing::XRayTracingLayer;

#[derive(Debug)]
struct PaymentDeclined;

impl fmt::Display for PaymentDeclined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("card declined")
    }
}

impl std::error::Error for PaymentDeclined {}

#[instrument]
async fn charge() {
    let e = PaymentDeclined;
    error!(error = %e, "charge failed");
}

#[instrument(err)]
async fn reserve() -> Result<(), PaymentDeclined> {
    Err(PaymentDeclined)
}

#[test]
fn error_event_records_cause_and_fault() {
    let h = harness(XRayTracingLayer::new());
    let segment = h.recorder.segment("svc").begin();
    h.block_on(
        async {
            charge().await;
            let _ = reserve().await;
        }
        .in_context(segment.context()),
    );
    segment.end();
    let e = h.entities();
    let doc = &named(&e, "charge").2;
    assert_eq!(doc["fault"], true);
    let ex = &doc["cause"]["exceptions"][0];
    assert_eq!(ex["message"], "charge failed: card declined");
    assert_eq!(ex["type"], "errors");
    let frame = &ex["stack"][0];
    assert!(frame["path"].as_str().unwrap().ends_with("errors.rs"));
    assert!(frame["line"].as_u64().unwrap() > 0);
    assert_eq!(frame["label"], "errors");

    let doc = &named(&e, "reserve").2;
    assert_eq!(doc["fault"], true);
    assert_eq!(doc["cause"]["exceptions"][0]["message"], "card declined");
    // The segment itself is untouched.
    assert!(named(&e, "svc").2.get("fault").is_none());
}

#[test]
fn dyn_error_field_keeps_type_and_chain() {
    let h = harness(XRayTracingLayer::new());
    let segment = h.recorder.segment("svc").begin();
    h.run(|| {
        segment.in_scope(|| {
            info_span!("parse").in_scope(|| {
                let err = "x".parse::<u32>().unwrap_err();
                error!(error = &err as &dyn std::error::Error);
                warn!("warnings are not faults");
            })
        })
    });
    segment.end();
    let e = h.entities();
    let ex = &named(&e, "parse").2["cause"]["exceptions"][0];
    assert_eq!(ex["message"], "invalid digit found in string");
    assert_eq!(ex["type"], "ParseIntError");
    assert!(
        ex["stack"][0]["path"]
            .as_str()
            .unwrap()
            .ends_with("errors.rs")
    );
}

#[test]
fn error_outside_any_span_goes_to_the_current_context() {
    let h = harness(XRayTracingLayer::new().error_level(tracing::Level::WARN));
    let segment = h.recorder.segment("svc").begin();
    h.run(|| segment.in_scope(|| warn!(error = "timeout", "upstream slow")));
    segment.end();
    let e = h.entities();
    let doc = &named(&e, "svc").2;
    assert_eq!(doc["fault"], true);
    assert_eq!(
        doc["cause"]["exceptions"][0]["message"],
        "upstream slow: timeout"
    );
}

/// An error logged from inside a closure that holds the trace's lock (here `end_with`):
/// the layer's cause for it cannot be recorded then, and must not wait for the lock.
#[test]
fn an_error_logged_inside_an_end_closure_does_not_deadlock() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let h = harness(XRayTracingLayer::new());
        let segment = h.recorder.segment("svc").begin();
        h.run(|| {
            let _current = segment.context().enter();
            let call = segment.begin_subsegment("payments");
            call.end_with(|e| {
                e.set_http_response(503, None);
                error!("payments failed");
            });
        });
        segment.end();
        let _ = tx.send(h.entities().len());
    });
    let sent = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("deadlocked");
    assert_eq!(sent, 2);
}
