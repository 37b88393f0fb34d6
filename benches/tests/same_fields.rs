//! The benchmarks compare like with like: every library's W2 request sends the same fields
//! (read back from the datagrams it sends), and an unsampled request sends nothing, except
//! where a library's API cannot do it (xray-lite, checked here too, so that what the docs
//! say about it stays true).
//!
//! `cargo test -p xray-benches --test same_fields -- --nocapture`. Its own harness
//! (`harness = false`): xray-lite reads `_X_AMZN_TRACE_ID`, set before any thread starts.

#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use std::time::Duration;

use xray_benches::{
    CLIENT_IP, OtelAwsPeer, Peer, REQUEST_IDS, Request, SERVICE, URL, XrayLitePeer, XraySdkPeer,
    fresh_header, run_checks, set_lambda_trace_env,
};
use xray_sdk::serde_json::{Value, json};
use xray_sdk::testing::{UdpCapture, flatten};

fn header() -> String {
    std::env::var(xray_benches::LAMBDA_TRACE_ENV).unwrap()
}

/// The incoming header's Root and Parent.
fn root_and_parent(header: &str) -> (String, String) {
    let field = |key: &str| {
        header
            .split(';')
            .find_map(|kv| kv.strip_prefix(key))
            .unwrap()
            .to_owned()
    };
    (field("Root="), field("Parent="))
}

/// One W2 request through `make`'s library; every document it sent (embedded subsegments
/// flattened, in-progress documents left out), with their parent IDs.
fn documents(
    req: &Request,
    expected_datagrams: usize,
    make: impl FnOnce(&UdpCapture) -> Box<dyn Peer>,
) -> Vec<(String, Option<String>, Value)> {
    let capture = UdpCapture::start().unwrap();
    let mut peer = make(&capture);
    peer.request(req);
    peer.flush();
    let mut docs = capture.documents(expected_datagrams, Duration::from_secs(10));
    docs.extend(capture.drain_documents(Duration::from_millis(300)));
    assert_eq!(docs.len(), expected_datagrams, "{}: {docs:#?}", peer.name());
    flatten(&docs)
        .into_iter()
        .filter(|(_, _, d)| d["in_progress"] != json!(true))
        .collect()
}

/// The fields W2 records, checked on one library's documents. `lite` relaxes what xray-lite
/// cannot express: the segment continues no trace, the subsegments hang off the header's
/// Parent, and `x_forwarded_for` is a string.
fn check_w2(library: &str, req: &Request, docs: &[(String, Option<String>, Value)], lite: bool) {
    let (root, parent) = root_and_parent(&req.header);
    let segments: Vec<_> = docs
        .iter()
        .filter(|(_, _, d)| d["name"] == SERVICE)
        .collect();
    assert_eq!(segments.len(), 1, "{library}: {docs:#?}");
    let (segment_id, segment_parent, segment) = segments[0];
    let request = &segment["http"]["request"];
    assert_eq!(request["method"], "GET", "{library}: {segment:#}");
    assert_eq!(request["url"], URL, "{library}: {segment:#}");
    assert_eq!(request["client_ip"], CLIENT_IP, "{library}: {segment:#}");
    let response = &segment["http"]["response"];
    assert_eq!(response["status"], 200, "{library}: {segment:#}");
    assert!(
        response.get("content_length").is_none(),
        "{library}: {segment:#}"
    );
    if lite {
        assert_eq!(request["x_forwarded_for"], "true", "{library}: {segment:#}");
        assert_ne!(segment["trace_id"], root.as_str(), "{library}: {segment:#}");
    } else {
        assert_eq!(request["x_forwarded_for"], true, "{library}: {segment:#}");
        assert_eq!(segment["trace_id"], root.as_str(), "{library}: {segment:#}");
        assert_eq!(
            segment_parent.as_deref(),
            Some(parent.as_str()),
            "{library}"
        );
    }

    let calls: Vec<_> = docs
        .iter()
        .filter(|(_, _, d)| d["name"] == "DynamoDB")
        .collect();
    assert_eq!(calls.len(), 3, "{library}: {docs:#?}");
    let mut ids: Vec<&str> = Vec::new();
    for (_, call_parent, call) in calls {
        assert_eq!(call["namespace"], "aws", "{library}: {call:#}");
        let aws = &call["aws"];
        assert_eq!(aws["operation"], "GetItem", "{library}: {call:#}");
        assert_eq!(aws["region"], "us-east-1", "{library}: {call:#}");
        assert_eq!(aws["table_name"], "orders", "{library}: {call:#}");
        ids.push(aws["request_id"].as_str().unwrap_or_default());
        let response = &call["http"]["response"];
        assert_eq!(response["status"], 200, "{library}: {call:#}");
        assert!(
            response.get("content_length").is_none(),
            "{library}: {call:#}"
        );
        assert!(call["end_time"].is_number(), "{library}: {call:#}");
        assert_eq!(
            call["trace_id"].as_str().unwrap_or(&root),
            root,
            "{library}"
        );
        let expected_parent = if lite { &parent } else { segment_id };
        assert_eq!(call_parent.as_ref(), Some(expected_parent), "{library}");
    }
    ids.sort_unstable();
    let mut expected = REQUEST_IDS.to_vec();
    expected.sort_unstable();
    assert_eq!(ids, expected, "{library}");
}

fn xray_sdk_w2() {
    let req = Request::new(&header());
    let docs = documents(&req, 1, |c| Box::new(XraySdkPeer::new(c.address())));
    check_w2("xray-sdk", &req, &docs, false);
}

fn opentelemetry_aws_w2() {
    let req = Request::new(&header());
    let docs = documents(&req, 4, |c| {
        Box::new(OtelAwsPeer::new(c.address(), None).unwrap())
    });
    check_w2("opentelemetry-aws", &req, &docs, false);
}

fn xray_lite_w2() {
    let req = Request::new(&header());
    let docs = documents(&req, 7, |c| {
        Box::new(XrayLitePeer::new(c.address()).unwrap())
    });
    check_w2("xray-lite", &req, &docs, true);
}

/// Unsampled: xray-sdk and opentelemetry-aws send nothing; xray-lite ignores `Sampled=0` and
/// sends its seven datagrams.
fn unsampled_sends_nothing() {
    let req = Request::new(&header()).unsampled();
    for (expected, make) in [
        (
            0,
            Box::new(|c: &UdpCapture| Box::new(XraySdkPeer::new(c.address())) as Box<dyn Peer>)
                as Box<dyn Fn(&UdpCapture) -> Box<dyn Peer>>,
        ),
        (
            0,
            Box::new(|c: &UdpCapture| {
                Box::new(OtelAwsPeer::new(c.address(), None).unwrap()) as Box<dyn Peer>
            }),
        ),
        (
            7,
            Box::new(|c: &UdpCapture| {
                Box::new(XrayLitePeer::new(c.address()).unwrap()) as Box<dyn Peer>
            }),
        ),
    ] {
        let capture = UdpCapture::start().unwrap();
        let mut peer = make(&capture);
        peer.request(&req);
        peer.flush();
        let sent = capture.drain(Duration::from_millis(500)).len();
        eprintln!("{} unsampled request: {sent} datagram(s)", peer.name());
        assert_eq!(sent, expected, "{}", peer.name());
    }
}

/// The core's render benchmark and the emitter's floor render what W2 records: the same
/// fields as a recorded W2 request, and the same size to within a few bytes (times and IDs
/// are drawn).
fn rendered_w2_matches_the_recorded_one() {
    use xray_sdk::testing::{Datagram, RecordedSegment, RenderScratch};
    let req = Request::new(&header());
    let capture = UdpCapture::start().unwrap();
    let mut peer = XraySdkPeer::new(capture.address());
    peer.request(&req);
    peer.flush();
    let sent = capture.wait_for(1, Duration::from_secs(10));
    let mut buf = Vec::new();
    let n = RecordedSegment::w2().render(&mut buf, &mut RenderScratch::default());
    assert_eq!(n, 1);
    let rendered = Datagram { bytes: buf };
    assert!(rendered.has_daemon_header());
    let (a, b) = (sent[0].bytes.len(), rendered.bytes.len());
    eprintln!("W2 datagram: recorded {a} bytes, rendered {b} bytes");
    assert!(a.abs_diff(b) <= 16, "recorded {a} bytes, rendered {b}");
    // The rendered one checks out as W2, apart from its drawn trace and parent IDs.
    let docs = flatten(&[rendered.document()]);
    let (_, parent, segment) = docs.iter().find(|(_, _, d)| d["name"] == SERVICE).unwrap();
    let root = segment["trace_id"].as_str().unwrap().to_owned();
    let parent = parent.clone().unwrap();
    let fake = Request {
        header: format!("Root={root};Parent={parent};Sampled=1"),
        ..req
    };
    check_w2("RecordedSegment::w2", &fake, &docs, false);
}

fn main() {
    // Before any thread exists: xray-lite reads its context from this variable.
    set_lambda_trace_env(&fresh_header());
    run_checks(&[
        ("xray_sdk_w2", xray_sdk_w2),
        ("opentelemetry_aws_w2", opentelemetry_aws_w2),
        ("xray_lite_w2", xray_lite_w2),
        ("unsampled_sends_nothing", unsampled_sends_nothing),
        (
            "rendered_w2_matches_the_recorded_one",
            rendered_w2_matches_the_recorded_one,
        ),
    ]);
}
