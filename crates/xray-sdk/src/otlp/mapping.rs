//! The mapping from the recording to OpenTelemetry spans: one span per segment or
//! subsegment, read from a finished [`Batch`] on the emitter's thread.
//!
//! Each choice is made so that X-Ray's own span-to-segment conversion (the OpenTelemetry
//! collector's `awsxray` exporter, whose rules X-Ray's OTLP endpoint follows) gives back the
//! document the UDP path would have sent: the same names, namespaces, flags, annotations,
//! metadata and cause. docs/ARCHITECTURE.md has the table, one reason per row.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList};
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{Span, Status};

use super::pool;
use crate::deferred::AwsFieldWriter;
use crate::emitter::json::{Index, write_aws_fields};
use crate::id::{EntityId, TraceId};
use crate::model::{Cause, Exception, Namespace, Sql};
use crate::trace::{AwsKey, Batch, EntityData, EntityState, FLAG_ERROR, FLAG_FAULT, Item, Scalar};

/// The attribute listing the annotation keys, so that X-Ray indexes them.
pub(crate) const ANNOTATIONS: &str = "aws.xray.annotations";
/// Prefix of the attributes holding one metadata namespace each, as JSON text.
pub(crate) const METADATA_PREFIX: &str = "aws.xray.metadata.";

/// `SpanFlags`: the W3C sampled flag, and whether the parent's remoteness is known
/// (bit 8) and remote (bit 9).
const FLAGS_SAMPLED: u32 = 0x01;
const FLAGS_HAS_IS_REMOTE: u32 = 0x100;
const FLAGS_IS_REMOTE: u32 = 0x200;

/// A key-value attribute.
pub(crate) fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: pool::key(key),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// A string value.
pub(crate) fn text(s: &str) -> Value {
    Value::StringValue(pool::value(s))
}

fn strings<'a>(items: impl IntoIterator<Item = &'a str>) -> Value {
    Value::ArrayValue(ArrayValue {
        values: items
            .into_iter()
            .map(|s| AnyValue {
                value: Some(text(s)),
            })
            .collect(),
    })
}

/// The 16 bytes of an X-Ray trace ID (the 8 + 24 hex digits, in order).
pub(crate) fn trace_id_bytes(id: &TraceId) -> Vec<u8> {
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&id.epoch_seconds().to_be_bytes());
    out[4..].copy_from_slice(&id.random_bytes());
    pool::bytes(&out)
}

/// The 8 bytes of an entity ID.
pub(crate) fn span_id_bytes(id: EntityId) -> Vec<u8> {
    pool::bytes(&id.as_u64().to_be_bytes())
}

/// Buffers reused from batch to batch.
#[derive(Default)]
pub(crate) struct Mapper {
    index: Index,
    json: Vec<u8>,
}

/// What a batch becomes: its spans, and the `origin` its segment set itself (which the
/// exporter expresses through the resource).
pub(crate) struct Mapped<'a> {
    pub(crate) origin: Option<&'a str>,
}

impl Mapper {
    /// Appends the spans of `batch` to `out`. `service_name` is the resource's: a segment
    /// named otherwise carries its name in `aws.local.service`.
    pub(crate) fn map<'b>(
        &mut self,
        batch: &'b Batch,
        service_name: &str,
        out: &mut Vec<Span>,
    ) -> Mapped<'b> {
        self.index.build(batch);
        let trace_id = trace_id_bytes(&batch.trace_id);
        let mut origin = None;
        for (i, e) in batch.entities.iter().enumerate() {
            let segment = i == 0 && batch.is_segment;
            if (segment && batch.facade) || e.state == EntityState::Streamed {
                continue;
            }
            if segment {
                origin = e.more.origin.map(|t| batch.str(t));
            }
            let extras = self.index.extras_of(i);
            let span = span(
                &mut self.json,
                batch,
                e,
                extras,
                segment,
                service_name,
                &trace_id,
            );
            out.push(span);
        }
        Mapped { origin }
    }
}

fn span(
    json: &mut Vec<u8>,
    batch: &Batch,
    e: &EntityData,
    extras: &[u32],
    segment: bool,
    service_name: &str,
    trace_id: &[u8],
) -> Span {
    let name = batch.str(e.name);
    let kind = if segment {
        SpanKind::Server
    } else if e.namespace.is_some() {
        SpanKind::Client
    } else {
        SpanKind::Internal
    };
    let mut attrs = pool::list();
    if segment && name != service_name {
        attrs.push(kv("aws.local.service", text(name)));
    }
    if segment && let Some(rule) = &batch.rule_name {
        attrs.push(kv("aws.xray.sampling_rule_name", text(rule)));
    }
    if e.namespace == Some(Namespace::Aws) {
        attrs.push(kv("rpc.system", text("aws-api")));
        attrs.push(kv("rpc.service", text(name)));
    }
    http(batch, e, &mut attrs);
    aws(json, batch, e, extras, &mut attrs);
    more(batch, e, &mut attrs);
    let items = || extras.iter().map(|&x| &batch.extras[x as usize].item);
    let mut cause: Option<&Cause> = None;
    for item in items() {
        match item {
            Item::Sql(s) => sql(s, &mut attrs),
            Item::Cause(c) => cause = Some(c),
            _ => {}
        }
    }
    annotations(batch, extras, &mut attrs);
    metadata(json, batch, extras, &mut attrs);
    let start = e.start_us.saturating_mul(1000);
    let end = if e.end_us == 0 {
        // Never in a finished batch; kept as X-Ray's receiver spells it if it were.
        attrs.push(kv("aws.xray.inprogress", Value::BoolValue(true)));
        start
    } else {
        e.end_us.saturating_mul(1000)
    };
    let events = cause.map_or_else(Vec::new, |c| exception_events(c, end));
    let status = status(e.flags, e.http.status, kind, !events.is_empty());
    let parent_remote = segment || (e.parent == crate::trace::NO_PARENT && batch.facade);
    Span {
        trace_id: pool::bytes(trace_id),
        span_id: span_id_bytes(e.id),
        parent_span_id: e.parent_id.map(span_id_bytes).unwrap_or_default(),
        flags: FLAGS_SAMPLED
            | FLAGS_HAS_IS_REMOTE
            | if parent_remote && e.parent_id.is_some() {
                FLAGS_IS_REMOTE
            } else {
                0
            },
        name: pool::key(name),
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes: attrs,
        events,
        status,
        ..Default::default()
    }
}

/// The `aws` fields: the typed ones directly; when the entity has other or deferred
/// fields, the whole block as the UDP document would have it (same precedence), read
/// back from its JSON.
fn aws(
    json: &mut Vec<u8>,
    batch: &Batch,
    e: &EntityData,
    extras: &[u32],
    attrs: &mut Vec<KeyValue>,
) {
    for k in AwsKey::ALL {
        if let Some(t) = e.aws.get(k) {
            aws_field(k.as_str(), text(batch.str(t)), attrs);
        }
    }
    if let Some(n) = e.aws.retries {
        aws_field("retries", Value::IntValue(i64::from(n)), attrs);
    }
    let open_ended = extras.iter().any(|&x| {
        matches!(
            batch.extras[x as usize].item,
            Item::Aws { .. } | Item::Deferred(_)
        )
    });
    if !open_ended {
        return;
    }
    json.clear();
    json.extend_from_slice(b"{\"_\":0");
    let mut w = AwsFieldWriter::new(json);
    write_aws_fields(&mut w, batch, e, extras);
    if w.finish().is_err() {
        return;
    }
    json.push(b'}');
    let Ok(serde_json::Value::Object(mut doc)) = serde_json::from_slice(json) else {
        return;
    };
    let Some(serde_json::Value::Object(block)) = doc.remove("aws") else {
        return;
    };
    for (key, value) in &block {
        let typed = AwsKey::from_key(key).is_some_and(|k| e.aws.get(k).is_some())
            || (key == "retries" && e.aws.retries.is_some());
        if !typed && let Some(v) = json_value(value) {
            aws_field(key, v, attrs);
        }
    }
}

/// One attribute per metadata namespace, `aws.xray.metadata.<namespace>`, holding the
/// namespace's object as JSON text (what X-Ray's converter parses back).
fn metadata(json: &mut Vec<u8>, batch: &Batch, extras: &[u32], attrs: &mut Vec<KeyValue>) {
    let entries = || {
        extras
            .iter()
            .filter_map(|&x| match &batch.extras[x as usize].item {
                Item::Metadata {
                    namespace,
                    key,
                    json: value,
                } => Some((batch.str(*namespace), batch.str(*key), batch.str(*value))),
                _ => None,
            })
    };
    for (pos, (ns, _, _)) in entries().enumerate() {
        if entries().take(pos).any(|(n, _, _)| n == ns) {
            continue;
        }
        json.clear();
        let mut sep = b'{';
        for (_, k, value) in entries().filter(|(n, _, _)| *n == ns) {
            json.push(sep);
            sep = b',';
            if crate::json::write_str(json, k).is_err() {
                continue;
            }
            json.push(b':');
            json.extend_from_slice(value.as_bytes());
        }
        json.push(b'}');
        let value = String::from_utf8_lossy(json).into_owned();
        let mut key = String::with_capacity(METADATA_PREFIX.len() + ns.len());
        key.push_str(METADATA_PREFIX);
        key.push_str(ns);
        attrs.push(KeyValue {
            key,
            value: Some(AnyValue {
                value: Some(Value::StringValue(value)),
            }),
            ..Default::default()
        });
    }
}

/// The `http` block under the HTTP semantic conventions.
fn http(batch: &Batch, e: &EntityData, attrs: &mut Vec<KeyValue>) {
    let h = &e.http;
    for (key, t) in [
        ("http.request.method", h.method),
        ("url.full", h.url),
        ("user_agent.original", h.user_agent),
    ] {
        if let Some(t) = t {
            attrs.push(kv(key, text(batch.str(t))));
        }
    }
    if let Some(ip) = h.client_ip {
        let ip = batch.str(ip);
        attrs.push(kv("client.address", text(ip)));
        // X-Ray's converter sets `x_forwarded_for` when the client address has no peer
        // address beside it: a direct peer is written as one.
        if !h.x_forwarded_for {
            attrs.push(kv("network.peer.address", text(ip)));
        }
    }
    if h.traced {
        attrs.push(kv("aws.xray.traced", Value::BoolValue(true)));
    }
    if let Some(status) = h.status {
        attrs.push(kv(
            "http.response.status_code",
            Value::IntValue(i64::from(status)),
        ));
    }
    if let Some(len) = h.content_length {
        attrs.push(kv(
            "http.response.body.size",
            Value::IntValue(i64::try_from(len).unwrap_or(i64::MAX)),
        ));
    }
}

/// One `aws` field under the `aws-api` conventions and the names X-Ray's converter reads.
fn aws_field(key: &str, value: Value, attrs: &mut Vec<KeyValue>) {
    match key {
        "operation" => attrs.push(kv("rpc.method", value)),
        "region" => {
            attrs.push(kv("cloud.region", value.clone()));
            attrs.push(kv("aws.region", value));
        }
        "request_id" => attrs.push(kv("aws.request_id", value)),
        "table_name" => {
            let list = match value {
                Value::StringValue(s) => Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(Value::StringValue(s)),
                    }],
                }),
                other => other,
            };
            attrs.push(kv("aws.dynamodb.table_names", list));
        }
        "table_names" => attrs.push(kv("aws.dynamodb.table_names", value)),
        "queue_url" => attrs.push(kv("aws.queue_url", value)),
        "retries" => attrs.push(kv("aws.xray.retries", value)),
        other => {
            let mut name = String::with_capacity(4 + other.len());
            name.push_str("aws.");
            name.push_str(other);
            attrs.push(kv(&name, value));
        }
    }
}

/// A JSON value as an attribute value: objects become key-value lists; `null` is left out.
fn json_value(v: &serde_json::Value) -> Option<Value> {
    Some(match v {
        serde_json::Value::Null => return None,
        serde_json::Value::Bool(b) => Value::BoolValue(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::IntValue(i),
            None => Value::DoubleValue(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(s) => Value::StringValue(s.clone()),
        serde_json::Value::Array(items) => Value::ArrayValue(ArrayValue {
            values: items
                .iter()
                .filter_map(json_value)
                .map(|v| AnyValue { value: Some(v) })
                .collect(),
        }),
        serde_json::Value::Object(map) => Value::KvlistValue(KeyValueList {
            values: map
                .iter()
                .filter_map(|(k, v)| json_value(v).map(|v| kv(k, v)))
                .collect(),
        }),
    })
}

/// `user`, `resource_arn` and an entity's own `service.version`.
fn more(batch: &Batch, e: &EntityData, attrs: &mut Vec<KeyValue>) {
    for (key, t) in [
        ("enduser.id", e.more.user),
        ("cloud.resource_id", e.more.resource_arn),
        ("service.version", e.more.service_version),
    ] {
        if let Some(t) = t {
            attrs.push(kv(key, text(batch.str(t))));
        }
    }
}

/// The `sql` block under the database conventions X-Ray's converter reads (`db.system`
/// lower-cased, so `PostgreSQL` reads as the `postgresql` it knows).
fn sql(s: &Sql, attrs: &mut Vec<KeyValue>) {
    if let Some(t) = &s.database_type {
        attrs.push(kv("db.system", text(&t.to_ascii_lowercase())));
    }
    for (key, v) in [
        ("db.statement", &s.sanitized_query),
        ("db.user", &s.user),
        ("db.connection_string", &s.connection_string),
    ] {
        if let Some(v) = v {
            attrs.push(kv(key, text(v)));
        }
    }
}

/// Annotations as attributes under their own keys, listed in `aws.xray.annotations`.
fn annotations(batch: &Batch, extras: &[u32], attrs: &mut Vec<KeyValue>) {
    let first = attrs.len();
    for &x in extras {
        if let Item::Annotation { key, value } = &batch.extras[x as usize].item {
            let value = match *value {
                Scalar::Str(s) => text(batch.str(s)),
                Scalar::Int(i) => Value::IntValue(i),
                Scalar::Float(f) => Value::DoubleValue(f),
                Scalar::Bool(b) => Value::BoolValue(b),
            };
            attrs.push(kv(batch.str(*key), value));
        }
    }
    if attrs.len() > first {
        let keys = strings(attrs[first..].iter().map(|a| a.key.as_str()));
        attrs.push(kv(ANNOTATIONS, keys));
    }
}

/// One `exception` event per exception of the cause, at the entity's end.
fn exception_events(cause: &Cause, time: u64) -> Vec<Event> {
    let cause = cause.with_resolved_stacks();
    cause
        .exceptions
        .iter()
        .map(|x| Event {
            time_unix_nano: time,
            name: "exception".to_owned(),
            attributes: exception_attributes(x),
            ..Default::default()
        })
        .collect()
}

fn exception_attributes(x: &Exception) -> Vec<KeyValue> {
    let mut attrs = Vec::with_capacity(4);
    let id = x.id.to_bytes();
    attrs.push(kv(
        "aws.xray.exception.id",
        text(std::str::from_utf8(&id).unwrap_or_default()),
    ));
    if let Some(t) = &x.kind {
        attrs.push(kv("exception.type", text(t)));
    }
    if let Some(m) = &x.message {
        attrs.push(kv("exception.message", text(m)));
    }
    if !x.stack.is_empty() {
        attrs.push(kv("exception.stacktrace", text(&stacktrace(x))));
    }
    if x.remote {
        attrs.push(kv("aws.xray.exception.remote", Value::BoolValue(true)));
    }
    for (key, n) in [
        ("aws.xray.exception.truncated", x.truncated),
        ("aws.xray.exception.skipped", x.skipped),
    ] {
        if let Some(n) = n {
            attrs.push(kv(key, Value::IntValue(i64::from(n))));
        }
    }
    if let Some(c) = x.cause {
        let c = c.to_bytes();
        attrs.push(kv(
            "aws.xray.exception.cause",
            text(std::str::from_utf8(&c).unwrap_or_default()),
        ));
    }
    attrs
}

/// `type: message` and one `at label (path:line)` line per frame, innermost first.
fn stacktrace(x: &Exception) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    out.push_str(x.kind.as_deref().unwrap_or("Error"));
    if let Some(m) = &x.message {
        out.push_str(": ");
        out.push_str(m);
    }
    for f in &x.stack {
        out.push_str("\n\tat ");
        out.push_str(f.label.as_deref().unwrap_or("<unknown>"));
        if let Some(p) = &f.path {
            let _ = match f.line {
                Some(l) => write!(out, " ({p}:{l})"),
                None => write!(out, " ({p})"),
            };
        }
    }
    out
}

/// The span status from the flags and the HTTP status, so that X-Ray's converter, which
/// reads flags from the status code first and the span status second, gives the same flags
/// and does not invent a cause: `fault` is an error status unless a 5xx code says it alone
/// (an error status without an `exception` event would become an empty exception); `error`
/// is an error status only on a client span whose 4xx code and cause are both there (the
/// converter would read an error status without a 4xx code as a fault).
fn status(flags: u8, http: Option<u16>, kind: SpanKind, has_cause: bool) -> Option<Status> {
    let class = http.map(|s| s / 100);
    let error = if flags & FLAG_FAULT != 0 {
        class != Some(5) || has_cause
    } else if flags & FLAG_ERROR != 0 {
        kind == SpanKind::Client && class == Some(4) && has_cause
    } else {
        false
    };
    error.then(|| Status {
        code: StatusCode::Error as i32,
        message: String::new(),
    })
}

#[cfg(test)]
mod tests;
