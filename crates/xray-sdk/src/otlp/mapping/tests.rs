#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span};
use prost::Message as _;

use super::*;
use crate::deferred::DeferredFields;
use crate::record::{Patch, Record};
use crate::trace::{Origin, Trace};

#[derive(Debug)]
struct Consumed;

impl DeferredFields for Consumed {
    fn aws(&self, out: &mut AwsFieldWriter<'_>) {
        out.value(
            "consumed_capacity",
            &serde_json::json!({"CapacityUnits": 0.5}),
        );
        out.str("table_name", "ignored: the typed field wins");
        out.str("operation", "ignored too");
    }
}

/// The spans of `batch` as the generated types decode them, and its `origin`.
fn spans_of(batch: &Batch, service_name: &str) -> (Vec<Span>, Option<String>) {
    let mut out = SpanList::default();
    let origin = Mapper::default()
        .map(batch, service_name, &mut out)
        .origin
        .map(str::to_owned);
    let spans = ScopeSpans::decode(out.bytes()).unwrap().spans;
    assert_eq!(spans.len(), out.len());
    (spans, origin)
}

fn text(s: &str) -> Value {
    Value::StringValue(s.to_owned())
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn s<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    match attr(span, key) {
        Some(Value::StringValue(s)) => Some(s),
        _ => None,
    }
}

fn int(span: &Span, key: &str) -> Option<i64> {
    match attr(span, key) {
        Some(Value::IntValue(i)) => Some(*i),
        _ => None,
    }
}

/// A segment with an `aws` call, an HTTP call and a local step with `sql`.
fn batch() -> (Batch, EntityId) {
    let parent = EntityId::new();
    let origin = Origin {
        trace_id: TraceId::new(),
        segment_id: EntityId::new(),
        parent_id: Some(parent),
        carried: None,
        traceparent: false,
        rule_name: Some(Arc::from("api-rule")),
        facade: false,
    };
    let seg = origin.segment_id;
    let mut p = Patch::new();
    p.set_http_method("POST");
    p.set_http_url("https://shop.example.com/cart");
    p.set_http_user_agent("curl/8");
    p.set_http_client_ip("203.0.113.7", true);
    p.annotate("tier", "gold");
    p.annotate("items", 3);
    p.put_metadata_in("debug", "cart", serde_json::json!({"n": 3}));
    p.put_metadata("note", "x");
    p.set_user("alice");
    let trace = p.apply(|c| Trace::new(origin, Some("shop"), 1_000_000, c));

    let mut call = Patch::new();
    call.set_namespace(Namespace::Aws);
    call.set_aws_operation("GetItem");
    call.set_aws_region("eu-west-1");
    call.set_aws_table_name("orders");
    call.set_aws_request_id("REQ1");
    call.set_aws_retries(1);
    call.set_aws_field("item_count", 2);
    call.add_deferred_fields(Box::new(Consumed));
    call.set_http_response(429, None);
    call.set_throttle();
    call.add_exception(Exception::new("slow down", "ThrottlingException").remote(true));
    let id = EntityId::new();
    let i = call
        .apply(|c| trace.begin(0, seg, id, "DynamoDB", 1_000_010, c))
        .unwrap();
    let _ = Patch::new().apply(|c| trace.end(i, id, 1_000_500, c, u32::MAX));

    let mut http = Patch::new();
    http.set_namespace(Namespace::Remote);
    http.set_http_method("GET");
    http.set_http_url("http://inventory:8080/items");
    http.set_http_response(503, Some(12));
    let id = EntityId::new();
    let i = http
        .apply(|c| trace.begin(0, seg, id, "inventory", 1_000_600, c))
        .unwrap();
    let _ = Patch::new().apply(|c| trace.end(i, id, 1_000_700, c, u32::MAX));

    let mut local = Patch::new();
    local.set_sql(Sql {
        database_type: Some("PostgreSQL".into()),
        sanitized_query: Some("SELECT 1".into()),
        user: Some("app".into()),
        ..Default::default()
    });
    local.set_fault();
    let id = EntityId::new();
    let i = local
        .apply(|c| trace.begin(0, seg, id, "compute", 1_000_800, c))
        .unwrap();
    let _ = Patch::new().apply(|c| trace.end(i, id, 1_000_900, c, u32::MAX));

    let mut last = Patch::new();
    last.set_http_response(200, Some(512));
    let batch = last
        .apply(|c| trace.end(0, seg, 1_001_000, c, u32::MAX))
        .unwrap();
    (batch, parent)
}

#[test]
fn every_entity_becomes_a_span_with_its_fields() {
    let (batch, parent) = batch();
    let (spans, origin) = spans_of(&batch, "shop");
    assert!(origin.is_none());
    assert_eq!(spans.len(), 4);
    let [seg, call, http, local] = &spans[..] else {
        unreachable!()
    };
    let trace_hex: String = trace_id_bytes(&batch.trace_id)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let id = batch.trace_id.to_bytes();
    assert_eq!(
        trace_hex,
        format!(
            "{}{}",
            std::str::from_utf8(&id[2..10]).unwrap(),
            std::str::from_utf8(&id[11..]).unwrap()
        )
    );

    // The segment: SERVER, the incoming parent, HTTP conventions, annotations, metadata.
    assert_eq!(seg.kind, SpanKind::Server as i32);
    assert_eq!(seg.parent_span_id, span_id_bytes(parent).to_vec());
    assert_eq!(
        seg.flags,
        FLAGS_SAMPLED | FLAGS_HAS_IS_REMOTE | FLAGS_IS_REMOTE
    );
    assert_eq!(seg.name, "shop");
    assert_eq!(attr(seg, "aws.local.service"), None);
    assert_eq!(seg.start_time_unix_nano, 1_000_000_000);
    assert_eq!(seg.end_time_unix_nano, 1_001_000_000);
    assert_eq!(s(seg, "http.request.method"), Some("POST"));
    assert_eq!(s(seg, "url.full"), Some("https://shop.example.com/cart"));
    assert_eq!(s(seg, "user_agent.original"), Some("curl/8"));
    assert_eq!(s(seg, "client.address"), Some("203.0.113.7"));
    assert_eq!(attr(seg, "network.peer.address"), None);
    assert_eq!(int(seg, "http.response.status_code"), Some(200));
    assert_eq!(int(seg, "http.response.body.size"), Some(512));
    assert_eq!(s(seg, "enduser.id"), Some("alice"));
    assert_eq!(s(seg, "aws.xray.sampling_rule_name"), Some("api-rule"));
    assert_eq!(s(seg, "tier"), Some("gold"));
    assert_eq!(int(seg, "items"), Some(3));
    let Some(Value::ArrayValue(keys)) = attr(seg, ANNOTATIONS) else {
        panic!("no annotation list");
    };
    let keys: Vec<_> = keys
        .values
        .iter()
        .filter_map(|v| match &v.value {
            Some(Value::StringValue(s)) => Some(s.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(keys, ["tier", "items"]);
    let debug: serde_json::Value =
        serde_json::from_str(s(seg, "aws.xray.metadata.debug").unwrap()).unwrap();
    assert_eq!(debug, serde_json::json!({"cart": {"n": 3}}));
    let default: serde_json::Value =
        serde_json::from_str(s(seg, "aws.xray.metadata.default").unwrap()).unwrap();
    assert_eq!(default, serde_json::json!({"note": "x"}));
    assert!(seg.status.is_none());

    // The AWS call: CLIENT, aws-api conventions, typed fields win over deferred ones.
    assert_eq!(call.kind, SpanKind::Client as i32);
    assert_eq!(call.parent_span_id, seg.span_id);
    assert_eq!(call.flags, FLAGS_SAMPLED | FLAGS_HAS_IS_REMOTE);
    assert_eq!(s(call, "rpc.system"), Some("aws-api"));
    assert_eq!(s(call, "rpc.service"), Some("DynamoDB"));
    assert_eq!(s(call, "rpc.method"), Some("GetItem"));
    assert_eq!(s(call, "cloud.region"), Some("eu-west-1"));
    assert_eq!(s(call, "aws.region"), Some("eu-west-1"));
    assert_eq!(s(call, "aws.request_id"), Some("REQ1"));
    assert_eq!(int(call, "aws.xray.retries"), Some(1));
    assert_eq!(int(call, "aws.item_count"), Some(2));
    let Some(Value::ArrayValue(tables)) = attr(call, "aws.dynamodb.table_names") else {
        panic!("no table names");
    };
    assert_eq!(tables.values.len(), 1);
    assert_eq!(
        call.attributes
            .iter()
            .filter(|a| a.key == "aws.dynamodb.table_names" || a.key == "rpc.method")
            .count(),
        2
    );
    assert!(matches!(
        attr(call, "aws.consumed_capacity"),
        Some(Value::KvlistValue(_))
    ));
    assert_eq!(int(call, "http.response.status_code"), Some(429));
    let [event] = &call.events[..] else {
        panic!("one exception event")
    };
    assert_eq!(event.name, "exception");
    assert_eq!(event.time_unix_nano, call.end_time_unix_nano);
    let ev = |k: &str| {
        event
            .attributes
            .iter()
            .find(|a| a.key == k)
            .and_then(|a| a.value.as_ref())
            .and_then(|v| v.value.clone())
    };
    assert_eq!(ev("exception.type"), Some(text("ThrottlingException")));
    assert_eq!(ev("exception.message"), Some(text("slow down")));
    assert_eq!(
        ev("aws.xray.exception.remote"),
        Some(Value::BoolValue(true))
    );
    // Throttled (error) with a 429 and its cause: an error status on the client span.
    assert_eq!(call.status.as_ref().unwrap().code, StatusCode::Error as i32);

    // The HTTP call: CLIENT, the 503 alone carries the fault (no invented cause).
    assert_eq!(http.kind, SpanKind::Client as i32);
    assert_eq!(s(http, "url.full"), Some("http://inventory:8080/items"));
    assert_eq!(attr(http, "rpc.system"), None);
    assert!(http.status.is_none());

    // The local step: INTERNAL, sql under the database conventions, fault as an error.
    assert_eq!(local.kind, SpanKind::Internal as i32);
    assert_eq!(s(local, "db.system"), Some("postgresql"));
    assert_eq!(s(local, "db.statement"), Some("SELECT 1"));
    assert_eq!(s(local, "db.user"), Some("app"));
    assert_eq!(
        local.status.as_ref().unwrap().code,
        StatusCode::Error as i32
    );
}

#[test]
fn a_segment_named_apart_from_the_service_says_so() {
    let (batch, _) = batch();
    let (spans, _) = spans_of(&batch, "other-service");
    assert_eq!(s(&spans[0], "aws.local.service"), Some("shop"));
}

#[test]
fn status_follows_the_converters_reading_of_flags() {
    let err = Some(StatusCode::Error as i32);
    let code = |flags, http, kind, cause| {
        error_status(flags, http, kind, cause).then_some(StatusCode::Error as i32)
    };
    // Fault: from a 5xx alone, unset (the code says it); otherwise an error status.
    assert_eq!(code(FLAG_FAULT, Some(500), SpanKind::Server, false), None);
    assert_eq!(code(FLAG_FAULT, Some(500), SpanKind::Server, true), err);
    assert_eq!(code(FLAG_FAULT, None, SpanKind::Internal, false), err);
    assert_eq!(code(FLAG_FAULT, Some(200), SpanKind::Server, false), err);
    // Error: never an error status on a server span; on a client span with a 4xx and cause.
    assert_eq!(code(FLAG_ERROR, Some(404), SpanKind::Server, true), None);
    assert_eq!(code(FLAG_ERROR, Some(404), SpanKind::Client, true), err);
    assert_eq!(code(FLAG_ERROR, Some(404), SpanKind::Client, false), None);
    assert_eq!(code(FLAG_ERROR, None, SpanKind::Client, true), None);
    assert_eq!(code(0, Some(200), SpanKind::Server, false), None);
}

#[test]
fn stacks_are_written_one_frame_a_line() {
    let mut x = Exception::new("boom", "Panic");
    x.stack = vec![
        crate::model::StackFrame {
            path: Some("src/main.rs".into()),
            line: Some(7),
            label: Some("app::run".into()),
        },
        crate::model::StackFrame {
            path: None,
            line: None,
            label: None,
        },
    ];
    assert_eq!(
        stacktrace(&x),
        "Panic: boom\n\tat app::run (src/main.rs:7)\n\tat <unknown>"
    );
}
