//! Attribute lists read by key, and attribute values as JSON.

use std::collections::BTreeMap;

use base64::Engine as _;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use serde_json::{Map, Value as Json};

/// Nesting beyond this (arrays in arrays, lists in lists) becomes `null`.
const MAX_JSON_DEPTH: usize = 32;

/// Attributes by key, in key order. A repeated key keeps its last value (the
/// specification forbids repeats; receivers may do as they like); a key
/// without a value is absent.
#[derive(Debug, Default)]
pub(crate) struct Attrs<'a>(BTreeMap<&'a str, &'a Value>);

impl<'a> Attrs<'a> {
    pub(crate) fn new(list: &'a [KeyValue]) -> Self {
        Self(
            list.iter()
                .filter_map(|kv| Some((kv.key.as_str(), kv.value.as_ref()?.value.as_ref()?)))
                .collect(),
        )
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.0.get(key).copied()
    }

    /// A non-empty string value (empty strings count as absent, as in
    /// X-Ray's converter).
    pub(crate) fn str(&self, key: &str) -> Option<&'a str> {
        match self.get(key)? {
            Value::StringValue(s) if !s.is_empty() => Some(s),
            _ => None,
        }
    }

    /// The first key of `keys` with a non-empty string value.
    pub(crate) fn first_str(&self, keys: &[&str]) -> Option<&'a str> {
        keys.iter().find_map(|k| self.str(k))
    }

    /// An integer: an int value, a double with no fraction, or a string
    /// holding one.
    pub(crate) fn int(&self, key: &str) -> Option<i64> {
        match self.get(key)? {
            Value::IntValue(i) => Some(*i),
            Value::DoubleValue(d) if d.fract() == 0.0 && d.abs() < 9e15 => Some(*d as i64),
            Value::StringValue(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// A string or an integer, as text (ports come either way).
    pub(crate) fn text(&self, key: &str) -> Option<String> {
        match self.get(key)? {
            Value::StringValue(s) if !s.is_empty() => Some(s.clone()),
            Value::IntValue(i) => Some(i.to_string()),
            _ => None,
        }
    }

    /// The string entries of an array value (other entries are skipped).
    pub(crate) fn str_list(&self, key: &str) -> Option<Vec<&'a str>> {
        match self.get(key)? {
            Value::ArrayValue(a) => Some(
                a.values
                    .iter()
                    .filter_map(|v| match v.value.as_ref()? {
                        Value::StringValue(s) => Some(s.as_str()),
                        _ => None,
                    })
                    .collect(),
            ),
            _ => None,
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'a str, &'a Value)> + '_ {
        self.0.iter().map(|(k, v)| (*k, *v))
    }
}

/// An attribute value as JSON: scalars as they are (non-finite doubles
/// become `null`), arrays as arrays, key-value lists as objects, bytes as
/// base64 text.
pub(crate) fn to_json(v: &Value) -> Json {
    to_json_at(v, 0)
}

fn to_json_at(v: &Value, depth: usize) -> Json {
    if depth > MAX_JSON_DEPTH {
        return Json::Null;
    }
    match v {
        Value::StringValue(s) => Json::from(s.as_str()),
        Value::BoolValue(b) => Json::from(*b),
        Value::IntValue(i) => Json::from(*i),
        Value::DoubleValue(d) => Json::from(*d),
        Value::BytesValue(b) => Json::from(base64::engine::general_purpose::STANDARD.encode(b)),
        Value::ArrayValue(a) => Json::Array(
            a.values
                .iter()
                .map(|v| {
                    v.value
                        .as_ref()
                        .map_or(Json::Null, |v| to_json_at(v, depth + 1))
                })
                .collect(),
        ),
        Value::KvlistValue(l) => Json::Object(
            l.values
                .iter()
                .map(|kv| {
                    let v = kv
                        .value
                        .as_ref()
                        .and_then(|v| v.value.as_ref())
                        .map_or(Json::Null, |v| to_json_at(v, depth + 1));
                    (kv.key.clone(), v)
                })
                .collect::<Map<_, _>>(),
        ),
        // A profiles-only string table reference: nothing to resolve it against.
        Value::StringValueStrindex(_) => Json::Null,
    }
}

/// A scalar value as an annotation value (string, number or boolean), or
/// `None` for arrays, lists and bytes.
pub(crate) fn annotation_value(v: &Value) -> Option<Json> {
    match v {
        Value::StringValue(s) => Some(Json::from(s.as_str())),
        Value::BoolValue(b) => Some(Json::from(*b)),
        Value::IntValue(i) => Some(Json::from(*i)),
        Value::DoubleValue(d) if d.is_finite() => Some(Json::from(*d)),
        _ => None,
    }
}
