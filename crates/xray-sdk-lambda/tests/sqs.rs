//! SQS links: the `AWSTraceHeader` of the messages of a real SQS event, recorded on
//! subsegments sent over real UDP.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use aws_lambda_events::sqs::SqsEvent;
use serde_json::json;
use xray_sdk::TraceHeader;
use xray_sdk::testing::UdpCapture;
use xray_sdk_lambda::{LINK_ANNOTATION, LINK_METADATA, SqsLink};

fn event() -> SqsEvent {
    let message = |id: &str, attributes: serde_json::Value| {
        json!({
            "messageId": id,
            "receiptHandle": "AQEB",
            "body": "{}",
            "attributes": attributes,
            "messageAttributes": {},
            "md5OfBody": "99914b932bd37a50b983c5e7c90ae93b",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-west-2:123456789012:orders",
            "awsRegion": "us-west-2"
        })
    };
    serde_json::from_value(json!({ "Records": [
        message("m1", json!({
            "ApproximateReceiveCount": "1",
            "AWSTraceHeader": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
        })),
        message("m2", json!({
            "ApproximateReceiveCount": "1",
            "AWSTraceHeader": "Root=1-6759e988-00000000000000000000000a;Parent=1111222233334444;Sampled=0"
        })),
        message("m3", json!({ "ApproximateReceiveCount": "1" })),
        message("m4", json!({ "AWSTraceHeader": "Root=not-a-trace;Sampled=1" })),
    ]}))
    .unwrap()
}

#[test]
fn links_are_read_from_the_messages_of_an_event() {
    let event = event();
    let links: Vec<Option<SqsLink>> = event.records.iter().map(SqsLink::from_message).collect();
    let first = links[0].as_ref().unwrap();
    assert!(first.is_sampled());
    assert_eq!(
        first.trace_id().to_string(),
        "1-5759e988-bd862e3fe1be46a994272793"
    );
    assert_eq!(first.parent_id().unwrap().to_string(), "53995c3f42cd8ad8");
    assert_eq!(first.message_id(), Some("m1"));
    assert!(!links[1].as_ref().unwrap().is_sampled());
    assert!(links[2].is_none(), "no attribute, no link");
    assert!(links[3].is_none(), "no valid Root, no link");
}

#[test]
fn a_link_is_recorded_as_an_annotation_and_metadata_on_its_subsegment() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture
        .recorder_builder("fn")
        .send_inline(true)
        .streaming_threshold(0)
        .build()
        .unwrap();
    let invocation = recorder.facade(&TraceHeader::parse(
        "Root=1-7759e988-bd862e3fe1be46a994272793;Parent=0123456789abcdef;Sampled=1",
    ));
    for message in &event().records {
        let sub = invocation.begin_subsegment("process-message");
        if let Some(link) = SqsLink::from_message(message) {
            link.record(&*sub);
        }
        sub.end();
    }
    invocation.end();
    let docs = capture.documents(4, Duration::from_secs(5));
    assert_eq!(docs.len(), 4, "{docs:?}");
    let first = &docs[0];
    assert_eq!(first["trace_id"], "1-7759e988-bd862e3fe1be46a994272793");
    assert_eq!(
        first["annotations"][LINK_ANNOTATION],
        "1-5759e988-bd862e3fe1be46a994272793"
    );
    assert_eq!(
        first["metadata"]["default"][LINK_METADATA],
        json!({
            "trace_id": "1-5759e988-bd862e3fe1be46a994272793",
            "parent_id": "53995c3f42cd8ad8",
            "sampled": true,
            "message_id": "m1"
        })
    );
    assert_eq!(
        docs[1]["metadata"]["default"][LINK_METADATA]["sampled"],
        false
    );
    assert!(docs[2].get("annotations").is_none(), "{}", docs[2]);
}
