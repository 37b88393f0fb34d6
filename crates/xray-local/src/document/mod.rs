//! The compact, typed form of a segment document.
//!
//! Intake parses each document once, straight from the datagram bytes, into
//! a [`Node`] tree that holds only the fields the store, validation,
//! summaries and the service map read. Everything else is skipped (but still
//! syntax-checked) and stays available in the document's raw text, which is
//! kept for `BatchGetTraces` and re-parsed on demand for the timeline.
//!
//! Parsing goes through `serde_json`'s own deserializer with the same depth
//! accounting as a `serde_json::Value`, so a body is accepted, or rejected
//! with the same reason, exactly when parsing it into a `Value` would.
//! Fields of an unexpected JSON type are kept as a `Value` ([`Field::Other`])
//! so that validation can quote them; duplicate keys behave like a
//! `serde_json::Map` (the last one wins).

mod de;
mod small_str;

use std::mem::size_of;
use std::sync::Arc;

use serde::de::Deserializer;
use serde_json::{Map, Number, Value};

pub use small_str::SmallStr;

/// Approximate bookkeeping cost of one heap allocation (header and rounding).
const ALLOC_OVERHEAD: usize = 16;

/// A field as found in the document.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Field<T> {
    /// The key is not present.
    #[default]
    Absent,
    /// Present with the expected JSON type.
    Ok(T),
    /// Present with another JSON type (kept for messages).
    Other(Box<Value>),
}

impl<T> Field<T> {
    /// `true` unless the key is absent.
    pub fn is_present(&self) -> bool {
        !matches!(self, Field::Absent)
    }

    /// The value when it has the expected type.
    pub fn ok(&self) -> Option<&T> {
        match self {
            Field::Ok(v) => Some(v),
            _ => None,
        }
    }
}

impl<S: std::ops::Deref<Target = str>> Field<S> {
    /// The string, when the field is a string.
    pub fn as_str(&self) -> Option<&str> {
        self.ok().map(|s| &**s)
    }

    /// The field as a JSON value (`Null` when absent).
    pub fn to_value(&self) -> Value {
        match self {
            Field::Absent => Value::Null,
            Field::Ok(s) => Value::String(s.to_string()),
            Field::Other(v) => (**v).clone(),
        }
    }
}

impl Field<Arc<str>> {
    fn heap_bytes(&self) -> usize {
        match self {
            Field::Absent => 0,
            // The counts, the text, and the allocation.
            Field::Ok(s) => 16 + s.len() + ALLOC_OVERHEAD,
            Field::Other(v) => value_bytes(v),
        }
    }
}

impl Field<SmallStr> {
    fn heap_bytes(&self) -> usize {
        match self {
            Field::Absent => 0,
            Field::Ok(s) => s.heap_bytes(),
            Field::Other(v) => value_bytes(v),
        }
    }
}

impl Field<f64> {
    /// The number, when the field is a number.
    pub fn as_f64(&self) -> Option<f64> {
        self.ok().copied()
    }
}

/// An annotation value.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A string.
    Str(SmallStr),
    /// A number, as written (integer or float).
    Num(Number),
    /// A boolean.
    Bool(bool),
    /// Anything else (null, array, object): not a valid annotation.
    Other(Box<Value>),
}

impl Scalar {
    /// The value as JSON.
    pub fn to_value(&self) -> Value {
        match self {
            Scalar::Str(s) => Value::String(s.to_string()),
            Scalar::Num(n) => Value::Number(n.clone()),
            Scalar::Bool(b) => Value::Bool(*b),
            Scalar::Other(v) => (**v).clone(),
        }
    }
}

/// One element of a `subsegments` array.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "almost every element is a node: boxing it would cost an allocation each"
)]
pub enum Sub {
    /// An embedded subsegment.
    Node(Node),
    /// Something that is not an object.
    Other(Box<Value>),
}

/// One segment or subsegment: the fields this crate reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Node {
    /// `name`.
    pub name: Field<SmallStr>,
    /// `id`.
    pub id: Field<SmallStr>,
    /// `trace_id` (read on top-level documents only; shared with the store,
    /// which keys the trace by it).
    pub trace_id: Field<Arc<str>>,
    /// `parent_id`.
    pub parent_id: Field<SmallStr>,
    /// `type` (read on top-level documents only).
    pub kind: Field<SmallStr>,
    /// `namespace`.
    pub namespace: Field<SmallStr>,
    /// `origin`.
    pub origin: Field<SmallStr>,
    /// `start_time`.
    pub start_time: Field<f64>,
    /// `end_time`.
    pub end_time: Field<f64>,
    /// `in_progress` is `true`.
    pub in_progress: bool,
    /// `error` is `true`.
    pub error: bool,
    /// `fault` is `true`.
    pub fault: bool,
    /// `throttle` is `true`.
    pub throttle: bool,
    /// `annotations`, sorted by key, one entry per key (the last one).
    pub annotations: Field<Vec<(SmallStr, Scalar)>>,
    /// `subsegments`.
    pub subsegments: Field<Vec<Sub>>,
    /// The `http` request and response and the `user`, when the document
    /// has any of them (boxed: most subsegments have none).
    pub details: Option<Box<Details>>,
}

/// What filter expressions and trace summaries read from a segment's `http`
/// block and `user` field. Values of another JSON type are left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Details {
    /// `http.request.url`.
    pub url: Option<SmallStr>,
    /// `http.request.method`.
    pub method: Option<SmallStr>,
    /// `http.request.user_agent`.
    pub user_agent: Option<SmallStr>,
    /// `http.request.client_ip`.
    pub client_ip: Option<SmallStr>,
    /// `http.response.status`, when a number.
    pub status: Option<f64>,
    /// `user`.
    pub user: Option<SmallStr>,
}

impl Details {
    /// `true` when the `http` block gave anything.
    pub fn has_http(&self) -> bool {
        self.url.is_some()
            || self.method.is_some()
            || self.user_agent.is_some()
            || self.client_ip.is_some()
            || self.status.is_some()
    }

    fn heap_bytes(&self) -> usize {
        let strings = [
            &self.url,
            &self.method,
            &self.user_agent,
            &self.client_ip,
            &self.user,
        ];
        size_of::<Details>()
            + ALLOC_OVERHEAD
            + strings
                .iter()
                .map(|s| s.as_ref().map_or(0, SmallStr::heap_bytes))
                .sum::<usize>()
    }
}

impl Node {
    /// Approximate heap bytes held by this node and its subsegments,
    /// including the node itself.
    pub fn heap_bytes(&self) -> usize {
        let mut n = size_of::<Node>()
            + self.name.heap_bytes()
            + self.id.heap_bytes()
            + self.trace_id.heap_bytes()
            + self.parent_id.heap_bytes()
            + self.kind.heap_bytes()
            + self.namespace.heap_bytes()
            + self.origin.heap_bytes();
        for f in [&self.start_time, &self.end_time] {
            if let Field::Other(v) = f {
                n += value_bytes(v);
            }
        }
        match &self.annotations {
            Field::Absent => {}
            Field::Other(v) => n += value_bytes(v),
            Field::Ok(list) => {
                n += list.capacity() * size_of::<(SmallStr, Scalar)>() + ALLOC_OVERHEAD;
                for (k, v) in list {
                    n += k.heap_bytes();
                    n += match v {
                        Scalar::Str(s) => s.heap_bytes(),
                        Scalar::Other(v) => value_bytes(v),
                        Scalar::Num(_) | Scalar::Bool(_) => 0,
                    };
                }
            }
        }
        match &self.subsegments {
            Field::Absent => {}
            Field::Other(v) => n += value_bytes(v),
            Field::Ok(subs) => {
                // Each node's heap_bytes counts the node's own size.
                n += (subs.capacity() - subs.len()) * size_of::<Sub>() + ALLOC_OVERHEAD;
                for s in subs {
                    n += match s {
                        Sub::Node(node) => node.heap_bytes(),
                        Sub::Other(v) => size_of::<Sub>() + value_bytes(v),
                    };
                }
            }
        }
        if let Some(d) = &self.details {
            n += d.heap_bytes();
        }
        n
    }

    /// `http.request.url`, `http.request.method`, ... and `user`, when present.
    pub fn details(&self) -> &Details {
        static NONE: Details = Details {
            url: None,
            method: None,
            user_agent: None,
            client_ip: None,
            status: None,
            user: None,
        };
        self.details.as_deref().unwrap_or(&NONE)
    }
}

/// A rough estimate of a boxed `Value`'s heap bytes (rarely used: only for
/// fields of an unexpected type).
fn value_bytes(v: &Value) -> usize {
    size_of::<Value>()
        + ALLOC_OVERHEAD
        + match v {
            Value::String(s) => s.len() + ALLOC_OVERHEAD,
            Value::Array(a) => a.iter().map(value_bytes).sum::<usize>() + ALLOC_OVERHEAD,
            Value::Object(m) => m
                .iter()
                .map(|(k, v)| k.len() + 2 * ALLOC_OVERHEAD + size_of::<String>() + value_bytes(v))
                .sum(),
            Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        }
}

/// Why a body could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// The JSON ends too early.
    Truncated,
    /// Not JSON.
    Invalid,
    /// JSON, but not an object.
    NotAnObject,
}

/// Parses a document body into its typed form.
pub fn parse(body: &[u8]) -> Result<Node, ParseError> {
    match std::str::from_utf8(body) {
        Ok(text) => parse_str(text),
        // Rare: let serde_json find the first problem, so the verdict
        // (truncated or invalid) is the one a full parse gives.
        Err(_) => Err(verdict(serde_json::from_slice::<Value>(body).err())),
    }
}

/// Parses a document's text into its typed form. (Text that is already
/// known to be UTF-8 is parsed without checking each string again.)
pub fn parse_str(text: &str) -> Result<Node, ParseError> {
    match serde_json::from_str::<de::Top>(text) {
        Ok(de::Top(Some(node))) => Ok(node),
        Ok(de::Top(None)) => Err(ParseError::NotAnObject),
        Err(e) => Err(verdict(Some(e))),
    }
}

fn verdict(e: Option<serde_json::Error>) -> ParseError {
    match e {
        Some(e) if e.is_eof() => ParseError::Truncated,
        Some(_) => ParseError::Invalid,
        // Valid JSON, but not UTF-8 text: cannot happen (serde_json checks
        // strings, and everything else must be ASCII).
        None => ParseError::Invalid,
    }
}

/// The typed form of a JSON object already held as a `serde_json::Map`.
pub fn from_map(map: &Map<String, Value>) -> Node {
    // Through the text, so the result is exactly what intake would produce.
    let text = Value::Object(map.clone()).to_string();
    parse(text.as_bytes()).unwrap_or_default()
}

/// Reads one top-level field of a document's text (used for the few values
/// the typed form does not keep). `None` when absent or not an object.
pub fn top_level_field(raw: &str, key: &str) -> Option<Value> {
    let mut de = serde_json::Deserializer::from_str(raw);
    de.deserialize_any(de::FieldPicker(key)).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_keeps_odd_types() {
        let n = parse(
            br#"{"name":"a","id":"x","id":"y","start_time":1,"end_time":"2","in_progress":1,
                 "error":true,"annotations":{"b":1,"a":"s","b":2.5,"c":null},
                 "subsegments":[{"name":"s"},3],"http":{"x":[1,2,{"y":null}]},
                 "user":"u"}"#,
        )
        .expect("object");
        assert_eq!(n.name.as_str(), Some("a"));
        assert_eq!(n.id.as_str(), Some("y"));
        assert_eq!(n.start_time.as_f64(), Some(1.0));
        assert_eq!(n.end_time, Field::Other(Box::new(Value::from("2"))));
        assert!(!n.in_progress && n.error);
        let Field::Ok(a) = &n.annotations else {
            panic!("annotations")
        };
        let keys: Vec<&str> = a.iter().map(|(k, _)| &**k).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        assert_eq!(a[1].1, Scalar::Num(Number::from_f64(2.5).expect("finite")));
        let Field::Ok(subs) = &n.subsegments else {
            panic!("subsegments")
        };
        assert!(matches!(&subs[0], Sub::Node(s) if s.name.as_str() == Some("s")));
        assert!(matches!(&subs[1], Sub::Other(_)));
        assert!(n.heap_bytes() > size_of::<Node>());
        assert_eq!(n.details().user.as_deref(), Some("u"));
        assert!(!n.details().has_http());
    }

    #[test]
    fn reads_http_and_user() {
        let n = parse(
            br#"{"http":{"request":{"url":"http://a/b","method":"GET","user_agent":7,
                 "client_ip":"10.0.0.1"},"response":{"status":503,"content_length":2}},
                 "subsegments":[{"http":{"response":{"status":"500"}}}]}"#,
        )
        .expect("object");
        let d = n.details();
        assert_eq!(d.url.as_deref(), Some("http://a/b"));
        assert_eq!(d.method.as_deref(), Some("GET"));
        assert_eq!(d.user_agent, None);
        assert_eq!(d.client_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(d.status, Some(503.0));
        let Field::Ok(subs) = &n.subsegments else {
            panic!("subsegments")
        };
        let Sub::Node(sub) = &subs[0] else {
            panic!("node")
        };
        // A status that is not a number is not a status.
        assert_eq!(sub.details, None);
        assert_eq!(parse(b"{}").expect("object").details, None);
    }

    #[test]
    fn same_verdict_as_value() {
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(200), "]".repeat(200));
        let cases: [&[u8]; 12] = [
            b"{\"a\":",
            b"nope",
            b"[1]",
            b"[1",
            b"\"s\"",
            b"{} x",
            b"{\"a\":1e999}",
            b"{\"a\":\"\xff\"}",
            b"{\"a\":\"\xc3",
            b"{\"a\":\"\\x\"}",
            deep.as_bytes(),
            b"{\"a\":{\"b\":[1,{\"c\":\"\\u00e9\"}]}}",
        ];
        for body in cases {
            let want = match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(_)) => None,
                Ok(_) => Some(ParseError::NotAnObject),
                Err(e) if e.is_eof() => Some(ParseError::Truncated),
                Err(_) => Some(ParseError::Invalid),
            };
            assert_eq!(
                parse(body).err(),
                want,
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn picks_one_top_level_field() {
        let raw = r#"{"http":1,"a":{"http":2},"http":{"request":{"url":"u"}}}"#;
        assert_eq!(
            top_level_field(raw, "http"),
            Some(serde_json::json!({"request":{"url":"u"}}))
        );
        assert_eq!(top_level_field(raw, "nope"), None);
    }
}
