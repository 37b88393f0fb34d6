//! The interceptor against an in-process replay HTTP client: no network, exact responses.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use common::{Canned, ReplayClient, dynamodb, entities, header, named};
use serde_json::json;
use xray_sdk::testing::UdpCapture;
use xray_sdk::{ContextMissing, FutureExt};
use xray_sdk_aws::XRayInterceptor;

const ENDPOINT: &str = "http://dynamodb.test";

fn throttled(code: &str) -> Canned {
    Canned::json(
        400,
        "req-throttled",
        &format!(
            r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"Rate exceeded"}}"#
        ),
    )
}

const GET_OK: &str =
    r#"{"Item":{"id":{"S":"1"}},"ConsumedCapacity":{"TableName":"users","CapacityUnits":0.5}}"#;

#[tokio::test]
async fn throttled_then_ok_records_the_retry_and_no_error_flags() {
    for code in [
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
    ] {
        let capture = UdpCapture::start().unwrap();
        let recorder = capture.recorder("app");
        let http = ReplayClient::new(vec![throttled(code), Canned::json(200, "req-ok", GET_OK)]);
        let client = dynamodb(http.clone(), ENDPOINT);

        let segment = recorder.segment("app").begin();
        let out = client
            .get_item()
            .table_name("users")
            .key("id", AttributeValue::S("1".into()))
            .consistent_read(true)
            .send()
            .in_context(segment.context())
            .await;
        assert!(out.is_ok(), "{out:?}");
        let segment_id = segment.id().to_string();
        let trace_id = segment.trace_id().to_string();
        segment.end();

        let all = entities(&capture, &recorder, 1);
        let subs = named(&all, "DynamoDB");
        assert_eq!(subs.len(), 1, "{all:#?}");
        let (_, parent, sub) = subs[0];
        assert_eq!(parent.as_deref(), Some(segment_id.as_str()));
        assert_eq!(sub["namespace"], "aws");
        assert_eq!(sub["aws"]["operation"], "GetItem");
        assert_eq!(sub["aws"]["region"], "us-west-2");
        assert_eq!(sub["aws"]["retries"], 1, "{code}");
        assert_eq!(sub["aws"]["request_id"], "req-ok");
        assert_eq!(sub["aws"]["table_name"], "users");
        assert_eq!(sub["aws"]["consistent_read"], true);
        assert_eq!(
            sub["aws"]["consumed_capacity"],
            json!({"TableName":"users","CapacityUnits":0.5})
        );
        // The flags follow the final outcome, as in the official SDKs: the retry is in
        // `retries`, and a call that succeeded is not an error.
        for flag in ["throttle", "error", "fault"] {
            assert!(sub.get(flag).is_none(), "{code}: {flag} in {sub}");
        }
        assert!(sub.get("cause").is_none(), "{code}: {sub}");
        assert_eq!(sub["http"]["response"]["status"], 200);
        assert_eq!(sub["http"]["response"]["content_length"], GET_OK.len());

        // Both attempts carried the trace header, with this subsegment as the parent.
        let sent = http.requests();
        assert_eq!(sent.len(), 2);
        let expected = format!(
            "Root={};Parent={};Sampled=1",
            trace_id,
            sub["id"].as_str().unwrap()
        );
        for h in &sent {
            assert_eq!(header(h, "x-amzn-trace-id"), Some(expected.as_str()));
            let auth = header(h, "authorization").expect("signed");
            assert!(
                !auth.to_ascii_lowercase().contains("x-amzn-trace-id"),
                "{auth}"
            );
        }
    }
}

#[tokio::test]
async fn throttled_to_the_end_is_an_error_with_remote_cause() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("app");
    let http = ReplayClient::new(vec![throttled("ThrottlingException")]);
    let client = dynamodb(http.clone(), ENDPOINT);
    let segment = recorder.segment("app").begin();
    let out = client
        .get_item()
        .table_name("users")
        .key("id", AttributeValue::S("1".into()))
        .send()
        .in_context(segment.context())
        .await;
    assert!(out.is_err());
    segment.end();
    let all = entities(&capture, &recorder, 1);
    let (_, _, sub) = named(&all, "DynamoDB")[0];
    assert_eq!(sub["aws"]["retries"], 2, "{sub}");
    assert_eq!(sub["throttle"], true);
    assert_eq!(sub["error"], true);
    assert_eq!(http.requests().len(), 3);
    let ex = &sub["cause"]["exceptions"][0];
    assert_eq!(ex["type"], "ThrottlingException");
    assert_eq!(ex["message"], "Rate exceeded");
    assert_eq!(ex["remote"], true);
}

#[tokio::test]
async fn server_error_then_ok_and_5xx_to_the_end() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("app");
    let fault = Canned::json(
        500,
        "req-500",
        r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"boom"}"#,
    );
    let http = ReplayClient::new(vec![fault.clone(), Canned::json(200, "req-ok", "{}")]);
    let client = dynamodb(http, ENDPOINT);
    let segment = recorder.segment("app").begin();
    client
        .describe_table()
        .table_name("t")
        .send()
        .in_context(segment.context())
        .await
        .ok();
    let client = dynamodb(ReplayClient::new(vec![fault]), ENDPOINT);
    let out = client
        .delete_table()
        .table_name("t")
        .send()
        .in_context(segment.context())
        .await;
    assert!(out.is_err());
    segment.end();
    let all = entities(&capture, &recorder, 1);
    let subs = named(&all, "DynamoDB");
    assert_eq!(subs.len(), 2);
    let ok = subs
        .iter()
        .find(|s| s.2["aws"]["operation"] == "DescribeTable")
        .unwrap();
    assert_eq!(ok.2["aws"]["retries"], 1);
    assert!(
        ok.2.get("fault").is_none() && ok.2.get("throttle").is_none(),
        "{}",
        ok.2
    );
    let bad = subs
        .iter()
        .find(|s| s.2["aws"]["operation"] == "DeleteTable")
        .unwrap();
    assert_eq!(bad.2["fault"], true, "{}", bad.2);
    assert_eq!(bad.2["aws"]["retries"], 2);
    assert_eq!(bad.2["aws"]["table_name"], "t");
    assert_eq!(
        bad.2["cause"]["exceptions"][0]["type"],
        "InternalServerError"
    );
    assert_eq!(bad.2["cause"]["exceptions"][0]["remote"], true);
}

#[tokio::test]
async fn transport_failure_is_a_fault() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("app");
    // Nothing listens on port 1 of loopback: connection refused on every attempt.
    let client = dynamodb(common::ReqwestClient::new(), "http://127.0.0.1:1");
    let segment = recorder.segment("app").begin();
    let out = client
        .list_tables()
        .send()
        .in_context(segment.context())
        .await;
    assert!(out.is_err());
    segment.end();
    let all = entities(&capture, &recorder, 1);
    let (_, _, sub) = named(&all, "DynamoDB")[0];
    assert_eq!(sub["fault"], true, "{sub}");
    assert!(sub.get("error").is_none());
    let ex = &sub["cause"]["exceptions"][0];
    assert_eq!(ex["type"], "ConnectorError", "{sub}");
    assert!(ex.get("remote").is_none());
}

/// A call made outside any segment's context is neither recorded nor traced, even while a
/// segment of the same recorder is open on the thread and the recorder is the global one.
#[tokio::test]
async fn outside_a_segment_nothing_is_recorded_or_sent() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("app");
    assert!(
        recorder.install_global().is_ok(),
        "another test installed a global recorder"
    );
    let http = ReplayClient::new(vec![Canned::json(200, "r", GET_OK)]);
    let client = dynamodb(http.clone(), ENDPOINT);
    let segment = recorder.segment("app").begin();
    client
        .get_item()
        .table_name("users")
        .key("id", AttributeValue::S("1".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(http.requests().len(), 1);
    assert_eq!(header(&http.requests()[0], "x-amzn-trace-id"), None);
    segment.end();
    recorder.flush(Duration::from_secs(5)).unwrap();
    // The segment alone: no subsegment in it, no independent document beside it.
    let docs = capture.drain_documents(Duration::from_millis(300));
    assert_eq!(docs.len(), 1, "{docs:#?}");
    assert_eq!(docs[0]["name"], "app");
    assert!(docs[0].get("subsegments").is_none(), "{:#}", docs[0]);
    assert_eq!(recorder.stats().queued, 1);
}

/// A service's client error (here DynamoDB's 400 for a missing table) is an `error` with the
/// remote exception, not a `fault`: X-Ray's definitions, where the Python and Node SDKs set
/// both flags.
#[tokio::test]
async fn a_4xx_service_error_is_an_error_not_a_fault() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("app");
    let http = ReplayClient::new(vec![Canned::json(
        400,
        "req-missing",
        r#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"Requested resource not found"}"#,
    )]);
    let client = dynamodb(http.clone(), ENDPOINT);
    let segment = recorder.segment("app").begin();
    let out = client
        .get_item()
        .table_name("missing")
        .key("id", AttributeValue::S("1".into()))
        .send()
        .in_context(segment.context())
        .await;
    assert!(out.is_err());
    segment.end();
    let all = entities(&capture, &recorder, 1);
    let (_, _, sub) = named(&all, "DynamoDB")[0];
    assert_eq!(sub["error"], true, "{sub}");
    assert!(sub.get("fault").is_none(), "{sub}");
    assert!(sub.get("throttle").is_none(), "{sub}");
    assert_eq!(sub["http"]["response"]["status"], 400);
    assert_eq!(sub["aws"]["retries"], 0, "{sub}");
    let ex = &sub["cause"]["exceptions"][0];
    assert_eq!(ex["type"], "ResourceNotFoundException");
    assert_eq!(ex["message"], "Requested resource not found");
    assert_eq!(ex["remote"], true);
    // The segment that made the call is not marked either.
    let (_, _, seg) = named(&all, "app")[0];
    assert!(
        seg.get("fault").is_none() && seg.get("error").is_none(),
        "{seg}"
    );
}

/// Outside a segment, even the `RUNTIME_ERROR` strategy lets the AWS call through (reported,
/// untraced): failing a call the application depends on is worse than a missing subsegment.
#[tokio::test]
async fn a_runtime_error_strategy_does_not_fail_calls_outside_a_segment() {
    for strategy in [ContextMissing::RuntimeError, ContextMissing::IgnoreError] {
        let http = ReplayClient::new(vec![Canned::json(200, "r", GET_OK)]);
        let sdk = common::sdk_config(
            aws_smithy_runtime_api::client::http::SharedHttpClient::new(http.clone()),
            ENDPOINT,
        );
        let client = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk)
                .interceptor(XRayInterceptor::new().context_missing(strategy))
                .build(),
        );
        let out = client
            .get_item()
            .table_name("users")
            .key("id", AttributeValue::S("1".into()))
            .send()
            .await;
        assert!(out.is_ok(), "{strategy:?}: {out:?}");
        assert_eq!(header(&http.requests()[0], "x-amzn-trace-id"), None);
    }
}

#[tokio::test]
async fn unsampled_traces_propagate_the_decision_only() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("app");
    let http = ReplayClient::new(vec![Canned::json(200, "r", GET_OK)]);
    let client = dynamodb(http.clone(), ENDPOINT);
    let segment = recorder.segment("app").sampled(false).begin();
    client
        .get_item()
        .table_name("users")
        .key("id", AttributeValue::S("1".into()))
        .send()
        .in_context(segment.context())
        .await
        .unwrap();
    let trace = segment.trace_id().to_string();
    segment.end();
    let h = header(&http.requests()[0], "x-amzn-trace-id")
        .unwrap()
        .to_owned();
    assert!(h.starts_with(&format!("Root={trace};Parent=")), "{h}");
    assert!(h.ends_with(";Sampled=0"), "{h}");
    recorder.flush(Duration::from_secs(5)).unwrap();
    assert!(capture.drain(Duration::from_millis(200)).is_empty());
}

#[tokio::test]
async fn large_bodies_are_read_during_the_call() {
    // Past the size up to which bodies are kept for the emitter: the parameters are read
    // while the call runs, with the same result.
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("app");
    let big = "x".repeat(100 * 1024);
    let response = format!(
        r#"{{"ConsumedCapacity":{{"TableName":"users","CapacityUnits":1.0}},"Attributes":{{"blob":{{"S":"{big}"}}}}}}"#
    );
    let http = ReplayClient::new(vec![Canned::json(200, "req-big", &response)]);
    let client = dynamodb(http, ENDPOINT);
    let segment = recorder.segment("app").begin();
    client
        .put_item()
        .table_name("users")
        .item("id", AttributeValue::S("1".into()))
        .item("blob", AttributeValue::S(big))
        .send()
        .in_context(segment.context())
        .await
        .unwrap();
    segment.end();
    let all = entities(&capture, &recorder, 1);
    let subs = named(&all, "DynamoDB");
    assert_eq!(subs.len(), 1, "{all:#?}");
    let aws = &subs[0].2["aws"];
    assert_eq!(aws["operation"], "PutItem");
    assert_eq!(aws["table_name"], "users");
    assert_eq!(aws["request_id"], "req-big");
    assert_eq!(
        aws["consumed_capacity"],
        json!({"TableName":"users","CapacityUnits":1.0})
    );
}

/// An HTTP client whose responses never come.
#[derive(Debug, Clone)]
struct Hanging;

impl aws_smithy_runtime_api::client::http::HttpConnector for Hanging {
    fn call(
        &self,
        _request: aws_smithy_runtime_api::client::orchestrator::HttpRequest,
    ) -> aws_smithy_runtime_api::client::http::HttpConnectorFuture {
        aws_smithy_runtime_api::client::http::HttpConnectorFuture::new(std::future::pending())
    }
}

impl aws_smithy_runtime_api::client::http::HttpClient for Hanging {
    fn http_connector(
        &self,
        _settings: &aws_smithy_runtime_api::client::http::HttpConnectorSettings,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
    ) -> aws_smithy_runtime_api::client::http::SharedHttpConnector {
        aws_smithy_runtime_api::client::http::SharedHttpConnector::new(self.clone())
    }
}

#[tokio::test]
async fn a_cancelled_call_still_records_what_it_was() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture.recorder("app");
    let client = dynamodb(Hanging, ENDPOINT);
    let segment = recorder.segment("app").begin();
    let call = client
        .get_item()
        .table_name("users")
        .key("id", AttributeValue::S("1".into()))
        .send()
        .in_context(segment.context());
    let out = tokio::time::timeout(Duration::from_millis(100), call).await;
    assert!(out.is_err(), "the call cannot complete");
    segment.end();
    let all = entities(&capture, &recorder, 1);
    let subs = named(&all, "DynamoDB");
    assert_eq!(subs.len(), 1, "{all:#?}");
    let sub = &subs[0].2;
    assert_eq!(sub["aws"]["operation"], "GetItem");
    assert_eq!(sub["aws"]["region"], "us-west-2");
    assert_eq!(sub["aws"]["table_name"], "users");
    assert!(
        sub.get("in_progress").is_none(),
        "ended when dropped: {sub}"
    );
}
