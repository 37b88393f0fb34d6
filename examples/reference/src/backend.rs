//! Backend #1 (the date) and backend #2 (the time): each computes its value in a custom
//! subsegment, records the access in DynamoDB (`PutItem`) and answers JSON.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use xray_sdk::{Record, Recorder};
use xray_sdk_tower::XRayLayer;

use crate::config::{BackendConfig, Role};
use crate::error::ApiError;
use crate::telemetry::{annotate, current_trace_id};
use crate::{clock, dynamo};

struct Backend {
    role: Role,
    table: String,
    dynamo: aws_sdk_dynamodb::Client,
}

/// The path a backend serves its value on: `/api/date` (backend #1) or `/api/time` (#2).
pub fn value_path(role: Role) -> &'static str {
    match role {
        Role::Backend2 => "/api/time",
        _ => "/api/date",
    }
}

/// The router of a backend, traced by `recorder`.
pub async fn router(config: &BackendConfig, recorder: Recorder) -> Router {
    let dynamo = dynamo::client(&config.endpoint, &config.region).await;
    let state = Arc::new(Backend {
        role: config.common.role,
        table: config.table_name.clone(),
        dynamo,
    });
    Router::new()
        .route(value_path(config.common.role), get(value))
        .route("/health", get(crate::health))
        .layer(XRayLayer::new(recorder))
        .with_state(state)
}

async fn value(State(b): State<Arc<Backend>>) -> Result<Json<Value>, ApiError> {
    let (key, step) = match b.role {
        Role::Backend2 => ("time", "compute-time"),
        _ => ("date", "compute-date"),
    };
    let now = clock::epoch_seconds();
    // A custom subsegment: the computation, with what went into it as metadata.
    let computed = xray_sdk::subsegment(step, async move {
        let value = if key == "time" {
            clock::time(now)
        } else {
            clock::date(now)
        };
        if let Some(current) = xray_sdk::Context::current() {
            current.put_metadata("epoch_seconds", now);
            current.put_metadata("timezone", "UTC");
            current.put_metadata("result", &value);
        }
        value
    })
    .await;

    let sub_app_id = b.role.id();
    // Annotations are indexed: filter traces with annotation.backend = "backend1", etc.
    annotate("backend", sub_app_id);
    annotate("item_sub_app_id", sub_app_id);
    annotate("item_last_accessed", now);
    annotate(key, computed.clone());

    // The interceptor records this call as a `DynamoDB` subsegment of the segment.
    dynamo::put_access(&b.dynamo, &b.table, sub_app_id, now)
        .await
        .map_err(ApiError::bad_gateway)?;

    Ok(Json(json!({
        key: computed,
        "backend": sub_app_id,
        "item": {"SubAppId": sub_app_id, "LastAccessed": now},
        "trace_id": current_trace_id(),
    })))
}
