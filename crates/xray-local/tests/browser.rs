//! Loads the UI in headless Chromium and checks that the trace list, the
//! waterfall and the service map show what was sent; saves a screenshot to
//! `<target dir>/xray-local-ui.png`.
//!
//! Runs when `XRAY_BROWSER_TESTS=1` (then Chromium is required) or when
//! `/usr/bin/chromium` exists; otherwise it prints why it skipped.

// The skip message must reach the person running the tests.
#![allow(clippy::print_stdout)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn chromium() -> Option<PathBuf> {
    let candidates = ["/usr/bin/chromium", "/usr/bin/chromium-browser"];
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

/// Runs Chromium with a hard time limit and returns its stdout.
fn run_chromium(bin: &Path, profile: &Path, extra: &[String], url: &str) -> String {
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--virtual-time-budget=8000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().expect("poll chromium").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("chromium output");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_shows_list_timeline_and_map() {
    let required = std::env::var("XRAY_BROWSER_TESTS").is_ok_and(|v| v == "1");
    let Some(bin) = chromium() else {
        assert!(
            !required,
            "XRAY_BROWSER_TESTS=1 but chromium is not installed"
        );
        println!(
            "skipped: chromium not installed (apt-get install chromium, or set XRAY_BROWSER_TESTS=1 to require it)"
        );
        return;
    };

    let server = start_default().await;
    let mut traces = Vec::new();
    for i in 0..3 {
        let t = trace_id();
        let (a, call_b, ddb, b) = (entity_id(), entity_id(), entity_id(), entity_id());
        let t0 = now() - 1.0 + f64::from(i) * 0.1;
        let mut seg_a = segment(&t, &a, "frontend", None, t0, 0.25);
        seg_a["http"] = json!({"request": {"method": "GET", "url": "http://localhost/orders"}, "response": {"status": if i == 2 { 500 } else { 200 }}});
        seg_a["fault"] = json!(i == 2);
        seg_a["annotations"] = json!({"customer": format!("c{i}")});
        seg_a["subsegments"] = json!([
            {"name": "orders-api", "id": call_b, "namespace": "remote", "start_time": t0 + 0.01, "end_time": t0 + 0.15,
             "http": {"request": {"method": "POST", "url": "http://orders/api"}, "response": {"status": 200}}},
            {"name": "DynamoDB", "id": ddb, "namespace": "aws", "start_time": t0 + 0.16, "end_time": t0 + 0.22,
             "aws": {"operation": "Query", "table_name": "orders"}}
        ]);
        let mut seg_b = segment(&t, &b, "orders-api", Some(&call_b), t0 + 0.02, 0.12);
        seg_b["subsegments"] = json!([{"name": "SELECT orders", "id": entity_id(), "namespace": "remote",
            "start_time": t0 + 0.03, "end_time": t0 + 0.1, "sql": {"sanitized_query": "SELECT * FROM orders WHERE id = ?"}}]);
        send_doc(&server, &seg_a);
        send_doc(&server, &seg_b);
        traces.push(t);
    }
    wait_accepted(&server, 6);

    let profile = std::env::temp_dir().join(format!("xray-local-chromium-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).expect("profile dir");
    let url = format!("http://{}/#trace={}", server.ui_addr(), traces[0]);

    let dom = run_chromium(&bin, &profile, &["--dump-dom".into()], &url);
    for t in &traces {
        assert!(
            dom.contains(&format!("data-id=\"{t}\"")),
            "trace row {t} missing from DOM:\n{dom}"
        );
    }
    assert_eq!(
        dom.matches("class=\"trace-row").count(),
        3,
        "three trace rows"
    );
    for name in ["frontend", "orders-api", "DynamoDB", "SELECT orders"] {
        assert!(
            dom.contains(&format!("title=\"{name}\"")),
            "waterfall row {name} missing"
        );
    }
    assert_eq!(
        dom.matches("class=\"wf-row").count(),
        5,
        "five waterfall rows"
    );
    for (name, class) in [
        ("client", "client"),
        ("frontend", "service"),
        ("orders-api", "service"),
        ("DynamoDB", "aws"),
    ] {
        assert!(
            dom.contains(&format!("class=\"map-node {class}\" data-name=\"{name}\"")),
            "map node {name} missing"
        );
    }
    for (from, to, n) in [
        ("client", "frontend", 3),
        ("frontend", "orders-api", 3),
        ("frontend", "DynamoDB", 3),
    ] {
        assert!(
            dom.contains(&format!(
                "data-from=\"{from}\" data-to=\"{to}\" data-count=\"{n}\""
            )),
            "map edge {from} -> {to} missing"
        );
    }
    assert!(dom.contains("live · updated"), "the page reached the API");

    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    let shot = target.join("xray-local-ui.png");
    let _ = std::fs::remove_file(&shot);
    run_chromium(
        &bin,
        &profile,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1400,900".into(),
        ],
        &url,
    );
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "screenshot {} is {size} bytes",
        shot.display()
    );
    println!("screenshot: {}", shot.display());
    let _ = std::fs::remove_dir_all(&profile);
    server.shutdown().await;
}
