//! The README's quick start as a new user runs it: the binary is the README's code, the
//! README's `Cargo.toml` lines name every crate the code uses with the features it needs, and
//! stopped with SIGINT (Ctrl-C) right after a request, the service has sent that request's
//! documents before exiting.
//!
//! The DynamoDB call goes to moto when `XRAY_TEST_DYNAMODB_ENDPOINT` is set
//! (`scripts/with-moto.sh cargo test -p xray-e2e`), else to a closed port (the call fails, and
//! is recorded as such).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use xray_sdk::testing::{UdpCapture, flatten};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).unwrap()
}

/// The README's `## Quick start` section.
fn quick_start(readme: &str) -> &str {
    let start = readme
        .find("\n## Quick start\n")
        .expect("a Quick start section");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 4);
    &rest[..end]
}

/// The body of the first fenced block of `section` that opens with `fence`.
fn block<'a>(section: &'a str, fence: &str) -> &'a str {
    let start = section
        .find(fence)
        .unwrap_or_else(|| panic!("no {fence} block"))
        + fence.len();
    let len = section[start..].find("```\n").expect("a closed block");
    &section[start..start + len]
}

#[test]
fn the_binary_is_the_readme_s_code() {
    let readme = readme();
    let code = block(quick_start(&readme), "```rust,no_run\n");
    let file =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("quick_start.rs"))
            .unwrap();
    let header = file
        .strip_suffix(code)
        .expect("quick_start.rs ends with the README's quick start, verbatim");
    assert!(
        header
            .lines()
            .all(|l| l.is_empty() || l.starts_with("//!") || l.starts_with("#![")),
        "quick_start.rs adds code of its own before the README's:\n{header}"
    );
}

#[test]
fn the_readme_s_dependencies_cover_what_the_code_uses() {
    let readme = readme();
    let section = quick_start(&readme);
    let toml = block(section, "```toml\n");
    let code = block(section, "```rust,no_run\n");
    let deps: Vec<(&str, &str)> = toml
        .lines()
        .filter_map(|l| l.split_once(" = "))
        .map(|(name, spec)| (name.trim(), spec))
        .collect();
    let spec = |name: &str| {
        deps.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| *s)
            .unwrap_or_else(|| panic!("the README's Cargo.toml lines lack {name}"))
    };
    // Every crate the code names is a dependency: the first segment of each `use` and of
    // each path in the code (not a segment after `::` or a method's turbofish, nor one inside a
    // `use` list).
    let mut used: Vec<String> = Vec::new();
    let mut add = |first: &str| {
        let name = first.replace('_', "-");
        if !["std", "crate", "self", "super"].contains(&first) && !used.contains(&name) {
            used.push(name);
        }
    };
    for line in code.lines().map(str::trim) {
        if let Some(path) = line.strip_prefix("use ") {
            add(path.split("::").next().unwrap_or(""));
            continue;
        }
        let bytes = line.as_bytes();
        let mut i = 0;
        while let Some(at) = line[i..].find("::") {
            let end = i + at;
            let start = line[..end]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |p| p + 1);
            let first = &line[start..end];
            let after_path = start >= 1 && matches!(bytes[start - 1], b':' | b'.');
            if !after_path
                && !first.is_empty()
                && first
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
            {
                add(first);
            }
            i = end + 2;
        }
    }
    assert!(used.len() >= 10, "{used:?}");
    for name in &used {
        spec(name);
    }
    // Features beyond the defaults that the code needs.
    for (name, feature) in [
        ("aws-config", "behavior-version-latest"),
        ("tokio", "macros"),
        ("tokio", "rt-multi-thread"),
        ("tokio", "net"),
        ("tokio", "signal"),
        ("tracing-subscriber", "env-filter"),
    ] {
        assert!(
            spec(name).contains(&format!("\"{feature}\"")),
            "{name} needs the {feature} feature: {}",
            spec(name)
        );
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_until_listening(addr: SocketAddr, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(addr).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the quick start exited before listening: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "the quick start never listened on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_for_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("the quick start did not exit within {within:?} of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_right_after_a_request_still_sends_its_documents() {
    let capture = UdpCapture::start().unwrap();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let rules = dir.join(format!("quick-start-rules-{}.json", std::process::id()));
    std::fs::write(
        &rules,
        r#"{"version": 2, "default": {"fixed_target": 0, "rate": 1}}"#,
    )
    .unwrap();
    let dynamodb = std::env::var("XRAY_TEST_DYNAMODB_ENDPOINT")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| format!("http://127.0.0.1:{}", free_port()));
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_quick-start"))
        .env("PORT", port.to_string())
        .env("AWS_XRAY_DAEMON_ADDRESS", capture.daemon_address())
        .env("AWS_XRAY_SAMPLING_RULES", &rules)
        .env("AWS_ENDPOINT_URL_DYNAMODB", &dynamodb)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.join("no-aws-credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "info")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_XRAY_SDK_ENABLED")
        .env_remove("AWS_XRAY_TRACING_NAME")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_until_listening(addr, &mut child);

    let response = reqwest::get(format!("http://{addr}/")).await.unwrap();
    // Ctrl-C as soon as the response is in.
    let signalled = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    assert_eq!(response.status(), 200);
    let header = response.headers()["x-amzn-trace-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let trace_id = header.strip_prefix("Root=").unwrap().to_owned();
    let body = response.text().await.unwrap();

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

    // Everything the process sent arrived before it exited; nothing more will come.
    let docs: Vec<Value> = capture
        .drain_documents(Duration::from_millis(300))
        .into_iter()
        .filter(|d| d["trace_id"] == trace_id.as_str())
        .collect();
    let entities = flatten(&docs);
    let names: Vec<&str> = entities
        .iter()
        .map(|(_, _, d)| d["name"].as_str().unwrap_or(""))
        .collect();
    assert!(names.contains(&"checkout"), "{names:?}\n{output}");
    assert!(names.contains(&"inventory.internal"), "{names:?}");
    assert!(names.contains(&"DynamoDB"), "{names:?}");
    let (_, _, segment) = entities
        .iter()
        .find(|(_, _, d)| d["name"] == "checkout")
        .unwrap();
    assert_eq!(segment["http"]["response"]["status"], 200, "{segment}");
    assert!(segment.get("in_progress").is_none(), "{segment}");
    assert!(status.success(), "{status}\n{output}");
    assert!(output.contains("X-Ray recorder enabled"), "{output}");
    // The handler's answer: the inventory call fails (no such host); DynamoDB answers when
    // moto is there.
    assert!(body.starts_with("false "), "{body}");
}
