//! A real OTLP/HTTP receiver for the OTLP tests: an axum server on 127.0.0.1 (port chosen by
//! the OS) that decodes every request with the generated OTLP types (protobuf or JSON,
//! gzip or not) and answers as the test scripts it; plus helpers to read spans, to run a
//! test body in a child process with its own environment, and to catch Lambda's UDP
//! datagrams.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::print_stderr)]

use std::collections::VecDeque;
use std::io::Read as _;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;

/// How the receiver answers a request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// 200 with an empty protobuf `ExportTraceServiceResponse`.
    Ok,
    /// 200 with a `partial_success`.
    Partial(i64, &'static str),
    /// This status, these headers, this body.
    Status(u16, Vec<(&'static str, String)>, &'static str),
    /// Never answers (the connection stays open).
    Hang,
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    /// The body as it was sent (gzipped if it was).
    pub raw: Vec<u8>,
    /// The decoded request.
    pub request: ExportTraceServiceRequest,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn spans(&self) -> Vec<Span> {
        spans_of(&self.request)
    }
}

#[derive(Default)]
struct Shared {
    answers: VecDeque<Answer>,
    received: Vec<Received>,
    /// Requests that could not be decoded, with why.
    errors: Vec<String>,
}

/// The receiver; stops when dropped.
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    _runtime: tokio::runtime::Runtime,
}

impl Receiver {
    /// A receiver that answers with `answers` in turn, then `Ok`.
    pub fn start(answers: Vec<Answer>) -> Receiver {
        let shared = Arc::new(Mutex::new(Shared {
            answers: answers.into(),
            ..Default::default()
        }));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/{*path}", post(handle))
            .with_state(Arc::clone(&shared));
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            addr,
            shared,
            _runtime: runtime,
        }
    }

    /// The base URL (`http://127.0.0.1:PORT`).
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The traces URL.
    pub fn url(&self) -> String {
        format!("{}/v1/traces", self.base())
    }

    pub fn received(&self) -> Vec<Received> {
        let s = self.shared.lock().unwrap();
        assert!(s.errors.is_empty(), "undecodable requests: {:?}", s.errors);
        s.received.clone()
    }

    /// Waits until `n` requests have arrived (or `timeout` passes).
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let end = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() >= end {
                return got;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Every span received, in order.
    pub fn spans(&self) -> Vec<Span> {
        self.received().iter().flat_map(Received::spans).collect()
    }
}

async fn handle(
    State(shared): State<Arc<Mutex<Shared>>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = {
        let mut s = shared.lock().unwrap();
        match decode(&headers, &body) {
            Ok(request) => s.received.push(Received {
                path: uri.path().to_owned(),
                headers: headers.clone(),
                raw: body.to_vec(),
                request,
                at: Instant::now(),
            }),
            Err(e) => s.errors.push(e),
        }
        s.answers.pop_front().unwrap_or(Answer::Ok)
    };
    match answer {
        Answer::Ok => protobuf(ExportTraceServiceResponse::default()),
        Answer::Partial(rejected, message) => protobuf(ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: rejected,
                error_message: message.to_owned(),
            }),
        }),
        Answer::Status(code, headers, body) => {
            let mut r = (StatusCode::from_u16(code).unwrap(), body).into_response();
            for (k, v) in headers {
                r.headers_mut().insert(k, v.parse().unwrap());
            }
            r
        }
        Answer::Hang => {
            std::future::pending::<()>().await;
            StatusCode::OK.into_response()
        }
    }
}

fn protobuf(message: ExportTraceServiceResponse) -> Response {
    (
        [("content-type", "application/x-protobuf")],
        message.encode_to_vec(),
    )
        .into_response()
}

/// Decodes a request body by its `Content-Encoding` and `Content-Type`.
pub fn decode(headers: &HeaderMap, body: &[u8]) -> Result<ExportTraceServiceRequest, String> {
    let get = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
    let plain = match get("content-encoding") {
        "" => body.to_vec(),
        "gzip" => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .map_err(|e| format!("gzip: {e}"))?;
            out
        }
        other => return Err(format!("content-encoding {other}")),
    };
    match get("content-type") {
        "application/x-protobuf" => {
            ExportTraceServiceRequest::decode(&plain[..]).map_err(|e| format!("protobuf: {e}"))
        }
        "application/json" => serde_json::from_slice(&plain).map_err(|e| format!("json: {e}")),
        other => Err(format!("content-type {other:?}")),
    }
}

pub fn spans_of(request: &ExportTraceServiceRequest) -> Vec<Span> {
    request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| s.spans.clone())
        .collect()
}

pub fn resources_of(request: &ExportTraceServiceRequest) -> Vec<Resource> {
    request
        .resource_spans
        .iter()
        .filter_map(|r| r.resource.clone())
        .collect()
}

fn find<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

/// A string attribute.
pub fn s<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match find(attrs, key) {
        Some(Value::StringValue(s)) => Some(s),
        _ => None,
    }
}

/// An integer attribute.
pub fn int(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match find(attrs, key) {
        Some(Value::IntValue(i)) => Some(*i),
        _ => None,
    }
}

/// Any attribute.
pub fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    find(attrs, key)
}

/// A list of strings attribute.
pub fn list(attrs: &[KeyValue], key: &str) -> Option<Vec<String>> {
    match find(attrs, key) {
        Some(Value::ArrayValue(a)) => Some(
            a.values
                .iter()
                .filter_map(|v: &AnyValue| match &v.value {
                    Some(Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
        ),
        _ => None,
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The environment variable that tells a test binary it runs as a child.
pub const CHILD: &str = "XRAY_OTLP_TEST_CHILD";

/// True in the child process started by [`run_child`].
pub fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// Runs the test `name` of this test binary in a child process whose environment is only
/// `vars` (plus the marker), and fails if it fails. The child's test body must start with
/// `if !is_child() { return; }`.
pub fn run_child(name: &str, vars: &[(&str, String)]) {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .env_clear()
        .env(CHILD, "1")
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child {name} failed:\n{stdout}\n{stderr}"
    );
}

/// Datagrams of OTLP over UDP, as Lambda's daemon reads them.
pub struct Datagrams {
    pub socket: UdpSocket,
}

impl Datagrams {
    pub fn bind() -> Datagrams {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        Datagrams { socket }
    }

    pub fn address(&self) -> String {
        self.socket.local_addr().unwrap().to_string()
    }

    /// Every datagram until none arrives for the read timeout, as raw bytes.
    pub fn drain(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 70_000];
        while let Ok(n) = self.socket.recv(&mut buf) {
            out.push(buf[..n].to_vec());
        }
        out
    }
}

/// Reads a `T1S` datagram: the daemon header line, the prefix and the base64 protobuf.
pub fn decode_datagram(d: &[u8]) -> ExportTraceServiceRequest {
    let header = b"{\"format\":\"json\",\"version\":1}\n";
    assert!(d.starts_with(header), "{:?}", String::from_utf8_lossy(d));
    let rest = &d[header.len()..];
    assert!(rest.starts_with(b"T1S"), "prefix: {:?}", &rest[..3]);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&rest[3..])
        .unwrap();
    ExportTraceServiceRequest::decode(&bytes[..]).unwrap()
}
