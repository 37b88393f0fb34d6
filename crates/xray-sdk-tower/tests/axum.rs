//! The layer on a real axum server, called by a real HTTP client, with the segments captured
//! on a real UDP socket.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;
use xray_sdk::Record;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use bytes::Bytes;
use common::{ChannelBody, Daemon, PARENT, ROOT, client, now_secs, serve};
use serde_json::{Value, json};
use xray_sdk::{Context, Sampler, SamplingDecision, SamplingRequest};
use xray_sdk_tower::{SegmentNaming, XRayContext, XRayLayer};

/// Reports what the handler saw: the segment from the extractor, the current context and the
/// header a downstream call would send.
async fn inspect(segment: XRayContext) -> String {
    tokio::task::yield_now().await;
    let current = Context::current();
    json!({
        "trace_id": segment.trace_id().to_string(),
        "id": segment.id().to_string(),
        "sampled": segment.is_sampled(),
        "current_is_segment": current.as_ref().map(|c| c.id()) == Some(segment.id()),
        "downstream": current.map(|c| c.downstream_header().to_string()),
    })
    .to_string()
}

fn app(daemon: &Daemon) -> Router {
    Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route("/inspect", get(inspect))
        .route(
            "/throttled",
            get(|| async { (StatusCode::TOO_MANY_REQUESTS, "slow down") }),
        )
        .route(
            "/broken",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "oops") }),
        )
        .route(
            "/panic",
            get(|| async {
                if now_secs() > 0.0 {
                    panic!("boom at the handler");
                }
                "unreachable"
            }),
        )
        .layer(XRayLayer::new(daemon.recorder.clone()))
}

async fn get_with(
    addr: std::net::SocketAddr,
    path: &str,
    trace_header: Option<&str>,
) -> (StatusCode, HeaderMap, String) {
    let mut req = client().get(format!("http://{addr}{path}"));
    if let Some(h) = trace_header {
        req = req.header("x-amzn-trace-id", h);
    }
    let res = req.send().await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    (status, headers, res.text().await.unwrap())
}

fn trace_header_of(headers: &HeaderMap) -> &str {
    headers
        .get("x-amzn-trace-id")
        .expect("response trace header")
        .to_str()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_header_starts_a_new_trace_and_records_the_request() {
    let daemon = Daemon::new("shop");
    let addr = serve(app(&daemon)).await;
    let before = now_secs();
    let (status, headers, body) = get_with(addr, "/hello?secret=1", None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello"));
    let doc = daemon.document().await;
    assert_eq!(doc["name"], "shop");
    assert!(doc.get("parent_id").is_none(), "{doc}");
    let trace_id = doc["trace_id"].as_str().unwrap();
    assert_ne!(trace_id, ROOT);
    assert_eq!(trace_header_of(&headers), format!("Root={trace_id}"));
    let http = &doc["http"];
    assert_eq!(http["request"]["method"], "GET");
    assert_eq!(http["request"]["url"], format!("http://{addr}/hello"));
    assert_eq!(http["request"]["user_agent"], "xray-test/1.0");
    assert_eq!(http["request"]["client_ip"], "127.0.0.1");
    assert!(http["request"].get("x_forwarded_for").is_none());
    assert_eq!(http["response"]["status"], 200);
    assert_eq!(http["response"]["content_length"], 5);
    for flag in ["error", "throttle", "fault"] {
        assert!(doc.get(flag).is_none(), "{flag} set on a 200: {doc}");
    }
    let (start, end) = (
        doc["start_time"].as_f64().unwrap(),
        doc["end_time"].as_f64().unwrap(),
    );
    assert!(before - 0.01 <= start && start <= end && end <= now_secs() + 0.01);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_only_continues_the_trace_and_the_sampler_decides() {
    // Sampler says yes.
    let daemon = Daemon::new("svc");
    let addr = serve(app(&daemon)).await;
    let (_, headers, body) = get_with(addr, "/inspect", Some(&format!("Root={ROOT}"))).await;
    let seen: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["trace_id"], ROOT);
    assert_eq!(seen["sampled"], true);
    assert_eq!(trace_header_of(&headers), format!("Root={ROOT}"));
    let doc = daemon.document().await;
    assert_eq!(doc["trace_id"], ROOT);
    assert_eq!(doc["id"], seen["id"]);
    assert!(doc.get("parent_id").is_none());

    // Sampler says no: nothing sent, the decision still propagates.
    let daemon = Daemon::never_sampling("svc");
    let addr = serve(app(&daemon)).await;
    let (_, headers, body) = get_with(addr, "/inspect", Some(&format!("Root={ROOT}"))).await;
    let seen: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["sampled"], false);
    assert_eq!(trace_header_of(&headers), format!("Root={ROOT}"));
    assert!(
        seen["downstream"]
            .as_str()
            .unwrap()
            .starts_with(&format!("Root={ROOT};Parent="))
    );
    assert!(seen["downstream"].as_str().unwrap().ends_with(";Sampled=0"));
    daemon.assert_nothing_sent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_1_is_obeyed_and_parent_kept() {
    let daemon = Daemon::never_sampling("svc");
    let addr = serve(app(&daemon)).await;
    let header = format!("Root={ROOT};Parent={PARENT};Sampled=1");
    let (status, headers, body) = get_with(addr, "/inspect", Some(&header)).await;
    assert_eq!(status, StatusCode::OK);
    let seen: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["current_is_segment"], true);
    assert_eq!(
        seen["downstream"],
        format!(
            "Root={ROOT};Parent={};Sampled=1",
            seen["id"].as_str().unwrap()
        )
    );
    assert_eq!(trace_header_of(&headers), format!("Root={ROOT}"));
    let doc = daemon.document().await;
    assert_eq!(doc["trace_id"], ROOT);
    assert_eq!(doc["parent_id"], PARENT);
    assert_eq!(doc["id"], seen["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_0_is_obeyed_and_nothing_is_sent() {
    let daemon = Daemon::new("svc");
    let addr = serve(app(&daemon)).await;
    let header = format!("Root={ROOT};Parent={PARENT};Sampled=0");
    let (status, headers, body) = get_with(addr, "/inspect", Some(&header)).await;
    assert_eq!(status, StatusCode::OK);
    let seen: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["sampled"], false);
    assert_eq!(seen["current_is_segment"], true);
    assert_eq!(
        seen["downstream"],
        format!(
            "Root={ROOT};Parent={};Sampled=0",
            seen["id"].as_str().unwrap()
        )
    );
    assert_eq!(trace_header_of(&headers), format!("Root={ROOT}"));
    daemon.assert_nothing_sent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_requested_gets_the_decision_back() {
    let header = format!("Root={ROOT};Sampled=?");
    let daemon = Daemon::new("svc");
    let addr = serve(app(&daemon)).await;
    let (_, headers, _) = get_with(addr, "/hello", Some(&header)).await;
    assert_eq!(trace_header_of(&headers), format!("Root={ROOT};Sampled=1"));
    assert_eq!(daemon.document().await["trace_id"], ROOT);

    let daemon = Daemon::never_sampling("svc");
    let addr = serve(app(&daemon)).await;
    let (_, headers, _) = get_with(addr, "/hello", Some(&header)).await;
    assert_eq!(trace_header_of(&headers), format!("Root={ROOT};Sampled=0"));
    daemon.assert_nothing_sent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lineage_and_unknown_keys_reach_downstream_self_is_dropped() {
    let daemon = Daemon::new("svc");
    let addr = serve(app(&daemon)).await;
    let header = format!(
        "Self=1-67891234-12456789abcdef012345678;Root={ROOT};Parent={PARENT};Sampled=1;Lineage=10:1234abcd:3;Foo=bar"
    );
    let (_, headers, body) = get_with(addr, "/inspect", Some(&header)).await;
    let seen: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        seen["downstream"],
        format!(
            "Root={ROOT};Parent={};Sampled=1;Lineage=10:1234abcd:3;Foo=bar",
            seen["id"].as_str().unwrap()
        )
    );
    assert_eq!(trace_header_of(&headers), format!("Root={ROOT}"));
    let doc = daemon.document().await;
    assert_eq!(
        (&doc["trace_id"], &doc["parent_id"]),
        (&json!(ROOT), &json!(PARENT))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_headers_start_a_new_trace_without_failing() {
    let daemon = Daemon::new("svc");
    let addr = serve(app(&daemon)).await;
    let malformed = [
        "garbage",
        "",
        ";;;",
        "Root=1-zzzzzzzz-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
        "Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        "Parent=53995c3f42cd8ad8;Sampled=1",
    ];
    for header in malformed {
        let (status, headers, body) = get_with(addr, "/inspect", Some(header)).await;
        assert_eq!(status, StatusCode::OK, "{header:?}");
        let seen: Value = serde_json::from_str(&body).unwrap();
        let trace_id = seen["trace_id"].as_str().unwrap();
        assert_ne!(trace_id, ROOT);
        assert_eq!(trace_header_of(&headers), format!("Root={trace_id}"));
        let doc = daemon.document().await;
        assert_eq!(doc["trace_id"], trace_id, "{header:?}");
        assert!(doc.get("parent_id").is_none(), "{header:?}: {doc}");
    }
    // Bytes that are not text at all.
    let res = client()
        .get(format!("http://{addr}/hello"))
        .header(
            "x-amzn-trace-id",
            reqwest::header::HeaderValue::from_bytes(b"Root=\xff\xfe").unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(daemon.document().await.get("parent_id").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_beyond_ascii_in_one_part_leave_the_other_parts_in_force() {
    let daemon = Daemon::never_sampling("svc");
    let addr = serve(app(&daemon)).await;
    // UTF-8 text, and a byte that is not UTF-8 at all, in an extra key's value.
    for tail in [&b"Lineage=caf\xc3\xa9:1"[..], &b"Odd=\xff"[..]] {
        let mut value = format!("Root={ROOT};Parent={PARENT};Sampled=1;Keep=me;").into_bytes();
        value.extend_from_slice(tail);
        let res = client()
            .get(format!("http://{addr}/inspect"))
            .header(
                "x-amzn-trace-id",
                reqwest::header::HeaderValue::from_bytes(&value).unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let seen: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
        // Continued and sampled as the caller said (the sampler here would say no), and the
        // part without odd bytes still travels on.
        assert_eq!(seen["trace_id"], ROOT, "{tail:?}");
        let downstream = seen["downstream"].as_str().unwrap();
        assert!(downstream.contains(";Sampled=1;Keep=me"), "{downstream}");
        assert!(downstream.is_ascii(), "{downstream}");
        let doc = daemon.document().await;
        assert_eq!(doc["trace_id"], ROOT);
        assert_eq!(doc["parent_id"], PARENT);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_set_error_throttle_and_fault() {
    let daemon = Daemon::new("svc");
    let addr = serve(app(&daemon)).await;
    for (path, status, flags) in [
        ("/hello", 200, &[][..]),
        ("/nowhere", 404, &["error"][..]),
        ("/throttled", 429, &["error", "throttle"][..]),
        ("/broken", 500, &["fault"][..]),
    ] {
        let (got, _, _) = get_with(addr, path, None).await;
        assert_eq!(got.as_u16(), status);
        let doc = daemon.document().await;
        assert_eq!(doc["http"]["response"]["status"], status, "{path}");
        for flag in ["error", "throttle", "fault"] {
            let want = flags.contains(&flag);
            assert_eq!(
                doc.get(flag) == Some(&json!(true)),
                want,
                "{path} {flag}: {doc}"
            );
        }
    }
}

/// Checks the segment of a request whose handler panicked: status 500 and `fault`, the panic
/// as the cause with the place it happened, and the trace header on the 500 the client got.
fn assert_panic_recorded(doc: &Value, status: StatusCode, headers: &HeaderMap) {
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(doc["http"]["response"]["status"], 500, "{doc}");
    assert_eq!(doc["fault"], true, "{doc}");
    let exceptions = doc["cause"]["exceptions"].as_array().unwrap();
    assert_eq!(exceptions.len(), 1, "one exception, not two: {doc}");
    assert_eq!(exceptions[0]["message"], "boom at the handler");
    assert_eq!(exceptions[0]["type"], "panic");
    let frame = &exceptions[0]["stack"][0];
    assert!(
        frame["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("tests/axum.rs")),
        "{doc}"
    );
    assert!(frame["line"].as_u64().unwrap() > 0);
    assert!(doc["end_time"].as_f64().is_some());
    assert_eq!(
        trace_header_of(headers),
        format!("Root={}", doc["trace_id"].as_str().unwrap())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_with_catch_panic_outside_gets_500_a_cause_and_the_header() {
    let daemon = Daemon::new("svc");
    let router = app(&daemon).layer(tower_http::catch_panic::CatchPanicLayer::new());
    let addr = serve(router).await;
    let (status, headers, _) = get_with(addr, "/panic", None).await;
    assert_panic_recorded(&daemon.document().await, status, &headers);

    // The server keeps serving, and the next request is clean.
    let (status, _, _) = get_with(addr, "/hello", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(daemon.document().await.get("fault").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_with_catch_panic_inside_gets_500_a_cause_and_the_header() {
    let daemon = Daemon::new("svc");
    let router = Router::new()
        .route(
            "/panic",
            get(|| async {
                if now_secs() > 0.0 {
                    panic!("boom at the handler");
                }
                "unreachable"
            }),
        )
        .route(
            "/caught",
            get(|| async {
                // A panic the handler recovers from: the request succeeds.
                let _ = std::panic::catch_unwind(|| panic!("recovered"));
                "fine"
            }),
        )
        .route(
            "/broken",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "later failure") }),
        )
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(XRayLayer::new(daemon.recorder.clone()));
    let addr = serve(router).await;
    let (status, headers, body) = get_with(addr, "/panic", None).await;
    // The 500 is CatchPanicLayer's own (its body), recorded as it passed through the layer.
    assert_eq!(body, "Service panicked");
    assert_panic_recorded(&daemon.document().await, status, &headers);

    // A recovered panic is no cause of a successful request, nor of the next request's
    // failure: the note belongs to its own request's segment.
    let (status, _, _) = get_with(addr, "/caught", None).await;
    assert_eq!(status, StatusCode::OK);
    let doc = daemon.document().await;
    assert!(
        doc.get("fault").is_none() && doc.get("cause").is_none(),
        "{doc}"
    );
    let (status, _, _) = get_with(addr, "/broken", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let doc = daemon.document().await;
    assert_eq!(doc["fault"], true);
    assert!(doc.get("cause").is_none(), "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_without_catch_panic_is_answered_500_by_the_layer() {
    let daemon = Daemon::new("svc");
    let addr = serve(app(&daemon)).await;
    let (status, headers, body) = get_with(
        addr,
        "/panic",
        Some(&format!("Root={ROOT};Parent={PARENT};Sampled=?")),
    )
    .await;
    assert_eq!(body, "");
    let doc = daemon.document().await;
    assert_eq!(doc["trace_id"], ROOT);
    assert_eq!(trace_header_of(&headers), format!("Root={ROOT};Sampled=1"));
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(doc["http"]["response"]["status"], 500);
    assert_eq!(doc["fault"], true);
    assert_eq!(
        doc["cause"]["exceptions"][0]["message"],
        "boom at the handler"
    );
    // The connection was kept: the next request on the same client works.
    let (status, _, _) = get_with(addr, "/hello", None).await;
    assert_eq!(status, StatusCode::OK);
    daemon.document().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_of_an_unsampled_request_is_answered_and_sends_nothing() {
    let daemon = Daemon::never_sampling("svc");
    let addr = serve(app(&daemon)).await;
    let (status, headers, _) = get_with(addr, "/panic", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(trace_header_of(&headers).starts_with("Root=1-"));
    daemon.assert_nothing_sent().await;
}

/// The idiomatic axum failure: a handler's error type whose response is a 500 (or a 4xx)
/// and that tells the layer what went wrong through `ErrorCause`.
#[derive(Debug)]
enum AppError {
    Storage(std::io::Error),
    BadInput(std::num::ParseIntError),
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::Storage(_) => f.write_str("could not load the order"),
            AppError::BadInput(_) => f.write_str("the order id is not a number"),
        }
    }
}

impl std::error::Error for AppError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AppError::Storage(e) => Some(e),
            AppError::BadInput(e) => Some(e),
        }
    }
}

impl axum::response::IntoResponse for AppError {
    fn into_response(self) -> axum::response::Response {
        let status = match self {
            AppError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
            AppError::BadInput(_) => StatusCode::BAD_REQUEST,
        };
        (
            status,
            xray_sdk_tower::ErrorCause::new(self),
            "request failed",
        )
            .into_response()
    }
}

async fn order(axum::extract::Path(id): axum::extract::Path<String>) -> Result<String, AppError> {
    let id: u32 = id.parse().map_err(AppError::BadInput)?;
    if id == 0 {
        return Err(AppError::Storage(std::io::Error::other("disk on fire")));
    }
    Ok(format!("order {id}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returned_errors_are_the_cause() {
    let daemon = Daemon::new("svc");
    let router = Router::new()
        .route("/orders/{id}", get(order))
        .layer(XRayLayer::new(daemon.recorder.clone()));
    let addr = serve(router).await;

    let (status, _, body) = get_with(addr, "/orders/0", None).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "request failed")
    );
    let doc = daemon.document().await;
    assert_eq!(doc["http"]["response"]["status"], 500);
    assert_eq!(doc["fault"], true);
    let exceptions = doc["cause"]["exceptions"].as_array().unwrap();
    assert_eq!(exceptions.len(), 2, "{doc}");
    assert_eq!(exceptions[0]["type"], "AppError");
    assert_eq!(exceptions[0]["message"], "could not load the order");
    assert_eq!(exceptions[1]["message"], "disk on fire");
    assert_eq!(exceptions[0]["cause"], exceptions[1]["id"]);

    // A 4xx error: `error`, not `fault`, and its cause all the same.
    let (status, _, _) = get_with(addr, "/orders/x", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let doc = daemon.document().await;
    assert_eq!(doc["error"], true);
    assert!(doc.get("fault").is_none());
    assert_eq!(
        doc["cause"]["exceptions"][0]["message"],
        "the order id is not a number"
    );
    assert_eq!(
        doc["cause"]["exceptions"][1]["message"],
        "invalid digit found in string"
    );

    // Success: no cause.
    let (status, _, body) = get_with(addr, "/orders/7", None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "order 7"));
    assert!(daemon.document().await.get("cause").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_body_ends_the_segment_after_the_last_chunk() {
    let daemon = Daemon::new("svc");
    let last_chunk_at = Arc::new(Mutex::new(0.0f64));
    let last = Arc::clone(&last_chunk_at);
    let router = Router::new()
        .route(
            "/stream",
            get(move || {
                let last = Arc::clone(&last);
                async move {
                    let (tx, rx) = tokio::sync::mpsc::channel(1);
                    tokio::spawn(async move {
                        for i in 0..3 {
                            if i == 2 {
                                *last.lock().unwrap() = now_secs();
                            }
                            tx.send(Bytes::from(format!("chunk{i};"))).await.ok();
                            tokio::time::sleep(Duration::from_millis(150)).await;
                        }
                    });
                    Body::new(ChannelBody(rx))
                }
            }),
        )
        .layer(XRayLayer::new(daemon.recorder.clone()));
    let addr = serve(router).await;
    let res = client()
        .get(format!("http://{addr}/stream"))
        .send()
        .await
        .unwrap();
    let headers_at = now_secs();
    assert_eq!(res.text().await.unwrap(), "chunk0;chunk1;chunk2;");
    let doc = daemon.document().await;
    let (start, end) = (
        doc["start_time"].as_f64().unwrap(),
        doc["end_time"].as_f64().unwrap(),
    );
    let last = *last_chunk_at.lock().unwrap();
    assert!(end >= last, "ended {end} before the last chunk {last}");
    assert!(end > headers_at, "ended {end} when the headers went out");
    assert!(end - start >= 0.29, "lasted {}", end - start);
    assert_eq!(doc["http"]["response"]["status"], 200);
    assert!(doc["http"]["response"].get("content_length").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_mid_body_still_sends_the_segment() {
    let daemon = Daemon::new("svc");
    let router = Router::new()
        .route(
            "/forever",
            get(|| async {
                let (tx, rx) = tokio::sync::mpsc::channel(1);
                tokio::spawn(async move {
                    // Up to 30 s of chunks; stops as soon as the body is gone.
                    for _ in 0..600 {
                        if tx.send(Bytes::from_static(b"tick\n")).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                });
                Body::new(ChannelBody(rx))
            }),
        )
        .layer(XRayLayer::new(daemon.recorder.clone()));
    let addr = serve(router).await;
    let client = client();
    let mut res = client
        .get(format!("http://{addr}/forever"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.chunk().await.unwrap().unwrap(), "tick\n");
    let dropped_at = now_secs();
    drop(res);
    drop(client);
    let doc = daemon.document().await;
    let end = doc["end_time"].as_f64().unwrap();
    assert!(end >= dropped_at - 0.01 && end < dropped_at + 5.0, "{doc}");
    assert_eq!(doc["http"]["response"]["status"], 200);
}

/// One data frame, then an error.
struct FailingBody {
    sent: bool,
}

impl http_body::Body for FailingBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.sent {
            return std::task::Poll::Ready(Some(Err(std::io::Error::other("disk gone"))));
        }
        self.sent = true;
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(
            b"partial",
        )))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_failing_mid_stream_is_a_fault_with_the_status_sent() {
    let daemon = Daemon::new("svc");
    let router = Router::new()
        .route(
            "/fails",
            get(|| async { Body::new(FailingBody { sent: false }) }),
        )
        .layer(XRayLayer::new(daemon.recorder.clone()));
    let addr = serve(router).await;
    // The server aborts the response: the client sees a broken message, before or after the
    // head depending on when hyper flushes it.
    let outcome = match client().get(format!("http://{addr}/fails")).send().await {
        Ok(res) => res.bytes().await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(outcome.is_err(), "the client got a whole body");
    let doc = daemon.document().await;
    assert_eq!(doc["fault"], true, "{doc}");
    assert_eq!(doc["http"]["response"]["status"], 200, "{doc}");
    let exception = &doc["cause"]["exceptions"][0];
    assert_eq!(exception["type"], "BodyError", "{doc}");
    assert_eq!(
        exception["message"], "the response body failed while streaming",
        "{doc}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_keep_their_contexts_apart() {
    let daemon = Daemon::new("svc");
    let router = Router::new()
        .route(
            "/work/{n}",
            get(
                |segment: XRayContext, axum::extract::Path(n): axum::extract::Path<u32>| async move {
                    for step in 0..5u64 {
                        tokio::time::sleep(Duration::from_millis(5 * ((n as u64 + step) % 3))).await;
                        let current = Context::current().expect("current context");
                        assert_eq!(current.id(), segment.id(), "request {n} step {step}");
                    }
                    xray_sdk::subsegment("work", async move {
                        tokio::task::yield_now().await;
                        Context::current().unwrap().annotate("n", n);
                    })
                    .await;
                    segment.annotate("n", n);
                    segment.trace_id().to_string()
                },
            ),
        )
        .layer(XRayLayer::new(daemon.recorder.clone()));
    let addr = serve(router).await;
    let client = client();
    let mut tasks = Vec::new();
    for n in 0..24u32 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let root = format!("1-5759e988-{n:024x}");
            let res = client
                .get(format!("http://{addr}/work/{n}"))
                .header("x-amzn-trace-id", format!("Root={root};Sampled=1"))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(res.text().await.unwrap(), root);
            (n, root)
        }));
    }
    let mut expected = Vec::new();
    for t in tasks {
        expected.push(t.await.unwrap());
    }
    let docs = daemon.documents(24).await;
    assert_eq!(docs.len(), 24);
    for (n, root) in expected {
        let doc = docs
            .iter()
            .find(|d| d["trace_id"] == root.as_str())
            .unwrap_or_else(|| panic!("no document for request {n}"));
        assert_eq!(doc["annotations"]["n"], n);
        let subs = doc["subsegments"].as_array().unwrap();
        assert_eq!(subs.len(), 1);
        assert_eq!(subs[0]["name"], "work");
        assert_eq!(subs[0]["annotations"]["n"], n);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_naming_uses_recognized_hosts_and_a_fallback() {
    let daemon = Daemon::new("svc");
    let router = Router::new().route("/", get(|| async { "ok" })).layer(
        XRayLayer::new(daemon.recorder.clone())
            .naming(SegmentNaming::dynamic("*.example.com", "fallback-name")),
    );
    let addr = serve(router).await;
    // Without a header the sampler is asked (with the name); with `Sampled=1` it is not,
    // and the name and URL come from the host all the same.
    let decided = format!("Root={ROOT};Sampled=1");
    for (host, header, name) in [
        ("API.example.com", None, "API.example.com"),
        ("evil.org", None, "fallback-name"),
        ("orders.example.com", Some(&decided), "orders.example.com"),
        ("evil.org", Some(&decided), "fallback-name"),
    ] {
        let mut request = client().get(format!("http://{addr}/")).header("host", host);
        if let Some(h) = header {
            request = request.header("x-amzn-trace-id", h);
        }
        request.send().await.unwrap();
        let doc = daemon.document().await;
        assert_eq!(doc["name"], name);
        assert_eq!(doc["http"]["request"]["url"], format!("http://{host}/"));
        if header.is_some() {
            assert_eq!(doc["trace_id"], ROOT);
        }
    }
}

#[derive(Debug, Clone, Default)]
struct SpySampler(Arc<Mutex<Vec<Value>>>);

impl Sampler for SpySampler {
    fn should_sample(&self, r: &SamplingRequest<'_>) -> SamplingDecision {
        self.0.lock().unwrap().push(json!({
            "service_name": r.service_name,
            "host": r.host,
            "method": r.method,
            "url_path": r.url_path,
        }));
        SamplingDecision::new(true)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sampler_sees_host_method_path_and_name_only_when_asked() {
    let spy = SpySampler::default();
    let daemon = Daemon::with_sampler("svc", spy.clone());
    let addr = serve(app(&daemon)).await;
    get_with(addr, "/hello?x=1", None).await;
    get_with(addr, "/hello", Some(&format!("Root={ROOT};Sampled=?"))).await;
    get_with(addr, "/hello", Some(&format!("Root={ROOT};Sampled=1"))).await;
    get_with(addr, "/hello", Some(&format!("Root={ROOT};Sampled=0"))).await;
    let seen = spy.0.lock().unwrap().clone();
    let want = json!({
        "service_name": "svc",
        "host": addr.to_string(),
        "method": "GET",
        "url_path": "/hello",
    });
    assert_eq!(seen, vec![want.clone(), want]);
    assert_eq!(daemon.documents(3).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ip_from_the_first_x_forwarded_for_entry() {
    let daemon = Daemon::new("svc");
    let addr = serve(app(&daemon)).await;
    client()
        .get(format!("http://{addr}/hello"))
        .header("x-forwarded-for", " 203.0.113.7 , 10.0.0.1")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let doc = daemon.document().await;
    assert_eq!(doc["http"]["request"]["client_ip"], "203.0.113.7");
    assert_eq!(doc["http"]["request"]["x_forwarded_for"], true);
    assert_eq!(
        doc["http"]["request"]["url"],
        format!("https://{addr}/hello")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_header_can_be_turned_off() {
    let daemon = Daemon::new("svc");
    let router = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(XRayLayer::new(daemon.recorder.clone()).response_header(false));
    let addr = serve(router).await;
    let (_, headers, _) = get_with(addr, "/", Some(&format!("Root={ROOT};Sampled=?"))).await;
    assert!(headers.get("x-amzn-trace-id").is_none());
    assert_eq!(daemon.document().await["trace_id"], ROOT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extractor_without_the_layer() {
    let router = Router::new()
        .route(
            "/optional",
            get(|segment: Option<XRayContext>| async move { format!("{}", segment.is_some()) }),
        )
        .route("/required", get(|_segment: XRayContext| async { "never" }));
    let addr = serve(router).await;
    let (status, _, body) = get_with(addr, "/optional", None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "false"));
    let (status, _, body) = get_with(addr, "/required", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("XRayLayer"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tower_http_layers_inside_and_outside() {
    use http::header::{HeaderName, HeaderValue};
    use tower_http::set_header::SetResponseHeaderLayer;
    let daemon = Daemon::new("svc");
    let router = Router::new()
        .route("/", get(|| async { "ok" }))
        // Inside: sees its own header on the response the segment records.
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("content-length"),
            HeaderValue::from_static("2"),
        ))
        .layer(XRayLayer::new(daemon.recorder.clone()))
        // Outside: the trace header is already on the response it sees.
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("x-amzn-trace-id"),
            HeaderValue::from_static("Root=not-replaced"),
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::new());
    let addr = serve(router).await;
    let (status, headers, body) = get_with(addr, "/", None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    let doc = daemon.document().await;
    assert_eq!(
        trace_header_of(&headers),
        format!("Root={}", doc["trace_id"].as_str().unwrap())
    );
    assert_eq!(doc["http"]["response"]["content_length"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_of_head_and_empty_responses() {
    let daemon = Daemon::new("svc");
    let router = Router::new()
        .route(
            "/doc",
            axum::routing::head(|| async { ([(axum::http::header::CONTENT_LENGTH, "42")], ()) }),
        )
        .route("/empty", get(|| async { StatusCode::NO_CONTENT }))
        .route("/hello", get(|| async { "hello" }))
        .layer(XRayLayer::new(daemon.recorder.clone()));
    let addr = serve(router).await;

    // HEAD: no body is sent, the header gives the representation's length.
    let res = client()
        .head(format!("http://{addr}/doc"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let doc = daemon.document().await;
    assert_eq!(doc["http"]["request"]["method"], "HEAD");
    assert_eq!(doc["http"]["response"]["content_length"], 42);

    // An empty body without the header: zero.
    let res = client()
        .get(format!("http://{addr}/empty"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let doc = daemon.document().await;
    assert_eq!(doc["http"]["response"]["content_length"], 0);

    // A body that knows its length: that length.
    let (status, _, body) = get_with(addr, "/hello", None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello"));
    let doc = daemon.document().await;
    assert_eq!(doc["http"]["response"]["content_length"], 5);
}
