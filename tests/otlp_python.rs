//! A trace across languages: a Python service instrumented with the OpenTelemetry SDK
//! (`otlp_python/storefront.py`, opentelemetry-sdk and the OTLP/HTTP exporter from PyPI)
//! exports its spans to xray-local over OTLP/HTTP and calls a Rust service (axum with
//! `XRayLayer`), passing `traceparent`; the Rust service sends its segment over UDP to the same
//! xray-local. Everything is read back through xray-local's X-Ray API.
//!
//! The Python packages go into the repository's `.venv` (`scripts/ensure-otel-python.sh`,
//! bounded in time). When the package index cannot be reached the test is skipped with a
//! message, except in CI (`CI` set), where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::http::HeaderMap;
use axum::routing::get;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use xray_local::{Config, Server};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn skip(why: &str) {
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIPPED the cross-language OTLP test: {why}. It needs opentelemetry-sdk and \
         opentelemetry-exporter-otlp-proto-http from PyPI (scripts/ensure-otel-python.sh)."
    );
}

/// The venv's python with the OpenTelemetry packages, or `None` (skip) when the package index
/// cannot be reached outside CI.
fn python() -> Option<PathBuf> {
    let out = Command::new(root().join("scripts/ensure-otel-python.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/ensure-otel-python.sh");
    match out.status.code() {
        Some(0) => Some(PathBuf::from(
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )),
        Some(3) if std::env::var_os("CI").is_none() => {
            skip("the package index could not be reached");
            None
        }
        _ => panic!(
            "scripts/ensure-otel-python.sh failed ({}); in CI the cross-language test must run",
            out.status
        ),
    }
}

/// The Python process, stopped when dropped (also when an assertion fails).
struct Python {
    child: Child,
    stderr: mpsc::Receiver<String>,
}

impl Python {
    fn start(python: &Path, endpoint: &str, downstream: &str) -> (Self, u16) {
        let mut child = Command::new(python)
            .arg(root().join("tests/otlp_python/storefront.py"))
            .env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint)
            .env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
            .env("OTEL_BSP_SCHEDULE_DELAY", "200")
            .env("DOWNSTREAM_URL", downstream)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the Python service");
        let (tx, stderr) = mpsc::channel();
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            let _ = tx.send(s);
        });
        let (ptx, prx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = ptx.send(line);
        });
        let mut me = Python { child, stderr };
        let port = match prx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.trim().parse::<u16>().is_ok() => line.trim().parse().unwrap(),
            other => panic!(
                "the Python service did not print its port ({other:?}); stderr: {}",
                me.stop()
            ),
        };
        (me, port)
    }

    /// Stops the process and returns what it wrote to stderr.
    fn stop(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_default()
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one request through both services left in xray-local.
struct Run {
    server: Server,
    /// The Python service's answer: its span IDs and the downstream's.
    answer: Value,
    /// The Python trace ID in X-Ray form.
    trace_id: String,
    started: f64,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The Rust service's handler: answers with the trace headers it was called with.
async fn stock(headers: HeaderMap) -> Json<Value> {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    Json(json!({"traceparent": h("traceparent"), "x_amzn_trace_id": h("x-amzn-trace-id")}))
}

async fn xray(server: &Server, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .post(format!("http://{}{path}", server.ui_addr()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "POST {path}: {}", r.status());
    r.json().await.unwrap()
}

/// Trace summaries of the last minutes matching `filter` (by event time: the Python trace ID is
/// a random W3C one, with no time in it).
async fn summaries(run: &Run, filter: &str) -> Vec<String> {
    let v = xray(
        &run.server,
        "/TraceSummaries",
        json!({"StartTime": run.started - 60.0, "EndTime": unix_now() + 60.0,
               "TimeRangeType": "Event", "FilterExpression": filter}),
    )
    .await;
    v["TraceSummaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Id"].as_str().unwrap().to_string())
        .collect()
}

/// The documents of a trace as BatchGetTraces answers them.
async fn documents(run: &Run, trace_id: &str) -> Vec<Value> {
    let v = xray(&run.server, "/Traces", json!({"TraceIds": [trace_id]})).await;
    v["Traces"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["Segments"].as_array().unwrap().clone())
        .map(|s| serde_json::from_str(s["Document"].as_str().unwrap()).unwrap())
        .collect()
}

async fn run() -> Option<Run> {
    let python = python()?;
    let started = unix_now();
    let server = Server::start(Config::ephemeral()).await.unwrap();
    let recorder = xray_sdk::Recorder::builder()
        .service_name("inventory-rs")
        .daemon_address(format!(
            "udp:{} tcp:{}",
            server.udp_addr(),
            server.tcp_addr()
        ))
        .sampler(xray_sdk::sampling::AlwaysSample)
        .plugins(xray_sdk::plugins::Plugins::none())
        .build()
        .unwrap();
    let app = axum::Router::new()
        .route("/stock", get(stock))
        .layer(xray_sdk_tower::XRayLayer::new(recorder.clone()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rust_addr: SocketAddr = listener.local_addr().unwrap();
    let rust = tokio::spawn(async move { axum::serve(listener, app).await });

    let (mut py, port) = Python::start(
        &python,
        &format!("http://{}/v1/traces", server.ui_addr()),
        &format!("http://{rust_addr}/stock"),
    );
    let r = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/checkout"))
        .timeout(Duration::from_secs(30))
        .send()
        .await;
    let answer: Value = match r {
        Ok(r) if r.status().is_success() => r.json().await.unwrap(),
        other => panic!(
            "the Python service failed: {other:?}; its stderr: {}",
            py.stop()
        ),
    };
    recorder.flush(Duration::from_secs(5)).unwrap();
    let t = answer["trace_id"].as_str().unwrap().to_string();
    let trace_id = format!("1-{}-{}", &t[..8], &t[8..]);
    // The Python spans (3) and the Rust segment (1) arrive.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = reqwest::get(format!("http://{}/api/stats", server.ui_addr()))
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        let otlp_docs = stats["Intake"]["Otlp"]["Documents"].as_u64().unwrap_or(0);
        let accepted = stats["Intake"]["Accepted"].as_u64().unwrap_or(0);
        if otlp_docs >= 3 && accepted >= 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "spans and segments did not arrive: {}; Python's stderr: {}",
            stats["Intake"],
            py.stop()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    py.stop();
    rust.abort();
    Some(Run {
        server,
        answer,
        trace_id,
        started,
    })
}

/// Python's spans arrive over OTLP/HTTP, are converted, and answer the X-Ray API; the call to
/// the Rust service carried the CLIENT span's `traceparent`, and the Rust service's segment
/// arrived over UDP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_spans_arrive_over_otlp_and_answer_the_xray_api() {
    let Some(run) = run().await else { return };
    let a = &run.answer;
    let client = a["client"].as_str().unwrap();
    // `00-<trace>-<CLIENT span>-<flags>`, sampled; newer SDKs also set the random-trace-ID flag
    // (0x02) of W3C Trace Context level 2.
    let sent = a["sent_traceparent"].as_str().unwrap();
    let prefix = format!("00-{}-{client}-", a["trace_id"].as_str().unwrap());
    let flags = sent
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{sent} starts with {prefix}"));
    assert_eq!(
        u8::from_str_radix(flags, 16).unwrap() & 1,
        1,
        "sampled: {sent}"
    );
    assert_eq!(
        a["downstream"]["traceparent"], sent,
        "the Rust service got it"
    );

    let docs = documents(&run, &run.trace_id).await;
    let storefront = docs
        .iter()
        .find(|d| d["name"] == "storefront")
        .unwrap_or_else(|| panic!("storefront in {docs:?}"));
    assert_eq!(storefront["id"], a["server"]);
    assert!(storefront.get("parent_id").is_none());
    assert_eq!(storefront["annotations"], json!({"customer": "c-42"}));
    assert_eq!(
        storefront["http"]["request"]["url"],
        "http://storefront.local/checkout"
    );
    assert_eq!(storefront["http"]["response"]["status"], 200);
    assert_eq!(storefront["aws"]["xray"]["sdk"], "opentelemetry for python");
    // BatchGetTraces merges the subsegments into their segment.
    let subs = storefront["subsegments"].as_array().unwrap();
    let sub = |id: &Value| subs.iter().find(|s| s["id"] == *id).unwrap();
    let parse = sub(&a["parse"]);
    assert_eq!(parse["name"], "parse cart");
    assert_eq!(parse["fault"], true);
    let ex = &parse["cause"]["exceptions"][0];
    assert_eq!(ex["type"], "ValueError");
    let frames = ex["stack"].as_array().unwrap();
    assert!(
        frames.iter().any(|f| f["label"] == "parse_cart"
            && f["path"].as_str().unwrap().ends_with("storefront.py")),
        "the Python traceback read into frames: {frames:?}"
    );
    let call = sub(&a["client"]);
    assert_eq!(call["namespace"], "remote");
    assert_eq!(call["http"]["response"]["status"], 200);

    assert_eq!(
        summaries(&run, "annotation.customer = \"c-42\"").await,
        vec![run.trace_id.clone()]
    );
    assert_eq!(
        summaries(&run, "service(\"storefront\")").await,
        vec![run.trace_id.clone()]
    );
    assert_eq!(
        summaries(&run, "service(\"inventory-rs\")").await.len(),
        1,
        "the Rust segment arrived"
    );
    let graph = xray(
        &run.server,
        "/ServiceGraph",
        json!({"StartTime": run.started - 60.0, "EndTime": unix_now() + 60.0}),
    )
    .await;
    let names: Vec<&str> = graph["Services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["Name"].as_str())
        .collect();
    assert!(
        names.contains(&"storefront") && names.contains(&"inventory-rs"),
        "{names:?}"
    );
    run.server.shutdown().await;
}

/// The Rust segment joins the Python trace: same trace ID, its parent the Python CLIENT span;
/// one trace, and the service map's edge from storefront to inventory-rs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_rust_make_one_trace_with_the_right_parents() {
    let Some(run) = run().await else { return };
    let docs = documents(&run, &run.trace_id).await;
    let rust = docs
        .iter()
        .find(|d| d["name"] == "inventory-rs")
        .unwrap_or_else(|| panic!("the Rust segment in the Python trace: {docs:?}"));
    assert_eq!(rust["trace_id"], run.trace_id.as_str());
    assert_eq!(rust["parent_id"], run.answer["client"]);
    assert_eq!(
        summaries(&run, "service(\"inventory-rs\")").await,
        vec![run.trace_id.clone()]
    );
    assert_eq!(
        summaries(&run, "edge(\"storefront\", \"inventory-rs\")").await,
        vec![run.trace_id.clone()]
    );
    run.server.shutdown().await;
}
