//! The backend for frontend: serves the page, and `/api/now`, which calls backend #1 (the
//! date) then backend #2 (the time) and combines their answers.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use reqwest_middleware::ClientWithMiddleware;
use serde_json::{Value, json};
use xray_sdk::Recorder;
use xray_sdk_reqwest::XRayMiddleware;
use xray_sdk_tower::XRayLayer;

use crate::backend::value_path;
use crate::config::{BffConfig, Role};
use crate::error::{ApiError, chain};
use crate::telemetry::{annotate, current_trace_id};

/// The page: calls `/api/now` and shows the date and time.
pub const INDEX_HTML: &str = include_str!("../static/index.html");

struct Bff {
    client: ClientWithMiddleware,
    date_url: String,
    time_url: String,
}

/// The router of the BFF, traced by `recorder`.
pub fn router(config: &BffConfig, recorder: Recorder) -> Result<Router, String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(3))
        .build()
        .map_err(|e| format!("building the HTTP client: {}", chain(&e)))?;
    let client = reqwest_middleware::ClientBuilder::new(http)
        .with(XRayMiddleware::new())
        .build();
    let state = Arc::new(Bff {
        client,
        date_url: format!("{}{}", config.backend1_url, value_path(Role::Backend1)),
        time_url: format!("{}{}", config.backend2_url, value_path(Role::Backend2)),
    });
    Ok(Router::new()
        .route("/", get(|| async { Html(INDEX_HTML) }))
        .route("/api/now", get(now))
        .route("/health", get(crate::health))
        .layer(XRayLayer::new(recorder))
        .with_state(state))
}

async fn now(State(bff): State<Arc<Bff>>) -> Result<Json<Value>, ApiError> {
    // One after the other, as the architecture says: two remote subsegments in sequence.
    let date = fetch(&bff.client, &bff.date_url).await?;
    let time = fetch(&bff.client, &bff.time_url).await?;
    let date_value = date.get("date").cloned().unwrap_or(Value::Null);
    let time_value = time.get("time").cloned().unwrap_or(Value::Null);
    annotate("backends_called", 2u64);
    if let Some(d) = date_value.as_str() {
        annotate("date", d.to_string());
    }
    Ok(Json(json!({
        "date": date_value,
        "time": time_value,
        "trace_id": current_trace_id(),
        "backends": {"backend1": date, "backend2": time},
    })))
}

async fn fetch(client: &ClientWithMiddleware, url: &str) -> Result<Value, ApiError> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| ApiError::bad_gateway(format!("GET {url}: {}", chain(&e))))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(ApiError::bad_gateway(format!(
            "GET {url} answered {status}: {}",
            body.chars().take(300).collect::<String>()
        )));
    }
    response
        .json::<Value>()
        .await
        .map_err(|e| ApiError::bad_gateway(format!("GET {url}: invalid JSON: {}", chain(&e))))
}
