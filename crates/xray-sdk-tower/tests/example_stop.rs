//! The `axum_service` example stops cleanly: stopped with SIGINT (Ctrl-C) or SIGTERM right
//! after answering requests, it has sent the segment of every request it answered before it
//! exits (real processes, real HTTP, the documents captured on a real UDP socket).
//!
//! The example's binary is the one `cargo test` builds next to this test's
//! (`target/<profile>/examples/axum_service`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use xray_sdk::testing::UdpCapture;

fn example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/example_stop-<hash> -> target/<profile>/examples/axum_service
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = dir.join("examples").join("axum_service");
    assert!(
        path.exists(),
        "{} is missing: `cargo test -p xray-sdk-tower` builds it (or `cargo build -p \
         xray-sdk-tower --example axum_service`)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 request; the response's status and `X-Amzn-Trace-Id` header.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let header = response
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("x-amzn-trace-id")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no X-Amzn-Trace-Id in {response:?}"));
    (status, header)
}

fn wait_until_listening(addr: SocketAddr, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(addr).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the example exited before listening: {status}");
        }
        assert!(Instant::now() < deadline, "the example never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_for_exit(child: &mut Child, within: Duration) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("the example did not exit within {within:?} of the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stops_on(signal: &str) {
    let capture = UdpCapture::start().unwrap();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let rules = dir.join(format!(
        "axum-service-rules-{}-{signal}.json",
        std::process::id()
    ));
    // Every request sampled: each answered request must have sent its segment.
    std::fs::write(
        &rules,
        r#"{"version": 2, "default": {"fixed_target": 0, "rate": 1}}"#,
    )
    .unwrap();
    let port = free_port();
    let mut child = Command::new(example())
        .env("PORT", port.to_string())
        .env("AWS_XRAY_DAEMON_ADDRESS", capture.daemon_address())
        .env("AWS_XRAY_SAMPLING_RULES", &rules)
        .env_remove("AWS_XRAY_SDK_ENABLED")
        .env_remove("AWS_XRAY_TRACING_NAME")
        .env_remove("AWS_XRAY_CONTEXT_MISSING")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_until_listening(addr, &mut child);

    let mut answered = Vec::new();
    for path in ["/", "/orders/42", "/missing", "/orders/0", "/stream", "/"] {
        let (status, header) = get(addr, path);
        let root = header
            .split(';')
            .find_map(|p| p.strip_prefix("Root="))
            .unwrap_or_else(|| panic!("no Root in {header}"))
            .to_owned();
        answered.push((path, status, root));
    }
    // The signal as soon as the last response is in.
    let signalled = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    let status = wait_for_exit(&mut child, Duration::from_secs(20));
    let mut output = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    std::fs::remove_file(&rules).ok();
    assert!(status.success(), "{signal}: {status}\n{output}");
    assert!(output.contains("stopped: "), "{output}");

    // Everything the process sent arrived before it exited; nothing more will come.
    let docs = capture.drain_documents(Duration::from_millis(300));
    for (path, status, root) in &answered {
        let segment: Vec<&Value> = docs
            .iter()
            .filter(|d| d["trace_id"] == root.as_str() && d.get("parent_id").is_none())
            .collect();
        assert_eq!(
            segment.len(),
            1,
            "{signal}: the segment of GET {path} ({root}) arrived once\n{docs:?}\n{output}"
        );
        let segment = segment[0];
        assert!(segment.get("in_progress").is_none(), "{segment}");
        assert_eq!(
            segment["http"]["response"]["status"],
            u64::from(*status),
            "{segment}"
        );
    }
}

#[test]
fn sigint_after_requests_still_sends_their_segments() {
    stops_on("-INT");
}

#[test]
fn sigterm_after_requests_still_sends_their_segments() {
    stops_on("-TERM");
}
