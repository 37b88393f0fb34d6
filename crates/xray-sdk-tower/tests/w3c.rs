//! W3C Trace Context through the layers, over real HTTP on 127.0.0.1: a caller sends
//! `traceparent` (and `X-Amzn-Trace-Id`, or not) to a service traced with `XRayLayer`, whose
//! handler calls an untraced service through `XRayClientLayer`; that service answers with the
//! trace headers it received. The traced service's documents are captured on a real UDP
//! socket. gRPC the same way, with tonic on both sides.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;
#[path = "../examples/grpc/demo.rs"]
mod demo;
#[path = "../examples/grpc/echo.rs"]
#[allow(unreachable_pub, missing_docs, clippy::all)]
mod echo;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use common::{Daemon, serve};
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tower::{Service, ServiceBuilder, ServiceExt};
use xray_sdk::Recorder;
use xray_sdk::context::FutureExt;
use xray_sdk::testing::UdpCapture;
use xray_sdk_tower::{XRayClient, XRayClientLayer, XRayLayer};

/// A W3C trace ID with no time in it (as OpenTelemetry makes them), and its X-Ray form.
const W3C_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const XRAY_TRACE: &str = "1-4bf92f35-77b34da6a3ce929d0e0e4736";
const W3C_PARENT: &str = "00f067aa0ba902b7";
const TRACESTATE: &str = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";

type HyperClient = XRayClient<Client<HttpConnector, Empty<Bytes>>>;

/// A capture socket and a recorder that samples everything it decides itself, with W3C
/// propagation on or off.
fn daemon(service: &'static str, traceparent: bool) -> Daemon {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture
        .recorder_builder(service)
        .propagate_traceparent(traceparent)
        .build()
        .unwrap();
    Daemon {
        capture: Arc::new(capture),
        recorder,
    }
}

fn trace_headers(headers: &HeaderMap) -> Value {
    let get = |name: &str| {
        let all: Vec<&str> = headers
            .get_all(name)
            .into_iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        if all.is_empty() {
            Value::Null
        } else {
            json!(all.join(","))
        }
    };
    json!({
        "x-amzn-trace-id": get("x-amzn-trace-id"),
        "traceparent": get("traceparent"),
        "tracestate": get("tracestate"),
    })
}

/// An untraced service that answers with the trace headers it received, as JSON.
async fn echo_service() -> SocketAddr {
    let app = Router::new().route(
        "/echo",
        get(|headers: HeaderMap| async move { trace_headers(&headers).to_string() }),
    );
    serve(app).await
}

/// The traced service: `/call` calls the echo service through the client layer and answers
/// with what it saw.
async fn traced_service(recorder: &Recorder, echo: SocketAddr) -> SocketAddr {
    let client: HyperClient = ServiceBuilder::new()
        .layer(XRayClientLayer::new())
        .service(Client::builder(TokioExecutor::new()).build_http());
    let app = Router::new()
        .route(
            "/call",
            get(move || {
                let mut client = client.clone();
                async move {
                    let req = Request::get(format!("http://{echo}/echo"))
                        .body(Empty::<Bytes>::new())
                        .unwrap();
                    let res = client.ready().await.unwrap().call(req).await.unwrap();
                    let body = res.into_body().collect().await.unwrap().to_bytes();
                    String::from_utf8(body.to_vec()).unwrap()
                }
            }),
        )
        .layer(XRayLayer::new(recorder.clone()));
    serve(app).await
}

struct Answer {
    /// The response's `X-Amzn-Trace-Id`.
    response_header: Option<String>,
    /// The trace headers the downstream call carried.
    downstream: Value,
}

async fn call(addr: SocketAddr, headers: &[(&str, &str)]) -> Answer {
    let mut req = common::client().get(format!("http://{addr}/call"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = req.send().await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let response_header = res
        .headers()
        .get("x-amzn-trace-id")
        .map(|v| v.to_str().unwrap().to_owned());
    assert!(res.headers().get("traceparent").is_none());
    let downstream = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    Answer {
        response_header,
        downstream,
    }
}

/// The downstream call's subsegment in the traced service's document.
fn call_subsegment(doc: &Value) -> &Value {
    let subs = doc["subsegments"].as_array().unwrap();
    assert_eq!(subs.len(), 1, "{doc}");
    &subs[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_only_traceparent_continues_its_trace() {
    let daemon = daemon("front", true);
    let echo = echo_service().await;
    let front = traced_service(&daemon.recorder, echo).await;
    let answer = call(
        front,
        &[
            ("traceparent", &format!("00-{W3C_TRACE}-{W3C_PARENT}-01")),
            ("tracestate", "rojo=00f067aa0ba902b7"),
            ("tracestate", "congo=t61rcWkgMzE"),
        ],
    )
    .await;
    let doc = daemon.document().await;
    assert_eq!(doc["trace_id"], XRAY_TRACE);
    assert_eq!(doc["parent_id"], W3C_PARENT);
    let sub = call_subsegment(&doc);
    let sub_id = sub["id"].as_str().unwrap();
    assert_eq!(sub["http"]["request"]["url"], format!("http://{echo}/echo"));
    // Downstream: both headers, the same trace, this call as the parent, sampled, and the
    // tracestate as it came (its two lines as one list).
    assert_eq!(
        answer.downstream,
        json!({
            "x-amzn-trace-id": format!("Root={XRAY_TRACE};Parent={sub_id};Sampled=1"),
            "traceparent": format!("00-{W3C_TRACE}-{sub_id}-01"),
            "tracestate": TRACESTATE,
        })
    );
    // The response keeps its X-Ray header.
    assert_eq!(
        answer.response_header.as_deref(),
        Some(format!("Root={XRAY_TRACE}").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsampled_traceparent_is_respected_and_passed_on() {
    // The recorder samples everything it decides: only the flag stops it.
    let daemon = daemon("front", true);
    let echo = echo_service().await;
    let front = traced_service(&daemon.recorder, echo).await;
    let answer = call(
        front,
        &[("traceparent", &format!("00-{W3C_TRACE}-{W3C_PARENT}-00"))],
    )
    .await;
    daemon.assert_nothing_sent().await;
    let xray = answer.downstream["x-amzn-trace-id"].as_str().unwrap();
    assert!(
        xray.starts_with(&format!("Root={XRAY_TRACE};Parent=")) && xray.ends_with(";Sampled=0"),
        "{xray}"
    );
    let tp = answer.downstream["traceparent"].as_str().unwrap();
    assert!(
        tp.starts_with(&format!("00-{W3C_TRACE}-")) && tp.ends_with("-00"),
        "{tp}"
    );
    assert_eq!(answer.downstream["tracestate"], Value::Null);
    // The random-trace-id flag that came in goes on, with the decision.
    let answer = call(
        front,
        &[("traceparent", &format!("00-{W3C_TRACE}-{W3C_PARENT}-02"))],
    )
    .await;
    assert!(
        answer.downstream["traceparent"]
            .as_str()
            .unwrap()
            .ends_with("-02")
    );
    daemon.assert_nothing_sent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_xray_header_wins_over_traceparent() {
    let daemon = daemon("front", true);
    let echo = echo_service().await;
    let front = traced_service(&daemon.recorder, echo).await;
    let xray_root = "1-5759e988-bd862e3fe1be46a994272793";
    let xray_parent = "53995c3f42cd8ad8";
    // Another trace in traceparent (unsampled, even): ignored, and so is its tracestate.
    let answer = call(
        front,
        &[
            (
                "x-amzn-trace-id",
                &format!("Root={xray_root};Parent={xray_parent};Sampled=1"),
            ),
            ("traceparent", &format!("00-{W3C_TRACE}-{W3C_PARENT}-00")),
            ("tracestate", TRACESTATE),
        ],
    )
    .await;
    let doc = daemon.document().await;
    assert_eq!(doc["trace_id"], xray_root);
    assert_eq!(doc["parent_id"], xray_parent);
    let sub_id = call_subsegment(&doc)["id"].as_str().unwrap().to_owned();
    assert_eq!(
        answer.downstream,
        json!({
            "x-amzn-trace-id": format!("Root={xray_root};Parent={sub_id};Sampled=1"),
            "traceparent": format!("00-5759e988bd862e3fe1be46a994272793-{sub_id}-01"),
            "tracestate": null,
        })
    );
    // The same trace in both (a caller that sends both): the tracestate goes on.
    let answer = call(
        front,
        &[
            (
                "x-amzn-trace-id",
                &format!("Root={XRAY_TRACE};Parent={W3C_PARENT};Sampled=1"),
            ),
            ("traceparent", &format!("00-{W3C_TRACE}-{W3C_PARENT}-01")),
            ("tracestate", TRACESTATE),
        ],
    )
    .await;
    let doc = daemon.document().await;
    assert_eq!(doc["trace_id"], XRAY_TRACE);
    assert_eq!(answer.downstream["tracestate"], TRACESTATE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_traceparent_values_start_a_new_trace() {
    let daemon = daemon("front", true);
    let echo = echo_service().await;
    let front = traced_service(&daemon.recorder, echo).await;
    let malformed = [
        format!("ff-{W3C_TRACE}-{W3C_PARENT}-01"),
        format!("00-00000000000000000000000000000000-{W3C_PARENT}-01"),
        format!("00-{W3C_TRACE}-0000000000000000-01"),
        format!("00-{W3C_TRACE}-{W3C_PARENT}-1"),
        format!("00-{W3C_TRACE}-{W3C_PARENT}-01-extra"),
        format!("00-{}-{W3C_PARENT}-01", W3C_TRACE.to_uppercase()),
        format!("00-{}-{W3C_PARENT}-01", &W3C_TRACE[1..]),
        format!("01-{W3C_TRACE}-{W3C_PARENT}-01x"),
        "garbage".to_owned(),
    ];
    for value in &malformed {
        let answer = call(
            front,
            &[("traceparent", value.as_str()), ("tracestate", TRACESTATE)],
        )
        .await;
        let doc = daemon.document().await;
        let trace = doc["trace_id"].as_str().unwrap();
        assert_ne!(trace, XRAY_TRACE, "{value}");
        assert!(doc.get("parent_id").is_none(), "{value}: {doc}");
        // A new trace of this service's own, its tracestate not taken.
        let sub_id = call_subsegment(&doc)["id"].as_str().unwrap().to_owned();
        let w3c_trace = trace.replace('-', "")[1..].to_owned();
        assert_eq!(
            answer.downstream,
            json!({
                "x-amzn-trace-id": format!("Root={trace};Parent={sub_id};Sampled=1"),
                "traceparent": format!("00-{w3c_trace}-{sub_id}-01"),
                "tracestate": null,
            }),
            "{value}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_calls_carry_traceparent_only_when_the_setting_is_on() {
    let daemon = daemon("front", false);
    let echo = echo_service().await;
    let front = traced_service(&daemon.recorder, echo).await;
    // Incoming W3C headers are read all the same; nothing W3C goes out.
    let answer = call(
        front,
        &[
            ("traceparent", &format!("00-{W3C_TRACE}-{W3C_PARENT}-01")),
            ("tracestate", TRACESTATE),
        ],
    )
    .await;
    let doc = daemon.document().await;
    assert_eq!(doc["trace_id"], XRAY_TRACE);
    let sub_id = call_subsegment(&doc)["id"].as_str().unwrap().to_owned();
    assert_eq!(
        answer.downstream,
        json!({
            "x-amzn-trace-id": format!("Root={XRAY_TRACE};Parent={sub_id};Sampled=1"),
            "traceparent": null,
            "tracestate": null,
        })
    );
}

/// gRPC: a tonic client without the X-Ray layer sends only `traceparent` (as an
/// OpenTelemetry-instrumented client does); the traced server continues that trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_call_with_only_traceparent_continues_its_trace() {
    let daemon = daemon("unused", true);
    let server = demo::serve(daemon.recorder.clone(), "echo", demo::CatchPanic::Inside)
        .await
        .unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = echo::echo_client::EchoClient::new(channel);
    for (flags, sampled) in [("01", true), ("00", false)] {
        let mut request = tonic::Request::new(echo::EchoRequest {
            message: "hi".to_owned(),
            ..Default::default()
        });
        let value = format!("00-{W3C_TRACE}-{W3C_PARENT}-{flags}");
        request
            .metadata_mut()
            .insert("traceparent", value.parse().unwrap());
        let reply = client.unary(request).await.unwrap();
        assert_eq!(reply.into_inner().message, "hi");
        if sampled {
            let doc = daemon.document().await;
            assert_eq!(doc["name"], "echo");
            assert_eq!(doc["trace_id"], XRAY_TRACE);
            assert_eq!(doc["parent_id"], W3C_PARENT);
            assert_eq!(doc["annotations"]["grpc_status"], 0);
        } else {
            daemon.assert_nothing_sent().await;
        }
    }
    server.stop().await;
}

/// gRPC: the client layer on a tonic channel sends `traceparent` and the kept `tracestate`
/// with the X-Ray header when the setting is on, and neither when it is off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_carry_traceparent_when_the_setting_is_on() {
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let record = {
        let seen = Arc::clone(&seen);
        tower::util::MapRequestLayer::new(move |req: http::Request<tonic::body::Body>| {
            seen.lock().unwrap().push(trace_headers(req.headers()));
            req
        })
    };
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(record)
            .add_service(echo::echo_server::EchoServer::new(demo::EchoService))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    for on in [true, false] {
        let daemon = daemon("caller", on);
        let mut client = demo::client(addr).await.unwrap();
        let incoming = xray_sdk::header::incoming_trace(
            None,
            Some(format!("00-{W3C_TRACE}-{W3C_PARENT}-01").as_bytes()),
            || [TRACESTATE.as_bytes()],
        )
        .unwrap();
        let segment = daemon.recorder.segment("caller").header(&incoming).begin();
        let request = echo::EchoRequest {
            message: "hi".to_owned(),
            ..Default::default()
        };
        client
            .unary(request)
            .in_context(segment.context())
            .await
            .unwrap();
        segment.end();
        let doc = daemon.document().await;
        let sub_id = call_subsegment(&doc)["id"].as_str().unwrap().to_owned();
        let got = seen.lock().unwrap().pop().unwrap();
        assert_eq!(
            got["x-amzn-trace-id"],
            format!("Root={XRAY_TRACE};Parent={sub_id};Sampled=1")
        );
        if on {
            assert_eq!(got["traceparent"], format!("00-{W3C_TRACE}-{sub_id}-01"));
            assert_eq!(got["tracestate"], TRACESTATE);
        } else {
            assert_eq!(got["traceparent"], Value::Null);
            assert_eq!(got["tracestate"], Value::Null);
        }
    }
    server.abort();
}
