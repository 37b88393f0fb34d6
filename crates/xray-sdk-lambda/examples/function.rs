//! A Rust function on AWS Lambda with X-Ray: per invocation, a `compute` subsegment and a
//! DynamoDB `PutItem` (through the X-Ray interceptor) under Lambda's segment, all sent before
//! the response.
//!
//! Environment:
//! - `DYNAMODB_ENDPOINT`: where DynamoDB is (`https://dynamodb.<region>.amazonaws.com`, or a
//!   local `http://` one such as moto's); without it, nothing is written.
//! - `DYNAMODB_TABLE`: the table (default `xray-lambda-example`), created if missing.
//! - `AWS_LAMBDA_MAX_CONCURRENCY` > 1 (Lambda Managed Instances): invocations run
//!   concurrently (`run_concurrent`); otherwise one at a time (`run`).
//!
//! Runs where a Lambda Runtime API is (`AWS_LAMBDA_RUNTIME_API`): on Lambda (see
//! docs/deploy-lambda.md and deploy/lambda/template.yaml), or locally under `cargo lambda
//! watch`: `cargo run -p xray-sdk-lambda --example function`.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use lambda_runtime::{Error, LambdaEvent, Runtime, service_fn};
use serde_json::{Value, json};
use tower::Layer;
use xray_sdk::{FutureExt, Record};
use xray_sdk_aws::XRayInterceptor;
use xray_sdk_lambda::{Init, XRayLambdaLayer};

const DEFAULT_TABLE: &str = "xray-lambda-example";

#[derive(Clone)]
struct Table {
    client: Client,
    name: String,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(false)
        .without_time() // CloudWatch Logs adds the time
        .init();

    let recorder = xray_sdk_lambda::recorder()?;
    // What init does (here: making the table ready) is sent with the first invocation.
    let init = Init::begin(&recorder);
    let table = match std::env::var("DYNAMODB_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => {
            let name = std::env::var("DYNAMODB_TABLE")
                .ok()
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| DEFAULT_TABLE.to_owned());
            let client = dynamodb(&endpoint).await;
            ensure_table(&client, &name)
                .in_context(init.context())
                .await?;
            Some(Table { client, name })
        }
        _ => None,
    };

    let layer = XRayLambdaLayer::new(recorder).init(init);
    let handler = layer.layer(service_fn(move |event| handle(event, table.clone())));
    let runtime = Runtime::new(handler);
    let concurrency = std::env::var("AWS_LAMBDA_MAX_CONCURRENCY")
        .ok()
        .and_then(|c| c.parse::<u32>().ok())
        .unwrap_or(1);
    if concurrency > 1 {
        runtime.run_concurrent().await
    } else {
        runtime.run().await
    }
}

/// Any JSON event in, JSON out.
async fn handle(event: LambdaEvent<Value>, table: Option<Table>) -> Result<Value, Error> {
    let (payload, context) = event.into_parts();
    let summary = xray_sdk::subsegment("compute", async {
        let summary = summarize(&payload);
        if let Some(current) = xray_sdk::Context::current() {
            current.annotate("event_kind", summary.kind);
            current.put_metadata("event_bytes", summary.bytes);
        }
        summary
    })
    .await;
    let stored = match &table {
        Some(table) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            table
                .client
                .put_item()
                .table_name(&table.name)
                .item("pk", AttributeValue::S(context.request_id.clone()))
                .item("received_at", AttributeValue::N(now.to_string()))
                .item("kind", AttributeValue::S(summary.kind.to_owned()))
                .item("bytes", AttributeValue::N(summary.bytes.to_string()))
                .send()
                .await?;
            true
        }
        None => false,
    };
    Ok(json!({
        "request_id": context.request_id,
        "kind": summary.kind,
        "bytes": summary.bytes,
        "fields": summary.fields,
        "stored": stored,
    }))
}

struct Summary {
    kind: &'static str,
    bytes: usize,
    fields: usize,
}

fn summarize(event: &Value) -> Summary {
    let (kind, fields) = match event {
        Value::Object(o) => ("object", o.len()),
        Value::Array(a) => ("array", a.len()),
        Value::String(_) => ("string", 0),
        Value::Number(_) => ("number", 0),
        Value::Bool(_) => ("bool", 0),
        Value::Null => ("null", 0),
    };
    Summary {
        kind,
        bytes: event.to_string().len(),
        fields,
    }
}

/// A DynamoDB client with the X-Ray interceptor. A local `http://` endpoint gets static
/// credentials (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, else `testing`); anything else
/// uses the function's own (the execution role's).
async fn dynamodb(endpoint: &str) -> Client {
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    let builder = if endpoint.starts_with("http://") {
        let key = std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_else(|_| "testing".into());
        let secret = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|_| "testing".into());
        aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region))
            .credentials_provider(Credentials::new(key, secret, None, None, "example"))
    } else {
        let shared = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region))
            .load()
            .await;
        aws_sdk_dynamodb::config::Builder::from(&shared)
    };
    let conf = builder
        .endpoint_url(endpoint)
        .interceptor(XRayInterceptor::new())
        .build();
    Client::from_conf(conf)
}

/// Creates `table` (hash key `pk`, a string) unless it exists.
async fn ensure_table(client: &Client, table: &str) -> Result<(), Error> {
    match client.describe_table().table_name(table).send().await {
        Ok(_) => return Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) => {}
        Err(e) => return Err(e.into()),
    }
    let created = client
        .create_table()
        .table_name(table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()?,
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
