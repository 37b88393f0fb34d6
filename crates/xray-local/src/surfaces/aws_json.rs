//! Answers in the AWS REST-JSON style, shared by the surfaces that speak
//! it: the body, `Content-Type`, a request ID, and for errors the HTTP status
//! and the `x-amzn-ErrorType` header the AWS SDKs read the error type from.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::ops::OpResult;

static REQUESTS: AtomicU64 = AtomicU64::new(1);

/// A request ID in the usual UUID shape, unique within this process.
fn request_id() -> String {
    let n = REQUESTS.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    format!("{pid:08x}-0000-4000-8000-{n:012x}")
}

/// The HTTP answer to an operation's result.
pub fn respond(result: OpResult) -> Response {
    let (status, body, error) = match result {
        Ok(v) => (StatusCode::OK, v, None),
        Err(e) => (
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            e.body(),
            Some(e.kind),
        ),
    };
    let mut r = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    let headers = r.headers_mut();
    if let Ok(id) = HeaderValue::from_str(&request_id()) {
        headers.insert("x-amzn-RequestId", id);
    }
    if let Some(kind) = error {
        headers.insert("x-amzn-ErrorType", HeaderValue::from_static(kind));
    }
    r
}
