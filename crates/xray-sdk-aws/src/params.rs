//! The parameter whitelist: which request and response fields of an operation go into the
//! subsegment's `aws` block, read from the serialized JSON bodies.
//!
//! The content is the one every official X-Ray SDK ships (`AWSWhitelist.json` and its
//! siblings), with the output keys already in snake_case. Fields are looked up in the wire
//! JSON of the `awsJson` protocols, so the values are copied exactly as the service saw them,
//! whichever version of the generated client built the request.

use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

/// A captured `aws` value: built (a count, a list of keys, a value the adapter computed) or
/// the JSON text of the body, copied as it is.
#[derive(Debug)]
pub(crate) enum Picked {
    Value(Value),
    Raw(Box<RawValue>),
}

impl From<Value> for Picked {
    fn from(v: Value) -> Self {
        Picked::Value(v)
    }
}

/// How a whitelisted field becomes an `aws` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Capture {
    /// The value, verbatim.
    Value,
    /// The number of elements of a list.
    Count,
    /// The keys of a map, as a list of strings.
    Keys,
}

/// One whitelisted field: its name in the JSON body, its key in the `aws` block, and how it
/// is captured.
#[derive(Debug)]
pub(crate) struct Param {
    pub(crate) field: &'static str,
    pub(crate) key: &'static str,
    pub(crate) capture: Capture,
}

/// The whitelisted fields of one operation.
#[derive(Debug)]
pub(crate) struct OperationParams {
    pub(crate) operation: &'static str,
    pub(crate) request: &'static [Param],
    pub(crate) response: &'static [Param],
}

const fn v(field: &'static str, key: &'static str) -> Param {
    Param {
        field,
        key,
        capture: Capture::Value,
    }
}

const TABLE_NAME: Param = v("TableName", "table_name");
const CONSUMED_CAPACITY: Param = v("ConsumedCapacity", "consumed_capacity");
const ITEM_COLLECTION_METRICS: Param = v("ItemCollectionMetrics", "item_collection_metrics");
const CONSISTENT_READ: Param = v("ConsistentRead", "consistent_read");
const PROJECTION_EXPRESSION: Param = v("ProjectionExpression", "projection_expression");
const ATTRIBUTES_TO_GET: Param = v("AttributesToGet", "attributes_to_get");
const INDEX_NAME: Param = v("IndexName", "index_name");
const LIMIT: Param = v("Limit", "limit");
const SELECT: Param = v("Select", "select");
const PROVISIONED_THROUGHPUT: Param = v("ProvisionedThroughput", "provisioned_throughput");
const TABLE_NAMES_FROM_REQUEST_ITEMS: Param = Param {
    field: "RequestItems",
    key: "table_names",
    capture: Capture::Keys,
};

/// DynamoDB: the 13 operations of the official whitelist.
static DYNAMODB: &[OperationParams] = &[
    OperationParams {
        operation: "BatchGetItem",
        request: &[TABLE_NAMES_FROM_REQUEST_ITEMS],
        response: &[CONSUMED_CAPACITY],
    },
    OperationParams {
        operation: "BatchWriteItem",
        request: &[TABLE_NAMES_FROM_REQUEST_ITEMS],
        response: &[CONSUMED_CAPACITY, ITEM_COLLECTION_METRICS],
    },
    OperationParams {
        operation: "CreateTable",
        request: &[
            v("GlobalSecondaryIndexes", "global_secondary_indexes"),
            v("LocalSecondaryIndexes", "local_secondary_indexes"),
            PROVISIONED_THROUGHPUT,
            TABLE_NAME,
        ],
        response: &[],
    },
    OperationParams {
        operation: "DeleteItem",
        request: &[TABLE_NAME],
        response: &[CONSUMED_CAPACITY, ITEM_COLLECTION_METRICS],
    },
    OperationParams {
        operation: "DeleteTable",
        request: &[TABLE_NAME],
        response: &[],
    },
    OperationParams {
        operation: "DescribeTable",
        request: &[TABLE_NAME],
        response: &[],
    },
    OperationParams {
        operation: "GetItem",
        request: &[CONSISTENT_READ, PROJECTION_EXPRESSION, TABLE_NAME],
        response: &[CONSUMED_CAPACITY],
    },
    OperationParams {
        operation: "ListTables",
        request: &[
            v("ExclusiveStartTableName", "exclusive_start_table_name"),
            LIMIT,
        ],
        response: &[Param {
            field: "TableNames",
            key: "table_count",
            capture: Capture::Count,
        }],
    },
    OperationParams {
        operation: "PutItem",
        request: &[TABLE_NAME],
        response: &[CONSUMED_CAPACITY, ITEM_COLLECTION_METRICS],
    },
    OperationParams {
        operation: "Query",
        request: &[
            ATTRIBUTES_TO_GET,
            CONSISTENT_READ,
            INDEX_NAME,
            LIMIT,
            PROJECTION_EXPRESSION,
            v("ScanIndexForward", "scan_index_forward"),
            SELECT,
            TABLE_NAME,
        ],
        response: &[CONSUMED_CAPACITY],
    },
    OperationParams {
        operation: "Scan",
        request: &[
            ATTRIBUTES_TO_GET,
            CONSISTENT_READ,
            INDEX_NAME,
            LIMIT,
            PROJECTION_EXPRESSION,
            v("Segment", "segment"),
            SELECT,
            TABLE_NAME,
            v("TotalSegments", "total_segments"),
        ],
        response: &[
            CONSUMED_CAPACITY,
            v("Count", "count"),
            v("ScannedCount", "scanned_count"),
        ],
    },
    OperationParams {
        operation: "UpdateItem",
        request: &[TABLE_NAME],
        response: &[CONSUMED_CAPACITY, ITEM_COLLECTION_METRICS],
    },
    OperationParams {
        operation: "UpdateTable",
        request: &[
            v("AttributeDefinitions", "attribute_definitions"),
            v(
                "GlobalSecondaryIndexUpdates",
                "global_secondary_index_updates",
            ),
            PROVISIONED_THROUGHPUT,
            TABLE_NAME,
        ],
        response: &[],
    },
];

/// The whitelist entry of an operation, if it has one. `service` is the SDK's service ID in
/// any case (`DynamoDB`, `dynamodb`).
pub(crate) fn lookup(service: &str, operation: &str) -> Option<&'static OperationParams> {
    let table = if service.eq_ignore_ascii_case("dynamodb") {
        DYNAMODB
    } else {
        return None;
    };
    table.iter().find(|op| op.operation == operation)
}

/// Picks the whitelisted top-level fields out of a JSON object body. Fields that are absent,
/// and bodies that are not a JSON object, yield nothing. Fields that are not whitelisted are
/// skipped without being built.
pub(crate) fn pick(body: &[u8], params: &'static [Param]) -> Vec<(&'static str, Picked)> {
    if params.is_empty() || body.is_empty() || !may_contain_any(body, params) {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(params.len());
    let mut de = serde_json::Deserializer::from_slice(body);
    if let Err(e) = (Picker {
        params,
        out: &mut out,
    })
    .deserialize(&mut de)
    {
        tracing::debug!(error = %e, "AWS body is not the JSON object expected; parameters skipped");
    }
    out
}

/// False when no whitelisted field can be in `body`: none of the names appears between
/// quotes, and no `\u` escape could spell one. Most responses (a `GetItem` without
/// `ReturnConsumedCapacity`, say) are then not parsed at all.
fn may_contain_any(body: &[u8], params: &[Param]) -> bool {
    if body.windows(2).any(|w| w == b"\\u") {
        return true;
    }
    params.iter().any(|p| {
        let name = p.field.as_bytes();
        body.windows(name.len() + 2).any(|w| {
            w.first() == Some(&b'"') && w.last() == Some(&b'"') && &w[1..=name.len()] == name
        })
    })
}

struct Picker<'a> {
    params: &'static [Param],
    out: &'a mut Vec<(&'static str, Picked)>,
}

impl<'de> DeserializeSeed<'de> for Picker<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Picker<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(found) = map.next_key_seed(KeyFinder(self.params))? {
            let Some(param) = found else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let value = match param.capture {
                Capture::Value => Picked::Raw(map.next_value::<Box<RawValue>>()?),
                Capture::Count => match map.next_value_seed(Shape::Count)? {
                    Some(count) => count.into(),
                    None => continue,
                },
                Capture::Keys => match map.next_value_seed(Shape::Keys)? {
                    Some(keys) => keys.into(),
                    None => continue,
                },
            };
            self.out.push((param.key, value));
        }
        Ok(())
    }
}

/// Reads a value for [`Capture::Count`] (the length of a list) or [`Capture::Keys`] (the keys
/// of a map) without building the elements; a value of another shape yields `None`.
#[derive(Clone, Copy)]
enum Shape {
    Count,
    Keys,
}

impl<'de> DeserializeSeed<'de> for Shape {
    type Value = Option<Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Shape {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut count = 0_usize;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            count += 1;
        }
        Ok(matches!(self, Shape::Count).then(|| count.into()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut keys = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            map.next_value::<IgnoredAny>()?;
            if matches!(self, Shape::Keys) {
                keys.push(Value::String(key));
            }
        }
        Ok(matches!(self, Shape::Keys).then(|| Value::Array(keys)))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// Reads a key and says which whitelisted field it is, without allocating.
struct KeyFinder(&'static [Param]);

impl<'de> DeserializeSeed<'de> for KeyFinder {
    type Value = Option<&'static Param>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyFinder {
    type Value = Option<&'static Param>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().find(|p| p.field == key))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `pick`, with raw values parsed back so they compare as JSON.
    fn pick_values(body: &[u8], params: &'static [Param]) -> Vec<(&'static str, Value)> {
        super::pick(body, params)
            .into_iter()
            .map(|(k, v)| match v {
                Picked::Value(v) => (k, v),
                Picked::Raw(raw) => (k, serde_json::from_str(raw.get()).unwrap()),
            })
            .collect()
    }

    #[test]
    fn picks_whitelisted_fields_only() {
        let op = lookup("DynamoDB", "GetItem").unwrap();
        let body = br#"{"TableName":"users","Key":{"id":{"S":"1"}},"ConsistentRead":true,"ProjectionExpression":"a, b"}"#;
        let got = pick_values(body, op.request);
        assert_eq!(
            got,
            vec![
                ("table_name", json!("users")),
                ("consistent_read", json!(true)),
                ("projection_expression", json!("a, b")),
            ]
        );
    }

    #[test]
    fn counts_and_keys() {
        let op = lookup("dynamodb", "BatchWriteItem").unwrap();
        let got = pick_values(br#"{"RequestItems":{"t1":[],"t\u0032":[]}}"#, op.request);
        assert_eq!(got, vec![("table_names", json!(["t1", "t2"]))]);
        let op = lookup("DynamoDB", "ListTables").unwrap();
        let got = pick_values(br#"{"TableNames":["a","b","c"]}"#, op.response);
        assert_eq!(got, vec![("table_count", json!(3))]);
    }

    #[test]
    fn bodies_without_the_fields_are_not_parsed() {
        let op = lookup("DynamoDB", "GetItem").unwrap();
        let body = br#"{"Item":{"id":{"S":"1"},"note":{"S":"no ConsumedCapacity here"}}}"#;
        assert!(!may_contain_any(body, op.response));
        assert!(pick_values(body, op.response).is_empty());
        // A value that looks like the name only costs a parse; the result is the same.
        let body = br#"{"Item":{"note":{"S":"ConsumedCapacity"}}}"#;
        assert!(may_contain_any(body, op.response));
        assert!(pick_values(body, op.response).is_empty());
        let body = br#"{"Item":{},"ConsumedCapacity":{"CapacityUnits":0.5,"TableName":"t"}}"#;
        assert!(may_contain_any(body, op.response));
        assert_eq!(
            pick_values(body, op.response),
            vec![(
                "consumed_capacity",
                json!({"CapacityUnits": 0.5, "TableName": "t"})
            )]
        );
        // A key spelled with an escape is still found.
        let body = br#"{"Consumed\u0043apacity":{"CapacityUnits":1}}"#;
        assert!(may_contain_any(body, op.response));
        assert_eq!(pick_values(body, op.response).len(), 1);
    }

    #[test]
    fn garbage_yields_nothing() {
        let op = lookup("DynamoDB", "GetItem").unwrap();
        assert!(pick_values(b"", op.request).is_empty());
        assert!(pick_values(b"[1,2]", op.request).is_empty());
        assert!(pick_values(b"{\"TableName\":", op.request).is_empty());
        // A count of something that is not a list, keys of something that is not a map.
        let op = lookup("DynamoDB", "ListTables").unwrap();
        assert!(pick_values(br#"{"TableNames":{"a":1}}"#, op.response).is_empty());
        let op = lookup("dynamodb", "BatchWriteItem").unwrap();
        assert!(pick_values(br#"{"RequestItems":["t1"]}"#, op.request).is_empty());
        assert!(pick_values(br#"{"RequestItems":"t1"}"#, op.request).is_empty());
        assert!(lookup("S3", "GetObject").is_none());
        assert!(lookup("DynamoDB", "TransactWriteItems").is_none());
    }
}
