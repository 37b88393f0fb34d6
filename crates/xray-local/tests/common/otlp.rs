//! Building OTLP requests with the generated types and sending them to a
//! running xray-local: over HTTP (protobuf or JSON, gzip or not) and as
//! `T1S` datagrams.

use std::collections::HashMap;
use std::io::Write;

use flate2::write::GzEncoder;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::Value;
use xray_local::Server;

use super::{Framing, RawResponse, get_json, post_bytes};

pub fn s(v: &str) -> AnyValue {
    AnyValue {
        value: Some(V::StringValue(v.into())),
    }
}

pub fn i(v: i64) -> AnyValue {
    AnyValue {
        value: Some(V::IntValue(v)),
    }
}

pub fn b(v: bool) -> AnyValue {
    AnyValue {
        value: Some(V::BoolValue(v)),
    }
}

pub fn d(v: f64) -> AnyValue {
    AnyValue {
        value: Some(V::DoubleValue(v)),
    }
}

pub fn arr(v: &[&str]) -> AnyValue {
    AnyValue {
        value: Some(V::ArrayValue(ArrayValue {
            values: v.iter().map(|x| s(x)).collect(),
        })),
    }
}

pub fn kv(k: &str, v: AnyValue) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(v),
        ..KeyValue::default()
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The X-Ray form of a 16-byte trace ID.
pub fn xray_trace_id(t: &[u8]) -> String {
    let h = hex(t);
    format!("1-{}-{}", &h[..8], &h[8..])
}

/// A span of `trace`, starting `start` Unix seconds, lasting `dur`.
#[allow(clippy::too_many_arguments)]
pub fn span(
    trace: &[u8],
    id: &[u8],
    parent: Option<&[u8]>,
    name: &str,
    kind: SpanKind,
    start: f64,
    dur: f64,
    attributes: Vec<KeyValue>,
) -> Span {
    Span {
        trace_id: trace.to_vec(),
        span_id: id.to_vec(),
        parent_span_id: parent.map(<[u8]>::to_vec).unwrap_or_default(),
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: (start * 1e9) as u64,
        end_time_unix_nano: ((start + dur) * 1e9) as u64,
        attributes,
        ..Span::default()
    }
}

pub fn resource_spans(resource: Vec<KeyValue>, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: resource,
            ..Resource::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..ScopeSpans::default()
        }],
        ..ResourceSpans::default()
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip in memory");
    e.finish().expect("gzip in memory")
}

/// How a request is encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Protobuf,
    Json,
    ProtobufGzip,
    JsonGzip,
}

impl Wire {
    pub const ALL: [Wire; 4] = [
        Wire::Protobuf,
        Wire::Json,
        Wire::ProtobufGzip,
        Wire::JsonGzip,
    ];

    pub fn is_json(self) -> bool {
        matches!(self, Wire::Json | Wire::JsonGzip)
    }

    pub fn is_gzip(self) -> bool {
        matches!(self, Wire::ProtobufGzip | Wire::JsonGzip)
    }

    pub fn content_type(self) -> &'static str {
        if self.is_json() {
            "application/json"
        } else {
            "application/x-protobuf"
        }
    }

    /// The request's body in this form.
    pub fn body(self, req: &ExportTraceServiceRequest) -> Vec<u8> {
        let plain = if self.is_json() {
            serde_json::to_vec(req).expect("OTLP/JSON")
        } else {
            req.encode_to_vec()
        };
        if self.is_gzip() { gzip(&plain) } else { plain }
    }
}

/// `POST /v1/traces` with a body already encoded as `wire` says.
pub fn post_otlp(server: &Server, wire: Wire, body: &[u8]) -> RawResponse {
    let mut headers = vec![("Content-Type", wire.content_type())];
    if wire.is_gzip() {
        headers.push(("Content-Encoding", "gzip"));
    }
    post_bytes(
        server.ui_addr(),
        "/v1/traces",
        &headers,
        body,
        Framing::Length,
    )
}

/// Sends a request in `wire` form; asserts a 200 with the response type of
/// the request's encoding, and returns the number of spans it says were
/// rejected.
pub fn export(server: &Server, wire: Wire, req: &ExportTraceServiceRequest) -> i64 {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
    let r = post_otlp(server, wire, &wire.body(req));
    assert_eq!(r.status, 200, "{wire:?}: {}", r.text());
    assert_eq!(r.header("content-type"), Some(wire.content_type()));
    if wire.is_json() {
        let v: Value = serde_json::from_slice(&r.body).expect("JSON answer");
        v["partialSuccess"]["rejectedSpans"]
            .as_str()
            .map_or(0, |n| n.parse().expect("int64 as a string"))
    } else {
        ExportTraceServiceResponse::decode(r.body.as_slice())
            .expect("protobuf answer")
            .partial_success
            .map_or(0, |p| p.rejected_spans)
    }
}

/// The stored documents of a trace (as received, streamed subsegments
/// apart), by id, read through the viewer's JSON API.
pub fn stored_docs(server: &Server, trace: &str) -> HashMap<String, Value> {
    let v = get_json(server, &format!("/api/Traces?ids={trace}"));
    let mut out = HashMap::new();
    for t in v["Traces"].as_array().into_iter().flatten() {
        for seg in t["Segments"].as_array().into_iter().flatten() {
            let doc: Value = serde_json::from_str(seg["Document"].as_str().expect("Document text"))
                .expect("document JSON");
            out.insert(doc["id"].as_str().expect("id").to_string(), doc);
        }
    }
    out
}

/// Datagrams of a few spans each, as Lambda's OpenTelemetry distributions
/// send them (`T1S` + base64 of a protobuf request).
pub fn datagrams(
    resource: &[KeyValue],
    spans: &[Span],
    per_datagram: usize,
    sampled: bool,
) -> Vec<Vec<u8>> {
    spans
        .chunks(per_datagram.max(1))
        .map(|chunk| {
            let req = ExportTraceServiceRequest {
                resource_spans: vec![resource_spans(resource.to_vec(), chunk.to_vec())],
            };
            xray_local::otlp::wire::encode_datagram(&req, sampled)
        })
        .collect()
}

/// Span IDs of [`shop`].
pub const CHECKOUT: [u8; 8] = [0xc0, 1, 0, 0, 0, 0, 0, 1];
pub const CALL_INVENTORY: [u8; 8] = [0xc0, 1, 0, 0, 0, 0, 0, 2];
pub const INVENTORY: [u8; 8] = [0x1f, 2, 0, 0, 0, 0, 0, 3];
pub const GET_ITEM: [u8; 8] = [0x1f, 2, 0, 0, 0, 0, 0, 4];

pub fn checkout_resource() -> Vec<KeyValue> {
    vec![
        kv("service.name", s("checkout")),
        kv("telemetry.sdk.language", s("python")),
    ]
}

pub fn inventory_resource() -> Vec<KeyValue> {
    vec![
        kv("service.name", s("inventory")),
        kv("telemetry.sdk.language", s("go")),
    ]
}

/// Two services: `checkout` (a SERVER span answering 500, annotated
/// `tier=gold`, and its call to inventory) and `inventory` (a SERVER span
/// answering 500 and a DynamoDB `GetItem`).
pub fn shop(trace: &[u8], t0: f64) -> (Vec<Span>, Vec<Span>) {
    let checkout = vec![
        span(
            trace,
            &CHECKOUT,
            None,
            "GET /checkout",
            SpanKind::Server,
            t0,
            0.5,
            vec![
                kv("http.request.method", s("GET")),
                kv("url.full", s("http://shop.local/checkout")),
                kv("http.response.status_code", i(500)),
                kv("aws.xray.annotations", arr(&["tier"])),
                kv("tier", s("gold")),
            ],
        ),
        span(
            trace,
            &CALL_INVENTORY,
            Some(&CHECKOUT),
            "GET",
            SpanKind::Client,
            t0 + 0.1,
            0.3,
            vec![
                kv("http.request.method", s("GET")),
                kv("url.full", s("http://inventory.local/stock")),
                kv("http.response.status_code", i(500)),
                kv("peer.service", s("inventory")),
            ],
        ),
    ];
    let inventory = vec![
        span(
            trace,
            &INVENTORY,
            Some(&CALL_INVENTORY),
            "GET /stock",
            SpanKind::Server,
            t0 + 0.12,
            0.25,
            vec![
                kv("http.request.method", s("GET")),
                kv("url.full", s("http://inventory.local/stock")),
                kv("http.response.status_code", i(500)),
            ],
        ),
        span(
            trace,
            &GET_ITEM,
            Some(&INVENTORY),
            "DynamoDB.GetItem",
            SpanKind::Client,
            t0 + 0.13,
            0.05,
            vec![
                kv("rpc.system", s("aws-api")),
                kv("rpc.service", s("DynamoDB")),
                kv("rpc.method", s("GetItem")),
                kv("aws.dynamodb.table_names", arr(&["stock"])),
                kv("http.response.status_code", i(200)),
            ],
        ),
    ];
    (checkout, inventory)
}
