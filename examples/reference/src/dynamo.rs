//! The DynamoDB client of the backends, and the table helpers the demo and the tests use.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};

use crate::config::{DynamoEndpoint, process_env};
use crate::error::chain;

/// A DynamoDB client for `endpoint` in `region`, with X-Ray instrumentation (every call is a
/// subsegment of the current segment).
pub async fn client(endpoint: &DynamoEndpoint, region: &str) -> Client {
    build(endpoint, region, true).await
}

/// A DynamoDB client without X-Ray instrumentation, for work outside any request (creating
/// the table, checking items in tests).
pub async fn admin_client(endpoint: &DynamoEndpoint, region: &str) -> Client {
    build(endpoint, region, false).await
}

/// The client of [`client`] and [`admin_client`].
///
/// A local endpoint gets static credentials (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` when
/// set, else `testing`), so no credential provider ever looks for instance metadata.
async fn build(endpoint: &DynamoEndpoint, region: &str, traced: bool) -> Client {
    let region = Region::new(region.to_string());
    let builder = match endpoint {
        DynamoEndpoint::Local(url) => {
            let key = process_env("AWS_ACCESS_KEY_ID").unwrap_or_else(|| "testing".into());
            let secret = process_env("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|| "testing".into());
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(region)
                .endpoint_url(url.clone())
                .credentials_provider(Credentials::new(key, secret, None, None, "xray-demo"))
        }
        DynamoEndpoint::Aws => {
            let shared = aws_config::defaults(BehaviorVersion::latest())
                .region(region)
                .load()
                .await;
            aws_sdk_dynamodb::config::Builder::from(&shared)
        }
    };
    let builder = if traced {
        crate::telemetry::instrument_dynamodb(builder)
    } else {
        builder
    };
    Client::from_conf(builder.build())
}

/// Creates `table` (key `SubAppId`, a string) unless it exists.
pub async fn ensure_table(client: &Client, table: &str) -> Result<(), String> {
    match client.describe_table().table_name(table).send().await {
        Ok(_) => return Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) => {}
        Err(e) => return Err(format!("describing table {table}: {}", chain(&e))),
    }
    let key = KeySchemaElement::builder()
        .attribute_name("SubAppId")
        .key_type(KeyType::Hash)
        .build()
        .map_err(|e| e.to_string())?;
    let attr = AttributeDefinition::builder()
        .attribute_name("SubAppId")
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| e.to_string())?;
    match client
        .create_table()
        .table_name(table)
        .key_schema(key)
        .attribute_definitions(attr)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(format!("creating table {table}: {}", chain(&e))),
    }
}

/// The item a backend writes: `{"SubAppId": id, "LastAccessed": epoch_seconds}`.
pub async fn put_access(
    client: &Client,
    table: &str,
    sub_app_id: &str,
    epoch_seconds: u64,
) -> Result<(), String> {
    client
        .put_item()
        .table_name(table)
        .item("SubAppId", AttributeValue::S(sub_app_id.to_string()))
        .item("LastAccessed", AttributeValue::N(epoch_seconds.to_string()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("PutItem on {table}: {}", chain(&e)))
}

/// `LastAccessed` of the item `sub_app_id`, if it exists (GetItem).
pub async fn last_accessed(
    client: &Client,
    table: &str,
    sub_app_id: &str,
) -> Result<Option<u64>, String> {
    let out = client
        .get_item()
        .table_name(table)
        .key("SubAppId", AttributeValue::S(sub_app_id.to_string()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| format!("GetItem on {table}: {}", chain(&e)))?;
    Ok(out
        .item()
        .and_then(|i| i.get("LastAccessed"))
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok()))
}
