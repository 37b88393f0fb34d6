//! `backend1 --health-check`, as the ECS container health check runs it: exit status 0 when the
//! service on `PORT` answers `GET /health` with 200, 1 otherwise.

#![allow(clippy::unwrap_used)]

use std::process::Command;

fn health_check(port: u16) -> bool {
    Command::new(env!("CARGO_BIN_EXE_backend1"))
        .arg("--health-check")
        .env("PORT", port.to_string())
        .env("BIND_ADDRESS", "0.0.0.0")
        .env("RUST_LOG", "off")
        .status()
        .unwrap()
        .success()
}

#[tokio::test(flavor = "multi_thread")]
async fn health_check_mode_exit_status() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route("/health", axum::routing::get(xray_demo::health));
    tokio::spawn(async move { axum::serve(listener, app).await });
    assert!(
        tokio::task::spawn_blocking(move || health_check(port))
            .await
            .unwrap()
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    assert!(
        !tokio::task::spawn_blocking(move || health_check(closed_port))
            .await
            .unwrap()
    );
}

/// Logs that do not go to a terminal (the demo's log files) carry no colour codes.
#[test]
fn logs_to_a_file_are_plain_text() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let out = Command::new(env!("CARGO_BIN_EXE_backend1"))
        .arg("--health-check")
        .env("PORT", closed_port.to_string())
        .env("BIND_ADDRESS", "127.0.0.1")
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("health check failed"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
}
