//! The client layer around hyper-util's client, calling a real axum server (traced with
//! `XRayLayer`) on 127.0.0.1, with each side's documents captured on its own UDP socket.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::routing::get;
use bytes::Bytes;
use common::{ChannelBody, Daemon, now_secs, serve};
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::{Service, ServiceExt};
use xray_sdk::context::FutureExt;
use xray_sdk::remote::ExistingHeader;
use xray_sdk::{Context, ContextMissing};
use xray_sdk_tower::{XRayClient, XRayClientLayer, XRayLayer};

type HyperClient = Client<HttpConnector, Empty<Bytes>>;

fn hyper_client() -> HyperClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A server whose `/slow` body streams three chunks, 30 ms apart; returns when the last one
/// was handed over, in `last_chunk`.
fn app(daemon: &Daemon, last_chunk: Arc<Mutex<f64>>) -> Router {
    Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route(
            "/header",
            get(|req: axum::extract::Request| async move {
                req.headers()
                    .get("x-amzn-trace-id")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default()
            }),
        )
        .route(
            "/slow",
            get(move || {
                let last_chunk = Arc::clone(&last_chunk);
                async move {
                    let (tx, rx) = tokio::sync::mpsc::channel(1);
                    tokio::spawn(async move {
                        for i in 0..3 {
                            tokio::time::sleep(Duration::from_millis(30)).await;
                            *last_chunk.lock().unwrap() = now_secs();
                            if tx.send(Bytes::from(format!("chunk {i}\n"))).await.is_err() {
                                return;
                            }
                        }
                    });
                    Body::new(ChannelBody(rx))
                }
            }),
        )
        .layer(XRayLayer::new(daemon.recorder.clone()))
}

async fn get_body(client: &mut XRayClient<HyperClient>, uri: String) -> (StatusCode, String) {
    let req = Request::get(uri).body(Empty::<Bytes>::new()).unwrap();
    let res = client.ready().await.unwrap().call(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_through_a_hyper_client_join_the_server_trace() {
    let server_side = Daemon::new("backend");
    let client_side = Daemon::new("unused");
    let last_chunk = Arc::new(Mutex::new(0.0));
    let addr = serve(app(&server_side, Arc::clone(&last_chunk))).await;
    let mut client = XRayClientLayer::new().layer_on(hyper_client());

    let segment = client_side.recorder.segment("frontend").begin();
    let (hello, missing, slow) = async {
        let hello = get_body(&mut client, format!("http://{addr}/hello?token=secret")).await;
        let missing = get_body(&mut client, format!("http://{addr}/missing")).await;
        let slow = get_body(&mut client, format!("http://{addr}/slow")).await;
        (hello, missing, slow)
    }
    .in_context(segment.context())
    .await;
    segment.end();
    assert_eq!(hello, (StatusCode::OK, "hello".to_owned()));
    assert_eq!(missing.0, StatusCode::NOT_FOUND);
    assert_eq!(slow.1, "chunk 0\nchunk 1\nchunk 2\n");

    let client_doc = client_side.document().await;
    let calls = client_doc["subsegments"].as_array().unwrap();
    assert_eq!(calls.len(), 3);
    let servers = server_side.documents(3).await;
    for (call, (path, status)) in
        calls
            .iter()
            .zip([("/hello", 200), ("/missing", 404), ("/slow", 200)])
    {
        assert_eq!(call["name"], "127.0.0.1");
        assert_eq!(call["namespace"], "remote");
        let request = &call["http"]["request"];
        assert_eq!(request["method"], "GET");
        // No query: it may hold secrets.
        assert_eq!(request["url"], format!("http://{addr}{path}"));
        assert_eq!(request["traced"], true);
        assert_eq!(call["http"]["response"]["status"], status);
        assert_eq!(call.get("error").is_some(), status == 404, "{call}");
        assert!(call.get("annotations").is_none(), "no gRPC status: {call}");
        // The server's segment of this call has the subsegment as its parent.
        let server_doc = servers
            .iter()
            .find(|s| s["parent_id"] == call["id"])
            .unwrap_or_else(|| panic!("no server segment under {call}"));
        assert_eq!(server_doc["trace_id"], client_doc["trace_id"]);
        assert_eq!(server_doc["http"]["response"]["status"], status);
    }
    assert_eq!(calls[0]["http"]["response"]["content_length"], 5);
    // The streamed call ends with its body, not with its headers.
    let slow_end = calls[2]["end_time"].as_f64().unwrap();
    let last = *last_chunk.lock().unwrap();
    assert!(
        slow_end >= last,
        "ended at {slow_end}, last chunk at {last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_header_sent_and_a_callers_own_header() {
    let server_side = Daemon::new("backend");
    let client_side = Daemon::new("unused");
    let addr = serve(app(&server_side, Arc::default())).await;
    let own = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let segment = client_side.recorder.segment("frontend").begin();
    let sent = async {
        let mut keep = XRayClientLayer::new().layer_on(hyper_client());
        let mut overwrite = XRayClientLayer::new()
            .existing_header(ExistingHeader::Overwrite)
            .layer_on(hyper_client());
        let mut sent = Vec::new();
        for client in [&mut keep, &mut overwrite] {
            let req = Request::get(format!("http://{addr}/header"))
                .header("x-amzn-trace-id", own)
                .body(Empty::<Bytes>::new())
                .unwrap();
            let res = client.ready().await.unwrap().call(req).await.unwrap();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            sent.push(String::from_utf8(body.to_vec()).unwrap());
        }
        // A context in the request's extensions wins over the current one.
        let other = client_side.recorder.segment("other").begin();
        let mut req = Request::get(format!("http://{addr}/header"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        req.extensions_mut().insert::<Context>(other.context());
        let res = keep.ready().await.unwrap().call(req).await.unwrap();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        sent.push(String::from_utf8(body.to_vec()).unwrap());
        other.end();
        sent
    }
    .in_context(segment.context())
    .await;
    segment.end();
    let docs = client_side.documents(2).await;
    let frontend = docs.iter().find(|d| d["name"] == "frontend").unwrap();
    let other = docs.iter().find(|d| d["name"] == "other").unwrap();
    let calls = frontend["subsegments"].as_array().unwrap();
    // Kept: the call is recorded, but not marked traced (its header names another parent).
    assert_eq!(sent[0], own);
    assert!(calls[0]["http"]["request"].get("traced").is_none());
    // Overwritten: this call's own header.
    assert_eq!(
        sent[1],
        format!(
            "Root={};Parent={};Sampled=1",
            frontend["trace_id"].as_str().unwrap(),
            calls[1]["id"].as_str().unwrap()
        )
    );
    assert_eq!(calls[1]["http"]["request"]["traced"], true);
    let under_other = &other["subsegments"][0];
    assert_eq!(
        sent[2],
        format!(
            "Root={};Parent={};Sampled=1",
            other["trace_id"].as_str().unwrap(),
            under_other["id"].as_str().unwrap()
        )
    );
    server_side.documents(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_context_the_request_goes_out_untouched_or_is_refused() {
    let server_side = Daemon::new("backend");
    let client_side = Daemon::new("unused");
    let addr = serve(app(&server_side, Arc::default())).await;
    let mut ignoring = XRayClientLayer::new()
        .context_missing(ContextMissing::IgnoreError)
        .layer_on(hyper_client());
    let (status, header) = get_body(&mut ignoring, format!("http://{addr}/header")).await;
    assert_eq!((status, header.as_str()), (StatusCode::OK, ""));
    let server_doc = server_side.document().await;
    assert!(server_doc.get("parent_id").is_none());

    let mut strict = XRayClientLayer::new()
        .context_missing(ContextMissing::RuntimeError)
        .layer_on(hyper_client());
    let req = Request::get(format!("http://{addr}/hello"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let err = strict.ready().await.unwrap().call(req).await.unwrap_err();
    assert!(
        err.downcast_ref::<xray_sdk::ContextMissingError>()
            .is_some(),
        "{err}"
    );
    server_side.assert_nothing_sent().await;
    client_side.assert_nothing_sent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_a_fault_with_the_error_as_cause() {
    let client_side = Daemon::new("unused");
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mut client = XRayClientLayer::new().layer_on(hyper_client());
    let segment = client_side.recorder.segment("frontend").begin();
    let req = Request::get(format!("http://{addr}/x"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let err = async { client.ready().await.unwrap().call(req).await }
        .in_context(segment.context())
        .await
        .unwrap_err();
    segment.end();
    let call = client_side.document().await["subsegments"][0].clone();
    assert_eq!(call["fault"], true);
    assert!(call["http"].get("response").is_none());
    let exceptions = call["cause"]["exceptions"].as_array().unwrap();
    assert_eq!(exceptions[0]["message"], err.to_string());
    assert!(exceptions.len() >= 2, "the error's sources too: {call}");
}

/// `layer.layer(service)` without naming the `Layer` trait at each call site.
trait LayerOn {
    fn layer_on<S>(self, inner: S) -> XRayClient<S>;
}

impl LayerOn for XRayClientLayer {
    fn layer_on<S>(self, inner: S) -> XRayClient<S> {
        tower::Layer::layer(&self, inner)
    }
}
