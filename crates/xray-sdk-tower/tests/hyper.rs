//! The layer around a plain tower service served by hyper 1 through `TowerToHyperService`.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use common::{Daemon, PARENT, ROOT, client};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tower::ServiceBuilder;
use xray_sdk::Context;
use xray_sdk_tower::XRayLayer;

async fn handler(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let from_extension = req.extensions().get::<Context>().map(Context::id);
    let current = Context::current().map(|c| c.id());
    let same = from_extension.is_some() && from_extension == current;
    Ok(Response::builder()
        .status(if same { 201 } else { 500 })
        .body(Full::new(Bytes::from_static(b"created")))
        .unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_hyper_service_with_peer_address_extension() {
    let daemon = Daemon::new("hyper-svc");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let recorder = daemon.recorder.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                return;
            };
            let service = ServiceBuilder::new()
                .map_request(move |mut req: Request<Incoming>| {
                    req.extensions_mut().insert::<SocketAddr>(peer);
                    req
                })
                .layer(XRayLayer::new(recorder.clone()))
                .service_fn(handler);
            tokio::spawn(async move {
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                    .await
                    .ok();
            });
        }
    });

    let res = client()
        .post(format!("http://{addr}/orders?id=7"))
        .header(
            "x-amzn-trace-id",
            format!("Root={ROOT};Parent={PARENT};Sampled=1"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["x-amzn-trace-id"], format!("Root={ROOT}"));
    assert_eq!(res.text().await.unwrap(), "created");
    let doc = daemon.document().await;
    assert_eq!(doc["name"], "hyper-svc");
    assert_eq!(doc["trace_id"], ROOT);
    assert_eq!(doc["parent_id"], PARENT);
    let request = &doc["http"]["request"];
    assert_eq!(request["method"], "POST");
    assert_eq!(request["url"], format!("http://{addr}/orders"));
    assert_eq!(request["client_ip"], "127.0.0.1");
    assert_eq!(doc["http"]["response"]["status"], 201);
    assert_eq!(doc["http"]["response"]["content_length"], 7);
}

/// A service whose `call` itself panics (before any future exists).
#[derive(Clone)]
struct PanicsInCall;

impl tower::Service<Request<Incoming>> for PanicsInCall {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        if req.uri().path() == "/panic" {
            panic!("panicked in call");
        }
        std::future::ready(Ok(Response::new(Full::new(Bytes::from_static(b"ok")))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_call_is_answered_500_with_its_cause() {
    let daemon = Daemon::new("hyper-svc");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let recorder = daemon.recorder.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = XRayLayer::new(recorder.clone());
            let service = tower::Layer::layer(&service, PanicsInCall);
            tokio::spawn(async move {
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                    .await
                    .ok();
            });
        }
    });
    let http = client();
    let res = http
        .get(format!("http://{addr}/panic"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    let header = res.headers()["x-amzn-trace-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let doc = daemon.document().await;
    assert_eq!(
        header,
        format!("Root={}", doc["trace_id"].as_str().unwrap())
    );
    assert_eq!(doc["http"]["response"]["status"], 500);
    assert_eq!(doc["fault"], true);
    let exception = &doc["cause"]["exceptions"][0];
    assert_eq!(exception["message"], "panicked in call");
    assert!(
        exception["stack"][0]["path"]
            .as_str()
            .unwrap()
            .ends_with("tests/hyper.rs")
    );
    // The connection goes on serving.
    let res = http.get(format!("http://{addr}/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(daemon.document().await.get("fault").is_none());
}
