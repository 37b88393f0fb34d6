//! An axum service traced with X-Ray.
//!
//! ```text
//! # a daemon (or `xray-local`, or just `nc -ul 2000` to watch the datagrams; nc has no
//! # sampling API, so the first request logs once that the local rules decide)
//! AWS_XRAY_DAEMON_ADDRESS=127.0.0.1:2000 PORT=3000 cargo run -p xray-sdk-tower --example axum_service
//! curl -i localhost:3000/
//! curl -i -H 'X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?' localhost:3000/orders/42
//! # a caller instrumented with OpenTelemetry: the segment continues its trace (W3C)
//! curl -i -H 'traceparent: 00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01' localhost:3000/orders/42
//! curl -i localhost:3000/missing     # 404: error=true
//! curl -N localhost:3000/stream      # the segment ends after the last chunk
//! curl -i localhost:3000/orders/0    # 500 from a returned error: fault, and the error as the cause
//! curl -i localhost:3000/orders/x    # 400 from a returned error: error, and the cause
//! ```
//!
//! Settings come from the environment (`AWS_XRAY_DAEMON_ADDRESS`, `AWS_XRAY_TRACING_NAME`,
//! `AWS_XRAY_SDK_ENABLED`, ...); `PORT` picks the port (default 3000). A `traceparent` is read
//! whatever the settings say, when the request has no `X-Amzn-Trace-Id`. The OpenTelemetry
//! variables send the same recording as OTLP spans instead (the core's `otlp` feature, on in
//! this crate's examples):
//!
//! ```text
//! OTEL_TRACES_EXPORTER=otlp OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 \
//!     cargo run -p xray-sdk-tower --example axum_service
//! ```

#![allow(clippy::print_stdout)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;
use xray_sdk::Record;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http_body::Frame;
use xray_sdk::Recorder;
use xray_sdk_tower::{ErrorCause, XRayContext, XRayLayer};

/// The handlers' error type. Its response carries an `ErrorCause`, which the layer records as
/// the segment's cause (the error and its sources); the client sees only a short message.
#[derive(Debug)]
enum AppError {
    /// The id in the path is not a number: the caller's mistake (400, `error`).
    BadId(std::num::ParseIntError),
    /// The order could not be loaded: ours (500, `fault`).
    Storage(std::io::Error),
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::BadId(_) => f.write_str("the order id is not a number"),
            AppError::Storage(_) => f.write_str("the order could not be loaded"),
        }
    }
}

impl std::error::Error for AppError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AppError::BadId(e) => Some(e),
            AppError::Storage(e) => Some(e),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match self {
            AppError::BadId(_) => StatusCode::BAD_REQUEST,
            AppError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = format!("{self}\n");
        (status, ErrorCause::new(self), message).into_response()
    }
}

async fn order(segment: XRayContext, Path(id): Path<String>) -> Result<String, AppError> {
    let id: u32 = id.parse().map_err(AppError::BadId)?;
    if id == 0 {
        return Err(AppError::Storage(std::io::Error::other(
            "order 0 is in a table that was dropped",
        )));
    }
    segment.annotate("order_id", id);
    // A timed step: a subsegment of the request's segment, found through the current context.
    let total = xray_sdk::subsegment("price-order", async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        u64::from(id) * 3
    })
    .await;
    segment.put_metadata("total_cents", total);
    Ok(format!("order {id}: {total} cents\n"))
}

async fn stream() -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        for i in 0..5 {
            if tx.send(Bytes::from(format!("chunk {i}\n"))).await.is_err() {
                return; // the client went away; the segment was sent when the body dropped
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    Body::new(ChannelBody(rx))
}

/// A response body fed through a channel, one data frame per message.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let recorder = Recorder::from_env();
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);

    let app = Router::new()
        .route("/", get(|| async { "hello\n" }))
        .route("/orders/{id}", get(order))
        .route("/stream", get(stream))
        .layer(XRayLayer::new(recorder.clone()));

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!(
        "listening on http://{}; segments go to {} (service name {:?})",
        listener.local_addr()?,
        recorder.daemon_address(),
        recorder.service_name(),
    );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop_signal())
    .await?;
    // The requests in flight are answered; send what they recorded and stop the recorder.
    let report = recorder.shutdown(Duration::from_secs(2)).await;
    println!(
        "stopped: {} segments sent, {} not sent",
        report.stats.sent,
        report.pending + report.lost
    );
    Ok(())
}

/// Ctrl-C, or SIGTERM (how ECS, Kubernetes and systemd stop a service).
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut sigterm) = signal(SignalKind::terminate()) else {
        tokio::signal::ctrl_c().await.ok();
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = sigterm.recv() => {}
    }
}
