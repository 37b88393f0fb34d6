//! The mapping from the recording to OpenTelemetry spans: one span per segment or
//! subsegment, read from a finished [`Batch`] on the emitter's thread.
//!
//! Each choice is made so that X-Ray's own span-to-segment conversion (the OpenTelemetry
//! collector's `awsxray` exporter, whose rules X-Ray's OTLP endpoint follows) gives back the
//! document the UDP path would have sent: the same names, namespaces, flags, annotations,
//! metadata and cause. docs/ARCHITECTURE.md has the table, one reason per row.

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;

use super::protobuf::{self, AttrValue, Attributes, SpanList, event, span as field};
use crate::deferred::AwsFieldWriter;
use crate::emitter::json::{Index, write_aws_fields};
use crate::id::{EntityId, TraceId};
use crate::model::{Cause, Exception, Namespace, Sql};
use crate::trace::{
    AwsKey, Batch, EntityData, EntityState, FLAG_ERROR, FLAG_FAULT, Item, MoreKey, Scalar,
};

/// The attribute listing the annotation keys, so that X-Ray indexes them.
pub(crate) const ANNOTATIONS: &str = "aws.xray.annotations";
/// Prefix of the attributes holding one metadata namespace each, as JSON text.
pub(crate) const METADATA_PREFIX: &str = "aws.xray.metadata.";

/// `SpanFlags`: the W3C sampled flag, and whether the parent's remoteness is known
/// (bit 8) and remote (bit 9).
const FLAGS_SAMPLED: u32 = 0x01;
const FLAGS_HAS_IS_REMOTE: u32 = 0x100;
const FLAGS_IS_REMOTE: u32 = 0x200;

/// The 16 bytes of an X-Ray trace ID (the 8 + 24 hex digits, in order).
pub(crate) fn trace_id_bytes(id: &TraceId) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&id.epoch_seconds().to_be_bytes());
    out[4..].copy_from_slice(&id.random_bytes());
    out
}

/// The 8 bytes of an entity ID.
pub(crate) fn span_id_bytes(id: EntityId) -> [u8; 8] {
    id.as_u64().to_be_bytes()
}

/// Buffers reused from batch to batch.
#[derive(Default)]
pub(crate) struct Mapper {
    index: Index,
    json: Vec<u8>,
    key: String,
}

/// What a batch becomes besides its spans: the `origin` its segment set itself (which the
/// exporter expresses through the resource).
pub(crate) struct Mapped<'a> {
    pub(crate) origin: Option<&'a str>,
}

impl Mapper {
    /// Writes the spans of `batch` to `out`. `service_name` is the resource's: a segment
    /// named otherwise carries its name in `aws.local.service`.
    pub(crate) fn map<'b>(
        &mut self,
        batch: &'b Batch,
        service_name: &str,
        out: &mut SpanList,
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
                origin = batch.more(self.index.extras_of(i), MoreKey::Origin);
            }
            let entity = Entity {
                batch,
                e,
                extras: self.index.extras_of(i),
                segment,
            };
            out.push(|buf| {
                entity.write(buf, &mut self.json, &mut self.key, service_name, &trace_id)
            });
        }
        Mapped { origin }
    }
}

/// One segment or subsegment of a batch.
struct Entity<'b> {
    batch: &'b Batch,
    e: &'b EntityData,
    extras: &'b [u32],
    segment: bool,
}

impl Entity<'_> {
    fn items(&self) -> impl Iterator<Item = &Item> {
        self.extras
            .iter()
            .map(|&x| &self.batch.extras[x as usize].item)
    }

    /// Writes the `Span`'s fields, in field order.
    fn write(
        &self,
        buf: &mut Vec<u8>,
        json: &mut Vec<u8>,
        key: &mut String,
        service_name: &str,
        trace_id: &[u8; 16],
    ) {
        let (batch, e, segment) = (self.batch, self.e, self.segment);
        let name = batch.str(e.name);
        let kind = if segment {
            SpanKind::Server
        } else if e.namespace.is_some() {
            SpanKind::Client
        } else {
            SpanKind::Internal
        };
        let start = e.start_us.saturating_mul(1000);
        // An end of zero never comes in a finished batch; kept as X-Ray's receiver
        // spells an in-progress span if it did.
        let in_progress = e.end_us == 0;
        let end = if in_progress {
            start
        } else {
            e.end_us.saturating_mul(1000)
        };
        protobuf::bytes(buf, field::TRACE_ID, trace_id);
        protobuf::bytes(buf, field::SPAN_ID, &span_id_bytes(e.id));
        if let Some(p) = e.parent_id() {
            protobuf::bytes(buf, field::PARENT_SPAN_ID, &span_id_bytes(p));
        }
        protobuf::string(buf, field::NAME, name);
        protobuf::varint(buf, field::KIND, kind as u64);
        protobuf::fixed64(buf, field::START_TIME, start);
        protobuf::fixed64(buf, field::END_TIME, end);

        let mut attrs = Attributes::new(buf, field::ATTRIBUTES);
        if segment && name != service_name {
            attrs.str("aws.local.service", name);
        }
        if segment && let Some(rule) = &batch.rule_name {
            attrs.str("aws.xray.sampling_rule_name", rule);
        }
        if e.namespace == Some(Namespace::Aws) {
            attrs.str("rpc.system", "aws-api");
            attrs.str("rpc.service", name);
        }
        http(batch, e, &mut attrs);
        self.aws(json, key, &mut attrs);
        more(batch, self.extras, &mut attrs);
        let mut cause: Option<&Cause> = None;
        for item in self.items() {
            match item {
                Item::Sql(s) => sql(s, &mut attrs),
                Item::Cause(c) => cause = Some(c),
                _ => {}
            }
        }
        self.annotations(&mut attrs);
        self.metadata(json, key, &mut attrs);
        if in_progress {
            attrs.put("aws.xray.inprogress", AttrValue::Bool(true));
        }

        let events = cause.map_or(0, |c| exception_events(c, end, buf));
        if error_status(e.flags, e.http.status(), kind, events > 0) {
            protobuf::message(buf, field::STATUS, |b| {
                protobuf::varint(b, protobuf::STATUS_CODE, StatusCode::Error as u64);
            });
        }
        let parent_remote = segment || (e.parent == crate::trace::NO_PARENT && batch.facade);
        let flags = FLAGS_SAMPLED
            | FLAGS_HAS_IS_REMOTE
            | if parent_remote && e.parent_id().is_some() {
                FLAGS_IS_REMOTE
            } else {
                0
            };
        protobuf::fixed32(buf, field::FLAGS, flags);
    }

    /// The `aws` fields: the typed ones directly; when the entity has other or deferred
    /// fields, the whole block as the UDP document would have it (same precedence), read
    /// back from its JSON.
    fn aws(&self, json: &mut Vec<u8>, key: &mut String, attrs: &mut Attributes<'_>) {
        let (batch, e) = (self.batch, self.e);
        for k in AwsKey::ALL {
            if let Some(t) = e.aws.get(k) {
                aws_field(k.as_str(), &Json::Str(batch.str(t)), key, attrs);
            }
        }
        if let Some(n) = e.aws.retries() {
            aws_field("retries", &Json::Int(i64::from(n)), key, attrs);
        }
        let open_ended = self
            .items()
            .any(|item| matches!(item, Item::Aws { .. } | Item::Deferred(_)));
        if !open_ended {
            return;
        }
        json.clear();
        json.extend_from_slice(b"{\"_\":0");
        let mut w = AwsFieldWriter::new(json);
        write_aws_fields(&mut w, batch, e, self.extras);
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
        for (name, value) in &block {
            let typed = AwsKey::from_key(name).is_some_and(|k| e.aws.get(k).is_some())
                || (name == "retries" && e.aws.retries().is_some());
            if !typed {
                aws_field(name, &Json::Value(value), key, attrs);
            }
        }
    }

    /// One attribute per metadata namespace, `aws.xray.metadata.<namespace>`, holding the
    /// namespace's object as JSON text (what X-Ray's converter parses back).
    fn metadata(&self, json: &mut Vec<u8>, key: &mut String, attrs: &mut Attributes<'_>) {
        let batch = self.batch;
        let entries = || {
            self.items().filter_map(|item| match item {
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
            key.clear();
            key.push_str(METADATA_PREFIX);
            key.push_str(ns);
            attrs.str(key, &String::from_utf8_lossy(json));
        }
    }

    /// Annotations as attributes under their own keys, listed in `aws.xray.annotations`.
    fn annotations(&self, attrs: &mut Attributes<'_>) {
        let batch = self.batch;
        let annotations = || {
            self.items().filter_map(|item| match item {
                Item::Annotation { key, value } => Some((batch.str(*key), value)),
                _ => None,
            })
        };
        let mut any = false;
        for (key, value) in annotations() {
            any = true;
            let value = match *value {
                Scalar::Str(s) => AttrValue::Str(batch.str(s)),
                Scalar::Int(i) => AttrValue::Int(i),
                Scalar::Float(f) => AttrValue::Double(f),
                Scalar::Bool(b) => AttrValue::Bool(b),
            };
            attrs.put(key, value);
        }
        if any {
            attrs.strings(ANNOTATIONS, annotations().map(|(k, _)| k));
        }
    }
}

/// An `aws` field's value: typed, or read back from the block's JSON.
enum Json<'a> {
    Str(&'a str),
    Int(i64),
    Value(&'a serde_json::Value),
}

impl Json<'_> {
    fn put(&self, key: &str, attrs: &mut Attributes<'_>) {
        match self {
            Json::Str(s) => attrs.str(key, s),
            Json::Int(i) => attrs.put(key, AttrValue::Int(*i)),
            Json::Value(v) => attrs.json(key, v),
        }
    }
}

/// The `http` block under the HTTP semantic conventions.
fn http(batch: &Batch, e: &EntityData, attrs: &mut Attributes<'_>) {
    let h = &e.http;
    for (key, t) in [
        ("http.request.method", h.method),
        ("url.full", h.url),
        ("user_agent.original", h.user_agent),
    ] {
        if let Some(t) = t {
            attrs.str(key, batch.str(t));
        }
    }
    if let Some(ip) = h.client_ip {
        let ip = batch.str(ip);
        attrs.str("client.address", ip);
        // X-Ray's converter sets `x_forwarded_for` when the client address has no peer
        // address beside it: a direct peer is written as one.
        if !h.x_forwarded_for() {
            attrs.str("network.peer.address", ip);
        }
    }
    if h.traced() {
        attrs.put("aws.xray.traced", AttrValue::Bool(true));
    }
    if let Some(status) = h.status() {
        attrs.put(
            "http.response.status_code",
            AttrValue::Int(i64::from(status)),
        );
    }
    if let Some(len) = h.content_length() {
        attrs.put(
            "http.response.body.size",
            AttrValue::Int(i64::try_from(len).unwrap_or(i64::MAX)),
        );
    }
}

/// One `aws` field under the `aws-api` conventions and the names X-Ray's converter reads.
fn aws_field(name: &str, value: &Json<'_>, key: &mut String, attrs: &mut Attributes<'_>) {
    match name {
        "operation" => value.put("rpc.method", attrs),
        "region" => {
            value.put("cloud.region", attrs);
            value.put("aws.region", attrs);
        }
        "request_id" => value.put("aws.request_id", attrs),
        "table_name" => match value {
            Json::Str(s) => attrs.strings("aws.dynamodb.table_names", [*s]),
            Json::Value(serde_json::Value::String(s)) => {
                attrs.strings("aws.dynamodb.table_names", [s.as_str()]);
            }
            other => other.put("aws.dynamodb.table_names", attrs),
        },
        "table_names" => value.put("aws.dynamodb.table_names", attrs),
        "queue_url" => value.put("aws.queue_url", attrs),
        "retries" => value.put("aws.xray.retries", attrs),
        other => {
            key.clear();
            key.push_str("aws.");
            key.push_str(other);
            value.put(key, attrs);
        }
    }
}

/// `user`, `resource_arn` and an entity's own `service.version`.
fn more(batch: &Batch, extras: &[u32], attrs: &mut Attributes<'_>) {
    for (key, more) in [
        ("enduser.id", MoreKey::User),
        ("cloud.resource_id", MoreKey::ResourceArn),
        ("service.version", MoreKey::ServiceVersion),
    ] {
        if let Some(v) = batch.more(extras, more) {
            attrs.str(key, v);
        }
    }
}

/// The `sql` block under the database conventions X-Ray's converter reads (`db.system`
/// lower-cased, so `PostgreSQL` reads as the `postgresql` it knows).
fn sql(s: &Sql, attrs: &mut Attributes<'_>) {
    if let Some(t) = &s.database_type {
        attrs.str("db.system", &t.to_ascii_lowercase());
    }
    for (key, v) in [
        ("db.statement", &s.sanitized_query),
        ("db.user", &s.user),
        ("db.connection_string", &s.connection_string),
    ] {
        if let Some(v) = v {
            attrs.str(key, v);
        }
    }
}

/// One `exception` event per exception of the cause, at the entity's end; returns how many.
fn exception_events(cause: &Cause, time: u64, buf: &mut Vec<u8>) -> usize {
    let cause = cause.with_resolved_stacks();
    for x in &cause.exceptions {
        protobuf::message(buf, field::EVENTS, |b| {
            protobuf::fixed64(b, event::TIME, time);
            protobuf::string(b, event::NAME, "exception");
            exception_attributes(x, &mut Attributes::new(b, event::ATTRIBUTES));
        });
    }
    cause.exceptions.len()
}

fn exception_attributes(x: &Exception, attrs: &mut Attributes<'_>) {
    let id = x.id.to_bytes();
    attrs.str(
        "aws.xray.exception.id",
        std::str::from_utf8(&id).unwrap_or_default(),
    );
    if let Some(t) = &x.kind {
        attrs.str("exception.type", t);
    }
    if let Some(m) = &x.message {
        attrs.str("exception.message", m);
    }
    if !x.stack.is_empty() {
        attrs.str("exception.stacktrace", &stacktrace(x));
    }
    if x.remote {
        attrs.put("aws.xray.exception.remote", AttrValue::Bool(true));
    }
    for (key, n) in [
        ("aws.xray.exception.truncated", x.truncated),
        ("aws.xray.exception.skipped", x.skipped),
    ] {
        if let Some(n) = n {
            attrs.put(key, AttrValue::Int(i64::from(n)));
        }
    }
    if let Some(c) = x.cause {
        let c = c.to_bytes();
        attrs.str(
            "aws.xray.exception.cause",
            std::str::from_utf8(&c).unwrap_or_default(),
        );
    }
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

/// Whether the span's status is an error, from the flags and the HTTP status, so that
/// X-Ray's converter, which reads flags from the status code first and the span status
/// second, gives the same flags and does not invent a cause: `fault` is an error status
/// unless a 5xx code says it alone (an error status without an `exception` event would
/// become an empty exception); `error` is an error status only on a client span whose 4xx
/// code and cause are both there (the converter would read an error status without a 4xx
/// code as a fault).
fn error_status(flags: u8, http: Option<u16>, kind: SpanKind, has_cause: bool) -> bool {
    let class = http.map(|s| s / 100);
    if flags & FLAG_FAULT != 0 {
        class != Some(5) || has_cause
    } else if flags & FLAG_ERROR != 0 {
        kind == SpanKind::Client && class == Some(4) && has_cause
    } else {
        false
    }
}

#[cfg(test)]
mod tests;
