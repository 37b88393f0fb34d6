//! Handler errors: logged with their cause, answered as a 5xx JSON document.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A request that failed because of something downstream or inside the service.
#[derive(Debug)]
pub struct ApiError {
    /// 502 for a failed downstream call, 500 otherwise.
    pub status: StatusCode,
    /// What failed, with its cause.
    pub message: String,
}

impl ApiError {
    /// A downstream service or AWS call failed.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_GATEWAY,
            message: message.into(),
        }
    }

    /// Something inside the service failed.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }
}

/// `error` and its sources, joined by `: `.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut cur = error.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        tracing::error!(status = self.status.as_u16(), cause = %self.message, "request failed");
        let trace_id = xray_sdk::Context::current().map(|c| c.trace_id().to_string());
        (
            self.status,
            Json(json!({"error": self.message, "trace_id": trace_id})),
        )
            .into_response()
    }
}
