//! Facade segments (the function segment AWS Lambda records): real subsegments over real UDP
//! to a loopback capture.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use xray_sdk::testing::UdpCapture;
use xray_sdk::{Namespace, Record, SamplingFlag, TraceHeader};

const INVOCATION: &str =
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a1:2";

#[test]
fn a_facade_is_never_sent_and_its_subsegments_go_out_under_its_id() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("fn");
    let header = TraceHeader::parse(INVOCATION);
    let facade = recorder.facade(&header);
    assert!(facade.is_sampled());
    assert_eq!(facade.id().to_string(), "53995c3f42cd8ad8");
    let compute = facade.begin_subsegment("compute");
    compute.annotate("items", 3);
    let inner = compute.begin_subsegment("inner");
    inner.end();
    compute.end();
    facade
        .begin_subsegment_with("DynamoDB", |p| {
            p.set_namespace(Namespace::Aws);
            p.set_aws_operation("PutItem");
        })
        .end();
    // The downstream header names the subsegment, with the invocation's root and lineage.
    let call = facade.begin_subsegment("call");
    let down = call.downstream_header().to_string();
    assert!(
        down.starts_with("Root=1-5759e988-bd862e3fe1be46a994272793;Parent="),
        "{down}"
    );
    assert!(down.ends_with(";Sampled=1;Lineage=a1:2"), "{down}");
    call.end();
    facade.end();
    recorder.flush(Duration::from_secs(5)).unwrap();
    let docs = capture.drain_documents(Duration::from_millis(300));
    let names: Vec<&str> = docs.iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["compute", "DynamoDB", "call"], "{docs:?}");
    for d in &docs {
        assert_eq!(d["type"], "subsegment", "{d}");
        assert_eq!(d["trace_id"], "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(d["parent_id"], "53995c3f42cd8ad8");
    }
    assert_eq!(docs[0]["subsegments"][0]["name"], "inner");
    assert_eq!(docs[0]["annotations"]["items"], 3);
    assert_eq!(docs[1]["aws"]["operation"], "PutItem");
}

#[test]
fn an_unsampled_invocation_sends_nothing_and_passes_its_decision_on() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("fn");
    for value in [
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
        // Lambda's decision is final: without it nothing is recorded either.
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
    ] {
        let facade = recorder.facade(&TraceHeader::parse(value));
        assert!(!facade.is_sampled());
        let work = facade.begin_subsegment("compute");
        let down = work.downstream_header();
        assert_eq!(down.sampled(), SamplingFlag::NotSampled);
        assert_eq!(
            down.root().unwrap().to_string(),
            "1-5759e988-bd862e3fe1be46a994272793"
        );
        work.end();
        facade.end();
    }
    recorder.flush(Duration::from_secs(5)).unwrap();
    assert!(capture.drain(Duration::from_millis(300)).is_empty());
}

#[test]
fn a_held_facade_sends_its_work_under_the_trace_that_adopts_it() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture
        .recorder_builder("fn")
        .send_inline(true)
        .streaming_threshold(0)
        .build()
        .unwrap();
    let held = recorder.held_facade();
    let init = held.context().begin_subsegment("init");
    let table = init.begin_subsegment("DynamoDB");
    let early = table.downstream_header();
    table.end();
    init.end();
    // Nothing leaves before the trace is known.
    assert!(capture.drain(Duration::from_millis(200)).is_empty());
    let invocation = recorder.facade(&TraceHeader::parse(INVOCATION));
    assert_eq!(held.send_under(&invocation), 2);
    let docs = capture.documents(1, Duration::from_secs(5));
    assert_eq!(docs.len(), 1, "{docs:?}");
    let d = &docs[0];
    assert_eq!(d["name"], "init");
    assert_eq!(d["type"], "subsegment");
    assert_eq!(d["trace_id"], "1-5759e988-bd862e3fe1be46a994272793");
    assert_eq!(d["parent_id"], "53995c3f42cd8ad8");
    assert_eq!(d["subsegments"][0]["name"], "DynamoDB");
    // Calls made before carried the held trace's own ID.
    assert_ne!(
        early.root().unwrap().to_string(),
        "1-5759e988-bd862e3fe1be46a994272793"
    );
    invocation.end();
}

#[test]
fn a_held_facade_forwards_work_that_ends_later_and_drops_it_for_unsampled_traces() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture
        .recorder_builder("fn")
        .send_inline(true)
        .streaming_threshold(0)
        .build()
        .unwrap();
    let held = recorder.held_facade();
    let late = held.context().begin_subsegment("warm-cache");
    let invocation = recorder.facade(&TraceHeader::parse(INVOCATION));
    assert_eq!(held.send_under(&invocation), 0);
    assert!(capture.drain(Duration::from_millis(200)).is_empty());
    late.end();
    let docs = capture.documents(1, Duration::from_secs(5));
    assert_eq!(docs[0]["name"], "warm-cache");
    assert_eq!(docs[0]["parent_id"], "53995c3f42cd8ad8");

    let held = recorder.held_facade();
    held.context().begin_subsegment("init").end();
    let unsampled = recorder.facade(&TraceHeader::parse(
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
    ));
    assert_eq!(held.send_under(&unsampled), 1);
    assert!(capture.drain(Duration::from_millis(200)).is_empty());
}
