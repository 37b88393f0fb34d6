//! End-to-end tests of the core: real segments sent over real UDP to a loopback capture.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::Value;
use xray_sdk::Record;
use xray_sdk::context::FutureExt;
use xray_sdk::testing::{UdpCapture, flatten};
use xray_sdk::{Context, HttpRequest, TraceHeader};

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn segment_with_nested_subsegments_is_one_datagram() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("orders");
    let header = TraceHeader::parse(
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    );
    let segment = recorder.segment("orders").header(&header).begin();
    segment.set_http_request(HttpRequest {
        method: Some("GET".into()),
        url: Some("http://example.com/orders/1".into()),
        user_agent: Some("curl/8".into()),
        client_ip: Some("10.0.0.1".into()),
        x_forwarded_for: true,
        traced: false,
    });
    segment.annotate("s", "text");
    segment.annotate("n", 42);
    segment.annotate("f", 1.5);
    segment.annotate("b", true);
    segment.annotate("bad key", 1); // dropped, logged
    segment.put_metadata("config", serde_json::json!({"retries": 3}));
    segment.put_metadata_in("app", "version", "1.2.3");
    {
        let a = segment.begin_subsegment("a");
        let b = a.begin_subsegment("b");
        b.set_http_response(404, Some(10));
        b.end();
        a.end();
    }
    segment.set_http_response(500, Some(0));
    segment.end();
    recorder.flush(WAIT).unwrap();
    let grams = capture.wait_for(1, WAIT);
    assert_eq!(grams.len(), 1);
    assert!(
        grams[0]
            .bytes
            .starts_with(b"{\"format\":\"json\",\"version\":1}\n")
    );
    let doc = grams[0].document();
    assert_eq!(doc["name"], "orders");
    assert_eq!(doc["trace_id"], "1-5759e988-bd862e3fe1be46a994272793");
    assert_eq!(doc["parent_id"], "53995c3f42cd8ad8");
    assert_eq!(doc["fault"], true);
    assert!(doc.get("error").is_none());
    assert_eq!(doc["http"]["request"]["method"], "GET");
    assert_eq!(doc["http"]["request"]["x_forwarded_for"], true);
    assert_eq!(doc["http"]["response"]["status"], 500);
    assert_eq!(
        doc["annotations"],
        serde_json::json!({"s":"text","n":42,"f":1.5,"b":true})
    );
    assert_eq!(doc["metadata"]["default"]["config"]["retries"], 3);
    assert_eq!(doc["metadata"]["app"]["version"], "1.2.3");
    assert_eq!(doc["aws"]["xray"]["sdk"], "X-Ray for Rust");
    assert_eq!(doc["aws"]["xray"]["sdk_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["service"]["runtime"], "rust");
    assert!(doc["start_time"].as_f64().unwrap() <= doc["end_time"].as_f64().unwrap());
    let a = &doc["subsegments"][0];
    assert_eq!(a["name"], "a");
    assert!(a.get("trace_id").is_none() && a.get("type").is_none());
    let b = &a["subsegments"][0];
    assert_eq!(b["name"], "b");
    assert_eq!(b["error"], true);
    assert_eq!(b["http"]["response"]["status"], 404);
    assert_eq!(recorder.stats().sent, 1);
}

#[test]
fn unsampled_sends_nothing_but_propagates() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("svc");
    let h = TraceHeader::parse("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0;Lineage=a:1");
    let seg = recorder.segment("svc").header(&h).begin();
    let sub = seg.begin_subsegment("call");
    let down = sub.downstream_header().to_string();
    assert!(down.starts_with("Root=1-5759e988-bd862e3fe1be46a994272793;Parent="));
    assert!(down.ends_with(";Sampled=0;Lineage=a:1"), "{down}");
    sub.end();
    seg.end();
    recorder.flush(WAIT).unwrap();
    assert!(capture.drain(Duration::from_millis(200)).is_empty());
    assert_eq!(recorder.stats().queued, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_follows_await_and_spawned_tasks() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("ctx");
    let segment = recorder.segment("ctx").begin();
    let seg_id = segment.id();
    async {
        for i in 0..3 {
            xray_sdk::subsegment(format!("step-{i}"), async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                tokio::task::yield_now().await;
                let cur = Context::current().unwrap();
                assert_ne!(cur.id(), seg_id);
                xray_sdk::subsegment("inner", async {
                    tokio::task::yield_now().await;
                })
                .await;
            })
            .await;
        }
        let handle = tokio::spawn(
            async {
                xray_sdk::subsegment("spawned", async {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                })
                .await;
                Context::current().map(|c| c.trace_id())
            }
            .in_current_context(),
        );
        assert_eq!(handle.await.unwrap(), Some(segment.trace_id()));
        // A task spawned without the context does not see it.
        let orphan = tokio::spawn(async { Context::current().is_none() });
        assert!(orphan.await.unwrap());
    }
    .in_context(segment.context())
    .await;
    assert!(Context::current().is_none());
    segment.end();
    recorder.flush(WAIT).unwrap();
    let docs = capture.documents(1, WAIT);
    let all = flatten(&docs);
    let names: Vec<&str> = all
        .iter()
        .map(|(_, _, d)| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.iter().filter(|n| **n == "inner").count(), 3);
    let spawned = all.iter().find(|(_, _, d)| d["name"] == "spawned").unwrap();
    assert_eq!(spawned.1.as_deref(), Some(seg_id.to_string().as_str()));
    for (_, parent, d) in &all {
        if d["name"] == "inner" {
            let p = all
                .iter()
                .find(|(id, _, _)| Some(id) == parent.as_ref())
                .unwrap();
            assert!(p.2["name"].as_str().unwrap().starts_with("step-"));
        }
    }
}

#[tokio::test]
async fn cancelled_future_still_closes_its_subsegment() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("cancel");
    let segment = recorder.segment("cancel").begin();
    let slow = xray_sdk::subsegment("slow", tokio::time::sleep(Duration::from_secs(60)))
        .in_context(segment.context());
    let _ = tokio::time::timeout(Duration::from_millis(20), slow).await;
    segment.end();
    recorder.flush(WAIT).unwrap();
    let doc = &capture.documents(1, WAIT)[0];
    let slow = &doc["subsegments"][0];
    assert_eq!(slow["name"], "slow");
    assert!(slow["end_time"].is_number());
}

#[test]
fn segment_waits_for_open_subsegments() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("late");
    let segment = recorder.segment("late").begin();
    let sub = segment.begin_subsegment("background");
    segment.end();
    recorder.flush(WAIT).unwrap();
    assert!(capture.drain(Duration::from_millis(100)).is_empty());
    sub.end();
    recorder.flush(WAIT).unwrap();
    let doc = &capture.documents(1, WAIT)[0];
    assert_eq!(doc["subsegments"][0]["name"], "background");
}

#[test]
fn error_with_source_chain_becomes_cause() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("err");
    let segment = recorder.segment("err").begin();
    let err = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "daemon down");
    segment.record_error(&err);
    segment.end();
    recorder.flush(WAIT).unwrap();
    let doc = &capture.documents(1, WAIT)[0];
    assert_eq!(doc["fault"], true);
    let ex = &doc["cause"]["exceptions"][0];
    assert_eq!(ex["message"], "daemon down");
    assert_eq!(ex["type"], "Error");
    assert_eq!(ex["id"].as_str().unwrap().len(), 16);
    assert!(doc["cause"]["working_directory"].is_string());
}

fn ids(v: &Value) -> Vec<String> {
    flatten(std::slice::from_ref(v))
        .into_iter()
        .map(|(id, _, _)| id)
        .collect()
}

#[test]
fn many_subsegments_are_streamed() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture
        .recorder_builder("stream")
        .streaming_threshold(10)
        .build()
        .unwrap();
    let segment = recorder.segment("stream").begin();
    for i in 0..35 {
        segment.begin_subsegment(format!("s{i}")).end();
    }
    segment.end();
    recorder.flush(WAIT).unwrap();
    let docs = capture.drain(Duration::from_millis(300));
    let docs: Vec<Value> = docs.iter().map(|d| d.document()).collect();
    assert!(
        docs.len() > 1,
        "expected streaming, got {} document(s)",
        docs.len()
    );
    let seg = docs.iter().find(|d| d.get("type").is_none()).unwrap();
    let streamed: Vec<&Value> = docs.iter().filter(|d| d["type"] == "subsegment").collect();
    for s in &streamed {
        assert_eq!(s["trace_id"], seg["trace_id"]);
        assert_eq!(s["parent_id"], seg["id"]);
    }
    let mut all: Vec<String> = docs.iter().flat_map(ids).collect();
    all.sort();
    all.dedup();
    assert_eq!(
        all.len(),
        36,
        "every subsegment exactly once plus the segment"
    );
    let _ = ids;
}

#[test]
fn names_set_before_the_entity_begins_are_sent_as_given_and_invalid_ones_sanitized() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("svc");
    let valid: std::sync::Arc<str> = "orders-api".into();
    let invalid: std::sync::Arc<str> = "orders*api?".into();
    for name in [&valid, &invalid, &valid] {
        let segment = recorder
            .segment("")
            .sampled(true)
            .begin_with(|e| e.set_name(&**name));
        segment
            .begin_subsegment_with("", |e| e.set_name(&**name))
            .end();
        segment.end();
    }
    recorder.flush(WAIT).unwrap();
    let grams = capture.wait_for(3, WAIT);
    let names: Vec<Vec<String>> = grams
        .iter()
        .map(|g| {
            let doc = g.document();
            let sub = &doc["subsegments"][0];
            vec![doc["name"].to_string(), sub["name"].to_string()]
        })
        .collect();
    assert_eq!(
        names,
        [
            [r#""orders-api""#, r#""orders-api""#],
            [r#""ordersapi""#, r#""ordersapi""#],
            [r#""orders-api""#, r#""orders-api""#],
        ]
    );
    // The shared string is not held once the documents are sent.
    assert_eq!(std::sync::Arc::strong_count(&valid), 1);
}

#[test]
fn aws_fields_set_on_a_segment_join_its_aws_block() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("billing");
    let segment = recorder.segment("billing").begin();
    segment.set_aws_field("account_id", "123456789012");
    segment.set_aws_field(
        "elastic_beanstalk",
        serde_json::json!({"environment_name": "prod"}),
    );
    // The SDK's own key is not replaced.
    segment.set_aws_field("xray", "mine");
    segment.end();
    recorder.flush(WAIT).unwrap();
    let gram = capture.wait_for(1, WAIT).remove(0);
    let doc = gram.document();
    let aws = &doc["aws"];
    assert_eq!(aws["account_id"], "123456789012", "{doc}");
    assert_eq!(aws["elastic_beanstalk"]["environment_name"], "prod");
    assert_eq!(aws["xray"]["sdk"], "X-Ray for Rust");
    // Each key once (parsing would hide a repeated key): the datagram's text has one.
    let raw = String::from_utf8_lossy(&gram.bytes).into_owned();
    assert_eq!(raw.matches("\"xray\":").count(), 1, "{raw}");

    // A segment without fields of its own keeps the plain block.
    let plain = recorder.segment("billing").begin();
    plain.end();
    recorder.flush(WAIT).unwrap();
    let doc = capture.documents(1, WAIT).remove(0);
    assert_eq!(
        doc["aws"].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["xray"]
    );
}

/// The changes made under one lock (`end_with`) are those of `Context`, with the same names
/// and the same handling of bad input.
#[test]
fn end_with_records_annotations_metadata_and_errors() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("svc");
    let segment = recorder.segment("svc").begin();
    let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "backend timed out");
    segment.end_with(|e| {
        e.annotate("tier", "gold");
        e.annotate("bad key", 1); // dropped, logged
        assert!(e.try_annotate("also bad", 2).is_err());
        e.put_metadata("attempts", 3);
        e.record_error(&io);
    });
    recorder.flush(WAIT).unwrap();
    let doc = capture.wait_for(1, WAIT)[0].document();
    assert_eq!(doc["annotations"], serde_json::json!({ "tier": "gold" }));
    assert_eq!(doc["metadata"]["default"]["attempts"], 3);
    assert_eq!(doc["fault"], true);
    assert_eq!(
        doc["cause"]["exceptions"][0]["message"], "backend timed out",
        "{doc}"
    );
}

/// `Duration::MAX` means "as long as it takes" (it overflowed the deadline's `Instant`).
#[test]
fn flush_without_a_time_limit() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("svc");
    recorder.segment("svc").begin().end();
    recorder.flush(Duration::MAX).unwrap();
    assert_eq!(recorder.stats().sent, 1);
    assert_eq!(capture.wait_for(1, WAIT).len(), 1);
}

/// The fields few entities have (`user`, `origin`, `resource_arn`, `service.version`) and
/// the packed ones (`retries`, the response's status and a length past 4 GiB, `traced`): the
/// latest value of each is sent, on the entity it was set on, streamed or not.
#[test]
fn rare_and_packed_fields_are_sent_with_their_latest_values() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("orders");
    let segment = recorder.segment("orders").begin_with(|p| {
        p.set_user("alice");
        p.set_origin("AWS::ECS::Container");
        p.set_service_version("1.0.0");
    });
    segment.set_user("bob");
    segment.set_resource_arn("arn:aws:ecs:us-east-1:123456789012:task/t");
    segment.set_service_version("2.0.0");
    segment.set_http_response(206, Some(5_000_000_000));
    let call = segment.begin_subsegment_with("DynamoDB", |p| {
        p.set_aws_retries(u32::MAX);
        p.set_aws_retries(2);
        p.set_user("carol");
    });
    call.end_with(|p| {
        p.set_http_response(0, None);
        p.set_http_traced(true);
        p.set_resource_arn("arn:aws:dynamodb:us-east-1:123456789012:table/orders");
    });
    let query = segment.begin_subsegment("orders-db");
    for q in ["SELECT 1", "SELECT * FROM orders WHERE id = ?"] {
        query.set_sql(xray_sdk::model::Sql {
            sanitized_query: Some(q.into()),
            ..Default::default()
        });
    }
    query.end();
    let plain = segment.begin_subsegment("plain");
    plain.end();
    segment.end();
    recorder.flush(WAIT).unwrap();
    let gram = &capture.wait_for(1, WAIT)[0];
    // One `sql` block, not one per call (a JSON reader would keep only the last of two).
    let text = String::from_utf8_lossy(&gram.bytes);
    assert_eq!(text.matches("\"sql\"").count(), 1, "{text}");
    let doc = gram.document();
    assert_eq!(doc["user"], "bob");
    assert_eq!(doc["origin"], "AWS::ECS::Container");
    assert_eq!(
        doc["resource_arn"],
        "arn:aws:ecs:us-east-1:123456789012:task/t"
    );
    assert_eq!(doc["service"]["version"], "2.0.0");
    assert_eq!(doc["http"]["response"]["status"], 206);
    assert_eq!(doc["http"]["response"]["content_length"], 5_000_000_000u64);
    let call = &doc["subsegments"][0];
    assert_eq!(call["aws"]["retries"], 2);
    assert_eq!(call["user"], "carol");
    assert_eq!(
        call["resource_arn"],
        "arn:aws:dynamodb:us-east-1:123456789012:table/orders"
    );
    assert_eq!(call["http"]["response"]["status"], 0);
    assert!(call["http"]["response"].get("content_length").is_none());
    assert_eq!(call["http"]["request"]["traced"], true);
    // A second `sql` block replaces the first.
    assert_eq!(
        doc["subsegments"][1]["sql"],
        serde_json::json!({"sanitized_query": "SELECT * FROM orders WHERE id = ?"})
    );
    let plain = &doc["subsegments"][2];
    for absent in ["user", "resource_arn", "origin", "service", "http", "aws"] {
        assert!(plain.get(absent).is_none(), "{absent} on {plain}");
    }
}
