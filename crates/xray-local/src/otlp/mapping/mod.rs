//! OpenTelemetry spans to X-Ray segment documents, as X-Ray's own converter
//! (the collector's `awsxray` exporter, which the OTLP endpoint follows)
//! does it. The table of every field, with its reasons, is in
//! docs/ARCHITECTURE.md ("OTLP intake").
//!
//! - A SERVER span, or any span without a parent, is a segment; other
//!   children are subsegments sent alone (`"type": "subsegment"` with
//!   `parent_id`), so the store links them as it links streamed
//!   subsegments from UDP.
//! - A span marked `aws.span.kind = LOCAL_ROOT` is a segment; when it is a
//!   CLIENT, PRODUCER or CONSUMER span it becomes a service segment plus a
//!   subsegment for the call.
//! - A span whose IDs are invalid, or whose time is outside the window the
//!   endpoint takes (14 days back, 2 hours ahead), is rejected and counted.
//!
//! ```
//! use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind};
//! use xray_local::otlp::mapping::span_documents;
//!
//! let span = Span {
//!     trace_id: vec![0x5f, 0x0a, 0x1b, 0x2c, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
//!     span_id: vec![1, 2, 3, 4, 5, 6, 7, 8],
//!     name: "GET /orders".into(),
//!     kind: SpanKind::Server as i32,
//!     start_time_unix_nano: 1_700_000_000_000_000_000,
//!     end_time_unix_nano: 1_700_000_000_250_000_000,
//!     ..Span::default()
//! };
//! let docs = span_documents(&[], &span, 1_700_000_001.0).expect("valid span");
//! assert_eq!(docs[0]["trace_id"], "1-5f0a1b2c-0102030405060708090a0b0c");
//! assert_eq!(docs[0]["id"], "0102030405060708");
//! assert_eq!(docs[0]["end_time"], 1_700_000_000.25);
//! ```

mod attrs;
mod aws;
mod cause;
mod http;
mod meta;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::{Map, Value as Json};

use attrs::Attrs;
use aws::ResourceFacts;

/// Spans older than this (by start time) are rejected, as the endpoint does.
pub const MAX_SPAN_AGE_SECS: f64 = 14.0 * 86_400.0;
/// Spans starting further ahead than this are rejected, as the endpoint does.
pub const MAX_SPAN_AHEAD_SECS: f64 = 2.0 * 3_600.0;
/// Longest segment name; longer span names are cut.
const MAX_NAME_CHARS: usize = 200;
/// Distinct rejection messages kept per request (the count is always exact).
const MAX_MESSAGES: usize = 5;

/// Why a span was not converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SpanReject {
    /// The trace ID is not 16 bytes, or is all zeros.
    InvalidTraceId,
    /// The span ID is not 8 bytes, or is all zeros.
    InvalidSpanId,
    /// The parent span ID is neither empty nor 8 bytes.
    InvalidParentSpanId,
    /// The start time is more than 14 days ago or 2 hours ahead.
    OutOfTimeRange,
}

impl SpanReject {
    /// Every reason, in display order.
    pub const ALL: [SpanReject; 4] = [
        SpanReject::InvalidTraceId,
        SpanReject::InvalidSpanId,
        SpanReject::InvalidParentSpanId,
        SpanReject::OutOfTimeRange,
    ];

    /// Stable snake_case name used in the counters.
    pub fn as_str(self) -> &'static str {
        match self {
            SpanReject::InvalidTraceId => "invalid_trace_id",
            SpanReject::InvalidSpanId => "invalid_span_id",
            SpanReject::InvalidParentSpanId => "invalid_parent_span_id",
            SpanReject::OutOfTimeRange => "out_of_time_range",
        }
    }
}

/// A span that was not converted, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The reason.
    pub reason: SpanReject,
    /// A message naming the span and the value.
    pub message: String,
}

/// What a request became.
#[derive(Debug, Default)]
pub struct Converted {
    /// Segment documents, as JSON text, in the order of the spans.
    pub documents: Vec<String>,
    /// Spans read.
    pub spans: u64,
    /// Spans rejected, by reason.
    pub rejected: BTreeMap<SpanReject, u64>,
    /// The first few distinct rejection messages.
    pub messages: Vec<String>,
}

impl Converted {
    /// Spans rejected, all reasons together.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// One line for an OTLP `partial_success.error_message`.
    pub fn message(&self) -> String {
        let total = self.rejected_total();
        if total == 0 {
            return String::new();
        }
        let mut m = format!("{total} spans rejected: {}", self.messages.join("; "));
        if self.messages.len() as u64 != total {
            m.push_str("; ...");
        }
        m
    }
}

/// Converts every span of a request. `now` is the current Unix time in
/// seconds (spans are checked against the endpoint's time window).
pub fn convert(request: &ExportTraceServiceRequest, now: f64) -> Converted {
    let mut out = Converted::default();
    let mut docs = Vec::new();
    for rs in &request.resource_spans {
        let attrs: &[KeyValue] = rs.resource.as_ref().map_or(&[], |r| &r.attributes);
        let facts = ResourceFacts::new(attrs);
        for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
            out.spans += 1;
            docs.clear();
            match documents(span, &facts, now, &mut docs) {
                Ok(()) => out.documents.extend(docs.iter().map(Json::to_string)),
                Err(r) => {
                    *out.rejected.entry(r.reason).or_default() += 1;
                    if out.messages.len() < MAX_MESSAGES && !out.messages.contains(&r.message) {
                        out.messages.push(r.message);
                    }
                }
            }
        }
    }
    out
}

/// The documents one span becomes (one, or two for a CLIENT, PRODUCER or
/// CONSUMER local root), given its resource's attributes.
pub fn span_documents(
    resource: &[KeyValue],
    span: &Span,
    now: f64,
) -> Result<Vec<Json>, Rejection> {
    let mut out = Vec::new();
    documents(span, &ResourceFacts::new(resource), now, &mut out)?;
    Ok(out)
}

/// A span's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl Kind {
    fn of(span: &Span) -> Self {
        match SpanKind::try_from(span.kind) {
            Ok(SpanKind::Internal) => Kind::Internal,
            Ok(SpanKind::Server) => Kind::Server,
            Ok(SpanKind::Client) => Kind::Client,
            Ok(SpanKind::Producer) => Kind::Producer,
            Ok(SpanKind::Consumer) => Kind::Consumer,
            _ => Kind::Unspecified,
        }
    }

    fn is_outgoing(self) -> bool {
        matches!(self, Kind::Client | Kind::Producer | Kind::Consumer)
    }
}

/// Unix nanoseconds as seconds, whole seconds and fraction apart so the
/// fraction keeps its precision.
fn seconds(nanos: u64) -> f64 {
    (nanos / 1_000_000_000) as f64 + (nanos % 1_000_000_000) as f64 / 1e9
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn reject(reason: SpanReject, span: &Span, what: String) -> Rejection {
    Rejection {
        reason,
        message: format!(
            "span {:?} ({}): {what}",
            cut(&span.name, 60),
            hex(&span.span_id)
        ),
    }
}

fn cut(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

/// A 16-hex-digit ID derived from a span ID and a number, for the
/// documents the converter invents (a local root's service segment, an
/// exception): the same input always gives the same ID, never zero.
pub(crate) fn derived_id(span_id: &[u8], n: u64) -> String {
    // splitmix64 over the span ID's bytes and the number.
    let mut x = span_id
        .iter()
        .fold(n.wrapping_add(0x9E37_79B9_7F4A_7C15), |acc, b| {
            (acc ^ u64::from(*b)).wrapping_mul(0x100_0000_01B3)
        });
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    format!("{:016x}", x.max(1))
}

/// A span name as a segment name: characters X-Ray does not take are
/// dropped, the rest cut to 200 characters; `span` if nothing is left.
fn fix_name(name: &str) -> String {
    let fixed: String = name
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || "_.:/%&#=+-@".contains(*c))
        .take(MAX_NAME_CHARS)
        .collect();
    if fixed.is_empty() {
        "span".into()
    } else {
        fixed
    }
}

/// The host of a connection string (`jdbc:` dropped), for `db@host` names.
fn connection_host(conn: &str) -> Option<&str> {
    let conn = conn.strip_prefix("jdbc:").unwrap_or(conn);
    let (_, rest) = conn.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => host_port.split(':').next()?,
    };
    (!host.is_empty()).then_some(host)
}

/// The segment name, and whether it came from `aws.service` (which makes
/// the namespace `aws`).
fn name(
    span: &Span,
    kind: Kind,
    attrs: &Attrs<'_>,
    res: &ResourceFacts<'_>,
    local_root: bool,
) -> (String, bool) {
    if (kind == Kind::Server || (kind == Kind::Internal && local_root))
        && let Some(n) = attrs.str("aws.local.service")
    {
        return (n.into(), false);
    }
    if kind.is_outgoing()
        && let Some(n) = attrs.str("aws.remote.service")
    {
        return (remote_service(n, attrs), false);
    }
    if let Some(n) = attrs.str("peer.service") {
        return (n.into(), false);
    }
    if let Some(n) = attrs.str("aws.service") {
        return (n.into(), true);
    }
    if let Some(db) = attrs.str("db.name") {
        return match attrs.str("db.connection_string").and_then(connection_host) {
            Some(host) => (format!("{db}@{host}"), false),
            None => (db.into(), false),
        };
    }
    if kind == Kind::Server
        && let Some(n) = res.service_name
    {
        return (n.into(), false);
    }
    if let Some(n) = attrs.first_str(&["rpc.service", "http.host", "net.peer.name"]) {
        return (n.into(), false);
    }
    (fix_name(&span.name), false)
}

/// `aws.remote.service`, without the `AWS.SDK.`/`AWS::` prefix on AWS SDK
/// calls.
fn remote_service(n: &str, attrs: &Attrs<'_>) -> String {
    if attrs.str("rpc.system") == Some("aws-api") {
        let n = n.strip_prefix("AWS.SDK.").unwrap_or(n);
        n.strip_prefix("AWS::").unwrap_or(n).into()
    } else {
        n.into()
    }
}

/// `messaging.message_payload_size_bytes` of a `RECEIVED` message event.
fn received_payload(span: &Span) -> Option<i64> {
    span.events.iter().find_map(|e| {
        let a = Attrs::new(&e.attributes);
        (a.str("message.type") == Some("RECEIVED"))
            .then(|| a.int("messaging.message_payload_size_bytes"))
            .flatten()
    })
}

fn check_ids(span: &Span) -> Result<(String, String, Option<String>), Rejection> {
    if span.trace_id.len() != 16 || span.trace_id.iter().all(|b| *b == 0) {
        return Err(reject(
            SpanReject::InvalidTraceId,
            span,
            format!(
                "trace ID {:?} is not 16 non-zero bytes",
                hex(&span.trace_id)
            ),
        ));
    }
    if span.span_id.len() != 8 || span.span_id.iter().all(|b| *b == 0) {
        return Err(reject(
            SpanReject::InvalidSpanId,
            span,
            format!("span ID {:?} is not 8 non-zero bytes", hex(&span.span_id)),
        ));
    }
    let parent = match span.parent_span_id.len() {
        0 => None,
        8 if span.parent_span_id.iter().all(|b| *b == 0) => None,
        8 => Some(hex(&span.parent_span_id)),
        _ => {
            return Err(reject(
                SpanReject::InvalidParentSpanId,
                span,
                format!(
                    "parent span ID {:?} is neither empty nor 8 bytes",
                    hex(&span.parent_span_id)
                ),
            ));
        }
    };
    let t = hex(&span.trace_id);
    Ok((
        format!("1-{}-{}", &t[..8], &t[8..]),
        hex(&span.span_id),
        parent,
    ))
}

/// The documents of one span, appended to `out`.
fn documents(
    span: &Span,
    res: &ResourceFacts<'_>,
    now: f64,
    out: &mut Vec<Json>,
) -> Result<(), Rejection> {
    let (trace_id, id, parent) = check_ids(span)?;
    let start = seconds(span.start_time_unix_nano);
    let end = seconds(span.end_time_unix_nano);
    if start < now - MAX_SPAN_AGE_SECS || start > now + MAX_SPAN_AHEAD_SECS {
        return Err(reject(
            SpanReject::OutOfTimeRange,
            span,
            format!("start time {start} is more than 14 days ago or 2 hours ahead"),
        ));
    }
    let kind = Kind::of(span);
    let attrs = Attrs::new(&span.attributes);
    let local_root = attrs.str("aws.span.kind") == Some("LOCAL_ROOT");
    let (name, from_aws_service) = name(span, kind, &attrs, res, local_root);
    let mut consumed = BTreeSet::new();
    let http = http::build(kind, &attrs, received_payload(span), &mut consumed);
    let sql = meta::sql(&span.name, &attrs, &mut consumed);
    let aws = aws::build(&attrs, res, &mut consumed);
    let status = http::status_code(&attrs);
    let flags = cause::flags(span, status);
    let cause = cause::cause(span, kind, &attrs, res.language);
    let user = attrs.str("enduser.id");
    consumed.insert("enduser.id");
    let segment = kind == Kind::Server || parent.is_none() || local_root;
    let namespace = if attrs.str("rpc.system") == Some("aws-api") || from_aws_service {
        Some("aws")
    } else if kind == Kind::Client
        || (kind.is_outgoing() && attrs.str("aws.remote.service").is_some())
    {
        Some("remote")
    } else {
        None
    };
    let (annotations, metadata) =
        meta::annotations_and_metadata(&attrs, &consumed, segment.then_some(&res.attrs));

    let mut doc = Map::new();
    doc.insert("name".into(), name.into());
    doc.insert("id".into(), id.clone().into());
    doc.insert("trace_id".into(), trace_id.clone().into());
    doc.insert("start_time".into(), start.into());
    doc.insert("end_time".into(), end.into());
    if let Some(p) = &parent {
        doc.insert("parent_id".into(), p.clone().into());
    }
    if !segment {
        doc.insert("type".into(), "subsegment".into());
        if let Some(ns) = namespace {
            doc.insert("namespace".into(), ns.into());
        }
    }
    for (flag, on) in [
        ("error", flags.error),
        ("fault", flags.fault),
        ("throttle", flags.throttle),
    ] {
        if on {
            doc.insert(flag.into(), true.into());
        }
    }
    let mut put = |k: &str, v: Option<Json>| {
        if let Some(v) = v {
            doc.insert(k.into(), v);
        }
    };
    put("cause", cause);
    put("origin", res.origin.map(Json::from));
    put("user", user.map(Json::from));
    put("http", http);
    put("aws", aws.filter(|a| !a.is_empty()).map(Json::Object));
    put("service", res.service.clone());
    put("sql", sql);
    put(
        "annotations",
        (!annotations.is_empty()).then_some(Json::Object(annotations)),
    );
    put(
        "metadata",
        (!metadata.is_empty()).then_some(Json::Object(metadata)),
    );
    put("links", links(span));

    if local_root && kind.is_outgoing() {
        split_local_root(doc, span, kind, namespace, &attrs, res, out);
    } else {
        out.push(Json::Object(doc));
    }
    Ok(())
}

/// Span links with valid IDs, as `links` (`trace_id`, `id`, `attributes`).
fn links(span: &Span) -> Option<Json> {
    let list: Vec<Json> = span
        .links
        .iter()
        .filter(|l| l.trace_id.len() == 16 && l.span_id.len() == 8)
        .filter(|l| l.trace_id.iter().any(|b| *b != 0) && l.span_id.iter().any(|b| *b != 0))
        .map(|l| {
            let t = hex(&l.trace_id);
            let mut m = Map::new();
            m.insert(
                "trace_id".into(),
                format!("1-{}-{}", &t[..8], &t[8..]).into(),
            );
            m.insert("id".into(), hex(&l.span_id).into());
            let a = Attrs::new(&l.attributes);
            if !a.is_empty() {
                let attrs: Map<String, Json> = a
                    .iter()
                    .map(|(k, v)| (k.to_string(), attrs::to_json(v)))
                    .collect();
                m.insert("attributes".into(), attrs.into());
            }
            Json::Object(m)
        })
        .collect();
    (!list.is_empty()).then_some(Json::Array(list))
}

/// A CLIENT, PRODUCER or CONSUMER local root: the service segment (a new
/// ID, named after `aws.local.service`, no `http`, no call fields in
/// `aws`, only the resource's metadata, links only for CONSUMER) and the
/// call as its subsegment (the span's own ID, named after
/// `aws.remote.service`, namespace `remote` unless AWS).
fn split_local_root(
    call: Map<String, Json>,
    span: &Span,
    kind: Kind,
    namespace: Option<&str>,
    attrs: &Attrs<'_>,
    res: &ResourceFacts<'_>,
    out: &mut Vec<Json>,
) {
    let mut service = call.clone();
    let service_id = derived_id(&span.span_id, 0);
    let name = attrs
        .str("aws.local.service")
        .or(res.service_name)
        .map_or_else(|| fix_name(&span.name), str::to_string);
    service.insert("name".into(), name.into());
    service.insert("id".into(), service_id.clone().into());
    for k in ["http", "type", "namespace", "cause", "sql"] {
        service.remove(k);
    }
    if kind != Kind::Consumer {
        service.remove("links");
    }
    if let Some(Json::Object(aws)) = service.get_mut("aws") {
        for k in aws::CALL_MEMBERS {
            aws.remove(*k);
        }
    }
    if let Some(Json::Object(meta)) = service.get_mut("metadata") {
        meta.retain(|ns, _| ns == "default");
        if let Some(Json::Object(default)) = meta.get_mut("default") {
            default.retain(|k, _| k.starts_with(meta::RESOURCE_PREFIX));
        }
    }
    let mut dependency = call;
    dependency.insert("type".into(), "subsegment".into());
    dependency.insert("parent_id".into(), service_id.into());
    if let Some(n) = attrs.str("aws.remote.service") {
        dependency.insert("name".into(), remote_service(n, attrs).into());
    }
    dependency.insert("namespace".into(), namespace.unwrap_or("remote").into());
    for k in ["origin", "service"] {
        dependency.remove(k);
    }
    if let Some(Json::Object(meta)) = dependency.get_mut("metadata")
        && let Some(Json::Object(default)) = meta.get_mut("default")
    {
        default.retain(|k, _| !k.starts_with(meta::RESOURCE_PREFIX));
    }
    out.push(Json::Object(service));
    out.push(Json::Object(dependency));
}

#[cfg(test)]
mod tests;
