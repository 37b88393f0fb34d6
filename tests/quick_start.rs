//! The README's quick start, verbatim below this header (`quick_start_test.rs` checks that
//! it is): built as a binary so a test can run it, stop it with SIGINT and check what it sent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::{Router, extract::State, routing::get};
use tracing_subscriber::EnvFilter;
use xray_sdk::Recorder;
use xray_sdk_aws::XRayInterceptor; // AWS SDK calls
use xray_sdk_reqwest::XRayMiddleware; // outgoing HTTP
use xray_sdk_tower::XRayLayer; // incoming requests

#[derive(Clone)]
struct Clients {
    http: reqwest_middleware::ClientWithMiddleware,
    dynamodb: aws_sdk_dynamodb::Client,
}

async fn handler(State(clients): State<Clients>) -> String {
    // Both calls are subsegments of this request's segment, and pass the trace on.
    let inventory = clients
        .http
        .get("http://inventory.internal/stock")
        .send()
        .await;
    let tables = clients.dynamodb.list_tables().send().await;
    format!("{} {}\n", inventory.is_ok(), tables.is_ok())
}

#[tokio::main]
async fn main() {
    // The SDK logs through `tracing`: a line at start saying where segments go, warnings when
    // they cannot be sent. `RUST_LOG=xray_sdk=debug` adds each request's sampling decision.
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    // `AWS_XRAY_*` variables apply (`AWS_XRAY_TRACING_NAME` replaces the name given here);
    // the daemon is at 127.0.0.1:2000 unless `AWS_XRAY_DAEMON_ADDRESS` says otherwise.
    let recorder = Recorder::builder()
        .service_name("checkout")
        .build()
        .expect("valid X-Ray settings");
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(XRayMiddleware::new())
        .build();
    let sdk = aws_config::load_from_env().await;
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .interceptor(XRayInterceptor::new())
            .build(),
    );
    let app = Router::new()
        .route("/", get(handler))
        .with_state(Clients { http, dynamodb })
        .layer(XRayLayer::new(recorder.clone()));
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".to_owned());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    // With the peer address, segments record the client's IP when no `X-Forwarded-For` does.
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    // On Ctrl-C or SIGTERM, finish the requests in flight, then send the segments still
    // queued and stop the SDK's background work.
    axum::serve(listener, service)
        .with_graceful_shutdown(stop_signal())
        .await
        .unwrap();
    let report = recorder.shutdown(Duration::from_secs(2)).await;
    if !report.is_complete() {
        eprintln!("X-Ray: {} segments not sent", report.pending + report.lost);
    }
}

/// Ctrl-C, or SIGTERM (how ECS, Kubernetes and systemd stop a service).
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigterm = signal(SignalKind::terminate()).expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = sigterm.recv() => {}
    }
}
