//! AWS Lambda: with `AWS_LAMBDA_FUNCTION_NAME` set, `OTEL_TRACES_EXPORTER=otlp` and no
//! endpoint, spans go over UDP to `AWS_XRAY_DAEMON_ADDRESS` as Lambda's daemon reads them:
//! `{"format":"json","version":1}` + `\n` + `T1S` + base64 protobuf, at most ten spans and
//! 64 KiB per datagram. Each case runs in a child process with that environment, recording
//! as the Lambda layer does (a facade for Lambda's segment, sent inline), and the datagrams
//! are read and decoded from a real UDP socket in the parent.

#![allow(clippy::unwrap_used)]

mod otlp_support;

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use otlp_support::{
    Datagrams, decode_datagram, hex, is_child, resources_of, run_child, s, spans_of,
};
use xray_sdk::plugins::Plugins;
use xray_sdk::{Record, Recorder, TraceHeader};

const HEADER: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

/// Records an invocation under Lambda's segment: `n` subsegments, one of them with a large
/// metadata value, and one too large for any datagram.
fn invocation(recorder: &Recorder, n: usize) {
    let facade = recorder.facade(&TraceHeader::parse(HEADER));
    let invocation = facade.begin_subsegment("my-fn");
    for i in 0..n {
        let step = invocation.begin_subsegment(format!("step-{i}"));
        if i == 3 {
            step.put_metadata("blob", "x".repeat(30_000));
        }
        step.end();
    }
    let huge = invocation.begin_subsegment("huge");
    huge.put_metadata("blob", "y".repeat(70_000));
    huge.end();
    invocation.end();
    facade.end();
}

fn lambda_builder(threshold: u32) -> Recorder {
    // As xray-sdk-lambda builds its recorder: inline sends, no poller, no plugins.
    Recorder::builder()
        .service_name("my-fn")
        .send_inline(true)
        .streaming_threshold(threshold)
        .centralized_sampling(false)
        .plugins(Plugins::none())
        .build()
        .unwrap()
}

#[test]
fn child_packs_an_invocation() {
    if !is_child() {
        return;
    }
    let recorder = lambda_builder(100);
    invocation(&recorder, 24);
    let s = recorder.stats();
    // 24 steps and the invocation subsegment; the huge one is dropped.
    assert_eq!(
        (s.spans_exported, s.spans_dropped, s.dropped_too_large),
        (25, 1, 1),
        "{s:?}"
    );
    assert_eq!(s.send_errors, 0);
}

#[test]
fn an_invocation_goes_out_in_t1s_datagrams_of_a_few_spans() {
    let daemon = Datagrams::bind();
    run_child(
        "child_packs_an_invocation",
        &[
            ("AWS_LAMBDA_FUNCTION_NAME", "my-fn".into()),
            ("AWS_REGION", "eu-west-1".into()),
            ("OTEL_TRACES_EXPORTER", "otlp".into()),
            ("AWS_XRAY_DAEMON_ADDRESS", daemon.address()),
        ],
    );
    let datagrams = daemon.drain();
    assert!(datagrams.len() >= 3, "{}", datagrams.len());
    let mut spans = Vec::new();
    for d in &datagrams {
        assert!(d.len() <= 63 * 1024, "{}", d.len());
        let request = decode_datagram(d);
        let these = spans_of(&request);
        assert!(!these.is_empty() && these.len() <= 10, "{}", these.len());
        let res = &resources_of(&request)[0].attributes;
        assert_eq!(s(res, "faas.name"), Some("my-fn"));
        assert_eq!(s(res, "cloud.platform"), Some("aws_lambda"));
        assert_eq!(s(res, "cloud.region"), Some("eu-west-1"));
        spans.extend(these);
    }
    assert_eq!(spans.len(), 25);
    // Lambda's segment is not sent; the invocation hangs under its ID.
    let inv = spans.iter().find(|s| s.name == "my-fn").unwrap();
    assert_eq!(hex(&inv.parent_span_id), "53995c3f42cd8ad8");
    assert_eq!(inv.kind, SpanKind::Internal as i32);
    for span in &spans {
        assert_eq!(hex(&span.trace_id), "5759e988bd862e3fe1be46a994272793");
        if span.name != "my-fn" {
            assert_eq!(span.parent_span_id, inv.span_id);
        }
    }
    assert!(spans.iter().all(|s| s.kind != SpanKind::Server as i32));
    // The 30 KB step shares no datagram that would pass 64 KiB.
    let blob = spans.iter().find(|s| s.name == "step-3").unwrap();
    assert_eq!(
        s(&blob.attributes, "aws.xray.metadata.default").map(str::len),
        Some(30_000 + "{\"blob\":\"\"}".len())
    );
}

#[test]
fn child_streams_each_subsegment() {
    if !is_child() {
        return;
    }
    let recorder = lambda_builder(0);
    invocation(&recorder, 4);
    let s = recorder.stats();
    assert_eq!(
        (s.spans_exported, s.spans_dropped, s.sent),
        (5, 1, 5),
        "{s:?}"
    );
}

#[test]
fn with_the_lambda_layers_threshold_each_subsegment_is_a_datagram_before_the_handler_returns() {
    let daemon = Datagrams::bind();
    run_child(
        "child_streams_each_subsegment",
        &[
            ("AWS_LAMBDA_FUNCTION_NAME", "my-fn".into()),
            ("OTEL_TRACES_EXPORTER", "otlp".into()),
            ("AWS_XRAY_DAEMON_ADDRESS", daemon.address()),
        ],
    );
    let datagrams = daemon.drain();
    assert_eq!(datagrams.len(), 5);
    for d in &datagrams {
        assert_eq!(spans_of(&decode_datagram(d)).len(), 1);
    }
}
