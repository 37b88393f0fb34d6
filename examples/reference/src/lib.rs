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
//!
//! Given `--health-check`, a service binary checks the `GET /health` of the same service
//! running on this host instead of serving ([`check_health`]; the ECS container health check,
//! as the image has no shell or curl), and exits 0 when it answers 200.

pub mod backend;
pub mod bff;
pub mod clock;
pub mod config;
pub mod demo;
pub mod dynamo;
pub mod error;
pub mod telemetry;

use std::future::Future;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::config::{BackendConfig, BffConfig, Common, Role, process_env};

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

/// The argument that makes a service binary check its own health instead of serving.
pub const HEALTH_CHECK_ARG: &str = "--health-check";

/// Where a service configured with `bind` answers locally: its port on the loopback address
/// when it listens on all interfaces (`0.0.0.0`, `::`), else on the address it listens on.
pub fn health_check_addr(bind: SocketAddr) -> SocketAddr {
    let ip = match bind.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, bind.port())
}

/// `GET /health` on `addr` over HTTP/1.1 with std only (no runtime): `Ok` when the answer is
/// `200`, else what went wrong. Every step is bounded by `timeout`.
pub fn check_health(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("setting timeouts: {e}"))?;
    write!(
        stream,
        "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("sending GET /health to {addr}: {e}"))?;
    // The status line is all that is needed: `HTTP/1.1 200 OK`.
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 64];
    while !head.contains(&b'\n') && head.len() < 1024 {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("reading the answer of {addr}: {e}")),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let status_line = head.lines().next().unwrap_or_default().trim();
    let mut parts = status_line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(version), Some("200")) if version.starts_with("HTTP/1.") => Ok(()),
        _ => Err(format!(
            "GET /health on {addr} answered `{status_line}` instead of 200"
        )),
    }
}

/// The `--health-check` mode: checks the service `role` as configured by the environment
/// (`PORT`, `BIND_ADDRESS`); exit status 0 when healthy, 1 otherwise. Each step takes at most
/// 1.5 s, within the 5 s timeout of the task definition's health check.
fn health_check_main(role: Role) -> ExitCode {
    let common = match Common::from_lookup(role, &process_env) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(
                service = role.id(),
                "health check: invalid configuration: {e}"
            );
            return ExitCode::FAILURE;
        }
    };
    match check_health(health_check_addr(common.bind), Duration::from_millis(1500)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(service = role.id(), "health check failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes (the requests in flight answered),
/// then shuts `recorder` down: what they recorded is sent, and the recorder's background work
/// stops.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    recorder: xray_sdk::Recorder,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    let report = recorder.shutdown(Duration::from_secs(2)).await;
    if !report.is_complete() {
        tracing::warn!(
            pending = report.pending,
            lost = report.lost,
            "X-Ray: not every segment was sent"
        );
    }
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
    if std::env::args().skip(1).any(|a| a == HEALTH_CHECK_ARG) {
        return health_check_main(role);
    }
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
        if let Err(e) = recorder.install_global() {
            tracing::warn!(service = role.id(), "{e}");
        }
        let app = with_xray_stats(app, recorder.clone());
        let listener = match TcpListener::bind(bind).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(service = role.id(), %bind, "cannot listen: {e}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(
            service = recorder.service_name(),
            "listening on http://{bind}"
        );
        match serve(listener, app, recorder, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(service = role.id(), "server error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Serves `app` on an ephemeral loopback port; returns the address.
    async fn spawn(app: Router) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    async fn check(addr: SocketAddr) -> Result<(), String> {
        tokio::task::spawn_blocking(move || check_health(addr, Duration::from_secs(2)))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn health_check_passes_on_200_only() {
        let healthy = spawn(Router::new().route("/health", axum::routing::get(health))).await;
        check(healthy).await.unwrap();

        let failing = spawn(Router::new().route(
            "/health",
            axum::routing::get(|| async { axum::http::StatusCode::SERVICE_UNAVAILABLE }),
        ))
        .await;
        let e = check(failing).await.unwrap_err();
        assert!(e.contains("503"), "{e}");

        let missing = spawn(Router::new()).await;
        let e = check(missing).await.unwrap_err();
        assert!(e.contains("404"), "{e}");
    }

    #[tokio::test]
    async fn health_check_fails_when_nothing_listens() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let e = check(addr).await.unwrap_err();
        assert!(e.starts_with("connecting to"), "{e}");
    }

    #[test]
    fn health_check_addr_uses_loopback_for_any_address() {
        let any: SocketAddr = "0.0.0.0:8081".parse().unwrap();
        assert_eq!(health_check_addr(any).to_string(), "127.0.0.1:8081");
        let any6: SocketAddr = "[::]:8082".parse().unwrap();
        assert_eq!(health_check_addr(any6).to_string(), "[::1]:8082");
        let one: SocketAddr = "10.0.0.5:8080".parse().unwrap();
        assert_eq!(health_check_addr(one), one);
    }
}
