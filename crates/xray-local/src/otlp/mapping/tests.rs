//! Edge cases of the mapping; every row is also checked over HTTP in
//! `tests/otlp_mapping.rs`.

use super::*;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};

const NOW: f64 = 1_700_000_000.0;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..KeyValue::default()
    }
}

fn span(kind: SpanKind, parent: bool, attributes: Vec<KeyValue>) -> Span {
    Span {
        trace_id: (1..=16).collect(),
        span_id: vec![9; 8],
        parent_span_id: if parent { vec![7; 8] } else { vec![] },
        name: "op".into(),
        kind: kind as i32,
        start_time_unix_nano: (NOW as u64) * 1_000_000_000,
        end_time_unix_nano: (NOW as u64 + 1) * 1_000_000_000,
        attributes,
        ..Span::default()
    }
}

fn one(s: &Span) -> Json {
    let mut docs = span_documents(&[], s, NOW).expect("converts");
    assert_eq!(docs.len(), 1);
    docs.remove(0)
}

#[test]
fn ids_and_rejections() {
    let ok = span(SpanKind::Server, false, vec![]);
    assert_eq!(one(&ok)["trace_id"], "1-01020304-05060708090a0b0c0d0e0f10");
    let mut bad = ok.clone();
    bad.trace_id = vec![0; 16];
    assert_eq!(
        span_documents(&[], &bad, NOW).map_err(|r| r.reason),
        Err(SpanReject::InvalidTraceId)
    );
    let mut bad = ok.clone();
    bad.span_id = vec![1; 7];
    assert_eq!(
        span_documents(&[], &bad, NOW).map_err(|r| r.reason),
        Err(SpanReject::InvalidSpanId)
    );
    let mut bad = ok.clone();
    bad.parent_span_id = vec![1; 3];
    assert_eq!(
        span_documents(&[], &bad, NOW).map_err(|r| r.reason),
        Err(SpanReject::InvalidParentSpanId)
    );
    for secs in [NOW - 15.0 * 86_400.0, NOW + 3.0 * 3_600.0, 0.0] {
        let mut bad = ok.clone();
        bad.start_time_unix_nano = (secs * 1e9) as u64;
        assert_eq!(
            span_documents(&[], &bad, NOW).map_err(|r| r.reason),
            Err(SpanReject::OutOfTimeRange)
        );
    }
    // An all-zero parent is no parent.
    let mut root = span(SpanKind::Internal, false, vec![]);
    root.parent_span_id = vec![0; 8];
    assert!(one(&root).get("parent_id").is_none());
}

#[test]
fn names() {
    assert_eq!(fix_name("GET /a?b=<c>"), "GET /a?b=c".replace('?', ""));
    assert_eq!(fix_name("<>"), "span");
    assert_eq!(fix_name(&"x".repeat(300)).len(), 200);
    assert_eq!(
        connection_host("jdbc:mysql://db.example.com:3306/app"),
        Some("db.example.com")
    );
    assert_eq!(
        connection_host("postgresql://u:p@[::1]:5432/x"),
        Some("::1")
    );
    assert_eq!(connection_host("nonsense"), None);
    let s = span(
        SpanKind::Client,
        true,
        vec![
            kv("db.name", "orders"),
            kv("db.connection_string", "jdbc:postgresql://pg.local:5432"),
        ],
    );
    assert_eq!(one(&s)["name"], "orders@pg.local");
    let s = span(
        SpanKind::Client,
        true,
        vec![
            kv("rpc.system", "aws-api"),
            kv("aws.remote.service", "AWS::DynamoDB"),
        ],
    );
    assert_eq!(one(&s)["name"], "DynamoDB");
    assert_eq!(one(&s)["namespace"], "aws");
}

#[test]
fn local_root_client_becomes_two_documents() {
    let s = span(
        SpanKind::Client,
        false,
        vec![
            kv("aws.span.kind", "LOCAL_ROOT"),
            kv("aws.local.service", "worker"),
            kv("aws.remote.service", "inventory"),
            kv("http.method", "GET"),
            kv("custom", "x"),
        ],
    );
    let docs = span_documents(&[kv("service.name", "svc")], &s, NOW).expect("converts");
    assert_eq!(docs.len(), 2);
    let (service, call) = (&docs[0], &docs[1]);
    assert_eq!(service["name"], "worker");
    assert!(service.get("http").is_none() && service.get("type").is_none());
    assert_eq!(
        service["metadata"]["default"],
        serde_json::json!({"otel.resource.service.name": "svc"})
    );
    assert_eq!(call["name"], "inventory");
    assert_eq!(call["type"], "subsegment");
    assert_eq!(call["namespace"], "remote");
    assert_eq!(call["parent_id"], service["id"]);
    assert_eq!(call["id"], "0909090909090909");
    assert_eq!(call["metadata"]["default"]["custom"], "x");
    assert_ne!(service["id"], call["id"]);
}

#[test]
fn derived_ids_are_stable_and_distinct() {
    assert_eq!(derived_id(&[1; 8], 1), derived_id(&[1; 8], 1));
    assert_ne!(derived_id(&[1; 8], 1), derived_id(&[1; 8], 2));
    assert_eq!(derived_id(&[], 0).len(), 16);
}
