//! End-to-end tests: real axum services on 127.0.0.1, real HTTP through reqwest, documents
//! captured on a real UDP socket.

#![allow(clippy::unwrap_used)]

mod helpers;
mod retry;
mod w3c;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use xray_sdk::context::FutureExt;
use xray_sdk::testing::UdpCapture;
use xray_sdk::{ContextMissing, TraceHeader};
use xray_sdk_reqwest::{DisableXRay, ExistingHeader, XRayMiddleware};

use helpers::*;

type Flat = Vec<(String, Option<String>, Value)>;

/// A's segment and the one remote subsegment under it.
fn a_and_call(flat: &Flat) -> (Value, Value) {
    let a = named(flat, "service-a");
    assert_eq!(a.len(), 1, "{flat:#?}");
    let a = a[0].2.clone();
    let subs = a["subsegments"].as_array().cloned().unwrap_or_default();
    assert_eq!(subs.len(), 1, "{a:#}");
    (a, subs[0].clone())
}

fn messages(sub: &Value) -> String {
    sub["cause"]["exceptions"]
        .as_array()
        .map(|ex| {
            ex.iter()
                .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .unwrap_or_default()
}

fn xray() -> Vec<Arc<dyn reqwest_middleware::Middleware>> {
    vec![Arc::new(XRayMiddleware::new())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_call_joins_one_trace_across_two_services() {
    let capture = UdpCapture::start().unwrap();
    let b = service_b(Some(capture.recorder("service-b"))).await;
    let a = service_a(
        capture.recorder("service-a"),
        client(xray()),
        b.url(""),
        None,
    )
    .await;

    let out = ask_a(a, "echo", &sampled_header(ROOT), &[]).await;
    assert_eq!(out["status"], 200, "{out}");

    let flat = collect(&capture, |f| {
        !named(f, "service-a").is_empty() && !named(f, "service-b").is_empty()
    });
    let (a_seg, call) = a_and_call(&flat);
    let b_seg = named(&flat, "service-b")[0].2.clone();

    // One trace: A continues the caller's, B continues A's, and B's parent is A's subsegment.
    assert_eq!(a_seg["trace_id"], ROOT);
    assert_eq!(a_seg["parent_id"], CALLER_PARENT);
    assert_eq!(b_seg["trace_id"], ROOT);
    assert_eq!(b_seg["parent_id"], call["id"]);

    // The header B received: Root, Parent = the subsegment, Sampled=1, the Lineage carried.
    let received = TraceHeader::parse(out["body"].as_str().unwrap());
    assert_eq!(received.root().unwrap().to_string(), ROOT);
    assert_eq!(
        Some(received.parent().unwrap().to_string().as_str()),
        call["id"].as_str()
    );
    assert_eq!(received.sampled(), xray_sdk::SamplingFlag::Sampled);
    assert_eq!(received.extra(), Some(LINEAGE));

    // The subsegment.
    assert_eq!(call["name"], "127.0.0.1");
    assert_eq!(call["namespace"], "remote");
    let req = &call["http"]["request"];
    assert_eq!(req["method"], "GET");
    assert_eq!(req["url"], format!("http://{}/echo", b.addr));
    assert_eq!(req["traced"], true, "B answered with a trace header");
    let res = &call["http"]["response"];
    assert_eq!(res["status"], 200);
    assert_eq!(res["content_length"], out["body"].as_str().unwrap().len());
    for flag in ["error", "fault", "throttle"] {
        assert_ne!(call[flag], true, "{flag} in {call:#}");
    }
    assert!(call["cause"].is_null());
    assert!(call["end_time"].as_f64().unwrap() >= call["start_time"].as_f64().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsampled_call_sends_sampled_0_with_the_real_root() {
    let capture = UdpCapture::start().unwrap();
    let b = service_b(Some(capture.recorder("service-b"))).await;
    let a = service_a(
        capture.recorder("service-a"),
        client(xray()),
        b.url(""),
        None,
    )
    .await;

    let incoming = format!("Root={ROOT};Parent={CALLER_PARENT};Sampled=0;{LINEAGE}");
    let out = ask_a(a, "echo", &incoming, &[]).await;
    assert_eq!(out["status"], 200, "{out}");

    let received = out["body"].as_str().unwrap();
    let parsed = TraceHeader::parse(received);
    assert_eq!(parsed.root().unwrap().to_string(), ROOT, "{received}");
    assert_eq!(parsed.sampled(), xray_sdk::SamplingFlag::NotSampled);
    assert_eq!(parsed.extra(), Some(LINEAGE));
    let parent = parsed.parent().expect("a Parent is sent").to_string();
    assert_ne!(parent, CALLER_PARENT, "Parent is the call's own ID");
    assert_eq!(
        received,
        format!("Root={ROOT};Parent={parent};Sampled=0;{LINEAGE}")
    );
    // Neither service records anything.
    assert!(capture.drain(Duration::from_millis(300)).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_codes_set_error_throttle_and_fault() {
    let capture = UdpCapture::start().unwrap();
    let b = service_b(Some(capture.recorder("service-b"))).await;
    let a = service_a(
        capture.recorder("service-a"),
        client(xray()),
        b.url(""),
        None,
    )
    .await;

    // (status, error, throttle, fault)
    let cases = [
        (404, true, false, false),
        (429, true, true, false),
        (500, false, false, true),
        (503, false, false, true),
        (204, false, false, false),
    ];
    for (status, error, throttle, fault) in cases {
        let root = fresh_root();
        let out = ask_a(a, &format!("status/{status}"), &sampled_header(&root), &[]).await;
        assert_eq!(
            out["status"], status,
            "the caller gets the response as it was"
        );
        let flat = collect(&capture, |f| {
            !named(f, "service-a").is_empty() && !named(f, "service-b").is_empty()
        });
        let (a_seg, call) = a_and_call(&flat);
        assert_eq!(a_seg["trace_id"], root.as_str());
        assert_eq!(call["http"]["response"]["status"], status);
        assert_eq!(call["error"] == true, error, "{status}: {call:#}");
        assert_eq!(call["throttle"] == true, throttle, "{status}: {call:#}");
        assert_eq!(call["fault"] == true, fault, "{status}: {call:#}");
        // A answered 200 itself, so A's segment carries no flag.
        assert_ne!(a_seg["fault"], true);
        assert_ne!(a_seg["error"], true);
        // B's segment of this trace, for the parent link.
        let b_seg = &named(&flat, "service-b")[0].2;
        assert_eq!(b_seg["parent_id"], call["id"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_a_fault_with_a_cause() {
    let capture = UdpCapture::start().unwrap();
    let port = closed_port();
    let a = service_a(
        capture.recorder("service-a"),
        client(xray()),
        format!("http://127.0.0.1:{port}"),
        None,
    )
    .await;

    let out = ask_a(a, "anything", &sampled_header(ROOT), &[]).await;
    // The caller gets reqwest's own error.
    assert_eq!(out["is_reqwest"], true, "{out}");
    assert_eq!(out["is_connect"], true, "{out}");

    let flat = collect(&capture, until_named("service-a", 1));
    let (_, call) = a_and_call(&flat);
    assert_eq!(call["fault"], true);
    assert_ne!(call["error"], true);
    assert!(call["http"]["response"].is_null());
    assert_eq!(
        call["http"]["request"]["url"],
        format!("http://127.0.0.1:{port}/anything")
    );
    let ex = call["cause"]["exceptions"].as_array().unwrap();
    assert!(ex.len() >= 2, "the source chain is recorded: {ex:#?}");
    assert_eq!(ex[0]["type"], "reqwest_middleware::Error::Reqwest");
    assert_eq!(ex[0]["cause"], ex[1]["id"], "exceptions are linked");
    let all = messages(&call);
    assert!(all.to_lowercase().contains("refused"), "{all}");
    assert!(!all.contains("secret"), "the query is not recorded: {all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_is_a_fault_with_a_cause() {
    let capture = UdpCapture::start().unwrap();
    let b = service_b(Some(capture.recorder("service-b"))).await;
    let a = service_a(
        capture.recorder("service-a"),
        client(xray()),
        b.url(""),
        Some(Duration::from_millis(200)),
    )
    .await;

    let out = ask_a(a, "slow", &sampled_header(ROOT), &[]).await;
    assert_eq!(out["is_timeout"], true, "{out}");

    let flat = collect(&capture, until_named("service-a", 1));
    let (_, call) = a_and_call(&flat);
    assert_eq!(call["fault"], true);
    assert!(call["http"]["response"].is_null());
    assert_eq!(
        call["cause"]["exceptions"][0]["type"],
        "reqwest_middleware::Error::Reqwest"
    );
    let all = messages(&call);
    assert!(all.contains("timed out"), "{all}");
    assert!(!all.contains("secret"), "{all}");
    let took = call["end_time"].as_f64().unwrap() - call["start_time"].as_f64().unwrap();
    assert!((0.15..2.0).contains(&took), "{took}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_failure_is_a_fault_with_a_cause() {
    let capture = UdpCapture::start().unwrap();
    // The name is under the reserved .invalid TLD, and the client's resolver knows no name,
    // so the lookup fails without a query leaving the machine.
    let a = service_a(
        capture.recorder("service-a"),
        client_with(no_dns_client(), xray()),
        "http://no-such-service.invalid".to_owned(),
        Some(Duration::from_secs(5)),
    )
    .await;

    let out = ask_a(a, "x", &sampled_header(ROOT), &[]).await;
    assert_eq!(out["is_reqwest"], true, "{out}");

    let flat = collect(&capture, until_named("service-a", 1));
    let (_, call) = a_and_call(&flat);
    assert_eq!(call["name"], "no-such-service.invalid");
    assert_eq!(call["fault"], true);
    assert!(call["cause"]["exceptions"].as_array().unwrap().len() >= 2);
    let all = messages(&call);
    assert!(
        all.contains("no such host: no-such-service.invalid"),
        "{all}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_set_header_is_kept_by_default_and_overwritten_on_request() {
    let hand_set = "Root=1-67891233-abcdef012345678912345678;Parent=1111111111111111;Sampled=1";
    for (policy, kept) in [
        (ExistingHeader::Keep, true),
        (ExistingHeader::Overwrite, false),
    ] {
        let capture = UdpCapture::start().unwrap();
        let b = service_b(Some(capture.recorder("service-b"))).await;
        let middleware = XRayMiddleware::new().existing_header(policy);
        let a = service_a(
            capture.recorder("service-a"),
            client(vec![Arc::new(middleware)]),
            b.url(""),
            None,
        )
        .await;
        let out = ask_a(
            a,
            "echo",
            &sampled_header(ROOT),
            &[("x-test-hand-set", hand_set)],
        )
        .await;
        let flat = collect(&capture, |f| {
            !named(f, "service-a").is_empty() && !named(f, "service-b").is_empty()
        });
        let (_, call) = a_and_call(&flat);
        let b_seg = named(&flat, "service-b")[0].2.clone();
        if kept {
            assert_eq!(out["body"], hand_set);
            assert_eq!(b_seg["trace_id"], "1-67891233-abcdef012345678912345678");
            assert_eq!(b_seg["parent_id"], "1111111111111111");
        } else {
            assert_eq!(
                out["body"],
                format!(
                    "Root={ROOT};Parent={};Sampled=1;{LINEAGE}",
                    call["id"].as_str().unwrap()
                )
            );
            assert_eq!(b_seg["trace_id"], ROOT);
            assert_eq!(b_seg["parent_id"], call["id"]);
        }
        // The call is recorded either way; `traced` (B is traced and answers with a trace
        // header) only when B was told this subsegment's ID, or X-Ray would wait for a
        // segment under it that never comes.
        assert_eq!(call["http"]["response"]["status"], 200);
        if kept {
            assert!(call["http"]["request"]["traced"].is_null(), "{call:#}");
        } else {
            assert_eq!(call["http"]["request"]["traced"], true, "{call:#}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_records_the_content_length_header() {
    let capture = UdpCapture::start().unwrap();
    let b = service_b(None).await;
    let recorder = capture.recorder("caller");
    let client = client(xray());
    let segment = recorder.segment("caller").begin();
    let res = client
        .head(b.url("/echo"))
        .send()
        .in_context(segment.context())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let announced: u64 = res.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(announced > 0);
    assert_eq!(res.bytes().await.unwrap().len(), 0, "HEAD has no body");
    segment.end();
    let flat = collect(&capture, until_named("caller", 1));
    let call = &named(&flat, "caller")[0].2["subsegments"][0];
    assert_eq!(call["http"]["request"]["method"], "HEAD");
    assert_eq!(call["http"]["response"]["content_length"], announced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traced_is_set_only_when_the_service_answers_with_a_trace_header() {
    let capture = UdpCapture::start().unwrap();
    let untraced = service_b(None).await;
    let recorder = capture.recorder("caller");
    let client = client(xray());
    let segment = recorder.segment("caller").begin();
    let res = client
        .get(untraced.url("/echo"))
        .send()
        .in_context(segment.context())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    segment.end();
    let flat = collect(&capture, until_named("caller", 1));
    let seg = &named(&flat, "caller")[0].2;
    let call = &seg["subsegments"][0];
    assert_eq!(call["http"]["response"]["status"], 200);
    assert!(call["http"]["request"]["traced"].is_null(), "{call:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_in_the_request_extensions_is_used() {
    let capture = UdpCapture::start().unwrap();
    let b = service_b(Some(capture.recorder("service-b"))).await;
    let recorder = capture.recorder("caller");
    let client = client(xray());
    let segment = recorder.segment("caller").begin();
    let step = segment.begin_subsegment("step");
    // No current context at all: the extension alone decides the parent.
    assert!(xray_sdk::Context::current().is_none());
    let res = client
        .post(b.url("/echo"))
        .with_extension(step.context())
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        405,
        "B only routes GET; the caller gets that answer"
    );
    step.end();
    segment.end();
    let flat = collect(&capture, |f| {
        !named(f, "caller").is_empty() && !named(f, "service-b").is_empty()
    });
    let seg = &named(&flat, "caller")[0].2;
    let step = &seg["subsegments"][0];
    assert_eq!(step["name"], "step");
    let call = &step["subsegments"][0];
    assert_eq!(call["http"]["request"]["method"], "POST");
    assert_eq!(call["error"], true);
    assert_eq!(named(&flat, "service-b")[0].2["parent_id"], call["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_context_follows_the_strategy() {
    let b = service_b(None).await;

    // IGNORE_ERROR and LOG_ERROR: the call goes out untouched, without a header.
    for strategy in [ContextMissing::IgnoreError, ContextMissing::LogError] {
        let client = client(vec![Arc::new(
            XRayMiddleware::new().context_missing(strategy),
        )]);
        let res = client.get(b.url("/echo")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), "", "no header sent");
    }
    // The default (no global recorder, no AWS_XRAY_CONTEXT_MISSING here): LOG_ERROR.
    let res = client(xray()).get(b.url("/echo")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let hits = b.hits();

    // RUNTIME_ERROR: an error naming the problem, and nothing is sent.
    let client = client(vec![Arc::new(
        XRayMiddleware::new().context_missing(ContextMissing::RuntimeError),
    )]);
    let err = client.get(b.url("/echo")).send().await.unwrap_err();
    assert!(err.is_middleware(), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("context missing"), "{message}");
    assert!(message.contains("XRayMiddleware"), "{message}");
    let reqwest_middleware::Error::Middleware(inner) = &err else {
        unreachable!()
    };
    assert!(
        inner
            .downcast_ref::<xray_sdk::ContextMissingError>()
            .is_some()
    );
    assert_eq!(b.hits(), hits, "the request was not sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_marker_skips_everything() {
    let capture = UdpCapture::start().unwrap();
    let b = service_b(None).await;
    let recorder = capture.recorder("caller");
    let client = client(vec![Arc::new(
        XRayMiddleware::new().context_missing(ContextMissing::RuntimeError),
    )]);
    // Inside a context: no subsegment, no header.
    let segment = recorder.segment("caller").begin();
    let res = client
        .get(b.url("/echo"))
        .with_extension(DisableXRay)
        .send()
        .in_context(segment.context())
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "");
    segment.end();
    // Outside one: no context-missing error either.
    let res = client
        .get(b.url("/echo"))
        .with_extension(DisableXRay)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let flat = collect(&capture, until_named("caller", 1));
    assert!(named(&flat, "caller")[0].2["subsegments"].is_null());
}
