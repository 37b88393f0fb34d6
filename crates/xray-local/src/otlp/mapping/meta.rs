//! `sql`, `annotations` and `metadata`.

use std::collections::BTreeSet;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use serde_json::{Map, Value as Json};

use super::attrs::{Attrs, annotation_value, to_json};

/// The span attribute listing the keys to index as annotations.
pub(super) const ANNOTATIONS_KEY: &str = "aws.xray.annotations";
/// Attributes named `aws.xray.metadata.<namespace>` hold that namespace's
/// metadata as a JSON object in a string.
const METADATA_PREFIX: &str = "aws.xray.metadata.";
/// Resource attributes reach segments under `otel.resource.<key>`.
pub(super) const RESOURCE_PREFIX: &str = "otel.resource.";

/// `db.system` values of SQL databases: only these give an `sql` block.
const SQL_SYSTEMS: &[&str] = &[
    "db2",
    "derby",
    "hive",
    "mariadb",
    "mssql",
    "mysql",
    "oracle",
    "postgresql",
    "sqlite",
    "teradata",
    "other_sql",
];

/// The `sql` block for a span on an SQL database (marking the `db.*` keys
/// it reads), else `None`.
pub(super) fn sql<'a>(
    span_name: &str,
    attrs: &Attrs<'a>,
    consumed: &mut BTreeSet<&'a str>,
) -> Option<Json> {
    let system = attrs.str("db.system").filter(|s| SQL_SYSTEMS.contains(s))?;
    const KEYS: [&str; 5] = [
        "db.system",
        "db.connection_string",
        "db.name",
        "db.statement",
        "db.user",
    ];
    for (k, _) in attrs.iter() {
        if KEYS.contains(&k) {
            consumed.insert(k);
        }
    }
    let mut sql = Map::new();
    if !span_name.is_empty() {
        sql.insert("url".into(), span_name.into());
    }
    let conn = attrs.str("db.connection_string").unwrap_or("localhost");
    let db = attrs.str("db.name").unwrap_or("");
    sql.insert("connection_string".into(), format!("{conn}/{db}").into());
    sql.insert("database_type".into(), system.into());
    if let Some(u) = attrs.str("db.user") {
        sql.insert("user".into(), u.into());
    }
    if let Some(q) = attrs.str("db.statement") {
        sql.insert("sanitized_query".into(), q.into());
    }
    Some(sql.into())
}

/// An annotation key as segment documents take it: every character other
/// than `[A-Za-z0-9_]` becomes `_`.
pub(super) fn annotation_key(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// `annotations` and `metadata` from the attributes no other block read:
/// keys listed in `aws.xray.annotations` with a scalar value become
/// annotations, `aws.xray.metadata.<ns>` holding a JSON object becomes the
/// `<ns>` namespace, and everything else goes to `metadata.default`. On a
/// segment, the resource's attributes come too, as `otel.resource.<key>`.
pub(super) fn annotations_and_metadata(
    attrs: &Attrs<'_>,
    consumed: &BTreeSet<&str>,
    resource: Option<&Attrs<'_>>,
) -> (Map<String, Json>, Map<String, Json>) {
    let indexed: BTreeSet<&str> = attrs
        .str_list(ANNOTATIONS_KEY)
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut annotations = Map::new();
    let mut namespaces: Map<String, Json> = Map::new();
    let mut default = Map::new();
    for (key, value) in attrs.iter() {
        if key == ANNOTATIONS_KEY {
            continue;
        }
        if indexed.contains(key)
            && let Some(v) = annotation_value(value)
        {
            annotations.insert(annotation_key(key), v);
            continue;
        }
        if consumed.contains(key) {
            continue;
        }
        if let Some(ns) = key.strip_prefix(METADATA_PREFIX)
            && let Value::StringValue(text) = value
        {
            match serde_json::from_str::<Json>(text) {
                Ok(Json::Object(m)) if ns == "default" => default.extend(m),
                Ok(Json::Object(m)) if !ns.is_empty() => {
                    namespaces.insert(ns.to_string(), m.into());
                }
                _ => {
                    default.insert(key.to_string(), text.as_str().into());
                }
            }
            continue;
        }
        default.insert(key.to_string(), to_json(value));
    }
    for (key, value) in resource.into_iter().flat_map(Attrs::iter) {
        let key = format!("{RESOURCE_PREFIX}{key}");
        match annotation_value(value).filter(|_| indexed.contains(key.as_str())) {
            Some(v) => {
                annotations.insert(annotation_key(&key), v);
            }
            None => {
                default.insert(key, to_json(value));
            }
        }
    }
    let mut metadata = Map::new();
    if !default.is_empty() {
        metadata.insert("default".into(), default.into());
    }
    metadata.extend(namespaces);
    (annotations, metadata)
}
