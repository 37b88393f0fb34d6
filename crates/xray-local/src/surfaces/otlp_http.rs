//! OTLP/HTTP on the UI port: `POST /v1/traces`, as X-Ray's OTLP endpoint
//! and the collectors take it (protobuf or JSON, gzip or not).
//!
//! Answers, as OTLP/HTTP says: 200 with an `ExportTraceServiceResponse` in
//! the request's encoding (`partial_success` when spans were rejected), 400
//! with a `google.rpc.Status` for a body that cannot be read, 413 for one
//! over the endpoint's 5 MB (counted as it is read and as it is inflated, so
//! a gzip bomb stops early), 415 for a content type or encoding other than
//! those. Bodies are decoded one at a time, off the async workers, so
//! several large requests at once cost no more memory than one.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::BodyExt as _;
use tokio::sync::Semaphore;

use crate::otlp::MAX_BODY_BYTES;
use crate::otlp::wire::{self, BodyError, Compression, Encoding};
use crate::state::App;

/// The path OTLP/HTTP exporters send traces to.
pub const PATH: &str = "/v1/traces";

/// Room for gzip's own framing over an incompressible body.
const GZIP_SLACK: usize = 64 * 1024;

/// The OTLP/HTTP route.
pub fn routes() -> Router<Arc<App>> {
    let gate = Arc::new(Semaphore::new(1));
    Router::new().route(
        PATH,
        post(move |State(app): State<Arc<App>>, req: Request| {
            let gate = gate.clone();
            async move { export(app, gate, req).await }
        }),
    )
}

fn answer(status: StatusCode, encoding: Encoding, body: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, encoding.content_type())],
        body,
    )
        .into_response()
}

/// A 4xx with a `google.rpc.Status`, counted under `reason`.
fn refuse(
    app: &App,
    status: StatusCode,
    encoding: Encoding,
    reason: &str,
    message: &str,
) -> Response {
    app.intake.otlp.record_request_rejected(reason);
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        wire::CODE_RESOURCE_EXHAUSTED
    } else {
        wire::CODE_INVALID_ARGUMENT
    };
    answer(status, encoding, wire::status_body(encoding, code, message))
}

fn body_error(app: &App, encoding: Encoding, e: &BodyError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    refuse(app, status, encoding, e.reason(), &e.to_string())
}

async fn export(app: Arc<App>, gate: Arc<Semaphore>, req: Request) -> Response {
    app.intake.otlp.record_request();
    let headers = req.headers();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(encoding) = Encoding::from_content_type(content_type) else {
        return refuse(
            &app,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Encoding::Protobuf,
            "unsupported_media_type",
            &format!(
                "Content-Type {content_type:?} is not application/x-protobuf or application/json"
            ),
        );
    };
    let encoding_header = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?"));
    let compression = match Compression::from_header(encoding_header) {
        Ok(c) => c,
        Err(other) => {
            let mut r = refuse(
                &app,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                encoding,
                "unsupported_encoding",
                &format!("Content-Encoding {other:?} is not gzip (or none)"),
            );
            r.headers_mut()
                .insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
            return r;
        }
    };
    let limit = match compression {
        Compression::None => MAX_BODY_BYTES,
        Compression::Gzip => MAX_BODY_BYTES + GZIP_SLACK,
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return body_error(&app, encoding, &BodyError::TooLarge);
    }
    let capacity = declared.map_or(0, |n| n as usize);
    let body = match read_limited(req.into_body(), limit, capacity).await {
        Ok(b) => b,
        Err(None) => return body_error(&app, encoding, &BodyError::TooLarge),
        Err(Some(e)) => {
            return refuse(
                &app,
                StatusCode::BAD_REQUEST,
                encoding,
                "body_read_failed",
                &format!("the request body could not be read: {e}"),
            );
        }
    };
    // One decode at a time: the decoded form of a body can be many times
    // its size.
    let Ok(_permit) = gate.acquire_owned().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let worker = app.clone();
    let decoded = tokio::task::spawn_blocking(move || {
        let plain = match compression {
            Compression::None => body,
            Compression::Gzip => wire::inflate(&body, MAX_BODY_BYTES)?,
        };
        let request = wire::decode_body(&plain, encoding)?;
        drop(plain);
        Ok::<_, BodyError>(worker.ingest_otlp(&request, None))
    })
    .await;
    match decoded {
        Ok(Ok(outcome)) => answer(
            StatusCode::OK,
            encoding,
            wire::response_body(encoding, outcome.rejected, &outcome.message),
        ),
        Ok(Err(e)) => body_error(&app, encoding, &e),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Reads a body, giving up (`Err(None)`) as soon as it passes `limit`
/// bytes; `Err(Some(..))` when the connection fails.
async fn read_limited(
    mut body: Body,
    limit: usize,
    capacity: usize,
) -> Result<Vec<u8>, Option<String>> {
    let mut out = Vec::with_capacity(capacity.min(limit));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Some(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(None);
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}
