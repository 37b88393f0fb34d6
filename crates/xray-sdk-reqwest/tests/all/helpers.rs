//! Two real axum services on 127.0.0.1 and a UDP capture standing in for the daemon.
//!
//! Service B answers `/echo` (the trace header it received, as the body), `/status/{code}`,
//! `/slow` (sleeps) and `/flaky` (503 until its third hit). Service A answers `/call/{*path}`
//! by calling B's `/{path}?token=secret` through a client with the middleware under test and
//! describing the outcome as JSON. Both are wrapped in a small traced-service middleware
//! written with the core API (not xray-sdk-tower).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use xray_sdk::Record;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use reqwest_middleware::ClientWithMiddleware;
use serde_json::{Value, json};
use xray_sdk::context::FutureExt;
use xray_sdk::testing::UdpCapture;
use xray_sdk::{Recorder, TraceHeader};

pub(crate) const WAIT: Duration = Duration::from_secs(5);
pub(crate) const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";
pub(crate) const CALLER_PARENT: &str = "53995c3f42cd8ad8";
pub(crate) const LINEAGE: &str = "Lineage=10:1234abcd:3";

/// The state of the traced-service middleware.
#[derive(Clone)]
struct Traced {
    recorder: Recorder,
    name: &'static str,
    /// Answer with an `X-Amzn-Trace-Id` response header, as traced services do.
    answer_header: bool,
}

/// Begins a segment from the incoming header, runs the handler with it current, records the
/// status and ends the segment.
async fn traced(State(t): State<Traced>, req: Request, next: Next) -> Response {
    let incoming = req
        .headers()
        .get("x-amzn-trace-id")
        .and_then(|v| v.to_str().ok())
        .map(TraceHeader::parse)
        .unwrap_or_default();
    let segment = t.recorder.segment(t.name).header(&incoming).begin();
    let mut response = next.run(req).in_context(segment.context()).await;
    segment.set_http_response(response.status().as_u16(), None);
    if t.answer_header {
        let value = format!(
            "Root={};Sampled={}",
            segment.trace_id(),
            u8::from(segment.is_sampled())
        );
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().insert("x-amzn-trace-id", v);
        }
    }
    segment.end();
    response
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.ok();
    });
    addr
}

/// Service B.
pub(crate) struct ServiceB {
    pub(crate) addr: SocketAddr,
    pub(crate) hits: Arc<AtomicUsize>,
}

impl ServiceB {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn echo_header(headers: &HeaderMap) -> String {
    headers
        .get("x-amzn-trace-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// Starts service B. `recorder: None` runs it untraced (no segment, no response header).
pub(crate) async fn service_b(recorder: Option<Recorder>) -> ServiceB {
    let hits = Arc::new(AtomicUsize::new(0));
    let flaky_hits = Arc::clone(&hits);
    let echo_hits = Arc::clone(&hits);
    let router = Router::new()
        .route(
            "/echo",
            get(move |headers: HeaderMap| {
                echo_hits.fetch_add(1, Ordering::SeqCst);
                async move { echo_header(&headers) }
            }),
        )
        .route(
            "/status/{code}",
            get(|Path(code): Path<u16>| async move {
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
        .route(
            "/flaky",
            get(move |headers: HeaderMap| {
                let n = flaky_hits.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    let status = if n < 3 {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::OK
                    };
                    (status, echo_header(&headers))
                }
            }),
        );
    let router = match recorder {
        Some(recorder) => router.layer(from_fn_with_state(
            Traced {
                recorder,
                name: "service-b",
                answer_header: true,
            },
            traced,
        )),
        None => router,
    };
    ServiceB {
        addr: serve(router).await,
        hits,
    }
}

#[derive(Clone)]
struct AState {
    client: ClientWithMiddleware,
    target: String,
    timeout: Option<Duration>,
}

/// A's handler: calls `<target>/<path>?token=secret` and describes the outcome.
async fn call(
    State(a): State<AState>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let mut request = a
        .client
        .get(format!("{}/{path}?token=secret", a.target))
        .header("user-agent", "service-a");
    if let Some(v) = headers.get("x-test-hand-set") {
        request = request.header("x-amzn-trace-id", v.clone());
    }
    if let Some(t) = a.timeout {
        request = request.timeout(t);
    }
    let out = match request.send().await {
        Ok(res) => {
            let status = res.status().as_u16();
            let body = res.text().await.unwrap_or_default();
            json!({ "status": status, "body": body })
        }
        Err(e) => json!({
            "error": e.to_string(),
            "is_reqwest": matches!(e, reqwest_middleware::Error::Reqwest(_)),
            "is_timeout": e.is_timeout(),
            "is_connect": e.is_connect(),
        }),
    };
    out.to_string()
}

/// Starts service A, calling `target` (a base URL) with `client`.
pub(crate) async fn service_a(
    recorder: Recorder,
    client: ClientWithMiddleware,
    target: String,
    timeout: Option<Duration>,
) -> SocketAddr {
    let router = Router::new()
        .route("/call/{*path}", get(call))
        .with_state(AState {
            client,
            target,
            timeout,
        })
        .layer(from_fn_with_state(
            Traced {
                recorder,
                name: "service-a",
                answer_header: true,
            },
            traced,
        ));
    serve(router).await
}

/// Asks A to call B's `path` with the given incoming trace header (and extra headers); returns
/// A's JSON description of the outcome.
pub(crate) async fn ask_a(
    a: SocketAddr,
    path: &str,
    trace_header: &str,
    extra: &[(&str, &str)],
) -> Value {
    let client = reqwest::Client::new();
    let mut request = client
        .get(format!("http://{a}/call/{path}"))
        .timeout(Duration::from_secs(10))
        .header("x-amzn-trace-id", trace_header);
    for (k, v) in extra {
        request = request.header(*k, *v);
    }
    let body = request.send().await.unwrap().text().await.unwrap();
    serde_json::from_str(&body).unwrap()
}

/// A sampled incoming header for a fresh trace, with a Lineage key.
pub(crate) fn sampled_header(root: &str) -> String {
    format!("Root={root};Parent={CALLER_PARENT};Sampled=1;{LINEAGE}")
}

/// A trace ID that differs per call (for tests that make several traces).
pub(crate) fn fresh_root() -> String {
    xray_sdk::TraceId::new().to_string()
}

/// A client with the given middlewares, in order (the first is outermost).
pub(crate) fn client(
    middlewares: Vec<Arc<dyn reqwest_middleware::Middleware>>,
) -> ClientWithMiddleware {
    client_with(reqwest::Client::new(), middlewares)
}

/// Like [`client`] over a given reqwest client.
pub(crate) fn client_with(
    inner: reqwest::Client,
    middlewares: Vec<Arc<dyn reqwest_middleware::Middleware>>,
) -> ClientWithMiddleware {
    middlewares
        .into_iter()
        .fold(
            reqwest_middleware::ClientBuilder::new(inner),
            reqwest_middleware::ClientBuilder::with_arc,
        )
        .build()
}

/// Collects documents until `done` says everything needed arrived, or `WAIT` passes; returns
/// every entity of them (see `xray_sdk::testing::flatten`).
pub(crate) fn collect(
    capture: &UdpCapture,
    done: impl Fn(&[(String, Option<String>, Value)]) -> bool,
) -> Vec<(String, Option<String>, Value)> {
    let deadline = Instant::now() + WAIT;
    let mut docs = Vec::new();
    loop {
        let flat = xray_sdk::testing::flatten(&docs);
        if done(&flat) {
            return flat;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return flat;
        }
        let more = capture.documents(1, left.min(Duration::from_millis(100)));
        docs.extend(more);
    }
}

/// Entities named `name`.
pub(crate) fn named<'a>(
    flat: &'a [(String, Option<String>, Value)],
    name: &str,
) -> Vec<&'a (String, Option<String>, Value)> {
    flat.iter().filter(|(_, _, d)| d["name"] == name).collect()
}

/// Waits until there are at least `n` entities named `name`.
pub(crate) fn until_named(
    name: &'static str,
    n: usize,
) -> impl Fn(&[(String, Option<String>, Value)]) -> bool {
    move |flat| named(flat, name).len() >= n
}

/// A TCP port on 127.0.0.1 that was bound and closed: connecting to it is refused.
pub(crate) fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A DNS resolver that knows no name, so a lookup failure needs no query off the machine.
struct NoNames;

impl reqwest::dns::Resolve for NoNames {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let message = format!("no such host: {}", name.as_str());
        Box::pin(
            async move { Err(std::io::Error::new(std::io::ErrorKind::NotFound, message).into()) },
        )
    }
}

/// A reqwest client whose every name lookup fails.
pub(crate) fn no_dns_client() -> reqwest::Client {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(NoNames))
        .build()
        .unwrap()
}
