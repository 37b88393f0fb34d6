//! The mapping, end to end: a recorder with the OTLP exporter sends to a real OTLP/HTTP
//! receiver on 127.0.0.1, which decodes with the generated types; every row of the mapping
//! (docs/ARCHITECTURE.md) is checked, in protobuf and JSON, with and without gzip. The same
//! recording sent as UDP segment documents is then compared with what X-Ray's converter
//! reads back from the spans: flags, annotations, metadata, user and cause.

#![allow(clippy::unwrap_used)]

mod otlp_support;

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use otlp_support::{Receiver, attr, hex, int, list, resources_of, s};
use serde_json::{Value as Json, json};
use xray_sdk::config::TracesExporter;
use xray_sdk::model::Sql;
use xray_sdk::otlp::{OtlpCompression, OtlpProtocol, OtlpSettings};
use xray_sdk::plugins::Plugins;
use xray_sdk::sampling::AlwaysSample;
use xray_sdk::testing::UdpCapture;
use xray_sdk::{Exception, HttpRequest, Namespace, Record, Recorder, RecorderBuilder, TraceHeader};

const INCOMING: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

#[derive(Debug)]
struct Outer(std::io::Error);

impl std::fmt::Display for Outer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("checkout failed")
    }
}

impl std::error::Error for Outer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

fn builder() -> RecorderBuilder {
    Recorder::builder()
        .ignore_env()
        .service_name("shop")
        .service_version("2.0.1")
        .sampler(AlwaysSample)
        .centralized_sampling(false)
        .plugins(Plugins::none())
}

/// The recording: a segment and one subsegment per row of the mapping.
fn record(recorder: &Recorder) {
    let seg = recorder
        .segment("shop")
        .header(&TraceHeader::parse(INCOMING))
        .begin();
    seg.set_http_request(HttpRequest {
        method: Some("POST".into()),
        url: Some("https://shop.example.com/cart?x=1".into()),
        user_agent: Some("curl/8.5".into()),
        client_ip: Some("203.0.113.7".into()),
        x_forwarded_for: true,
        traced: false,
    });
    seg.annotate("tier", "gold");
    seg.annotate("items", 3);
    seg.annotate("ratio", 0.5);
    seg.annotate("vip", true);
    seg.put_metadata("note", "first order");
    seg.put_metadata_in("debug", "cart", json!({"lines": [1, 2]}));
    seg.set_user("alice");

    let ddb = seg.begin_subsegment("DynamoDB");
    ddb.set_namespace(Namespace::Aws);
    ddb.set_aws_operation("GetItem");
    ddb.set_aws_region("eu-west-1");
    ddb.set_aws_table_name("orders");
    ddb.set_aws_request_id("V4KL2QAGFH8IL1L7S5N2S8HUGRVV4KQNSO5AEMVJF66Q9ASUAAJG");
    ddb.set_aws_retries(2);
    ddb.set_aws_field("consistent_read", true);
    ddb.set_http_response(200, Some(88));
    ddb.end();

    let throttled = seg.begin_subsegment("SQS");
    throttled.set_namespace(Namespace::Aws);
    throttled.set_aws_operation("SendMessage");
    throttled.set_aws_queue_url("https://sqs.eu-west-1.amazonaws.com/1/q");
    throttled.set_http_response(429, None);
    throttled.add_exception(Exception::new("Rate exceeded", "ThrottlingException").remote(true));
    throttled.end();

    let inventory = seg.begin_subsegment("inventory");
    inventory.set_namespace(Namespace::Remote);
    inventory.set_http_request(HttpRequest {
        method: Some("GET".into()),
        url: Some("http://inventory:8080/items/7".into()),
        traced: true,
        ..Default::default()
    });
    inventory.set_http_response(503, Some(0));
    inventory.end();

    let missing = seg.begin_subsegment("catalog");
    missing.set_namespace(Namespace::Remote);
    missing.set_http_request(HttpRequest {
        method: Some("GET".into()),
        url: Some("http://catalog/items/0".into()),
        ..Default::default()
    });
    missing.set_http_response(404, None);
    missing.end();

    let grpc = seg.begin_subsegment("pricing");
    grpc.set_namespace(Namespace::Remote);
    grpc.set_http_response(200, None);
    grpc.set_fault();
    grpc.add_exception(Exception::new("connection refused", "UNAVAILABLE").remote(true));
    grpc.end();

    let compute = seg.begin_subsegment("compute");
    compute.record_error(&Outer(std::io::Error::other("disk full")));
    compute.end();

    let db = seg.begin_subsegment("orders-db");
    db.set_namespace(Namespace::Remote);
    db.set_sql(Sql {
        database_type: Some("PostgreSQL".into()),
        sanitized_query: Some("SELECT * FROM orders WHERE id = $1".into()),
        user: Some("app".into()),
        connection_string: Some("postgresql://db:5432/shop".into()),
        ..Default::default()
    });
    db.end();

    seg.set_http_response(200, Some(512));
    seg.end();
}

fn otlp(protocol: OtlpProtocol, compression: OtlpCompression) -> (Receiver, Vec<Span>) {
    let receiver = Receiver::start(vec![]);
    let recorder = builder()
        .exporter(TracesExporter::Otlp)
        .otlp(
            OtlpSettings::new()
                .endpoint(receiver.url())
                .protocol(protocol)
                .compression(compression)
                .resource_attribute("deployment.environment.name", "test"),
        )
        .build()
        .unwrap();
    record(&recorder);
    recorder.flush(Duration::from_secs(10)).unwrap();
    let stats = recorder.stats();
    assert_eq!(stats.spans_exported, 8, "{stats:?}");
    assert_eq!(stats.sent, 1);
    assert_eq!(stats.spans_dropped, 0);
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.path, "/v1/traces");
    let (ct, enc) = match protocol {
        OtlpProtocol::HttpProtobuf => ("application/x-protobuf", None),
        _ => ("application/json", None),
    };
    assert_eq!(r.header("content-type"), Some(ct));
    let gz = compression == OtlpCompression::Gzip;
    assert_eq!(
        r.header("content-encoding"),
        if gz { Some("gzip") } else { enc }
    );
    if gz {
        assert_eq!(&r.raw[..2], b"\x1f\x8b", "gzip magic");
    }
    if protocol == OtlpProtocol::HttpJson && !gz {
        let text = String::from_utf8(r.raw.clone()).unwrap();
        // OTLP/JSON form: lowerCamelCase, hex IDs, 64-bit integers as strings.
        assert!(text.contains("\"traceId\":\"5759e988bd862e3fe1be46a994272793\""));
        assert!(text.contains("\"parentSpanId\":\"53995c3f42cd8ad8\""));
        assert!(text.contains("\"startTimeUnixNano\":\""));
        assert!(text.contains("\"resourceSpans\""));
    }
    assert!(
        r.header("user-agent")
            .unwrap()
            .starts_with("xray-sdk-rust-otlp/")
    );
    let resources = resources_of(&r.request);
    assert_eq!(resources.len(), 1);
    let res = &resources[0].attributes;
    assert_eq!(s(res, "service.name"), Some("shop"));
    assert_eq!(s(res, "service.version"), Some("2.0.1"));
    assert_eq!(s(res, "telemetry.sdk.language"), Some("rust"));
    assert_eq!(s(res, "deployment.environment.name"), Some("test"));
    let spans = r.spans();
    (receiver, spans)
}

fn by_name<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    spans.iter().find(|s| s.name == name).unwrap()
}

fn check_rows(spans: &[Span]) {
    assert_eq!(spans.len(), 8);
    let seg = by_name(spans, "shop");
    // Trace ID = the 32 hex digits; parent = the incoming Parent; span ID = entity ID.
    for span in spans {
        assert_eq!(hex(&span.trace_id), "5759e988bd862e3fe1be46a994272793");
        assert_eq!(span.span_id.len(), 8);
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
        if span.name != "shop" {
            assert_eq!(span.parent_span_id, seg.span_id, "{}", span.name);
        }
    }
    assert_eq!(hex(&seg.parent_span_id), "53995c3f42cd8ad8");
    // Kinds.
    assert_eq!(seg.kind, SpanKind::Server as i32);
    for name in [
        "DynamoDB",
        "SQS",
        "inventory",
        "catalog",
        "pricing",
        "orders-db",
    ] {
        assert_eq!(by_name(spans, name).kind, SpanKind::Client as i32, "{name}");
    }
    assert_eq!(by_name(spans, "compute").kind, SpanKind::Internal as i32);
    // HTTP.
    let a = &seg.attributes;
    assert_eq!(s(a, "http.request.method"), Some("POST"));
    assert_eq!(s(a, "url.full"), Some("https://shop.example.com/cart?x=1"));
    assert_eq!(s(a, "user_agent.original"), Some("curl/8.5"));
    assert_eq!(s(a, "client.address"), Some("203.0.113.7"));
    assert_eq!(attr(a, "network.peer.address"), None, "x_forwarded_for");
    assert_eq!(int(a, "http.response.status_code"), Some(200));
    assert_eq!(int(a, "http.response.body.size"), Some(512));
    assert_eq!(s(a, "enduser.id"), Some("alice"));
    // Annotations, listed for indexing.
    assert_eq!(s(a, "tier"), Some("gold"));
    assert_eq!(int(a, "items"), Some(3));
    assert_eq!(
        list(a, "aws.xray.annotations").unwrap(),
        ["tier", "items", "ratio", "vip"]
    );
    // Metadata, one JSON attribute per namespace.
    let meta = |k: &str| serde_json::from_str::<Json>(s(a, k).unwrap()).unwrap();
    assert_eq!(
        meta("aws.xray.metadata.default"),
        json!({"note": "first order"})
    );
    assert_eq!(
        meta("aws.xray.metadata.debug"),
        json!({"cart": {"lines": [1, 2]}})
    );
    // AWS calls.
    let d = &by_name(spans, "DynamoDB").attributes;
    assert_eq!(s(d, "rpc.system"), Some("aws-api"));
    assert_eq!(s(d, "rpc.service"), Some("DynamoDB"));
    assert_eq!(s(d, "rpc.method"), Some("GetItem"));
    assert_eq!(s(d, "cloud.region"), Some("eu-west-1"));
    assert_eq!(s(d, "aws.region"), Some("eu-west-1"));
    assert_eq!(list(d, "aws.dynamodb.table_names").unwrap(), ["orders"]);
    assert_eq!(
        s(d, "aws.request_id"),
        Some("V4KL2QAGFH8IL1L7S5N2S8HUGRVV4KQNSO5AEMVJF66Q9ASUAAJG")
    );
    assert_eq!(int(d, "aws.xray.retries"), Some(2));
    assert!(matches!(
        attr(d, "aws.consistent_read"),
        Some(opentelemetry_proto::tonic::common::v1::any_value::Value::BoolValue(true))
    ));
    let q = &by_name(spans, "SQS").attributes;
    assert_eq!(
        s(q, "aws.queue_url"),
        Some("https://sqs.eu-west-1.amazonaws.com/1/q")
    );
    // Remote HTTP call.
    let i = &by_name(spans, "inventory").attributes;
    assert_eq!(s(i, "url.full"), Some("http://inventory:8080/items/7"));
    assert_eq!(s(i, "http.request.method"), Some("GET"));
    assert_eq!(int(i, "http.response.status_code"), Some(503));
    assert!(matches!(
        attr(i, "aws.xray.traced"),
        Some(opentelemetry_proto::tonic::common::v1::any_value::Value::BoolValue(true))
    ));
    // SQL.
    let db = &by_name(spans, "orders-db").attributes;
    assert_eq!(s(db, "db.system"), Some("postgresql"));
    assert_eq!(
        s(db, "db.statement"),
        Some("SELECT * FROM orders WHERE id = $1")
    );
    assert_eq!(s(db, "db.user"), Some("app"));
    assert_eq!(
        s(db, "db.connection_string"),
        Some("postgresql://db:5432/shop")
    );
    // Causes: exception events.
    let compute = by_name(spans, "compute");
    assert_eq!(compute.events.len(), 2);
    let e0 = &compute.events[0].attributes;
    assert_eq!(compute.events[0].name, "exception");
    assert_eq!(s(e0, "exception.type"), Some("Outer"));
    assert_eq!(s(e0, "exception.message"), Some("checkout failed"));
    assert_eq!(
        s(&compute.events[1].attributes, "exception.message"),
        Some("disk full")
    );
    assert_eq!(
        s(e0, "aws.xray.exception.cause"),
        s(&compute.events[1].attributes, "aws.xray.exception.id")
    );
    assert_eq!(
        compute.status.as_ref().unwrap().code,
        StatusCode::Error as i32
    );
}

#[test]
fn every_row_in_protobuf() {
    let (_r, spans) = otlp(OtlpProtocol::HttpProtobuf, OtlpCompression::None);
    check_rows(&spans);
}

#[test]
fn every_row_in_json() {
    let (_r, spans) = otlp(OtlpProtocol::HttpJson, OtlpCompression::None);
    check_rows(&spans);
}

#[test]
fn every_row_in_gzipped_protobuf_and_json() {
    let (_r, spans) = otlp(OtlpProtocol::HttpProtobuf, OtlpCompression::Gzip);
    check_rows(&spans);
    let (_r, spans) = otlp(OtlpProtocol::HttpJson, OtlpCompression::Gzip);
    check_rows(&spans);
}

/// What X-Ray's converter (the collector's `awsxray` translator) reads back from a span:
/// flags from the status code first and the span status second, annotations listed in
/// `aws.xray.annotations`, metadata namespaces, the user, and one exception per
/// `exception` event (or one from the status message when there is none and the status is
/// an error).
fn converted(span: &Span) -> Json {
    let a = &span.attributes;
    let error_status = span
        .status
        .as_ref()
        .is_some_and(|s| s.code == StatusCode::Error as i32);
    let (error, throttle, fault) = match int(a, "http.response.status_code") {
        Some(c @ 400..=499) => (true, c == 429, false),
        Some(500..=599) => (false, false, true),
        _ => (false, false, error_status),
    };
    let mut annotations = BTreeMap::new();
    for key in list(a, "aws.xray.annotations").unwrap_or_default() {
        let v = match attr(a, &key).unwrap() {
            opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s) => json!(s),
            opentelemetry_proto::tonic::common::v1::any_value::Value::IntValue(i) => json!(i),
            opentelemetry_proto::tonic::common::v1::any_value::Value::DoubleValue(f) => json!(f),
            opentelemetry_proto::tonic::common::v1::any_value::Value::BoolValue(b) => json!(b),
            other => panic!("annotation value {other:?}"),
        };
        annotations.insert(key, v);
    }
    let mut metadata = BTreeMap::new();
    for kv in a {
        if let Some(ns) = kv.key.strip_prefix("aws.xray.metadata.") {
            metadata.insert(
                ns.to_owned(),
                serde_json::from_str::<Json>(s(a, &kv.key).unwrap()).unwrap(),
            );
        }
    }
    let mut cause: Vec<Json> = span
        .events
        .iter()
        .filter(|e| e.name == "exception")
        .map(|e| {
            json!([
                s(&e.attributes, "exception.type"),
                s(&e.attributes, "exception.message")
            ])
        })
        .collect();
    if cause.is_empty() && error_status {
        cause.push(json!([null, span.status.as_ref().unwrap().message]));
    }
    json!({
        "error": error, "throttle": throttle, "fault": fault,
        "annotations": annotations, "metadata": metadata,
        "user": s(a, "enduser.id"), "cause": cause,
    })
}

/// The same fields of a segment document (or embedded subsegment).
fn from_document(doc: &Json) -> Json {
    let flag = |k: &str| doc.get(k).and_then(Json::as_bool).unwrap_or(false);
    let annotations: BTreeMap<String, Json> = doc
        .get("annotations")
        .and_then(Json::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let metadata: BTreeMap<String, Json> = doc
        .get("metadata")
        .and_then(Json::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let cause: Vec<Json> = doc
        .pointer("/cause/exceptions")
        .and_then(Json::as_array)
        .map(|xs| {
            xs.iter()
                .map(|x| json!([x.get("type"), x.get("message")]))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "error": flag("error"), "throttle": flag("throttle"), "fault": flag("fault"),
        "annotations": annotations, "metadata": metadata,
        "user": doc.get("user"), "cause": cause,
    })
}

#[test]
fn the_converted_spans_show_what_the_udp_documents_show() {
    let capture = UdpCapture::start().unwrap();
    let udp = builder()
        .daemon_address(capture.daemon_address())
        .build()
        .unwrap();
    record(&udp);
    udp.flush(Duration::from_secs(5)).unwrap();
    let docs = capture.documents(1, Duration::from_secs(5));
    assert_eq!(docs.len(), 1);
    let seg = &docs[0];
    let mut expected = BTreeMap::new();
    expected.insert("shop".to_owned(), from_document(seg));
    for sub in seg["subsegments"].as_array().unwrap() {
        expected.insert(sub["name"].as_str().unwrap().to_owned(), from_document(sub));
    }

    // The recording has every flag, annotations, metadata, a user and causes to compare.
    assert_eq!(expected["SQS"]["throttle"], true);
    assert_eq!(expected["SQS"]["error"], true);
    assert_eq!(expected["inventory"]["fault"], true);
    assert_eq!(expected["catalog"]["error"], true);
    assert_eq!(expected["pricing"]["fault"], true);
    assert_eq!(expected["compute"]["cause"].as_array().unwrap().len(), 2);
    assert_eq!(
        expected["shop"]["annotations"].as_object().unwrap().len(),
        4
    );
    assert_eq!(expected["shop"]["metadata"].as_object().unwrap().len(), 2);
    assert_eq!(expected["shop"]["user"], "alice");

    let (_r, spans) = otlp(OtlpProtocol::HttpProtobuf, OtlpCompression::None);
    let got: BTreeMap<String, Json> = spans
        .iter()
        .map(|s| (s.name.clone(), converted(s)))
        .collect();
    assert_eq!(got.len(), expected.len());
    for (name, doc) in &expected {
        assert_eq!(&got[name], doc, "{name}");
    }
}
