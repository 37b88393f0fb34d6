//! W3C Trace Context on outgoing calls: a segment continued from an incoming `traceparent`
//! calls, over real HTTP, an untraced service that answers with the trace headers it
//! received; the documents are captured on a real UDP socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use serde_json::{Value, json};
use xray_sdk::context::FutureExt;
use xray_sdk::header::incoming_trace;
use xray_sdk::testing::UdpCapture;
use xray_sdk::{Recorder, TraceHeader};
use xray_sdk_reqwest::{ExistingHeader, XRayMiddleware};

const W3C_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const XRAY_TRACE: &str = "1-4bf92f35-77b34da6a3ce929d0e0e4736";
const W3C_PARENT: &str = "00f067aa0ba902b7";
const TRACESTATE: &str = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";

fn header(headers: &HeaderMap, name: &str) -> Value {
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
}

/// An untraced service answering with the trace headers it received.
async fn echo_service() -> SocketAddr {
    let app = Router::new().route(
        "/",
        get(|h: HeaderMap| async move {
            json!({
                "x-amzn-trace-id": header(&h, "x-amzn-trace-id"),
                "traceparent": header(&h, "traceparent"),
                "tracestate": header(&h, "tracestate"),
            })
            .to_string()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.ok();
    });
    addr
}

fn recorder(capture: &UdpCapture, traceparent: bool) -> Recorder {
    capture
        .recorder_builder("service-a")
        .propagate_traceparent(traceparent)
        .build()
        .unwrap()
}

/// The trace of an incoming request that carried only `traceparent` (and `tracestate`).
fn incoming(flags: &str) -> TraceHeader {
    let tp = format!("00-{W3C_TRACE}-{W3C_PARENT}-{flags}");
    incoming_trace(None, Some(tp.as_bytes()), || [TRACESTATE.as_bytes()]).unwrap()
}

/// Calls the echo service from a segment of `incoming`, with `hand_set` headers on the
/// request; returns what the service received and the call's subsegment ID (sampled only).
async fn call(
    recorder: &Recorder,
    capture: &UdpCapture,
    middleware: XRayMiddleware,
    incoming: &TraceHeader,
    hand_set: &[(&str, &str)],
) -> (Value, Option<String>) {
    let echo = echo_service().await;
    let client = reqwest_middleware::ClientBuilder::new(
        reqwest::Client::builder().no_proxy().build().unwrap(),
    )
    .with_arc(Arc::new(middleware))
    .build();
    let segment = recorder.segment("service-a").header(incoming).begin();
    let sampled = segment.is_sampled();
    let mut req = client.get(format!("http://{echo}/"));
    for (name, value) in hand_set {
        req = req.header(*name, *value);
    }
    let body = req
        .send()
        .in_context(segment.context())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    segment.end();
    let seen: Value = serde_json::from_str(&body).unwrap();
    let sub_id = if sampled {
        recorder.flush(Duration::from_secs(5)).unwrap();
        let docs = capture.documents(1, Duration::from_secs(5));
        assert_eq!(docs[0]["trace_id"], XRAY_TRACE);
        assert_eq!(docs[0]["parent_id"], W3C_PARENT);
        let sub = &docs[0]["subsegments"][0];
        assert_eq!(sub["namespace"], "remote");
        Some(sub["id"].as_str().unwrap().to_owned())
    } else {
        None
    };
    (seen, sub_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_and_tracestate_go_out_when_the_setting_is_on() {
    let capture = UdpCapture::start().unwrap();
    let recorder = recorder(&capture, true);
    let (seen, sub) = call(
        &recorder,
        &capture,
        XRayMiddleware::new(),
        &incoming("01"),
        &[],
    )
    .await;
    let sub = sub.unwrap();
    assert_eq!(
        seen,
        json!({
            "x-amzn-trace-id": format!("Root={XRAY_TRACE};Parent={sub};Sampled=1"),
            "traceparent": format!("00-{W3C_TRACE}-{sub}-01"),
            "tracestate": TRACESTATE,
        })
    );
    // Unsampled: the decision goes on in both headers, nothing is recorded.
    let (seen, sub) = call(
        &recorder,
        &capture,
        XRayMiddleware::new(),
        &incoming("00"),
        &[],
    )
    .await;
    assert_eq!(sub, None);
    let tp = seen["traceparent"].as_str().unwrap();
    assert!(
        tp.starts_with(&format!("00-{W3C_TRACE}-")) && tp.ends_with("-00"),
        "{tp}"
    );
    let xray = seen["x-amzn-trace-id"].as_str().unwrap();
    assert!(xray.ends_with(";Sampled=0"), "{xray}");
    // The same parent in both.
    assert!(
        xray.contains(&format!("Parent={}", &tp[36..52])),
        "{xray} {tp}"
    );
    assert_eq!(seen["tracestate"], TRACESTATE);
    recorder.flush(Duration::from_secs(5)).unwrap();
    assert!(capture.drain(Duration::from_millis(200)).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_w3c_goes_out_when_the_setting_is_off() {
    let capture = UdpCapture::start().unwrap();
    let recorder = recorder(&capture, false);
    let (seen, sub) = call(
        &recorder,
        &capture,
        XRayMiddleware::new(),
        &incoming("01"),
        &[],
    )
    .await;
    let sub = sub.unwrap();
    assert_eq!(
        seen,
        json!({
            "x-amzn-trace-id": format!("Root={XRAY_TRACE};Parent={sub};Sampled=1"),
            "traceparent": null,
            "tracestate": null,
        })
    );
    // A hand-set traceparent is none of the middleware's business then: it goes as it is,
    // and the X-Ray header is added as before.
    let hand = format!("00-{W3C_TRACE}-1111111111111111-01");
    let (seen, sub) = call(
        &recorder,
        &capture,
        XRayMiddleware::new(),
        &incoming("01"),
        &[("traceparent", &hand), ("tracestate", "mine=1")],
    )
    .await;
    let sub = sub.unwrap();
    assert_eq!(
        seen,
        json!({
            "x-amzn-trace-id": format!("Root={XRAY_TRACE};Parent={sub};Sampled=1"),
            "traceparent": hand,
            "tracestate": "mine=1",
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_set_traceparent_is_kept_or_overwritten_with_the_x_ray_header() {
    let capture = UdpCapture::start().unwrap();
    let recorder = recorder(&capture, true);
    let hand = format!("00-{W3C_TRACE}-1111111111111111-01");
    let hand_set = [("traceparent", hand.as_str()), ("tracestate", "mine=1")];
    // Keep (the default): the caller chose the trace; none of the call's headers goes.
    let (seen, sub) = call(
        &recorder,
        &capture,
        XRayMiddleware::new(),
        &incoming("01"),
        &hand_set,
    )
    .await;
    assert!(sub.is_some());
    assert_eq!(
        seen,
        json!({ "x-amzn-trace-id": null, "traceparent": hand, "tracestate": "mine=1" })
    );
    // Overwrite: all of the call's, the caller's tracestate replaced by the trace's.
    let (seen, sub) = call(
        &recorder,
        &capture,
        XRayMiddleware::new().existing_header(ExistingHeader::Overwrite),
        &incoming("01"),
        &hand_set,
    )
    .await;
    let sub = sub.unwrap();
    assert_eq!(
        seen,
        json!({
            "x-amzn-trace-id": format!("Root={XRAY_TRACE};Parent={sub};Sampled=1"),
            "traceparent": format!("00-{W3C_TRACE}-{sub}-01"),
            "tracestate": TRACESTATE,
        })
    );
    // ...or removed, when the trace carries none.
    let plain = TraceHeader::parse(&format!("Root={XRAY_TRACE};Parent={W3C_PARENT};Sampled=1"));
    let (seen, sub) = call(
        &recorder,
        &capture,
        XRayMiddleware::new().existing_header(ExistingHeader::Overwrite),
        &plain,
        &hand_set,
    )
    .await;
    let sub = sub.unwrap();
    assert_eq!(seen["traceparent"], format!("00-{W3C_TRACE}-{sub}-01"));
    assert_eq!(seen["tracestate"], Value::Null);
}
