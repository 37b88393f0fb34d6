//! Test support: a local implementation of the Lambda Runtime API, a daemon socket read at
//! the moment each response arrives, and the function process the tests start.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::print_stderr)]

pub mod aws;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// The environment variable that makes the test binary act as the function.
pub const FUNCTION_ENV: &str = "XRAY_LAMBDA_TEST_FUNCTION";
/// The function's name, as Lambda sets `AWS_LAMBDA_FUNCTION_NAME`.
pub const FUNCTION_NAME: &str = "orders-fn";
/// The ARN the Runtime API names the invoked function with.
pub const FUNCTION_ARN: &str = "arn:aws:lambda:us-west-2:123456789012:function:orders-fn";

/// One invocation queued on the Runtime API.
#[derive(Debug, Clone)]
pub struct Event {
    pub request_id: String,
    pub trace_header: Option<String>,
    pub payload: Value,
    pub deadline: Duration,
}

impl Event {
    pub fn new(request_id: &str, trace_header: Option<&str>, payload: Value) -> Event {
        Event {
            request_id: request_id.into(),
            trace_header: trace_header.map(Into::into),
            payload,
            deadline: Duration::from_secs(30),
        }
    }

    pub fn deadline(mut self, after: Duration) -> Event {
        self.deadline = after;
        self
    }
}

/// What the Runtime API saw, in the order it saw it: documents that had reached the daemon
/// socket are read just before each response or error is logged.
#[derive(Debug, Clone)]
pub enum Entry {
    Document(Value),
    Response {
        request_id: String,
        body: Value,
    },
    Error {
        request_id: String,
        error_type: String,
        body: Value,
    },
}

impl Entry {
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Entry::Response { request_id, .. } | Entry::Error { request_id, .. } => {
                Some(request_id)
            }
            Entry::Document(_) => None,
        }
    }
}

/// A UDP socket standing in for the daemon, read without blocking.
struct Daemon {
    socket: UdpSocket,
}

impl Daemon {
    /// Everything that has arrived. Loopback delivers a datagram to the socket's buffer
    /// before the sender's `send` returns, so this holds all that was sent before the call.
    fn read_all(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65_536];
        while let Ok(n) = self.socket.recv(&mut buf) {
            let datagram = &buf[..n];
            let header = b"{\"format\":\"json\",\"version\":1}\n";
            assert!(
                datagram.starts_with(header),
                "datagram without the daemon header"
            );
            out.push(serde_json::from_slice(&datagram[header.len()..]).unwrap());
        }
        out
    }
}

struct State {
    queue: Mutex<VecDeque<Event>>,
    queued: Notify,
    open_next: AtomicUsize,
    max_open_next: AtomicUsize,
    log: Mutex<Vec<Entry>>,
    logged: Notify,
    daemon: Daemon,
}

impl State {
    fn record(&self, entry: Entry) {
        let mut log = self.log.lock().unwrap();
        // Documents first: everything that arrived before this answer is logged before it.
        log.extend(self.daemon.read_all().into_iter().map(Entry::Document));
        log.push(entry);
        drop(log);
        self.logged.notify_waiters();
    }
}

/// The Runtime API on 127.0.0.1 (`next`, `response`, `error`, `init/error`), with the
/// daemon's UDP socket beside it.
pub struct RuntimeApi {
    pub addr: SocketAddr,
    pub daemon_addr: SocketAddr,
    state: Arc<State>,
}

struct OpenNext<'a>(&'a State);

impl Drop for OpenNext<'_> {
    fn drop(&mut self) {
        self.0.open_next.fetch_sub(1, Ordering::SeqCst);
    }
}

impl RuntimeApi {
    pub async fn start() -> RuntimeApi {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let daemon_addr = socket.local_addr().unwrap();
        let state = Arc::new(State {
            queue: Mutex::default(),
            queued: Notify::new(),
            open_next: AtomicUsize::new(0),
            max_open_next: AtomicUsize::new(0),
            log: Mutex::default(),
            logged: Notify::new(),
            daemon: Daemon { socket },
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server_state = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = Arc::clone(&server_state);
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(answer(&state, req).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        RuntimeApi {
            addr,
            daemon_addr,
            state,
        }
    }

    pub fn push(&self, event: Event) {
        self.state.queue.lock().unwrap().push_back(event);
        self.state.queued.notify_waiters();
    }

    /// The most `next` requests that were open at once.
    pub fn max_open_next(&self) -> usize {
        self.state.max_open_next.load(Ordering::SeqCst)
    }

    /// Waits until `n` `next` requests are open at once.
    pub async fn wait_open_next(&self, n: usize, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.state.open_next.load(Ordering::SeqCst) >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// Waits until the function has answered every one of `request_ids`, then returns the log
    /// with the documents that have arrived since.
    pub async fn wait_answers(&self, request_ids: &[&str], timeout: Duration) -> Vec<Entry> {
        let end = Instant::now() + timeout;
        loop {
            let logged = self.state.logged.notified();
            tokio::pin!(logged);
            logged.as_mut().enable();
            let answered = {
                let log = self.state.log.lock().unwrap();
                request_ids
                    .iter()
                    .all(|id| log.iter().any(|e| e.request_id() == Some(id)))
            };
            if answered {
                // Give documents sent after an answer (which would be a failure) a moment to
                // arrive, so that they show up in the log.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return self.log();
            }
            let left = end.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no answer for all of {request_ids:?} in time: {:#?}",
                self.log()
            );
            let _ = tokio::time::timeout(left, logged).await;
        }
    }

    /// The log, with every document that has arrived by now.
    pub fn log(&self) -> Vec<Entry> {
        let mut log = self.state.log.lock().unwrap();
        log.extend(
            self.state
                .daemon
                .read_all()
                .into_iter()
                .map(Entry::Document),
        );
        log.clone()
    }
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

async fn answer(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let headers = req.headers().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let reply = |status: StatusCode| {
        Response::builder()
            .status(status)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let Some(rest) = path.strip_prefix("/2018-06-01/runtime/") else {
        return reply(StatusCode::NOT_FOUND);
    };
    match (method, rest) {
        (Method::GET, "invocation/next") => {
            let open = state.open_next.fetch_add(1, Ordering::SeqCst) + 1;
            state.max_open_next.fetch_max(open, Ordering::SeqCst);
            let _open = OpenNext(state);
            let event = loop {
                let queued = state.queued.notified();
                tokio::pin!(queued);
                queued.as_mut().enable();
                if let Some(event) = state.queue.lock().unwrap().pop_front() {
                    break event;
                }
                queued.await;
            };
            let deadline = now_ms() + event.deadline.as_millis();
            let mut response = Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .header("lambda-runtime-aws-request-id", &event.request_id)
                .header("lambda-runtime-deadline-ms", deadline.to_string())
                .header("lambda-runtime-invoked-function-arn", FUNCTION_ARN);
            if let Some(trace) = &event.trace_header {
                response = response.header("lambda-runtime-trace-id", trace);
            }
            response
                .body(Full::new(Bytes::from(event.payload.to_string())))
                .unwrap()
        }
        (Method::POST, "init/error") => {
            state.record(Entry::Error {
                request_id: "init".into(),
                error_type: header(&headers, "lambda-runtime-function-error-type"),
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            });
            reply(StatusCode::ACCEPTED)
        }
        (Method::POST, rest) => {
            let Some((request_id, kind)) = rest
                .strip_prefix("invocation/")
                .and_then(|r| r.split_once('/'))
            else {
                return reply(StatusCode::NOT_FOUND);
            };
            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let request_id = request_id.to_owned();
            match kind {
                "response" => state.record(Entry::Response { request_id, body }),
                "error" => state.record(Entry::Error {
                    request_id,
                    error_type: header(&headers, "lambda-runtime-function-error-type"),
                    body,
                }),
                _ => return reply(StatusCode::NOT_FOUND),
            }
            reply(StatusCode::ACCEPTED)
        }
        _ => reply(StatusCode::NOT_FOUND),
    }
}

fn header(headers: &http::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The function: this test binary again, running only the ignored test `function_process`,
/// with Lambda's environment pointing at `api`. Killed when dropped.
pub struct Function(Child);

impl Function {
    pub fn start(api: &RuntimeApi, concurrency: u32, dynamodb: Option<&str>) -> Function {
        Function::spawn(api, concurrency, dynamodb, false, &[])
    }

    /// The `lambda_http` function.
    pub fn start_http(api: &RuntimeApi, concurrency: u32) -> Function {
        Function::spawn(api, concurrency, None, true, &[])
    }

    /// The `lambda_http` function, with more environment variables.
    pub fn start_http_with_env(
        api: &RuntimeApi,
        concurrency: u32,
        env: &[(&str, &str)],
    ) -> Function {
        Function::spawn(api, concurrency, None, true, env)
    }

    fn spawn(
        api: &RuntimeApi,
        concurrency: u32,
        dynamodb: Option<&str>,
        http: bool,
        env: &[(&str, &str)],
    ) -> Function {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--ignored", "--exact", "function_process", "--nocapture"])
            .env(FUNCTION_ENV, "1")
            .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", FUNCTION_NAME)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/12/07/[$LATEST]test")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/orders-fn")
            .env("AWS_XRAY_DAEMON_ADDRESS", api.daemon_addr.to_string())
            .env("AWS_XRAY_CONTEXT_MISSING", "LOG_ERROR")
            .env_remove("_X_AMZN_TRACE_ID")
            .env_remove("AWS_XRAY_SDK_ENABLED")
            .env_remove("AWS_XRAY_TRACING_NAME")
            .env_remove("AWS_XRAY_SAMPLING_RULES")
            .env_remove("OTEL_PROPAGATORS")
            .env_remove("OTEL_TRACES_EXPORTER")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        // The function panics on purpose in one test: its output only when asked for.
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.stderr(Stdio::null());
        }
        if concurrency > 1 {
            cmd.env("AWS_LAMBDA_MAX_CONCURRENCY", concurrency.to_string());
        } else {
            cmd.env_remove("AWS_LAMBDA_MAX_CONCURRENCY");
        }
        match dynamodb {
            Some(endpoint) => cmd.env("XRAY_TEST_FUNCTION_DYNAMODB", endpoint),
            None => cmd.env_remove("XRAY_TEST_FUNCTION_DYNAMODB"),
        };
        if http {
            cmd.env("XRAY_TEST_FUNCTION_HTTP", "1");
        } else {
            cmd.env_remove("XRAY_TEST_FUNCTION_HTTP");
        }
        Function(cmd.spawn().unwrap())
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The documents of the log that belong to trace `root`.
pub fn documents_of(log: &[Entry], root: &str) -> Vec<Value> {
    log.iter()
        .filter_map(|e| match e {
            Entry::Document(d) if d["trace_id"] == root => Some(d.clone()),
            _ => None,
        })
        .collect()
}

/// Asserts that every document of trace `root` was logged before the answer to
/// `request_id`, and returns them.
pub fn documents_before_answer(log: &[Entry], root: &str, request_id: &str) -> Vec<Value> {
    let answer = log
        .iter()
        .position(|e| e.request_id() == Some(request_id))
        .unwrap_or_else(|| panic!("no answer to {request_id}: {log:#?}"));
    for (i, e) in log.iter().enumerate() {
        if let Entry::Document(d) = e
            && d["trace_id"] == root
        {
            assert!(
                i < answer,
                "a document of {root} arrived after the answer to {request_id}: {d}"
            );
        }
    }
    documents_of(log, root)
}

/// The answer to `request_id`.
pub fn answer_to<'a>(log: &'a [Entry], request_id: &str) -> &'a Entry {
    log.iter()
        .find(|e| e.request_id() == Some(request_id))
        .unwrap_or_else(|| panic!("no answer to {request_id}"))
}

/// Every entity of some documents, embedded ones included: `(id, parent id, document)`.
pub fn entities(docs: &[Value]) -> Vec<(String, Option<String>, Value)> {
    xray_sdk::testing::flatten(docs)
}

pub fn named<'a>(
    all: &'a [(String, Option<String>, Value)],
    name: &str,
) -> Vec<&'a (String, Option<String>, Value)> {
    all.iter().filter(|(_, _, d)| d["name"] == name).collect()
}
