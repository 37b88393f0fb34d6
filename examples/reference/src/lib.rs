//! # xray-demo: the reference architecture
//!
//! A frontend page, a BFF and two backends, traced end to end with the X-Ray SDK for Rust:
//!
//! ```text
//! browser ──▶ bff (axum + XRayLayer, reqwest + XRayMiddleware)
//!               ├──▶ backend1 /api/date (axum + XRayLayer, DynamoDB PutItem)
//!               └──▶ backend2 /api/time (axum + XRayLayer, DynamoDB PutItem)
//! ```
//!
//! Each service is a binary of this package (`bff`, `backend1`, `backend2`), configured from
//! the environment ([`config`]). The `demo` binary ([`demo`]) starts everything on this
//! machine with xray-local as the daemon and moto as DynamoDB; `scripts/demo.sh` wraps it.

pub mod backend;
pub mod bff;
pub mod clock;
pub mod config;
pub mod demo;
pub mod dynamo;
pub mod error;
pub mod telemetry;

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::config::{BackendConfig, BffConfig, Role};

/// `GET /health`: always 200. Never traced: a sampling rule (GET /health, rate 0) excludes it.
pub async fn health() -> &'static str {
    "ok"
}

/// `GET /debug/xray-stats` of every service: this process's emitter counters
/// ([`xray_sdk::Recorder::stats`]) as JSON, read by `scripts/loadtest.sh` to account for every
/// document produced. Mounted outside the X-Ray layer (never traced); counters only, no data.
pub fn with_xray_stats(app: Router, recorder: xray_sdk::Recorder) -> Router {
    app.route(
        "/debug/xray-stats",
        axum::routing::get(move || async move {
            let s = recorder.stats();
            axum::Json(serde_json::json!({
                "service": recorder.service_name(),
                "enabled": recorder.is_enabled(),
                "queued": s.queued,
                "dropped_queue_full": s.dropped_queue_full,
                "sent": s.sent,
                "dropped_too_large": s.dropped_too_large,
                "truncated": s.truncated,
                "send_errors": s.send_errors,
                "processed": s.processed,
                "pending": s.pending(),
            }))
        }),
    )
}

/// Serves `app` on `listener` until `shutdown` completes, then flushes `recorder`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    recorder: xray_sdk::Recorder,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    let _ = tokio::task::spawn_blocking(move || recorder.flush(Duration::from_secs(2))).await;
    result
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Builds the router of `role` from the environment.
async fn app_from_env(
    role: Role,
) -> Result<(Router, std::net::SocketAddr, xray_sdk::Recorder), String> {
    match role {
        Role::Bff => {
            let config = BffConfig::from_env().map_err(|e| e.to_string())?;
            let recorder = config.common.recorder().map_err(|e| e.to_string())?;
            let app = bff::router(&config, recorder.clone())?;
            tracing::info!(
                backend1 = %config.backend1_url,
                backend2 = %config.backend2_url,
                daemon = %config.common.daemon_address,
                "BFF configured"
            );
            Ok((app, config.common.bind, recorder))
        }
        Role::Backend1 | Role::Backend2 => {
            let config = BackendConfig::from_env(role).map_err(|e| e.to_string())?;
            let recorder = config.common.recorder().map_err(|e| e.to_string())?;
            let app = backend::router(&config, recorder.clone()).await;
            tracing::info!(
                table = %config.table_name,
                region = %config.region,
                dynamodb = ?config.endpoint,
                daemon = %config.common.daemon_address,
                "backend configured"
            );
            Ok((app, config.common.bind, recorder))
        }
    }
}

/// The `main` of the `bff`, `backend1` and `backend2` binaries.
pub fn main_for(role: Role) -> ExitCode {
    telemetry::init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the Tokio runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let (app, bind, recorder) = match app_from_env(role).await {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(service = role.id(), "invalid configuration: {e}");
                return ExitCode::from(2);
            }
        };
        recorder.install_global();
        let app = with_xray_stats(app, recorder.clone());
        let listener = match TcpListener::bind(bind).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(service = role.id(), %bind, "cannot listen: {e}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(service = role.service_name(), "listening on http://{bind}");
        match serve(listener, app, recorder, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(service = role.id(), "server error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
