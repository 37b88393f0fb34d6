//! The protobuf body written in one pass, straight from the recording.
//!
//! The messages are `opentelemetry-proto`'s (the field numbers below are those of its
//! generated types, which decode every byte written here in the tests). Building the
//! generated messages for each span and encoding them with prost costs about twenty
//! allocations a span and computes every nested length once per level of nesting; this
//! writer allocates nothing of its own and writes each byte once. Varints and field keys are
//! prost's own encoders. JSON bodies and Lambda's datagrams are made from these bytes through
//! the generated types (`encode.rs`, `udp.rs`).

use prost::encoding::{WireType, encoded_len_varint, key_len};

/// `ExportTraceServiceRequest.resource_spans`.
pub(crate) const REQUEST_RESOURCE_SPANS: u32 = 1;
/// `ResourceSpans.resource`, `.scope_spans`.
pub(crate) const RESOURCE: u32 = 1;
pub(crate) const SCOPE_SPANS: u32 = 2;
/// `ScopeSpans.scope`, `.spans`.
pub(crate) const SCOPE: u32 = 1;
pub(crate) const SPANS: u32 = 2;

/// `Span`'s fields.
pub(crate) mod span {
    pub(crate) const TRACE_ID: u32 = 1;
    pub(crate) const SPAN_ID: u32 = 2;
    pub(crate) const PARENT_SPAN_ID: u32 = 4;
    pub(crate) const NAME: u32 = 5;
    pub(crate) const KIND: u32 = 6;
    pub(crate) const START_TIME: u32 = 7;
    pub(crate) const END_TIME: u32 = 8;
    pub(crate) const ATTRIBUTES: u32 = 9;
    pub(crate) const EVENTS: u32 = 11;
    pub(crate) const STATUS: u32 = 15;
    pub(crate) const FLAGS: u32 = 16;
}

/// `Span.Event`'s fields.
pub(crate) mod event {
    pub(crate) const TIME: u32 = 1;
    pub(crate) const NAME: u32 = 2;
    pub(crate) const ATTRIBUTES: u32 = 3;
}

/// `Status.code`.
pub(crate) const STATUS_CODE: u32 = 3;

/// `KeyValue`'s fields.
const KEY: u32 = 1;
const VALUE: u32 = 2;
/// `AnyValue`'s one-of.
const STRING_VALUE: u32 = 1;
const BOOL_VALUE: u32 = 2;
const INT_VALUE: u32 = 3;
const DOUBLE_VALUE: u32 = 4;
const ARRAY_VALUE: u32 = 5;
const KVLIST_VALUE: u32 = 6;
/// `ArrayValue.values`, `KeyValueList.values`.
const VALUES: u32 = 1;

/// A varint: one byte for most values here (lengths of attributes, field keys), else prost's.
#[inline]
fn encode_varint(v: u64, buf: &mut Vec<u8>) {
    if v < 0x80 {
        buf.push(v as u8);
    } else {
        prost::encoding::encode_varint(v, buf);
    }
}

/// A field's key.
#[inline]
fn encode_key(field: u32, wire_type: WireType, buf: &mut Vec<u8>) {
    encode_varint(u64::from(field << 3 | wire_type as u32), buf);
}

/// A length-delimited field: key, length, bytes.
fn delimited(buf: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    encode_key(field, WireType::LengthDelimited, buf);
    encode_varint(bytes.len() as u64, buf);
    buf.extend_from_slice(bytes);
}

/// The encoded length of a length-delimited field whose content is `len` bytes.
pub(crate) fn delimited_len(field: u32, len: usize) -> usize {
    key_len(field) + encoded_len_varint(len as u64) + len
}

/// Writes a length-delimited field's key and length, for content written next.
pub(crate) fn delimited_head(buf: &mut Vec<u8>, field: u32, len: usize) {
    encode_key(field, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

/// A `string` field, left out when empty (proto3).
pub(crate) fn string(buf: &mut Vec<u8>, field: u32, s: &str) {
    bytes(buf, field, s.as_bytes());
}

/// A `bytes` field, left out when empty.
pub(crate) fn bytes(buf: &mut Vec<u8>, field: u32, b: &[u8]) {
    if !b.is_empty() {
        delimited(buf, field, b);
    }
}

/// A varint field (`uint32`, `int32`, an enum), left out when zero.
pub(crate) fn varint(buf: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        encode_key(field, WireType::Varint, buf);
        encode_varint(v, buf);
    }
}

/// A `fixed64` field, left out when zero.
pub(crate) fn fixed64(buf: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        encode_key(field, WireType::SixtyFourBit, buf);
        buf.extend_from_slice(&v.to_le_bytes());
    }
}

/// A `fixed32` field, left out when zero.
pub(crate) fn fixed32(buf: &mut Vec<u8>, field: u32, v: u32) {
    if v != 0 {
        encode_key(field, WireType::ThirtyTwoBit, buf);
        buf.extend_from_slice(&v.to_le_bytes());
    }
}

/// A message field whose content `write` appends; its length is written in front after,
/// moving the content when the length takes more than one byte.
pub(crate) fn message(buf: &mut Vec<u8>, field: u32, write: impl FnOnce(&mut Vec<u8>)) {
    encode_key(field, WireType::LengthDelimited, buf);
    let at = buf.len();
    buf.push(0);
    write(buf);
    let end = buf.len();
    let len = end - at - 1;
    let n = encoded_len_varint(len as u64);
    if n > 1 {
        buf.resize(end + n - 1, 0);
        buf.copy_within(at + 1..end, at + n);
    }
    let mut slot = &mut buf[at..at + n];
    prost::encoding::encode_varint(len as u64, &mut slot);
}

/// Spans written as `ScopeSpans.spans` fields, back to back, and where each one ends.
#[derive(Debug, Default)]
pub(crate) struct SpanList {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl SpanList {
    /// How many spans are held.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether no span is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The encoded spans.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Empties the list, keeping its buffers.
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    /// Writes one span: `write` appends the `Span`'s content.
    pub(crate) fn push(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        message(&mut self.bytes, SPANS, write);
        self.ends.push(self.bytes.len());
    }

    /// The bytes of the first `n` spans.
    pub(crate) fn first(&self, n: usize) -> &[u8] {
        let end = n
            .checked_sub(1)
            .and_then(|i| self.ends.get(i))
            .copied()
            .unwrap_or(0);
        &self.bytes[..end]
    }

    /// Keeps the first `n` spans only.
    pub(crate) fn truncate(&mut self, n: usize) {
        let end = self.first(n).len();
        self.bytes.truncate(end);
        self.ends.truncate(n);
    }

    /// Removes the first `n` spans.
    pub(crate) fn remove_first(&mut self, n: usize) {
        let cut = self.first(n).len();
        self.bytes.drain(..cut);
        self.ends.drain(..n.min(self.ends.len()));
        for end in &mut self.ends {
            *end -= cut;
        }
    }

    /// Moves the spans of `other` to the end of this list.
    pub(crate) fn append(&mut self, other: &mut SpanList) {
        let base = self.bytes.len();
        self.bytes.extend_from_slice(&other.bytes);
        self.ends.extend(other.ends.iter().map(|e| e + base));
        other.clear();
    }
}

/// An attribute value, as `AnyValue`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum AttrValue<'a> {
    Str(&'a str),
    Int(i64),
    Double(f64),
    Bool(bool),
}

impl AttrValue<'_> {
    /// The length of the `AnyValue` holding it.
    fn any_len(self) -> usize {
        match self {
            // A one-of member is written even when it is the default.
            AttrValue::Str(s) => delimited_len(STRING_VALUE, s.len()),
            AttrValue::Int(i) => 1 + encoded_len_varint(i as u64),
            AttrValue::Double(_) => 1 + 8,
            AttrValue::Bool(_) => 2,
        }
    }

    /// The `AnyValue`'s content.
    fn write_any(self, buf: &mut Vec<u8>) {
        match self {
            AttrValue::Str(s) => delimited(buf, STRING_VALUE, s.as_bytes()),
            AttrValue::Int(i) => {
                encode_key(INT_VALUE, WireType::Varint, buf);
                encode_varint(i as u64, buf);
            }
            AttrValue::Double(d) => {
                encode_key(DOUBLE_VALUE, WireType::SixtyFourBit, buf);
                buf.extend_from_slice(&d.to_bits().to_le_bytes());
            }
            AttrValue::Bool(b) => {
                encode_key(BOOL_VALUE, WireType::Varint, buf);
                buf.push(u8::from(b));
            }
        }
    }
}

/// Writes `KeyValue` attributes as one repeated field of the message being written (a
/// span's, an event's).
pub(crate) struct Attributes<'a> {
    buf: &'a mut Vec<u8>,
    field: u32,
}

impl<'a> Attributes<'a> {
    /// Attributes written to `buf` as field `field`.
    pub(crate) fn new(buf: &'a mut Vec<u8>, field: u32) -> Self {
        Attributes { buf, field }
    }

    /// One attribute with a scalar value.
    pub(crate) fn put(&mut self, key: &str, value: AttrValue<'_>) {
        let any = value.any_len();
        let key_part = if key.is_empty() {
            0
        } else {
            delimited_len(KEY, key.len())
        };
        let len = key_part + delimited_len(VALUE, any);
        delimited_head(self.buf, self.field, len);
        string(self.buf, KEY, key);
        delimited_head(self.buf, VALUE, any);
        value.write_any(self.buf);
    }

    /// A string attribute.
    pub(crate) fn str(&mut self, key: &str, value: &str) {
        self.put(key, AttrValue::Str(value));
    }

    /// An attribute holding an array of strings.
    pub(crate) fn strings<'s>(&mut self, key: &str, values: impl IntoIterator<Item = &'s str>) {
        self.nested(key, |buf| {
            message(buf, ARRAY_VALUE, |buf| {
                for s in values {
                    message(buf, VALUES, |buf| AttrValue::Str(s).write_any(buf));
                }
            });
        });
    }

    /// An attribute holding a JSON value: objects become key-value lists, arrays arrays;
    /// `null`s are left out, and so is the attribute when `value` is `null`.
    pub(crate) fn json(&mut self, key: &str, value: &serde_json::Value) {
        if !value.is_null() {
            self.nested(key, |buf| write_json(buf, value));
        }
    }

    /// An attribute whose `AnyValue` content `write` appends.
    fn nested(&mut self, key: &str, write: impl FnOnce(&mut Vec<u8>)) {
        message(self.buf, self.field, |buf| {
            string(buf, KEY, key);
            message(buf, VALUE, write);
        });
    }
}

/// The content of an `AnyValue` holding `value` (not `null`).
fn write_json(buf: &mut Vec<u8>, value: &serde_json::Value) {
    use serde_json::Value as J;
    match value {
        J::Null => {}
        J::Bool(b) => AttrValue::Bool(*b).write_any(buf),
        J::Number(n) => match n.as_i64() {
            Some(i) => AttrValue::Int(i).write_any(buf),
            None => AttrValue::Double(n.as_f64().unwrap_or(0.0)).write_any(buf),
        },
        J::String(s) => AttrValue::Str(s).write_any(buf),
        J::Array(items) => message(buf, ARRAY_VALUE, |buf| {
            for item in items.iter().filter(|v| !v.is_null()) {
                message(buf, VALUES, |buf| write_json(buf, item));
            }
        }),
        J::Object(map) => message(buf, KVLIST_VALUE, |buf| {
            let mut list = Attributes::new(buf, VALUES);
            for (k, v) in map {
                list.json(k, v);
            }
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList};
    use opentelemetry_proto::tonic::trace::v1::span::Event;
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span, Status};
    use prost::Message as _;

    use super::*;

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    /// What prost writes for the generated message equals what the writer writes, byte for
    /// byte, for every kind of field and value the mapping uses.
    #[test]
    fn the_bytes_are_those_of_the_generated_types() {
        let long = "x".repeat(300);
        let span = Span {
            trace_id: vec![0x5f; 16],
            span_id: vec![1, 2, 3, 4, 5, 6, 7, 8],
            parent_span_id: vec![9; 8],
            name: "DynamoDB".into(),
            kind: 3,
            start_time_unix_nano: 1_700_000_000_123_456_000,
            end_time_unix_nano: 1_700_000_000_223_456_000,
            attributes: vec![
                kv("rpc.method", Value::StringValue("GetItem".into())),
                kv("empty", Value::StringValue(String::new())),
                kv("", Value::StringValue("no key".into())),
                kv("http.response.status_code", Value::IntValue(200)),
                kv("negative", Value::IntValue(-7)),
                kv("zero", Value::IntValue(0)),
                kv("ratio", Value::DoubleValue(0.5)),
                kv("yes", Value::BoolValue(true)),
                kv("no", Value::BoolValue(false)),
                kv("long", Value::StringValue(long.clone())),
                kv(
                    "aws.dynamodb.table_names",
                    Value::ArrayValue(ArrayValue {
                        values: vec![AnyValue {
                            value: Some(Value::StringValue("orders".into())),
                        }],
                    }),
                ),
                kv(
                    "aws.consumed_capacity",
                    Value::KvlistValue(KeyValueList {
                        values: vec![
                            kv("CapacityUnits", Value::DoubleValue(0.5)),
                            kv(
                                "List",
                                Value::ArrayValue(ArrayValue {
                                    values: vec![
                                        AnyValue {
                                            value: Some(Value::IntValue(1)),
                                        },
                                        AnyValue {
                                            value: Some(Value::StringValue(long.clone())),
                                        },
                                    ],
                                }),
                            ),
                        ],
                    }),
                ),
            ],
            events: vec![Event {
                time_unix_nano: 1_700_000_000_223_456_000,
                name: "exception".into(),
                attributes: vec![kv("exception.type", Value::StringValue("Boom".into()))],
                ..Default::default()
            }],
            status: Some(Status {
                code: 2,
                message: String::new(),
            }),
            flags: 0x301,
            ..Default::default()
        };
        let expected = ScopeSpans {
            spans: vec![span.clone(), Span::default()],
            ..Default::default()
        }
        .encode_to_vec();

        let mut buf = Vec::new();
        message(&mut buf, SPANS, |b| {
            bytes(b, span::TRACE_ID, &[0x5f; 16]);
            bytes(b, span::SPAN_ID, &[1, 2, 3, 4, 5, 6, 7, 8]);
            bytes(b, span::PARENT_SPAN_ID, &[9; 8]);
            string(b, span::NAME, "DynamoDB");
            varint(b, span::KIND, 3);
            fixed64(b, span::START_TIME, 1_700_000_000_123_456_000);
            fixed64(b, span::END_TIME, 1_700_000_000_223_456_000);
            let mut a = Attributes::new(b, span::ATTRIBUTES);
            a.str("rpc.method", "GetItem");
            a.str("empty", "");
            a.str("", "no key");
            a.put("http.response.status_code", AttrValue::Int(200));
            a.put("negative", AttrValue::Int(-7));
            a.put("zero", AttrValue::Int(0));
            a.put("ratio", AttrValue::Double(0.5));
            a.put("yes", AttrValue::Bool(true));
            a.put("no", AttrValue::Bool(false));
            a.str("long", &long);
            a.strings("aws.dynamodb.table_names", ["orders"]);
            a.json(
                "aws.consumed_capacity",
                &serde_json::json!({"CapacityUnits": 0.5, "List": [1, null, long], "Gone": null}),
            );
            a.json("left out", &serde_json::Value::Null);
            message(b, span::EVENTS, |b| {
                fixed64(b, event::TIME, 1_700_000_000_223_456_000);
                string(b, event::NAME, "exception");
                Attributes::new(b, event::ATTRIBUTES).str("exception.type", "Boom");
            });
            message(b, span::STATUS, |b| varint(b, STATUS_CODE, 2));
            fixed32(b, span::FLAGS, 0x301);
        });
        message(&mut buf, SPANS, |_| {});
        assert_eq!(buf, expected);
        assert_eq!(ScopeSpans::decode(&buf[..]).unwrap().spans[0], span);
    }

    #[test]
    fn lengths_of_every_size_are_moved_into_place() {
        for n in [0, 1, 127, 128, 16_383, 16_384, 70_000] {
            let mut buf = vec![0xaa];
            message(&mut buf, 7, |b| b.extend(std::iter::repeat_n(0x11, n)));
            let mut expected = vec![0xaa];
            delimited(&mut expected, 7, &vec![0x11; n]);
            assert_eq!(buf, expected, "{n} bytes");
            assert_eq!(buf.len() - 1, delimited_len(7, n));
        }
    }
}
