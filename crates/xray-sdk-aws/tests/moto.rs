//! The interceptor against a real DynamoDB API: moto's server, started by
//! `scripts/with-moto.sh`, which exports `XRAY_TEST_DYNAMODB_ENDPOINT`.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, PutRequest,
    ReturnConsumedCapacity, ScalarAttributeType, WriteRequest,
};
use common::{RecordingProxy, ReqwestClient, dynamodb, entities, header, moto_endpoint, named};
use serde_json::json;
use xray_sdk::FutureExt;
use xray_sdk::testing::UdpCapture;

/// A table name no other test (or earlier run against the same server) uses.
fn unique_table(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// CreateTable with a hash key `pk` and a range key `sk`, untraced.
async fn create_table(client: &Client, table: &str) {
    client
        .create_table()
        .table_name(table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("sk")
                .attribute_type(ScalarAttributeType::N)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("sk")
                .key_type(KeyType::Range)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("CreateTable");
}

#[tokio::test]
async fn table_lifecycle_records_one_subsegment_per_call() {
    let Some(endpoint) = moto_endpoint() else {
        return;
    };
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("app");
    let client = dynamodb(ReqwestClient::new(), &endpoint);
    let table = unique_table("lifecycle");

    let segment = recorder.segment("app").begin();
    let ctx = segment.context();
    create_table(&client, &table).in_context(ctx.clone()).await;
    client
        .put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S("a".into()))
        .item("sk", AttributeValue::N("1".into()))
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .in_context(ctx.clone())
        .await
        .expect("PutItem");
    let got = client
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S("a".into()))
        .key("sk", AttributeValue::N("1".into()))
        .consistent_read(true)
        .projection_expression("pk, sk")
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .in_context(ctx.clone())
        .await
        .expect("GetItem");
    assert!(got.item().is_some());
    let query = client
        .query()
        .table_name(&table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S("a".into()))
        .limit(10)
        .scan_index_forward(false)
        .send()
        .in_context(ctx.clone())
        .await
        .expect("Query");
    assert_eq!(query.count(), 1);
    let put = |sk: &str| {
        WriteRequest::builder()
            .put_request(
                PutRequest::builder()
                    .item("pk", AttributeValue::S("b".into()))
                    .item("sk", AttributeValue::N(sk.into()))
                    .build()
                    .unwrap(),
            )
            .build()
    };
    client
        .batch_write_item()
        .request_items(&table, vec![put("1"), put("2")])
        .send()
        .in_context(ctx.clone())
        .await
        .expect("BatchWriteItem");
    let scan = client
        .scan()
        .table_name(&table)
        .send()
        .in_context(ctx.clone())
        .await
        .expect("Scan");
    assert_eq!(scan.count(), 3);
    let segment_id = segment.id().to_string();
    segment.end();

    let all = entities(&capture, &recorder, 1);
    let subs = named(&all, "DynamoDB");
    let ops: Vec<&str> = subs
        .iter()
        .map(|s| s.2["aws"]["operation"].as_str().unwrap())
        .collect();
    assert_eq!(subs.len(), 6, "{ops:?}");
    for (_, parent, sub) in &subs {
        assert_eq!(parent.as_deref(), Some(segment_id.as_str()));
        assert_eq!(sub["namespace"], "aws");
        assert_eq!(sub["aws"]["region"], "us-west-2");
        assert_eq!(sub["aws"]["retries"], 0);
        assert!(
            sub["aws"]["request_id"]
                .as_str()
                .is_some_and(|r| !r.is_empty()),
            "{sub}"
        );
        assert_eq!(sub["http"]["response"]["status"], 200);
        assert!(sub["http"]["response"]["content_length"].as_u64().is_some());
        assert!(sub.get("error").is_none() && sub.get("fault").is_none());
    }
    let op = |name: &str| {
        &subs
            .iter()
            .find(|s| s.2["aws"]["operation"] == name)
            .unwrap_or_else(|| panic!("no {name} in {ops:?}"))
            .2["aws"]
    };
    assert_eq!(op("CreateTable")["table_name"], table.as_str());
    assert_eq!(op("PutItem")["table_name"], table.as_str());
    assert_eq!(
        op("PutItem")["consumed_capacity"]["TableName"],
        table.as_str()
    );
    let get = op("GetItem");
    assert_eq!(get["table_name"], table.as_str());
    assert_eq!(get["consistent_read"], true);
    assert_eq!(get["projection_expression"], "pk, sk");
    assert!(get["consumed_capacity"].is_object(), "{get}");
    let q = op("Query");
    assert_eq!(q["table_name"], table.as_str());
    assert_eq!(q["limit"], 10);
    assert_eq!(q["scan_index_forward"], false);
    assert_eq!(op("BatchWriteItem")["table_names"], json!([table]));
    let s = op("Scan");
    assert_eq!(s["count"], 3);
    assert_eq!(s["scanned_count"], 3);
}

#[tokio::test]
async fn missing_table_is_an_error_with_a_remote_cause() {
    let Some(endpoint) = moto_endpoint() else {
        return;
    };
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("app");
    let client = dynamodb(ReqwestClient::new(), &endpoint);
    let segment = recorder.segment("app").begin();
    let out = client
        .get_item()
        .table_name("no-such-table")
        .key("pk", AttributeValue::S("a".into()))
        .send()
        .in_context(segment.context())
        .await;
    let err = out.expect_err("missing table");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{err:?}"
    );
    segment.end();
    let all = entities(&capture, &recorder, 1);
    let (_, _, sub) = named(&all, "DynamoDB")[0];
    assert_eq!(sub["error"], true, "{sub}");
    assert!(sub.get("fault").is_none() && sub.get("throttle").is_none());
    assert_eq!(sub["http"]["response"]["status"], 400);
    assert_eq!(sub["aws"]["operation"], "GetItem");
    assert_eq!(sub["aws"]["table_name"], "no-such-table");
    assert!(sub["aws"]["request_id"].is_string(), "{sub}");
    let ex = &sub["cause"]["exceptions"][0];
    assert_eq!(ex["type"], "ResourceNotFoundException");
    assert_eq!(ex["remote"], true);
    assert!(
        ex["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{ex}"
    );
}

/// Ten calls at once through one client (one interceptor), each in its own segment on a
/// multi-threaded runtime, through a proxy that records what the endpoint receives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_and_the_trace_header_the_endpoint_receives() {
    let Some(endpoint) = moto_endpoint() else {
        return;
    };
    let proxy = RecordingProxy::start(&endpoint).await;
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("app");
    let client = dynamodb(ReqwestClient::new(), &proxy.endpoint);
    let table = unique_table("concurrent");
    create_table(&client, &table).await;

    let mut tasks = Vec::new();
    for i in 0..10 {
        let segment = recorder.segment(format!("caller-{i}")).begin();
        let client = client.clone();
        let table = table.clone();
        let ctx = segment.context();
        tasks.push(tokio::spawn(
            async move {
                client
                    .put_item()
                    .table_name(&table)
                    .item("pk", AttributeValue::S(format!("k{i}")))
                    .item("sk", AttributeValue::N(i.to_string()))
                    .send()
                    .await
                    .expect("PutItem");
                client
                    .get_item()
                    .table_name(&table)
                    .key("pk", AttributeValue::S(format!("k{i}")))
                    .key("sk", AttributeValue::N(i.to_string()))
                    .projection_expression(format!("pk, sk, attr{i}"))
                    .send()
                    .await
                    .expect("GetItem");
                let ids = (segment.trace_id().to_string(), segment.id().to_string());
                segment.end();
                ids
            }
            .in_context(ctx),
        ));
    }
    let mut segments = Vec::new();
    for t in tasks {
        segments.push(t.await.unwrap());
    }

    let all = entities(&capture, &recorder, 10);
    let received = proxy.requests();
    // CreateTable (untraced) + 10 PutItem + 10 GetItem.
    assert_eq!(received.len(), 21);
    let mut traced = 0;
    for (i, (trace_id, segment_id)) in segments.iter().enumerate() {
        let segment = all
            .iter()
            .find(|(id, _, _)| id == segment_id)
            .map(|e| &e.2)
            .expect("segment sent");
        assert_eq!(segment["name"], format!("caller-{i}"));
        assert_eq!(segment["trace_id"], trace_id.as_str());
        let children: Vec<_> = all
            .iter()
            .filter(|(_, parent, _)| parent.as_deref() == Some(segment_id))
            .collect();
        assert_eq!(children.len(), 2, "caller-{i}: {children:#?}");
        let get = children
            .iter()
            .find(|c| c.2["aws"]["operation"] == "GetItem")
            .expect("GetItem subsegment");
        assert_eq!(
            get.2["aws"]["projection_expression"],
            format!("pk, sk, attr{i}")
        );
        for (sub_id, _, sub) in &children {
            assert_eq!(sub["name"], "DynamoDB");
            assert_eq!(sub["aws"]["table_name"], table.as_str());
            // The endpoint received exactly this subsegment's header, and the signature does
            // not cover it.
            let expected = format!("Root={trace_id};Parent={sub_id};Sampled=1");
            let req = received
                .iter()
                .find(|h| header(h, "x-amzn-trace-id") == Some(expected.as_str()))
                .unwrap_or_else(|| panic!("no request carried {expected}"));
            let auth = header(req, "authorization").expect("signed request");
            assert!(auth.starts_with("AWS4-HMAC-SHA256 "), "{auth}");
            let signed = auth
                .split("SignedHeaders=")
                .nth(1)
                .and_then(|s| s.split(',').next())
                .unwrap();
            assert!(signed.split(';').any(|h| h == "host"), "{signed}");
            assert!(
                !signed.split(';').any(|h| h == "x-amzn-trace-id"),
                "{signed}"
            );
            traced += 1;
        }
    }
    assert_eq!(traced, 20);
    assert!(
        received
            .iter()
            .filter(|h| header(h, "x-amzn-trace-id").is_some())
            .count()
            == 20
    );
}

/// A trace that came in through W3C `traceparent`, with a recorder that propagates W3C
/// headers on HTTP calls: the AWS endpoint still receives the X-Ray header only, in the X-Ray
/// form of the same trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_calls_carry_the_x_ray_header_only_whatever_the_w3c_setting() {
    let Some(endpoint) = moto_endpoint() else {
        return;
    };
    let proxy = RecordingProxy::start(&endpoint).await;
    let capture = UdpCapture::start().unwrap();
    let recorder = capture
        .recorder_builder("app")
        .propagate_traceparent(true)
        .build()
        .unwrap();
    let client = dynamodb(ReqwestClient::new(), &proxy.endpoint);
    let incoming = xray_sdk::header::incoming_trace(
        None,
        Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        || [&b"congo=t61rcWkgMzE"[..]],
    )
    .unwrap();
    let segment = recorder.segment("app").header(&incoming).begin();
    assert!(segment.propagates_traceparent());
    client
        .list_tables()
        .send()
        .in_context(segment.context())
        .await
        .expect("ListTables");
    let segment_id = segment.id().to_string();
    segment.end();

    let all = entities(&capture, &recorder, 1);
    let calls: Vec<_> = all
        .iter()
        .filter(|(_, parent, _)| parent.as_deref() == Some(segment_id.as_str()))
        .collect();
    assert_eq!(calls.len(), 1, "{all:#?}");
    let (sub_id, _, sub) = calls[0];
    assert_eq!(sub["aws"]["operation"], "ListTables");
    let received = proxy.requests();
    assert_eq!(received.len(), 1);
    assert_eq!(
        header(&received[0], "x-amzn-trace-id"),
        Some(
            format!("Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent={sub_id};Sampled=1").as_str()
        )
    );
    assert_eq!(header(&received[0], "traceparent"), None);
    assert_eq!(header(&received[0], "tracestate"), None);
}
