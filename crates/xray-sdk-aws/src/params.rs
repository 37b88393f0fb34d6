//! The parameter whitelist: which request and response fields of an operation go into the
//! subsegment's `aws` block, read from the serialized JSON bodies.
//!
//! The content is the one every official X-Ray SDK ships (`AWSWhitelist.json` and its
//! siblings), with the output keys already in snake_case. Fields are looked up in the wire
//! JSON of the `awsJson` protocols, so the values are copied exactly as the service saw them,
//! whichever version of the generated client built the request.

use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

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
pub(crate) fn pick(body: &[u8], params: &'static [Param]) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    if params.is_empty() || body.is_empty() || !may_contain_any(body, params) {
        return out;
    }
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
    out: &'a mut Vec<(&'static str, Value)>,
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
                Capture::Value => map.next_value::<Value>()?,
                Capture::Count => match map.next_value::<Value>()? {
                    Value::Array(items) => Value::from(items.len()),
                    _ => continue,
                },
                Capture::Keys => match map.next_value::<Value>()? {
                    Value::Object(m) => {
                        Value::Array(m.into_iter().map(|(k, _)| k.into()).collect())
                    }
                    _ => continue,
                },
            };
            self.out.push((param.key, value));
        }
        Ok(())
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

    #[test]
    fn picks_whitelisted_fields_only() {
        let op = lookup("DynamoDB", "GetItem").unwrap();
        let body = br#"{"TableName":"users","Key":{"id":{"S":"1"}},"ConsistentRead":true,"ProjectionExpression":"a, b"}"#;
        let got = pick(body, op.request);
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
        let got = pick(br#"{"RequestItems":{"t1":[],"t\u0032":[]}}"#, op.request);
        assert_eq!(got, vec![("table_names", json!(["t1", "t2"]))]);
        let op = lookup("DynamoDB", "ListTables").unwrap();
        let got = pick(br#"{"TableNames":["a","b","c"]}"#, op.response);
        assert_eq!(got, vec![("table_count", json!(3))]);
    }

    #[test]
    fn bodies_without_the_fields_are_not_parsed() {
        let op = lookup("DynamoDB", "GetItem").unwrap();
        let body = br#"{"Item":{"id":{"S":"1"},"note":{"S":"no ConsumedCapacity here"}}}"#;
        assert!(!may_contain_any(body, op.response));
        assert!(pick(body, op.response).is_empty());
        // A value that looks like the name only costs a parse; the result is the same.
        let body = br#"{"Item":{"note":{"S":"ConsumedCapacity"}}}"#;
        assert!(may_contain_any(body, op.response));
        assert!(pick(body, op.response).is_empty());
        let body = br#"{"Item":{},"ConsumedCapacity":{"CapacityUnits":0.5,"TableName":"t"}}"#;
        assert!(may_contain_any(body, op.response));
        assert_eq!(
            pick(body, op.response),
            vec![(
                "consumed_capacity",
                json!({"CapacityUnits": 0.5, "TableName": "t"})
            )]
        );
        // A key spelled with an escape is still found.
        let body = br#"{"Consumed\u0043apacity":{"CapacityUnits":1}}"#;
        assert!(may_contain_any(body, op.response));
        assert_eq!(pick(body, op.response).len(), 1);
    }

    #[test]
    fn garbage_yields_nothing() {
        let op = lookup("DynamoDB", "GetItem").unwrap();
        assert!(pick(b"", op.request).is_empty());
        assert!(pick(b"[1,2]", op.request).is_empty());
        assert!(pick(b"{\"TableName\":", op.request).is_empty());
        assert!(lookup("S3", "GetObject").is_none());
        assert!(lookup("DynamoDB", "TransactWriteItems").is_none());
    }
}
